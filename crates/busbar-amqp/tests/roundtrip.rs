//! Property tests: everything the codec encodes decodes back to the same thing.
#![allow(clippy::unwrap_used)]

use busbar_amqp::codec::{MapKey, MapReader, decode_value, encode_value, skip_value};
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
        let mut skipped = Bytes::copy_from_slice(&out[..n]);
        prop_assert!(skip_value(&mut skipped).is_err());
        prop_assert_eq!(&skipped[..], &out[..n], "left as it was");
    }

    /// One byte changed, so constructors and sizes the encoder never writes turn up: what
    /// decoding reads as one value, skipping spans exactly.
    #[test]
    fn skip_value_spans_what_value_decode_reads(
        v in value(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let mut out = BytesMut::new();
        encode_value(&v, &mut out);
        let at = flip.0.index(out.len());
        out[at] ^= flip.1;
        let corrupt = out.freeze();
        let mut decoded = corrupt.clone();
        if decode_value(&mut decoded).is_ok() {
            let mut skipped = corrupt.clone();
            prop_assert_eq!(skip_value(&mut skipped).ok(), Some(corrupt.len() - decoded.len()));
        }
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

/// A field that is mostly of the type `typed` gives, otherwise of any type or absent.
fn field_of(typed: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![3 => typed.prop_map(Some), 1 => field_value()]
}

/// Encodes `fields` as the list of a composite described by `code`.
fn composite(code: u64, fields: &[Option<Value>]) -> Bytes {
    let list = fields
        .iter()
        .map(|f| f.clone().unwrap_or(Value::Null))
        .collect();
    let mut out = BytesMut::new();
    encode_value(
        &Value::Described(
            Box::new(Descriptor::Code(code)),
            Box::new(Value::List(list)),
        ),
        &mut out,
    );
    out.freeze()
}

// What each typed field of a section reads as, by its decoded `Value`: the specification
// the section decoders' fast paths must agree with. `Err(())` is a rejected field.
fn as_u32(v: &Option<Value>) -> Result<Option<u32>, ()> {
    v.as_ref()
        .map(|v| v.as_i64().and_then(|x| u32::try_from(x).ok()).ok_or(()))
        .transpose()
}
fn as_bool(v: &Option<Value>) -> Result<Option<bool>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(()),
    }
}
fn as_text(v: &Option<Value>) -> Result<Option<String>, ()> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Symbol(s)) => std::str::from_utf8(&s.0)
            .map(|s| Some(s.to_owned()))
            .map_err(drop),
        Some(_) => Err(()),
    }
}
fn as_symbol(v: &Option<Value>) -> Result<Option<Symbol>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Symbol(s)) => Ok(Some(s.clone())),
        Some(Value::String(s)) => Ok(Some(Symbol::from(s.as_str()))),
        Some(_) => Err(()),
    }
}
fn as_binary(v: &Option<Value>) -> Result<Option<Bytes>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Binary(b)) => Ok(Some(b.clone())),
        Some(_) => Err(()),
    }
}
fn as_timestamp(v: &Option<Value>) -> Result<Option<Timestamp>, ()> {
    v.as_ref()
        .map(|v| v.as_i64().map(Timestamp).ok_or(()))
        .transpose()
}

fn header_by_values(f: &[Option<Value>]) -> Result<Header, ()> {
    Ok(Header {
        durable: as_bool(&f[0])?.unwrap_or(false),
        priority: as_u32(&f[1])?
            .map(|p| u8::try_from(p).map_err(drop))
            .transpose()?
            .unwrap_or(4),
        ttl: as_u32(&f[2])?,
        first_acquirer: as_bool(&f[3])?.unwrap_or(false),
        delivery_count: as_u32(&f[4])?.unwrap_or(0),
    })
}

fn properties_by_values(f: &[Option<Value>]) -> Result<Properties, ()> {
    Ok(Properties {
        message_id: f[0].clone(),
        user_id: as_binary(&f[1])?,
        to: as_text(&f[2])?,
        subject: as_text(&f[3])?,
        reply_to: as_text(&f[4])?,
        correlation_id: f[5].clone(),
        content_type: as_symbol(&f[6])?,
        content_encoding: as_symbol(&f[7])?,
        absolute_expiry_time: as_timestamp(&f[8])?,
        creation_time: as_timestamp(&f[9])?,
        group_id: as_text(&f[10])?,
        group_sequence: as_u32(&f[11])?,
        reply_to_group_id: as_text(&f[12])?,
    })
}

