//! A WebSocket seen as a byte stream, so AMQP runs over it as over TCP (OASIS AMQP
//! WebSocket Binding, subprotocol `AMQPWSB10`): reads concatenate the payloads of binary
//! messages (an AMQP frame may span several messages, or a message hold several frames);
//! each flush sends what was written since as one binary message. Pings are answered by
//! the WebSocket library itself; a close from the peer ends the stream; a text message is
//! a protocol error, refused with close code 1003, and a failed read with 1002 (or what
//! the [`Dialect`] says, 1009 for a message over the size limit).
//!
//! It works on any WebSocket library's socket (a `Stream` and `Sink` of its messages)
//! through a [`Dialect`] naming that library's message kinds: the broker's side uses
//! axum's, the client's tokio-tungstenite's. It knows nothing of AMQP beyond the binding.

use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The WebSocket subprotocol of AMQP 1.0.
pub const AMQP_SUBPROTOCOL: &str = "AMQPWSB10";

/// The most one write buffers before sending it, whether or not the writer flushes.
const MAX_OUTGOING_MESSAGE: usize = 256 * 1024;
/// The longest reason a close frame carries (125 bytes of payload less the code).
const MAX_CLOSE_REASON: usize = 123;

/// Close codes of RFC 6455 §7.4.1 the adapter sends.
pub mod close_code {
    pub const PROTOCOL: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const SIZE: u16 = 1009;
}

/// What a received message means to the adapter.
pub enum Incoming {
    Binary(Bytes),
    Text,
    Close,
    /// Pings, pongs and raw frames: the library answers what needs an answer.
    Control,
}

/// One WebSocket library's messages and errors.
pub trait Dialect {
    type Message;
    type Error: std::error::Error + Send + Sync + 'static;
    fn binary(data: Bytes) -> Self::Message;
    fn close(code: u16, reason: String) -> Self::Message;
    fn incoming(message: Self::Message) -> Incoming;
    /// The close code answering a failed read.
    fn read_error_code(_error: &Self::Error) -> u16 {
        close_code::PROTOCOL
    }
}

/// Why the stream is being refused: the close frame still to be sent, then the error
/// the reader gets.
struct Refusal {
    code: u16,
    reason: String,
    sent: bool,
}

/// A WebSocket carrying AMQP bytes in binary messages; see the crate doc.
pub struct WebSocketBytes<W, D> {
    socket: W,
    /// What is left of the last binary message received.
    incoming: Bytes,
    /// Written since the last flush: goes out as one binary message.
    outgoing: BytesMut,
    /// The peer closed its side (or the socket ended): reads see end of stream.
    read_closed: bool,
    refusal: Option<Refusal>,
    dialect: PhantomData<fn() -> D>,
}

impl<W, D> WebSocketBytes<W, D>
where
    D: Dialect,
    W: Stream<Item = Result<D::Message, D::Error>> + Sink<D::Message, Error = D::Error> + Unpin,
{
    pub fn new(socket: W) -> Self {
        Self {
            socket,
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            read_closed: false,
            refusal: None,
            dialect: PhantomData,
        }
    }

    fn refuse(&mut self, code: u16, reason: String) {
        tracing::debug!(code, %reason, "refusing an AMQP WebSocket");
        self.refusal = Some(Refusal {
            code,
            reason,
            sent: false,
        });
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
            refusal.sent = true;
            let close = D::close(refusal.code, close_reason(&refusal.reason));
            if Pin::new(&mut self.socket).start_send(close).is_err() {
                return Poll::Ready(error);
            }
        }
        // Whether or not the close frame got out, the stream is over.
        let _ = ready!(Pin::new(&mut self.socket).poll_flush(cx));
        Poll::Ready(error)
    }

    /// Hands what was written since the last send to the socket as one binary message.
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.outgoing.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.socket).poll_ready(cx)).map_err(io::Error::other)?;
        let message = D::binary(self.outgoing.split().freeze());
        Pin::new(&mut self.socket)
            .start_send(message)
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(()))
    }
}

/// A close reason within what a close frame allows, cut on a character boundary.
fn close_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason.to_owned();
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

impl<W, D> AsyncRead for WebSocketBytes<W, D>
where
    D: Dialect,
    W: Stream<Item = Result<D::Message, D::Error>> + Sink<D::Message, Error = D::Error> + Unpin,
{
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
                Some(Ok(message)) => match D::incoming(message) {
                    Incoming::Binary(data) => this.incoming = data,
                    // Reading on lets the library send its answering close; then the
                    // socket ends.
                    Incoming::Close | Incoming::Control => {}
                    Incoming::Text => this.refuse(
                        close_code::UNSUPPORTED,
                        "AMQP over WebSockets takes binary messages only, not text".to_owned(),
                    ),
                },
                Some(Err(error)) => {
                    let code = D::read_error_code(&error);
                    this.refuse(code, error.to_string());
                }
                None => this.read_closed = true,
            }
        }
    }
}

impl<W, D> AsyncWrite for WebSocketBytes<W, D>
where
    D: Dialect,
    W: Stream<Item = Result<D::Message, D::Error>> + Sink<D::Message, Error = D::Error> + Unpin,
{
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
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert_eq!(cut.len(), 122);
    }
}
