//! Service Bus messages as the REST runtime API carries them, and as AMQP messages.
//!
//! Over HTTP a message is its payload (the body), a `Content-Type`, a `BrokerProperties`
//! header holding the broker properties as JSON (`MessageId`, `Label`, `TimeToLive` in
//! seconds, `ScheduledEnqueueTimeUtc` as an RFC 1123 date...), and one header per custom
//! property (a quoted value is a string, `true`/`false` a boolean, a bare number a number).
//! A batch is a JSON array of `{Body, BrokerProperties, UserProperties}`.
//!
//! [`from_http`] and [`batch_from_http`] build the AMQP message the broker stores (the same
//! one an SDK would have sent: properties, header TTL, `x-opt-*` annotations, application
//! properties, the payload as one data section); [`to_http`] reads a stored message and its
//! delivery [`Stamp`] back into the REST form. What can't be carried one way or the other
//! (custom property values of other AMQP types, non-data bodies' structure) is left out.

use std::time::{Duration, UNIX_EPOCH};

use busbar_amqp::codec::{encode_descriptor, encode_value};
use busbar_amqp::message::{BodyKind, Header, Properties, scan_sections, section};
use busbar_amqp::value::{Descriptor, Symbol, Timestamp, Value};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Number, Value as Json};
use uuid::Uuid;

use crate::message::{Stamp, annotation, id_text};

/// The `Content-Type` of a batch send.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";

/// Why a message sent over HTTP can't be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestMessageError {
    #[error("The BrokerProperties header is not valid: {0}")]
    BrokerProperties(String),
    #[error("The batch body is not valid: {0}")]
    Batch(String),
    #[error("The stored message can't be read: {0}")]
    Stored(String),
}

/// The broker properties a sender may set, as the `BrokerProperties` JSON names them.
/// Others are ignored, as the service ignores them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Settable {
    message_id: Option<String>,
    correlation_id: Option<String>,
    label: Option<String>,
    reply_to: Option<String>,
    reply_to_session_id: Option<String>,
    session_id: Option<String>,
    to: Option<String>,
    /// Seconds, possibly fractional.
    time_to_live: Option<f64>,
    /// An RFC 1123 date.
    scheduled_enqueue_time_utc: Option<String>,
    partition_key: Option<String>,
    via_partition_key: Option<String>,
    content_type: Option<String>,
}

/// One message of a batch body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchEntry {
    #[serde(default)]
    body: Json,
    #[serde(default)]
    broker_properties: Option<Map<String, Json>>,
    #[serde(default)]
    user_properties: Option<Map<String, Json>>,
}

/// The AMQP message for one message sent over HTTP: `body` as its payload, `content_type`
/// (the request's), `broker_properties` (the raw header) and `custom_properties` (header
/// name and raw value).
pub fn from_http(
    body: Bytes,
    content_type: Option<&str>,
    broker_properties: Option<&str>,
    custom_properties: &[(String, String)],
) -> Result<Bytes, RestMessageError> {
    let settable = match broker_properties
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
    {
        Some(raw) => serde_json::from_str::<Settable>(raw)
            .map_err(|e| RestMessageError::BrokerProperties(e.to_string()))?,
        None => Settable::default(),
    };
    let properties: Vec<(String, Value)> = custom_properties
        .iter()
        .map(|(name, raw)| (name.clone(), custom_value(raw)))
        .collect();
    encode(&settable, content_type, &properties, body)
}

/// The AMQP messages of a batch body (`Content-Type` [`BATCH_CONTENT_TYPE`]).
pub fn batch_from_http(body: &[u8]) -> Result<Vec<Bytes>, RestMessageError> {
    let entries: Vec<BatchEntry> =
        serde_json::from_slice(body).map_err(|e| RestMessageError::Batch(e.to_string()))?;
    entries
        .into_iter()
        .map(|entry| {
            let settable = match entry.broker_properties {
                Some(map) => serde_json::from_value::<Settable>(Json::Object(map))
                    .map_err(|e| RestMessageError::BrokerProperties(e.to_string()))?,
                None => Settable::default(),
            };
            let payload = match entry.body {
                Json::Null => Bytes::new(),
                Json::String(text) => Bytes::from(text),
                other => Bytes::from(other.to_string()),
            };
            let properties: Vec<(String, Value)> = entry
                .user_properties
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(name, value)| Some((name, json_property(&value)?)))
                .collect();
            let content_type = settable.content_type.clone();
            encode(&settable, content_type.as_deref(), &properties, payload)
        })
        .collect()
}

