//! The request/response envelope shared by the `$cbs` and `$management` nodes: reading a
//! request message and building its response, with the correlation-id a type-exact copy
//! of the request's message-id (Python matches uuids, JS strings).

use busbar_amqp::CodecError;
use busbar_amqp::codec::{decode_value, encode_descriptor, encode_value};
use busbar_amqp::message::{BodyKind, Properties, scan_sections};
use busbar_amqp::value::{Descriptor, Value};
use bytes::{Bytes, BytesMut};

const APPLICATION_PROPERTIES: u64 = 0x74;
const AMQP_VALUE: u64 = 0x77;

/// A request to a `$cbs` or `$management` node.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Echoed as the response's correlation-id.
    pub message_id: Option<Value>,
    pub reply_to: Option<String>,
    /// Application property `operation`.
    pub operation: Option<String>,
    /// All application properties (a map with string keys), or `Null`.
    pub application_properties: Value,
    /// The amqp-value body, or `Null`.
    pub body: Value,
}

impl Request {
    pub fn parse(payload: &Bytes) -> Result<Request, CodecError> {
        let scanned = scan_sections(payload)?;
        let properties = scanned.properties()?.unwrap_or_default();
        let application_properties = scanned.application_properties()?.unwrap_or(Value::Null);
        let operation = application_properties
            .map_get("operation")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let body = match scanned.sections.body_kind {
            Some(BodyKind::AmqpValue) => {
                let mut raw = scanned.body_bytes();
                match decode_value(&mut raw)? {
                    Value::Described(_, value) => *value,
                    other => other,
                }
            }
            _ => Value::Null,
        };
        Ok(Request {
            message_id: properties.message_id,
            reply_to: properties.reply_to,
            operation,
            application_properties,
            body,
        })
    }

    /// An application property of the request.
    pub fn property(&self, key: &str) -> Option<&Value> {
        self.application_properties.map_get(key)
    }
}

/// Builds a response message: correlation-id, the given application properties (string
/// keys) and an optional amqp-value body.
pub fn response(
    correlation_id: Option<&Value>,
    application_properties: Vec<(Value, Value)>,
    body: Option<Value>,
) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    Properties {
        correlation_id: correlation_id.cloned(),
        ..Properties::default()
    }
    .encode(&mut out);
    encode_descriptor(&Descriptor::Code(APPLICATION_PROPERTIES), &mut out);
    encode_value(&Value::Map(application_properties), &mut out);
    if let Some(body) = body {
        encode_descriptor(&Descriptor::Code(AMQP_VALUE), &mut out);
        encode_value(&body, &mut out);
    }
    out.freeze()
}

/// A `$cbs` put-token response (hyphenated status names; never an error-condition).
pub fn cbs_response(correlation_id: Option<&Value>, status: i32, description: &str) -> Bytes {
    response(
        correlation_id,
        vec![
            (Value::String("status-code".into()), Value::Int(status)),
            (
                Value::String("status-description".into()),
                Value::String(description.to_owned()),
            ),
        ],
        None,
    )
}

/// A `$management` response (camelCase status names; `errorCondition` on failures).
pub fn management_response(
    correlation_id: Option<&Value>,
    status: i32,
    description: &str,
    error_condition: Option<&str>,
    body: Option<Value>,
) -> Bytes {
    let mut properties = vec![
        (Value::String("statusCode".into()), Value::Int(status)),
        (
            Value::String("statusDescription".into()),
            Value::String(description.to_owned()),
        ),
    ];
    if let Some(condition) = error_condition {
        properties.push((
            Value::String("errorCondition".into()),
            Value::sym(condition),
        ));
    }
    response(correlation_id, properties, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(message_id: Value, operation: &str, body: Value) -> Bytes {
        let mut out = BytesMut::new();
        Properties {
            message_id: Some(message_id),
            reply_to: Some("cbs-1".into()),
            ..Properties::default()
        }
        .encode(&mut out);
        encode_descriptor(&Descriptor::Code(APPLICATION_PROPERTIES), &mut out);
        encode_value(
            &Value::Map(vec![(
                Value::String("operation".into()),
                Value::String(operation.into()),
            )]),
            &mut out,
        );
        encode_descriptor(&Descriptor::Code(AMQP_VALUE), &mut out);
        encode_value(&body, &mut out);
        out.freeze()
    }

    #[test]
    fn parses_a_put_token_request() {
        let id = Value::Uuid([7; 16]);
        let req = Request::parse(&request(
            id.clone(),
            "put-token",
            Value::String("SharedAccessSignature sr=x".into()),
        ))
        .unwrap();
        assert_eq!(req.message_id, Some(id));
        assert_eq!(req.operation.as_deref(), Some("put-token"));
        assert_eq!(req.reply_to.as_deref(), Some("cbs-1"));
        assert_eq!(req.body.as_str(), Some("SharedAccessSignature sr=x"));
    }

    #[test]
    fn response_echoes_the_id_with_its_type() {
        for id in [Value::Uuid([1; 16]), Value::String("abc".into())] {
            let bytes = cbs_response(Some(&id), 200, "OK");
            let scanned = scan_sections(&bytes).unwrap();
            assert_eq!(
                scanned.properties().unwrap().unwrap().correlation_id,
                Some(id)
            );
            let props = scanned.application_properties().unwrap().unwrap();
            assert_eq!(props.map_get("status-code"), Some(&Value::Int(200)));
            assert!(props.map_get("error-condition").is_none());
        }
    }

    #[test]
    fn management_error_carries_condition() {
        let bytes = management_response(
            Some(&Value::String("x".into())),
            501,
            "no",
            Some("amqp:not-implemented"),
            None,
        );
        let props = scan_sections(&bytes)
            .unwrap()
            .application_properties()
            .unwrap()
            .unwrap();
        assert_eq!(props.map_get("statusCode"), Some(&Value::Int(501)));
        assert_eq!(
            props.map_get("errorCondition"),
            Some(&Value::sym("amqp:not-implemented"))
        );
    }
}
