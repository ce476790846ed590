//! AMQP over WebSockets (OASIS AMQP WebSocket Binding, subprotocol `AMQPWSB10`): the
//! WebSocket is bridged to one end of a local socket pair, and the connection runs on the
//! other end as it would on TCP. What the connection writes goes out as binary messages;
//! the payloads of the binary messages received are its input.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{ClientRequestBuilder, Message};

use crate::error::{Error, Result};

/// The WebSocket subprotocol of AMQP 1.0.
const SUBPROTOCOL: &str = "AMQPWSB10";
/// The most one outgoing message carries.
const MAX_OUTGOING_MESSAGE: usize = 256 * 1024;

/// Upgrades a connection to `addr` (`host:port`) at `path` and returns the local end of
/// the bridge.
pub(crate) async fn connect(addr: &str, path: &str) -> Result<UnixStream> {
    let uri = format!("ws://{addr}{path}")
        .parse()
        .map_err(|e| Error::WebSocket(format!("ws://{addr}{path} is not a valid URI: {e}")))?;
    let request = ClientRequestBuilder::new(uri).with_sub_protocol(SUBPROTOCOL);
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (socket, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .map_err(|e| Error::WebSocket(e.to_string()))?;
    let (ours, bridged) = UnixStream::pair()?;
    tokio::spawn(bridge(socket, bridged));
    Ok(ours)
}

/// Carries bytes both ways until either side ends; then ends the other.
async fn bridge(socket: WebSocketStream<TcpStream>, local: UnixStream) {
    let (mut to_peer, mut from_peer) = socket.split();
    let (mut local_read, mut local_write) = local.into_split();
    let outbound = async {
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        loop {
            buf.reserve(64 * 1024);
            let read = local_read.read_buf(&mut buf).await?;
            if read == 0 {
                break;
            }
            while !buf.is_empty() {
                let chunk = buf.split_to(buf.len().min(MAX_OUTGOING_MESSAGE));
                to_peer
                    .send(Message::Binary(chunk.freeze()))
                    .await
                    .map_err(std::io::Error::other)?;
            }
        }
        to_peer.close().await.map_err(std::io::Error::other)
    };
    let inbound = async {
        while let Some(message) = from_peer.next().await {
            match message.map_err(std::io::Error::other)? {
                Message::Binary(data) => local_write.write_all(&data).await?,
                Message::Text(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the peer sent a text message over AMQP",
                    ));
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
        local_write.shutdown().await
    };
    let ended = tokio::select! {
        ended = outbound => ended,
        ended = inbound => ended,
    };
    if let Err(error) = ended {
        tracing::debug!(%error, "AMQP WebSocket bridge ended");
    }
}
