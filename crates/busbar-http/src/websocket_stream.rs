//! A WebSocket seen as a byte stream, so AMQP can run over it as over TCP: reads
//! concatenate binary message payloads (an AMQP frame may span several messages, or a
//! message hold several frames); each flush sends what was written since as one binary
//! message. Pings are answered by the WebSocket layer itself; a close from the client
//! ends the stream; a text message is a protocol error, refused with close code 1003.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most the adapter buffers from one write before sending it, whether or not the
/// writer flushes: outgoing messages stay as bounded as incoming ones.
const MAX_OUTGOING_MESSAGE: usize = 256 * 1024;

/// Why the stream is being refused: the close frame still to be sent, then the error the
/// reader gets.
struct Refusal {
    code: u16,
    reason: String,
    sent: bool,
}

/// A WebSocket carrying AMQP bytes in binary messages; see the module doc.
pub struct WebSocketBytes {
    socket: WebSocket,
    /// What is left of the last binary message received.
    incoming: Bytes,
    /// Written since the last flush: goes out as one binary message.
    outgoing: BytesMut,
    /// The client closed its side (or the socket ended): reads see end of stream.
    read_closed: bool,
    refusal: Option<Refusal>,
}

impl WebSocketBytes {
    pub fn new(socket: WebSocket) -> Self {
        Self {
            socket,
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            read_closed: false,
            refusal: None,
        }
    }

    /// Sends the refusal's close frame (once), then fails the read with its reason.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(refusal) = self.refusal.as_mut() else {
            return Poll::Ready(io::Error::other("no refusal"));
        };
        let error = io::Error::new(io::ErrorKind::InvalidData, refusal.reason.clone());
        if !refusal.sent {
            if let Err(e) = ready!(Pin::new(&mut self.socket).poll_ready(cx)) {
                tracing::debug!(error = %e, "WebSocket gone before its refusal was sent");
                return Poll::Ready(error);
            }
            let frame = CloseFrame {
                code: refusal.code,
                reason: close_reason(&refusal.reason).into(),
            };
            refusal.sent = true;
            if Pin::new(&mut self.socket)
                .start_send(Message::Close(Some(frame)))
                .is_err()
            {
                return Poll::Ready(error);
            }
        }
        // Whether or not the close frame got out, the stream is over.
        let _ = ready!(Pin::new(&mut self.socket).poll_flush(cx));
        Poll::Ready(error)
    }

    fn refuse(&mut self, code: u16, reason: String) {
        tracing::debug!(code, %reason, "refusing an AMQP WebSocket");
        self.refusal = Some(Refusal {
            code,
            reason,
            sent: false,
        });
    }

    /// Hands what was written since the last send to the WebSocket as one binary message.
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.outgoing.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.socket).poll_ready(cx)).map_err(io::Error::other)?;
        let message = Message::Binary(self.outgoing.split().freeze());
        Pin::new(&mut self.socket)
            .start_send(message)
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(()))
    }
}

/// A close reason within the 123 bytes a close frame allows, cut on a character boundary.
fn close_reason(reason: &str) -> String {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason.to_owned();
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// The close code for a failed read: 1009 when the client's message was over the limit.
fn read_error_code(error: &axum::Error) -> u16 {
    use std::error::Error as _;
    let capacity = error
        .source()
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    if capacity {
        close_code::SIZE
    } else {
        close_code::PROTOCOL
    }
}

impl AsyncRead for WebSocketBytes {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.refusal.is_some() {
                return Poll::Ready(Err(ready!(this.poll_refuse(cx))));
            }
            if !this.incoming.is_empty() {
                let n = this.incoming.len().min(buf.remaining());
                buf.put_slice(&this.incoming[..n]);
                this.incoming.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.socket).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.incoming = data,
                // Answered (pings) or ignored (pongs) by the WebSocket layer.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // Reading on lets the WebSocket layer send its answering close; then the
                // socket ends.
                Some(Ok(Message::Close(_))) => {}
                None => this.read_closed = true,
                Some(Ok(Message::Text(_))) => this.refuse(
                    close_code::UNSUPPORTED,
                    "AMQP over WebSockets takes binary messages only, not text".to_owned(),
                ),
                Some(Err(error)) => {
                    let code = read_error_code(&error);
                    this.refuse(code, error.to_string());
                }
            }
        }
    }
}

impl AsyncWrite for WebSocketBytes {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() >= MAX_OUTGOING_MESSAGE {
            ready!(this.poll_send_outgoing(cx))?;
        }
        let n = buf.len().min(MAX_OUTGOING_MESSAGE - this.outgoing.len());
        this.outgoing.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        Pin::new(&mut this.socket)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        Pin::new(&mut this.socket)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame_on_a_character_boundary() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len(), 122);
    }
}
