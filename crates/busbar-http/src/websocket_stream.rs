//! axum's WebSocket messages as a `busbar_websocket` dialect: the upgraded socket seen as
//! the byte stream AMQP runs on.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use busbar_websocket::{Dialect, Incoming, close_code};
use bytes::Bytes;

/// An upgraded WebSocket carrying AMQP bytes in binary messages.
pub type WebSocketBytes = busbar_websocket::WebSocketBytes<WebSocket, AxumMessages>;

/// axum's message kinds; an over-sized message is answered with 1009.
pub struct AxumMessages;

impl Dialect for AxumMessages {
    type Message = Message;
    type Error = axum::Error;

    fn binary(data: Bytes) -> Message {
        Message::Binary(data)
    }

    fn close(code: u16, reason: String) -> Message {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    }

    fn incoming(message: Message) -> Incoming {
        match message {
            Message::Binary(data) => Incoming::Binary(data),
            Message::Text(_) => Incoming::Text,
            Message::Close(_) => Incoming::Close,
            Message::Ping(_) | Message::Pong(_) => Incoming::Control,
        }
    }

    fn read_error_code(error: &axum::Error) -> u16 {
        use std::error::Error as _;
        let over_size = error
            .source()
            .and_then(|source| source.downcast_ref::<tungstenite::Error>())
            .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
        if over_size {
            close_code::SIZE
        } else {
            close_code::PROTOCOL
        }
    }
}
