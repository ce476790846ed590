//! The README's SDK examples, run as written (only the port changes) against a broker started
//! with the README's example configuration: a new user's first run must work.

use std::process::Command;
use std::time::Duration;

use busbar_interop::{Broker, js_dir, repo_root, run_with_timeout, venv_python};

/// The code of the first fenced block of `language` after `heading` in README.md.
fn readme_block(heading: &str, language: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let section = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README.md has no '{heading}'"))
        .1;
    let fence = format!("```{language}\n");
    let code = section
        .split_once(&fence)
        .unwrap_or_else(|| panic!("no {language} block after '{heading}'"))
        .1;
    code.split_once("```")
        .unwrap_or_else(|| panic!("unterminated {language} block"))
        .0
        .to_owned()
}

fn example_broker() -> Broker {
    let config = std::fs::read_to_string(repo_root().join("examples/Config.json"))
        .expect("read examples/Config.json");
    Broker::start(Some(&config), &[])
}

/// Runs `code` (an example pointed at the quick start's port) against `broker`; returns
/// what it printed.
fn run_example(broker: &Broker, code: &str, file: &str, program: Command) -> String {
    let port = broker.amqp_port().to_string();
    assert!(
        code.contains("localhost:5672"),
        "the example no longer dials localhost:5672"
    );
    let code = code.replace("localhost:5672", &format!("localhost:{port}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(file);
    std::fs::write(&path, code).expect("write the example");
    // What `busbar dev-cert > busbar-ca.pem` leaves beside the examples that need it.
    std::fs::copy(broker.dev_ca(), dir.path().join("busbar-ca.pem")).expect("copy the dev CA");
    let mut command = program;
    command.arg(&path).current_dir(dir.path());
    let outcome = run_with_timeout(&mut command, Duration::from_secs(60));
    if !outcome.status.is_some_and(|s| s.success()) {
        broker.fail(&format!(
            "the README example {file} failed:\n{}",
            outcome.output
        ));
    }
    outcome.output
}

#[test]
fn the_readme_python_example_runs_as_written() {
    let broker = example_broker();
    let code = readme_block("## Using it from an SDK", "python");
    let output = run_example(&broker, &code, "example.py", Command::new(venv_python()));
    assert!(output.contains("order 42 created"), "{output}");
}

#[test]
fn the_readme_javascript_example_runs_as_written() {
    let broker = example_broker();
    let code = readme_block("## Using it from an SDK", "js");
    let mut node = Command::new("node");
    node.env("NODE_PATH", js_dir().join("node_modules"));
    let output = run_example(&broker, &code, "example.js", node);
    assert!(output.contains("order 42 created"), "{output}");
}

const ADMIN_SECTION: &str = "### Creating entities";

#[test]
fn the_readme_python_admin_example_runs_as_written() {
    let broker = example_broker();
    let code = readme_block(ADMIN_SECTION, "python");
    let output = run_example(&broker, &code, "admin.py", Command::new(venv_python()));
    assert_eq!(output.trim(), "0", "active messages of the new queue");
}

#[test]
fn the_readme_javascript_admin_example_runs_as_written() {
    let broker = example_broker();
    let code = readme_block(ADMIN_SECTION, "js");
    let mut node = Command::new("node");
    node.env("NODE_PATH", js_dir().join("node_modules"))
        .env("NODE_EXTRA_CA_CERTS", "busbar-ca.pem");
    let output = run_example(&broker, &code, "admin.js", node);
    assert_eq!(output.trim(), "0", "active messages of the new queue");
}
