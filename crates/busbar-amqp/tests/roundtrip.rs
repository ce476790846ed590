//! Property tests: everything the codec encodes decodes back to the same thing.
#![allow(clippy::unwrap_used)]

use busbar_amqp::codec::{decode_value, encode_value, skip_value};
use busbar_amqp::message::{Header, Properties};
use busbar_amqp::performative::*;
use busbar_amqp::{Descriptor, Symbol, Timestamp, Value};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn symbol() -> impl Strategy<Value = Symbol> {
    "[a-z:\\-]{0,20}".prop_map(|s| Symbol::from(s.as_str()))
}

fn binary() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

/// Long enough strings now and then to exercise the 32-bit size forms.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => ".{0,12}", 1 => "[a-z]{250,300}"]
}

/// Scalars except null (null is how absent optional fields read back).
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<u8>().prop_map(Value::Ubyte),
        any::<u16>().prop_map(Value::Ushort),
        any::<u32>().prop_map(Value::Uint),
        any::<u64>().prop_map(Value::Ulong),
        any::<i8>().prop_map(Value::Byte),
        any::<i16>().prop_map(Value::Short),
        any::<i32>().prop_map(Value::Int),
        any::<i64>().prop_map(Value::Long),
        any::<f32>()
            .prop_filter("nan", |f| !f.is_nan())
            .prop_map(Value::Float),
        any::<f64>()
            .prop_filter("nan", |f| !f.is_nan())
            .prop_map(Value::Double),
        any::<[u8; 4]>().prop_map(Value::Decimal32),
        any::<[u8; 8]>().prop_map(Value::Decimal64),
        any::<[u8; 16]>().prop_map(Value::Decimal128),
        any::<char>().prop_map(Value::Char),
        any::<i64>().prop_map(|t| Value::Timestamp(Timestamp(t))),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        binary().prop_map(Value::Binary),
        text().prop_map(Value::String),
        symbol().prop_map(Value::Symbol),
    ]
}

/// Homogeneous arrays of the element types the codec can share a constructor for.
fn array() -> impl Strategy<Value = Value> {
    let n = 0..6usize;
    prop_oneof![
        prop::collection::vec(any::<[u8; 16]>().prop_map(Value::Uuid), n.clone()),
        prop::collection::vec(any::<i64>().prop_map(Value::Long), n.clone()),
        prop::collection::vec(
            any::<i64>().prop_map(|t| Value::Timestamp(Timestamp(t))),
            n.clone()
        ),
        prop::collection::vec(text().prop_map(Value::String), n.clone()),
        prop::collection::vec(symbol().prop_map(Value::Symbol), n.clone()),
        prop::collection::vec(any::<u32>().prop_map(Value::Uint), n.clone()),
        prop::collection::vec(any::<bool>().prop_map(Value::Bool), n.clone()),
        prop::collection::vec(binary().prop_map(Value::Binary), n.clone()),
        prop::collection::vec(Just(Value::Null), n),
    ]
    .prop_map(Value::Array)
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    prop_oneof![
        any::<u64>().prop_map(Descriptor::Code),
        symbol().prop_map(Descriptor::Symbol)
    ]
}

fn value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![8 => scalar(), 1 => Just(Value::Null), 2 => array()];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec((inner.clone(), inner.clone()), 0..5).prop_map(Value::Map),
            prop::collection::vec(prop::collection::vec(inner.clone(), 0..3), 0..3)
                .prop_map(|ls| Value::Array(ls.into_iter().map(Value::List).collect())),
            (descriptor(), inner).prop_map(|(d, v)| Value::Described(Box::new(d), Box::new(v))),
        ]
    })
    .boxed()
}

