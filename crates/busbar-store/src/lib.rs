//! Durable message storage for Busbar.
//!
//! Job: make broker state survive crashes. Callers hand over [`Record`]s (enqueues,
//! updates, removals); the store writes them to an append-only, segmented log, makes
//! them durable according to [`Durability`] with group commit, serves message bodies
//! back by [`BodyRef`] so bodies need not live in memory, and replays the log at start
//! into the set of live messages.
//!
//! It must not interpret messages (bodies are opaque bytes), know about AMQP or Service
//! Bus, or decide broker semantics: it stores what the core decided.
//!
//! Contract (implemented by [`log::LogStore`]; a PostgreSQL backend will implement the
//! same [`Store`] trait and pass the same conformance suite):
//! - `append` assigns each `Enqueue` record a `BodyRef` synchronously and returns a
//!   [`Commit`](Store::Commit) future; the future resolves only once every record of that call (and of
//!   all earlier calls) is durable. Records of one `append` call are atomic: after a
//!   crash either all of them are recovered or none.
//! - Records are applied in append order on recovery.
//! - `read_body` works for any `BodyRef` returned by `append`, even before its commit, and
//!   never returns bytes other than those appended: a body damaged at rest is refused with
//!   [`StoreError::CorruptBody`].
//! - After a failed fsync the store is poisoned: every later append fails. Closing it and
//!   opening it again recovers in process, as at start.
//! - Out of disk space, appends fail at once with [`StoreError::NoSpace`] while what was
//!   accepted before waits, in place, until space is freed; then writing resumes by itself.
//!   [`Store::health`] says which of these holds.
//!
//! With the `conformance` feature, the `conformance` module holds backend-independent
//! checks of this contract, and `store_conformance_tests!` turns them into tests.

use std::future::Future;

use bytes::Bytes;

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod log;
pub mod stats;

pub use stats::{LatencyHistogram, StoreStats};

/// Store-wide entity number. Each queue, and each of its subqueues (dead-letter,
/// transfer dead-letter), has its own id and its own sequence numbers.
pub type EntityId = u32;
/// Per-entity sequence number, from 1.
pub type Seq = u64;

/// Where a message body lives; opaque to callers except for equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyRef {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
}

/// Delivery state of a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageState {
    #[default]
    Active = 0,
    Deferred = 1,
    Scheduled = 2,
}

/// What the broker needs about a message without reading its body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageMeta {
    pub enqueued_at_ms: i64,
    /// Absolute expiry (enqueued + TTL), if any.
    pub expires_at_ms: Option<i64>,
    /// When a scheduled message becomes active.
    pub scheduled_at_ms: Option<i64>,
    pub delivery_count: u32,
    pub state: MessageState,
    /// AMQP group-id: the Service Bus session id.
    pub session_id: Option<Box<str>>,
    /// Message id, kept for duplicate detection.
    pub message_id: Option<Box<str>>,
}

/// One change to durable state.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A new message in `entity` with sequence number `seq`; `body` is the encoded AMQP
    /// message as the broker will deliver it (minus per-delivery annotations).
    Enqueue {
        entity: EntityId,
        seq: Seq,
        meta: MessageMeta,
        body: Bytes,
    },
    /// The mutable part of a message changed (delivery count, state).
    Update {
        entity: EntityId,
        seq: Seq,
        delivery_count: u32,
        state: MessageState,
    },
    /// The message is gone (completed, dead-lettered elsewhere, expired, cancelled).
    /// `body` is the ref returned at enqueue, so the store can reclaim its segment.
    Remove {
        entity: EntityId,
        seq: Seq,
        body: BodyRef,
    },
}

/// A live message as recovered at start.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredMessage {
    pub entity: EntityId,
    pub seq: Seq,
    pub meta: MessageMeta,
    pub body: BodyRef,
}

/// Everything recovered from disk at open.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Live messages, sorted by (entity, seq).
    pub messages: Vec<RecoveredMessage>,
    /// Highest sequence number ever assigned per entity (even if since removed), so
    /// sequence numbers never go backwards across restarts.
    pub last_seq: std::collections::HashMap<EntityId, Seq>,
    /// The catalog blob last saved with [`Store::save_catalog`].
    pub catalog: Option<Bytes>,
}

/// How hard a commit works before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fdatasync before the commit resolves (group commit shares one sync among all
    /// waiting appends). The default, and the only mode that survives power loss.
    #[default]
    Sync,
    /// Write to the OS page cache and resolve at once; survives a process crash (kill -9)
    /// but not power loss. Only when chosen explicitly.
    Buffered,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("i/o error: {0}")]
    Io(String),
    #[error("log corrupted in {file} at offset {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error("store refuses writes after a failed sync: {0}")]
    Poisoned(String),
    /// Out of disk space: nothing was written for this call. Writes resume by themselves
    /// once space is freed, so the caller may retry later.
    #[error("store is out of disk space; writes resume once space is freed: {0}")]
    NoSpace(String),
    #[error("store is closed")]
    Closed,
    #[error("unknown body reference {0:?}")]
    UnknownBody(BodyRef),
    /// The body read back is not what was written (checked against the checksum stored
    /// with it): damaged on disk. Only this message is affected; it must not be delivered.
    #[error("message body {body:?} is damaged: {reason}")]
    CorruptBody { body: BodyRef, reason: String },
}

impl StoreError {
    /// Whether the same call may succeed later without anyone intervening (out of space:
    /// writes resume once space is freed). Clients should be told to back off and retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::NoSpace(_))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// Whether the store can take writes, for health reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    /// Out of space: appends fail with [`StoreError::NoSpace`] until space is freed; what
    /// was accepted before is kept and written then.
    NoSpace(String),
    /// A sync failed: appends fail with [`StoreError::Poisoned`] until the store is closed
    /// and opened again (which replays the log, as at start).
    Poisoned(String),
}

/// The storage contract every backend implements.
pub trait Store: Send + Sync + 'static {
    /// Future resolving once the appended records are durable.
    type Commit: Future<Output = Result<(), StoreError>> + Send + 'static;

    /// Queues `records` for writing; returns one `BodyRef` per `Enqueue`, in order, and
    /// the commit future. Fails at once if the store is poisoned or closed.
    fn append(&self, records: Vec<Record>) -> Result<(Vec<BodyRef>, Self::Commit), StoreError>;

    /// Like [`Store::append`] for changes nobody waits to see durable (a completion the
    /// client settled itself): the commit resolves once written, and the sync may come
    /// later, with the next group that needs one or within a short delay. Losing such a
    /// change in a crash redelivers a message, never loses one. Stores without the
    /// distinction treat it as `append`.
    fn append_relaxed(
        &self,
        records: Vec<Record>,
    ) -> Result<(Vec<BodyRef>, Self::Commit), StoreError> {
        self.append(records)
    }

    /// Whether writes can currently succeed.
    fn health(&self) -> StoreHealth;

    /// What the store has done since it was opened, from its own counters. Stores that
    /// keep none report zeros.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Reads a body back (from the page cache or disk; from memory if not yet written).
    fn read_body(&self, body: BodyRef) -> Result<Bytes, StoreError>;

    /// Durably replaces the catalog blob (entity definitions), atomically.
    fn save_catalog(&self, catalog: &[u8]) -> Result<(), StoreError>;

    /// Flushes, syncs and stops the writer; later appends fail with `Closed`.
    fn close(&self) -> Result<(), StoreError>;
}
