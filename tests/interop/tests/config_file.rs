//! Microsoft emulator Config.json support: queues and their properties come from the file, and a
//! bad file stops `busbar serve` with a message that names the offending field.

use std::process::Command;
use std::time::Duration;

use busbar_interop::{
    Broker, QueueSpec, busbar_binary, emulator_config, free_port, run_with_timeout,
};

#[test]
fn queues_from_config_file_exist_with_their_properties() {
    let config = emulator_config(&[
        QueueSpec::new("payments"),
        QueueSpec::new("poison-orders").max_delivery_count(3),
    ]);
    let broker = Broker::start(Some(&config), &[]);
    broker.run_python("smoke_send_receive.py", &["payments"]);
    // MaxDeliveryCount 3 from the file decides when the message is dead-lettered.
    broker.run_python("abandon_to_dead_letter.py", &["poison-orders"]);
    // Nothing outside the file exists.
    broker.run_python("unknown_entity.py", &["not-in-config"]);
}

fn serve_with_config_text(config_text: &str) -> (Option<std::process::ExitStatus>, String) {
    let workdir = tempfile::tempdir().expect("temp dir");
    let config_path = workdir.path().join("Config.json");
    std::fs::write(&config_path, config_text).expect("write config");
    let data_dir = workdir.path().join("data");
    let mut command = Command::new(busbar_binary());
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--amqp-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&config_path);
    let outcome = run_with_timeout(&mut command, Duration::from_secs(20));
    (outcome.status, outcome.output)
}

#[test]
fn invalid_lock_duration_stops_startup_naming_the_field() {
    let config = emulator_config(&[QueueSpec::new("q1").lock_duration("PT10X")]);
    let (status, output) = serve_with_config_text(&config);
    let Some(status) = status else {
        panic!(
            "busbar kept running with LockDuration \"PT10X\"; it must refuse to start\n{output}"
        );
    };
    assert!(
        !status.success(),
        "busbar exited 0 with an invalid LockDuration\n{output}"
    );
    assert!(
        output.contains("LockDuration"),
        "the error should name the LockDuration field; busbar printed:\n{output}"
    );
}

#[test]
fn unparsable_config_file_stops_startup() {
    let (status, output) = serve_with_config_text(r#"{"UserConfig": {"Namespaces": [ "#);
    let Some(status) = status else {
        panic!("busbar kept running with a truncated Config.json\n{output}");
    };
    assert!(
        !status.success(),
        "busbar exited 0 with a truncated Config.json\n{output}"
    );
    assert!(
        output.contains("Config.json") || output.to_lowercase().contains("config"),
        "the error should mention the config file; busbar printed:\n{output}"
    );
}

#[test]
fn unknown_properties_are_accepted_with_a_warning_naming_property_and_entity() {
    // Misspellings an operator makes; Microsoft's emulator accepts such a file, so Busbar
    // does too, but says what it ignored.
    let config = r#"{
      "UserConfig": {
        "Namespaces": [{
          "Name": "sbemulatorns",
          "Queues": [{"Name": "orders", "Properties": {"LockDuraton": "PT30S"}}],
          "Topics": [{
            "Name": "events",
            "Subscriptions": [{"Name": "audit", "Properties": {"MaxDeliveryCont": 3}}]
          }],
          "Subscriptions": []
        }]
      },
      "Version": 2
    }"#;
    let broker = Broker::start(Some(config), &[]);
    let log = broker.log_tail(200);
    for (property, entity) in [
        ("LockDuraton", "queue \"orders\""),
        (
            "MaxDeliveryCont",
            "subscription \"events/Subscriptions/audit\"",
        ),
        ("Subscriptions", "namespace \"sbemulatorns\""),
        ("Version", "the file"),
    ] {
        let warning = log
            .lines()
            .find(|line| line.contains("WARN") && line.contains(&format!("\"{property}\"")));
        let Some(warning) = warning else {
            broker.fail(&format!(
                "no warning names the unknown property {property:?}"
            ));
        };
        assert!(
            warning.contains(entity),
            "the warning for {property:?} should name {entity}: {warning}"
        );
    }
}

/// Microsoft's sample Config.json, as its emulator installer ships it: `//` comments and a
/// rule action that sets a system property.
fn microsoft_sample_config() -> String {
    let path =
        busbar_interop::repo_root().join("tests/interop/fixtures/microsoft-emulator/Config.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn microsoft_sample_config_serves_its_entities_and_applies_its_rule_action() {
    let broker = Broker::start(Some(&microsoft_sample_config()), &[]);
    broker.run_python("smoke_send_receive.py", &["queue.1"]);
    broker.run_python("emulator_sample.py", &["topic.1"]);
}
