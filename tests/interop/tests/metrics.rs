//! Prometheus `/metrics` on a broker process: behind a SAS token like the rest of the HTTP
//! API, and every figure moving by exactly what the Python SDK did between two scrapes
//! (`python/metrics_traffic.py`).

use std::time::{SystemTime, UNIX_EPOCH};

use busbar_client::{
    ConnectOptions, Connection, Outcome, ReceiverOptions, SettleMode, encode_message, sas_token,
};
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

/// A receiver that settles its completions itself (settle-first, as generic AMQP clients and
/// the load generator do) reaches the broker's batched path for such completions
/// (`connection/completions.rs`): each still counts as completed.
#[test]
fn completions_settled_by_the_client_count_too() {
    const COUNT: usize = 6;
    let broker = Broker::start(Some(CONFIG), &[]);
    let token = namespace_token(&broker, KEY);
    let completed = || {
        let (status, text) = broker.http_request("GET", "/metrics", Some(&token), "");
        assert_eq!(status, 200, "{text}");
        let name = format!("busbar_entity_completed_messages_total{{entity=\"{QUEUE}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&name))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let before = completed();
    let addr = broker.amqp_addr().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let connection = Connection::connect(&addr, ConnectOptions::default())
            .await
            .expect("connect");
        let audience = format!("sb://{addr}/{QUEUE}");
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        connection
            .put_token(&audience, &sas_token(&audience, KEY_NAME, KEY, expiry))
            .await
            .expect("put-token");
        let session = connection.session().await.expect("a session");
        let sender = session.sender(QUEUE).await.expect("a sender");
        for i in 0..COUNT {
            let outcome = sender
                .send(encode_message(format!("m{i}").as_bytes()))
                .await;
            assert!(matches!(outcome, Ok(Outcome::Accepted)), "{outcome:?}");
        }
        let options = ReceiverOptions {
            settle_mode: SettleMode::PeekLock,
            credit: 100,
        };
        let mut receiver = session.receiver(QUEUE, options).await.expect("a receiver");
        for _ in 0..COUNT {
            let delivery = receiver.recv().await.expect("a delivery");
            receiver.accept(&delivery).expect("accept");
        }
        // Settled first: nothing answers, so wait for the broker to have applied them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while completed() < before + COUNT as u64 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    assert_eq!(completed() - before, COUNT as u64);
}
