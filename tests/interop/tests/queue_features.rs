//! Duplicate detection, time to live and forwarding, driven by the Python SDK against queues
//! configured through an emulator Config.json.

use busbar_interop::Broker;

const CONFIG: &str = r#"{
  "UserConfig": {
    "Namespaces": [{
      "Name": "sbemulatorns",
      "Queues": [
        {"Name": "dedup", "Properties": {"RequiresDuplicateDetection": true, "DuplicateDetectionHistoryTimeWindow": "PT1M"}},
        {"Name": "ttl", "Properties": {"DefaultMessageTimeToLive": "PT2S", "DeadLetteringOnMessageExpiration": true}},
        {"Name": "ttldrop", "Properties": {"DefaultMessageTimeToLive": "PT2S"}},
        {"Name": "front", "Properties": {"ForwardTo": "middle"}},
        {"Name": "middle", "Properties": {"ForwardTo": "back"}},
        {"Name": "back", "Properties": {}},
        {"Name": "poison", "Properties": {"MaxDeliveryCount": 1, "ForwardDeadLetteredMessagesTo": "graveyard"}},
        {"Name": "graveyard", "Properties": {}},
        {"Name": "ping", "Properties": {"ForwardTo": "pong"}},
        {"Name": "pong", "Properties": {"ForwardTo": "ping"}}
      ],
      "Topics": []
    }],
    "Logging": {"Type": "File"}
  }
}"#;

#[test]
fn python_duplicates_expiry_and_forwarding() {
    let broker = Broker::start(Some(CONFIG), &[]);
    broker.run_python("queue_routing_and_expiry.py", &["dedup"]);
}

#[test]
fn duplicate_window_and_far_schedule_survive_a_restart() {
    let mut broker = Broker::start(Some(CONFIG), &[]);
    broker.run_python("duplicate_window_restart.py", &["dedup", "send"]);
    broker.kill9();
    broker.restart();
    broker.run_python("duplicate_window_restart.py", &["dedup", "check"]);
}

#[test]
fn js_duplicates_expiry_and_forwarding() {
    let broker = Broker::start(Some(CONFIG), &[]);
    broker.run_node("queue_routing_and_expiry.mjs", &["dedup"]);
}

/// A queue and a topic of 1 MiB (MaxSizeInMegabytes), and a queue without a cap of its own.
const SMALL_ENTITIES: &str = r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns",
  "Queues":[{"Name":"small","Properties":{"MaxSizeInMegabytes":1}},{"Name":"roomy","Properties":{}}],
  "Topics":[{"Name":"small-topic","Properties":{"MaxSizeInMegabytes":1},
             "Subscriptions":[{"Name":"all","Properties":{}}]}]}],
  "Logging":{"Type":"File"}}}"#;

#[test]
fn python_a_full_entity_refuses_sends_with_quota_exceeded() {
    let broker = Broker::start(Some(SMALL_ENTITIES), &[]);
    broker.run_python("quota.py", &["small", "roomy", "small-topic", "all"]);
}