fn encode(
    settable: &Settable,
    content_type: Option<&str>,
    application_properties: &[(String, Value)],
    payload: Bytes,
) -> Result<Bytes, RestMessageError> {
    let bad = |why: String| RestMessageError::BrokerProperties(why);
    if let (Some(session), Some(partition)) = (&settable.session_id, &settable.partition_key)
        && session != partition
    {
        return Err(bad(
            "SessionId and PartitionKey must be the same when both are set.".to_owned(),
        ));
    }
    let ttl_ms = match settable.time_to_live {
        Some(secs) if secs.is_finite() && secs > 0.0 => {
            // Longer than the AMQP header holds means "never expires".
            let ms = (secs * 1000.0).round();
            (ms < f64::from(u32::MAX)).then_some(ms as u32)
        }
        Some(secs) => return Err(bad(format!("TimeToLive must be positive, not {secs}."))),
        None => None,
    };
    let scheduled_ms = settable
        .scheduled_enqueue_time_utc
        .as_deref()
        .map(|text| {
            parse_date_ms(text).ok_or_else(|| {
                bad(format!(
                    "ScheduledEnqueueTimeUtc '{text}' is not an RFC 1123 date."
                ))
            })
        })
        .transpose()?;

    let mut out = BytesMut::with_capacity(payload.len() + 256);
    Header {
        durable: true,
        ttl: ttl_ms,
        ..Header::default()
    }
    .encode(&mut out);
    let mut annotations = Vec::new();
    if let Some(at) = scheduled_ms {
        annotations.push((
            Value::Symbol(Symbol::from_static(annotation::SCHEDULED_ENQUEUE_TIME)),
            Value::Timestamp(Timestamp(at)),
        ));
    }
    for (key, value) in [
        (annotation::PARTITION_KEY, &settable.partition_key),
        (annotation::VIA_PARTITION_KEY, &settable.via_partition_key),
    ] {
        if let Some(value) = value {
            annotations.push((
                Value::Symbol(Symbol::from_static(key)),
                Value::String(value.clone()),
            ));
        }
    }
    if !annotations.is_empty() {
        encode_descriptor(&Descriptor::Code(section::MESSAGE_ANNOTATIONS), &mut out);
        encode_value(&Value::Map(annotations), &mut out);
    }
    Properties {
        message_id: Some(Value::String(
            settable
                .message_id
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().simple().to_string()),
        )),
        to: settable.to.clone(),
        subject: settable.label.clone(),
        reply_to: settable.reply_to.clone(),
        correlation_id: settable.correlation_id.clone().map(Value::String),
        content_type: content_type.filter(|t| !t.is_empty()).map(Symbol::from),
        absolute_expiry_time: None,
        group_id: settable.session_id.clone(),
        reply_to_group_id: settable.reply_to_session_id.clone(),
        ..Properties::default()
    }
    .encode(&mut out);
    if !application_properties.is_empty() {
        let map = application_properties
            .iter()
            .map(|(name, value)| (Value::String(name.clone()), value.clone()))
            .collect();
        encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
        encode_value(&Value::Map(map), &mut out);
    }
    encode_descriptor(&Descriptor::Code(section::DATA), &mut out);
    encode_value(&Value::Binary(payload), &mut out);
    Ok(out.freeze())
}

/// A custom property's header value as an AMQP value: `"text"` a string, `true`/`false` a
/// boolean, an integer a long, another number a double, anything else the text itself.
pub fn custom_value(raw: &str) -> Value {
    let raw = raw.trim();
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return match serde_json::from_str::<String>(raw) {
            Ok(text) => Value::String(text),
            Err(_) => Value::String(raw[1..raw.len() - 1].to_owned()),
        };
    }
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = raw.parse::<i64>() {
        return Value::Long(n);
    }
    if let Ok(x) = raw.parse::<f64>()
        && x.is_finite()
    {
        return Value::Double(x);
    }
    Value::String(raw.to_owned())
}

