//! Frames and messages recorded from the Python (azure-servicebus 7.15.0) and JavaScript
//! (@azure/service-bus 7.9.5) SDKs.
//!
//! Message payloads are the exact bytes from the capture log. The capture logged
//! performatives only in decoded form, so their bytes are rebuilt here, field for field,
//! in each SDK's style: Python's compact list8, JS's list32/map32 everywhere.
#![allow(clippy::unwrap_used)]

use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, encode_frame};
use busbar_amqp::message::{self, BodyKind, scan_sections};
use busbar_amqp::performative::*;
use busbar_amqp::{Timestamp, Value};
use bytes::{Bytes, BytesMut};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// Small independent encoders for building SDK-style bytes.
fn str8(s: &str) -> Vec<u8> {
    [vec![0xa1, s.len() as u8], s.as_bytes().to_vec()].concat()
}
fn sym8(s: &str) -> Vec<u8> {
    [vec![0xa3, s.len() as u8], s.as_bytes().to_vec()].concat()
}
fn list8(fields: &[Vec<u8>]) -> Vec<u8> {
    let body = fields.concat();
    [vec![0xc0, body.len() as u8 + 1, fields.len() as u8], body].concat()
}
fn list32(fields: &[Vec<u8>]) -> Vec<u8> {
    compound32(0xd0, fields)
}
fn map32(entries: &[Vec<u8>]) -> Vec<u8> {
    compound32(0xd1, entries)
}
fn compound32(code: u8, items: &[Vec<u8>]) -> Vec<u8> {
    let body = items.concat();
    let mut v = vec![code];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(&(items.len() as u32).to_be_bytes());
    v.extend_from_slice(&body);
    v
}
fn described(code: u8, body: Vec<u8>) -> Vec<u8> {
    [vec![0x00, 0x53, code], body].concat()
}
const NULL: [u8; 1] = [0x40];

fn frame_bytes(channel: u16, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&[2, 0]);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameDecoder::new(1 << 20)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    frame
}

fn performative(frame: Frame) -> (Performative, Bytes) {
    match frame.body {
        FrameBody::Amqp {
            performative,
            payload,
        } => (performative, payload),
        other => panic!("not an AMQP frame: {other:?}"),
    }
}

/// PY "send single message": attach(name=..., handle=3, role=False, send_settle_mode=0,
/// rcv_settle_mode=1, source=[sender-link-..., 10 nulls], target=[amqps://localhost:5673/q1,
/// 6 nulls], incomplete_unsettled=False, initial_delivery_count=0, max_message_size=0)
#[test]
fn python_sender_attach() {
    let nulls = |n| vec![NULL.to_vec(); n];
    let source = described(
        0x28,
        list8(
            &[
                vec![str8("sender-link-75a76f1f-9c53-49a4-84f0-7b018a4f92b8")],
                nulls(10),
            ]
            .concat(),
        ),
    );
    let target = described(
        0x29,
        list8(&[vec![str8("amqps://localhost:5673/q1")], nulls(6)].concat()),
    );
    let body = described(
        0x12,
        list8(&[
            str8("75a76f1f-9c53-49a4-84f0-7b018a4f92b8"),
            vec![0x52, 3],
            vec![0x42],
            vec![0x50, 0],
            vec![0x50, 1],
            source,
            target,
            NULL.to_vec(),
            vec![0x42],
            vec![0x43],
            vec![0x44],
        ]),
    );
    let (p, payload) = performative(decode_one(&frame_bytes(1, &body)));
    assert!(payload.is_empty());
    let Performative::Attach(a) = p else {
        panic!("{p:?}")
    };
    assert_eq!(a.name, "75a76f1f-9c53-49a4-84f0-7b018a4f92b8");
    assert_eq!(a.handle, 3);
    assert_eq!(a.role, Role::Sender);
    assert_eq!(a.snd_settle_mode, SenderSettleMode::Unsettled);
    assert_eq!(a.rcv_settle_mode, ReceiverSettleMode::Second);
    assert_eq!(
        a.source.as_ref().unwrap().address.as_deref(),
        Some("sender-link-75a76f1f-9c53-49a4-84f0-7b018a4f92b8")
    );
    let Some(TargetKind::Target(t)) = &a.target else {
        panic!()
    };
    assert_eq!(t.address.as_deref(), Some("amqps://localhost:5673/q1"));
    assert!(!a.incomplete_unsettled);
    assert_eq!(a.initial_delivery_count, Some(0));
    assert_eq!(a.max_message_size, Some(0));
}

