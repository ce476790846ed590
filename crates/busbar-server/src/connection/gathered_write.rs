//! The connection's output: frames encoded into one buffer, except large transfer payloads,
//! which go to the socket from where they already are (a stored message's body) in the
//! same vectored write instead of being copied in.

use std::io::{self, IoSlice};

use busbar_amqp::frame::{Frame, encode_frame_head};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Payloads from this size on are written from their own buffers.
const SEPARATE_PAYLOAD_FROM: usize = 16 * 1024;

/// One flush's worth of encoded frames.
#[derive(Default)]
pub(super) struct Output {
    encoded: BytesMut,
    /// Payloads left out of `encoded`, each with the offset in it they follow.
    separate: Vec<(usize, Bytes)>,
}

impl Output {
    pub(super) fn new(capacity: usize) -> Self {
        Output {
            encoded: BytesMut::with_capacity(capacity),
            separate: Vec::new(),
        }
    }

    /// Encodes `frames` (draining them) in place of what the last flush held.
    pub(super) fn encode(&mut self, frames: &mut Vec<Frame>) {
        self.encoded.clear();
        self.separate.clear();
        for frame in frames.drain(..) {
            if let Some(payload) =
                encode_frame_head(&frame, &mut self.encoded, SEPARATE_PAYLOAD_FROM)
            {
                self.separate.push((self.encoded.len(), payload.clone()));
            }
        }
    }

    /// Writes everything encoded, in order.
    pub(super) async fn write_to<W: AsyncWrite + Unpin>(&self, stream: &mut W) -> io::Result<()> {
        if self.separate.is_empty() {
            return stream.write_all(&self.encoded).await;
        }
        let mut slices = Vec::with_capacity(self.separate.len() * 2 + 1);
        let mut from = 0;
        for (at, payload) in &self.separate {
            slices.push(IoSlice::new(&self.encoded[from..*at]));
            slices.push(IoSlice::new(payload));
            from = *at;
        }
        slices.push(IoSlice::new(&self.encoded[from..]));
        slices.retain(|slice| !slice.is_empty());
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let written = stream.write_vectored(rest).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, written);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use busbar_amqp::frame::{FrameBody, encode_frame};
    use busbar_amqp::performative::{Performative, Transfer};

    use super::*;

    /// A writer that takes at most `step` bytes per call, so writes end mid-slice.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.step - n);
                self.written.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn transfer(payload_len: usize) -> Frame {
        Frame {
            channel: 1,
            body: FrameBody::Amqp {
                performative: Performative::Transfer(Transfer {
                    handle: 0,
                    more: true,
                    ..Transfer::default()
                }),
                payload: Bytes::from((0..payload_len).map(|i| i as u8).collect::<Vec<_>>()),
            },
        }
    }

    /// Small and large transfers mixed come out as the frames encoded one after another,
    /// however the socket splits the writes.
    #[tokio::test]
    async fn writes_the_frames_in_order_with_large_payloads_separate() {
        let frames = vec![
            Frame::heartbeat(),
            transfer(SEPARATE_PAYLOAD_FROM),
            transfer(SEPARATE_PAYLOAD_FROM - 1),
            transfer(3 * SEPARATE_PAYLOAD_FROM + 7),
            transfer(SEPARATE_PAYLOAD_FROM + 1),
            Frame::heartbeat(),
        ];
        let mut expected = BytesMut::new();
        for frame in &frames {
            encode_frame(frame, &mut expected);
        }
        for step in [1, 100, 4096, 1 << 20] {
            let mut output = Output::new(64);
            output.encode(&mut frames.clone());
            assert_eq!(output.separate.len(), 3);
            let mut socket = Trickle {
                written: Vec::new(),
                step,
            };
            output.write_to(&mut socket).await.unwrap();
            assert_eq!(socket.written, expected, "writes of {step} bytes");
        }
    }
}
