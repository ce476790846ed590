//! Messages as the application sees them, and their AMQP encoding in Service Bus's
//! dialect: session id in `group-id`, partition key and scheduled time as message
//! annotations, broker state (sequence number, lock) read back from annotations and the
//! delivery tag.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use uuid::Uuid;

use busbar_amqp::codec::{MapKey, MapReader, encode_descriptor, encode_value};
use busbar_amqp::message::{Header, Properties, scan_sections, section};
use busbar_amqp::{Descriptor, Symbol, Timestamp, Value};

use super::error::{ServiceBusError, ServiceBusResult};

pub(crate) const PARTITION_KEY: &str = "x-opt-partition-key";
pub(crate) const SCHEDULED_ENQUEUE_TIME: &str = "x-opt-scheduled-enqueue-time";
pub(super) const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
pub(super) const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
pub(super) const LOCKED_UNTIL: &str = "x-opt-locked-until";
pub(super) const MESSAGE_STATE: &str = "x-opt-message-state";
pub(super) const DEAD_LETTER_SOURCE: &str = "x-opt-deadletter-source";
pub(super) const ENQUEUE_SEQUENCE_NUMBER: &str = "x-opt-enqueue-sequence-number";
pub(crate) const DEAD_LETTER_REASON: &str = "DeadLetterReason";
pub(crate) const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// A message to send.
///
/// ```
/// use std::time::Duration;
/// use busbar_client::ServiceBusMessage;
///
/// let message = ServiceBusMessage::new("hello")
///     .with_message_id("order-1")
///     .with_subject("orders")
///     .with_time_to_live(Duration::from_secs(60))
///     .with_application_property("priority", 5)
///     .with_application_property("express", true);
/// assert_eq!(message.body.as_ref(), b"hello");
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceBusMessage {
    /// The payload, sent as one `data` section.
    pub body: Bytes,
    /// A random id is given to a message sent without one.
    pub message_id: Option<String>,
    /// Makes the message part of a session (AMQP `group-id`).
    pub session_id: Option<String>,
    /// Links a reply to its request.
    pub correlation_id: Option<String>,
    /// The label (AMQP `subject`).
    pub subject: Option<String>,
    /// The address it is meant for (kept for the application; the service ignores it).
    pub to: Option<String>,
    /// Where replies go.
    pub reply_to: Option<String>,
    /// The session replies go to.
    pub reply_to_session_id: Option<String>,
    /// The body's MIME type.
    pub content_type: Option<String>,
    /// How long the service keeps it (capped by the entity's default time to live).
    pub time_to_live: Option<Duration>,
    /// Held by the service until then (sent with [`ServiceBusSender::send_message`], or set
    /// by [`ServiceBusSender::schedule_messages`]).
    ///
    /// [`ServiceBusSender::send_message`]: crate::ServiceBusSender::send_message
    /// [`ServiceBusSender::schedule_messages`]: crate::ServiceBusSender::schedule_messages
    pub scheduled_enqueue_time: Option<SystemTime>,
    /// Chooses the partition of a partitioned entity (must equal the session id when both are set).
    pub partition_key: Option<String>,
    /// Custom properties, of any AMQP type (`Value::from` converts Rust primitives).
    pub application_properties: BTreeMap<String, Value>,
}

impl ServiceBusMessage {
    /// A message with `body` and nothing else set.
    pub fn new(body: impl Into<Bytes>) -> Self {
        ServiceBusMessage {
            body: body.into(),
            ..ServiceBusMessage::default()
        }
    }

    /// Sets [`Self::message_id`].
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets [`Self::session_id`].
    pub fn with_session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Sets [`Self::correlation_id`].
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets [`Self::subject`].
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets [`Self::to`].
    pub fn with_to(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }

    /// Sets [`Self::reply_to`].
    pub fn with_reply_to(mut self, reply_to: impl Into<String>) -> Self {
        self.reply_to = Some(reply_to.into());
        self
    }