/// A value for an optional field: never `Null`.
fn field_value() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop_oneof![
        scalar(),
        prop::collection::vec((symbol().prop_map(Value::Symbol), scalar()), 0..4)
            .prop_map(Value::Map),
        prop::collection::vec(symbol().prop_map(Value::Symbol), 1..4).prop_map(Value::Array),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn value_round_trips(v in value()) {
        let mut out = BytesMut::new();
        encode_value(&v, &mut out);
        let encoded = out.freeze();
        let mut buf = encoded.clone();
        prop_assert_eq!(decode_value(&mut buf).unwrap(), v);
        prop_assert!(buf.is_empty());
        let mut skip = encoded.clone();
        prop_assert_eq!(skip_value(&mut skip).unwrap(), encoded.len());
    }

    #[test]
    fn truncated_values_are_errors_not_panics(v in value(), cut in any::<prop::sample::Index>()) {
        let mut out = BytesMut::new();
        encode_value(&v, &mut out);
        let n = cut.index(out.len());
        let mut buf = Bytes::copy_from_slice(&out[..n]);
        prop_assert!(decode_value(&mut buf).is_err());
    }
}

// --- performatives -------------------------------------------------------------------

fn error_condition() -> impl Strategy<Value = ErrorCondition> {
    (symbol(), prop::option::of(text()), field_value()).prop_map(
        |(condition, description, info)| ErrorCondition {
            condition,
            description,
            info,
        },
    )
}

fn delivery_state() -> BoxedStrategy<DeliveryState> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(n, o)| DeliveryState::Received {
            section_number: n,
            section_offset: o
        }),
        Just(DeliveryState::Accepted),
        prop::option::of(error_condition()).prop_map(|error| DeliveryState::Rejected { error }),
        Just(DeliveryState::Released),
        (any::<Option<bool>>(), any::<Option<bool>>(), field_value()).prop_map(|(f, u, a)| {
            DeliveryState::Modified {
                delivery_failed: f,
                undeliverable_here: u,
                message_annotations: a,
            }
        }),
        // transactional-state (0x34), which the broker does not interpret
        binary().prop_map(|txn| DeliveryState::Other(described(
            0x34,
            Value::List(vec![Value::Binary(txn)])
        ))),
    ]
    .boxed()
}

fn source() -> BoxedStrategy<Source> {
    (
        (
            prop::option::of(text()),
            any::<Option<u32>>(),
            prop::option::of(symbol()),
        ),
        (any::<Option<u32>>(), any::<Option<bool>>(), field_value()),
        (prop::option::of(symbol()), field_value(), field_value()),
        (field_value(), field_value()),
    )
        .prop_map(|((a, d, e), (t, dy, dnp), (dm, f, o), (os, c))| Source {
            address: a,
            durable: d,
            expiry_policy: e,
            timeout: t,
            dynamic: dy,
            dynamic_node_properties: dnp,
            distribution_mode: dm,
            filter: f,
            default_outcome: o,
            outcomes: os,
            capabilities: c,
        })
        .boxed()
}

fn target() -> impl Strategy<Value = Target> {
    (
        prop::option::of(text()),
        any::<Option<u32>>(),
        prop::option::of(symbol()),
        any::<Option<u32>>(),
        any::<Option<bool>>(),
        field_value(),
        field_value(),
    )
        .prop_map(|(a, d, e, t, dy, dnp, c)| Target {
            address: a,
            durable: d,
            expiry_policy: e,
            timeout: t,
            dynamic: dy,
            dynamic_node_properties: dnp,
            capabilities: c,
        })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Sender), Just(Role::Receiver)]
}

fn rcv_mode() -> impl Strategy<Value = ReceiverSettleMode> {
    prop_oneof![
        Just(ReceiverSettleMode::First),
        Just(ReceiverSettleMode::Second)
    ]
}

