//! Crash and restart: what the broker confirmed before dying must be there after it restarts
//! on the same data directory, and settled messages must stay settled.

use busbar_interop::{Broker, QueueSpec, emulator_config};

const QUEUE: &str = "durable";

fn durable_broker() -> Broker {
    // Locks shorter than the scripts' receive deadline, so a lock that somehow survived the
    // crash would expire within the run instead of hiding messages.
    let config = emulator_config(&[QueueSpec::new(QUEUE).lock_duration("PT30S")]);
    Broker::start(Some(&config), &[])
}

#[test]
fn kill9_loses_no_confirmed_send_or_completion() {
    let mut broker = durable_broker();
    let sent = broker.run_python("durability.py", &[QUEUE, "send", "500"]);
    println!("{sent}");

    broker.kill9();
    broker.restart();
    // All 500 back; then complete the first 200.
    let first = broker.run_python("durability.py", &[QUEUE, "expect", "0", "500", "200"]);
    println!("{first}");

    broker.kill9();
    broker.restart();
    // Exactly the 300 that were not completed.
    let second = broker.run_python("durability.py", &[QUEUE, "expect", "200", "500"]);
    println!("{second}");
}

#[test]
fn sigterm_exits_cleanly_and_keeps_messages() {
    let mut broker = durable_broker();
    broker.run_python("durability.py", &[QUEUE, "send", "20"]);
    let status = broker.stop();
    assert!(
        status.success(),
        "busbar should exit 0 on SIGTERM, got {status}\n{}",
        broker.log_tail(40)
    );
    broker.restart();
    broker.run_python("durability.py", &[QUEUE, "expect", "0", "20"]);
}
