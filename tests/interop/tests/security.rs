//! Safe exposure: rights on every link and `$management` operation, session operations for
//! their holder only, and SASL PLAIN checked against the policies. Each broker is configured
//! with three policies holding one right each.

use busbar_interop::Broker;

const SEND_KEY: &str = "send-only-key";
const LISTEN_KEY: &str = "listen-only-key";
const MANAGE_KEY: &str = "manage-key";

const CONFIG: &str = r#"{
  "UserConfig": {
    "Namespaces": [{
      "Name": "sbemulatorns",
      "Queues": [
        {"Name": "guarded", "Properties": {}},
        {"Name": "sessions", "Properties": {"RequiresSession": true}}
      ],
      "Topics": [{
        "Name": "events",
        "Properties": {},
        "Subscriptions": [{"Name": "all", "Properties": {}}]
      }]
    }],
    "Logging": {"Type": "File"}
  },
  "Busbar": {
    "Policies": [
      {"Name": "sender", "Key": "send-only-key", "Rights": ["Send"]},
      {"Name": "listener", "Key": "listen-only-key", "Rights": ["Listen"]},
      {"Name": "manager", "Key": "manage-key", "Rights": ["Manage"]}
    ]
  }
}"#;

#[test]
fn python_each_operation_needs_its_right_and_sessions_their_holder() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let send = broker.conn_str_with_key("sender", SEND_KEY);
    let listen = broker.conn_str_with_key("listener", LISTEN_KEY);
    let manage = broker.conn_str_with_key("manager", MANAGE_KEY);
    broker.run_python_with(
        "rights.py",
        &send,
        &["guarded", &listen, &manage, "sessions", "events", "all"],
        &[],
    );
}
