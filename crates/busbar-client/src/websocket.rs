//! AMQP over WebSockets, over TCP (`ws://`) or TLS (`wss://`): the upgraded socket, seen as
//! a byte stream (`busbar_websocket`), is what the connection runs on.

use busbar_websocket::{AMQP_SUBPROTOCOL, Dialect, Incoming, close_code};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, ClientRequestBuilder, Message};

use crate::error::{Error, Result};

pub(crate) type WebSocketBytes<S> =
    busbar_websocket::WebSocketBytes<WebSocketStream<S>, TungsteniteMessages>;

/// Upgrades `stream`, connected to `addr` (`host:port`), to a WebSocket at `path`
/// (`wss://` when `secure`: the stream is TLS).
pub(crate) async fn upgrade<S>(
    stream: S,
    addr: &str,
    path: &str,
    secure: bool,
) -> Result<WebSocketBytes<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let scheme = if secure { "wss" } else { "ws" };
    let url = format!("{scheme}://{addr}{path}");
    let uri = url
        .parse()
        .map_err(|e| Error::WebSocket(format!("{url} is not a valid URI: {e}")))?;
    let request = ClientRequestBuilder::new(uri).with_sub_protocol(AMQP_SUBPROTOCOL);
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| Error::WebSocket(format!("{url}: {e}")))?;
    Ok(WebSocketBytes::new(socket))
}

/// tokio-tungstenite's message kinds.
pub(crate) struct TungsteniteMessages;

impl Dialect for TungsteniteMessages {
    type Message = Message;
    type Error = tungstenite::Error;

    fn binary(data: Bytes) -> Message {
        Message::Binary(data)
    }

    fn close(code: u16, reason: String) -> Message {
        Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }

    fn incoming(message: Message) -> Incoming {
        match message {
            Message::Binary(data) => Incoming::Binary(data),
            Message::Text(_) => Incoming::Text,
            Message::Close(_) => Incoming::Close,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Incoming::Control,
        }
    }

    fn read_error_code(error: &tungstenite::Error) -> u16 {
        match error {
            tungstenite::Error::Capacity(_) => close_code::SIZE,
            _ => close_code::PROTOCOL,
        }
    }
}
