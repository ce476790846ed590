//! Delivery rewriting: header and annotations rebuilt, the bare message copied verbatim.
#![allow(clippy::unwrap_used)]

use busbar_amqp::message::{Header, RewriteOptions, rewrite, scan_sections};
use busbar_amqp::{Symbol, Timestamp, Value};
use bytes::Bytes;

fn hex(s: &str) -> Bytes {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

/// JS single send (list32/map32), as captured.
fn js_message() -> Bytes {
    hex(
        "005370d00000000b000000034040700000ea60005372d10000001d00000002a313782d6f70742d\
         706172746974696f6e2d6b6579a102706b005373d0000000350000000aa1026d314040a1047375626a40a10363\
         6964a30a746578742f706c61696e4083000001a20e18f2ec83000001a20e18088c005374d10000000f000000\
         04a1016ba10176a1016e5205005375a0072268656c6c6f22",
    )
}

/// Python-style message with delivery-annotations after the footer, and no message-id.
fn python_ordering() -> Bytes {
    hex("005373c0020140 \
         005375a003616263 \
         005378c10502a3016641 \
         005371c10902a305782d6f707441")
}

#[test]
fn delivery_rewrites_header_and_annotations_only() {
    let stored = scan_sections(&js_message()).unwrap();
    let header = Header {
        ttl: Some(60000),
        delivery_count: 2,
        ..Header::default()
    };
    let annotations = [
        (Symbol::from("x-opt-sequence-number"), Value::Long(42)),
        (
            Symbol::from("x-opt-enqueued-time"),
            Value::Timestamp(Timestamp(1_700_000_000_000)),
        ),
    ];
    let out = rewrite(
        &stored,
        &RewriteOptions {
            header: Some(&header),
            annotations: &annotations,
            ..RewriteOptions::default()
        },
    )
    .unwrap();
    let delivered = scan_sections(&out).unwrap();
    assert_eq!(delivered.header().unwrap(), Some(header));
    let ann = delivered.message_annotations().unwrap().unwrap();
    assert_eq!(
        ann.map_get("x-opt-partition-key").and_then(Value::as_str),
        Some("pk")
    );
    assert_eq!(ann.map_get("x-opt-sequence-number"), Some(&Value::Long(42)));
    assert!(ann.map_get("x-opt-enqueued-time").is_some());
    // The bare message is byte-identical.
    let s = &stored.sections;
    let d = &delivered.sections;
    for (a, b) in [
        (&s.properties, &d.properties),
        (&s.application_properties, &d.application_properties),
        (&s.body, &d.body),
    ] {
        assert_eq!(
            stored.section_bytes(a).unwrap(),
            delivered.section_bytes(b).unwrap()
        );
    }

    // Redelivery replaces the stamped keys instead of duplicating them.
    let again = [(Symbol::from("x-opt-sequence-number"), Value::Long(43))];
    let out2 = rewrite(
        &delivered,
        &RewriteOptions {
            header: Some(&header),
            annotations: &again,
            ..RewriteOptions::default()
        },
    )
    .unwrap();
    let ann2 = scan_sections(&out2)
        .unwrap()
        .message_annotations()
        .unwrap()
        .unwrap();
    let Value::Map(pairs) = &ann2 else { panic!() };
    assert_eq!(pairs.len(), 3);
    assert_eq!(
        ann2.map_get("x-opt-sequence-number"),
        Some(&Value::Long(43))
    );
}

#[test]
fn sections_in_any_order_and_delivery_annotations_dropped() {
    let stored = scan_sections(&python_ordering()).unwrap();
    assert!(stored.sections.delivery_annotations.is_some());
    assert!(stored.sections.footer.is_some());
    assert!(stored.sections.header.is_none());

    let id = Value::String("a1b2c3".into());
    let out = rewrite(
        &stored,
        &RewriteOptions {
            header: Some(&Header::default()),
            message_id_if_missing: Some(&id),
            annotations: &[(Symbol::from("x-opt-sequence-number"), Value::Long(1))],
            ..RewriteOptions::default()
        },
    )
    .unwrap();
    let m = scan_sections(&out).unwrap();
    assert!(m.sections.delivery_annotations.is_none());
    assert_eq!(m.message_id().unwrap(), Some(id));
    assert_eq!(
        m.section_bytes(&m.sections.footer),
        stored.section_bytes(&stored.sections.footer)
    );
    assert_eq!(m.data_sections().unwrap(), vec![Bytes::from_static(b"abc")]);
}

#[test]
fn this_hops_delivery_annotations_replace_the_stored_ones_after_the_header() {
    let stored = scan_sections(&python_ordering()).unwrap();
    let token = Value::Uuid([7; 16]);
    let out = rewrite(
        &stored,
        &RewriteOptions {
            header: Some(&Header::default()),
            delivery_annotations: &[(Symbol::from("x-opt-lock-token"), token.clone())],
            annotations: &[(Symbol::from("x-opt-sequence-number"), Value::Long(1))],
            ..RewriteOptions::default()
        },
    )
    .unwrap();
    let m = scan_sections(&out).unwrap();
    let delivery = m.delivery_annotations().unwrap().unwrap();
    let Value::Map(pairs) = &delivery else {
        panic!("not a map: {delivery:?}")
    };
    assert_eq!(
        pairs.len(),
        1,
        "the sender's delivery annotations are not kept"
    );
    assert_eq!(delivery.map_get("x-opt-lock-token"), Some(&token));
    // The order the AMQP spec gives: header, delivery-annotations, message-annotations.
    let (header, delivery, message) = (
        m.sections.header.clone().unwrap(),
        m.sections.delivery_annotations.clone().unwrap(),
        m.sections.message_annotations.clone().unwrap(),
    );
    assert!(header.end <= delivery.start && delivery.end <= message.start);
}

#[test]
fn existing_message_id_kept_and_expiry_patched_in_place() {
    let stored = scan_sections(&js_message()).unwrap();
    let before = stored.properties().unwrap().unwrap();
    let out = rewrite(
        &stored,
        &RewriteOptions {
            message_id_if_missing: Some(&Value::String("other".into())),
            absolute_expiry_time: Some(Timestamp(5)),
            ..RewriteOptions::default()
        },
    )
    .unwrap();
    let after = scan_sections(&out).unwrap().properties().unwrap().unwrap();
    assert_eq!(after.message_id, Some(Value::String("m1".into())));
    assert_eq!(after.absolute_expiry_time, Some(Timestamp(5)));
    assert_eq!(after.creation_time, before.creation_time);
    assert_eq!(after.subject, before.subject);
    assert_eq!(after.content_type, before.content_type);
}

#[test]
fn dead_letter_properties_are_merged() {
    let stored = scan_sections(&js_message()).unwrap();
    let extra = [
        (
            "DeadLetterReason".to_string(),
            Value::String("MaxDeliveryCountExceeded".into()),
        ),
        (
            "DeadLetterErrorDescription".to_string(),
            Value::String("too many".into()),
        ),
    ];
    let out = rewrite(
        &stored,
        &RewriteOptions {
            application_properties: &extra,
            ..RewriteOptions::default()
        },
    )
    .unwrap();
    let app = scan_sections(&out)
        .unwrap()
        .application_properties()
        .unwrap()
        .unwrap();
    assert_eq!(app.map_get("k").and_then(Value::as_str), Some("v"));
    assert_eq!(app.map_get("n"), Some(&Value::Uint(5)));
    assert_eq!(
        app.map_get("DeadLetterReason").and_then(Value::as_str),
        Some("MaxDeliveryCountExceeded")
    );
    assert!(matches!(
        app.map_get("DeadLetterErrorDescription"),
        Some(Value::String(_))
    ));
}

#[test]
fn application_properties_can_be_removed_and_set_together() {
    let stored = scan_sections(&js_message()).unwrap();
    let set = [("added".to_string(), Value::Long(1))];
    let removed = ["k".to_string(), "absent".to_string()];
    let properties_after = |set: &[(String, Value)]| {
        let out = rewrite(
            &stored,
            &RewriteOptions {
                application_properties: set,
                removed_application_properties: &removed,
                ..RewriteOptions::default()
            },
        )
        .unwrap();
        scan_sections(&out)
            .unwrap()
            .application_properties()
            .unwrap()
            .unwrap()
    };
    let app = properties_after(&set);
    assert_eq!(app.map_get("k"), None);
    assert_eq!(app.map_get("n"), Some(&Value::Uint(5)));
    assert_eq!(app.map_get("added"), Some(&Value::Long(1)));

    let app = properties_after(&[]);
    assert_eq!(app.map_get("k"), None);
    assert_eq!(app.map_get("n"), Some(&Value::Uint(5)));
}

#[test]
fn malformed_messages_are_errors() {
    // not a section descriptor
    assert!(scan_sections(&Bytes::from_static(&[0x40])).is_err());
    // unknown section code
    assert!(scan_sections(&Bytes::from_static(&[0x00, 0x53, 0x10, 0x45])).is_err());
    // duplicate header
    assert!(
        scan_sections(&Bytes::from_static(&[
            0x00, 0x53, 0x70, 0x45, 0x00, 0x53, 0x70, 0x45
        ]))
        .is_err()
    );
    // truncated body
    assert!(scan_sections(&Bytes::from_static(&[0x00, 0x53, 0x75, 0xa0, 0x05, 1])).is_err());
    // body sections split by another section
    let split = [
        0x00, 0x53, 0x75, 0xa0, 0x00, 0x00, 0x53, 0x73, 0x45, 0x00, 0x53, 0x75, 0xa0, 0x00,
    ];
    assert!(scan_sections(&Bytes::copy_from_slice(&split)).is_err());
}

#[test]
fn data_body_reads_either_binary_width_and_refuses_other_values() {
    let body = |raw: &'static [u8]| scan_sections(&Bytes::from_static(raw)).unwrap().data_body();
    // vbin8
    assert_eq!(
        body(&[0x00, 0x53, 0x75, 0xa0, 0x02, b'h', b'i']).unwrap(),
        Bytes::from_static(b"hi")
    );
    // vbin32
    assert_eq!(
        body(&[0x00, 0x53, 0x75, 0xb0, 0, 0, 0, 0x02, b'h', b'i']).unwrap(),
        Bytes::from_static(b"hi")
    );
    // two sections, one of each width, joined
    assert_eq!(
        body(&[
            0x00, 0x53, 0x75, 0xa0, 0x01, b'h', 0x00, 0x53, 0x75, 0xb0, 0, 0, 0, 0x01, b'i'
        ])
        .unwrap(),
        Bytes::from_static(b"hi")
    );
    // a string in a data section is not a binary
    assert!(body(&[0x00, 0x53, 0x75, 0xa1, 0x02, b'h', b'i']).is_err());
    assert!(body(&[0x00, 0x53, 0x75, 0x40]).is_err());
}
