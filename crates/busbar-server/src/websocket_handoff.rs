//! AMQP connections that arrive inside WebSockets (on the HTTP side) handed to the accept
//! loop, which serves them with the current broker like any other connection.

use std::future::Future;
use std::pin::Pin;

use busbar_http::{AmqpEndpoint, WebSocketBytes};
use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::connection::Handoff;

/// The HTTP side's way to the accept loop.
pub(crate) struct WebSocketHandoff(pub(crate) mpsc::Sender<Handoff>);

impl AmqpEndpoint for WebSocketHandoff {
    fn serve(
        &self,
        stream: WebSocketBytes,
        peer: String,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let handoff = Handoff {
                stream: Box::new(stream),
                read_ahead: BytesMut::new(),
                peer,
            };
            if self.0.send(handoff).await.is_err() {
                tracing::debug!("a WebSocket arrived while the broker was stopping");
            }
        })
    }
}