fn attach() -> BoxedStrategy<Attach> {
    (
        (text(), any::<u32>(), role()),
        (
            prop_oneof![
                Just(SenderSettleMode::Unsettled),
                Just(SenderSettleMode::Settled),
                Just(SenderSettleMode::Mixed)
            ],
            rcv_mode(),
        ),
        (
            prop::option::of(source()),
            prop::option::of(prop_oneof![
                target().prop_map(TargetKind::Target),
                field_value().prop_map(|v| TargetKind::Other(described(
                    0x30,
                    Value::List(v.into_iter().collect())
                ))),
            ]),
        ),
        (
            field_value(),
            any::<bool>(),
            any::<Option<u32>>(),
            any::<Option<u64>>(),
        ),
        (field_value(), field_value(), field_value()),
    )
        .prop_map(
            |(
                (name, handle, role),
                (snd, rcv),
                (source, target),
                (u, iu, idc, mms),
                (oc, dc, p),
            )| Attach {
                name,
                handle,
                role,
                snd_settle_mode: snd,
                rcv_settle_mode: rcv,
                source,
                target,
                unsettled: u,
                incomplete_unsettled: iu,
                initial_delivery_count: idc,
                max_message_size: mms,
                offered_capabilities: oc,
                desired_capabilities: dc,
                properties: p,
            },
        )
        .boxed()
}

fn performative() -> BoxedStrategy<Performative> {
    prop_oneof![
        (
            text(),
            prop::option::of(text()),
            any::<Option<u32>>(),
            any::<Option<u16>>(),
            any::<Option<u32>>(),
            field_value(),
            field_value()
        )
            .prop_map(|(c, h, m, ch, i, caps, p)| Performative::from(Open {
                container_id: c,
                hostname: h,
                max_frame_size: m,
                channel_max: ch,
                idle_time_out: i,
                outgoing_locales: None,
                incoming_locales: None,
                offered_capabilities: caps,
                desired_capabilities: None,
                properties: p,
            })),
        (
            any::<Option<u16>>(),
            any::<(u32, u32, u32)>(),
            any::<Option<u32>>(),
            field_value()
        )
            .prop_map(|(rc, (n, i, o), hm, p)| Performative::Begin(Begin {
                remote_channel: rc,
                next_outgoing_id: n,
                incoming_window: i,
                outgoing_window: o,
                handle_max: hm,
                offered_capabilities: None,
                desired_capabilities: None,
                properties: p,
            })),
        attach().prop_map(Performative::from),
        (
            any::<Option<u32>>(),
            any::<(u32, u32, u32)>(),
            any::<[Option<u32>; 4]>(),
            any::<(bool, bool)>(),
            field_value()
        )
            .prop_map(|(ni, (iw, no, ow), [h, dc, lc, av], (drain, echo), p)| {
                Performative::Flow(Flow {
                    next_incoming_id: ni,
                    incoming_window: iw,
                    next_outgoing_id: no,
                    outgoing_window: ow,
                    handle: h,
                    delivery_count: dc,
                    link_credit: lc,
                    available: av,
                    drain,
                    echo,
                    properties: p,
                })
            }),
        (
            (
                any::<u32>(),
                any::<Option<u32>>(),
                prop::option::of(binary()),
                any::<Option<u32>>()
            ),
            (
                any::<Option<bool>>(),
                any::<bool>(),
                prop::option::of(rcv_mode())
            ),
            (
                prop::option::of(delivery_state()),
                any::<(bool, bool, bool)>()
            ),
        )
            .prop_map(
                |(
                    (h, id, tag, fmt),
                    (settled, more, rsm),
                    (state, (resume, aborted, batchable)),
                )| {
                    Performative::Transfer(Transfer {
                        handle: h,
                        delivery_id: id,
                        delivery_tag: tag,
                        message_format: fmt,
                        settled,
                        more,
                        rcv_settle_mode: rsm,
                        state,
                        resume,
                        aborted,
                        batchable,
                    })
                }
            ),
        (
            role(),
            any::<u32>(),
            any::<Option<u32>>(),
            any::<bool>(),
            prop::option::of(delivery_state()),
            any::<bool>()
        )
            .prop_map(|(role, first, last, settled, state, batchable)| {
                Performative::Disposition(Disposition {
                    role,
                    first,
                    last,
                    settled,
                    state,
                    batchable,
                })
            }),
        (
            any::<u32>(),
            any::<bool>(),
            prop::option::of(error_condition())
        )
            .prop_map(|(handle, closed, error)| Performative::Detach(Detach {
                handle,
                closed,
                error
            })),
        prop::option::of(error_condition()).prop_map(|error| Performative::End(End { error })),
        prop::option::of(error_condition()).prop_map(|error| Performative::Close(Close { error })),
    ]
    .boxed()
}

