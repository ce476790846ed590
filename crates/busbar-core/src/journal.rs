//! What the core needs from its caller to make a change durable.

use busbar_store::{BodyRef, MessageMeta, Record, StoreError};
use bytes::Bytes;

/// The caller's side of every state change. The server implements it over its store (and
/// its AMQP codec for [`Journal::dead_letter_body`]); tests implement it in memory.
///
/// The core calls `append` at most once per operation, with the records of that operation
/// in order, *before* changing its in-memory state, and changes nothing if it fails. The
/// caller holds the queue's lock across the whole call, so log order equals sequence
/// order.
pub trait Journal {
    /// Appends `records` atomically, in order; returns one `BodyRef` per
    /// `Record::Enqueue`, in order. (The server typically also keeps the store's commit
    /// future, to await durability before acknowledging.)
    fn append(&mut self, records: Vec<Record>) -> Result<Vec<BodyRef>, StoreError>;

    /// Reads back a body that is not resident in memory.
    fn read_body(&mut self, body: BodyRef) -> Result<Bytes, StoreError>;

    /// The body of a message's dead-letter copy: `original` with the application
    /// properties `DeadLetterReason` and `DeadLetterErrorDescription` set (strings; a
    /// `None` leaves the property out).
    fn dead_letter_body(
        &mut self,
        original: &Bytes,
        reason: Option<&str>,
        description: Option<&str>,
    ) -> Bytes;

    /// The body of a message standing in for one whose stored body can't be read back
    /// (damaged on disk): no content, the session id from `meta` (a queued message's id is
    /// not kept in memory, so `description` names its sequence number), and `reason` and
    /// `description` as `DeadLetterReason` and `DeadLetterErrorDescription`.
    fn stand_in_body(&mut self, meta: &MessageMeta, reason: &str, description: &str) -> Bytes;
}

/// A caller-supplied rewrite of a message body applied at settlement, e.g. merging the
/// `propertiesToModify` of an abandon, defer or dead-letter into the application
/// properties. The core does not parse AMQP.
pub type BodyEdit<'a> = &'a dyn Fn(&Bytes) -> Bytes;
