//! Service Bus message handling on raw AMQP messages: what the broker reads from a message
//! on the way in (message-id, session id, TTL, schedule), how a stored message is stamped on
//! the way out (delivery count, sequence number, enqueued time, locked-until), and the body
//! rewrites settlement needs (properties to modify, dead-letter reason).
//!
//! The bare message is never re-encoded: only the header, message annotations and, when
//! asked, application properties are rewritten (see [`busbar_amqp::message::write_delivery`]).

use busbar_amqp::codec::{encode_descriptor, encode_value};
use busbar_amqp::message::{Header, RewriteOptions, ScannedMessage, rewrite, scan_sections};
use busbar_amqp::value::{Descriptor, Symbol, Timestamp, Value};
use busbar_amqp::{CodecError, message};
use bytes::{Bytes, BytesMut};
use uuid::Uuid;

/// Annotation keys the broker stamps or reads.
pub mod annotation {
    pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
    pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
    pub const LOCKED_UNTIL: &str = "x-opt-locked-until";
    pub const MESSAGE_STATE: &str = "x-opt-message-state";
    pub const SCHEDULED_ENQUEUE_TIME: &str = "x-opt-scheduled-enqueue-time";
    pub const PARTITION_KEY: &str = "x-opt-partition-key";
    pub const VIA_PARTITION_KEY: &str = "x-opt-via-partition-key";
    /// A delivery annotation: the lock token as an AMQP uuid, beside the delivery tag that
    /// holds it in .NET byte order. Service Bus sends both; the azservicebus crate reads
    /// only this one (it would read the tag in the wrong byte order).
    pub const LOCK_TOKEN: &str = "x-opt-lock-token";
}

/// Application property names of a dead-lettered message.
pub const DEAD_LETTER_REASON: &str = "DeadLetterReason";
pub const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// What the broker needs from an incoming message, read without decoding the body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inbound {
    /// The message to store: as received, plus a message-id when it had none.
    pub body: Bytes,
    /// The message-id as text (for duplicate detection); uuids and numbers are formatted.
    pub message_id: Option<String>,
    /// `properties.group-id`: the Service Bus session id.
    pub session_id: Option<String>,
    /// `header.ttl`, in ms.
    pub ttl_ms: Option<i64>,
    /// `x-opt-scheduled-enqueue-time`, in ms since the Unix epoch.
    pub scheduled_at_ms: Option<i64>,
}

/// Reads an incoming message and gives it a message-id if it has none (the JS SDK's lock
/// renewer needs one, and the real service assigns one too).
pub fn inbound(payload: &Bytes) -> Result<Inbound, CodecError> {
    let scanned = scan_sections(payload)?;
    let properties = scanned.properties()?;
    let existing_id = properties.as_ref().and_then(|p| p.message_id.clone());
    let (body, message_id) = match existing_id {
        Some(id) => (payload.clone(), id),
        None => {
            let id = Value::String(Uuid::new_v4().simple().to_string());
            let options = RewriteOptions {
                message_id_if_missing: Some(&id),
                ..RewriteOptions::default()
            };
            (rewrite(&scanned, &options)?, id)
        }
    };
    let ttl_ms = scanned
        .header()?
        .and_then(|h| h.ttl)
        .filter(|&ttl| ttl > 0)
        .map(i64::from);
    let scheduled_at_ms = scanned
        .message_annotations()?
        .as_ref()
        .and_then(|a| a.map_get(annotation::SCHEDULED_ENQUEUE_TIME))
        .and_then(Value::as_i64);
    Ok(Inbound {
        body,
        message_id: id_text(&message_id),
        session_id: properties.and_then(|p| p.group_id),
        ttl_ms,
        scheduled_at_ms,
    })
}

impl From<Inbound> for busbar_core::NewMessage {
    fn from(inbound: Inbound) -> Self {
        busbar_core::NewMessage {
            body: inbound.body,
            message_id: inbound.message_id.map(Into::into),
            session_id: inbound.session_id.map(Into::into),
            ttl_ms: inbound.ttl_ms,
            scheduled_at_ms: inbound.scheduled_at_ms,
        }
    }
}

/// The messages a transfer carries (one, or each of a batch), read for enqueueing.
pub fn new_messages(
    payload: &Bytes,
    message_format: u32,
) -> Result<Vec<busbar_core::NewMessage>, CodecError> {
    split(payload, message_format)?
        .iter()
        .map(|inner| inbound(inner).map(Into::into))
        .collect()
}