    /// Sets [`Self::reply_to_session_id`].
    pub fn with_reply_to_session_id(mut self, id: impl Into<String>) -> Self {
        self.reply_to_session_id = Some(id.into());
        self
    }

    /// Sets [`Self::content_type`].
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets [`Self::time_to_live`].
    pub fn with_time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = Some(ttl);
        self
    }

    /// Sets [`Self::scheduled_enqueue_time`].
    pub fn with_scheduled_enqueue_time(mut self, at: SystemTime) -> Self {
        self.scheduled_enqueue_time = Some(at);
        self
    }

    /// Sets [`Self::partition_key`].
    pub fn with_partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Adds (or replaces) an application property; `value` is any AMQP value or a Rust primitive.
    pub fn with_application_property(
        mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        self.application_properties.insert(key.into(), value.into());
        self
    }

    /// The encoded AMQP message (header, annotations, properties, application properties,
    /// one `data` section), with `message_id` or else `fallback_id` as its message-id.
    pub(crate) fn encode(&self, fallback_id: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(self.body.len() + 256);
        if let Some(ttl) = self.time_to_live {
            Header {
                ttl: Some(u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX)),
                ..Header::default()
            }
            .encode(&mut out);
        }
        let mut annotations = Vec::new();
        if let Some(key) = &self.partition_key {
            annotations.push((Value::sym(PARTITION_KEY), Value::String(key.clone())));
        }
        if let Some(at) = self.scheduled_enqueue_time {
            annotations.push((Value::sym(SCHEDULED_ENQUEUE_TIME), timestamp(at)));
        }
        if !annotations.is_empty() {
            put_section(
                section::MESSAGE_ANNOTATIONS,
                &Value::Map(annotations),
                &mut out,
            );
        }
        let now = SystemTime::now();
        Properties {
            message_id: Some(Value::String(
                self.message_id
                    .clone()
                    .unwrap_or_else(|| fallback_id.to_owned()),
            )),
            to: self.to.clone(),
            subject: self.subject.clone(),
            reply_to: self.reply_to.clone(),
            correlation_id: self.correlation_id.clone().map(Value::String),
            content_type: self.content_type.as_deref().map(Symbol::from),
            creation_time: self.time_to_live.map(|_| to_timestamp(now)),
            absolute_expiry_time: self
                .time_to_live
                .and_then(|ttl| now.checked_add(ttl))
                .map(to_timestamp),
            group_id: self.session_id.clone(),
            reply_to_group_id: self.reply_to_session_id.clone(),
            ..Properties::default()
        }
        .encode(&mut out);
        if !self.application_properties.is_empty() {
            let map = self
                .application_properties
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                .collect();
            put_section(section::APPLICATION_PROPERTIES, &Value::Map(map), &mut out);
        }
        put_section(section::DATA, &Value::Binary(self.body.clone()), &mut out);
        out.freeze()
    }

    /// The message id the encoding will carry.
    pub(crate) fn id_or_new(&self) -> String {
        self.message_id
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().simple().to_string())
    }
}

pub(crate) fn put_section(code: u64, value: &Value, out: &mut BytesMut) {
    encode_descriptor(&Descriptor::Code(code), out);
    encode_value(value, out);
}

/// Where a received message is in its life on the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceBusMessageState {
    #[default]
    /// Available to receivers.
    Active,
    /// Set aside by [`defer_message`](crate::ServiceBusReceiver::defer_message); only
    /// [`receive_deferred_messages`](crate::ServiceBusReceiver::receive_deferred_messages)
    /// gets it.
    Deferred,
    /// Waiting for its scheduled enqueue time (seen by peeks).
    Scheduled,
}

/// How a received message can be settled: on the link it came on, or through
/// `$management` with its lock token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Peeked, or received in receive-and-delete mode: nothing to settle.
    None,
    /// Delivered on the link with this id, under this delivery-id.
    Link { link_id: u64, delivery_id: u32 },
    /// Received by sequence number: settled through `$management` only.
    Management,
}

