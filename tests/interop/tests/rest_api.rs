//! The REST runtime API (Service Bus's HTTP data plane) on the HTTP port, driven by
//! `python/rest_runtime.py` with requests shaped as Microsoft's REST reference documents
//! them, and checked against the Python SDK in both directions. The broker holds three
//! policies with one right each, so every request's token is judged.

use std::io::{Read, Write};
use std::net::TcpStream;

use busbar_interop::{Broker, QueueSpec, emulator_config};

const SEND_KEY: &str = "send-only-key";
const LISTEN_KEY: &str = "listen-only-key";
const MANAGE_KEY: &str = "manage-key";
const TOPIC: &str = "events";
const SUBSCRIPTION: &str = "all";

const CONFIG: &str = r#"{
  "UserConfig": {
    "Namespaces": [{
      "Name": "sbemulatorns",
      "Queues": [
        {"Name": "work", "Properties": {"LockDuration": "PT30S"}},
        {"Name": "nested/work", "Properties": {}},
        {"Name": "work-send-disabled", "Properties": {"Status": "SendDisabled"}},
        {"Name": "work-receive-disabled", "Properties": {"Status": "ReceiveDisabled"}}
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
    "MaxMessageSize": 262144,
    "Policies": [
      {"Name": "sender", "Key": "send-only-key", "Rights": ["Send"]},
      {"Name": "listener", "Key": "listen-only-key", "Rights": ["Listen"]},
      {"Name": "manager", "Key": "manage-key", "Rights": ["Manage"]}
    ]
  }
}"#;

fn run_phase(phase: &str, queue: &str) {
    run_phase_over(phase, queue, false);
}

/// Runs `phase` of the script against a new broker, over HTTPS (trusting the broker's
/// development CA) when `tls`.
fn run_phase_over(phase: &str, queue: &str, tls: bool) {
    let broker = Broker::start(Some(CONFIG), &[]);
    let ca = broker.dev_ca();
    let ca = ca.to_string_lossy();
    let env: &[(&str, &str)] = if tls { &[("REST_CA", &ca)] } else { &[] };
    let manage = broker.conn_str_with_key("manager", MANAGE_KEY);
    let http = broker.http_addr().to_string();
    broker.run_python_with(
        "rest_runtime.py",
        &manage,
        &[
            queue,
            phase,
            &http,
            TOPIC,
            SUBSCRIPTION,
            SEND_KEY,
            LISTEN_KEY,
            MANAGE_KEY,
        ],
        env,
    );
}

#[test]
fn rest_send_peek_lock_unlock_renew_complete_and_204_when_empty() {
    run_phase("lock_cycle", "work");
}

/// Over HTTPS the lock's `Location` says https, so a client follows it over TLS too.
#[test]
fn rest_lock_cycle_over_https_hands_out_https_locations() {
    run_phase_over("lock_cycle", "work", true);
}

#[test]
fn rest_lock_cycle_on_a_queue_whose_name_holds_a_slash() {
    run_phase("lock_cycle", "nested/work");
}

#[test]
fn rest_batch_send_and_receive_and_delete() {
    run_phase("batch_and_delete", "work");
}

#[test]
fn rest_refuses_bad_tokens_unknown_entities_and_locks_bad_properties_and_large_bodies() {
    run_phase("refusals", "work");
}

#[test]
fn rest_and_the_python_sdk_see_the_same_messages_both_ways() {
    run_phase("cross_protocol", "work");
}

/// A receive waiting for a message does not hold up a shutdown: it is answered 204 and the
/// broker exits within the harness's stop timeout, where it would otherwise wait out the
/// request's 300 seconds.
#[test]
fn a_waiting_rest_receive_ends_with_the_broker() {
    let mut broker = Broker::start(Some(&emulator_config(&[QueueSpec::new("idle")])), &[]);
    let address = broker.http_addr();
    let mut waiting = TcpStream::connect(address).unwrap_or_else(|e| broker.fail(&e.to_string()));
    let request = format!(
        "POST /idle/messages/head?timeout=300 HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
    );
    if let Err(error) = waiting.write_all(request.as_bytes()) {
        broker.fail(&format!("writing the receive: {error}"));
    }
    // The broker answers requests in the order it reads them: once a later one is
    // answered, the receive has been read and is waiting.
    if !broker.is_healthy() {
        broker.fail("the broker is not healthy");
    }
    let status = broker.stop();
    if !status.success() {
        broker.fail(&format!("busbar exited with {status}"));
    }
    let mut answer = String::new();
    let _ = waiting.read_to_string(&mut answer);
    if !answer.is_empty() && !answer.starts_with("HTTP/1.1 204") {
        broker.fail(&format!("the waiting receive was answered: {answer}"));
    }
}
