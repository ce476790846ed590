//! Random operation sequences against a queue, checking after every step that each
//! message is in exactly one place, counts match a recount, sequence numbers are never
//! reused, delivery is FIFO, and the journaled records replay to the same state.

mod common;

use std::collections::{HashMap, HashSet};

use busbar_core::{
    ConsumerId, CoreError, Delivery, NewMessage, Queue, QueueConfig, ReceiveMode, SubQueueKind,
};
use busbar_store::{EntityId, MessageState, Record, Seq};
use bytes::Bytes;
use common::{MemJournal, assert_counts_exact, assert_replay_matches};
use proptest::prelude::*;
use uuid::Uuid;

const MAIN: SubQueueKind = SubQueueKind::Main;
const DLQ: SubQueueKind = SubQueueKind::DeadLetter;

#[derive(Debug, Clone)]
enum Op {
    Send(Vec<(Option<i64>, Option<i64>)>),
    Receive {
        dead_letter: bool,
        delete: bool,
        consumer: u64,
    },
    Settle {
        pick: usize,
        how: u8,
    },
    ReceiveDeferred {
        dead_letter: bool,
        seq: Seq,
        delete: bool,
    },
    Renew {
        pick: usize,
    },
    Advance(i64),
    ExpireLocks,
    ReleaseAll(u64),
    ActivateScheduled,
    CancelScheduled(Seq),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(
            (prop::option::of(1i64..300), prop::option::of(-50i64..200)),
            1..4
        )
        .prop_map(Op::Send),
        4 => (any::<bool>(), any::<bool>(), 0u64..3)
            .prop_map(|(dead_letter, delete, consumer)| Op::Receive { dead_letter, delete, consumer }),
        4 => (any::<usize>(), 0u8..6).prop_map(|(pick, how)| Op::Settle { pick, how }),
        1 => (any::<bool>(), 1u64..20, any::<bool>())
            .prop_map(|(dead_letter, seq, delete)| Op::ReceiveDeferred { dead_letter, seq, delete }),
        1 => any::<usize>().prop_map(|pick| Op::Renew { pick }),
        2 => (1i64..150).prop_map(Op::Advance),
        1 => Just(Op::ExpireLocks),
        1 => (0u64..3).prop_map(Op::ReleaseAll),
        1 => Just(Op::ActivateScheduled),
        1 => (1u64..20).prop_map(Op::CancelScheduled),
        1 => Just(Op::Restart),
    ]
}

fn config() -> impl Strategy<Value = QueueConfig> {
    (
        1u32..4,
        10i64..100,
        any::<bool>(),
        prop::option::of(50i64..500),
        0u64..64,
    )
        .prop_map(
            |(
                max_delivery_count,
                lock_duration_ms,
                dead_lettering_on_expiration,
                default_ttl_ms,
                budget,
            )| {
                QueueConfig {
                    max_delivery_count,
                    lock_duration_ms,
                    dead_lettering_on_expiration,
                    default_ttl_ms,
                    resident_body_budget_bytes: budget,
                    ..QueueConfig::default()
                }
            },
        )
}

struct Harness {
    queue: Queue,
    journal: MemJournal,
    now: i64,
    next_id: u64,
    /// Messages the test itself consumed: completed, received-and-deleted, cancelled.
    consumed: HashSet<u64>,
    /// When each message expires, if it does.
    expiry: HashMap<u64, i64>,
    /// Locks handed out (possibly stale): subqueue, token, message id.
    tokens: Vec<(SubQueueKind, Uuid, u64)>,
}

fn id_of(body: &Bytes) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&body[..8]);
    u64::from_be_bytes(prefix)
}

impl Harness {
    fn body(&self, delivery: &Delivery) -> Bytes {
        delivery
            .body
            .clone()
            .unwrap_or_else(|| self.journal.body(delivery.body_ref))
    }

    /// What the next plain delivery from `kind` must be, computed from a peek.
    fn expected_next(&self, kind: SubQueueKind) -> Option<Seq> {
        let config = self.queue.config();
        let waiting = self.queue.sub(kind).peek(0).find_map(|m| {
            let free = match m.locked_until_ms {
                None => true,
                Some(until) => {
                    until <= self.now
                        && !(kind == MAIN && m.meta.delivery_count + 1 >= config.max_delivery_count)
                }
            };
            let active = match m.meta.state {
                MessageState::Active => true,
                MessageState::Scheduled => {
                    kind == MAIN && m.meta.scheduled_at_ms.is_some_and(|at| at <= self.now)
                }
                MessageState::Deferred => false,
            };
            let expired = m.meta.expires_at_ms.is_some_and(|at| at <= self.now);
            (free && active && !expired).then_some(m.seq)
        });
        // Receiving first sweeps expired locks, which may move main-stream messages that
        // hit the max delivery count into the dead-letter queue, behind what is there.
        let swept_in = kind == DLQ
            && self.queue.sub(MAIN).peek(0).any(|m| {
                m.locked_until_ms.is_some_and(|until| until <= self.now)
                    && m.meta.delivery_count + 1 >= config.max_delivery_count
            });
        waiting.or_else(|| swept_in.then(|| self.queue.sub(DLQ).last_seq() + 1))
    }

