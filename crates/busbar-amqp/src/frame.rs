//! Frame layer: protocol headers, the 8-byte frame header, and splitting a byte stream
//! into frames.
//!
//! A frame is `size:u32 doff:u8 type:u8 channel:u16`, an extended header of
//! `doff * 4 - 8` bytes (ignored), then the body: nothing (a heartbeat), or a performative
//! followed, for transfers, by payload bytes. Frame type 0 is AMQP, 1 is SASL.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::CodecError;
use crate::performative::{Performative, SaslFrame, Transfer};

/// Smallest max-frame-size a peer may announce; also the limit before `open`.
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

const FRAME_HEADER_LEN: usize = 8;
const FRAME_TYPE_AMQP: u8 = 0x00;
const FRAME_TYPE_SASL: u8 = 0x01;

/// The 8-byte protocol header that opens each layer of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeader {
    /// `AMQP 0 1 0 0`
    Amqp,
    /// `AMQP 3 1 0 0`
    Sasl,
}

impl ProtocolHeader {
    pub const LEN: usize = 8;

    /// `None` for anything that is not AMQP 1.0.0 with protocol id 0 or 3 (the caller
    /// answers with its own header and closes).
    pub fn parse(bytes: &[u8; 8]) -> Option<Self> {
        match bytes {
            [b'A', b'M', b'Q', b'P', 0, 1, 0, 0] => Some(ProtocolHeader::Amqp),
            [b'A', b'M', b'Q', b'P', 3, 1, 0, 0] => Some(ProtocolHeader::Sasl),
            _ => None,
        }
    }

    pub fn bytes(self) -> [u8; 8] {
        let id = match self {
            ProtocolHeader::Amqp => 0,
            ProtocolHeader::Sasl => 3,
        };
        [b'A', b'M', b'Q', b'P', id, 1, 0, 0]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub channel: u16,
    pub body: FrameBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FrameBody {
    /// An AMQP frame with no body: a heartbeat.
    Empty,
    /// A performative and, for transfers, the payload bytes that follow it.
    Amqp {
        performative: Performative,
        payload: Bytes,
    },
    Sasl(SaslFrame),
}

impl Frame {
    pub fn heartbeat() -> Self {
        Frame {
            channel: 0,
            body: FrameBody::Empty,
        }
    }

    pub fn amqp(channel: u16, performative: impl Into<Performative>) -> Self {
        Frame {
            channel,
            body: FrameBody::Amqp {
                performative: performative.into(),
                payload: Bytes::new(),
            },
        }
    }

    pub fn sasl(frame: SaslFrame) -> Self {
        Frame {
            channel: 0,
            body: FrameBody::Sasl(frame),
        }
    }
}

/// Splits a byte stream into frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(MIN_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// `max_frame_size` is the largest frame this side accepts (what it announced in
    /// `open`, or 512 before that).
    pub fn new(max_frame_size: u32) -> Self {
        FrameDecoder {
            max_frame_size: max_frame_size.max(MIN_MAX_FRAME_SIZE),
        }
    }

    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size.max(MIN_MAX_FRAME_SIZE);
    }

    /// Takes one frame off the front of `buf`. `Ok(None)` means more bytes are needed
    /// (nothing is consumed). Errors are fatal to the connection.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let doff = buf[4];
        let frame_type = buf[5];
        if size < FRAME_HEADER_LEN as u32 || size > self.max_frame_size {
            return Err(CodecError::FrameSize {
                size,
                max: self.max_frame_size,
            });
        }
        let body_offset = usize::from(doff) * 4;
        if body_offset < FRAME_HEADER_LEN || body_offset > size as usize {
            return Err(CodecError::Other("invalid frame data offset"));
        }
        if frame_type != FRAME_TYPE_AMQP && frame_type != FRAME_TYPE_SASL {
            return Err(CodecError::Other("unknown frame type"));
        }
        let size = size as usize;
        if buf.len() < size {
            // Declared sizes are untrusted: grow towards them, but not all at once.
            buf.reserve((size - buf.len()).min(1 << 20));
            return Ok(None);
        }
        let mut frame = buf.split_to(size).freeze();
        let channel = u16::from_be_bytes([frame[6], frame[7]]);
        frame.advance(body_offset);
        decode_frame_body(frame_type, channel, frame).map(Some)
    }
}

