//! The size cap (`MaxSizeInMegabytes`): new messages that would take a queue or topic
//! beyond it are refused as a whole and change nothing; everything already stored can still
//! be received and settled, and what leaves the entity makes room again.

mod common;

use std::collections::HashMap;

use busbar_core::topic::{Topic, TopicConfig};
use busbar_core::{
    ConsumerId, CoreError, NewMessage, Queue, QueueConfig, ReceiveMode, SubQueueKind,
};
use bytes::Bytes;
use common::{MemJournal, assert_counts_exact, assert_replay_matches};

const MAIN: SubQueueKind = SubQueueKind::Main;
const ALICE: ConsumerId = ConsumerId(1);
const NOW: i64 = 1_000_000;
/// Bytes of each test message's body.
const BODY: usize = 30;
/// Room for three messages, not four.
const CAP: u64 = 100;

fn message() -> NewMessage {
    NewMessage {
        body: Bytes::from(vec![b'x'; BODY]),
        ..NewMessage::default()
    }
}

fn capped() -> Queue {
    let config = QueueConfig {
        max_size_bytes: Some(CAP),
        ..QueueConfig::default()
    };
    Queue::new("small", config, 10, 11)
}

/// The size recomputed from the stored messages of every subqueue.
fn recounted_size(queue: &Queue) -> u64 {
    SubQueueKind::ALL
        .iter()
        .flat_map(|&kind| queue.sub(kind).peek(0))
        .map(|m| u64::from(m.body_ref.len))
        .sum()
}

/// Locks the next available message; returns its lock token.
fn lock_next(queue: &mut Queue, journal: &mut MemJournal) -> uuid::Uuid {
    queue
        .next_for_delivery(MAIN, ReceiveMode::PeekLock, ALICE, NOW, journal)
        .expect("receive")
        .and_then(|d| d.lock)
        .expect("locked")
        .token
}

fn assert_full(queue: &mut Queue, journal: &mut MemJournal) {
    let appends = journal.appends.len();
    let last_seq = queue.sub(MAIN).last_seq();
    let result = queue.enqueue([message()], NOW, journal);
    match result {
        Err(CoreError::QuotaExceeded {
            entity,
            size_bytes,
            max_size_bytes,
        }) => {
            assert_eq!(entity, "small");
            assert_eq!(size_bytes, queue.size_bytes());
            assert_eq!(max_size_bytes, CAP);
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(journal.appends.len(), appends, "nothing journaled");
    assert_eq!(
        queue.sub(MAIN).last_seq(),
        last_seq,
        "no sequence number used"
    );
}

#[test]
fn a_full_queue_refuses_new_messages_until_some_leave() {
    let mut queue = capped();
    let mut journal = MemJournal::default();
    let batch = || [message(), message()];
    queue.enqueue(batch(), NOW, &mut journal).expect("two fit");
    let refused = queue.enqueue(batch(), NOW, &mut journal);
    assert!(
        matches!(refused, Err(CoreError::QuotaExceeded { .. })),
        "a batch that does not fit is refused whole: {refused:?}"
    );
    assert_eq!(queue.counts().active, 2);
    queue
        .enqueue([message()], NOW, &mut journal)
        .expect("a third fits");
    assert_eq!(queue.size_bytes(), 3 * BODY as u64);
    assert_full(&mut queue, &mut journal);

    // Settling works on a full queue; a completion makes room for one.
    let first = lock_next(&mut queue, &mut journal);
    queue
        .complete(MAIN, first, NOW, &mut journal)
        .expect("complete on a full queue");
    queue
        .enqueue([message()], NOW, &mut journal)
        .expect("room for one");
    assert_full(&mut queue, &mut journal);

    // Dead-lettered messages still count; receive-and-delete frees their room.
    let second = lock_next(&mut queue, &mut journal);
    queue
        .dead_letter(MAIN, second, NOW, Some("r"), None, None, &mut journal)
        .expect("dead-letter on a full queue");
    assert_full(&mut queue, &mut journal);
    queue
        .next_for_delivery(
            SubQueueKind::DeadLetter,
            ReceiveMode::ReceiveAndDelete,
            ALICE,
            NOW,
            &mut journal,
        )
        .expect("receive the dead-lettered one")
        .expect("there is one");
    queue
        .enqueue([message()], NOW, &mut journal)
        .expect("room again");
    assert_eq!(queue.size_bytes(), recounted_size(&queue));
    assert_counts_exact(&queue);

    let restored = assert_replay_matches(&queue, &journal);
    assert_eq!(
        restored.size_bytes(),
        queue.size_bytes(),
        "size after replay"
    );
}

#[test]
fn scheduled_and_deferred_messages_count_and_rewritten_bodies_are_recounted() {
    let mut queue = capped();
    let mut journal = MemJournal::default();
    let scheduled = NewMessage {
        scheduled_at_ms: Some(NOW + 60_000),
        ..message()
    };
    queue
        .enqueue([scheduled, message(), message()], NOW, &mut journal)
        .expect("three fit");
    let token = lock_next(&mut queue, &mut journal);
    let shorter = |_: &Bytes| Bytes::from_static(b"short");
    queue
        .defer(MAIN, token, NOW, Some(&shorter), &mut journal)
        .expect("defer with a rewritten body");
    assert_eq!(queue.counts().scheduled, 1);
    assert_eq!(queue.counts().deferred, 1);
    assert_eq!(queue.size_bytes(), 2 * BODY as u64 + 5);
    assert_eq!(queue.size_bytes(), recounted_size(&queue));
    queue
        .enqueue([message()], NOW, &mut journal)
        .expect("the shorter body made room");
    assert_full(&mut queue, &mut journal);
}

#[test]
fn a_topic_refuses_what_would_take_it_beyond_its_cap() {
    let config = TopicConfig {
        max_size_bytes: Some(CAP),
        ..TopicConfig::default()
    };
    let topic = Topic::restore("small-topic", config, 20, &HashMap::new(), []);
    let batch = [message(), message()];
    topic
        .ensure_room(CAP - 2 * BODY as u64, &batch)
        .expect("fits exactly");
    let refused = topic.ensure_room(CAP - 2 * BODY as u64 + 1, &batch);
    assert!(
        matches!(&refused, Err(CoreError::QuotaExceeded { entity, .. }) if entity == "small-topic"),
        "{refused:?}"
    );
    let uncapped = Topic::restore("t", TopicConfig::default(), 20, &HashMap::new(), []);
    uncapped
        .ensure_room(u64::MAX, &batch)
        .expect("no cap by default");
}
