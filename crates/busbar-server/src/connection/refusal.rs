//! Saying no in AMQP's own terms to a connection the broker won't serve (plain AMQP where
//! only TLS is allowed): the protocol headers and SASL are completed, whatever the client
//! offers, only so that its `open` can be answered with a `close` carrying the reason.

use std::time::Instant;

use busbar_amqp::engine::{Connection, ConnectionConfig, Event};
use busbar_amqp::frame::{FrameDecoder, encode_frame};
use busbar_amqp::performative::ErrorCondition;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ClientStream, REFUSAL_TIMEOUT, elapsed_ms, handshake};

/// Closes the client's connection with `condition` and `description` once it has opened it;
/// gives up after [`REFUSAL_TIMEOUT`]. `read_ahead` holds bytes already read from `stream`.
pub async fn refuse(
    mut stream: impl ClientStream,
    mut read_ahead: BytesMut,
    condition: &str,
    description: String,
    peer: &str,
) {
    let refused = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        handshake::handshake(
            &mut stream,
            &mut read_ahead,
            handshake::Credentials::AnyAccepted,
        )
        .await?;
        close_after_open(&mut stream, read_ahead, condition, description).await
    });
    match refused.await {
        Ok(Ok(())) => tracing::debug!(%peer, condition, "connection refused"),
        Ok(Err(reason)) => tracing::debug!(%peer, %reason, "refused connection ended early"),
        Err(_) => tracing::debug!(%peer, "refused connection timed out"),
    }
}

async fn close_after_open(
    stream: &mut impl ClientStream,
    mut buf: BytesMut,
    condition: &str,
    description: String,
) -> Result<(), String> {
    let epoch = Instant::now();
    let mut engine = Connection::new(
        ConnectionConfig {
            container_id: "busbar".to_owned(),
            ..ConnectionConfig::default()
        },
        0,
    );
    let mut decoder = FrameDecoder::new(64 * 1024);
    let mut error = Some(ErrorCondition::new(condition, description));
    let mut frames = Vec::new();
    let mut out = BytesMut::new();
    loop {
        while let Some(frame) = decoder.decode(&mut buf).map_err(|e| e.to_string())? {
            engine
                .handle(frame, elapsed_ms(epoch))
                .map_err(|e| format!("{e:?}"))?;
        }
        while let Some(event) = engine.poll_event() {
            if matches!(event, Event::Opened { .. }) {
                if let Some(error) = error.take() {
                    engine.close(Some(error));
                }
            }
        }
        engine.poll_output(&mut frames, elapsed_ms(epoch));
        out.clear();
        for frame in frames.drain(..) {
            encode_frame(&frame, &mut out);
        }
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        if engine.is_closed() {
            // Hanging up at once would reset the frames the client sends meanwhile, and
            // with them the close it has yet to read: the client hangs up first.
            while stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? > 0 {
                buf.clear();
            }
            return Ok(());
        }
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("connection closed before the close was exchanged".to_owned());
        }
    }
}