/// A message received (or peeked) from a queue or subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBusReceivedMessage {
    /// The `data` sections joined, or an `amqp-value` binary or string.
    pub body: Bytes,
    /// The sender's id for it.
    pub message_id: Option<String>,
    /// The session it belongs to.
    pub session_id: Option<String>,
    /// Links a reply to its request.
    pub correlation_id: Option<String>,
    /// The label (AMQP `subject`).
    pub subject: Option<String>,
    /// The address it is meant for.
    pub to: Option<String>,
    /// Where replies go.
    pub reply_to: Option<String>,
    /// The session replies go to.
    pub reply_to_session_id: Option<String>,
    /// The body's MIME type.
    pub content_type: Option<String>,
    /// The time to live it was sent with.
    pub time_to_live: Option<Duration>,
    /// When it was (or will be) enqueued, for scheduled messages.
    pub scheduled_enqueue_time: Option<SystemTime>,
    /// The partition key it was sent with.
    pub partition_key: Option<String>,
    /// Custom properties, as the AMQP types they were sent as.
    pub application_properties: BTreeMap<String, Value>,
    /// Assigned by the service, increasing per entity from 1.
    pub sequence_number: i64,
    /// When the service accepted it.
    pub enqueued_time: Option<SystemTime>,
    /// When the service stopped (or will stop) keeping it: enqueued time + TTL.
    pub expires_at: Option<SystemTime>,
    /// Previous deliveries that ended without completion.
    pub delivery_count: u32,
    /// Peek-lock: when the lock ends unless renewed.
    pub locked_until: Option<SystemTime>,
    /// Peek-lock: identifies the lock (the delivery tag, in .NET byte order).
    pub lock_token: Option<Uuid>,
    /// Active, deferred or scheduled.
    pub state: ServiceBusMessageState,
    /// Why it was dead-lettered (`DeadLetterReason`).
    pub dead_letter_reason: Option<String>,
    /// How it came to be dead-lettered (`DeadLetterErrorDescription`).
    pub dead_letter_error_description: Option<String>,
    /// The entity it was dead-lettered from, when it was then auto-forwarded.
    pub dead_letter_source: Option<String>,
    /// The sequence number it had in the entity it was forwarded from.
    pub enqueued_sequence_number: Option<i64>,
    /// The whole AMQP message as the service delivered it.
    pub raw_amqp_message: Bytes,
    pub(crate) settlement: Settlement,
}

impl ServiceBusReceivedMessage {
    /// Decodes a delivered message: the usual shape in one pass over its bytes (see
    /// `fast_read`), anything else (or anything wrong) by the general reader.
    pub(crate) fn decode(
        raw: Bytes,
        lock_token: Option<Uuid>,
        settlement: Settlement,
    ) -> ServiceBusResult<Self> {
        let mut parts = MessageParts::default();
        if super::fast_read::read(&raw, &mut parts).is_none() {
            parts = MessageParts::read(&raw)?;
        }
        Ok(parts.into_message(raw, lock_token, settlement))
    }
}

/// What a received message is made of besides its bytes, its lock and its link.
#[derive(Debug, Default, PartialEq)]
pub(super) struct MessageParts {
    /// `header.ttl`.
    pub(super) ttl: Option<u32>,
    pub(super) delivery_count: u32,
    pub(super) message_id: Option<String>,
    pub(super) to: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) reply_to: Option<String>,
    pub(super) correlation_id: Option<String>,
    pub(super) content_type: Option<String>,
    /// Milliseconds from the Unix epoch.
    pub(super) absolute_expiry_time: Option<i64>,
    /// `group-id`.
    pub(super) session_id: Option<String>,
    /// `reply-to-group-id`.
    pub(super) reply_to_session_id: Option<String>,
    pub(super) annotations: BrokerAnnotations,
    pub(super) application_properties: BTreeMap<String, Value>,
    pub(super) body: Bytes,
}

