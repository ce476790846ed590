//! The `busbar` executable's behaviour at the edges: help text, exit codes and messages for
//! unusable configuration.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Output};

const BUSBAR_VARIABLES: [&str; 10] = [
    "BUSBAR_CONFIG",
    "BUSBAR_DATA_DIR",
    "BUSBAR_AMQP_LISTEN",
    "BUSBAR_HTTP_LISTEN",
    "BUSBAR_MAX_MESSAGE_SIZE",
    "BUSBAR_SAS_KEY_NAME",
    "BUSBAR_SAS_KEY",
    "BUSBAR_DURABILITY",
    "BUSBAR_LOG",
    "RUST_LOG",
];

/// The binary with none of its environment variables inherited from the test runner.
fn busbar() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_busbar"));
    for variable in BUSBAR_VARIABLES {
        command.env_remove(variable);
    }
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serve_help_documents_every_flag_and_variable() {
    let output = busbar().args(["serve", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--data-dir",
        "--amqp-listen",
        "--http-listen",
        "--max-message-size",
        "--sas-key-name",
        "--sas-key",
        "--durability",
        "--log",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
    for variable in &BUSBAR_VARIABLES[..9] {
        assert!(help.contains(variable), "help lacks {variable}:\n{help}");
    }
}

#[test]
fn top_level_help_lists_serve() {
    let output = busbar().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("serve"), "{help}");
    assert!(help.contains("UseDevelopmentEmulator=true"), "{help}");
}

#[test]
fn invalid_config_file_exits_2_with_the_field_path() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        br#"{"UserConfig": {"Namespaces": [{"Queues": [
              {"Name": "q1", "Properties": {"LockDuration": "PT10X"}}]}]}}"#,
    )
    .unwrap();
    let output = busbar()
        .args(["serve", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(
            r#"UserConfig.Namespaces[0].Queues[0].Properties.LockDuration: "PT10X" is not an ISO 8601 duration"#
        ),
        "{message}"
    );
}

#[test]
fn missing_config_file_exits_2() {
    let output = busbar()
        .args(["serve", "--config", "/nonexistent/busbar-config.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/busbar-config.json"));
}

#[test]
fn config_path_is_read_from_the_environment() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(br#"{"Busbar": {"Durability": "eventually"}}"#)
        .unwrap();
    let output = busbar()
        .arg("serve")
        .env("BUSBAR_CONFIG", file.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("Busbar.Durability"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn exposed_listener_without_a_key_exits_2_saying_what_to_set() {
    let output = busbar()
        .arg("serve")
        .env("BUSBAR_AMQP_LISTEN", "0.0.0.0:5672")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("--sas-key"), "{message}");
    assert!(message.contains("BUSBAR_SAS_KEY"), "{message}");
}

#[test]
fn invalid_log_filter_exits_2() {
    let output = busbar()
        .args(["serve", "--log", "info,[[["])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--log"), "{}", stderr(&output));
}

#[test]
fn a_damaged_data_dir_is_refused_with_the_way_out_and_repair_salvages_it() {
    use busbar_store::Store as _;
    use busbar_store::conformance::{commit, enqueue};
    use busbar_store::log::{LogOptions, LogStore};

    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("00000001.log");
    let mut frames = Vec::new();
    {
        let (store, _) = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        for seq in 1..=10 {
            frames.push(std::fs::metadata(&segment).unwrap().len() as usize);
            commit(&store, vec![enqueue(1, seq, &[seq as u8; 100])]);
        }
        store.close().unwrap();
    }
    let mut data = std::fs::read(&segment).unwrap();
    data[frames[4] + 60] ^= 0xff;
    data[frames[5] + 60] ^= 0xff;
    std::fs::write(&segment, &data).unwrap();

    let serve = busbar()
        .args([
            "serve",
            "--amqp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let message = stderr(&serve);
    assert!(
        message.contains("00000001.log") && message.contains(&format!("offset {}", frames[4])),
        "{message}"
    );
    assert!(message.contains("busbar repair"), "{message}");

    let repair = busbar()
        .arg("repair")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(repair.status.success(), "{}", stderr(&repair));
    let report = String::from_utf8_lossy(&repair.stdout);
    assert!(
        report.contains("messages lost: entity 1 seq 5, entity 1 seq 6"),
        "{report}"
    );
    assert!(report.contains("00000001.log.damaged"), "{report}");

    let (_, recovered) = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    let seqs: Vec<u64> = recovered.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 7, 8, 9, 10]);
}
