//! Safe exposure: rights on every link and `$management` operation, session operations for
//! their holder only, and SASL PLAIN checked against the policies. Each broker is configured
//! with three policies holding one right each.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use busbar_interop::{
    Broker, QueueSpec, busbar_binary, emulator_config, free_port, run_with_timeout,
};

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

#[test]
fn sasl_plain_takes_a_policy_key_name_and_its_key_only() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let send = broker.conn_str_with_key("sender", SEND_KEY);
    broker.run_python_with("sasl_plain.py", &send, &["guarded"], &[]);
}

/// `busbar serve` on every address with an empty root key, given as a flag or as an empty
/// environment variable: it must refuse to start and say why.
#[test]
fn an_empty_root_key_stops_startup() {
    for (flag, env) in [(Some(""), None), (None, Some(""))] {
        let workdir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(busbar_binary());
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(workdir.path().join("data"))
            .arg("--amqp-listen")
            .arg(format!("0.0.0.0:{}", free_port()))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .env_remove("BUSBAR_SAS_KEY");
        if let Some(key) = flag {
            command.arg("--sas-key").arg(key);
        }
        if let Some(key) = env {
            command.env("BUSBAR_SAS_KEY", key);
        }
        let outcome = run_with_timeout(&mut command, Duration::from_secs(20));
        let Some(status) = outcome.status else {
            panic!(
                "busbar kept running on 0.0.0.0 with an empty key (flag {flag:?}, env {env:?})\n{}",
                outcome.output
            );
        };
        assert!(!status.success(), "busbar exited 0\n{}", outcome.output);
        assert!(
            outcome.output.contains("is empty"),
            "the error should say the key is empty; busbar printed:\n{}",
            outcome.output
        );
    }
}

/// The status line's code of a plain `GET path` with an optional `Authorization` header.
fn http_status(broker: &Broker, path: &str, authorization: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(broker.http_addr()).expect("connect to the HTTP port");
    let header = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{header}Connection: close\r\n\r\n"
    )
    .expect("write the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[test]
fn the_http_api_needs_a_listen_token_once_policies_are_configured() {
    let broker = Broker::start(Some(CONFIG), &[]);
    assert_eq!(
        http_status(&broker, "/health", None),
        200,
        "/health stays open"
    );
    for path in [
        "/api/queues",
        "/api/queues/guarded",
        "/api/topics",
        "/metrics",
    ] {
        assert_eq!(
            http_status(&broker, path, None),
            401,
            "{path} without a token"
        );
        assert_eq!(
            http_status(
                &broker,
                path,
                Some("SharedAccessSignature sr=x&sig=y&se=1&skn=listener")
            ),
            401,
            "{path} with a forged token"
        );
    }
    let http = broker.http_addr().to_string();
    let with_key = |name: &str, key: &str| {
        broker.run_cli(&[
            "queues",
            "--http",
            &http,
            "--sas-key-name",
            name,
            "--sas-key",
            key,
        ])
    };
    let refused = with_key("sender", SEND_KEY);
    assert!(
        refused.status.is_some_and(|s| !s.success()) && refused.output.contains("Listen"),
        "a Send-only key must not read the API:\n{}",
        refused.output
    );
    for (name, key) in [("listener", LISTEN_KEY), ("manager", MANAGE_KEY)] {
        let listed = with_key(name, key);
        assert!(
            listed.status.is_some_and(|s| s.success()) && listed.output.contains("guarded"),
            "{name} must list the queues:\n{}",
            listed.output
        );
    }
}

#[test]
fn a_message_the_receiver_cannot_take_is_counted_then_dead_lettered() {
    let config = emulator_config(&[
        QueueSpec::new("locked").max_delivery_count(3),
        QueueSpec::new("deleted").max_delivery_count(3),
    ]);
    let broker = Broker::start(Some(&config), &[]);
    broker.run_python("undeliverable.py", &["locked", "deleted"]);
}
