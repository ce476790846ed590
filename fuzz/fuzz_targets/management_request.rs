//! `$management` request bodies arrive from any client holding a link to the node: reading
//! them, and everything the broker derives from one (a rule, the properties to modify, the
//! scheduled messages, the response echoing its id), must never panic.
#![no_main]

use busbar_amqp::codec::decode_value;
use busbar_amqp::message::{Properties, scan_sections};
use busbar_amqp::value::Value;
use busbar_servicebus::message::{inbound, properties_to_modify, with_application_properties};
use busbar_servicebus::request::{Request, management_response};
use busbar_servicebus::rules::{rule_entry, rule_from_request};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);

    // The whole message, as the node receives it.
    if let Ok(request) = Request::parse(&payload) {
        let _ = request.property("operation");
        let _ = request.property("server-timeout");
        read_body(&request.body);
        let response = management_response(request.message_id.as_ref(), 200, "OK", None, None);
        let echoed = scan_sections(&response)
            .ok()
            .and_then(|scanned| scanned.properties().ok().flatten())
            .and_then(|properties| properties.correlation_id);
        if !has_nan(&request.message_id) {
            assert_eq!(
                echoed, request.message_id,
                "the response must echo the request id"
            );
        }
    }

    // The body alone, so the fuzzer reaches the field readers without building sections.
    if let Ok(body) = decode_value(&mut payload.clone()) {
        read_body(&body);
    }
});

/// What the broker reads from a request body, whatever the operation.
fn read_body(body: &Value) {
    if let Ok(rule) = rule_from_request(body) {
        let _ = rule_entry(&rule);
    }

    let properties = properties_to_modify(body.map_get("properties-to-modify"));
    let _ = with_application_properties(&stored_message(), &properties);

    if let Some(Value::List(items) | Value::Array(items)) = body.map_get("messages") {
        for item in items {
            if let Some(Value::Binary(encoded)) = item.map_get("message")
                && let Ok(parsed) = inbound(encoded)
            {
                let _ = with_application_properties(&parsed.body, &properties);
            }
        }
    }
}

/// A message as the store holds one: properties and a data section.
fn stored_message() -> Bytes {
    let mut out = BytesMut::new();
    Properties {
        message_id: Some(Value::String("m-1".into())),
        ..Properties::default()
    }
    .encode(&mut out);
    // data section: descriptor 0x75, binary "body"
    out.extend_from_slice(&[0x00, 0x53, 0x75, 0xa0, 0x04, b'b', b'o', b'd', b'y']);
    out.freeze()
}

/// NaN floats are the one value that is not equal to itself.
fn has_nan(v: &impl std::fmt::Debug) -> bool {
    format!("{v:?}").contains("NaN")
}
