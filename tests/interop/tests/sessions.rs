//! Sessions on a queue with RequiresSession, driven by the Python and JS SDKs.

use busbar_interop::{Broker, QueueSpec, emulator_config};

fn config() -> String {
    emulator_config(&[QueueSpec::new("sq").requires_session()])
}

#[test]
fn python_session_receivers_locks_and_state() {
    let broker = Broker::start(Some(&config()), &[]);
    broker.run_python("sessions.py", &["sq", "receive"]);
}

#[test]
fn session_state_survives_kill_9() {
    let mut broker = Broker::start(Some(&config()), &[]);
    broker.run_python("sessions.py", &["sq", "state-send"]);
    broker.kill9();
    broker.restart();
    broker.run_python("sessions.py", &["sq", "state-check"]);
}

#[test]
fn js_session_receivers_locks_and_state() {
    let broker = Broker::start(Some(&config()), &[]);
    broker.run_node("sessions.mjs", &["sq"]);
}