/// JS "accept session A": attach(name=jsq-3541b519-..., handle=0, role=True,
/// send_settle_mode=0, rcv_settle_mode=1, source=[jsq, 6 nulls, {session-filter: A}],
/// target=[jsq-77851509-...], incomplete_unsettled=False, properties={receiver-name: ...})
#[test]
fn js_session_receiver_attach_with_filter() {
    let source = described(
        0x28,
        list32(
            &[
                vec![str8("jsq")],
                vec![NULL.to_vec(); 6],
                vec![map32(&[sym8("com.microsoft:session-filter"), str8("A")])],
            ]
            .concat(),
        ),
    );
    let target = described(
        0x29,
        list32(&[str8("jsq-77851509-c9df-2d4c-a6fe-3d39d2af74cd")]),
    );
    let body = described(
        0x12,
        list32(&[
            str8("jsq-3541b519-e4e5-f24b-92f9-abec1aca75d3"),
            vec![0x43],
            vec![0x41],
            vec![0x50, 0],
            vec![0x50, 1],
            source,
            target,
            NULL.to_vec(),
            vec![0x42],
            NULL.to_vec(),
            NULL.to_vec(),
            NULL.to_vec(),
            NULL.to_vec(),
            map32(&[
                sym8("com.microsoft:receiver-name"),
                str8("jsq-77851509-c9df-2d4c-a6fe-3d39d2af74cd"),
            ]),
        ]),
    );
    let (p, _) = performative(decode_one(&frame_bytes(1, &body)));
    let Performative::Attach(a) = p else {
        panic!("{p:?}")
    };
    assert_eq!(a.handle, 0);
    assert_eq!(a.role, Role::Receiver);
    let source = a.source.clone().unwrap();
    assert_eq!(source.address.as_deref(), Some("jsq"));
    let filter = source.filter.clone().unwrap();
    assert_eq!(
        filter
            .map_get("com.microsoft:session-filter")
            .and_then(Value::as_str),
        Some("A")
    );
    assert_eq!(
        a.properties
            .as_ref()
            .unwrap()
            .map_get("com.microsoft:receiver-name")
            .and_then(Value::as_str),
        Some("jsq-77851509-c9df-2d4c-a6fe-3d39d2af74cd")
    );
    // The broker echoes the source: it must survive our encoding unchanged.
    let mut out = BytesMut::new();
    source.encode(&mut out);
    assert_eq!(Source::decode(&mut out.freeze()).unwrap(), source);
}

/// JS "send single": transfer(handle=0, delivery_id=0, delivery_tag=b'0', message_format=0,
/// settled=False, more=False, ...) carrying a list32/map32 message, verbatim.
const JS_MESSAGE: &str = "005370d00000000b000000034040700000ea60005372d10000001d00000002a313782d6f70742d\
706172746974696f6e2d6b6579a102706b005373d0000000350000000aa1026d314040a1047375626a40a1036369\
64a30a746578742f706c61696e4083000001a20e18f2ec83000001a20e18088c005374d10000000f00000004a101\
6ba10176a1016e5205005375a0072268656c6c6f22";