/// The message-id as text: strings as they are, uuids hyphenated, numbers in decimal,
/// binary in hex.
pub fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.as_str().to_owned()),
        Value::Uuid(bytes) => Some(Uuid::from_bytes(*bytes).hyphenated().to_string()),
        Value::Ulong(n) => Some(n.to_string()),
        Value::Binary(b) => Some(b.iter().map(|byte| format!("{byte:02x}")).collect()),
        _ => None,
    }
}

/// The inner messages of a batch (message-format 0x80013700), or the message itself.
pub fn split(payload: &Bytes, message_format: u32) -> Result<Vec<Bytes>, CodecError> {
    if message_format == message::BATCH_MESSAGE_FORMAT {
        message::split_batch(payload)
    } else {
        Ok(vec![payload.clone()])
    }
}

/// Per-delivery facts stamped onto a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sequence_number: i64,
    pub enqueued_at_ms: i64,
    /// Previous failed deliveries (the AMQP header's delivery-count).
    pub delivery_count: u32,
    /// Peek-lock deliveries only.
    pub locked_until_ms: Option<i64>,
    /// Peek-lock deliveries on a link only (management and REST responses carry the token
    /// in their own fields).
    pub lock_token: Option<Uuid>,
    /// 0 active, 1 deferred, 2 scheduled.
    pub state: i32,
    /// Absolute expiry, when the message has a TTL.
    pub expires_at_ms: Option<i64>,
}

impl Stamp {
    /// The facts of `delivery`, with `locked_until_ms` for a peek-lock delivery.
    pub fn of(delivery: &busbar_core::Delivery, locked_until_ms: Option<i64>) -> Stamp {
        Stamp {
            sequence_number: i64::try_from(delivery.seq).unwrap_or(i64::MAX),
            enqueued_at_ms: delivery.meta.enqueued_at_ms,
            delivery_count: delivery.meta.delivery_count,
            locked_until_ms,
            lock_token: None,
            state: delivery.meta.state as i32,
            expires_at_ms: delivery.meta.expires_at_ms,
        }
    }
}

/// The most a stamp adds to a stored message, so that a delivery's buffer is sized once
/// (grown, it was copied again for every message): a header with every field, the lock
/// token's delivery annotations, the four Service Bus annotations in a section of their own,
/// and properties filled up to absolute-expiry-time (202 bytes), with room to spare for a
/// stored annotations map that outgrows its one-byte size.
const STAMP_ROOM: usize = 256;

/// `stored` stamped for delivery (see [`write_delivery`]) in a buffer allocated once.
pub fn stamped_delivery(stored: &Bytes, stamp: &Stamp) -> Result<Bytes, CodecError> {
    let mut out = BytesMut::new();
    write_delivery(&mut out, stored, stamp)?;
    Ok(out.freeze())
}

/// Writes `stored` out for delivery with `stamp` applied: header (delivery-count; the
/// stored durable/priority/ttl kept), Service Bus annotations, absolute-expiry-time.
/// Room for the largest stamp is reserved first, so `out` grows at most once.
pub fn write_delivery(out: &mut BytesMut, stored: &Bytes, stamp: &Stamp) -> Result<(), CodecError> {
    let scanned = scan_sections(stored)?;
    out.reserve(stored.len() + STAMP_ROOM);
    write_scanned_delivery(out, &scanned, stamp)
}

fn write_scanned_delivery(
    out: &mut BytesMut,
    scanned: &ScannedMessage,
    stamp: &Stamp,
) -> Result<(), CodecError> {
    let header = Header {
        delivery_count: stamp.delivery_count,
        ..scanned.header()?.unwrap_or_default()
    };
    let mut annotations: [(Symbol, Value); 4] = [
        (
            Symbol::from_static(annotation::SEQUENCE_NUMBER),
            Value::Long(stamp.sequence_number),
        ),
        (
            Symbol::from_static(annotation::ENQUEUED_TIME),
            Value::Timestamp(Timestamp(stamp.enqueued_at_ms)),
        ),
        (
            Symbol::from_static(annotation::MESSAGE_STATE),
            Value::Int(stamp.state),
        ),
        (Symbol::from_static(annotation::LOCKED_UNTIL), Value::Null),
    ];
    let count = match stamp.locked_until_ms {
        Some(until) => {
            annotations[3].1 = Value::Timestamp(Timestamp(until));
            4
        }
        None => 3,
    };
    let lock_token = stamp.lock_token.map(|token| {
        [(
            Symbol::from_static(annotation::LOCK_TOKEN),
            Value::Uuid(token.into_bytes()),
        )]
    });
    let options = RewriteOptions {
        header: Some(&header),
        delivery_annotations: lock_token.as_ref().map_or(&[], |entry| entry.as_slice()),
        annotations: &annotations[..count],
        absolute_expiry_time: stamp.expires_at_ms.map(Timestamp),
        ..RewriteOptions::default()
    };
    message::write_delivery(out, scanned, &options)
}

