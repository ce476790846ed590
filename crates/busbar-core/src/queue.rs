//! A queue: its main stream and its dead-letter queue, changed together under one lock
//! owned by the caller, so moving a message to the dead-letter queue is one atomic step.
//!
//! Every mutating operation first plans its changes against the current state (reading
//! bodies from the journal if it must), appends the resulting records through the
//! [`Journal`] in one call, and only then applies them. If the journal fails, nothing
//! changes.
//!
//! Not yet implemented, with where it fits: sessions (an `available` index per session
//! id plus session locks, next to the plain `available` bitsets in the subqueue).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use busbar_store::{
    BodyRef, EntityId, MessageMeta, MessageState, Record, RecoveredMessage, Seq, StoreError,
};
use bytes::Bytes;
use uuid::Uuid;

use crate::config::QueueConfig;
use crate::dedup::DuplicateWindow;
use crate::entity_id::{marker_entity, transfer_dead_letter_entity};
use crate::error::CoreError;
use crate::journal::{BodyEdit, Journal};
use crate::quota;
use crate::resident::ResidentBudget;

mod message_sessions;
mod repair;
use crate::subqueue::{ConsumerId, Entry, FastSet, SubQueue, SubQueueCounts, SubQueueKind};
pub use message_sessions::{MessageSessionGrant, MessageSessionPick};

/// Dead-letter reason for messages that failed `max_delivery_count` times.
pub const REASON_MAX_DELIVERY: &str = "MaxDeliveryCountExceeded";
/// Dead-letter reason for expired messages when `dead_lettering_on_expiration` is on.
pub const REASON_TTL_EXPIRED: &str = "TTLExpiredException";
const TTL_EXPIRED_DESCRIPTION: &str = "The message expired and was dead lettered.";
/// Dead-letter reason for messages whose stored body can't be read back: the dead-letter
/// queue gets a stand-in with their identity and no content.
pub const REASON_UNREADABLE: &str = "MessageUnreadable";

/// How many expired messages one delivery attempt clears before journaling them, so a
/// long run of expired messages is written in bounded batches.
const EXPIRY_BATCH: usize = 256;

/// A message as sent.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// The encoded AMQP message as it will be delivered (minus per-delivery annotations).
    pub body: Bytes,
    pub message_id: Option<Box<str>>,
    /// AMQP group-id.
    pub session_id: Option<Box<str>>,
    /// The message's own time to live (AMQP header ttl); the queue default caps it.
    pub ttl_ms: Option<i64>,
    /// `x-opt-scheduled-enqueue-time`: the message stays invisible until then.
    pub scheduled_at_ms: Option<i64>,
}

/// How a receiver takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    /// Lock the message and wait for settlement.
    PeekLock,
    /// Remove the message as it is handed out.
    ReceiveAndDelete,
}

/// A lock handed out with a peek-lock delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockGrant {
    /// The lock token (the AMQP delivery tag, in .NET byte order on the wire).
    pub token: Uuid,
    pub locked_until_ms: i64,
}

/// What settling a locked message by its lock token does to it.
#[derive(Clone, Copy)]
pub enum Disposition<'a> {
    /// Done: the message is removed.
    Complete,
    /// A failed delivery: unlocked, its delivery count increased. In the main stream, once
    /// the count reaches `max_delivery_count` the message moves to the dead-letter queue
    /// (`MaxDeliveryCountExceeded`). A deferred message stays deferred. `edit` rewrites
    /// the body (properties to modify).
    Abandon { edit: Option<BodyEdit<'a>> },
    /// Out of normal delivery, receivable by sequence number only; the delivery count
    /// does not change.
    Defer { edit: Option<BodyEdit<'a>> },
    /// To the dead-letter queue with the reason and description as application
    /// properties, delivery count kept. Main stream only.
    DeadLetter {
        reason: Option<&'a str>,
        description: Option<&'a str>,
        edit: Option<BodyEdit<'a>>,
    },
}

/// A message handed to a receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: Seq,
    /// `None` for receive-and-delete.
    pub lock: Option<LockGrant>,
    /// `meta.delivery_count` is the number of previous deliveries: the AMQP header value.
    /// `meta.message_id` is always `None`: queued messages do not keep their id in memory
    /// (it is in the body; duplicate detection keeps its own window).
    pub meta: MessageMeta,
    pub body_ref: BodyRef,
    /// The body if resident. Always present for receive-and-delete, since the message
    /// is already gone from the store's point of view. Otherwise read it by `body_ref`.
    pub body: Option<Bytes>,
}

/// Exact counts for a queue, maintained on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    /// Active messages in the main stream, including locked ones.
    pub active: u64,
    pub scheduled: u64,
    pub deferred: u64,
    /// Locked messages in the main stream.
    pub locked: u64,
    /// All messages in the dead-letter queue.
    pub dead_letter: u64,
    /// All messages in the transfer dead-letter queue.
    pub transfer_dead_letter: u64,
}

/// A queue with its dead-letter queue.
#[derive(Debug)]
pub struct Queue {
    name: String,
    config: QueueConfig,
    main: SubQueue,
    dead_letter: SubQueue,
    transfer_dead_letter: SubQueue,
    duplicates: DuplicateWindow,
    sessions: message_sessions::MessageSessions,
}

