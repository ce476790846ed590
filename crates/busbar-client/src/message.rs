//! Building and reading the few message shapes the client itself needs: a plain data
//! message, and the `$cbs` put-token request and the check of its answer.

use bytes::{Bytes, BytesMut};

use busbar_amqp::codec::{encode_descriptor, encode_value};
use busbar_amqp::message::{BodyKind, Header, Properties, ScannedMessage, scan_sections, section};
use busbar_amqp::{Descriptor, Value};

use crate::error::{Error, Result};
use crate::request_response::Answer;

/// Options for [`encode_message_with`].
#[derive(Debug, Clone, Default)]
pub struct MessageOptions {
    /// Adds a header section with `durable=true` (persistent message).
    pub durable: bool,
    /// `properties.message-id`; a random UUID string when `None`.
    pub message_id: Option<String>,
}

/// A minimal message: properties with a random message-id, then one `data` section
/// holding `body`.
pub fn encode_message(body: &[u8]) -> Bytes {
    encode_message_with(body, &MessageOptions::default())
}

/// Like [`encode_message`], optionally durable and with a chosen message-id.
pub fn encode_message_with(body: &[u8], opts: &MessageOptions) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 64);
    if opts.durable {
        Header {
            durable: true,
            ..Header::default()
        }
        .encode(&mut out);
    }
    let id = match &opts.message_id {
        Some(id) => id.clone(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    Properties {
        message_id: Some(Value::String(id)),
        ..Properties::default()
    }
    .encode(&mut out);
    put_data_section(body, &mut out);
    out.freeze()
}

fn put_data_section(body: &[u8], out: &mut BytesMut) {
    encode_descriptor(&Descriptor::Code(section::DATA), out);
    // Values own their bytes; a one-off copy of the body is the price of reusing the
    // codec's constructor choice (vbin8 vs vbin32).
    encode_value(&Value::Binary(Bytes::copy_from_slice(body)), out);
}

/// The body of an encoded message: its `data` sections joined (zero-copy when there is
/// one), or the binary of an `amqp-value` body.
pub fn message_body(message: &Bytes) -> Result<Bytes> {
    body_of(&scan_sections(message)?)
}

/// [`message_body`] of a message already scanned.
pub(crate) fn body_of(scanned: &ScannedMessage) -> Result<Bytes> {
    match scanned.sections.body_kind {
        Some(BodyKind::Data) => Ok(scanned.data_body()?),
        _ => {
            let mut raw = scanned.body_bytes();
            if raw.is_empty() {
                return Ok(Bytes::new());
            }
            let mut probe = raw.clone();
            match busbar_amqp::codec::decode_value(&mut probe)? {
                Value::Described(_, v) => match *v {
                    Value::Binary(b) => Ok(b),
                    Value::String(s) => Ok(Bytes::from(s)),
                    _ => {
                        raw.clear();
                        Ok(raw)
                    }
                },
                _ => Ok(Bytes::new()),
            }
        }
    }
}

/// The `$cbs` put-token request (dialect §2.2): application-properties operation/type/name
/// and an amqp-value string body; the request/response pair adds the message-id, `to` and
/// reply-to.
pub(crate) fn put_token_request(audience: &str, token: &str) -> (Vec<(Value, Value)>, Value) {
    let str = |s: &str| Value::String(s.to_owned());
    (
        vec![
            (str("operation"), str("put-token")),
            (str("type"), str("servicebus.windows.net:sastoken")),
            (str("name"), str(audience)),
        ],
        str(token),
    )
}

/// A put-token answer is good with status 200 or 202.
pub(crate) fn check_cbs_status(answer: &Answer) -> Result<()> {
    match answer.status {
        Some(200 | 202) => Ok(()),
        Some(status) => Err(Error::PutToken {
            status,
            description: answer.description.clone(),
        }),
        None => Err(Error::Protocol(
            "put-token response without status-code".into(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_has_properties_and_one_data_section() {
        let msg = encode_message(b"hello");
        let scanned = scan_sections(&msg).unwrap();
        assert!(scanned.sections.header.is_none());
        let id = scanned.message_id().unwrap().unwrap();
        assert_eq!(id.as_str().map(str::len), Some(32));
        assert_eq!(
            scanned.data_sections().unwrap(),
            vec![Bytes::from_static(b"hello")]
        );
        assert_eq!(message_body(&msg).unwrap(), Bytes::from_static(b"hello"));
    }

    #[test]
    fn durable_message_and_large_body() {
        let body = vec![7u8; 70_000];
        let msg = encode_message_with(
            &body,
            &MessageOptions {
                durable: true,
                message_id: Some("m1".into()),
            },
        );
        let scanned = scan_sections(&msg).unwrap();
        assert!(scanned.header().unwrap().unwrap().durable);
        assert_eq!(
            scanned.message_id().unwrap(),
            Some(Value::String("m1".into()))
        );
        assert_eq!(&message_body(&msg).unwrap()[..], &body[..]);
    }

    #[test]
    fn amqp_value_string_body_reads_as_bytes() {
        let mut msg = BytesMut::new();
        encode_descriptor(&Descriptor::Code(section::AMQP_VALUE), &mut msg);
        encode_value(&Value::String("tok".into()), &mut msg);
        assert_eq!(
            message_body(&msg.freeze()).unwrap(),
            Bytes::from_static(b"tok")
        );
    }

    #[test]
    fn put_token_request_fields() {
        let (app, body) = put_token_request("sb://localhost/q1", "SharedAccessSignature a");
        let app = Value::Map(app);
        assert_eq!(
            app.map_get("operation").and_then(Value::as_str),
            Some("put-token")
        );
        assert_eq!(
            app.map_get("type").and_then(Value::as_str),
            Some("servicebus.windows.net:sastoken")
        );
        assert_eq!(
            app.map_get("name").and_then(Value::as_str),
            Some("sb://localhost/q1")
        );
        assert_eq!(body.as_str(), Some("SharedAccessSignature a"));
    }

    fn answer(status: Option<i64>) -> Answer {
        Answer {
            status,
            description: "nope".into(),
            error_condition: None,
            body: None,
        }
    }

    #[test]
    fn cbs_status_checks() {
        assert!(check_cbs_status(&answer(Some(202))).is_ok());
        assert!(check_cbs_status(&answer(Some(200))).is_ok());
        match check_cbs_status(&answer(Some(401))) {
            Err(Error::PutToken {
                status,
                description,
            }) => {
                assert_eq!(status, 401);
                assert_eq!(description, "nope");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            check_cbs_status(&answer(None)),
            Err(Error::Protocol(_))
        ));
    }
}