fn uint_field() -> impl Strategy<Value = Option<Value>> {
    field_of(prop_oneof![
        any::<u32>().prop_map(Value::Uint),
        any::<u8>().prop_map(Value::Ubyte),
        (0..300i64).prop_map(Value::Long),
    ])
}
fn bool_field() -> impl Strategy<Value = Option<Value>> {
    field_of(any::<bool>().prop_map(Value::Bool))
}
fn text_field() -> impl Strategy<Value = Option<Value>> {
    field_of(prop_oneof![
        text().prop_map(Value::String),
        symbol().prop_map(Value::Symbol)
    ])
}
fn timestamp_field() -> impl Strategy<Value = Option<Value>> {
    field_of(any::<i64>().prop_map(|t| Value::Timestamp(Timestamp(t))))
}

/// A map key: mostly a symbol or string (what annotations use), otherwise any value.
fn map_key() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => symbol().prop_map(Value::Symbol),
        1 => text().prop_map(Value::String),
        1 => value(),
    ]
}

/// How a test reads a map entry's value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Read {
    Skip,
    Value,
    Integer,
}

fn read() -> impl Strategy<Value = Read> {
    prop_oneof![Just(Read::Skip), Just(Read::Value), Just(Read::Integer)]
}

/// A map entry's value as the test read it.
#[derive(Debug, PartialEq)]
enum Seen {
    Skipped,
    Value(Value),
    Integer(Option<i64>),
}

impl Seen {
    /// What reading `value` as `how` says it is.
    fn of(value: Value, how: Read) -> Self {
        match how {
            Read::Skip => Seen::Skipped,
            Read::Value => Seen::Value(value),
            Read::Integer => Seen::Integer(value.as_i64()),
        }
    }
}

/// Map entries: a named key's text (`None` for other keys) and the value as read.
type Entries = Vec<(Option<Vec<u8>>, Seen)>;