#[test]
fn js_transfer_with_list32_map32_message() {
    let transfer = described(
        0x14,
        list32(&[
            vec![0x43],
            vec![0x43],
            vec![0xa0, 1, b'0'],
            vec![0x43],
            vec![0x42],
            vec![0x42],
            NULL.to_vec(),
            NULL.to_vec(),
            vec![0x42],
            vec![0x42],
            vec![0x42],
        ]),
    );
    let msg = hex(JS_MESSAGE);
    let bytes = frame_bytes(1, &[transfer, msg.clone()].concat());
    let (p, payload) = performative(decode_one(&bytes));
    let Performative::Transfer(t) = p else {
        panic!("{p:?}")
    };
    assert_eq!(
        (t.handle, t.delivery_id, t.message_format),
        (0, Some(0), Some(0))
    );
    assert_eq!(t.delivery_tag.as_deref(), Some(&b"0"[..]));
    assert_eq!(t.settled, Some(false));
    assert!(!t.more);
    assert_eq!(&payload[..], &msg[..]);

    let m = scan_sections(&payload).unwrap();
    assert_eq!(m.header().unwrap().unwrap().ttl, Some(60000));
    let ann = m.message_annotations().unwrap().unwrap();
    assert_eq!(
        ann.map_get("x-opt-partition-key").and_then(Value::as_str),
        Some("pk")
    );
    let props = m.properties().unwrap().unwrap();
    assert_eq!(props.message_id, Some(Value::String("m1".into())));
    assert_eq!(props.subject.as_deref(), Some("subj"));
    assert_eq!(props.correlation_id, Some(Value::String("cid".into())));
    assert_eq!(
        props.content_type.as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(props.absolute_expiry_time, Some(Timestamp(1795532845804)));
    assert_eq!(props.creation_time, Some(Timestamp(1795532785804)));
    assert_eq!(props.group_id, None);
    let app = m.application_properties().unwrap().unwrap();
    assert_eq!(app.map_get("k").and_then(Value::as_str), Some("v"));
    assert_eq!(app.map_get("n"), Some(&Value::Uint(5)));
    assert_eq!(m.sections.body_kind, Some(BodyKind::Data));
    assert_eq!(
        m.data_sections().unwrap(),
        vec![Bytes::from_static(b"\"hello\"")]
    );
}

/// PY "send single message": header with all five fields (ttl 60000), list8/map8 sections.
#[test]
fn python_message_sections() {
    let payload = Bytes::from(hex(
        "005370c00a054040700000ea604040005372c11a02a313782d6f70742d706172746974696f6e2d6b6579a1\
         02706b005373c0480da1056d69642d3140a106746f61646472a1047375626aa1027274a103636964a30a7465\
         78742f706c61696e4083000001a20e1895f083000001a20e17ab904040a1057274736964005374c10c04a101\
         6ba10176a1016e5405005375a00568656c6c6f",
    ));
    let m = scan_sections(&payload).unwrap();
    let h = m.header().unwrap().unwrap();
    assert_eq!(
        (h.ttl, h.delivery_count, h.priority, h.durable),
        (Some(60000), 0, 4, false)
    );
    let p = m.properties().unwrap().unwrap();
    assert_eq!(p.message_id, Some(Value::String("mid-1".into())));
    assert_eq!(p.to.as_deref(), Some("toaddr"));
    assert_eq!(p.reply_to.as_deref(), Some("rt"));
    assert_eq!(p.reply_to_group_id.as_deref(), Some("rtsid"));
    assert_eq!(p.absolute_expiry_time, Some(Timestamp(1795532822000)));
    let app = m.application_properties().unwrap().unwrap();
    assert_eq!(app.map_get("n"), Some(&Value::Int(5)));
    assert_eq!(
        m.data_sections().unwrap(),
        vec![Bytes::from_static(b"hello")]
    );
}

/// PY "send batch of 2" and JS "send batch": message-format 0x80013700 envelopes.
#[test]
fn batch_envelopes_split_into_messages() {
    let py = Bytes::from(hex(
        "005373c0330da12432313037393866622d653834312d343438342d613934392d33306363303134363036\
         3831404040404040404040404040005375a03f005373c0330da12432313037393866622d653834312d3434\
         38342d613934392d333063633031343630363831404040404040404040404040005375a0026231005375a0\
         3f005373c0330da12439663462353235332d656363652d343565632d613938642d66376536363339363238\
         3337404040404040404040404040005375a0026232",
    ));
    let inner = message::split_batch(&py).unwrap();
    assert_eq!(inner.len(), 2);
    let ids: Vec<_> = inner
        .iter()
        .map(|m| scan_sections(m).unwrap().message_id().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            Some(Value::String("210798fb-e841-4484-a949-30cc01460681".into())),
            Some(Value::String("9f4b5253-ecce-45ec-a98d-f7e663962837".into())),
        ]
    );
    let bodies: Vec<_> = inner
        .iter()
        .map(|m| scan_sections(m).unwrap().data_sections().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            vec![Bytes::from_static(b"b1")],
            vec![Bytes::from_static(b"b2")]
        ]
    );
    // Zero-copy: the inner messages point into the envelope.
    let range = py.as_ptr() as usize..py.as_ptr() as usize + py.len();
    assert!(range.contains(&(inner[0].as_ptr() as usize)));

    let js = Bytes::from(hex(
        "00537045005372d1000000040000000000537345005375a01d00537045005372d100000004000000000053\
         7345005375a00422623122005375a01b00537045005372d1000000040000000000537345005375a0026232",
    ));
    let inner = message::split_batch(&js).unwrap();
    assert_eq!(inner.len(), 2);
    let second = scan_sections(&inner[1]).unwrap();
    assert_eq!(second.header().unwrap(), Some(message::Header::default()));
    assert_eq!(second.message_id().unwrap(), None);
    assert_eq!(
        second.data_sections().unwrap(),
        vec![Bytes::from_static(b"b2")]
    );
}

/// SASL exchange as both SDKs perform it; our frames must decode as the SDKs read them.
#[test]
fn sasl_init_from_js_and_our_outcome() {
    let init = described(
        0x41,
        list32(&[
            sym8("ANONYMOUS"),
            [
                vec![0xa0, 26],
                hex("00526f6f744d616e6167655368617265644163636573734b6579"),
            ]
            .concat(),
            str8("localhost"),
        ]),
    );
    let mut bytes = frame_bytes(0, &init);
    bytes[5] = 1;
    let frame = decode_one(&bytes);
    let FrameBody::Sasl(SaslFrame::Init {
        mechanism,
        initial_response,
        hostname,
    }) = frame.body
    else {
        panic!()
    };
    assert_eq!(mechanism.as_str(), "ANONYMOUS");
    assert_eq!(
        &initial_response.unwrap()[1..],
        b"RootManageSharedAccessKey"
    );
    assert_eq!(hostname.as_deref(), Some("localhost"));

    let mut out = BytesMut::new();
    encode_frame(
        &Frame::sasl(SaslFrame::Outcome {
            code: SaslCode::Ok,
            additional_data: None,
        }),
        &mut out,
    );
    assert_eq!(
        &out[..],
        &[
            0, 0, 0, 0x10, 2, 1, 0, 0, 0x00, 0x53, 0x44, 0xc0, 3, 1, 0x50, 0
        ]
    );
}
