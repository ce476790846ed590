//! Frame layer: protocol headers, the 8-byte frame header, and splitting a byte stream
//! into frames.
//!
//! Planned API (implemented in this module):
//! - `ProtocolHeader` (`AMQP 0 1 0 0` / `AMQP 3 1 0 0`) parse and bytes.
//! - `Frame { channel: u16, body: FrameBody }` where `FrameBody` is `Empty` (heartbeat),
//!   `Amqp { performative, payload: Bytes }` or `Sasl(SaslFrame)`.
//! - `FrameDecoder::new(max_frame_size)`, `decode(&mut BytesMut) -> Result<Option<Frame>, CodecError>`.
//! - `encode_frame(&Frame, &mut BytesMut)` and a fast path
//!   `encode_transfer(channel, &Transfer, payload: &[&[u8]], &mut BytesMut)`.
