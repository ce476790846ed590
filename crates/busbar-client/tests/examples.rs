//! Every program in `examples/` runs as written against a Busbar started for it: built by
//! cargo, given the broker's connection string in `SERVICEBUS_CONNECTION_STRING` (the
//! variable the examples read, defaulting to the development connection string), it must
//! exit 0 and print what it promises. A new example is run too, and fails this test until
//! its output is listed in `expected_output`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Broker;

/// What each example must print (each line a substring of its output), and what it must
/// not.
fn expected_output(example: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match example {
        "send_receive" => (
            &[
                "Some(\"order\"): order 0",
                "Some(\"order\"): order 1",
                "Some(\"order\"): order 2",
            ],
            &[],
        ),
        "sessions" => (&["cart-1: apples figs", "cart-2: pears"], &[]),
        "scheduled" => (&["waiting: #1 reminder", "due: reminder"], &["never mind"]),
        "dead_letter" => (
            &[
                "dead-lettered: {not json (Some(\"InvalidPayload\"): Some(\"the body is not JSON\"))",
            ],
            &[],
        ),
        "admin" => (
            &[
                "created admin-example (lock 30s)",
                "queue admin-example: 0 messages (0 active, 0 dead-lettered)",
                "rule priority: Sql { expression: \"priority > 5\", parameters: [] }",
            ],
            &["rule $Default"],
        ),
        "processor" => (
            &[
                "recalculated order-1: created, 3 items",
                "recalculated order-2: created, 1 item",
                "recalculated order-1: shipped",
                "dead-lettered order-3 after 10 deliveries: MaxDeliveryCountExceeded",
            ],
            &["Complete", "Abandon"],
        ),
        "session_processor" => (
            &[
                "cart-1: +250 = 250",
                "cart-1: +100 = 350",
                "cart-2: +75 = 75",
            ],
            &["AcceptSession", "CloseSession"],
        ),
        _ => return None,
    })
}

/// A program that has not finished by then is reported as hanging.
const EXAMPLE_LIMIT: Duration = Duration::from_secs(120);

/// Builds the examples and returns each one's executable by name.
fn build_examples() -> BTreeMap<String, PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--package",
            "busbar-client",
            "--examples",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build --examples");
    assert!(output.status.success(), "cargo build --examples failed");
    let mut executables = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_example = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "example"));
        if let (true, Some(name), Some(executable)) = (
            is_example,
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            executables.insert(name.to_owned(), PathBuf::from(executable));
        }
    }
    executables
}

/// The names of the programs in `examples/`.
fn example_sources() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read examples/")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs")
                .then(|| path.file_stem()?.to_str().map(str::to_owned))
                .flatten()
        })
        .collect();
    names.sort();
    names
}

/// Runs `executable` with the broker's connection string; its exit status and output.
async fn run_example(executable: &Path, broker: &Broker) -> (std::process::ExitStatus, String) {
    // Output goes to a file: nothing to drain while the program runs.
    let mut log = tempfile::tempfile().expect("output file");
    let mut child = Command::new(executable)
        .env("SERVICEBUS_CONNECTION_STRING", broker.connection_string())
        .env_remove("SERVICEBUS_QUEUE")
        .env_remove("SERVICEBUS_SESSION_QUEUE")
        .stdout(log.try_clone().expect("output file"))
        .stderr(log.try_clone().expect("output file"))
        .spawn()
        .expect("start the example");
    let deadline = tokio::time::Instant::now() + EXAMPLE_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break status;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "{} still running after {EXAMPLE_LIMIT:?}",
                executable.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut output = String::new();
    log.seek(SeekFrom::Start(0)).expect("rewind output");
    log.read_to_string(&mut output).expect("read output");
    (status, output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_runs_as_written_against_busbar() {
    let executables = tokio::task::spawn_blocking(build_examples).await.unwrap();
    let sources = example_sources();
    assert!(!sources.is_empty(), "no examples found");
    let mut failures = Vec::new();
    for name in &sources {
        let Some(executable) = executables.get(name) else {
            failures.push(format!("{name}: cargo built no executable for it"));
            continue;
        };
        // A broker of its own: examples share queue names.
        let mut broker = Broker::start().await;
        let (status, output) = run_example(executable, &broker).await;
        broker.shutdown().await;
        println!("--- {name} ({status})\n{output}");
        if !status.success() {
            failures.push(format!("{name}: exited with {status}:\n{output}"));
            continue;
        }
        let Some((wanted, unwanted)) = expected_output(name) else {
            failures.push(format!(
                "{name}: ran, but its output is not listed in expected_output:\n{output}"
            ));
            continue;
        };
        for line in wanted {
            if !output.contains(line) {
                failures.push(format!("{name}: did not print {line:?}:\n{output}"));
            }
        }
        for line in unwanted {
            if output.contains(line) {
                failures.push(format!("{name}: printed {line:?}:\n{output}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