fn sasl_frame() -> impl Strategy<Value = SaslFrame> {
    let code = prop_oneof![
        Just(SaslCode::Ok),
        Just(SaslCode::Auth),
        Just(SaslCode::Sys),
        Just(SaslCode::SysPerm),
        Just(SaslCode::SysTemp)
    ];
    prop_oneof![
        prop::collection::vec(symbol(), 0..4)
            .prop_map(|mechanisms| SaslFrame::Mechanisms { mechanisms }),
        (
            symbol(),
            prop::option::of(binary()),
            prop::option::of(text())
        )
            .prop_map(|(m, r, h)| {
                SaslFrame::Init {
                    mechanism: m,
                    initial_response: r,
                    hostname: h,
                }
            }),
        binary().prop_map(|challenge| SaslFrame::Challenge { challenge }),
        binary().prop_map(|response| SaslFrame::Response { response }),
        (code, prop::option::of(binary())).prop_map(|(code, additional_data)| SaslFrame::Outcome {
            code,
            additional_data
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn performative_round_trips(p in performative()) {
        let mut out = BytesMut::new();
        p.encode(&mut out);
        prop_assert_eq!(&out[..3], &[0x00, 0x53, out[2]][..], "small-ulong descriptor");
        let mut buf = out.freeze();
        prop_assert_eq!(Performative::decode(&mut buf).unwrap(), p);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn sasl_frame_round_trips(f in sasl_frame()) {
        let mut out = BytesMut::new();
        f.encode(&mut out);
        let mut buf = out.freeze();
        prop_assert_eq!(SaslFrame::decode(&mut buf).unwrap(), f);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn header_and_properties_round_trip(
        (durable, priority, ttl, first, count) in any::<(bool, u8, Option<u32>, bool, u32)>(),
        id in field_value(), to in prop::option::of(text()), group in prop::option::of(text()),
        expiry in any::<Option<i64>>(), seq in any::<Option<u32>>(),
    ) {
        let h = Header { durable, priority, ttl, first_acquirer: first, delivery_count: count };
        let mut out = BytesMut::new();
        h.encode(&mut out);
        prop_assert_eq!(Header::decode(&mut out.freeze()).unwrap(), h);
        let p = Properties {
            message_id: id,
            to,
            group_id: group,
            absolute_expiry_time: expiry.map(Timestamp),
            group_sequence: seq,
            ..Properties::default()
        };
        let mut out = BytesMut::new();
        p.encode(&mut out);
        prop_assert_eq!(Properties::decode(&mut out.freeze()).unwrap(), p);
    }
}

#[test]
fn error_condition_is_always_three_fields() {
    let mut out = BytesMut::new();
    ErrorCondition {
        condition: Symbol::from("amqp:not-found"),
        description: None,
        info: None,
    }
    .encode(&mut out);
    // 00 53 1d c0 <size> 03 a3 0e "amqp:not-found" 40 40
    assert_eq!(&out[..6], &[0x00, 0x53, 0x1d, 0xc0, 0x13, 0x03]);
    assert_eq!(&out[out.len() - 2..], &[0x40, 0x40]);
}

#[test]
fn accepted_outcome_is_compact() {
    let mut out = BytesMut::new();
    DeliveryState::Accepted.encode(&mut out);
    assert_eq!(&out[..], &[0x00, 0x53, 0x24, 0x45]);
}

#[test]
fn described_array_round_trips() {
    let d = || Box::new(Descriptor::Code(0x1370000006));
    let v = Value::Array(vec![
        Value::Described(d(), Box::new(Value::String("a".into()))),
        Value::Described(d(), Box::new(Value::String("b".into()))),
    ]);
    let mut out = BytesMut::new();
    encode_value(&v, &mut out);
    assert_eq!(decode_value(&mut out.freeze()).unwrap(), v);
}
