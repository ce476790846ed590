//! One stream of messages with its own entity id and sequence numbers, and the indexes
//! that make delivery cheap. Only [`crate::queue::Queue`] mutates it, so that every change
//! is journaled first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use busbar_store::{BodyRef, EntityId, MessageMeta, MessageState, Seq};
use bytes::Bytes;
use uuid::Uuid;

/// Which stream of a queue an operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubQueueKind {
    /// The queue itself.
    Main,
    /// `<queue>/$DeadLetterQueue`.
    DeadLetter,
    /// `<queue>/$Transfer/$DeadLetterQueue`: messages that could not be forwarded.
    TransferDeadLetter,
}

impl SubQueueKind {
    pub const ALL: [SubQueueKind; 3] = [
        SubQueueKind::Main,
        SubQueueKind::DeadLetter,
        SubQueueKind::TransferDeadLetter,
    ];
}

/// Identifies whoever holds locks (a receiver link), so its locks can be dropped when it
/// goes away. The caller allocates these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u64);

/// Exact message counts of one subqueue, maintained on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubQueueCounts {
    /// Messages in state Active, including locked ones (as Service Bus counts them).
    pub active: u64,
    pub deferred: u64,
    pub scheduled: u64,
    /// Messages currently locked (active or deferred).
    pub locked: u64,
}

impl SubQueueCounts {
    pub fn total(&self) -> u64 {
        self.active + self.deferred + self.scheduled
    }
}

#[derive(Debug, Clone)]
pub(crate) struct HeldLock {
    pub(crate) token: Uuid,
    pub(crate) until_ms: i64,
    pub(crate) owner: ConsumerId,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) meta: MessageMeta,
    pub(crate) body_ref: BodyRef,
    pub(crate) body: Option<Bytes>,
    pub(crate) lock: Option<HeldLock>,
}

/// A read-only look at a stored message.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    pub seq: Seq,
    pub meta: &'a MessageMeta,
    pub body_ref: BodyRef,
    /// The body when it is resident in memory; otherwise read it from the store.
    pub body: Option<&'a Bytes>,
    /// When the message is locked, until when.
    pub locked_until_ms: Option<i64>,
}

/// One stream of messages: a queue's main stream or its dead-letter queue.
///
/// Invariant: a seq is in `available` exactly when its message is Active and unlocked;
/// in `scheduled` exactly when it is Scheduled; in `lock_deadlines` and `locks` exactly
/// when it is locked.
#[derive(Debug)]
pub struct SubQueue {
    entity: EntityId,
    kind: SubQueueKind,
    last_seq: Seq,
    messages: BTreeMap<Seq, Entry>,
    available: BTreeSet<Seq>,
    scheduled: BTreeSet<(i64, Seq)>,
    /// Messages with a time to live, by expiry time.
    expiries: BTreeSet<(i64, Seq)>,
    locks: HashMap<Uuid, Seq>,
    lock_deadlines: BTreeSet<(i64, Seq)>,
    counts: SubQueueCounts,
    resident_bytes: u64,
}

impl SubQueue {
    pub(crate) fn new(entity: EntityId, kind: SubQueueKind, last_seq: Seq) -> Self {
        SubQueue {
            entity,
            kind,
            last_seq,
            messages: BTreeMap::new(),
            available: BTreeSet::new(),
            scheduled: BTreeSet::new(),
            expiries: BTreeSet::new(),
            locks: HashMap::new(),
            lock_deadlines: BTreeSet::new(),
            counts: SubQueueCounts::default(),
            resident_bytes: 0,
        }
    }

    pub fn entity(&self) -> EntityId {
        self.entity
    }

    pub fn kind(&self) -> SubQueueKind {
        self.kind
    }

    /// Highest sequence number ever assigned here (0 before the first message).
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    pub fn counts(&self) -> SubQueueCounts {
        self.counts
    }

    /// Number of messages held, in any state.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Bytes of message bodies held in memory.
    pub fn resident_bytes(&self) -> u64 {
        self.resident_bytes
    }

