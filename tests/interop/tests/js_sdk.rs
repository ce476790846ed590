//! Scenarios driven by the official JS SDK (@azure/service-bus 7.9.5), one broker each.
//! What each script checks is described at the top of the script in `js/`.

use busbar_interop::{Broker, DEFAULT_KEY_NAME, QueueSpec, emulator_config};

fn broker_with(queue: QueueSpec, extra_args: &[&str]) -> Broker {
    Broker::start(Some(&emulator_config(&[queue])), extra_args)
}

#[test]
fn js_send_receive_roundtrip() {
    let broker = broker_with(QueueSpec::new("roundtrip"), &[]);
    broker.run_node("send_receive_roundtrip.mjs", &["roundtrip"]);
}

#[test]
fn js_batch_is_received_in_order() {
    let broker = broker_with(QueueSpec::new("batches"), &[]);
    broker.run_node("batch_fifo.mjs", &["batches"]);
}

#[test]
fn js_abandon_until_max_delivery_count_dead_letters() {
    let broker = broker_with(QueueSpec::new("poison").max_delivery_count(3), &[]);
    broker.run_node("abandon_to_dead_letter.mjs", &["poison"]);
}

#[test]
fn js_explicit_dead_letter_keeps_reason_and_description() {
    let broker = broker_with(QueueSpec::new("orders"), &[]);
    broker.run_node("explicit_dead_letter.mjs", &["orders"]);
}

#[test]
fn js_expired_lock_is_refused_and_message_redelivered() {
    let broker = broker_with(QueueSpec::new("slow").lock_duration("PT5S"), &[]);
    broker.run_node("lock_expiry.mjs", &["slow"]);
}

#[test]
fn js_receive_and_delete_removes_the_message() {
    let broker = broker_with(QueueSpec::new("once"), &[]);
    broker.run_node("receive_and_delete.mjs", &["once"]);
}

#[test]
fn js_wrong_key_is_unauthorized_access() {
    let broker = broker_with(QueueSpec::new("guarded"), &[]);
    let wrong = broker.conn_str_with_key(DEFAULT_KEY_NAME, "not-the-configured-key");
    broker.run_node_with("wrong_key.mjs", &wrong, &["guarded"], &[]);
}

#[test]
fn js_unknown_entity_is_not_found() {
    let broker = broker_with(QueueSpec::new("exists"), &[]);
    broker.run_node("unknown_entity.mjs", &["does-not-exist"]);
}

#[test]
fn js_entity_status_from_the_config_file_is_enforced() {
    let queues = [
        QueueSpec::new("off").status("Disabled"),
        QueueSpec::new("send-off").status("SendDisabled"),
        QueueSpec::new("receive-off").status("ReceiveDisabled"),
    ];
    let broker = Broker::start(Some(&emulator_config(&queues)), &[]);
    broker.run_node("entity_status.mjs", &["off", "send-off", "receive-off"]);
}

#[test]
fn js_oversized_message_is_refused_and_sender_survives() {
    let broker = broker_with(QueueSpec::new("sized"), &["--max-message-size", "4096"]);
    broker.run_node("oversized_message.mjs", &["sized"]);
}

#[test]
fn js_abandon_increments_delivery_count_by_one() {
    let broker = broker_with(QueueSpec::new("retry"), &[]);
    broker.run_node("abandon_delivery_count.mjs", &["retry"]);
}