/// `stored` with `properties` merged into its application properties. Entries whose key
/// or value can't be carried are skipped.
pub fn with_application_properties(
    stored: &Bytes,
    properties: &[(String, Value)],
) -> Result<Bytes, CodecError> {
    if properties.is_empty() {
        return Ok(stored.clone());
    }
    let scanned = scan_sections(stored)?;
    let options = RewriteOptions {
        application_properties: properties,
        ..RewriteOptions::default()
    };
    rewrite(&scanned, &options)
}

/// The body of a dead-lettered copy: reason and description as string application
/// properties. Falls back to the original if it can't be rewritten (it was accepted once,
/// so it scans; this is belt and braces).
pub fn dead_letter_body(
    original: &Bytes,
    reason: Option<&str>,
    description: Option<&str>,
) -> Bytes {
    let mut properties = Vec::with_capacity(2);
    if let Some(reason) = reason {
        properties.push((
            DEAD_LETTER_REASON.to_owned(),
            Value::String(reason.to_owned()),
        ));
    }
    if let Some(description) = description {
        properties.push((
            DEAD_LETTER_DESCRIPTION.to_owned(),
            Value::String(description.to_owned()),
        ));
    }
    with_application_properties(original, &properties).unwrap_or_else(|_| original.clone())
}

/// A dead-lettered message made ready to be sent again (the console's "repair and
/// resubmit"): its dead-letter reason and description dropped, `properties` set, and its
/// body replaced by one data section of `payload` when given. Header, annotations and
/// system properties are kept byte for byte.
pub fn resubmitted_body(
    stored: &Bytes,
    payload: Option<Bytes>,
    properties: &[(String, Value)],
) -> Result<Bytes, CodecError> {
    let scanned = scan_sections(stored)?;
    let removed = [
        DEAD_LETTER_REASON.to_owned(),
        DEAD_LETTER_DESCRIPTION.to_owned(),
    ];
    let options = RewriteOptions {
        application_properties: properties,
        removed_application_properties: &removed,
        ..RewriteOptions::default()
    };
    let rewritten = rewrite(&scanned, &options)?;
    let Some(payload) = payload else {
        return Ok(rewritten);
    };
    let scanned = scan_sections(&rewritten)?;
    let body_start = scanned
        .sections
        .body
        .as_ref()
        .map(|body| body.start)
        .or(scanned.sections.footer.as_ref().map(|footer| footer.start))
        .unwrap_or(rewritten.len());
    let mut out = BytesMut::with_capacity(body_start + payload.len() + 8);
    out.extend_from_slice(&rewritten[..body_start]);
    encode_descriptor(&Descriptor::Code(message::section::DATA), &mut out);
    encode_value(&Value::Binary(payload), &mut out);
    if let Some(footer) = scanned.section_bytes(&scanned.sections.footer) {
        out.extend_from_slice(&footer);
    }
    Ok(out.freeze())
}

/// A message standing in for one whose stored form can't be read back: the given message
/// id and session id, an empty data body, and `reason` and `description` as the dead-letter
/// application properties.
pub fn stand_in_body(
    message_id: Option<&str>,
    session_id: Option<&str>,
    reason: &str,
    description: &str,
) -> Bytes {
    let mut out = BytesMut::new();
    message::Properties {
        message_id: message_id.map(|id| Value::String(id.to_owned())),
        group_id: session_id.map(str::to_owned),
        ..message::Properties::default()
    }
    .encode(&mut out);
    encode_descriptor(&Descriptor::Code(message::section::DATA), &mut out);
    encode_value(&Value::Binary(Bytes::new()), &mut out);
    dead_letter_body(&out.freeze(), Some(reason), Some(description))
}