impl MessageParts {
    /// The general reader: every section decoded by the codec's own readers.
    fn read(raw: &Bytes) -> ServiceBusResult<Self> {
        let bad = |e: busbar_amqp::CodecError| {
            ServiceBusError::new(
                super::error::ErrorKind::ServiceCommunication,
                format!("the service delivered a message that does not decode: {e}"),
            )
        };
        let scanned = scan_sections(raw).map_err(bad)?;
        let header = scanned.header().map_err(bad)?.unwrap_or_default();
        let properties = scanned.properties().map_err(bad)?.unwrap_or_default();
        let annotations =
            BrokerAnnotations::read(scanned.message_annotation_entries().map_err(bad)?)
                .map_err(bad)?;
        let app = scanned.application_properties().map_err(bad)?;
        Ok(MessageParts {
            ttl: header.ttl,
            delivery_count: header.delivery_count,
            message_id: properties.message_id.map(id_text),
            to: properties.to,
            subject: properties.subject,
            reply_to: properties.reply_to,
            correlation_id: properties.correlation_id.map(id_text),
            content_type: properties.content_type.map(|s| s.as_str().to_owned()),
            absolute_expiry_time: properties.absolute_expiry_time.map(|t| t.0),
            session_id: properties.group_id,
            reply_to_session_id: properties.reply_to_group_id,
            annotations,
            application_properties: application_properties(app),
            body: crate::message::body_of(&scanned).map_err(ServiceBusError::from)?,
        })
    }