/// A custom property value of a batch (JSON) as an AMQP value.
/// A JSON property value (string, boolean, number) as an AMQP value; `None` for others.
pub fn json_property(value: &Json) -> Option<Value> {
    Some(match value {
        Json::String(text) => Value::String(text.clone()),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => Value::Double(n.as_f64()?),
        },
        _ => return None,
    })
}

/// An AMQP application property value as a custom property header value (see
/// [`custom_value`]); `None` for types the REST API has no form for.
pub fn custom_header(value: &Value) -> Option<String> {
    let quoted = |text: &str| serde_json::to_string(text).ok();
    match value {
        Value::String(text) => quoted(text),
        Value::Symbol(symbol) => quoted(symbol.as_str()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Float(x) => Some(Number::from_f64(f64::from(*x))?.to_string()),
        Value::Double(x) => Some(Number::from_f64(*x)?.to_string()),
        Value::Timestamp(Timestamp(ms)) => quoted(&format_date_ms(*ms)),
        Value::Uuid(bytes) => quoted(&Uuid::from_bytes(*bytes).hyphenated().to_string()),
        Value::Char(c) => quoted(&c.to_string()),
        other => other.as_i64().map(|n| n.to_string()),
    }
}

/// A stored message in its REST form.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpMessage {
    pub body: Bytes,
    pub content_type: Option<String>,
    /// The `BrokerProperties` header: JSON.
    pub broker_properties: String,
    /// Custom properties: header name and value.
    pub custom_properties: Vec<(String, String)>,
    /// The message id, as text, for the message's URI.
    pub message_id: Option<String>,
}

/// `stored` (a message as the broker keeps it) with its delivery `stamp` and, for a
/// peek-lock receive, `lock_token`, in its REST form. The body is the concatenation of its
/// data sections, or the text or bytes of an `amqp-value` string or binary.
pub fn to_http(
    stored: &Bytes,
    stamp: &Stamp,
    lock_token: Option<Uuid>,
) -> Result<HttpMessage, RestMessageError> {
    let unreadable = |e: busbar_amqp::CodecError| RestMessageError::Stored(e.to_string());
    let scanned = scan_sections(stored).map_err(unreadable)?;
    let properties = scanned
        .properties()
        .map_err(unreadable)?
        .unwrap_or_default();
    let annotations = scanned.message_annotations().map_err(unreadable)?;
    let body = match scanned.sections.body_kind {
        Some(BodyKind::Data) => {
            let sections = scanned.data_sections().map_err(unreadable)?;
            match sections.as_slice() {
                [one] => one.clone(),
                many => Bytes::from(many.concat()),
            }
        }
        Some(BodyKind::AmqpValue) => {
            let section =
                busbar_amqp::codec::decode_value(&mut scanned.body_bytes()).map_err(unreadable)?;
            match section {
                Value::Described(_, value) => match *value {
                    Value::String(text) => Bytes::from(text),
                    Value::Binary(bytes) => bytes,
                    _ => Bytes::new(),
                },
                _ => Bytes::new(),
            }
        }
        _ => Bytes::new(),
    };

    let mut broker = Map::new();
    let mut put = |key: &str, value: Json| {
        broker.insert(key.to_owned(), value);
    };
    put(
        "DeliveryCount",
        Json::from(u64::from(stamp.delivery_count) + 1),
    );
    put("EnqueuedSequenceNumber", Json::from(stamp.sequence_number));
    put(
        "EnqueuedTimeUtc",
        Json::from(format_date_ms(stamp.enqueued_at_ms)),
    );
    if let (Some(token), Some(until)) = (lock_token, stamp.locked_until_ms) {
        put("LockToken", Json::from(token.hyphenated().to_string()));
        put("LockedUntilUtc", Json::from(format_date_ms(until)));
    }
    let message_id = properties.message_id.as_ref().and_then(id_text);
    if let Some(id) = &message_id {
        put("MessageId", Json::from(id.clone()));
    }
    put("SequenceNumber", Json::from(stamp.sequence_number));
    put(
        "State",
        Json::from(match stamp.state {
            1 => "Deferred",
            2 => "Scheduled",
            _ => "Active",
        }),
    );
    if let Some(expires) = stamp.expires_at_ms {
        let secs = (expires.saturating_sub(stamp.enqueued_at_ms)) as f64 / 1000.0;
        if let Some(n) = Number::from_f64(secs) {
            put("TimeToLive", Json::Number(n));
        }
    }
    let texts = [
        (
            "CorrelationId",
            properties.correlation_id.as_ref().and_then(id_text),
        ),
        ("Label", properties.subject.clone()),
        ("ReplyTo", properties.reply_to.clone()),
        ("ReplyToSessionId", properties.reply_to_group_id.clone()),
        ("SessionId", properties.group_id.clone()),
        ("To", properties.to.clone()),
    ];
    for (key, value) in texts {
        if let Some(value) = value {
            put(key, Json::from(value));
        }
    }
    if let Some(annotations) = &annotations {
        if let Some(at) = annotations
            .map_get(annotation::SCHEDULED_ENQUEUE_TIME)
            .and_then(Value::as_i64)
        {
            put("ScheduledEnqueueTimeUtc", Json::from(format_date_ms(at)));
        }
        for (key, name) in [
            (annotation::PARTITION_KEY, "PartitionKey"),
            (annotation::VIA_PARTITION_KEY, "ViaPartitionKey"),
        ] {
            if let Some(text) = annotations.map_get(key).and_then(Value::as_str) {
                put(name, Json::from(text.to_owned()));
            }
        }
    }

    let custom_properties = match scanned.application_properties().map_err(unreadable)? {
        Some(Value::Map(entries)) => entries
            .iter()
            .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), custom_header(value)?)))
            .collect(),
        _ => Vec::new(),
    };
    Ok(HttpMessage {
        body,
        content_type: properties
            .content_type
            .map(|symbol| symbol.as_str().to_owned()),
        broker_properties: Json::Object(broker).to_string(),
        custom_properties,
        message_id,
    })
}

