//! A message whose stored body can't be read back (damaged on disk) still leaves its queue
//! when it is dead-lettered: the dead-letter queue gets a stand-in with its identity and the
//! reason, never the damaged bytes, and the message is not stuck in the queue for good.

mod common;

use busbar_core::{
    ConsumerId, NewMessage, Queue, QueueConfig, REASON_UNREADABLE, ReceiveMode, SubQueueKind,
};
use bytes::Bytes;
use common::{MemJournal, STAND_IN_MARK};

const NOW: i64 = 1_000_000;

#[test]
fn dead_lettering_a_message_whose_body_is_gone_stores_a_stand_in() {
    let config = QueueConfig {
        // Bodies live only in the journal, as they do on disk.
        resident_body_budget_bytes: 0,
        max_delivery_count: 1,
        ..QueueConfig::default()
    };
    let mut queue = Queue::new("orders", config, 10, 11);
    let mut journal = MemJournal::default();
    let sent = (0..2).map(|i| NewMessage {
        body: Bytes::from(format!("message {i}")),
        ..NewMessage::default()
    });
    queue.enqueue(sent, NOW, &mut journal).expect("enqueue");
    journal.bodies.clear();

    for expected_seq in 1..=2 {
        let delivery = queue
            .next_for_delivery(
                SubQueueKind::Main,
                ReceiveMode::PeekLock,
                ConsumerId(1),
                NOW,
                &mut journal,
            )
            .expect("receive")
            .expect("a message");
        assert_eq!(delivery.seq, expected_seq);
        let token = delivery.lock.expect("locked").token;
        // Explicitly, as the broker does when it can't send it; or by running out of
        // deliveries, as an abandon after the max delivery count does.
        if expected_seq == 1 {
            queue
                .dead_letter(
                    SubQueueKind::Main,
                    token,
                    NOW,
                    Some(REASON_UNREADABLE),
                    None,
                    None,
                    &mut journal,
                )
                .expect("dead-letter");
        } else {
            queue
                .abandon(SubQueueKind::Main, token, NOW, None, &mut journal)
                .expect("abandon");
        }
    }
    assert_eq!(queue.sub(SubQueueKind::Main).peek(0).count(), 0);
    let dead: Vec<_> = queue
        .sub(SubQueueKind::DeadLetter)
        .peek(0)
        .map(|m| {
            let body = m
                .body
                .cloned()
                .or_else(|| journal.bodies.get(&m.body_ref).cloned())
                .expect("the stand-in's body is stored");
            String::from_utf8(body.to_vec()).expect("text")
        })
        .collect();
    assert_eq!(dead.len(), 2, "both are in the dead-letter queue: {dead:?}");
    for (stand_in, seq) in dead.iter().zip(1..) {
        // Not MaxDeliveryCountExceeded for the second: its content is what was lost.
        let expected = format!("{STAND_IN_MARK}{REASON_UNREADABLE}|Message {seq} of orders");
        assert!(stand_in.starts_with(&expected), "{stand_in}");
    }
}
