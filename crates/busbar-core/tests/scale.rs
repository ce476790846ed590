//! Delivery stays cheap with many messages queued and many locked: nothing scans locked
//! messages. `BUSBAR_SCALE_MESSAGES` raises the size (e.g. 1000000 in release mode).

mod common;

use std::time::Instant;

use busbar_core::{ConsumerId, NewMessage, Queue, QueueConfig, ReceiveMode, SubQueueKind};
use bytes::Bytes;
use common::{MemJournal, assert_counts_exact};

#[test]
fn many_locked_messages_do_not_slow_delivery() {
    let total: u64 = std::env::var("BUSBAR_SCALE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let mut queue = Queue::new("big", QueueConfig::default(), 1, 2);
    let mut journal = MemJournal::default();
    let body = Bytes::from_static(b"payload");
    let started = Instant::now();
    for chunk in 0..total / 100 {
        let batch = (0..100).map(|_| NewMessage {
            body: body.clone(),
            ..NewMessage::default()
        });
        queue
            .enqueue(batch, chunk as i64, &mut journal)
            .expect("enqueue");
    }
    let enqueued = started.elapsed();

    // Lock half the queue and keep those locks, then receive-and-complete the rest.
    let started = Instant::now();
    for expected in 1..=total / 2 {
        let delivery = queue
            .next_for_delivery(
                SubQueueKind::Main,
                ReceiveMode::PeekLock,
                ConsumerId(1),
                0,
                &mut journal,
            )
            .expect("receive")
            .expect("message");
        assert_eq!(delivery.seq, expected);
    }
    for expected in total / 2 + 1..=total {
        let delivery = queue
            .next_for_delivery(
                SubQueueKind::Main,
                ReceiveMode::PeekLock,
                ConsumerId(2),
                0,
                &mut journal,
            )
            .expect("receive")
            .expect("message");
        assert_eq!(delivery.seq, expected);
        let token = delivery.lock.expect("locked").token;
        queue
            .complete(SubQueueKind::Main, token, 0, &mut journal)
            .expect("complete");
    }
    let delivered = started.elapsed();
    assert_eq!(queue.counts().locked, total / 2);
    assert_eq!(queue.counts().active, total / 2);
    assert_eq!(queue.release_all(ConsumerId(1)), (total / 2) as usize);
    assert_counts_exact(&queue);
    eprintln!("{total} messages: enqueue {enqueued:?}, deliver+settle {delivered:?}");
}