/// The messages a receiver may get next: all available ones, or one session's.
enum Candidates<A, B> {
    All(A),
    Session(B),
}

impl<A: Iterator<Item = Seq>, B: Iterator<Item = Seq>> Iterator for Candidates<A, B> {
    type Item = Seq;

    fn next(&mut self) -> Option<Seq> {
        match self {
            Candidates::All(all) => all.next(),
            Candidates::Session(session) => session.next(),
        }
    }
}

/// One in-memory change, applied after its records are journaled.
enum Step {
    Remove(SubQueueKind, Seq),
    /// Also ends the lock.
    Update {
        kind: SubQueueKind,
        seq: Seq,
        delivery_count: u32,
        state: MessageState,
    },
    /// Takes the next `BodyRef` from the journal.
    Insert {
        kind: SubQueueKind,
        seq: Seq,
        meta: MessageMeta,
        body: Bytes,
    },
    /// A message-id enters the duplicate-detection window. Takes the next `BodyRef`.
    RememberId {
        id: Box<str>,
        seen_at_ms: i64,
        seq: Seq,
    },
    /// A marker left the window.
    ForgetId(Seq),
    /// Takes the next `BodyRef` from the journal.
    ReplaceBody {
        kind: SubQueueKind,
        seq: Seq,
        body: Bytes,
    },
}

#[derive(Default)]
struct Plan {
    records: Vec<Record>,
    steps: Vec<Step>,
    /// Dead-letter seqs handed out by this plan, beyond the subqueue's last_seq.
    dead_letter_reserved: Seq,
}

impl Plan {
    fn with_capacity(messages: usize) -> Plan {
        Plan {
            records: Vec::with_capacity(messages),
            steps: Vec::with_capacity(messages),
            dead_letter_reserved: 0,
        }
    }
}

impl Queue {
    /// An empty queue that keeps its bodies resident within its own
    /// `resident_body_budget_bytes` alone.
    pub fn new(
        name: impl Into<String>,
        config: QueueConfig,
        main_entity: EntityId,
        dead_letter_entity: EntityId,
    ) -> Self {
        Self::new_within(
            name,
            config,
            main_entity,
            dead_letter_entity,
            &ResidentBudget::unbounded(),
        )
    }

    /// An empty queue that keeps its bodies resident within its own
    /// `resident_body_budget_bytes` and within `budget`, which it shares with others.
    pub fn new_within(
        name: impl Into<String>,
        config: QueueConfig,
        main_entity: EntityId,
        dead_letter_entity: EntityId,
        budget: &ResidentBudget,
    ) -> Self {
        Self::restore_within(
            name,
            config,
            main_entity,
            dead_letter_entity,
            &HashMap::new(),
            [],
            budget,
        )
    }

    /// Rebuilds a queue from recovered messages. No locks survive a restart; delivery
    /// counts and states do. Messages of other entities are ignored. `last_seqs` keeps
    /// sequence numbers from going backwards after the newest messages were removed.
    /// Recovered bodies stay in the store until delivered.
    pub fn restore(
        name: impl Into<String>,
        config: QueueConfig,
        main_entity: EntityId,
        dead_letter_entity: EntityId,
        last_seqs: &HashMap<EntityId, Seq>,
        messages: impl IntoIterator<Item = RecoveredMessage>,
    ) -> Self {
        Self::restore_within(
            name,
            config,
            main_entity,
            dead_letter_entity,
            last_seqs,
            messages,
            &ResidentBudget::unbounded(),
        )
    }

    /// [`Self::restore`], the bodies it keeps from then on bounded by `budget` too (see
    /// [`Self::new_within`]).
    pub fn restore_within(
        name: impl Into<String>,
        config: QueueConfig,
        main_entity: EntityId,
        dead_letter_entity: EntityId,
        last_seqs: &HashMap<EntityId, Seq>,
        messages: impl IntoIterator<Item = RecoveredMessage>,
        budget: &ResidentBudget,
    ) -> Self {
        let last = |entity| last_seqs.get(&entity).copied().unwrap_or(0);
        let sub = |entity, kind| SubQueue::new(entity, kind, last(entity), budget.clone());
        let mut queue = Queue {
            name: name.into(),
            config,
            main: sub(main_entity, SubQueueKind::Main),
            dead_letter: sub(dead_letter_entity, SubQueueKind::DeadLetter),
            transfer_dead_letter: sub(
                transfer_dead_letter_entity(dead_letter_entity),
                SubQueueKind::TransferDeadLetter,
            ),
            duplicates: DuplicateWindow::new(
                marker_entity(main_entity),
                last(marker_entity(main_entity)),
            ),
            sessions: message_sessions::MessageSessions::new(main_entity, last_seqs),
        };
        for message in messages {
            let sub = if message.entity == main_entity {
                &mut queue.main
            } else if message.entity == dead_letter_entity {
                &mut queue.dead_letter
            } else if message.entity == queue.transfer_dead_letter.entity() {
                &mut queue.transfer_dead_letter
            } else if message.entity == queue.duplicates.entity() {
                queue.duplicates.restore(message);
                continue;
            } else if message.entity == queue.sessions.entity() {
                queue.sessions.restore(message);
                continue;
            } else {
                continue;
            };
            sub.insert(message.seq, message.meta, message.body, None);
        }
        queue
    }

