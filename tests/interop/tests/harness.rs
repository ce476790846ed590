//! Tests of the harness itself, against a stand-in process that only answers /health, so the
//! start/kill/restart/stop plumbing is known to work independently of the broker.

use std::panic::{AssertUnwindSafe, catch_unwind};

use busbar_interop::{Broker, python_dir};

fn stand_in() -> std::path::PathBuf {
    python_dir().join("stand_in_broker.py")
}

fn starts_recorded(broker: &Broker) -> Vec<String> {
    std::fs::read_to_string(broker.data_dir().join("starts"))
        .expect("stand-in records its starts")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn start_kill9_restart_and_stop_keep_ports_and_data_dir() {
    let mut broker = Broker::start_binary(stand_in(), Some("{}"), &[]);
    assert!(broker.is_healthy());
    let conn = broker.conn_str();
    assert!(conn.contains(&format!("sb://127.0.0.1:{};", broker.amqp_port())));
    assert!(conn.ends_with("SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"));

    broker.kill9();
    assert!(!broker.is_healthy(), "still healthy after kill -9");
    broker.restart();
    assert!(broker.is_healthy());
    let starts = starts_recorded(&broker);
    assert_eq!(starts.len(), 2, "one data dir across restart: {starts:?}");
    assert_ne!(starts[0], starts[1], "restart must start a new process");

    let status = broker.stop();
    assert!(
        status.success(),
        "stand-in exits 0 on SIGTERM, got {status}"
    );
    assert!(broker.log_tail(5).contains("SIGTERM, exiting"));
}

#[test]
fn a_broker_that_exits_early_fails_with_its_log() {
    let result = catch_unwind(AssertUnwindSafe(|| {
        Broker::start_binary(stand_in(), None, &["--max-message-size", "1"])
    }));
    let message = panic_text(result.err().expect("start must fail"));
    assert!(message.contains("before becoming ready"), "{message}");
    assert!(
        message.contains("refusing to start (asked to)"),
        "{message}"
    );
}

#[test]
fn failing_script_output_and_broker_log_are_reported() {
    let broker = Broker::start_binary(stand_in(), None, &[]);
    let result = catch_unwind(AssertUnwindSafe(|| {
        broker.run_python("wrong_key.py", &["q"]);
    }));
    let message = panic_text(result.expect_err("no AMQP behind the stand-in"));
    assert!(message.contains("python wrong_key.py failed"), "{message}");
    // The script names the error class it got instead of the one it wanted.
    assert!(
        message.contains(
            "FAIL wrong_key.py: send: expected ServiceBusAuthenticationError, got ServiceBusConnectionError"
        ),
        "{message}"
    );
    assert!(message.contains("stand-in: ready"), "{message}");
}
