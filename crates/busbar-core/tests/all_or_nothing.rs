//! Operations on several messages at once (what one `$management` request may name):
//! either every item is valid and all of them change in one journal append, or the
//! operation fails and nothing changes, neither in memory nor in the journal.

mod common;

use busbar_core::{
    ConsumerId, CoreError, Disposition, NewMessage, Queue, QueueConfig, ReceiveMode, SubQueueKind,
};
use busbar_store::{MessageState, Record, Seq};
use bytes::Bytes;
use common::{MemJournal, assert_counts_exact, assert_replay_matches};
use uuid::Uuid;

const MAIN: SubQueueKind = SubQueueKind::Main;
const ALICE: ConsumerId = ConsumerId(1);
const NOW: i64 = 1_000_000;
const MISSING: Seq = 999;

struct Fixture {
    queue: Queue,
    journal: MemJournal,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            queue: Queue::new("orders", QueueConfig::default(), 10, 11),
            journal: MemJournal::default(),
        }
    }

    /// Sends `count` messages and locks them all; returns their lock tokens.
    fn locked(&mut self, count: usize) -> Vec<Uuid> {
        let messages = (0..count).map(|i| NewMessage {
            body: Bytes::from(format!("message {i}")),
            ..NewMessage::default()
        });
        self.queue
            .enqueue(messages, NOW, &mut self.journal)
            .expect("enqueue");
        (0..count)
            .map(|_| {
                self.queue
                    .next_for_delivery(MAIN, ReceiveMode::PeekLock, ALICE, NOW, &mut self.journal)
                    .expect("receive")
                    .and_then(|delivery| delivery.lock)
                    .expect("a locked message")
                    .token
            })
            .collect()
    }

    /// Sends `count` messages and defers them all; returns their sequence numbers.
    fn deferred(&mut self, count: usize) -> Vec<Seq> {
        let first = self.queue.sub(MAIN).last_seq() + 1;
        for token in self.locked(count) {
            self.queue
                .defer(MAIN, token, NOW, None, &mut self.journal)
                .expect("defer");
        }
        (first..first + count as Seq).collect()
    }

    fn states(&self) -> Vec<(Seq, MessageState, bool)> {
        self.queue
            .sub(MAIN)
            .peek(0)
            .map(|m| (m.seq, m.meta.state, m.locked_until_ms.is_some()))
            .collect()
    }

    fn appends(&self) -> usize {
        self.journal.appends.len()
    }
}

#[test]
fn a_stale_token_among_held_ones_settles_nothing() {
    let mut f = Fixture::new();
    let tokens = f.locked(2);
    let before = (f.states(), f.appends());
    let dispositions = [
        Disposition::Complete,
        Disposition::Abandon { edit: None },
        Disposition::Defer { edit: None },
        Disposition::DeadLetter {
            reason: Some("r"),
            description: None,
            edit: None,
        },
    ];
    for disposition in dispositions {
        for request in [
            [tokens[0], Uuid::new_v4()],
            [tokens[0], tokens[0]],
            [Uuid::new_v4(), tokens[1]],
        ] {
            let result = f
                .queue
                .settle_all(MAIN, &request, disposition, NOW, &mut f.journal);
            assert!(matches!(result, Err(CoreError::LockLost)), "{result:?}");
            assert_eq!((f.states(), f.appends()), before, "nothing changed");
        }
    }
    assert_counts_exact(&f.queue);
}

#[test]
fn held_tokens_settle_together_in_one_append() {
    let mut f = Fixture::new();
    let tokens = f.locked(3);
    let appends = f.appends();
    f.queue
        .settle_all(
            MAIN,
            &tokens[..2],
            Disposition::DeadLetter {
                reason: Some("bad"),
                description: Some("both"),
                edit: None,
            },
            NOW,
            &mut f.journal,
        )
        .expect("dead-letter both");
    assert_eq!(f.appends(), appends + 1, "one append");
    let dead: Vec<Seq> = f
        .queue
        .sub(SubQueueKind::DeadLetter)
        .peek(0)
        .map(|m| m.seq)
        .collect();
    assert_eq!(
        dead,
        [1, 2],
        "each took its own dead-letter sequence number"
    );
    assert_eq!(f.states(), [(3, MessageState::Active, true)]);
    assert_counts_exact(&f.queue);
    f.queue
        .settle_all(
            MAIN,
            &tokens[2..],
            Disposition::Complete,
            NOW,
            &mut f.journal,
        )
        .expect("complete the third");
    assert_replay_matches(&f.queue, &f.journal);
}

