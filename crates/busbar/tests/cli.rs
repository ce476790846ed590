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
