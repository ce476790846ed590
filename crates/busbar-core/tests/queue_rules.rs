mod common;

use busbar_core::{
    Clock, ConsumerId, CoreError, Delivery, ManualClock, NewMessage, Queue, QueueConfig,
    REASON_MAX_DELIVERY, REASON_TTL_EXPIRED, ReceiveMode, SubQueueKind,
};
use busbar_store::{MessageState, Record};
use bytes::Bytes;
use common::{DEAD_LETTER_MARK, MemJournal, assert_counts_exact, assert_replay_matches};

const MAIN: SubQueueKind = SubQueueKind::Main;
const DLQ: SubQueueKind = SubQueueKind::DeadLetter;
const PEEK_LOCK: ReceiveMode = ReceiveMode::PeekLock;
const ALICE: ConsumerId = ConsumerId(1);
const BOB: ConsumerId = ConsumerId(2);

fn message(body: &'static str) -> NewMessage {
    NewMessage {
        body: Bytes::from_static(body.as_bytes()),
        ..NewMessage::default()
    }
}

struct Fixture {
    queue: Queue,
    journal: MemJournal,
    clock: ManualClock,
}

impl Fixture {
    fn new(config: QueueConfig) -> Self {
        Fixture {
            queue: Queue::new("orders", config, 10, 11),
            journal: MemJournal::default(),
            clock: ManualClock::new(1_000_000),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn send(&mut self, bodies: &[&'static str]) -> std::ops::Range<u64> {
        let now = self.now();
        let seqs = self
            .queue
            .enqueue(bodies.iter().map(|b| message(b)), now, &mut self.journal)
            .expect("enqueue");
        assert_counts_exact(&self.queue);
        seqs
    }

    fn receive(
        &mut self,
        kind: SubQueueKind,
        mode: ReceiveMode,
        who: ConsumerId,
    ) -> Option<Delivery> {
        let now = self.now();
        let delivery = self
            .queue
            .next_for_delivery(kind, mode, who, now, &mut self.journal)
            .expect("receive");
        assert_counts_exact(&self.queue);
        delivery
    }

    fn lock(&mut self, kind: SubQueueKind) -> (Delivery, uuid::Uuid) {
        let delivery = self.receive(kind, PEEK_LOCK, ALICE).expect("a message");
        let token = delivery.lock.expect("peek-lock gives a lock").token;
        (delivery, token)
    }

    fn body(&self, delivery: &Delivery) -> Bytes {
        delivery
            .body
            .clone()
            .unwrap_or_else(|| self.journal.body(delivery.body_ref))
    }

    fn abandon(&mut self, kind: SubQueueKind, token: uuid::Uuid) {
        let now = self.now();
        self.queue
            .abandon(kind, token, now, None, &mut self.journal)
            .expect("abandon");
        assert_counts_exact(&self.queue);
    }
}

#[test]
fn delivers_in_fifo_order_with_sequence_numbers_from_one() {
    let mut f = Fixture::new(QueueConfig::default());
    assert_eq!(f.send(&["a", "b"]), 1..3);
    assert_eq!(f.send(&["c"]), 3..4);
    let mut seen = Vec::new();
    while let Some(delivery) = f.receive(MAIN, PEEK_LOCK, ALICE) {
        seen.push((delivery.seq, f.body(&delivery)));
    }
    assert_eq!(
        seen,
        vec![
            (1, Bytes::from("a")),
            (2, Bytes::from("b")),
            (3, Bytes::from("c"))
        ]
    );
    assert_eq!(f.queue.counts().locked, 3);
    assert_eq!(f.queue.counts().active, 3);
}

#[test]
fn batch_enqueue_is_one_append_and_sets_meta() {
    let config = QueueConfig {
        default_ttl_ms: Some(5_000),
        ..QueueConfig::default()
    };
    let mut f = Fixture::new(config);
    let now = f.now();
    let batch = vec![
        NewMessage {
            message_id: Some("m1".into()),
            session_id: Some("s".into()),
            ttl_ms: Some(1_000),
            ..message("short")
        },
        NewMessage {
            ttl_ms: Some(60_000),
            ..message("capped")
        },
        message("default"),
    ];
    f.queue
        .enqueue(batch, now, &mut f.journal)
        .expect("enqueue");
    assert_eq!(f.journal.appends.len(), 1);
    let metas: Vec<_> = f
        .journal
        .last_append()
        .iter()
        .map(|r| match r {
            Record::Enqueue {
                entity, seq, meta, ..
            } => (*entity, *seq, meta.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(metas.len(), 3);
    assert_eq!(metas[0].0, 10);
    assert_eq!(metas[0].2.expires_at_ms, Some(now + 1_000));
    assert_eq!(metas[0].2.message_id.as_deref(), Some("m1"));
    assert_eq!(metas[0].2.session_id.as_deref(), Some("s"));
    assert_eq!(
        metas[1].2.expires_at_ms,
        Some(now + 5_000),
        "queue default caps the ttl"
    );
    assert_eq!(metas[2].2.expires_at_ms, Some(now + 5_000));
    assert!(metas.iter().all(|m| m.2.enqueued_at_ms == now));
    assert_eq!(metas.iter().map(|m| m.1).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn lock_expiry_counts_a_delivery_and_makes_the_message_available() {
    let mut f = Fixture::new(QueueConfig {
        lock_duration_ms: 1_000,
        ..QueueConfig::default()
    });
    f.send(&["a"]);
    let (first, _) = f.lock(MAIN);
    assert_eq!(first.meta.delivery_count, 0);
    assert_eq!(first.lock.map(|l| l.locked_until_ms), Some(f.now() + 1_000));
    assert_eq!(f.queue.next_lock_deadline(), Some(f.now() + 1_000));
    assert!(
        f.receive(MAIN, PEEK_LOCK, BOB).is_none(),
        "locked messages are not redelivered"
    );

    f.clock.advance(999);
    assert_eq!(
        f.queue
            .expire_locks(f.now(), &mut f.journal)
            .expect("sweep"),
        0
    );
    f.clock.advance(1);
    assert_eq!(
        f.queue
            .expire_locks(f.now(), &mut f.journal)
            .expect("sweep"),
        1
    );
    assert_counts_exact(&f.queue);
    assert_eq!(
        f.journal.last_append(),
        &[Record::Update {
            entity: 10,
            seq: 1,
            delivery_count: 1,
            state: MessageState::Active
        }]
    );
    assert_eq!(f.queue.next_lock_deadline(), None);
    let second = f.receive(MAIN, PEEK_LOCK, BOB).expect("available again");
    assert_eq!((second.seq, second.meta.delivery_count), (1, 1));
}

#[test]
fn delivery_sweeps_expired_locks_itself() {
    let mut f = Fixture::new(QueueConfig {
        lock_duration_ms: 1_000,
        ..QueueConfig::default()
    });
    f.send(&["a", "b"]);
    f.lock(MAIN);
    f.clock.advance(1_000);
    let again = f.receive(MAIN, PEEK_LOCK, BOB).expect("message");
    assert_eq!(
        (again.seq, again.meta.delivery_count),
        (1, 1),
        "lowest seq first, counted"
    );
}

#[test]
fn settling_after_lock_expiry_is_lock_lost_even_before_the_sweep() {
    let mut f = Fixture::new(QueueConfig {
        lock_duration_ms: 1_000,
        ..QueueConfig::default()
    });
    f.send(&["a", "b"]);
    let (_, token) = f.lock(MAIN);
    f.clock.advance(1_000);
    let now = f.now();
    let appends = f.journal.appends.len();
    assert!(matches!(
        f.queue.complete(MAIN, token, now, &mut f.journal),
        Err(CoreError::LockLost)
    ));
    assert!(matches!(
        f.queue.abandon(MAIN, token, now, None, &mut f.journal),
        Err(CoreError::LockLost)
    ));
    assert!(matches!(
        f.queue.defer(MAIN, token, now, None, &mut f.journal),
        Err(CoreError::LockLost)
    ));
    assert!(matches!(
        f.queue
            .dead_letter(MAIN, token, now, None, None, None, &mut f.journal),
        Err(CoreError::LockLost)
    ));
    assert!(matches!(
        f.queue.release(MAIN, token, now),
        Err(CoreError::LockLost)
    ));
    assert!(matches!(
        f.queue.renew_lock(MAIN, token, now),
        Err(CoreError::LockLost)
    ));
    assert_eq!(
        f.journal.appends.len(),
        appends,
        "failed settlements write nothing"
    );
    assert_eq!(
        f.queue.counts().locked,
        1,
        "the sweep, not the failed settle, ends the lock"
    );

    // A token one millisecond before expiry still works.
    let (_, token) = f.lock(MAIN);
    f.clock.advance(999);
    let now = f.now();
    f.queue
        .complete(MAIN, token, now, &mut f.journal)
        .expect("still locked");
    assert!(matches!(
        f.queue.complete(MAIN, token, now, &mut f.journal),
        Err(CoreError::LockLost)
    ));
    assert!(matches!(
        f.queue
            .complete(MAIN, uuid::Uuid::new_v4(), now, &mut f.journal),
        Err(CoreError::LockLost)
    ));
}

#[test]
fn complete_removes_the_message() {
    let mut f = Fixture::new(QueueConfig::default());
    f.send(&["a"]);
    let (delivery, token) = f.lock(MAIN);
    let now = f.now();
    f.queue
        .complete(MAIN, token, now, &mut f.journal)
        .expect("complete");
    assert_counts_exact(&f.queue);
    assert_eq!(
        f.journal.last_append(),
        &[Record::Remove {
            entity: 10,
            seq: 1,
            body: delivery.body_ref
        }]
    );
    assert!(f.queue.sub(MAIN).is_empty());
    assert!(f.receive(MAIN, PEEK_LOCK, ALICE).is_none());
}

#[test]
fn abandon_counts_and_dead_letters_at_max_delivery_count() {
    let mut f = Fixture::new(QueueConfig {
        max_delivery_count: 3,
        ..QueueConfig::default()
    });
    f.send(&["poison", "fine"]);
    for attempt in 0..3 {
        let (delivery, token) = f.lock(MAIN);
        assert_eq!((delivery.seq, delivery.meta.delivery_count), (1, attempt));
        f.abandon(MAIN, token);
    }
    let last = f.journal.last_append().to_vec();
    assert_eq!(
        last.len(),
        2,
        "remove and dead-letter enqueue in one append: {last:?}"
    );
    assert!(matches!(
        last[0],
        Record::Remove {
            entity: 10,
            seq: 1,
            ..
        }
    ));
    let Record::Enqueue {
        entity,
        seq,
        meta,
        body,
    } = &last[1]
    else {
        panic!("expected enqueue, got {:?}", last[1]);
    };
    assert_eq!((*entity, *seq, meta.delivery_count), (11, 1, 3));
    let mut expected = b"poison".to_vec();
    expected.extend_from_slice(DEAD_LETTER_MARK);
    expected.extend_from_slice(
        format!("{REASON_MAX_DELIVERY}|Message could not be consumed after 3 delivery attempts.")
            .as_bytes(),
    );
    assert_eq!(body.as_ref(), expected.as_slice());
    let counts = f.queue.counts();
    assert_eq!(
        (counts.active, counts.dead_letter, counts.locked),
        (1, 1, 0)
    );
    let next = f
        .receive(MAIN, PEEK_LOCK, ALICE)
        .expect("the other message");
    assert_eq!(next.seq, 2);
    let dead = f
        .receive(DLQ, PEEK_LOCK, ALICE)
        .expect("dead-lettered message");
    assert_eq!((dead.seq, dead.meta.delivery_count), (1, 3));
    assert_eq!(f.body(&dead).as_ref(), expected.as_slice());
}

#[test]
fn lock_expiry_also_dead_letters_at_max_delivery_count() {
    let mut f = Fixture::new(QueueConfig {
        max_delivery_count: 1,
        lock_duration_ms: 10,
        ..QueueConfig::default()
    });
    f.send(&["a"]);
    f.lock(MAIN);
    f.clock.advance(10);
    assert_eq!(
        f.queue
            .expire_locks(f.now(), &mut f.journal)
            .expect("sweep"),
        1
    );
    assert_counts_exact(&f.queue);
    assert_eq!(
        (f.queue.counts().active, f.queue.counts().dead_letter),
        (0, 1)
    );
}

#[test]
fn release_unlocks_without_counting_or_journaling() {
    let mut f = Fixture::new(QueueConfig::default());
    f.send(&["a"]);
    let appends = f.journal.appends.len();
    for _ in 0..3 {
        let (delivery, token) = f.lock(MAIN);
        assert_eq!(delivery.meta.delivery_count, 0);
        let now = f.now();
        f.queue.release(MAIN, token, now).expect("release");
        assert_counts_exact(&f.queue);
    }
    assert_eq!(f.journal.appends.len(), appends);
}

#[test]
fn receive_and_delete_removes_and_always_returns_the_body() {
    let mut f = Fixture::new(QueueConfig {
        resident_body_budget_bytes: 0,
        ..QueueConfig::default()
    });
    f.send(&["a", "b"]);
    assert_eq!(f.queue.sub(MAIN).resident_bytes(), 0);
    let delivery = f
        .receive(MAIN, ReceiveMode::ReceiveAndDelete, ALICE)
        .expect("message");
    assert_eq!(delivery.seq, 1);
    assert!(delivery.lock.is_none());
    assert_eq!(
        delivery.body.as_deref(),
        Some(&b"a"[..]),
        "read back from the journal"
    );
    assert_eq!(f.journal.reads, 1);
    assert_eq!(
        f.journal.last_append(),
        &[Record::Remove {
            entity: 10,
            seq: 1,
            body: delivery.body_ref
        }]
    );
    assert_eq!(f.queue.sub(MAIN).len(), 1);
    let peek_lock = f.receive(MAIN, PEEK_LOCK, ALICE).expect("message");
    assert_eq!(peek_lock.seq, 2);
    assert!(
        peek_lock.body.is_none(),
        "not resident: the server reads it by ref"
    );
}

#[test]
fn bodies_stay_resident_within_budget() {
    let mut f = Fixture::new(QueueConfig {
        resident_body_budget_bytes: 4,
        ..QueueConfig::default()
    });
    f.send(&["abc", "de", "f"]);
    let resident: Vec<bool> = f
        .queue
        .sub(MAIN)
        .peek(0)
        .map(|m| m.body.is_some())
        .collect();
    assert_eq!(resident, vec![true, false, true]);
    assert_eq!(f.queue.sub(MAIN).resident_bytes(), 4);
    let (_, token) = f.lock(MAIN);
    let now = f.now();
    f.queue
        .complete(MAIN, token, now, &mut f.journal)
        .expect("complete");
    assert_eq!(f.queue.sub(MAIN).resident_bytes(), 1);
}

#[test]
fn dead_letter_queue_is_receivable_completable_and_never_dead_letters_again() {
    let mut f = Fixture::new(QueueConfig {
        max_delivery_count: 1,
        lock_duration_ms: 100,
        ..QueueConfig::default()
    });
    f.send(&["a", "b"]);
    for _ in 0..2 {
        let (_, token) = f.lock(MAIN);
        f.abandon(MAIN, token);
    }
    assert_eq!(f.queue.counts().dead_letter, 2);
    // Abandon and lock expiry on the DLQ only count.
    let (first, token) = f.lock(DLQ);
    assert_eq!((first.seq, first.meta.delivery_count), (1, 1));
    f.abandon(DLQ, token);
    let (again, _) = f.lock(DLQ);
    assert_eq!((again.seq, again.meta.delivery_count), (1, 2));
    f.clock.advance(100);
    f.queue
        .expire_locks(f.now(), &mut f.journal)
        .expect("sweep");
    assert_counts_exact(&f.queue);
    let (again, token) = f.lock(DLQ);
    assert_eq!((again.seq, again.meta.delivery_count), (1, 3));
    assert_eq!(f.queue.counts().dead_letter, 2);
    let now = f.now();
    assert!(matches!(
        f.queue
            .dead_letter(DLQ, token, now, None, None, None, &mut f.journal),
        Err(CoreError::NotAllowed(_))
    ));
    f.queue
        .complete(DLQ, token, now, &mut f.journal)
        .expect("complete on the DLQ");
    assert!(matches!(
        f.journal.last_append(),
        [Record::Remove {
            entity: 11,
            seq: 1,
            ..
        }]
    ));
    assert_eq!(f.queue.counts().dead_letter, 1);
    assert_counts_exact(&f.queue);
    // A token from one subqueue means nothing in the other.
    let (_, token) = f.lock(DLQ);
    assert!(matches!(
        f.queue.complete(MAIN, token, now, &mut f.journal),
        Err(CoreError::LockLost)
    ));
}

#[test]
fn explicit_dead_letter_applies_reason_edit_and_keeps_delivery_count() {
    let mut f = Fixture::new(QueueConfig::default());
    f.send(&["a"]);
    let (_, token) = f.lock(MAIN);
    f.abandon(MAIN, token);
    let (_, token) = f.lock(MAIN);
    let now = f.now();
    let edit = |body: &Bytes| {
        let mut edited = body.to_vec();
        edited.extend_from_slice(b"+props");
        Bytes::from(edited)
    };
    f.queue
        .dead_letter(
            MAIN,
            token,
            now,
            Some("why"),
            None,
            Some(&edit),
            &mut f.journal,
        )
        .expect("dead-letter");
    assert_counts_exact(&f.queue);
    let dead = f.receive(DLQ, PEEK_LOCK, ALICE).expect("in the DLQ");
    assert_eq!(dead.meta.delivery_count, 1);
    assert_eq!(dead.meta.expires_at_ms, None);
    assert_eq!(f.body(&dead).as_ref(), b"a+props|DL|why|-");
}

#[test]
fn abandon_with_edit_rewrites_the_body_under_the_same_seq() {
    let mut f = Fixture::new(QueueConfig::default());
    f.send(&["a"]);
    let (first, token) = f.lock(MAIN);
    let now = f.now();
    let edit = |_: &Bytes| Bytes::from_static(b"edited");
    f.queue
        .abandon(MAIN, token, now, Some(&edit), &mut f.journal)
        .expect("abandon");
    let last = f.journal.last_append().to_vec();
    assert!(
        matches!(last[0], Record::Remove { entity: 10, seq: 1, body } if body == first.body_ref)
    );
    assert!(
        matches!(&last[1], Record::Enqueue { entity: 10, seq: 1, meta, .. } if meta.delivery_count == 1)
    );
    let again = f.receive(MAIN, PEEK_LOCK, ALICE).expect("message");
    assert_eq!((again.seq, again.meta.delivery_count), (1, 1));
    assert_eq!(f.body(&again).as_ref(), b"edited");
    assert_replay_matches(&f.queue, &f.journal);
}

#[test]
fn deferred_messages_are_only_received_by_sequence_number() {
    let mut f = Fixture::new(QueueConfig::default());
    f.send(&["a", "b"]);
    let (deferred, token) = f.lock(MAIN);
    let now = f.now();
    f.queue
        .defer(MAIN, token, now, None, &mut f.journal)
        .expect("defer");
    assert_eq!(
        f.journal.last_append(),
        &[Record::Update {
            entity: 10,
            seq: 1,
            delivery_count: 0,
            state: MessageState::Deferred
        }]
    );
    assert_counts_exact(&f.queue);
    assert_eq!(f.queue.counts().deferred, 1);
    let (next, _) = f.lock(MAIN);
    assert_eq!(next.seq, 2);
    assert!(f.receive(MAIN, PEEK_LOCK, ALICE).is_none());

    assert!(matches!(
        f.queue
            .receive_deferred(MAIN, 2, PEEK_LOCK, ALICE, now, &mut f.journal),
        Err(CoreError::MessageNotFound(2))
    ));
    let got = f
        .queue
        .receive_deferred(MAIN, deferred.seq, PEEK_LOCK, ALICE, now, &mut f.journal)
        .expect("deferred message");
    assert_eq!(got.meta.state, MessageState::Deferred);
    assert_counts_exact(&f.queue);
    assert!(
        matches!(
            f.queue
                .receive_deferred(MAIN, 1, PEEK_LOCK, BOB, now, &mut f.journal),
            Err(CoreError::MessageNotFound(1))
        ),
        "already locked"
    );
    let token = got.lock.expect("locked").token;
    f.abandon(MAIN, token);
    assert_eq!(f.queue.counts().deferred, 1, "abandon leaves it deferred");
    let got = f
        .queue
        .receive_deferred(MAIN, 1, PEEK_LOCK, ALICE, now, &mut f.journal)
        .expect("again");
    assert_eq!(got.meta.delivery_count, 1);
    f.queue
        .complete(MAIN, got.lock.expect("locked").token, now, &mut f.journal)
        .expect("complete");
    assert_eq!(f.queue.counts().deferred, 0);
    assert_counts_exact(&f.queue);
}

#[test]
fn expired_messages_are_dropped_or_dead_lettered_when_met() {
    for dead_letter in [false, true] {
        let mut f = Fixture::new(QueueConfig {
            dead_lettering_on_expiration: dead_letter,
            ..QueueConfig::default()
        });
        let now = f.now();
        let batch = vec![
            NewMessage {
                ttl_ms: Some(100),
                ..message("old1")
            },
            NewMessage {
                ttl_ms: Some(100),
                ..message("old2")
            },
            message("fresh"),
        ];
        f.queue
            .enqueue(batch, now, &mut f.journal)
            .expect("enqueue");
        f.clock.advance(100);
        let delivery = f.receive(MAIN, PEEK_LOCK, ALICE).expect("the fresh one");
        assert_eq!(delivery.seq, 3);
        let removed = f
            .journal
            .last_append()
            .iter()
            .filter(|r| matches!(r, Record::Remove { entity: 10, .. }))
            .count();
        assert_eq!(removed, 2);
        assert_eq!(
            f.queue.counts().dead_letter,
            if dead_letter { 2 } else { 0 }
        );
        if dead_letter {
            let dead = f.receive(DLQ, PEEK_LOCK, ALICE).expect("dead-lettered");
            let body = f.body(&dead);
            let text = String::from_utf8_lossy(&body);
            assert!(text.starts_with("old1|DL|"), "{text}");
            assert!(text.contains(REASON_TTL_EXPIRED), "{text}");
        }
        assert_replay_matches(&f.queue, &f.journal);
    }
}

#[test]
fn sweep_expires_idle_messages_but_waits_for_locks_and_schedules() {
    for dead_letter in [false, true] {
        let mut f = Fixture::new(QueueConfig {
            dead_lettering_on_expiration: dead_letter,
            ..QueueConfig::default()
        });
        let now = f.now();
        let batch = vec![
            NewMessage {
                ttl_ms: Some(100),
                ..message("locked")
            },
            NewMessage {
                ttl_ms: Some(100),
                ..message("idle")
            },
            NewMessage {
                ttl_ms: Some(100),
                scheduled_at_ms: Some(now + 10_000),
                ..message("scheduled")
            },
            message("forever"),
        ];
        f.queue
            .enqueue(batch, now, &mut f.journal)
            .expect("enqueue");
        let (_, token) = f.lock(MAIN);
        assert_eq!(
            f.queue.next_deadline(),
            Some(now + 100),
            "expiry is a deadline"
        );
        f.clock.advance(50);
        let at = f.now();
        assert_eq!(
            f.queue.expire_messages(at, &mut f.journal).expect("sweep"),
            0
        );
        f.clock.advance(50);
        let at = f.now();
        assert_eq!(
            f.queue.expire_messages(at, &mut f.journal).expect("sweep"),
            1,
            "only the idle one: locked and scheduled messages wait"
        );
        assert_counts_exact(&f.queue);
        assert_eq!(f.queue.counts().active, 2, "locked + forever");
        assert_eq!(f.queue.counts().scheduled, 1);
        assert_eq!(
            f.queue.counts().dead_letter,
            if dead_letter { 1 } else { 0 }
        );
        f.abandon(MAIN, token);
        let at = f.now();
        assert_eq!(
            f.queue.expire_messages(at, &mut f.journal).expect("sweep"),
            1,
            "the abandoned one expires once unlocked"
        );
        assert_eq!(f.queue.counts().active, 1);
        assert_replay_matches(&f.queue, &f.journal);
    }
}

fn with_id(body: &'static str, id: &str) -> NewMessage {
    NewMessage {
        message_id: Some(id.into()),
        ..message(body)
    }
}

#[test]
fn duplicate_detection_drops_repeats_within_the_window_and_survives_replay() {
    let mut f = Fixture::new(QueueConfig {
        requires_duplicate_detection: true,
        duplicate_detection_window_ms: 1_000,
        ..QueueConfig::default()
    });
    let now = f.now();
    let seqs = f
        .queue
        .enqueue(
            vec![
                with_id("a", "m1"),
                with_id("b", "m2"),
                with_id("a-again", "m1"),
            ],
            now,
            &mut f.journal,
        )
        .expect("enqueue");
    assert_eq!(seqs, 1..3, "the repeat inside one batch is dropped");
    f.clock.advance(500);
    let now = f.now();
    let seqs = f
        .queue
        .enqueue(
            vec![with_id("b-again", "m2"), message("no id")],
            now,
            &mut f.journal,
        )
        .expect("enqueue");
    assert_eq!(
        seqs,
        3..4,
        "a repeat within the window is dropped; no id is never a repeat"
    );
    assert_eq!(f.queue.counts().active, 3);
    assert_eq!(f.queue.duplicate_window_len(), 2);

    // The window survives a restart.
    let restored = assert_replay_matches(&f.queue, &f.journal);
    assert_eq!(restored.duplicate_window_len(), 2);
    let mut restored = restored;
    let seqs = restored
        .enqueue(vec![with_id("a-third", "m1")], now, &mut f.journal)
        .expect("enqueue");
    assert!(seqs.is_empty(), "still a duplicate after replay");

    // Once out of the window the id is new again, and old markers are removed.
    f.clock.advance(1_000);
    let now = f.now();
    let seqs = f
        .queue
        .enqueue(vec![with_id("a-later", "m1")], now, &mut f.journal)
        .expect("enqueue");
    assert_eq!(seqs, 4..5);
    assert_eq!(f.queue.duplicate_window_len(), 1, "m2 left the window");
    let removed_markers = f
        .journal
        .last_append()
        .iter()
        .filter(|r| matches!(r, Record::Remove { entity, .. } if *entity == busbar_core::entity_id::marker_entity(10)))
        .count();
    assert_eq!(removed_markers, 2, "both old markers (m1, m2) are removed");
    let restored = assert_replay_matches(&f.queue, &f.journal);
    assert_eq!(restored.duplicate_window_len(), 1);
}

#[test]
fn transfer_dead_letter_queue_holds_unforwardable_messages() {
    let mut f = Fixture::new(QueueConfig::default());
    let now = f.now();
    let seqs = f
        .queue
        .dead_letter_new(
            SubQueueKind::TransferDeadLetter,
            vec![with_id("stuck", "t1")],
            now,
            "TransferFailure",
            "too many hops",
            &mut f.journal,
        )
        .expect("transfer dead-letter");
    assert_eq!(seqs, 1..2);
    assert_eq!(f.queue.counts().transfer_dead_letter, 1);
    assert_eq!(f.queue.counts().active, 0, "the main stream is untouched");
    assert_eq!(
        f.queue.sub(SubQueueKind::TransferDeadLetter).entity(),
        12,
        "the id after the dead-letter entity"
    );
    let restored = assert_replay_matches(&f.queue, &f.journal);
    assert_eq!(restored.counts().transfer_dead_letter, 1);
    let delivery = f
        .receive(SubQueueKind::TransferDeadLetter, PEEK_LOCK, ALICE)
        .expect("receivable");
    let text = String::from_utf8_lossy(&f.body(&delivery)).into_owned();
    assert!(text.contains("TransferFailure"), "{text}");
    let now = f.now();
    f.queue
        .complete(
            SubQueueKind::TransferDeadLetter,
            delivery.lock.expect("locked").token,
            now,
            &mut f.journal,
        )
        .expect("complete");
    assert_eq!(f.queue.counts().transfer_dead_letter, 0);
}

#[test]
fn release_all_frees_only_that_consumers_locks_without_counting() {
    let mut f = Fixture::new(QueueConfig::default());
    f.send(&["a", "b", "c"]);
    f.receive(MAIN, PEEK_LOCK, ALICE).expect("a");
    f.receive(MAIN, PEEK_LOCK, BOB).expect("b");
    f.receive(MAIN, PEEK_LOCK, ALICE).expect("c");
    assert_eq!(f.queue.release_all(ALICE), 2);
    assert_counts_exact(&f.queue);
    assert_eq!(f.queue.counts().locked, 1);
    let again = f.receive(MAIN, PEEK_LOCK, BOB).expect("a again");
    assert_eq!((again.seq, again.meta.delivery_count), (1, 0));
    assert_eq!(f.queue.release_all(ALICE), 0);
}

#[test]
fn renew_lock_extends_the_deadline() {
    let mut f = Fixture::new(QueueConfig {
        lock_duration_ms: 1_000,
        ..QueueConfig::default()
    });
    f.send(&["a"]);
    let (_, token) = f.lock(MAIN);
    f.clock.advance(900);
    let until = f.queue.renew_lock(MAIN, token, f.now()).expect("renew");
    assert_eq!(until, f.now() + 1_000);
    assert_eq!(f.queue.next_lock_deadline(), Some(until));
    f.clock.advance(500);
    assert_eq!(
        f.queue
            .expire_locks(f.now(), &mut f.journal)
            .expect("sweep"),
        0
    );
    let now = f.now();
    f.queue
        .complete(MAIN, token, now, &mut f.journal)
        .expect("still locked");
}

#[test]
fn scheduled_messages_appear_at_their_time_and_can_be_cancelled() {
    let mut f = Fixture::new(QueueConfig::default());
    let now = f.now();
    let batch = vec![
        NewMessage {
            scheduled_at_ms: Some(now + 500),
            ..message("later")
        },
        NewMessage {
            scheduled_at_ms: Some(now + 500),
            ..message("cancelled")
        },
        NewMessage {
            scheduled_at_ms: Some(now - 1),
            ..message("past")
        },
    ];
    f.queue
        .enqueue(batch, now, &mut f.journal)
        .expect("enqueue");
    assert_counts_exact(&f.queue);
    assert_eq!(f.queue.counts().scheduled, 2);
    assert_eq!(f.queue.next_deadline(), Some(now + 500));
    let past = f
        .receive(MAIN, PEEK_LOCK, ALICE)
        .expect("past schedule is active at once");
    assert_eq!(past.seq, 3);
    assert!(f.receive(MAIN, PEEK_LOCK, ALICE).is_none());
    f.queue.cancel_scheduled(2, &mut f.journal).expect("cancel");
    assert!(matches!(
        f.queue.cancel_scheduled(2, &mut f.journal),
        Err(CoreError::MessageNotFound(2))
    ));
    assert!(matches!(
        f.queue.cancel_scheduled(3, &mut f.journal),
        Err(CoreError::MessageNotFound(3))
    ));
    f.clock.advance(500);
    let later = f.receive(MAIN, PEEK_LOCK, ALICE).expect("now active");
    assert_eq!((later.seq, later.meta.state), (1, MessageState::Active));
    assert_eq!(f.queue.counts().scheduled, 0);
    assert_replay_matches(&f.queue, &f.journal);
}

#[test]
fn a_failed_append_changes_nothing() {
    let mut f = Fixture::new(QueueConfig {
        max_delivery_count: 1,
        ..QueueConfig::default()
    });
    f.send(&["a"]);
    let now = f.now();
    f.journal.fail_next_append = true;
    assert!(matches!(
        f.queue.enqueue([message("x")], now, &mut f.journal),
        Err(CoreError::Store(_))
    ));
    assert_eq!(f.queue.sub(MAIN).last_seq(), 1);
    let (_, token) = f.lock(MAIN);
    f.journal.fail_next_append = true;
    assert!(matches!(
        f.queue.abandon(MAIN, token, now, None, &mut f.journal),
        Err(CoreError::Store(_))
    ));
    assert_eq!(f.queue.counts().locked, 1);
    assert_eq!(f.queue.counts().dead_letter, 0);
    f.queue
        .abandon(MAIN, token, now, None, &mut f.journal)
        .expect("retry works");
    assert_eq!(f.queue.counts().dead_letter, 1);
    assert_replay_matches(&f.queue, &f.journal);
}

#[test]
fn restore_rebuilds_state_without_locks_and_keeps_seqs_moving_forward() {
    let mut f = Fixture::new(QueueConfig {
        max_delivery_count: 2,
        ..QueueConfig::default()
    });
    f.send(&["a", "b", "c", "d", "e"]);
    let (_, token) = f.lock(MAIN); // 1: abandoned twice -> DLQ
    f.abandon(MAIN, token);
    let (_, token) = f.lock(MAIN);
    f.abandon(MAIN, token);
    let (_, token) = f.lock(MAIN); // 2: deferred
    let now = f.now();
    f.queue
        .defer(MAIN, token, now, None, &mut f.journal)
        .expect("defer");
    let (_, token) = f.lock(MAIN); // 3: abandoned once
    f.abandon(MAIN, token);
    let (_, token) = f.lock(MAIN); // 3 again: still locked at "crash"
    let _ = token;
    let (_, token) = f.lock(MAIN); // 4: completed
    f.queue
        .complete(MAIN, token, now, &mut f.journal)
        .expect("complete");
    f.send(&["f"]);
    let (_, token) = f.lock(MAIN); // 5, kept
    let _ = token;
    let (_, token) = f.lock(MAIN); // 6: completed, so the highest seq is gone
    f.queue
        .complete(MAIN, token, now, &mut f.journal)
        .expect("complete");

    let mut restored = assert_replay_matches(&f.queue, &f.journal);
    let counts = restored.counts();
    assert_eq!(
        (
            counts.active,
            counts.deferred,
            counts.locked,
            counts.dead_letter
        ),
        (2, 1, 0, 1)
    );
    assert_eq!(restored.sub(MAIN).last_seq(), 6);
    let first = restored
        .next_for_delivery(MAIN, PEEK_LOCK, ALICE, now, &mut f.journal)
        .expect("receive")
        .expect("message 3 is unlocked after restart");
    assert_eq!((first.seq, first.meta.delivery_count), (3, 1));
    let seqs = restored
        .enqueue([message("g")], now, &mut f.journal)
        .expect("enqueue");
    assert_eq!(seqs, 7..8);
}
