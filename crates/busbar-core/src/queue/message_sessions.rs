//! Sessions of a session-enabled queue or subscription: a session (the messages sharing a
//! session id, AMQP group-id) is locked to one receiver at a time, which then gets that
//! session's messages in order; each session may keep a state blob.
//!
//! Session locks live in memory only (like message locks, none survive a restart). Session
//! states are durable: each is one record under the queue's session-state entity, with the
//! session id as its message id and the state as its body, replaced on every change.

use std::collections::{BTreeSet, HashMap};

use busbar_store::{BodyRef, EntityId, MessageMeta, Record, RecoveredMessage, Seq};
use bytes::Bytes;

use super::{Queue, ReceiveMode};
use crate::entity_id::session_state_entity;
use crate::error::CoreError;
use crate::journal::Journal;
use crate::queue::Delivery;
use crate::subqueue::{ConsumerId, SubQueueKind};

#[derive(Debug, Clone, Copy)]
struct SessionLock {
    owner: ConsumerId,
    until_ms: i64,
}

#[derive(Debug)]
pub(crate) struct MessageSessions {
    locks: HashMap<Box<str>, SessionLock>,
    state_entity: EntityId,
    state_last_seq: Seq,
    states: HashMap<Box<str>, (Seq, BodyRef)>,
}

impl MessageSessions {
    pub(crate) fn new(main_entity: EntityId, last_seqs: &HashMap<EntityId, Seq>) -> Self {
        let state_entity = session_state_entity(main_entity);
        MessageSessions {
            locks: HashMap::new(),
            state_entity,
            state_last_seq: last_seqs.get(&state_entity).copied().unwrap_or(0),
            states: HashMap::new(),
        }
    }

    pub(crate) fn entity(&self) -> EntityId {
        self.state_entity
    }

    pub(crate) fn restore(&mut self, message: RecoveredMessage) {
        self.state_last_seq = self.state_last_seq.max(message.seq);
        if let Some(id) = message.meta.message_id {
            self.states.insert(id, (message.seq, message.body));
        }
    }

    /// Remove records for every stored session state.
    pub(crate) fn removal_records(&self) -> Vec<Record> {
        self.states
            .values()
            .map(|&(seq, body)| Record::Remove {
                entity: self.state_entity,
                seq,
                body,
            })
            .collect()
    }

    /// Forgets the session locks `owner` holds.
    pub(crate) fn release_all(&mut self, owner: ConsumerId) -> usize {
        let before = self.locks.len();
        self.locks.retain(|_, lock| lock.owner != owner);
        before - self.locks.len()
    }

    fn live_lock(&self, id: &str, now_ms: i64) -> Option<SessionLock> {
        self.locks
            .get(id)
            .filter(|lock| lock.until_ms > now_ms)
            .copied()
    }
}

/// Which session a receiver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSessionPick<'a> {
    Id(&'a str),
    /// The unlocked session whose oldest available message is the oldest.
    NextAvailable,
}

/// A session lock handed to a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSessionGrant {
    pub session_id: Box<str>,
    pub locked_until_ms: i64,
}