fn decode_frame_body(frame_type: u8, channel: u16, mut body: Bytes) -> Result<Frame, CodecError> {
    let body = if body.is_empty() {
        if frame_type == FRAME_TYPE_SASL {
            return Err(CodecError::Other("empty sasl frame"));
        }
        FrameBody::Empty
    } else if frame_type == FRAME_TYPE_SASL {
        let sasl = SaslFrame::decode(&mut body)?;
        FrameBody::Sasl(sasl)
    } else {
        let performative = Performative::decode(&mut body)?;
        if !body.is_empty() && !matches!(performative, Performative::Transfer(_)) {
            return Err(CodecError::Other(
                "payload after a performative other than transfer",
            ));
        }
        FrameBody::Amqp {
            performative,
            payload: body,
        }
    };
    Ok(Frame { channel, body })
}

/// Writes a frame header with a placeholder size; returns where the frame starts.
#[inline]
fn begin_frame(frame_type: u8, channel: u16, out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(2);
    out.put_u8(frame_type);
    out.put_u16(channel);
    start
}

#[inline]
fn end_frame(start: usize, out: &mut BytesMut) {
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    match &frame.body {
        FrameBody::Empty => {
            out.put_u32(FRAME_HEADER_LEN as u32);
            out.put_u8(2);
            out.put_u8(FRAME_TYPE_AMQP);
            out.put_u16(frame.channel);
        }
        FrameBody::Amqp {
            performative,
            payload,
        } => {
            let start = begin_frame(FRAME_TYPE_AMQP, frame.channel, out);
            performative.encode(out);
            out.put_slice(payload);
            end_frame(start, out);
        }
        FrameBody::Sasl(sasl) => {
            let start = begin_frame(FRAME_TYPE_SASL, frame.channel, out);
            sasl.encode(out);
            end_frame(start, out);
        }
    }
}

/// Like [`encode_frame`], except that a payload of `separate_from` bytes or more is left
/// out of `out` and returned: the frame's size counts it, so it must be written right
/// after what `out` holds now (a vectored write, with no copy of a large payload).
pub fn encode_frame_head<'a>(
    frame: &'a Frame,
    out: &mut BytesMut,
    separate_from: usize,
) -> Option<&'a Bytes> {
    match &frame.body {
        FrameBody::Amqp {
            performative,
            payload,
        } if payload.len() >= separate_from => {
            let start = begin_frame(FRAME_TYPE_AMQP, frame.channel, out);
            performative.encode(out);
            let size = (out.len() - start).saturating_add(payload.len());
            let size = u32::try_from(size).unwrap_or(u32::MAX);
            out[start..start + 4].copy_from_slice(&size.to_be_bytes());
            Some(payload)
        }
        _ => {
            encode_frame(frame, out);
            None
        }
    }
}

/// Writes one transfer frame: header, performative, payload, without building a `Frame`.
pub fn encode_transfer(channel: u16, transfer: &Transfer, payload: &[u8], out: &mut BytesMut) {
    encode_transfer_parts(channel, transfer, &[payload], out);
}

/// Like [`encode_transfer`] with the payload given in pieces (e.g. a rewritten header
/// followed by the stored bare message).
pub fn encode_transfer_parts(
    channel: u16,
    transfer: &Transfer,
    payload: &[&[u8]],
    out: &mut BytesMut,
) {
    let start = begin_frame(FRAME_TYPE_AMQP, channel, out);
    transfer.encode_with_more(transfer.more, out);
    for part in payload {
        out.put_slice(part);
    }
    end_frame(start, out);
}

