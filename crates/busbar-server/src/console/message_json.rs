//! A stored message as the console shows it: the system properties and application
//! properties read from its AMQP sections, the broker's own state beside them, and the
//! body as text, JSON or base64.

use std::collections::BTreeMap;

use base64::Engine as _;
use busbar_amqp::message::{BodyKind as AmqpBody, scan_sections};
use busbar_amqp::value::Value;
use busbar_atom::timestamp::format_utc;
use busbar_core::MessageView;
use busbar_http::console_api::{Body, BodyKind, Message, MessageState, TypedValue};
use busbar_servicebus::message::{DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, id_text};
use busbar_store::MessageState as StoredState;
use bytes::Bytes;

/// Annotation naming the queue a message was dead-lettered from, when it moved.
const DEAD_LETTER_SOURCE: &str = "x-opt-deadletter-source";

/// `view` (its state and times) with `stored`, its encoded form. `in_dead_letter` gives
/// the dead-letter state the view's own state can't tell.
pub fn message_json(view: &MessageView<'_>, stored: &Bytes, shown_as: MessageState) -> Message {
    let meta = &view.meta;
    let state = match (shown_as, meta.state) {
        (MessageState::DeadLetter | MessageState::TransferDeadLetter, _) => shown_as,
        (_, StoredState::Scheduled) => MessageState::Scheduled,
        (_, StoredState::Deferred) => MessageState::Deferred,
        (_, StoredState::Active) => MessageState::Active,
    };
    let mut message = Message {
        sequence_number: view.seq,
        state,
        message_id: None,
        session_id: meta.session_id.as_deref().map(str::to_owned),
        correlation_id: None,
        subject: None,
        content_type: None,
        to: None,
        reply_to: None,
        time_to_live_ms: meta
            .expires_at_ms
            .map(|at| at.saturating_sub(meta.enqueued_at_ms)),
        enqueued_time: Some(format_utc(meta.enqueued_at_ms)),
        scheduled_enqueue_time: meta.scheduled_at_ms.map(format_utc),
        expires_at: meta.expires_at_ms.map(format_utc),
        delivery_count: meta.delivery_count,
        locked_until: view.locked_until_ms.map(format_utc),
        dead_letter_reason: None,
        dead_letter_description: None,
        dead_letter_source: None,
        application_properties: BTreeMap::new(),
        body: Body {
            kind: BodyKind::Binary,
            text: None,
            base64: Some(String::new()),
            size: 0,
        },
    };
    let Ok(scanned) = scan_sections(stored) else {
        return message;
    };
    if let Ok(Some(properties)) = scanned.properties() {
        message.message_id = properties.message_id.as_ref().and_then(id_text);
        message.correlation_id = properties.correlation_id.as_ref().and_then(id_text);
        message.subject = properties.subject;
        message.content_type = properties.content_type.map(|t| t.as_str().to_owned());
        message.to = properties.to;
        message.reply_to = properties.reply_to;
        if message.session_id.is_none() {
            message.session_id = properties.group_id;
        }
    }
    if let Ok(Some(annotations)) = scanned.message_annotations() {
        message.dead_letter_source = annotations
            .map_get(DEAD_LETTER_SOURCE)
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if let Ok(Some(Value::Map(entries))) = scanned.application_properties() {
        for (key, value) in entries {
            let Some(name) = key.as_str() else { continue };
            match name {
                DEAD_LETTER_REASON => {
                    message.dead_letter_reason = value.as_str().map(str::to_owned)
                }
                DEAD_LETTER_DESCRIPTION => {
                    message.dead_letter_description = value.as_str().map(str::to_owned);
                }
                _ => {}
            }
            message
                .application_properties
                .insert(name.to_owned(), typed(&value));
        }
    }
    message.body = body(&scanned, message.content_type.as_deref());
    message
}

fn body(scanned: &busbar_amqp::message::ScannedMessage, content_type: Option<&str>) -> Body {
    let payload = match scanned.sections.body_kind {
        Some(AmqpBody::Data) => match scanned.data_sections() {
            Ok(sections) => Bytes::from(sections.concat()),
            Err(_) => Bytes::new(),
        },
        Some(AmqpBody::AmqpValue) => {
            match busbar_amqp::codec::decode_value(&mut scanned.body_bytes()) {
                Ok(Value::Described(_, value)) => match *value {
                    Value::String(text) => Bytes::from(text),
                    Value::Binary(bytes) => bytes,
                    other => Bytes::from(json_of(&other).to_string()),
                },
                _ => Bytes::new(),
            }
        }
        _ => scanned.body_bytes(),
    };
    let size = payload.len();
    match std::str::from_utf8(&payload) {
        Ok(text) => {
            let says_json = content_type.is_some_and(|t| t.to_ascii_lowercase().contains("json"));
            let looks_json = matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
                && serde_json::from_str::<serde_json::Value>(text).is_ok();
            Body {
                kind: if says_json || looks_json {
                    BodyKind::Json
                } else {
                    BodyKind::Text
                },
                text: Some(text.to_owned()),
                base64: None,
                size,
            }
        }
        Err(_) => Body {
            kind: BodyKind::Binary,
            text: None,
            base64: Some(base64::engine::general_purpose::STANDARD.encode(&payload)),
            size,
        },
    }
}

/// An application property with its AMQP type name.
fn typed(value: &Value) -> TypedValue {
    let type_name = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Ubyte(_) => "ubyte",
        Value::Ushort(_) => "ushort",
        Value::Uint(_) => "uint",
        Value::Ulong(_) => "ulong",
        Value::Byte(_) => "byte",
        Value::Short(_) => "short",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Decimal32(_) | Value::Decimal64(_) | Value::Decimal128(_) => "decimal",
        Value::Char(_) => "char",
        Value::Timestamp(_) => "timestamp",
        Value::Uuid(_) => "uuid",
        Value::Binary(_) => "binary",
        Value::String(_) => "string",
        Value::Symbol(_) => "symbol",
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Array(_) => "array",
        Value::Described(..) => "described",
    };
    TypedValue {
        type_name: type_name.to_owned(),
        value: json_of(value),
    }
}

fn json_of(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number)
        }
        Value::Double(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Ulong(n) => Json::from(*n),
        Value::Timestamp(t) => Json::from(format_utc(t.0)),
        Value::Uuid(bytes) => Json::from(uuid::Uuid::from_bytes(*bytes).hyphenated().to_string()),
        Value::Binary(bytes) => Json::from(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Value::String(text) => Json::from(text.clone()),
        Value::Symbol(symbol) => Json::from(symbol.as_str().to_owned()),
        Value::Char(c) => Json::from(c.to_string()),
        Value::List(items) | Value::Array(items) => {
            Json::Array(items.iter().map(json_of).collect())
        }
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k.as_str() {
                        Some(text) => text.to_owned(),
                        None => json_of(k).to_string(),
                    };
                    (key, json_of(v))
                })
                .collect(),
        ),
        Value::Described(_, inner) => json_of(inner),
        other => other.as_i64().map_or(Json::Null, Json::from),
    }
}
