//! Prometheus `/metrics` on a broker process: behind a SAS token like the rest of the HTTP
//! API, and every figure moving by exactly what the Python SDK did between two scrapes
//! (`python/metrics_traffic.py`).

use std::time::{SystemTime, UNIX_EPOCH};

use busbar_interop::Broker;
use busbar_servicebus::sas::generate_token;

const QUEUE: &str = "metered";
const TOPIC: &str = "events";
const SUBSCRIPTION: &str = "all";
const KEY_NAME: &str = "manager";
const KEY: &str = "manage-key";

/// A policy of its own, so the HTTP API is not open as on the development key.
const CONFIG: &str = r#"{
  "UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
    "Queues": [{"Name": "metered", "Properties": {}}],
    "Topics": [{"Name": "events", "Properties": {}, "Subscriptions": [{"Name": "all", "Properties": {}}]}]}]},
  "Busbar": {"Policies": [{"Name": "manager", "Key": "manage-key", "Rights": ["Manage"]}]}
}"#;

/// A token for the whole namespace signed with `key`, valid for an hour.
fn namespace_token(broker: &Broker, key: &str) -> String {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    generate_token(
        &format!("https://{}", broker.http_addr()),
        KEY_NAME,
        key,
        expiry,
    )
}

#[test]
fn python_traffic_moves_every_metric_by_exactly_what_was_done() {
    // Two connections at most, so that the script can be refused a third.
    let broker = Broker::start(Some(CONFIG), &["--max-connections", "2"]);
    let token = namespace_token(&broker, KEY);
    let wrong = namespace_token(&broker, "not-the-key");
    let http = broker.http_addr().to_string();
    broker.run_python_with(
        "metrics_traffic.py",
        &broker.conn_str_with_key(KEY_NAME, KEY),
        &[QUEUE, &http, &token, &wrong, TOPIC, SUBSCRIPTION],
        &[],
    );
}