impl Queue {
    /// Locks a session for `consumer`. A specific session can be locked whether or not it
    /// has messages, unless someone else holds it; the next available one is `None` when
    /// no unlocked session has an available message.
    pub fn accept_session(
        &mut self,
        pick: MessageSessionPick<'_>,
        consumer: ConsumerId,
        now_ms: i64,
    ) -> Result<Option<MessageSessionGrant>, CoreError> {
        let id: Box<str> = match pick {
            MessageSessionPick::Id(id) => {
                if self
                    .sessions
                    .live_lock(id, now_ms)
                    .is_some_and(|lock| lock.owner != consumer)
                {
                    return Err(CoreError::SessionCannotBeLocked(id.to_owned()));
                }
                id.into()
            }
            MessageSessionPick::NextAvailable => {
                let sessions = &self.sessions;
                let oldest = self
                    .main
                    .sessions_with_available()
                    .filter(|(id, _)| sessions.live_lock(id, now_ms).is_none())
                    .min_by_key(|(_, seq)| *seq)
                    .map(|(id, _)| Box::<str>::from(id));
                match oldest {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        let locked_until_ms = now_ms.saturating_add(self.config.lock_duration_ms);
        self.sessions.locks.insert(
            id.clone(),
            SessionLock {
                owner: consumer,
                until_ms: locked_until_ms,
            },
        );
        Ok(Some(MessageSessionGrant {
            session_id: id,
            locked_until_ms,
        }))
    }

    /// Whether `consumer` holds a live lock on session `id`.
    pub fn holds_session(&self, id: &str, consumer: ConsumerId, now_ms: i64) -> bool {
        self.sessions
            .live_lock(id, now_ms)
            .is_some_and(|lock| lock.owner == consumer)
    }

    /// When the lock on session `id` runs out, if it is held.
    pub fn session_locked_until(&self, id: &str, now_ms: i64) -> Option<i64> {
        self.sessions
            .live_lock(id, now_ms)
            .map(|lock| lock.until_ms)
    }

    /// Extends `holder`'s lock on session `id` by the lock duration, and with it the locks
    /// of the session's messages it has. Anyone else gets `SessionLockLost`.
    pub fn renew_session_lock(
        &mut self,
        id: &str,
        holder: ConsumerId,
        now_ms: i64,
    ) -> Result<i64, CoreError> {
        let until = now_ms.saturating_add(self.config.lock_duration_ms);
        let owner = {
            let lock = self
                .sessions
                .locks
                .get_mut(id)
                .filter(|lock| lock.until_ms > now_ms && lock.owner == holder)
                .ok_or(CoreError::SessionLockLost)?;
            lock.until_ms = until;
            lock.owner
        };
        for seq in self.main.seqs_locked_by(owner) {
            let in_session = self
                .main
                .entry(seq)
                .is_some_and(|entry| entry.session_id() == Some(id));
            if in_session {
                self.main.renew(seq, until);
            }
        }
        Ok(until)
    }

    /// Gives up `consumer`'s lock on session `id` (its link closed).
    pub fn release_session(&mut self, id: &str, consumer: ConsumerId) {
        if self
            .sessions
            .locks
            .get(id)
            .is_some_and(|lock| lock.owner == consumer)
        {
            self.sessions.locks.remove(id);
        }
    }

    /// The next message of session `id` for its lock holder, locked until the session lock
    /// runs out (peek-lock) or removed (receive-and-delete).
    pub fn next_in_session(
        &mut self,
        id: &str,
        mode: ReceiveMode,
        consumer: ConsumerId,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Option<Delivery>, CoreError> {
        let until = self
            .sessions
            .live_lock(id, now_ms)
            .filter(|lock| lock.owner == consumer)
            .ok_or(CoreError::SessionLockLost)?
            .until_ms;
        let mut delivery = self.next_available(
            SubQueueKind::Main,
            Some(id),
            mode,
            consumer,
            now_ms,
            journal,
        )?;
        if let Some(d) = &mut delivery
            && let Some(lock) = &mut d.lock
        {
            self.main.renew(d.seq, until);
            lock.locked_until_ms = until;
        }
        Ok(delivery)
    }

    /// The state stored for session `id`, if any.
    pub fn session_state(
        &self,
        id: &str,
        journal: &mut impl Journal,
    ) -> Result<Option<Bytes>, CoreError> {
        match self.sessions.states.get(id) {
            Some((_, body)) => Ok(Some(journal.read_body(*body)?)),
            None => Ok(None),
        }
    }

    /// Replaces (or with `None` clears) the state of session `id`.
    pub fn set_session_state(
        &mut self,
        id: &str,
        state: Option<Bytes>,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<(), CoreError> {
        let entity = self.sessions.state_entity;
        let mut records = Vec::with_capacity(2);
        if let Some(&(seq, body)) = self.sessions.states.get(id) {
            records.push(Record::Remove { entity, seq, body });
        }
        let new_seq = self.sessions.state_last_seq + 1;
        if let Some(state) = &state {
            records.push(Record::Enqueue {
                entity,
                seq: new_seq,
                meta: MessageMeta {
                    enqueued_at_ms: now_ms,
                    message_id: Some(id.into()),
                    ..MessageMeta::default()
                },
                body: state.clone(),
            });
        }
        if records.is_empty() {
            return Ok(());
        }
        let refs = journal.append(records)?;
        self.sessions.states.remove(id);
        if state.is_some() {
            let body = refs.first().copied().ok_or(CoreError::BodyRefMismatch {
                expected: 1,
                got: 0,
            })?;
            self.sessions.state_last_seq = new_seq;
            self.sessions.states.insert(id.into(), (new_seq, body));
        }
        Ok(())
    }

    /// Sessions with messages or a stored state, sorted.
    pub fn session_ids(&self) -> Vec<String> {
        let mut ids: BTreeSet<&str> = self
            .main
            .sessions_with_available()
            .map(|(id, _)| id)
            .collect();
        ids.extend(self.sessions.states.keys().map(AsRef::as_ref));
        ids.extend(self.sessions.locks.keys().map(AsRef::as_ref));
        ids.into_iter().map(str::to_owned).collect()
    }
}
