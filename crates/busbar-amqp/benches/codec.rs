//! Codec costs on the message path: one 1 KiB transfer frame encoded and decoded, and a
//! stored Service Bus message located (`scan_sections`) and written out for delivery
//! (`write_delivery` with a new header and broker annotations).
//!
//! `cargo bench -p busbar-amqp --bench codec` (each benchmark runs for about a second).

use std::hint::black_box;
use std::time::Duration;

use busbar_amqp::codec::encode_value;
use busbar_amqp::frame::{FrameDecoder, encode_transfer};
use busbar_amqp::message::{Header, Properties, RewriteOptions, scan_sections, write_delivery};
use busbar_amqp::performative::Transfer;
use busbar_amqp::{Descriptor, Symbol, Timestamp, Value};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn section(code: u64, value: Value) -> Value {
    Value::Described(Box::new(Descriptor::Code(code)), Box::new(value))
}

/// What an SDK sends: header, message annotations, properties with a message id and
/// content type, a few application properties, and a 1 KiB data body.
fn sdk_message() -> Bytes {
    let mut out = BytesMut::new();
    Header {
        durable: true,
        ..Header::default()
    }
    .encode(&mut out);
    encode_value(
        &section(
            0x72,
            Value::Map(vec![(
                Value::Symbol(Symbol::from("x-opt-partition-key")),
                Value::String("pk-17".into()),
            )]),
        ),
        &mut out,
    );
    Properties {
        message_id: Some(Value::String("7d3c9a1e-5b2f-4c8e-9a6d-2f1e0b4c8d7a".into())),
        subject: Some("order-created".into()),
        content_type: Some(Symbol::from("application/json")),
        creation_time: Some(Timestamp(1_700_000_000_000)),
        ..Properties::default()
    }
    .encode(&mut out);
    encode_value(
        &section(
            0x74,
            Value::Map(vec![
                (
                    Value::String("tenant".into()),
                    Value::String("contoso".into()),
                ),
                (Value::String("attempt".into()), Value::Int(1)),
                (Value::String("priority".into()), Value::Long(5)),
            ]),
        ),
        &mut out,
    );
    encode_value(
        &section(0x75, Value::Binary(Bytes::from(vec![0x5a; 1024]))),
        &mut out,
    );
    out.freeze()
}

fn transfer() -> Transfer {
    Transfer {
        handle: 1,
        delivery_id: Some(4242),
        delivery_tag: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0x10, 0x92])),
        message_format: Some(0),
        ..Transfer::default()
    }
}

fn frames(c: &mut Criterion) {
    let payload = vec![0xa5u8; 1024];
    let transfer = transfer();
    let mut g = c.benchmark_group("transfer_1k");
    g.throughput(Throughput::Elements(1));

    let mut out = BytesMut::with_capacity(4096);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encode_transfer(0, black_box(&transfer), black_box(&payload), &mut out);
            black_box(out.len())
        })
    });

    let mut encoded = BytesMut::new();
    encode_transfer(0, &transfer, &payload, &mut encoded);
    let encoded = encoded.freeze();
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::with_capacity(4096);
    g.bench_function("decode", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&encoded);
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => black_box(frame),
                other => panic!("the frame does not decode: {other:?}"),
            }
        })
    });
    g.finish();
}

fn messages(c: &mut Criterion) {
    let stored = sdk_message();
    let mut g = c.benchmark_group("sdk_message_1k");
    g.throughput(Throughput::Elements(1));

    g.bench_function("scan_sections", |b| {
        b.iter(|| scan_sections(black_box(&stored)).map(|s| black_box(s.sections.body)))
    });

    let scanned = match scan_sections(&stored) {
        Ok(s) => s,
        Err(e) => panic!("the message does not scan: {e}"),
    };
    let header = Header {
        durable: true,
        delivery_count: 1,
        ttl: Some(60_000),
        ..Header::default()
    };
    let annotations = [
        (
            Symbol::from("x-opt-sequence-number"),
            Value::Long(1_000_042),
        ),
        (
            Symbol::from("x-opt-enqueued-time"),
            Value::Timestamp(Timestamp(1_700_000_000_123)),
        ),
        (
            Symbol::from("x-opt-locked-until"),
            Value::Timestamp(Timestamp(1_700_000_060_123)),
        ),
    ];
    let options = RewriteOptions {
        header: Some(&header),
        annotations: &annotations,
        ..RewriteOptions::default()
    };
    let mut out = BytesMut::with_capacity(4096);
    g.bench_function("write_delivery", |b| {
        b.iter(|| {
            out.clear();
            write_delivery(&mut out, black_box(&scanned), &options).map(|()| black_box(out.len()))
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = frames, messages
}
criterion_main!(benches);