    /// The message, with the delivery's own bytes, lock token and settlement.
    #[inline]
    fn into_message(
        self,
        raw: Bytes,
        lock_token: Option<Uuid>,
        settlement: Settlement,
    ) -> ServiceBusReceivedMessage {
        let annotations = self.annotations;
        let application_properties = self.application_properties;
        let app_text = |key: &str| {
            application_properties
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let time_to_live = self.ttl.map(|ms| Duration::from_millis(ms.into()));
        let expires_at = self.absolute_expiry_time.and_then(from_millis).or_else(|| {
            annotations
                .enqueued_time
                .zip(time_to_live)
                .and_then(|(e, ttl)| e.checked_add(ttl))
        });
        ServiceBusReceivedMessage {
            body: self.body,
            message_id: self.message_id,
            session_id: self.session_id,
            correlation_id: self.correlation_id,
            subject: self.subject,
            to: self.to,
            reply_to: self.reply_to,
            reply_to_session_id: self.reply_to_session_id,
            content_type: self.content_type,
            time_to_live,
            scheduled_enqueue_time: annotations.scheduled_enqueue_time,
            partition_key: annotations.partition_key,
            sequence_number: annotations.sequence_number.unwrap_or(0),
            enqueued_time: annotations.enqueued_time,
            expires_at,
            delivery_count: self.delivery_count,
            locked_until: annotations.locked_until,
            lock_token,
            state: match annotations.message_state {
                Some(1) => ServiceBusMessageState::Deferred,
                Some(2) => ServiceBusMessageState::Scheduled,
                _ => ServiceBusMessageState::Active,
            },
            dead_letter_reason: app_text(DEAD_LETTER_REASON),
            dead_letter_error_description: app_text(DEAD_LETTER_DESCRIPTION),
            dead_letter_source: annotations.dead_letter_source,
            enqueued_sequence_number: annotations.enqueue_sequence_number,
            application_properties,
            raw_amqp_message: raw,
            settlement,
        }
    }
}

/// The application properties section's string-keyed entries (others are dropped).
pub(super) fn application_properties(section: Option<Value>) -> BTreeMap<String, Value> {
    let mut properties = BTreeMap::new();
    if let Some(Value::Map(pairs)) = section {
        for (k, v) in pairs {
            if let Some(k) = k.as_str() {
                properties.insert(k.to_owned(), v);
            }
        }
    }
    properties
}

/// The message annotations the service's dialect gives meaning to, read in one pass over
/// the encoded map (a lookup per key would compare, and check as UTF-8, every key each time).
#[derive(Debug, Default, PartialEq)]
pub(super) struct BrokerAnnotations {
    pub(super) sequence_number: Option<i64>,
    pub(super) enqueued_time: Option<SystemTime>,
    pub(super) locked_until: Option<SystemTime>,
    pub(super) message_state: Option<i64>,
    pub(super) scheduled_enqueue_time: Option<SystemTime>,
    pub(super) partition_key: Option<String>,
    pub(super) dead_letter_source: Option<String>,
    pub(super) enqueue_sequence_number: Option<i64>,
}

impl BrokerAnnotations {
    /// Decodes the values of the known keys only; the others are checked and dropped.
    fn read(mut entries: MapReader) -> Result<Self, busbar_amqp::CodecError> {
        let mut read = Self::default();
        while let Some(key) = entries.next_key()? {
            let MapKey::Name(key) = key else { continue };
            match key {
                k if k == SEQUENCE_NUMBER.as_bytes() => {
                    read.sequence_number = entries.integer_value()?;
                }
                k if k == ENQUEUED_TIME.as_bytes() => {
                    read.enqueued_time = entries.integer_value()?.and_then(from_millis);
                }
                k if k == LOCKED_UNTIL.as_bytes() => {
                    read.locked_until = entries.integer_value()?.and_then(from_millis);
                }
                k if k == MESSAGE_STATE.as_bytes() => {
                    read.message_state = entries.integer_value()?;
                }
                k if k == SCHEDULED_ENQUEUE_TIME.as_bytes() => {
                    read.scheduled_enqueue_time = entries.integer_value()?.and_then(from_millis);
                }
                k if k == PARTITION_KEY.as_bytes() => {
                    read.partition_key = text(&entries.value()?);
                }
                k if k == DEAD_LETTER_SOURCE.as_bytes() => {
                    read.dead_letter_source = text(&entries.value()?);
                }
                k if k == ENQUEUE_SEQUENCE_NUMBER.as_bytes() => {
                    read.enqueue_sequence_number = entries.integer_value()?;
                }
                _ => {}
            }
        }
        Ok(read)
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

impl From<&ServiceBusReceivedMessage> for ServiceBusMessage {
    /// A message to send again with the received one's body and properties.
    fn from(m: &ServiceBusReceivedMessage) -> Self {
        ServiceBusMessage {
            body: m.body.clone(),
            message_id: m.message_id.clone(),
            session_id: m.session_id.clone(),
            correlation_id: m.correlation_id.clone(),
            subject: m.subject.clone(),
            to: m.to.clone(),
            reply_to: m.reply_to.clone(),
            reply_to_session_id: m.reply_to_session_id.clone(),
            content_type: m.content_type.clone(),
            time_to_live: m.time_to_live,
            scheduled_enqueue_time: None,
            partition_key: m.partition_key.clone(),
            application_properties: m.application_properties.clone(),
        }
    }
}

/// A message id or correlation id as text, whichever AMQP type carried it.
pub(super) fn id_text(v: Value) -> String {
    match v {
        Value::String(text) => text,
        Value::Uuid(bytes) => Uuid::from_bytes(bytes).to_string(),
        Value::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Ulong(n) => n.to_string(),
        other => other.as_str().unwrap_or_default().to_owned(),
    }
}

/// The lock token a delivery tag carries (a GUID in .NET byte order).
pub(crate) fn lock_token_of(tag: &[u8]) -> Option<Uuid> {
    <[u8; 16]>::try_from(tag).ok().map(Uuid::from_bytes_le)
}

pub(crate) fn to_timestamp(t: SystemTime) -> Timestamp {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    };
    Timestamp(ms)
}

pub(crate) fn timestamp(t: SystemTime) -> Value {
    Value::Timestamp(to_timestamp(t))
}

/// The time `ms` milliseconds from the Unix epoch; `None` outside what the platform's
/// `SystemTime` holds (Windows' range is far smaller than a broker's i64 can say).
pub(crate) fn from_millis(ms: i64) -> Option<SystemTime> {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    }
}

pub(crate) fn system_time(v: &Value) -> Option<SystemTime> {
    v.as_i64().and_then(from_millis)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A message with every header and property field set, scheduled for `at`.
    fn every_header_and_property(at: SystemTime) -> ServiceBusMessage {
        ServiceBusMessage::new("body")
            .with_message_id("m1")
            .with_session_id("s1")
            .with_correlation_id("c1")
            .with_subject("sub")
            .with_to("to")
            .with_reply_to("rt")
            .with_reply_to_session_id("rts")
            .with_content_type("text/plain")
            .with_time_to_live(Duration::from_secs(90))
            .with_scheduled_enqueue_time(at)
            .with_partition_key("pk")
    }

    #[test]
    fn every_property_survives_encoding() {
        let at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
        let sent = every_header_and_property(at)
            .with_application_property("i", 7i32)
            .with_application_property("l", -7i64)
            .with_application_property("u", 7u64)
            .with_application_property("d", 1.5f64)
            .with_application_property("b", true)
            .with_application_property("s", "text")
            .with_application_property("bin", vec![1u8, 2])
            .with_application_property("t", Timestamp(5))
            .with_application_property("uuid", Value::Uuid([9; 16]));
        let got =
            ServiceBusReceivedMessage::decode(sent.encode("x"), None, Settlement::None).unwrap();
        let back = ServiceBusMessage::from(&got);
        assert_eq!(
            ServiceBusMessage {
                scheduled_enqueue_time: Some(at),
                ..back
            },
            sent
        );
        assert_eq!(got.scheduled_enqueue_time, Some(at));
    }

    #[test]
    fn message_without_id_gets_the_fallback() {
        let got = ServiceBusReceivedMessage::decode(
            ServiceBusMessage::new("b").encode("fallback"),
            None,
            Settlement::None,
        )
        .unwrap();
        assert_eq!(got.message_id.as_deref(), Some("fallback"));
        assert_eq!(got.sequence_number, 0);
        assert_eq!(got.state, ServiceBusMessageState::Active);
    }

    /// A message as the service delivers it: every annotation the dialect defines, plus
    /// ones it does not (an unknown symbol key with a compound value, a non-symbol key).
    fn delivered() -> Bytes {
        let mut out = BytesMut::new();
        Header {
            delivery_count: 3,
            ttl: Some(60_000),
            ..Header::default()
        }
        .encode(&mut out);
        let sym = |s: &str| Value::Symbol(Symbol::from(s));
        let annotations = vec![
            (sym("x-opt-unknown"), Value::List(vec![Value::Uint(1)])),
            (sym(SEQUENCE_NUMBER), Value::Long(42)),
            (sym(ENQUEUED_TIME), Value::Timestamp(Timestamp(1_000))),
            (Value::Ulong(7), Value::String("numeric key".into())),
            (sym(LOCKED_UNTIL), Value::Timestamp(Timestamp(2_000))),
            (sym(MESSAGE_STATE), Value::Int(1)),
            (
                sym(SCHEDULED_ENQUEUE_TIME),
                Value::Timestamp(Timestamp(3_000)),
            ),
            (sym(PARTITION_KEY), Value::String("pk".into())),
            (sym(DEAD_LETTER_SOURCE), Value::String("q".into())),
            (sym(ENQUEUE_SEQUENCE_NUMBER), Value::Long(41)),
        ];
        put_section(
            section::MESSAGE_ANNOTATIONS,
            &Value::Map(annotations),
            &mut out,
        );
        Properties {
            message_id: Some(Value::String("m1".into())),
            ..Properties::default()
        }
        .encode(&mut out);
        let app = vec![(
            Value::String(DEAD_LETTER_REASON.into()),
            Value::String("why".into()),
        )];
        put_section(section::APPLICATION_PROPERTIES, &Value::Map(app), &mut out);
        put_section(
            section::DATA,
            &Value::Binary(Bytes::from_static(b"body")),
            &mut out,
        );
        out.freeze()
    }

    #[test]
    fn broker_annotations_are_read_and_others_skipped() {
        let got = ServiceBusReceivedMessage::decode(delivered(), None, Settlement::None).unwrap();
        let at = from_millis;
        assert_eq!(got.sequence_number, 42);
        assert_eq!(got.enqueued_time, at(1_000));
        assert_eq!(got.expires_at, at(61_000));
        assert_eq!(got.locked_until, at(2_000));
        assert_eq!(got.state, ServiceBusMessageState::Deferred);
        assert_eq!(got.scheduled_enqueue_time, at(3_000));
        assert_eq!(got.partition_key.as_deref(), Some("pk"));
        assert_eq!(got.dead_letter_source.as_deref(), Some("q"));
        assert_eq!(got.enqueued_sequence_number, Some(41));
        assert_eq!(got.delivery_count, 3);
        assert_eq!(got.message_id.as_deref(), Some("m1"));
        assert_eq!(got.dead_letter_reason.as_deref(), Some("why"));
        assert_eq!(got.body.as_ref(), b"body");
    }

    #[test]
    fn a_message_cut_inside_a_section_is_an_error() {
        let raw = delivered();
        let s = scan_sections(&raw).unwrap().sections;
        let ends: Vec<usize> = [
            s.header,
            s.message_annotations,
            s.properties,
            s.application_properties,
            s.body,
        ]
        .into_iter()
        .flatten()
        .map(|r| r.end)
        .collect();
        for cut in 1..raw.len() {
            let got = ServiceBusReceivedMessage::decode(raw.slice(..cut), None, Settlement::None);
            assert_eq!(got.is_ok(), ends.contains(&cut), "cut at {cut}");
        }
    }

    #[test]
    fn annotations_that_are_not_a_map_are_an_error() {
        let mut out = BytesMut::new();
        put_section(section::MESSAGE_ANNOTATIONS, &Value::List(vec![]), &mut out);
        put_section(section::DATA, &Value::Binary(Bytes::new()), &mut out);
        assert!(ServiceBusReceivedMessage::decode(out.freeze(), None, Settlement::None).is_err());
    }

    #[test]
    fn lock_token_is_the_tag_in_dotnet_order() {
        let tag = [
            0xb1, 0xad, 0x96, 0xc1, 0x1a, 0x84, 0xb5, 0x4f, 0x94, 0x5c, 0x6a, 0x37, 0x9b, 0xdb,
            0x73, 0xdb,
        ];
        assert_eq!(
            lock_token_of(&tag).unwrap().to_string(),
            "c196adb1-841a-4fb5-945c-6a379bdb73db"
        );
        assert_eq!(lock_token_of(b"short"), None);
    }

    /// A message as Busbar delivers it to a processor: header, a lock token in delivery
    /// annotations, the broker's annotations, a message id, one data section.
    fn as_busbar_delivers() -> Bytes {
        let mut out = BytesMut::new();
        Header {
            durable: true,
            ..Header::default()
        }
        .encode(&mut out);
        let sym = |s: &str| Value::Symbol(Symbol::from(s));
        put_section(
            section::DELIVERY_ANNOTATIONS,
            &Value::Map(vec![(sym("x-opt-lock-token"), Value::Uuid([7; 16]))]),
            &mut out,
        );
        let annotations = vec![
            (sym(SEQUENCE_NUMBER), Value::Long(1)),
            (sym(ENQUEUED_TIME), Value::Timestamp(Timestamp(1_000))),
            (sym(MESSAGE_STATE), Value::Int(0)),
            (sym(LOCKED_UNTIL), Value::Timestamp(Timestamp(2_000))),
        ];
        put_section(
            section::MESSAGE_ANNOTATIONS,
            &Value::Map(annotations),
            &mut out,
        );
        Properties {
            message_id: Some(Value::String("0".into())),
            ..Properties::default()
        }
        .encode(&mut out);
        put_section(
            section::DATA,
            &Value::Binary(Bytes::from(vec![0xab; 300])),
            &mut out,
        );
        out.freeze()
    }

    /// Messages of every shape the tests know, each read by the one-pass reader.
    fn usual_messages() -> Vec<Bytes> {
        let at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
        let everything = every_header_and_property(at)
            .with_application_property(DEAD_LETTER_REASON, "why")
            .with_application_property("i", 7i32)
            .with_application_property("list", Value::List(vec![Value::Uint(1)]));
        let mut uuid_id = BytesMut::new();
        Properties {
            message_id: Some(Value::Uuid([3; 16])),
            correlation_id: Some(Value::Uuid([4; 16])),
            absolute_expiry_time: Some(Timestamp(5_000)),
            group_sequence: Some(9),
            ..Properties::default()
        }
        .encode(&mut uuid_id);
        vec![
            as_busbar_delivers(),
            everything.encode("x"),
            ServiceBusMessage::new("b").encode("fallback"),
            crate::message::encode_message_with(
                b"plain",
                &crate::message::MessageOptions {
                    durable: true,
                    message_id: Some("7".into()),
                },
            ),
            uuid_id.freeze(),
            Bytes::new(),
        ]
    }

    #[test]
    fn the_one_pass_reader_reads_the_usual_messages_as_the_general_one() {
        for raw in usual_messages() {
            let mut fast = MessageParts::default();
            let read = super::super::fast_read::read(&raw, &mut fast);
            assert!(read.is_some(), "not read in one pass: {raw:02x?}");
            assert_eq!(Some(fast), MessageParts::read(&raw).ok(), "{raw:02x?}");
        }
    }

    /// Whatever the one-pass reader accepts, the general one reads the same; it may leave
    /// any message to the general reader, but not the usual ones (see above). Each usual
    /// message is cut short and has each byte changed or removed.
    #[test]
    fn the_one_pass_reader_accepts_nothing_the_general_one_reads_otherwise() {
        // Priority as a uint, and an annotation the broker does not define holding a char.
        let unusual = [
            &b"\x00\x53\x70\xc0\x0b\x05\x41\x70\x00\x00\x00\x05\x40\x42\x52\x03\x00\x53\x75\xa0\x02hi"[..],
            &b"\x00\x53\x72\xc1\x09\x02\xa3\x01k\x73\x00\x00\x00\x61\x00\x53\x75\xa0\x02hi"[..],
        ]
        .map(Bytes::from_static);
        let mut variants = Vec::new();
        for raw in usual_messages()
            .into_iter()
            .chain([delivered()])
            .chain(unusual)
        {
            for cut in 0..raw.len() {
                variants.push(raw.slice(..cut));
                let mut removed = raw.to_vec();
                removed.remove(cut);
                variants.push(removed.into());
                for byte in [
                    0x00, 0x01, 0x02, 0x40, 0x41, 0x43, 0x45, 0x50, 0x53, 0x55, 0x56, 0x70, 0x73,
                    0x75, 0x80, 0x83, 0x98, 0xa0, 0xa1, 0xa3, 0xb1, 0xc0, 0xc1, 0xd0, 0xff,
                ]
                .into_iter()
                .chain([raw[cut].wrapping_add(1), raw[cut].wrapping_sub(1)])
                {
                    let mut changed = raw.to_vec();
                    changed[cut] = byte;
                    variants.push(changed.into());
                }
            }
        }
        let mut read_in_one_pass = 0;
        for raw in &variants {
            let mut fast = MessageParts::default();
            if super::super::fast_read::read(raw, &mut fast).is_some() {
                read_in_one_pass += 1;
                match MessageParts::read(raw) {
                    Ok(general) => assert_eq!(fast, general, "{raw:02x?}"),
                    Err(error) => panic!("read in one pass, but {error}: {raw:02x?}"),
                }
            }
        }
        assert!(read_in_one_pass > variants.len() / 10, "{read_in_one_pass}");
    }
}