    /// Number of message-ids in the duplicate-detection window.
    pub fn duplicate_window_len(&self) -> usize {
        self.duplicates.len()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Takes effect for later operations; existing locks and expiry times stay.
    pub fn set_config(&mut self, config: QueueConfig) {
        self.config = config;
    }

    pub fn sub(&self, kind: SubQueueKind) -> &SubQueue {
        match kind {
            SubQueueKind::Main => &self.main,
            SubQueueKind::DeadLetter => &self.dead_letter,
            SubQueueKind::TransferDeadLetter => &self.transfer_dead_letter,
        }
    }

    fn sub_mut(&mut self, kind: SubQueueKind) -> &mut SubQueue {
        match kind {
            SubQueueKind::Main => &mut self.main,
            SubQueueKind::DeadLetter => &mut self.dead_letter,
            SubQueueKind::TransferDeadLetter => &mut self.transfer_dead_letter,
        }
    }

    /// Bytes stored by the main stream and both dead-letter queues: what the size cap
    /// limits (see [`crate::quota`]).
    pub fn size_bytes(&self) -> u64 {
        SubQueueKind::ALL
            .iter()
            .map(|&kind| self.sub(kind).stored_bytes())
            .sum()
    }

    /// Remove records for everything the queue keeps in the store: the messages of its
    /// main stream and both dead-letter queues (scheduled and deferred ones included), its
    /// duplicate markers and its session states. Appending them, once the queue is gone
    /// from the catalog, is what deletes its messages and lets their segments be reclaimed.
    pub fn removal_records(&self) -> Vec<Record> {
        let mut records: Vec<Record> = SubQueueKind::ALL
            .iter()
            .flat_map(|&kind| {
                let sub = self.sub(kind);
                sub.peek(0).map(|message| Record::Remove {
                    entity: sub.entity(),
                    seq: message.seq,
                    body: message.body_ref,
                })
            })
            .collect();
        records.extend(self.duplicates.removal_records());
        records.extend(self.sessions.removal_records());
        records
    }

    pub fn counts(&self) -> QueueCounts {
        let main: SubQueueCounts = self.main.counts();
        QueueCounts {
            active: main.active,
            scheduled: main.scheduled,
            deferred: main.deferred,
            locked: main.locked,
            dead_letter: self.dead_letter.counts().total(),
            transfer_dead_letter: self.transfer_dead_letter.counts().total(),
        }
    }

    /// The earliest time something here changes on its own (a lock runs out or a
    /// scheduled message becomes active): when the caller should run
    /// [`Queue::expire_locks`] and [`Queue::activate_scheduled`].
    pub fn next_deadline(&self) -> Option<i64> {
        [
            self.next_lock_deadline(),
            self.main.next_scheduled_at(),
            self.main.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Expires main-stream messages whose time to live ran out by `now_ms`, so idle
    /// queues don't keep dead weight: dead-lettered (`TTLExpiredException`) when the
    /// queue says so, otherwise dropped. Locked messages wait for their lock to end and
    /// scheduled ones for their activation. Works in batches; returns how many expired.
    pub fn expire_messages(
        &mut self,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<usize, CoreError> {
        let mut total = 0;
        loop {
            let due: Vec<Seq> = self
                .main
                .expired(now_ms)
                .filter(|seq| {
                    self.main.entry(*seq).is_some_and(|entry| {
                        entry.lock().is_none() && entry.state() != MessageState::Scheduled
                    })
                })
                .take(EXPIRY_BATCH)
                .collect();
            if due.is_empty() {
                return Ok(total);
            }
            let mut plan = Plan::default();
            for &seq in &due {
                self.plan_expiry(SubQueueKind::Main, seq, &mut plan, journal)?;
            }
            self.commit(plan, journal)?;
            total += due.len();
            if due.len() < EXPIRY_BATCH {
                return Ok(total);
            }
        }
    }

    /// The earliest time a lock in either subqueue runs out.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        [
            self.main.next_lock_deadline(),
            self.dead_letter.next_lock_deadline(),
            self.transfer_dead_letter.next_lock_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Appends messages to the main stream atomically, with consecutive sequence
    /// numbers; returns them. Messages scheduled for later than `now_ms` start Scheduled.
    /// Refused as a whole ([`CoreError::QuotaExceeded`]) when the messages would take the
    /// queue beyond its size cap.
    pub fn enqueue(
        &mut self,
        messages: impl IntoIterator<Item = NewMessage>,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Range<Seq>, CoreError> {
        let first = self.main.last_seq() + 1;
        let mut next = first;
        let mut plan = Plan::default();
        let detect = self.config.requires_duplicate_detection;
        let window_ms = self.config.duplicate_detection_window_ms;
        let mut next_marker = self.duplicates.next_seq();
        let mut batch_ids: Vec<Box<str>> = Vec::new();
        let mut incoming_bytes = 0;
        if detect {
            for (seq, record) in self.duplicates.expired_records(now_ms, window_ms) {
                plan.records.push(record);
                plan.steps.push(Step::ForgetId(seq));
            }
        }
        for message in messages {
            if detect && let Some(id) = &message.message_id {
                if self.duplicates.contains(id, now_ms, window_ms) || batch_ids.contains(id) {
                    // A duplicate is accepted and silently dropped, as Service Bus does.
                    continue;
                }
                plan.records
                    .push(self.duplicates.marker_record(id, now_ms, next_marker));
                plan.steps.push(Step::RememberId {
                    id: id.clone(),
                    seen_at_ms: now_ms,
                    seq: next_marker,
                });
                next_marker += 1;
                batch_ids.push(id.clone());
            }
            incoming_bytes += message.body.len() as u64;
            let (meta, body) = self.new_meta(message, now_ms);
            plan.insert(self.main.entity(), SubQueueKind::Main, next, meta, body);
            next += 1;
        }
        quota::ensure_room(
            &self.name,
            self.config.max_size_bytes,
            self.size_bytes(),
            incoming_bytes,
        )?;
        self.commit(plan, journal)?;
        Ok(first..next)
    }

    /// How a message enqueued at `now_ms` starts: its expiry (its own time to live capped
    /// by the queue's default) and Scheduled when it is due later.
    fn new_meta(&self, message: NewMessage, now_ms: i64) -> (MessageMeta, Bytes) {
        let ttl = match (
            message.ttl_ms.filter(|t| *t > 0),
            self.config.default_ttl_ms,
        ) {
            (Some(own), Some(default)) => Some(own.min(default)),
            (own, default) => own.or(default),
        };
        let state = match message.scheduled_at_ms {
            Some(at) if at > now_ms => MessageState::Scheduled,
            _ => MessageState::Active,
        };
        let meta = MessageMeta {
            enqueued_at_ms: now_ms,
            expires_at_ms: ttl.map(|ttl| now_ms.saturating_add(ttl)),
            scheduled_at_ms: message.scheduled_at_ms,
            delivery_count: 0,
            state,
            session_id: message.session_id,
            message_id: message.message_id,
        };
        (meta, message.body)
    }

    /// The next message for a plain (non-session) receiver on `kind`: the lowest-seq
    /// active, unlocked, unexpired message. Runs due lock expiries and scheduled
    /// activations first, and expires (dead-letters or drops) the expired messages it
    /// meets on the way. Peek-lock locks the message for `consumer`; receive-and-delete
    /// removes it.
    pub fn next_for_delivery(
        &mut self,
        kind: SubQueueKind,
        mode: ReceiveMode,
        consumer: ConsumerId,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Option<Delivery>, CoreError> {
        self.next_available(kind, None, mode, consumer, now_ms, journal)
    }

    /// [`Queue::next_for_delivery`] among all available messages of `kind`, or only those
    /// of `session`.
    fn next_available(
        &mut self,
        kind: SubQueueKind,
        session: Option<&str>,
        mode: ReceiveMode,
        consumer: ConsumerId,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Option<Delivery>, CoreError> {
        if self.next_lock_deadline().is_some_and(|at| at <= now_ms) {
            self.expire_locks(now_ms, journal)?;
        }
        if kind == SubQueueKind::Main
            && self.main.next_scheduled_at().is_some_and(|at| at <= now_ms)
        {
            self.activate_scheduled(now_ms, journal)?;
        }
        loop {
            let mut plan = Plan::default();
            let mut chosen = None;
            let mut expired = 0;
            let candidates = match session {
                Some(id) => Candidates::Session(self.main.available_in_session(id)),
                None => Candidates::All(self.sub(kind).available()),
            };
            for seq in candidates {
                let Some(entry) = self.sub(kind).entry(seq) else {
                    continue;
                };
                if entry.expires_at_ms().is_some_and(|at| at <= now_ms) {
                    self.plan_expiry(kind, seq, &mut plan, journal)?;
                    expired += 1;
                    if expired >= EXPIRY_BATCH {
                        break;
                    }
                } else {
                    chosen = Some(seq);
                    break;
                }
            }
            let Some(seq) = chosen else {
                let more = expired >= EXPIRY_BATCH;
                self.commit(plan, journal)?;
                if more {
                    continue;
                }
                return Ok(None);
            };
            return match mode {
                ReceiveMode::PeekLock => {
                    self.commit(plan, journal)?;
                    Ok(self.lock_for(kind, seq, consumer, now_ms))
                }
                ReceiveMode::ReceiveAndDelete => {
                    let delivery = self.take_for_delete(kind, seq, &mut plan, journal)?;
                    self.commit(plan, journal)?;
                    Ok(delivery)
                }
            };
        }
    }

    /// Receives a deferred message by sequence number (`receive-by-sequence-number`).
    /// It stays Deferred while locked; abandoning or releasing it leaves it deferred.
    pub fn receive_deferred(
        &mut self,
        kind: SubQueueKind,
        seq: Seq,
        mode: ReceiveMode,
        consumer: ConsumerId,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Delivery, CoreError> {
        self.receive_deferred_all(kind, &[seq], mode, consumer, now_ms, journal)?
            .pop()
            .ok_or(CoreError::MessageNotFound(seq))
    }

    /// [`Queue::receive_deferred`] for several sequence numbers, all or nothing: if one is
    /// not a deferred, unlocked message of `kind` (or is named twice), nothing is locked or
    /// removed. Receive-and-delete journals the removals as one append. Deliveries come in
    /// the order of `seqs`.
    pub fn receive_deferred_all(
        &mut self,
        kind: SubQueueKind,
        seqs: &[Seq],
        mode: ReceiveMode,
        consumer: ConsumerId,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Vec<Delivery>, CoreError> {
        let mut named = HashSet::with_capacity(seqs.len());
        for &seq in seqs {
            let deferred_and_free = self.sub(kind).entry(seq).is_some_and(|entry| {
                entry.state() == MessageState::Deferred && entry.lock().is_none()
            });
            // Named again, it would already be locked or gone by its second turn.
            if !deferred_and_free || !named.insert(seq) {
                return Err(CoreError::MessageNotFound(seq));
            }
        }
        match mode {
            ReceiveMode::PeekLock => Ok(seqs
                .iter()
                .filter_map(|&seq| self.lock_for(kind, seq, consumer, now_ms))
                .collect()),
            ReceiveMode::ReceiveAndDelete => {
                let mut plan = Plan::default();
                let mut deliveries = Vec::with_capacity(seqs.len());
                for &seq in seqs {
                    deliveries.extend(self.take_for_delete(kind, seq, &mut plan, journal)?);
                }
                self.commit(plan, journal)?;
                Ok(deliveries)
            }
        }
    }

    /// Settles a locked message as done: removes it.
    pub fn complete(
        &mut self,
        kind: SubQueueKind,
        token: Uuid,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        self.settle_all(kind, &[token], Disposition::Complete, now_ms, journal)
    }

    /// Gives a locked message back as a failed delivery (see [`Disposition::Abandon`]).
    pub fn abandon(
        &mut self,
        kind: SubQueueKind,
        token: Uuid,
        now_ms: i64,
        edit: Option<BodyEdit<'_>>,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        self.settle_all(
            kind,
            &[token],
            Disposition::Abandon { edit },
            now_ms,
            journal,
        )
    }

    /// Unlocks a message without counting a delivery (AMQP `released`). Nothing to
    /// journal: locks are not durable.
    pub fn release(
        &mut self,
        kind: SubQueueKind,
        token: Uuid,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let seq = self.held(kind, token, now_ms)?;
        self.sub_mut(kind).unlock(seq);
        Ok(())
    }

    /// Defers a locked message (see [`Disposition::Defer`]).
    pub fn defer(
        &mut self,
        kind: SubQueueKind,
        token: Uuid,
        now_ms: i64,
        edit: Option<BodyEdit<'_>>,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        self.settle_all(kind, &[token], Disposition::Defer { edit }, now_ms, journal)
    }

    /// Moves a locked main-stream message to the dead-letter queue (see
    /// [`Disposition::DeadLetter`]).
    #[allow(clippy::too_many_arguments)]
    pub fn dead_letter(
        &mut self,
        kind: SubQueueKind,
        token: Uuid,
        now_ms: i64,
        reason: Option<&str>,
        description: Option<&str>,
        edit: Option<BodyEdit<'_>>,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        let disposition = Disposition::DeadLetter {
            reason,
            description,
            edit,
        };
        self.settle_all(kind, &[token], disposition, now_ms, journal)
    }

    /// Settles the messages locked by `tokens` in `kind` the same way, all or nothing: if
    /// one token is not a live lock here (or is named twice), nothing changes. The changes
    /// are journaled as one append, so a crash keeps all of them or none.
    pub fn settle_all(
        &mut self,
        kind: SubQueueKind,
        tokens: &[Uuid],
        disposition: Disposition<'_>,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        if kind != SubQueueKind::Main && matches!(disposition, Disposition::DeadLetter { .. }) {
            return Err(CoreError::NotAllowed(
                "a message in a dead-letter queue cannot be dead-lettered again",
            ));
        }
        let mut seqs = Vec::with_capacity(tokens.len());
        // The seqs of locks the broker handed out, not chosen by the client.
        let mut named = FastSet::with_capacity_and_hasher(tokens.len(), Default::default());
        for &token in tokens {
            let seq = self.held(kind, token, now_ms)?;
            // Named again, its lock would be gone by its second turn.
            if !named.insert(seq) {
                return Err(CoreError::LockLost);
            }
            seqs.push(seq);
        }
        // At least a record and a step per message; grown one at a time, they were copied
        // over and over for the settlements of a read.
        let mut plan = Plan::with_capacity(seqs.len());
        for seq in seqs {
            match disposition {
                Disposition::Complete => self.plan_remove(kind, seq, &mut plan),
                Disposition::Abandon { edit } => {
                    self.plan_failed_delivery(kind, seq, edit, &mut plan, journal)?;
                }
                Disposition::Defer { edit } => {
                    let delivery_count = self.entry_of(kind, seq)?.delivery_count();
                    self.plan_update(
                        kind,
                        seq,
                        delivery_count,
                        MessageState::Deferred,
                        edit,
                        &mut plan,
                        journal,
                    )?;
                }
                Disposition::DeadLetter {
                    reason,
                    description,
                    edit,
                } => {
                    let delivery_count = self.entry_of(kind, seq)?.delivery_count();
                    self.plan_dead_letter(
                        seq,
                        delivery_count,
                        reason,
                        description,
                        edit,
                        &mut plan,
                        journal,
                    )?;
                }
            }
        }
        self.commit(plan, journal)
    }

    /// Stores new messages straight in a dead-letter queue with `reason` and
    /// `description` as application properties: the transfer dead-letter queue for
    /// messages that could not be forwarded (ForwardTo chain too long, or its target gone),
    /// the dead-letter queue for those a subscription refuses on arrival (a filter failed
    /// on them, or they lack the session id it requires). Returns their sequence numbers.
    pub fn dead_letter_new(
        &mut self,
        kind: SubQueueKind,
        messages: impl IntoIterator<Item = NewMessage>,
        now_ms: i64,
        reason: &str,
        description: &str,
        journal: &mut impl Journal,
    ) -> Result<Range<Seq>, CoreError> {
        let first = self.sub(kind).last_seq() + 1;
        let entity = self.sub(kind).entity();
        let mut next = first;
        let mut plan = Plan::default();
        for message in messages {
            let body = journal.dead_letter_body(&message.body, Some(reason), Some(description));
            let meta = MessageMeta {
                enqueued_at_ms: now_ms,
                session_id: message.session_id,
                message_id: message.message_id,
                ..MessageMeta::default()
            };
            plan.insert(entity, kind, next, meta, body);
            next += 1;
        }
        self.commit(plan, journal)?;
        Ok(first..next)
    }

    /// Extends a lock by the queue's lock duration from `now_ms`; returns the new expiry.
    pub fn renew_lock(
        &mut self,
        kind: SubQueueKind,
        token: Uuid,
        now_ms: i64,
    ) -> Result<i64, CoreError> {
        self.renew_locks(kind, &[token], now_ms)?
            .pop()
            .ok_or(CoreError::LockLost)
    }

    /// [`Queue::renew_lock`] for several tokens, all or nothing: if one is not a live lock
    /// here, no lock is extended. Returns the new expiries in the order of `tokens`.
    pub fn renew_locks(
        &mut self,
        kind: SubQueueKind,
        tokens: &[Uuid],
        now_ms: i64,
    ) -> Result<Vec<i64>, CoreError> {
        let seqs = tokens
            .iter()
            .map(|&token| self.held(kind, token, now_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let until = now_ms.saturating_add(self.config.lock_duration_ms);
        let sub = self.sub_mut(kind);
        for seq in &seqs {
            sub.renew(*seq, until);
        }
        Ok(vec![until; seqs.len()])
    }

    /// Ends every lock that ran out at or before `now_ms`, in both subqueues, counting a
    /// failed delivery for each (with the max-delivery rule). Returns how many.
    pub fn expire_locks(
        &mut self,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<usize, CoreError> {
        let mut plan = Plan::default();
        let mut expired = 0;
        for kind in SubQueueKind::ALL {
            let seqs: Vec<Seq> = self.sub(kind).expired_locks(now_ms).collect();
            for seq in seqs {
                self.plan_failed_delivery(kind, seq, None, &mut plan, journal)?;
                expired += 1;
            }
        }
        self.commit(plan, journal)?;
        Ok(expired)
    }

    /// Makes every lock held by `consumer` available again at once, without counting a
    /// delivery: a receiver that went away (link detached, connection dropped) did not
    /// fail to process its messages, and users expect them back immediately. (The real
    /// service instead lets such locks run out.) Returns how many.
    pub fn release_all(&mut self, consumer: ConsumerId) -> usize {
        self.sessions.release_all(consumer);
        let mut released = 0;
        for kind in SubQueueKind::ALL {
            let sub = self.sub_mut(kind);
            for seq in sub.seqs_locked_by(consumer) {
                if sub.unlock(seq) {
                    released += 1;
                }
            }
        }
        released
    }

    /// Turns scheduled messages whose time has come into active ones. Returns how many.
    pub fn activate_scheduled(
        &mut self,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<usize, CoreError> {
        let mut plan = Plan::default();
        let due: Vec<Seq> = self.main.due_scheduled(now_ms).collect();
        for &seq in &due {
            let delivery_count = self.entry_of(SubQueueKind::Main, seq)?.delivery_count();
            self.plan_update(
                SubQueueKind::Main,
                seq,
                delivery_count,
                MessageState::Active,
                None,
                &mut plan,
                journal,
            )?;
        }
        self.commit(plan, journal)?;
        Ok(due.len())
    }

    /// Removes a message that is still scheduled (`cancel-scheduled-message`).
    pub fn cancel_scheduled(
        &mut self,
        seq: Seq,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        self.cancel_scheduled_all(&[seq], journal)
    }

    /// Removes messages that are still scheduled, all or nothing: if one of `seqs` is not
    /// a scheduled message (or is named twice), nothing is removed. One append.
    pub fn cancel_scheduled_all(
        &mut self,
        seqs: &[Seq],
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        let mut named = HashSet::with_capacity(seqs.len());
        for &seq in seqs {
            let scheduled = self
                .main
                .entry(seq)
                .is_some_and(|entry| entry.state() == MessageState::Scheduled);
            // Named again, it would be gone by its second turn.
            if !scheduled || !named.insert(seq) {
                return Err(CoreError::MessageNotFound(seq));
            }
        }
        let mut plan = Plan::default();
        for &seq in seqs {
            self.plan_remove(SubQueueKind::Main, seq, &mut plan);
        }
        self.commit(plan, journal)
    }

    // ---- planning: reads state, never changes it.

    /// The seq locked by `token` in `kind`, if the lock is still live at `now_ms`.
    fn held(&self, kind: SubQueueKind, token: Uuid, now_ms: i64) -> Result<Seq, CoreError> {
        let sub = self.sub(kind);
        let seq = sub.locked_seq(&token).ok_or(CoreError::LockLost)?;
        let live = sub
            .entry(seq)
            .and_then(|entry| entry.lock())
            .is_some_and(|lock| lock.until_ms > now_ms);
        if live {
            Ok(seq)
        } else {
            Err(CoreError::LockLost)
        }
    }

    fn entry_of(&self, kind: SubQueueKind, seq: Seq) -> Result<Entry<'_>, CoreError> {
        self.sub(kind)
            .entry(seq)
            .ok_or(CoreError::MessageNotFound(seq))
    }

    fn body_of(
        &self,
        kind: SubQueueKind,
        seq: Seq,
        journal: &mut impl Journal,
    ) -> Result<Bytes, CoreError> {
        let entry = self
            .sub(kind)
            .entry(seq)
            .ok_or(CoreError::MessageNotFound(seq))?;
        match entry.body() {
            Some(body) => Ok(body.clone()),
            None => Ok(journal.read_body(entry.body_ref())?),
        }
    }

    fn plan_remove(&self, kind: SubQueueKind, seq: Seq, plan: &mut Plan) {
        let sub = self.sub(kind);
        if let Some(entry) = sub.entry(seq) {
            plan.records.push(Record::Remove {
                entity: sub.entity(),
                seq,
                body: entry.body_ref(),
            });
            plan.steps.push(Step::Remove(kind, seq));
        }
    }

    /// Counts a failed delivery of `seq`, dead-lettering it when the main stream's
    /// max delivery count is reached.
    fn plan_failed_delivery(
        &self,
        kind: SubQueueKind,
        seq: Seq,
        edit: Option<BodyEdit<'_>>,
        plan: &mut Plan,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        let entry = self.entry_of(kind, seq)?;
        let delivery_count = entry.delivery_count().saturating_add(1);
        let state = entry.state();
        if kind == SubQueueKind::Main && delivery_count >= self.config.max_delivery_count {
            let description =
                format!("Message could not be consumed after {delivery_count} delivery attempts.");
            self.plan_dead_letter(
                seq,
                delivery_count,
                Some(REASON_MAX_DELIVERY),
                Some(&description),
                edit,
                plan,
                journal,
            )
        } else {
            self.plan_update(kind, seq, delivery_count, state, edit, plan, journal)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_update(
        &self,
        kind: SubQueueKind,
        seq: Seq,
        delivery_count: u32,
        state: MessageState,
        edit: Option<BodyEdit<'_>>,
        plan: &mut Plan,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        let sub = self.sub(kind);
        let entry = sub.entry(seq).ok_or(CoreError::MessageNotFound(seq))?;
        match edit {
            None => plan.records.push(Record::Update {
                entity: sub.entity(),
                seq,
                delivery_count,
                state,
            }),
            Some(edit) => {
                // A rewritten body is journaled as the message removed and re-enqueued
                // under the same seq, in one atomic append.
                let body = edit(&self.body_of(kind, seq, journal)?);
                let mut meta = entry.meta();
                meta.delivery_count = delivery_count;
                meta.state = state;
                plan.records.push(Record::Remove {
                    entity: sub.entity(),
                    seq,
                    body: entry.body_ref(),
                });
                plan.records.push(Record::Enqueue {
                    entity: sub.entity(),
                    seq,
                    meta,
                    body: body.clone(),
                });
                plan.steps.push(Step::ReplaceBody { kind, seq, body });
            }
        }
        plan.steps.push(Step::Update {
            kind,
            seq,
            delivery_count,
            state,
        });
        Ok(())
    }

    /// Moves main-stream message `seq` to the dead-letter queue under a new seq.
    #[allow(clippy::too_many_arguments)]
    fn plan_dead_letter(
        &self,
        seq: Seq,
        delivery_count: u32,
        reason: Option<&str>,
        description: Option<&str>,
        edit: Option<BodyEdit<'_>>,
        plan: &mut Plan,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        let entry = self
            .main
            .entry(seq)
            .ok_or(CoreError::MessageNotFound(seq))?;
        let body = match self.body_of(SubQueueKind::Main, seq, journal) {
            Ok(original) => {
                let edited = match edit {
                    Some(edit) => edit(&original),
                    None => original,
                };
                journal.dead_letter_body(&edited, reason, description)
            }
            // Its content is gone for good; without a stand-in it could never leave the
            // queue, and the damaged bytes must never reach a client.
            Err(CoreError::Store(
                error @ (StoreError::CorruptBody { .. } | StoreError::UnknownBody(_)),
            )) => {
                let description = format!(
                    "Message {seq} of {} can't be read back ({error}); its content is lost.",
                    self.name
                );
                journal.stand_in_body(&entry.meta(), REASON_UNREADABLE, &description)
            }
            Err(error) => return Err(error),
        };
        // Dead-lettered messages keep their enqueue time and ids but never expire and
        // are immediately receivable.
        let meta = MessageMeta {
            expires_at_ms: None,
            scheduled_at_ms: None,
            delivery_count,
            state: MessageState::Active,
            ..entry.meta()
        };
        plan.dead_letter_reserved += 1;
        let dead_letter_seq = self.dead_letter.last_seq() + plan.dead_letter_reserved;
        self.plan_remove(SubQueueKind::Main, seq, plan);
        plan.insert(
            self.dead_letter.entity(),
            SubQueueKind::DeadLetter,
            dead_letter_seq,
            meta,
            body,
        );
        Ok(())
    }

    fn plan_expiry(
        &self,
        kind: SubQueueKind,
        seq: Seq,
        plan: &mut Plan,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        if kind == SubQueueKind::Main && self.config.dead_lettering_on_expiration {
            let delivery_count = self.entry_of(kind, seq)?.delivery_count();
            self.plan_dead_letter(
                seq,
                delivery_count,
                Some(REASON_TTL_EXPIRED),
                Some(TTL_EXPIRED_DESCRIPTION),
                None,
                plan,
                journal,
            )
        } else {
            self.plan_remove(kind, seq, plan);
            Ok(())
        }
    }

    /// Plans removing `seq` for a receive-and-delete and builds its delivery, reading
    /// the body now since the store may reclaim it once removed.
    fn take_for_delete(
        &self,
        kind: SubQueueKind,
        seq: Seq,
        plan: &mut Plan,
        journal: &mut impl Journal,
    ) -> Result<Option<Delivery>, CoreError> {
        let Some(entry) = self.sub(kind).entry(seq) else {
            return Ok(None);
        };
        let body = self.body_of(kind, seq, journal)?;
        let delivery = Delivery {
            seq,
            lock: None,
            meta: entry.meta(),
            body_ref: entry.body_ref(),
            body: Some(body),
        };
        self.plan_remove(kind, seq, plan);
        Ok(Some(delivery))
    }

    // ---- applying.

    fn lock_for(
        &mut self,
        kind: SubQueueKind,
        seq: Seq,
        consumer: ConsumerId,
        now_ms: i64,
    ) -> Option<Delivery> {
        let token = Uuid::new_v4();
        let until = now_ms.saturating_add(self.config.lock_duration_ms);
        let sub = self.sub_mut(kind);
        sub.lock(seq, token, until, consumer);
        let entry = sub.entry(seq)?;
        Some(Delivery {
            seq,
            lock: Some(LockGrant {
                token,
                locked_until_ms: until,
            }),
            meta: entry.meta(),
            body_ref: entry.body_ref(),
            body: entry.body().cloned(),
        })
    }

    fn commit(&mut self, plan: Plan, journal: &mut impl Journal) -> Result<(), CoreError> {
        if plan.records.is_empty() {
            return Ok(());
        }
        let expected = plan
            .steps
            .iter()
            .filter(|step| {
                matches!(
                    step,
                    Step::Insert { .. } | Step::ReplaceBody { .. } | Step::RememberId { .. }
                )
            })
            .count();
        let body_refs = journal.append(plan.records)?;
        if body_refs.len() != expected {
            return Err(CoreError::BodyRefMismatch {
                expected,
                got: body_refs.len(),
            });
        }
        let mut body_refs = body_refs.into_iter();
        for step in plan.steps {
            match step {
                Step::Remove(kind, seq) => {
                    self.sub_mut(kind).remove(seq);
                }
                Step::Update {
                    kind,
                    seq,
                    delivery_count,
                    state,
                } => self.sub_mut(kind).update(seq, delivery_count, state),
                Step::Insert {
                    kind,
                    seq,
                    meta,
                    body,
                } => {
                    let body_ref = body_refs.next().unwrap_or(BodyRef {
                        segment: 0,
                        offset: 0,
                        len: 0,
                    });
                    let body = self.keep_resident(body);
                    self.sub_mut(kind).insert(seq, meta, body_ref, body);
                }
                Step::RememberId {
                    id,
                    seen_at_ms,
                    seq,
                } => {
                    let body_ref = body_refs.next().unwrap_or(BodyRef {
                        segment: 0,
                        offset: 0,
                        len: 0,
                    });
                    self.duplicates.remember(id, seen_at_ms, seq, body_ref);
                }
                Step::ForgetId(seq) => self.duplicates.forget_seq(seq),
                Step::ReplaceBody { kind, seq, body } => {
                    let body_ref = body_refs.next().unwrap_or(BodyRef {
                        segment: 0,
                        offset: 0,
                        len: 0,
                    });
                    let body = self.keep_resident(body);
                    self.sub_mut(kind).replace_body(seq, body_ref, body);
                }
            }
        }
        Ok(())
    }

    /// Offers a body for keeping in memory while the queue stays under its own resident
    /// budget; the subqueue keeps it if the shared budget has room too.
    fn keep_resident(&self, body: Bytes) -> Option<Bytes> {
        let resident = self.main.resident_bytes() + self.dead_letter.resident_bytes();
        (resident + body.len() as u64 <= self.config.resident_body_budget_bytes).then_some(body)
    }
}

impl Plan {
    fn insert(
        &mut self,
        entity: EntityId,
        kind: SubQueueKind,
        seq: Seq,
        meta: MessageMeta,
        body: Bytes,
    ) {
        self.records.push(Record::Enqueue {
            entity,
            seq,
            meta: meta.clone(),
            body: body.clone(),
        });
        self.steps.push(Step::Insert {
            kind,
            seq,
            meta,
            body,
        });
    }
}
