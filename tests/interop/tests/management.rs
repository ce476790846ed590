//! Scenarios on the `$management` node, each driven by both official SDKs (Python
//! azure-servicebus 7.15.0 and JS @azure/service-bus 7.9.5): lock renewal, scheduled messages,
//! peek, and deferral. One broker per test; what each script checks is described at its top.

use busbar_interop::{Broker, QueueSpec, emulator_config};

fn broker_with(queue: QueueSpec) -> Broker {
    Broker::start(Some(&emulator_config(&[queue])), &[])
}

#[test]
fn python_lock_renewal_keeps_the_message_past_its_lock_duration() {
    let broker = broker_with(QueueSpec::new("renewals").lock_duration("PT5S"));
    broker.run_python("lock_renewal.py", &["renewals"]);
}

#[test]
fn js_lock_renewal_keeps_the_message_past_its_lock_duration() {
    let broker = broker_with(QueueSpec::new("renewals").lock_duration("PT5S"));
    broker.run_node("lock_renewal.mjs", &["renewals"]);
}

#[test]
fn python_scheduled_messages_appear_on_time_and_cancel() {
    let broker = broker_with(QueueSpec::new("later"));
    broker.run_python("scheduled_messages.py", &["later"]);
}

#[test]
fn js_scheduled_messages_appear_on_time_and_cancel() {
    let broker = broker_with(QueueSpec::new("later"));
    broker.run_node("scheduled_messages.mjs", &["later"]);
}

#[test]
fn python_peek_takes_no_lock_and_reads_the_dead_letter_queue() {
    let broker = broker_with(QueueSpec::new("browse"));
    broker.run_python("peek.py", &["browse"]);
}

#[test]
fn js_peek_takes_no_lock_and_reads_the_dead_letter_queue() {
    let broker = broker_with(QueueSpec::new("browse"));
    broker.run_node("peek.mjs", &["browse"]);
}

#[test]
fn python_deferred_message_is_received_by_sequence_number() {
    let broker = broker_with(QueueSpec::new("parked"));
    broker.run_python("deferral.py", &["parked"]);
}

#[test]
fn js_deferred_message_is_received_by_sequence_number() {
    let broker = broker_with(QueueSpec::new("parked"));
    broker.run_node("deferral.mjs", &["parked"]);
}

/// A queue and a topic with one subscription, for the requests that name several items.
const QUEUE_AND_TOPIC: &str = r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns",
  "Queues":[{"Name":"atomic","Properties":{}}],
  "Topics":[{"Name":"atomic-topic","Properties":{},"Subscriptions":[{"Name":"all","Properties":{}}]}]}],
  "Logging":{"Type":"File"}}}"#;

#[test]
fn python_multi_item_requests_are_all_or_nothing() {
    let broker = Broker::start(Some(QUEUE_AND_TOPIC), &[]);
    broker.run_python("management_atomicity.py", &["atomic", "atomic-topic"]);
}

#[test]
fn python_peek_pages_are_bounded_in_bytes() {
    let broker = broker_with(QueueSpec::new("pages"));
    broker.run_python("peek_pages.py", &["pages"]);
}