/// The entries `MapReader` reads from the encoded `map`: named keys as text, other keys as
/// `None`, each value read as `reads` says for that entry (decoded when it says nothing).
fn read_entries(map: &Bytes, reads: &[Read]) -> Result<Entries, busbar_amqp::CodecError> {
    let mut buf = map.clone();
    let mut reader = MapReader::open(&mut buf)?;
    let mut out = Vec::new();
    while let Some(key) = reader.next_key()? {
        let key = match key {
            MapKey::Name(name) => Some(name.to_vec()),
            MapKey::Other => None,
        };
        let value = match reads.get(out.len()).copied().unwrap_or(Read::Value) {
            Read::Skip => Seen::Skipped,
            Read::Value => Seen::Value(reader.value()?),
            Read::Integer => Seen::Integer(reader.integer_value()?),
        };
        out.push((key, value));
    }
    if !buf.is_empty() {
        return Err(busbar_amqp::CodecError::Other("bytes after the map"));
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn header_reads_each_field_as_its_value_decode_says(
        fields in (bool_field(), uint_field(), uint_field(), bool_field(), uint_field()),
    ) {
        let fields = [fields.0, fields.1, fields.2, fields.3, fields.4];
        let got = Header::decode(&mut composite(0x70, &fields)).map_err(drop);
        prop_assert_eq!(got, header_by_values(&fields));
    }

    #[test]
    fn properties_read_each_field_as_its_value_decode_says(
        ids in (field_value(), field_of(binary().prop_map(Value::Binary)), field_value()),
        texts in (text_field(), text_field(), text_field(), text_field(), text_field()),
        symbols in (text_field(), text_field()),
        times in (timestamp_field(), timestamp_field(), uint_field()),
    ) {
        let fields = [
            ids.0, ids.1, texts.0, texts.1, texts.2, ids.2, symbols.0, symbols.1, times.0,
            times.1, texts.3, times.2, texts.4,
        ];
        let got = Properties::decode(&mut composite(0x73, &fields)).map_err(drop);
        prop_assert_eq!(got, properties_by_values(&fields));
    }

    #[test]
    fn map_reader_sees_the_entries_value_decode_sees(
        pairs in prop::collection::vec((map_key(), value()), 0..8),
        reads in prop::collection::vec(read(), 8),
    ) {
        let mut out = BytesMut::new();
        encode_value(&Value::Map(pairs.clone()), &mut out);
        let map = out.freeze();
        let Value::Map(decoded) = decode_value(&mut map.clone()).unwrap() else {
            panic!("a map decodes as a map");
        };
        let expected: Vec<_> = decoded
            .into_iter()
            .zip(&reads)
            .map(|((k, v), &how)| {
                let key = match k {
                    Value::Symbol(s) => Some(s.0.to_vec()),
                    Value::String(s) => Some(s.into_bytes()),
                    _ => None,
                };
                (key, Seen::of(v, how))
            })
            .collect();
        prop_assert_eq!(read_entries(&map, &reads).unwrap(), expected);
    }

    #[test]
    fn map_reader_rejects_what_value_decode_rejects(
        pairs in prop::collection::vec((map_key(), value()), 0..6),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
        reads in prop::collection::vec(read(), 6),
    ) {
        let mut out = BytesMut::new();
        encode_value(&Value::Map(pairs), &mut out);
        // Cut short: always an error, never a panic.
        let truncated = out.clone().freeze().slice(..cut.index(out.len()));
        prop_assert!(read_entries(&truncated, &reads).is_err());
        // One byte changed: the reader agrees with decoding the map as a value (values
        // skipped or read as integers are still checked).
        let at = flip.0.index(out.len());
        out[at] ^= flip.1;
        let corrupt = out.freeze();
        let mut rest = corrupt.clone();
        let by_value = decode_value(&mut rest)
            .is_ok_and(|v| matches!(v, Value::Map(_) | Value::Null) && rest.is_empty());
        let read = read_entries(&corrupt, &reads);
        prop_assert_eq!(read.is_ok(), by_value, "{:?}", read);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any encoding of the fields (one byte of a header changed, so constructors the encoder
    /// never picks turn up too) reads as decoding the fields as values says.
    #[test]
    fn any_encoding_of_a_header_reads_as_its_value_decode_says(
        fields in (bool_field(), uint_field(), uint_field(), bool_field(), uint_field()),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let fields = [fields.0, fields.1, fields.2, fields.3, fields.4];
        let mut out = BytesMut::from(&composite(0x70, &fields)[..]);
        let at = flip.0.index(out.len());
        out[at] ^= flip.1;
        let encoded = out.freeze();
        let mut rest = encoded.clone();
        let Ok(Value::Described(d, list)) = decode_value(&mut rest) else { return Ok(()) };
        let Value::List(list) = *list else { return Ok(()) };
        if *d != Descriptor::Code(0x70) || !rest.is_empty() {
            return Ok(());
        }
        let mut fields: Vec<Option<Value>> =
            list.into_iter().map(|v| (!v.is_null()).then_some(v)).collect();
        fields.resize(5, None);
        let got = Header::decode(&mut encoded.clone()).map_err(drop);
        prop_assert_eq!(got, header_by_values(&fields));
    }
}

#[test]
fn map_reader_reads_null_as_no_entries_and_refuses_other_types() {
    assert_eq!(
        read_entries(&Bytes::from_static(&[0x40]), &[]).unwrap(),
        vec![]
    );
    assert!(read_entries(&Bytes::from_static(&[0x45]), &[]).is_err());
    // odd element count
    assert!(read_entries(&Bytes::from_static(&[0xc1, 0x02, 0x01, 0x40]), &[]).is_err());
    // a string key that is not UTF-8
    assert!(
        read_entries(
            &Bytes::from_static(&[0xc1, 0x05, 0x02, 0xa1, 0x01, 0xff, 0x40]),
            &[]
        )
        .is_err()
    );
    // trailing bytes after the last entry
    assert!(
        read_entries(
            &Bytes::from_static(&[0xc1, 0x04, 0x02, 0x40, 0x40, 0x40]),
            &[]
        )
        .is_err()
    );
}

/// Elements a decoded value holds, nested ones included.
fn elements(v: &Value) -> usize {
    match v {
        Value::List(items) | Value::Array(items) => {
            items.len() + items.iter().map(elements).sum::<usize>()
        }
        Value::Map(pairs) => {
            2 * pairs.len()
                + pairs
                    .iter()
                    .map(|(k, v)| elements(k) + elements(v))
                    .sum::<usize>()
        }
        Value::Described(_, inner) => elements(inner),
        _ => 0,
    }
}

/// An array of arrays of nulls: each inner array is 9 bytes on the wire (size, count,
/// constructor) and may declare 4096 nulls, so a frame's worth of them would decode to
/// tens of gigabytes of `Value`s. What decoding builds must stay in proportion to the input.
#[test]
fn arrays_of_zero_width_arrays_do_not_amplify() {
    let inner = [0xf0, 0, 0, 0, 5, 0, 0, 0x10, 0, 0x40];
    let n: u32 = 100;
    let mut body = Vec::new();
    body.extend_from_slice(&n.to_be_bytes());
    body.push(0xf0);
    for _ in 0..n {
        body.extend_from_slice(&inner[1..]);
    }
    let mut wire = vec![0xf0];
    wire.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    wire.extend_from_slice(&body);
    let len = wire.len();
    // One array of 4096 nulls is still read.
    let one = decode_value(&mut Bytes::copy_from_slice(&inner)).unwrap();
    assert_eq!(one, Value::Array(vec![Value::Null; 4096]));
    match decode_value(&mut Bytes::from(wire)) {
        Err(_) => {}
        Ok(v) => assert!(
            elements(&v) <= 8 * len,
            "{} bytes decoded to {} elements",
            len,
            elements(&v)
        ),
    }
}
