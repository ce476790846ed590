use busbar_store::{Seq, StoreError};

/// Why a core operation was refused. An operation that fails changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The lock token is unknown, already settled, or its lock has expired.
    #[error("the message lock was lost: it expired, was released, or the message was settled")]
    LockLost,
    #[error("no message with sequence number {0} in a state that allows this")]
    MessageNotFound(Seq),
    #[error("operation not allowed: {0}")]
    NotAllowed(&'static str),
    /// Another receiver holds the session's lock.
    #[error("the session '{0}' is locked by another receiver")]
    SessionCannotBeLocked(String),
    /// The session lock is not held (it expired, or was never taken or given up).
    #[error("the session lock was lost: it expired or is held by no one")]
    SessionLockLost,
    /// The entity is full: the message would take it beyond its `MaxSizeInMegabytes`
    /// (worded as Service Bus words it).
    #[error(
        "The maximum entity size has been reached or exceeded for '{entity}'. Size of entity in bytes: {size_bytes}, max entity size in bytes: {max_size_bytes}."
    )]
    QuotaExceeded {
        entity: String,
        size_bytes: u64,
        max_size_bytes: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal broke its contract (one `BodyRef` per `Enqueue` record).
    #[error("journal returned {got} body references for {expected} enqueue records")]
    BodyRefMismatch { expected: usize, got: usize },
}