#[test]
fn receive_and_delete_of_a_missing_deferred_message_removes_none() {
    let mut f = Fixture::new();
    let seqs = f.deferred(2);
    let before = (f.states(), f.appends());
    for request in [[seqs[0], MISSING], [seqs[0], seqs[0]]] {
        let result = f.queue.receive_deferred_all(
            MAIN,
            &request,
            ReceiveMode::ReceiveAndDelete,
            ALICE,
            NOW,
            &mut f.journal,
        );
        assert!(
            matches!(result, Err(CoreError::MessageNotFound(seq)) if seq == request[1]),
            "{result:?}"
        );
        assert_eq!((f.states(), f.appends()), before, "nothing changed");
    }

    let delivered = f
        .queue
        .receive_deferred_all(
            MAIN,
            &[seqs[1], seqs[0]],
            ReceiveMode::ReceiveAndDelete,
            ALICE,
            NOW,
            &mut f.journal,
        )
        .expect("both deferred");
    assert_eq!(
        delivered.iter().map(|d| d.seq).collect::<Vec<_>>(),
        [seqs[1], seqs[0]],
        "in the order asked"
    );
    assert!(
        delivered
            .iter()
            .all(|d| d.body.is_some() && d.lock.is_none())
    );
    assert_eq!(f.appends(), before.1 + 1, "one append");
    assert!(
        f.journal
            .last_append()
            .iter()
            .all(|r| matches!(r, Record::Remove { .. }))
    );
    assert_eq!(f.states(), []);
    assert_replay_matches(&f.queue, &f.journal);
}

#[test]
fn peek_lock_receive_of_a_missing_deferred_message_locks_none() {
    let mut f = Fixture::new();
    let seqs = f.deferred(2);
    let before = f.states();
    let result = f.queue.receive_deferred_all(
        MAIN,
        &[seqs[0], MISSING],
        ReceiveMode::PeekLock,
        ALICE,
        NOW,
        &mut f.journal,
    );
    assert!(matches!(result, Err(CoreError::MessageNotFound(MISSING))));
    assert_eq!(f.states(), before, "no lock left behind");
    let locked = f
        .queue
        .receive_deferred_all(
            MAIN,
            &seqs,
            ReceiveMode::PeekLock,
            ALICE,
            NOW,
            &mut f.journal,
        )
        .expect("both still free");
    assert!(locked.iter().all(|d| d.lock.is_some()));
    assert_counts_exact(&f.queue);
}

#[test]
fn cancelling_a_missing_scheduled_message_cancels_none() {
    let mut f = Fixture::new();
    let scheduled = |body: &'static str| NewMessage {
        body: Bytes::from_static(body.as_bytes()),
        scheduled_at_ms: Some(NOW + 60_000),
        ..NewMessage::default()
    };
    f.queue
        .enqueue([scheduled("a"), scheduled("b")], NOW, &mut f.journal)
        .expect("schedule");
    let before = (f.states(), f.appends());
    for request in [[1, MISSING], [1, 1]] {
        let result = f.queue.cancel_scheduled_all(&request, &mut f.journal);
        assert!(matches!(result, Err(CoreError::MessageNotFound(seq)) if seq == request[1]));
        assert_eq!((f.states(), f.appends()), before, "nothing changed");
    }
    f.queue
        .cancel_scheduled_all(&[2, 1], &mut f.journal)
        .expect("cancel both");
    assert_eq!(f.appends(), before.1 + 1, "one append");
    assert_eq!(f.states(), []);
    assert_replay_matches(&f.queue, &f.journal);
}

#[test]
fn renewing_with_a_stale_token_extends_no_lock() {
    let mut f = Fixture::new();
    let tokens = f.locked(2);
    let locked_until = |f: &Fixture| -> Vec<Option<i64>> {
        f.queue
            .sub(MAIN)
            .peek(0)
            .map(|m| m.locked_until_ms)
            .collect()
    };
    let before = locked_until(&f);
    let later = NOW + 1_000;
    let result = f
        .queue
        .renew_locks(MAIN, &[tokens[0], Uuid::new_v4()], later);
    assert!(matches!(result, Err(CoreError::LockLost)));
    assert_eq!(locked_until(&f), before);
    let renewed = f
        .queue
        .renew_locks(MAIN, &tokens, later)
        .expect("both held");
    assert_eq!(renewed.len(), 2);
    assert!(
        locked_until(&f)
            .iter()
            .all(|until| *until == Some(renewed[0]))
    );
}