    pub fn get(&self, seq: Seq) -> Option<MessageView<'_>> {
        self.messages.get(&seq).map(|entry| view(seq, entry))
    }

    /// Messages in sequence order from `from_seq` (inclusive), in every state, without
    /// locking anything: what `peek-message` shows.
    pub fn peek(&self, from_seq: Seq) -> impl Iterator<Item = MessageView<'_>> {
        self.messages
            .range(from_seq..)
            .map(|(seq, entry)| view(*seq, entry))
    }

    /// The earliest time a lock here runs out.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.lock_deadlines.first().map(|(until, _)| *until)
    }

    /// The earliest expiry time of a message here.
    pub fn next_expiry(&self) -> Option<i64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// The earliest time a scheduled message here becomes active.
    pub fn next_scheduled_at(&self) -> Option<i64> {
        self.scheduled.first().map(|(at, _)| *at)
    }

    // ---- crate-internal access and primitives; each keeps every index and count right.

    pub(crate) fn entry(&self, seq: Seq) -> Option<&Entry> {
        self.messages.get(&seq)
    }

    pub(crate) fn available(&self) -> impl Iterator<Item = Seq> + '_ {
        self.available.iter().copied()
    }

    pub(crate) fn locked_seq(&self, token: &Uuid) -> Option<Seq> {
        self.locks.get(token).copied()
    }

    /// Locked seqs whose lock ran out at or before `now_ms`.
    pub(crate) fn expired_locks(&self, now_ms: i64) -> impl Iterator<Item = Seq> + '_ {
        self.lock_deadlines
            .range(..=(now_ms, Seq::MAX))
            .map(|(_, seq)| *seq)
    }

    /// Seqs whose expiry time is at or before `now_ms`, in any state.
    pub(crate) fn expired(&self, now_ms: i64) -> impl Iterator<Item = Seq> + '_ {
        self.expiries
            .range(..=(now_ms, Seq::MAX))
            .map(|(_, seq)| *seq)
    }

    pub(crate) fn due_scheduled(&self, now_ms: i64) -> impl Iterator<Item = Seq> + '_ {
        self.scheduled
            .range(..=(now_ms, Seq::MAX))
            .map(|(_, seq)| *seq)
    }

    pub(crate) fn seqs_locked_by(&self, owner: ConsumerId) -> Vec<Seq> {
        self.locks
            .values()
            .copied()
            .filter(|seq| {
                self.messages
                    .get(seq)
                    .and_then(|entry| entry.lock.as_ref())
                    .is_some_and(|lock| lock.owner == owner)
            })
            .collect()
    }

    pub(crate) fn insert(
        &mut self,
        seq: Seq,
        meta: MessageMeta,
        body_ref: BodyRef,
        body: Option<Bytes>,
    ) {
        if let Some(old) = self.remove(seq) {
            // Only replay can meet a seq twice; the newer record wins.
            tracing::debug!(
                entity = self.entity,
                seq,
                "replacing message {:?}",
                old.body_ref
            );
        }
        self.last_seq = self.last_seq.max(seq);
        if let Some(body) = &body {
            self.resident_bytes += body.len() as u64;
        }
        self.index_state(seq, &meta, true);
        if let Some(at) = meta.expires_at_ms {
            self.expiries.insert((at, seq));
        }
        self.messages.insert(
            seq,
            Entry {
                meta,
                body_ref,
                body,
                lock: None,
            },
        );
    }

    pub(crate) fn remove(&mut self, seq: Seq) -> Option<Entry> {
        self.unlock(seq);
        let entry = self.messages.remove(&seq)?;
        self.index_state(seq, &entry.meta, false);
        if let Some(at) = entry.meta.expires_at_ms {
            self.expiries.remove(&(at, seq));
        }
        if let Some(body) = &entry.body {
            self.resident_bytes -= body.len() as u64;
        }
        Some(entry)
    }

    /// Changes the mutable part of a message; also drops its lock, since every settlement
    /// that changes state ends the lock.
    pub(crate) fn update(&mut self, seq: Seq, delivery_count: u32, state: MessageState) {
        self.unlock(seq);
        let Some(entry) = self.messages.get_mut(&seq) else {
            return;
        };
        let mut meta = std::mem::take(&mut entry.meta);
        self.index_state(seq, &meta, false);
        meta.delivery_count = delivery_count;
        meta.state = state;
        self.index_state(seq, &meta, true);
        if let Some(entry) = self.messages.get_mut(&seq) {
            entry.meta = meta;
        }
    }

    /// Swaps in a rewritten body (properties modified at settlement).
    pub(crate) fn replace_body(&mut self, seq: Seq, body_ref: BodyRef, body: Option<Bytes>) {
        let Some(entry) = self.messages.get_mut(&seq) else {
            return;
        };
        if let Some(old) = &entry.body {
            self.resident_bytes -= old.len() as u64;
        }
        if let Some(new) = &body {
            self.resident_bytes += new.len() as u64;
        }
        entry.body_ref = body_ref;
        entry.body = body;
    }

    pub(crate) fn lock(&mut self, seq: Seq, token: Uuid, until_ms: i64, owner: ConsumerId) {
        self.unlock(seq);
        let Some(entry) = self.messages.get_mut(&seq) else {
            return;
        };
        if entry.meta.state == MessageState::Active {
            self.available.remove(&seq);
        }
        entry.lock = Some(HeldLock {
            token,
            until_ms,
            owner,
        });
        self.locks.insert(token, seq);
        self.lock_deadlines.insert((until_ms, seq));
        self.counts.locked += 1;
    }

    pub(crate) fn renew(&mut self, seq: Seq, until_ms: i64) {
        let Some(lock) = self.messages.get_mut(&seq).and_then(|e| e.lock.as_mut()) else {
            return;
        };
        self.lock_deadlines.remove(&(lock.until_ms, seq));
        lock.until_ms = until_ms;
        self.lock_deadlines.insert((until_ms, seq));
    }

    /// Drops the lock on `seq`, if any, making an active message available again.
    pub(crate) fn unlock(&mut self, seq: Seq) -> bool {
        let Some(entry) = self.messages.get_mut(&seq) else {
            return false;
        };
        let Some(lock) = entry.lock.take() else {
            return false;
        };
        self.locks.remove(&lock.token);
        self.lock_deadlines.remove(&(lock.until_ms, seq));
        self.counts.locked -= 1;
        if entry.meta.state == MessageState::Active {
            self.available.insert(seq);
        }
        true
    }

    /// Adds (`present`) or removes an unlocked message's state from the counts and the
    /// state indexes.
    fn index_state(&mut self, seq: Seq, meta: &MessageMeta, present: bool) {
        let (count, scheduled_key) = match meta.state {
            MessageState::Active => (&mut self.counts.active, None),
            MessageState::Deferred => (&mut self.counts.deferred, None),
            MessageState::Scheduled => (
                &mut self.counts.scheduled,
                Some((meta.scheduled_at_ms.unwrap_or(i64::MIN), seq)),
            ),
        };
        if present {
            *count += 1;
        } else {
            *count -= 1;
        }
        match (meta.state, scheduled_key, present) {
            (MessageState::Active, _, true) => {
                self.available.insert(seq);
            }
            (MessageState::Active, _, false) => {
                self.available.remove(&seq);
            }
            (MessageState::Scheduled, Some(key), true) => {
                self.scheduled.insert(key);
            }
            (MessageState::Scheduled, Some(key), false) => {
                self.scheduled.remove(&key);
            }
            _ => {}
        }
    }
}

fn view(seq: Seq, entry: &Entry) -> MessageView<'_> {
    MessageView {
        seq,
        meta: &entry.meta,
        body_ref: entry.body_ref,
        body: entry.body.as_ref(),
        locked_until_ms: entry.lock.as_ref().map(|lock| lock.until_ms),
    }
}
