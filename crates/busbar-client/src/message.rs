//! Building and reading the few message shapes the client itself needs: a plain data
//! message, the `$cbs` put-token request, and its response.

use bytes::{Bytes, BytesMut};

use busbar_amqp::codec::{encode_descriptor, encode_value};
use busbar_amqp::message::{Header, Properties, ScannedMessage, scan_sections, section};
use busbar_amqp::{Descriptor, Value};

use crate::error::{Error, Result};

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
    let mut parts = scanned.data_sections()?;
    match parts.len() {
        0 => {
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
        1 => Ok(parts.swap_remove(0)),
        _ => Ok(parts.concat().into()),
    }
}

/// The `$cbs` put-token request (dialect §2.2): string message-id, reply-to naming the
/// response link, application-properties operation/type/name, amqp-value string body.
pub(crate) fn put_token_request(
    message_id: &str,
    reply_to: &str,
    audience: &str,
    token: &str,
) -> Bytes {
    let mut out = BytesMut::with_capacity(token.len() + audience.len() + 192);
    Properties {
        message_id: Some(Value::String(message_id.to_owned())),
        to: Some("$cbs".to_owned()),
        reply_to: Some(reply_to.to_owned()),
        ..Properties::default()
    }
    .encode(&mut out);
    encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
    let str = |s: &str| Value::String(s.to_owned());
    encode_value(
        &Value::Map(vec![
            (str("operation"), str("put-token")),
            (str("type"), str("servicebus.windows.net:sastoken")),
            (str("name"), str(audience)),
        ]),
        &mut out,
    );
    encode_descriptor(&Descriptor::Code(section::AMQP_VALUE), &mut out);
    encode_value(&str(token), &mut out);
    out.freeze()
}

/// What a `$cbs` response says: the correlation-id it answers and its status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CbsResponse {
    pub correlation_id: Option<Value>,
    pub status: Option<i64>,
    pub description: String,
}

pub(crate) fn parse_cbs_response(message: &Bytes) -> Result<CbsResponse> {
    let scanned = scan_sections(message)?;
    let correlation_id = scanned.properties()?.and_then(|p| p.correlation_id);
    let props = scanned.application_properties()?;
    let get = |k: &str| props.as_ref().and_then(|p| p.map_get(k));
    // `$cbs` uses hyphenated names; accept the camelCase `$management` spelling as well.
    let status = get("status-code")
        .or_else(|| get("statusCode"))
        .and_then(Value::as_i64);
    let description = get("status-description")
        .or_else(|| get("statusDescription"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok(CbsResponse {
        correlation_id,
        status,
        description,
    })
}

pub(crate) fn check_cbs_status(resp: &CbsResponse) -> Result<()> {
    match resp.status {
        Some(200 | 202) => Ok(()),
        Some(status) => Err(Error::PutToken {
            status,
            description: resp.description.clone(),
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
        let msg = put_token_request("id1", "cbs-x", "sb://h/q", "tok");
        assert_eq!(message_body(&msg).unwrap(), Bytes::from_static(b"tok"));
    }

    #[test]
    fn put_token_request_fields() {
        let msg = put_token_request(
            "id1",
            "cbs-x",
            "sb://localhost/q1",
            "SharedAccessSignature a",
        );
        let scanned = scan_sections(&msg).unwrap();
        let props = scanned.properties().unwrap().unwrap();
        assert_eq!(props.message_id, Some(Value::String("id1".into())));
        assert_eq!(props.reply_to.as_deref(), Some("cbs-x"));
        let app = scanned.application_properties().unwrap().unwrap();
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
    }

    fn response(status: Value) -> Bytes {
        let mut out = BytesMut::new();
        Properties {
            correlation_id: Some(Value::String("id1".into())),
            ..Properties::default()
        }
        .encode(&mut out);
        encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
        encode_value(
            &Value::Map(vec![
                (Value::String("status-code".into()), status),
                (
                    Value::String("status-description".into()),
                    Value::String("nope".into()),
                ),
            ]),
            &mut out,
        );
        out.freeze()
    }

    #[test]
    fn cbs_status_checks() {
        let ok = parse_cbs_response(&response(Value::Int(202))).unwrap();
        assert_eq!(ok.correlation_id, Some(Value::String("id1".into())));
        assert!(check_cbs_status(&ok).is_ok());
        let bad = parse_cbs_response(&response(Value::Int(401))).unwrap();
        match check_cbs_status(&bad) {
            Err(Error::PutToken {
                status,
                description,
            }) => {
                assert_eq!(status, 401);
                assert_eq!(description, "nope");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
