//! The console's repairs on a queue: resubmitting dead-lettered messages (copy and
//! removal in one append, locked ones left), removing chosen messages, purging in bounded
//! batches. Each leaves a journal that replays to the same queue.

mod common;

use busbar_core::{ConsumerId, NewMessage, Queue, QueueConfig, ReceiveMode, SubQueueKind};
use busbar_store::{MessageState, Record};
use bytes::Bytes;
use common::{MemJournal, assert_counts_exact, assert_replay_matches};

const NOW: i64 = 1_000_000;
const ALICE: ConsumerId = ConsumerId(1);

fn message(text: &str) -> NewMessage {
    NewMessage {
        body: Bytes::from(text.to_owned()),
        message_id: Some(text.into()),
        ..NewMessage::default()
    }
}

/// Takes the next message of `kind` under ALICE's lock.
fn take(queue: &mut Queue, kind: SubQueueKind, journal: &mut MemJournal) -> busbar_core::Delivery {
    queue
        .next_for_delivery(kind, ReceiveMode::PeekLock, ALICE, NOW, journal)
        .expect("receive")
        .expect("a message")
}

/// A queue with duplicate detection on and `count` dead-lettered messages (seqs 1..).
fn with_dead_letters(count: usize) -> (Queue, MemJournal) {
    let config = QueueConfig {
        requires_duplicate_detection: true,
        ..QueueConfig::default()
    };
    let mut queue = Queue::new("orders", config, 10, 11);
    let mut journal = MemJournal::default();
    queue
        .enqueue(
            (0..count).map(|i| message(&format!("m{i}"))),
            NOW,
            &mut journal,
        )
        .expect("enqueue");
    for _ in 0..count {
        let token = take(&mut queue, SubQueueKind::Main, &mut journal)
            .lock
            .expect("locked")
            .token;
        queue
            .dead_letter(
                SubQueueKind::Main,
                token,
                NOW,
                Some("bad"),
                None,
                None,
                &mut journal,
            )
            .expect("dead-letter");
    }
    (queue, journal)
}

#[test]
fn resubmitted_copies_and_their_removals_are_one_append_and_skip_locked_ones() {
    let (mut queue, mut journal) = with_dead_letters(3);
    // A receiver on the dead-letter queue holds seq 1.
    let held = take(&mut queue, SubQueueKind::DeadLetter, &mut journal);
    assert_eq!(held.seq, 1);
    let appends_before = journal.appends.len();
    let copies = [1, 2, 3, 2]
        .into_iter()
        .map(|seq| (seq, message(&format!("m{}", seq - 1))))
        .collect();
    let moved = queue
        .resubmit_dead_lettered(copies, NOW + 1, &mut journal)
        .expect("resubmit");
    assert_eq!(moved, vec![2, 3], "locked and repeated seqs are skipped");
    assert_eq!(journal.appends.len(), appends_before + 1, "one append");
    let last = journal.last_append();
    let enqueues = last
        .iter()
        .filter(|r| matches!(r, Record::Enqueue { .. }))
        .count();
    let removes = last
        .iter()
        .filter(|r| matches!(r, Record::Remove { .. }))
        .count();
    assert_eq!((enqueues, removes), (2, 2), "{last:?}");
    // The copies are there despite duplicate detection having seen their ids.
    let main: Vec<_> = queue.sub(SubQueueKind::Main).page(None, 0, 10);
    assert_eq!(main.len(), 2);
    assert!(main.iter().all(|m| m.meta.delivery_count == 0));
    assert_eq!(queue.sub(SubQueueKind::DeadLetter).len(), 1);
    assert_counts_exact(&queue);
    assert_replay_matches(&queue, &journal);
}

#[test]
fn a_resubmit_the_journal_refuses_changes_nothing() {
    let (mut queue, mut journal) = with_dead_letters(2);
    journal.fail_next_append = true;
    let copies = vec![(2, message("m1"))];
    assert!(
        queue
            .resubmit_dead_lettered(copies, NOW, &mut journal)
            .is_err()
    );
    assert_eq!(queue.sub(SubQueueKind::DeadLetter).len(), 2);
    assert!(queue.sub(SubQueueKind::Main).is_empty());
    assert_replay_matches(&queue, &journal);
}

#[test]
fn removals_and_purges_leave_locked_messages_and_stop_where_asked() {
    let mut queue = Queue::new("orders", QueueConfig::default(), 10, 11);
    let mut journal = MemJournal::default();
    queue
        .enqueue(
            (0..10).map(|i| message(&format!("m{i}"))),
            NOW,
            &mut journal,
        )
        .expect("enqueue");
    let locked = take(&mut queue, SubQueueKind::Main, &mut journal);
    assert_eq!(locked.seq, 1);
    let removed = queue
        .remove_unlocked(SubQueueKind::Main, &[1, 2, 2, 42], None, &mut journal)
        .expect("remove");
    assert_eq!(
        removed,
        vec![2],
        "locked, repeated and unknown seqs are left"
    );
    let removed = queue
        .remove_unlocked(
            SubQueueKind::Main,
            &[3],
            Some(MessageState::Deferred),
            &mut journal,
        )
        .expect("remove");
    assert!(removed.is_empty(), "3 is not deferred");

    let (n, next) = queue
        .purge_batch(SubQueueKind::Main, 0, 8, 3, &mut journal)
        .expect("purge");
    assert_eq!((n, next), (3, Some(6)), "1 is locked: 3, 4 and 5 go");
    let (n, next) = queue
        .purge_batch(SubQueueKind::Main, 6, 8, 3, &mut journal)
        .expect("purge");
    assert_eq!((n, next), (3, None), "9 and 10 came after the purge began");
    let left: Vec<u64> = queue
        .sub(SubQueueKind::Main)
        .page(None, 0, 10)
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(left, vec![1, 9, 10]);
    assert_counts_exact(&queue);
    assert_replay_matches(&queue, &journal);
}
