//! Arbitrary bytes into every decoder that reads network input: none may panic, and
//! whatever decodes must re-encode and decode to the same thing.
#![no_main]

use busbar_amqp::codec::{decode_value, encode_value};
use busbar_amqp::frame::{FrameDecoder, encode_frame};
use busbar_amqp::message::{Header, Properties, scan_sections, split_batch};
use busbar_amqp::performative::{Performative, SaslFrame};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);

    let mut decoder = FrameDecoder::new(1 << 16);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let mut out = BytesMut::new();
        encode_frame(&frame, &mut out);
        let again = FrameDecoder::new(u32::MAX).decode(&mut out);
        if !has_nan(&frame) {
            assert_eq!(again, Ok(Some(frame)));
        }
    }

    if let Ok(p) = Performative::decode(&mut input.clone()) {
        let mut out = BytesMut::new();
        p.encode(&mut out);
        let back = Performative::decode(&mut out.freeze());
        if !has_nan(&p) {
            assert_eq!(back, Ok(p));
        }
    }
    let _ = SaslFrame::decode(&mut input.clone());

    if let Ok(v) = decode_value(&mut input.clone()) {
        let mut out = BytesMut::new();
        encode_value(&v, &mut out);
        let back = decode_value(&mut out.freeze());
        if !has_nan(&v) {
            assert_eq!(back, Ok(v));
        }
    }

    if let Ok(m) = scan_sections(&input) {
        let _ = m.header();
        let _ = m.properties();
        let _ = m.message_annotations();
        let _ = m.application_properties();
        let _ = m.data_sections();
        let _ = busbar_amqp::message::rewrite(
            &m,
            &busbar_amqp::message::RewriteOptions {
                header: Some(&Header::default()),
                ..Default::default()
            },
        );
    }
    let _ = split_batch(&input);
    let _ = Properties::decode(&mut input.clone());
});

/// NaN floats are the one value that is not equal to itself.
fn has_nan(v: &impl std::fmt::Debug) -> bool {
    format!("{v:?}").contains("NaN")
}
