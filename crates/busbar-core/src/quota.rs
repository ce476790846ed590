//! The size cap of a queue or topic (Service Bus's `MaxSizeInMegabytes`).
//!
//! An entity's size is the bytes of the message bodies it stores, as the journal holds them
//! (the encoded AMQP message: header, properties, application properties and body):
//! every message of the main stream (active, locked, scheduled and deferred), of the
//! dead-letter queue and of the transfer dead-letter queue, as Service Bus counts them.
//! Duplicate-detection markers and session states are not counted. A topic's size is that
//! of the messages scheduled on it plus the sizes of its subscriptions.
//!
//! Only new messages are refused: settling, dead-lettering and moving messages within an
//! entity always work, so a full entity can be drained.

use crate::error::CoreError;

/// Refuses `incoming_bytes` more when they would take `entity` beyond `max_size_bytes`
/// (`None`: no cap).
pub(crate) fn ensure_room(
    entity: &str,
    max_size_bytes: Option<u64>,
    size_bytes: u64,
    incoming_bytes: u64,
) -> Result<(), CoreError> {
    match max_size_bytes {
        Some(max_size_bytes) if size_bytes.saturating_add(incoming_bytes) > max_size_bytes => {
            Err(CoreError::QuotaExceeded {
                entity: entity.to_owned(),
                size_bytes,
                max_size_bytes,
            })
        }
        _ => Ok(()),
    }
}

/// The bytes `messages` would add to an entity.
pub(crate) fn incoming_bytes<'a>(bodies: impl IntoIterator<Item = &'a bytes::Bytes>) -> u64 {
    bodies.into_iter().map(|body| body.len() as u64).sum()
}
