//! The frame decoder against split, oversized and hostile input.
#![allow(clippy::unwrap_used)]

use busbar_amqp::CodecError;
use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, encode_frame, encode_transfer};
use busbar_amqp::performative::*;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn sample_frames() -> Vec<Frame> {
    vec![
        Frame::amqp(
            0,
            Open {
                container_id: "broker".into(),
                max_frame_size: Some(65536),
                idle_time_out: Some(120_000),
                ..Open::default()
            },
        ),
        Frame::heartbeat(),
        Frame::amqp(
            3,
            Flow {
                incoming_window: 5000,
                next_outgoing_id: 1,
                outgoing_window: 5000,
                handle: Some(2),
                link_credit: Some(100),
                ..Flow::default()
            },
        ),
        Frame {
            channel: 3,
            body: FrameBody::Amqp {
                performative: Performative::Transfer(Transfer {
                    handle: 2,
                    delivery_id: Some(7),
                    delivery_tag: Some(Bytes::from_static(&[9; 16])),
                    message_format: Some(0),
                    settled: Some(false),
                    ..Transfer::default()
                }),
                payload: Bytes::from(vec![0x5a; 700]),
            },
        },
        Frame::amqp(
            3,
            Close {
                error: Some(ErrorCondition::new("amqp:internal-error", "boom")),
            },
        ),
    ]
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        encode_frame(f, &mut out);
    }
    out.to_vec()
}

#[test]
fn byte_by_byte_feeding_yields_every_frame() {
    let frames = sample_frames();
    let wire = encode_all(&frames);
    let mut decoder = FrameDecoder::new(4096);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in wire {
        buf.extend_from_slice(&[b]);
        while let Some(f) = decoder.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    assert!(buf.is_empty());
}

#[test]
fn encode_transfer_matches_generic_encoding() {
    let frames = sample_frames();
    let FrameBody::Amqp {
        performative: Performative::Transfer(t),
        payload,
    } = &frames[3].body
    else {
        panic!()
    };
    let mut fast = BytesMut::new();
    encode_transfer(3, t, payload, &mut fast);
    let mut generic = BytesMut::new();
    encode_frame(&frames[3], &mut generic);
    assert_eq!(fast, generic);
}

#[test]
fn oversized_frame_rejected_before_it_arrives() {
    let mut decoder = FrameDecoder::new(1024);
    let mut buf = BytesMut::from(&[0u8, 0, 0x04, 0x01, 2, 0, 0, 0][..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(CodecError::FrameSize {
            size: 1025,
            max: 1024
        })
    );
}

#[test]
fn malformed_headers_rejected() {
    let mut d = FrameDecoder::new(1024);
    // size below 8
    assert!(
        d.decode(&mut BytesMut::from(&[0u8, 0, 0, 4, 2, 0, 0, 0][..]))
            .is_err()
    );
    // doff below 2
    assert!(
        d.decode(&mut BytesMut::from(&[0u8, 0, 0, 8, 1, 0, 0, 0][..]))
            .is_err()
    );
    // doff beyond the frame
    assert!(
        d.decode(&mut BytesMut::from(&[0u8, 0, 0, 8, 3, 0, 0, 0][..]))
            .is_err()
    );
    // unknown frame type
    assert!(
        d.decode(&mut BytesMut::from(&[0u8, 0, 0, 8, 2, 7, 0, 0][..]))
            .is_err()
    );
    // an HTTP request where a frame should be
    assert!(
        d.decode(&mut BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]))
            .is_err()
    );
}

#[test]
fn extended_header_is_skipped() {
    // doff=3: four bytes of extended header before the (empty) body
    let mut buf = BytesMut::from(&[0u8, 0, 0, 12, 3, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef][..]);
    let f = FrameDecoder::new(512).decode(&mut buf).unwrap().unwrap();
    assert_eq!(f.channel, 5);
    assert_eq!(f.body, FrameBody::Empty);
}

#[test]
fn incomplete_frame_consumes_nothing() {
    let wire = encode_all(&sample_frames()[..1]);
    let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
    assert_eq!(FrameDecoder::new(4096).decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), wire.len() - 1);
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut d = FrameDecoder::new(512);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = d.decode(&mut buf) {}
    }

    #[test]
    fn mutated_frames_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut wire = encode_all(&sample_frames());
        for (i, b) in flips {
            let i = i.index(wire.len());
            wire[i] = b;
        }
        let mut d = FrameDecoder::new(4096);
        let mut buf = BytesMut::from(&wire[..]);
        while let Ok(Some(_)) = d.decode(&mut buf) {}
    }
}