    fn note_delivery(&mut self, kind: SubQueueKind, delivery: &Delivery) {
        let id = id_of(&self.body(delivery));
        match delivery.lock {
            Some(lock) => self.tokens.push((kind, lock.token, id)),
            None => {
                assert!(
                    delivery.body.is_some(),
                    "receive-and-delete carries its body"
                );
                assert!(self.consumed.insert(id), "message {id} consumed twice");
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Send(messages) => {
                let batch: Vec<NewMessage> = messages
                    .iter()
                    .map(|(ttl_ms, scheduled_in)| {
                        let id = self.next_id;
                        self.next_id += 1;
                        let expires = match (*ttl_ms, self.queue.config().default_ttl_ms) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        if let Some(ttl) = expires {
                            self.expiry.insert(id, now + ttl);
                        }
                        NewMessage {
                            body: Bytes::copy_from_slice(&id.to_be_bytes()),
                            ttl_ms: *ttl_ms,
                            scheduled_at_ms: scheduled_in.map(|d| now + d),
                            ..NewMessage::default()
                        }
                    })
                    .collect();
                let before = self.queue.sub(MAIN).last_seq();
                let seqs = self
                    .queue
                    .enqueue(batch, now, &mut self.journal)
                    .expect("enqueue");
                assert_eq!(seqs, before + 1..before + 1 + messages.len() as u64);
            }
            Op::Receive {
                dead_letter,
                delete,
                consumer,
            } => {
                let kind = if *dead_letter { DLQ } else { MAIN };
                let mode = if *delete {
                    ReceiveMode::ReceiveAndDelete
                } else {
                    ReceiveMode::PeekLock
                };
                let expected = self.expected_next(kind);
                let delivery = self
                    .queue
                    .next_for_delivery(kind, mode, ConsumerId(*consumer), now, &mut self.journal)
                    .expect("receive");
                assert_eq!(
                    delivery.as_ref().map(|d| d.seq),
                    expected,
                    "FIFO from {kind:?}"
                );
                if let Some(delivery) = delivery {
                    self.note_delivery(kind, &delivery);
                }
            }
            Op::Settle { pick, how } => {
                if self.tokens.is_empty() {
                    return;
                }
                let index = pick % self.tokens.len();
                let (kind, token, id) = self.tokens[index];
                let append = |body: &Bytes| {
                    let mut edited = body.to_vec();
                    edited.push(b'*');
                    Bytes::from(edited)
                };
                let result = match how {
                    0 => self.queue.complete(kind, token, now, &mut self.journal),
                    1 => self
                        .queue
                        .abandon(kind, token, now, None, &mut self.journal),
                    2 => self
                        .queue
                        .abandon(kind, token, now, Some(&append), &mut self.journal),
                    3 => self.queue.release(kind, token, now),
                    4 => self.queue.defer(kind, token, now, None, &mut self.journal),
                    _ => self.queue.dead_letter(
                        kind,
                        token,
                        now,
                        Some("why"),
                        None,
                        None,
                        &mut self.journal,
                    ),
                };
                match result {
                    Ok(()) => {
                        self.tokens.swap_remove(index);
                        if *how == 0 {
                            assert!(self.consumed.insert(id), "message {id} completed twice");
                        }
                    }
                    Err(CoreError::LockLost) => {
                        self.tokens.swap_remove(index);
                    }
                    Err(CoreError::NotAllowed(_)) => assert!(kind == DLQ && *how == 5),
                    Err(other) => panic!("settle failed: {other}"),
                }
            }
            Op::ReceiveDeferred {
                dead_letter,
                seq,
                delete,
            } => {
                let kind = if *dead_letter { DLQ } else { MAIN };
                let mode = if *delete {
                    ReceiveMode::ReceiveAndDelete
                } else {
                    ReceiveMode::PeekLock
                };
                let eligible = self.queue.sub(kind).get(*seq).is_some_and(|m| {
                    m.meta.state == MessageState::Deferred && m.locked_until_ms.is_none()
                });
                match self.queue.receive_deferred(
                    kind,
                    *seq,
                    mode,
                    ConsumerId(0),
                    now,
                    &mut self.journal,
                ) {
                    Ok(delivery) => {
                        assert!(eligible);
                        assert_eq!(delivery.seq, *seq);
                        self.note_delivery(kind, &delivery);
                    }
                    Err(CoreError::MessageNotFound(s)) => {
                        assert!(!eligible);
                        assert_eq!(s, *seq);
                    }
                    Err(other) => panic!("receive deferred failed: {other}"),
                }
            }
            Op::Renew { pick } => {
                if let Some(&(kind, token, _)) = self.tokens.get(pick % self.tokens.len().max(1)) {
                    if let Ok(until) = self.queue.renew_lock(kind, token, now) {
                        assert_eq!(until, now + self.queue.config().lock_duration_ms);
                    }
                }
            }
            Op::Advance(ms) => self.now += ms,
            Op::ExpireLocks => {
                let due = [MAIN, DLQ]
                    .iter()
                    .flat_map(|k| self.queue.sub(*k).peek(0))
                    .filter(|m| m.locked_until_ms.is_some_and(|u| u <= now))
                    .count();
                assert_eq!(
                    self.queue
                        .expire_locks(now, &mut self.journal)
                        .expect("sweep"),
                    due
                );
                assert!(self.queue.next_lock_deadline().is_none_or(|d| d > now));
            }
            Op::ReleaseAll(consumer) => {
                self.queue.release_all(ConsumerId(*consumer));
            }
            Op::ActivateScheduled => {
                self.queue
                    .activate_scheduled(now, &mut self.journal)
                    .expect("activate");
                assert!(
                    self.queue
                        .sub(MAIN)
                        .next_scheduled_at()
                        .is_none_or(|at| at > now)
                );
            }
            Op::CancelScheduled(seq) => {
                let scheduled = self.queue.sub(MAIN).get(*seq).map(|m| {
                    (
                        m.meta.state == MessageState::Scheduled,
                        m.body.cloned(),
                        m.body_ref,
                    )
                });
                match self.queue.cancel_scheduled(*seq, &mut self.journal) {
                    Ok(()) => {
                        let (was_scheduled, body, body_ref) = scheduled.expect("existed");
                        assert!(was_scheduled);
                        let body = body.unwrap_or_else(|| self.journal.body(body_ref));
                        assert!(self.consumed.insert(id_of(&body)));
                    }
                    Err(CoreError::MessageNotFound(_)) => {
                        assert!(!scheduled.is_some_and(|(s, _, _)| s));
                    }
                    Err(other) => panic!("cancel failed: {other}"),
                }
            }
            Op::Restart => {
                self.queue = assert_replay_matches(&self.queue, &self.journal);
                assert_eq!(self.queue.counts().locked, 0);
            }
        }
    }

    fn check(&self) {
        assert_counts_exact(&self.queue);
        // Every message is in exactly one place, or was consumed, or expired.
        let mut seen = HashMap::new();
        for kind in [MAIN, DLQ] {
            for m in self.queue.sub(kind).peek(0) {
                let body = m
                    .body
                    .cloned()
                    .unwrap_or_else(|| self.journal.body(m.body_ref));
                let id = id_of(&body);
                assert!(
                    seen.insert(id, kind).is_none(),
                    "message {id} is in two places"
                );
                assert!(
                    !self.consumed.contains(&id),
                    "consumed message {id} is back"
                );
                if kind == DLQ {
                    assert!(m.meta.expires_at_ms.is_none());
                }
            }
        }
        let dead_letter_expired = self.queue.config().dead_lettering_on_expiration;
        for id in 0..self.next_id {
            if !seen.contains_key(&id) && !self.consumed.contains(&id) {
                let expired = self.expiry.get(&id).is_some_and(|at| *at <= self.now);
                assert!(
                    expired && !dead_letter_expired,
                    "message {id} vanished (expiry {:?}, now {})",
                    self.expiry.get(&id),
                    self.now
                );
            }
        }
        // Sequence numbers only move forward; the one exception is a body rewrite,
        // journaled as remove + re-enqueue of the same seq in the same append.
        let mut highest: HashMap<EntityId, Seq> = HashMap::new();
        for append in &self.journal.appends {
            for (i, record) in append.iter().enumerate() {
                if let Record::Enqueue { entity, seq, .. } = record {
                    let top = highest.entry(*entity).or_default();
                    if *seq <= *top {
                        let rewrite = i > 0
                            && matches!(append[i - 1], Record::Remove { entity: e, seq: s, .. } if e == *entity && s == *seq);
                        assert!(rewrite, "seq {seq} of entity {entity} reused");
                    }
                    *top = (*top).max(*seq);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_keep_every_invariant(config in config(), ops in prop::collection::vec(op(), 1..80)) {
        let mut harness = Harness {
            queue: Queue::new("q", config, 1, 2),
            journal: MemJournal::default(),
            now: 1_000,
            next_id: 0,
            consumed: HashSet::new(),
            expiry: HashMap::new(),
            tokens: Vec::new(),
        };
        for op in &ops {
            harness.apply(op);
            harness.check();
        }
        assert_replay_matches(&harness.queue, &harness.journal);
    }
}