/// The broker properties answered to a lock renewal: the lock and its new expiry.
pub fn renewed_lock(token: Uuid, locked_until_ms: i64) -> String {
    let mut broker = Map::new();
    broker.insert(
        "LockToken".to_owned(),
        Json::from(token.hyphenated().to_string()),
    );
    broker.insert(
        "LockedUntilUtc".to_owned(),
        Json::from(format_date_ms(locked_until_ms)),
    );
    Json::Object(broker).to_string()
}

/// An RFC 1123 date (`Sun, 06 Nov 1994 08:49:37 GMT`) as ms since the Unix epoch.
pub fn parse_date_ms(text: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(text.trim()).ok()?;
    let since = at.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// Ms since the Unix epoch as an RFC 1123 date; times before the epoch read as the epoch.
pub fn format_date_ms(ms: i64) -> String {
    // The format has four-digit years: later times read as the last second it can show.
    const LAST_SHOWN_MS: u64 = 253_402_300_799_000;
    let ms = u64::try_from(ms).unwrap_or(0).min(LAST_SHOWN_MS);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::message::inbound;

    fn broker_json(message: &HttpMessage) -> Map<String, Json> {
        match serde_json::from_str(&message.broker_properties).unwrap() {
            Json::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    const SENT_AT: &str = "Sun, 06 Nov 2044 08:49:37 GMT";

    #[test]
    fn an_http_message_becomes_the_amqp_message_an_sdk_would_send() {
        let broker = format!(
            r#"{{"MessageId":"m-1","CorrelationId":"c-1","Label":"greeting","ReplyTo":"back",
               "ReplyToSessionId":"rs","SessionId":"s-1","To":"there","TimeToLive":90.5,
               "ScheduledEnqueueTimeUtc":"{SENT_AT}","PartitionKey":"s-1","Unknown":1}}"#
        );
        let custom = [
            ("priority".to_owned(), "\"High\"".to_owned()),
            ("count".to_owned(), "42".to_owned()),
            ("ratio".to_owned(), "0.5".to_owned()),
            ("urgent".to_owned(), "true".to_owned()),
            ("bare".to_owned(), "plain words".to_owned()),
        ];
        let amqp = from_http(
            Bytes::from_static(b"hello"),
            Some("text/plain"),
            Some(&broker),
            &custom,
        )
        .unwrap();
        let scanned = scan_sections(&amqp).unwrap();
        let properties = scanned.properties().unwrap().unwrap();
        assert_eq!(properties.message_id, Some(Value::String("m-1".into())));
        assert_eq!(properties.correlation_id, Some(Value::String("c-1".into())));
        assert_eq!(properties.subject.as_deref(), Some("greeting"));
        assert_eq!(properties.reply_to.as_deref(), Some("back"));
        assert_eq!(properties.reply_to_group_id.as_deref(), Some("rs"));
        assert_eq!(properties.group_id.as_deref(), Some("s-1"));
        assert_eq!(properties.to.as_deref(), Some("there"));
        assert_eq!(
            properties.content_type.as_ref().map(Symbol::as_str),
            Some("text/plain")
        );
        assert_eq!(scanned.header().unwrap().unwrap().ttl, Some(90_500));
        assert_eq!(scanned.data_sections().unwrap(), vec![Bytes::from("hello")]);
        let application = scanned.application_properties().unwrap().unwrap();
        assert_eq!(
            application.map_get("priority"),
            Some(&Value::String("High".into()))
        );
        assert_eq!(application.map_get("count"), Some(&Value::Long(42)));
        assert_eq!(application.map_get("ratio"), Some(&Value::Double(0.5)));
        assert_eq!(application.map_get("urgent"), Some(&Value::Bool(true)));
        assert_eq!(
            application.map_get("bare"),
            Some(&Value::String("plain words".into()))
        );

        let read = inbound(&amqp).unwrap();
        assert_eq!(read.message_id.as_deref(), Some("m-1"));
        assert_eq!(read.session_id.as_deref(), Some("s-1"));
        assert_eq!(read.ttl_ms, Some(90_500));
        assert_eq!(read.scheduled_at_ms, parse_date_ms(SENT_AT));
    }

    #[test]
    fn a_stored_message_reads_back_as_the_rest_api_shows_it() {
        let amqp = from_http(
            Bytes::from_static(b"payload"),
            Some("application/json"),
            Some(r#"{"MessageId":"m-2","Label":"l","SessionId":"s","CorrelationId":"c"}"#),
            &[
                ("name".to_owned(), "\"x \\\" y\"".to_owned()),
                ("n".to_owned(), "7".to_owned()),
                ("flag".to_owned(), "false".to_owned()),
            ],
        )
        .unwrap();
        let token = Uuid::from_u128(0x1234);
        let stamp = Stamp {
            sequence_number: 9,
            enqueued_at_ms: 1_000_000,
            delivery_count: 2,
            locked_until_ms: Some(1_060_000),
            lock_token: None,
            state: 0,
            expires_at_ms: Some(1_030_000),
        };
        let http = to_http(&amqp, &stamp, Some(token)).unwrap();
        assert_eq!(http.body, Bytes::from_static(b"payload"));
        assert_eq!(http.content_type.as_deref(), Some("application/json"));
        assert_eq!(http.message_id.as_deref(), Some("m-2"));
        let broker = broker_json(&http);
        assert_eq!(broker["DeliveryCount"], Json::from(3));
        assert_eq!(broker["SequenceNumber"], Json::from(9));
        assert_eq!(broker["EnqueuedSequenceNumber"], Json::from(9));
        assert_eq!(broker["LockToken"], Json::from(token.to_string()));
        assert_eq!(
            broker["LockedUntilUtc"],
            Json::from(format_date_ms(1_060_000))
        );
        assert_eq!(
            broker["EnqueuedTimeUtc"],
            Json::from("Thu, 01 Jan 1970 00:16:40 GMT")
        );
        assert_eq!(broker["TimeToLive"], Json::from(30.0));
        assert_eq!(broker["State"], Json::from("Active"));
        assert_eq!(broker["Label"], Json::from("l"));
        assert_eq!(broker["SessionId"], Json::from("s"));
        assert_eq!(broker["CorrelationId"], Json::from("c"));
        assert_eq!(
            http.custom_properties,
            vec![
                ("name".to_owned(), "\"x \\\" y\"".to_owned()),
                ("n".to_owned(), "7".to_owned()),
                ("flag".to_owned(), "false".to_owned()),
            ]
        );
        // And the header values read back as the same AMQP values.
        for (_, raw) in &http.custom_properties {
            let value = custom_value(raw);
            assert_eq!(custom_header(&value).as_deref(), Some(raw.as_str()));
        }
    }

    #[test]
    fn an_sdk_message_reads_with_its_types_and_a_receive_without_lock_has_no_token() {
        let mut out = BytesMut::new();
        Properties {
            message_id: Some(Value::Uuid([7; 16])),
            subject: Some("s".into()),
            ..Properties::default()
        }
        .encode(&mut out);
        encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
        encode_value(
            &Value::Map(vec![
                (Value::String("i".into()), Value::Int(-3)),
                (Value::String("d".into()), Value::Double(1.25)),
                (
                    Value::String("t".into()),
                    Value::Timestamp(Timestamp(784_111_777_000)),
                ),
                (Value::String("skipped".into()), Value::List(vec![])),
            ]),
            &mut out,
        );
        encode_descriptor(&Descriptor::Code(section::AMQP_VALUE), &mut out);
        encode_value(&Value::String("text body".into()), &mut out);
        let stamp = Stamp {
            sequence_number: 1,
            enqueued_at_ms: 0,
            delivery_count: 0,
            locked_until_ms: None,
            lock_token: None,
            state: 0,
            expires_at_ms: None,
        };
        let http = to_http(&out.freeze(), &stamp, None).unwrap();
        assert_eq!(http.body, Bytes::from_static(b"text body"));
        let broker = broker_json(&http);
        assert!(!broker.contains_key("LockToken"));
        assert!(!broker.contains_key("TimeToLive"));
        assert_eq!(broker["DeliveryCount"], Json::from(1));
        assert_eq!(
            broker["MessageId"],
            Json::from(Uuid::from_bytes([7; 16]).to_string())
        );
        assert_eq!(
            http.custom_properties,
            vec![
                ("i".to_owned(), "-3".to_owned()),
                ("d".to_owned(), "1.25".to_owned()),
                (
                    "t".to_owned(),
                    "\"Sun, 06 Nov 1994 08:49:37 GMT\"".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_batch_is_one_amqp_message_per_entry() {
        let body = br#"[{"Body":"first","BrokerProperties":{"MessageId":"a","Label":"one"},
                         "UserProperties":{"Color":"red","Count":2,"Ok":true}},
                        {"Body":"second"}]"#;
        let messages = batch_from_http(body).unwrap();
        assert_eq!(messages.len(), 2);
        let first = scan_sections(&messages[0]).unwrap();
        let properties = first.properties().unwrap().unwrap();
        assert_eq!(properties.message_id, Some(Value::String("a".into())));
        assert_eq!(properties.subject.as_deref(), Some("one"));
        let application = first.application_properties().unwrap().unwrap();
        assert_eq!(
            application.map_get("Color"),
            Some(&Value::String("red".into()))
        );
        assert_eq!(application.map_get("Count"), Some(&Value::Long(2)));
        assert_eq!(application.map_get("Ok"), Some(&Value::Bool(true)));
        let second = scan_sections(&messages[1]).unwrap();
        assert_eq!(second.data_sections().unwrap(), vec![Bytes::from("second")]);
        assert!(
            second.properties().unwrap().unwrap().message_id.is_some(),
            "every message gets an id"
        );
    }

    #[test]
    fn bad_broker_properties_and_batches_are_refused() {
        for raw in [
            "not json",
            r#"{"TimeToLive":"soon"}"#,
            r#"{"TimeToLive":-1}"#,
            r#"{"ScheduledEnqueueTimeUtc":"tomorrow"}"#,
            r#"{"SessionId":"a","PartitionKey":"b"}"#,
        ] {
            assert!(
                matches!(
                    from_http(Bytes::new(), None, Some(raw), &[]),
                    Err(RestMessageError::BrokerProperties(_))
                ),
                "{raw}"
            );
        }
        assert!(matches!(
            batch_from_http(b"{\"Body\":1}"),
            Err(RestMessageError::Batch(_))
        ));
    }
}
