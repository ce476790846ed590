//! The web console in headless Chromium (playwright-core driving the system's `chromium`),
//! against a broker process, with the Python SDK making the traffic the pages show. What
//! each scenario walks is described at the top of its script in `js/console_*.mjs`.
//!
//! Screenshots of the pages go to `$BUSBAR_SCREENSHOTS` when it is set (the docs' are made
//! with `BUSBAR_SCREENSHOTS=$PWD/docs/console`).

use busbar_interop::{Broker, venv_python};

const CONFIG: &str = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
  "Queues": [
    {"Name": "orders", "Properties": {"MaxDeliveryCount": 5}},
    {"Name": "payments", "Properties": {}}
  ],
  "Topics": [{"Name": "events", "Properties": {}, "Subscriptions": [
    {"Name": "audit", "Properties": {}, "Rules": [{"Name": "big", "Properties": {
      "FilterType": "Sql", "SqlFilter": {"SqlExpression": "amount > 100"},
      "Action": {"SqlExpression": "SET priority = 'high'"}}}]},
    {"Name": "billing", "Properties": {}}
  ]}]}]}}"#;

/// No development key: a listener, a sender and a manager, each with its own key.
const POLICY_CONFIG: &str = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
  "Queues": [{"Name": "guarded", "Properties": {}}]}]},
  "Busbar": {"Policies": [
    {"Name": "listener", "Key": "listen-only-key", "Rights": ["Listen"]},
    {"Name": "sender", "Key": "send-only-key", "Rights": ["Send"]},
    {"Name": "manager", "Key": "manage-key", "Rights": ["Manage", "Listen", "Send"]}
  ]}}"#;

fn run_console(broker: &Broker, script: &str) {
    let base = format!("http://{}", broker.http_addr());
    let python = venv_python();
    let python = python.to_string_lossy();
    let output = broker.run_node_with(
        script,
        &broker.conn_str(),
        &[&base],
        &[("BUSBAR_PYTHON", &python)],
    );
    // What the scenario saw and measured, for `--no-capture`.
    println!("{output}");
}

#[test]
fn console_overview_counts_move_while_the_python_sdk_sends() {
    let broker = Broker::start(Some(CONFIG), &[]);
    run_console(&broker, "console_live_counts.mjs");
}

#[test]
fn console_dead_letters_are_read_resubmitted_repaired_and_purged() {
    let broker = Broker::start(Some(CONFIG), &[]);
    run_console(&broker, "console_dead_letters.mjs");
}

#[test]
fn console_rules_are_listed_created_tested_and_deleted() {
    let broker = Broker::start(Some(CONFIG), &[]);
    run_console(&broker, "console_rules.mjs");
}

#[test]
fn console_creates_edits_and_deletes_entities() {
    let broker = Broker::start(Some(CONFIG), &[]);
    run_console(&broker, "console_entities.mjs");
}

#[test]
fn console_user_without_rights_sees_nothing_and_changes_nothing() {
    let broker = Broker::start(Some(POLICY_CONFIG), &[]);
    run_console(&broker, "console_access.mjs");
}

#[test]
fn console_lists_a_thousand_entities_without_stalling() {
    let queues: Vec<String> = (0..1000)
        .map(|n| format!(r#"{{"Name": "queue-{n:04}", "Properties": {{}}}}"#))
        .collect();
    let config = format!(
        r#"{{"UserConfig": {{"Namespaces": [{{"Name": "sbemulatorns", "Queues": [{}]}}]}}}}"#,
        queues.join(",")
    );
    let broker = Broker::start(Some(&config), &[]);
    run_console(&broker, "console_many_entities.mjs");
}
