//! Scenarios driven by the official Python SDK (azure-servicebus 7.15.0), one broker each.
//! What each script checks is described at the top of the script in `python/`.

use busbar_interop::{Broker, DEFAULT_KEY_NAME, QueueSpec, emulator_config};

fn broker_with(queue: QueueSpec, extra_args: &[&str]) -> Broker {
    Broker::start(Some(&emulator_config(&[queue])), extra_args)
}

#[test]
fn python_send_receive_roundtrip() {
    let broker = broker_with(QueueSpec::new("roundtrip"), &[]);
    broker.run_python("send_receive_roundtrip.py", &["roundtrip"]);
}

#[test]
fn python_batch_is_received_in_order() {
    let broker = broker_with(QueueSpec::new("batches"), &[]);
    broker.run_python("batch_fifo.py", &["batches"]);
}

#[test]
fn python_abandon_until_max_delivery_count_dead_letters() {
    let broker = broker_with(QueueSpec::new("poison").max_delivery_count(3), &[]);
    broker.run_python("abandon_to_dead_letter.py", &["poison"]);
}

#[test]
fn python_explicit_dead_letter_keeps_reason_and_description() {
    let broker = broker_with(QueueSpec::new("orders"), &[]);
    broker.run_python("explicit_dead_letter.py", &["orders"]);
}

#[test]
fn python_expired_lock_is_refused_and_message_redelivered() {
    let broker = broker_with(QueueSpec::new("slow").lock_duration("PT5S"), &[]);
    broker.run_python("lock_expiry.py", &["slow"]);
}

#[test]
fn python_receive_and_delete_removes_the_message() {
    let broker = broker_with(QueueSpec::new("once"), &[]);
    broker.run_python("receive_and_delete.py", &["once"]);
}

#[test]
fn python_wrong_key_is_an_authentication_error() {
    let broker = broker_with(QueueSpec::new("guarded"), &[]);
    let wrong = broker.conn_str_with_key(DEFAULT_KEY_NAME, "not-the-configured-key");
    broker.run_python_with("wrong_key.py", &wrong, &["guarded"], &[]);
}

#[test]
fn python_unknown_entity_is_not_found() {
    let broker = broker_with(QueueSpec::new("exists"), &[]);
    broker.run_python("unknown_entity.py", &["does-not-exist"]);
}

#[test]
fn python_entity_status_from_the_config_file_is_enforced() {
    let queues = [
        QueueSpec::new("off").status("Disabled"),
        QueueSpec::new("send-off").status("SendDisabled"),
        QueueSpec::new("receive-off").status("ReceiveDisabled"),
    ];
    let broker = Broker::start(Some(&emulator_config(&queues)), &[]);
    broker.run_python("entity_status.py", &["off", "send-off", "receive-off"]);
}

#[test]
fn python_oversized_message_is_refused_and_sender_survives() {
    let broker = broker_with(QueueSpec::new("sized"), &["--max-message-size", "4096"]);
    broker.run_python("oversized_message.py", &["sized"]);
}

#[test]
fn python_large_messages_round_trip_byte_exact() {
    let broker = broker_with(
        QueueSpec::new("large"),
        &["--max-message-size", &(32 << 20).to_string()],
    );
    broker.run_python("large_messages.py", &["large"]);
}

#[test]
fn python_closing_a_prefetching_receiver_releases_its_messages() {
    let broker = broker_with(QueueSpec::new("prefetch").lock_duration("PT30S"), &[]);
    broker.run_python("release_on_close.py", &["prefetch"]);
}

#[test]
fn python_abandon_increments_delivery_count_by_one() {
    let broker = broker_with(QueueSpec::new("retry"), &[]);
    broker.run_python("abandon_delivery_count.py", &["retry"]);
}