/// Writes a delivery as one or more transfer frames, none larger than `max_frame_size`
/// (the peer's). The first frame carries every field of `transfer`; continuation frames
/// carry the handle, the delivery-id and `more`. The last frame's `more` is `transfer.more`.
pub fn encode_transfer_split(
    channel: u16,
    transfer: &Transfer,
    payload: &[u8],
    max_frame_size: u32,
    out: &mut BytesMut,
) {
    let max = max_frame_size.max(MIN_MAX_FRAME_SIZE) as usize;
    let start = begin_frame(FRAME_TYPE_AMQP, channel, out);
    transfer.encode_with_more(transfer.more, out);
    let overhead = out.len() - start;
    if overhead + payload.len() <= max {
        out.put_slice(payload);
        end_frame(start, out);
        return;
    }
    // Rewrite the first frame's performative with more=true.
    out.truncate(start + FRAME_HEADER_LEN);
    transfer.encode_with_more(true, out);
    // A performative that alone fills a frame still carries one byte, so progress is made.
    let room = max.saturating_sub(out.len() - start).max(1);
    let (first, mut rest) = payload.split_at(room.min(payload.len()));
    out.put_slice(first);
    end_frame(start, out);

    let continuation = Transfer {
        handle: transfer.handle,
        delivery_id: transfer.delivery_id,
        ..Transfer::default()
    };
    while !rest.is_empty() {
        let start = begin_frame(FRAME_TYPE_AMQP, channel, out);
        continuation.encode_with_more(true, out);
        let room = max.saturating_sub(out.len() - start).max(1);
        let last = rest.len() <= room;
        if last {
            out.truncate(start + FRAME_HEADER_LEN);
            continuation.encode_with_more(transfer.more, out);
        }
        let (chunk, tail) = rest.split_at(room.min(rest.len()));
        out.put_slice(chunk);
        end_frame(start, out);
        rest = tail;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn protocol_headers() {
        assert_eq!(
            ProtocolHeader::parse(b"AMQP\x03\x01\x00\x00"),
            Some(ProtocolHeader::Sasl)
        );
        assert_eq!(
            ProtocolHeader::parse(b"AMQP\x00\x01\x00\x00"),
            Some(ProtocolHeader::Amqp)
        );
        assert_eq!(ProtocolHeader::parse(b"AMQP\x00\x00\x09\x01"), None);
        assert_eq!(&ProtocolHeader::Amqp.bytes(), b"AMQP\x00\x01\x00\x00");
    }

    #[test]
    fn heartbeat_round_trip() {
        let mut out = BytesMut::new();
        encode_frame(&Frame::heartbeat(), &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 8, 2, 0, 0, 0]);
        let f = FrameDecoder::new(512).decode(&mut out).unwrap().unwrap();
        assert_eq!(f.body, FrameBody::Empty);
        assert!(out.is_empty());
    }

    #[test]
    fn split_transfer_respects_max_frame_size() {
        let t = Transfer {
            handle: 3,
            delivery_id: Some(9),
            delivery_tag: Some(Bytes::from_static(&[7; 16])),
            message_format: Some(0),
            settled: Some(false),
            ..Transfer::default()
        };
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        encode_transfer_split(1, &t, &payload, 1000, &mut out);
        let mut dec = FrameDecoder::new(1000);
        let mut joined = Vec::new();
        let mut frames = 0;
        while let Some(f) = dec.decode(&mut out).unwrap() {
            frames += 1;
            let FrameBody::Amqp {
                performative: Performative::Transfer(tr),
                payload,
            } = f.body
            else {
                panic!("not a transfer")
            };
            assert_eq!(tr.handle, 3);
            let last = joined.len() + payload.len() == 3000;
            assert_eq!(tr.more, !last);
            if frames == 1 {
                assert_eq!(tr.delivery_tag, t.delivery_tag);
            }
            joined.extend_from_slice(&payload);
        }
        assert_eq!(frames, 4);
        assert_eq!(joined, payload);
    }

    /// A frame head followed by its separated payload is byte for byte the whole frame.
    #[test]
    fn frame_head_and_separated_payload_make_the_frame() {
        let transfer = Frame {
            channel: 2,
            body: FrameBody::Amqp {
                performative: Performative::Transfer(Transfer {
                    handle: 1,
                    delivery_id: Some(4),
                    more: true,
                    ..Transfer::default()
                }),
                payload: Bytes::from((0..5000u32).map(|i| i as u8).collect::<Vec<_>>()),
            },
        };
        for frame in [Frame::heartbeat(), transfer] {
            let mut whole = BytesMut::new();
            encode_frame(&frame, &mut whole);
            for separate_from in [0, 4999, 5000, 5001] {
                let mut head = BytesMut::from(&b"before"[..]);
                let payload = encode_frame_head(&frame, &mut head, separate_from);
                let mut joined = head[6..].to_vec();
                if let Some(payload) = payload {
                    joined.extend_from_slice(payload);
                }
                assert_eq!(joined, whole, "separating from {separate_from}");
            }
        }
    }
}