/// Turns a symbol- or string-keyed map (a disposition's message-annotations, a
/// management request's properties-to-modify) into application properties.
pub fn properties_to_modify(map: Option<&Value>) -> Vec<(String, Value)> {
    let Some(Value::Map(entries)) = map else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), value.clone())))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use busbar_amqp::codec::{encode_descriptor, encode_value};
    use busbar_amqp::message::Properties;
    use busbar_amqp::value::Descriptor;

    fn message(properties: Option<Properties>, header: Option<Header>, body: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(h) = header {
            h.encode(&mut out);
        }
        if let Some(p) = properties {
            p.encode(&mut out);
        }
        encode_descriptor(&Descriptor::Code(0x75), &mut out);
        encode_value(&Value::Binary(Bytes::copy_from_slice(body)), &mut out);
        out.freeze()
    }

    #[test]
    fn assigns_a_message_id_only_when_missing() {
        let without = message(None, None, b"hello");
        let inbound_without = inbound(&without).unwrap();
        let id = inbound_without.message_id.clone().unwrap();
        assert_eq!(id.len(), 32);
        let scanned = scan_sections(&inbound_without.body).unwrap();
        assert_eq!(scanned.message_id().unwrap(), Some(Value::String(id)));
        assert_eq!(
            scanned.body_bytes(),
            scan_sections(&without).unwrap().body_bytes()
        );

        let with = message(
            Some(Properties {
                message_id: Some(Value::String("m1".into())),
                group_id: Some("s1".into()),
                ..Properties::default()
            }),
            Some(Header {
                ttl: Some(5000),
                ..Header::default()
            }),
            b"x",
        );
        let inbound_with = inbound(&with).unwrap();
        assert_eq!(inbound_with.body, with, "kept byte for byte");
        assert_eq!(inbound_with.message_id.as_deref(), Some("m1"));
        assert_eq!(inbound_with.session_id.as_deref(), Some("s1"));
        assert_eq!(inbound_with.ttl_ms, Some(5000));
    }

    #[test]
    fn stamps_delivery_facts_and_keeps_the_body() {
        let stored = message(
            Some(Properties {
                message_id: Some(Value::String("m1".into())),
                ..Properties::default()
            }),
            Some(Header {
                durable: true,
                ttl: Some(9000),
                ..Header::default()
            }),
            b"payload",
        );
        let mut out = BytesMut::new();
        let stamp = Stamp {
            sequence_number: 7,
            enqueued_at_ms: 1_000,
            delivery_count: 2,
            locked_until_ms: Some(61_000),
            lock_token: Some(Uuid::from_u128(0xc196adb1_841a_4fb5_945c_6a379bdb73db)),
            state: 0,
            expires_at_ms: Some(10_000),
        };
        write_delivery(&mut out, &stored, &stamp).unwrap();
        let delivered = scan_sections(&out.freeze()).unwrap();
        assert_eq!(
            delivered
                .delivery_annotations()
                .unwrap()
                .unwrap()
                .map_get(annotation::LOCK_TOKEN),
            Some(&Value::Uuid(
                Uuid::from_u128(0xc196adb1_841a_4fb5_945c_6a379bdb73db).into_bytes()
            )),
            "the lock token in RFC 4122 order, as management requests carry it"
        );
        let header = delivered.header().unwrap().unwrap();
        assert_eq!(header.delivery_count, 2);
        assert!(header.durable);
        assert_eq!(header.ttl, Some(9000));
        let annotations = delivered.message_annotations().unwrap().unwrap();
        assert_eq!(
            annotations.map_get(annotation::SEQUENCE_NUMBER),
            Some(&Value::Long(7))
        );
        assert_eq!(
            annotations.map_get(annotation::LOCKED_UNTIL),
            Some(&Value::Timestamp(Timestamp(61_000)))
        );
        assert_eq!(
            delivered
                .properties()
                .unwrap()
                .unwrap()
                .absolute_expiry_time,
            Some(Timestamp(10_000))
        );
        assert_eq!(
            delivered.body_bytes(),
            scan_sections(&stored).unwrap().body_bytes()
        );
    }

    #[test]
    fn the_largest_stamp_fits_the_room_reserved_for_it() {
        // Nothing to replace: every stamped section is added whole.
        let stored = message(None, None, b"x");
        let stamp = Stamp {
            sequence_number: i64::MAX,
            enqueued_at_ms: i64::MAX,
            delivery_count: u32::MAX,
            locked_until_ms: Some(i64::MAX),
            lock_token: Some(Uuid::from_u128(u128::MAX)),
            state: i32::MAX,
            expires_at_ms: Some(i64::MAX),
        };
        let stamped = stamped_delivery(&stored, &stamp).unwrap();
        assert!(
            stamped.len() <= stored.len() + STAMP_ROOM,
            "the stamp added {} bytes",
            stamped.len() - stored.len()
        );
    }

    #[test]
    fn dead_letter_body_carries_reason_as_strings() {
        let stored = message(None, None, b"x");
        let body = dead_letter_body(&stored, Some("Bad"), Some("why"));
        let props = scan_sections(&body)
            .unwrap()
            .application_properties()
            .unwrap()
            .unwrap();
        assert_eq!(
            props.map_get(DEAD_LETTER_REASON),
            Some(&Value::String("Bad".into()))
        );
        assert_eq!(
            props.map_get(DEAD_LETTER_DESCRIPTION),
            Some(&Value::String("why".into()))
        );
    }
}
