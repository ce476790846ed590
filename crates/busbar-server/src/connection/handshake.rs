//! The protocol headers and SASL, before the AMQP engine takes over.

use busbar_amqp::engine::sasl::{self, SaslIdentity};
use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, ProtocolHeader, encode_frame};
use busbar_amqp::performative::SaslCode;
use busbar_servicebus::sas::{self, Claims, Policy};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ClientStream;

/// Reads until `buf` holds at least `n` bytes.
async fn fill(stream: &mut impl ClientStream, buf: &mut BytesMut, n: usize) -> Result<(), String> {
    while buf.len() < n {
        let read = stream.read_buf(buf).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("connection closed during handshake".to_owned());
        }
    }
    Ok(())
}

/// Writes `bytes` and flushes them: a stream that frames what it sends (a WebSocket
/// message per flush) or encrypts it sends nothing until flushed.
async fn send(stream: &mut impl ClientStream, bytes: &[u8]) -> Result<(), String> {
    stream.write_all(bytes).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())
}

async fn read_header(
    stream: &mut impl ClientStream,
    buf: &mut BytesMut,
) -> Result<ProtocolHeader, String> {
    fill(stream, buf, ProtocolHeader::LEN).await?;
    let head = buf.split_to(ProtocolHeader::LEN);
    let mut bytes = [0u8; ProtocolHeader::LEN];
    bytes.copy_from_slice(&head);
    match ProtocolHeader::parse(&bytes) {
        Some(header) => Ok(header),
        None => {
            // Answer with the header we speak, then hang up (AMQP 1.0 §2.2).
            let _ = send(stream, &ProtocolHeader::Sasl.bytes()).await;
            Err("unsupported protocol header".to_owned())
        }
    }
}

/// The protocol headers and, when the client starts with it, SASL. ANONYMOUS connections
/// get their rights from `$cbs` tokens; PLAIN must name a policy and its key (refused
/// otherwise), and gets that policy's rights on the whole namespace.
pub(super) async fn handshake(
    stream: &mut impl ClientStream,
    buf: &mut BytesMut,
    policies: &[Policy],
) -> Result<Option<Claims>, String> {
    let mut claims = None;
    let header = read_header(stream, buf).await?;
    if header == ProtocolHeader::Sasl {
        let mut out = BytesMut::new();
        out.extend_from_slice(&ProtocolHeader::Sasl.bytes());
        encode_frame(&Frame::sasl(sasl::mechanisms(true)), &mut out);
        send(stream, &out).await?;
        let mut decoder = FrameDecoder::new(64 * 1024);
        let init = loop {
            match decoder.decode(buf).map_err(|e| e.to_string())? {
                Some(Frame {
                    body: FrameBody::Sasl(frame),
                    ..
                }) => break frame,
                Some(_) => return Err("expected sasl-init".to_owned()),
                None => {
                    let read = stream.read_buf(buf).await.map_err(|e| e.to_string())?;
                    if read == 0 {
                        return Err("connection closed during SASL".to_owned());
                    }
                }
            }
        };
        let outcome = match sasl::accept_init(&init, true) {
            Ok(SaslIdentity::Anonymous { .. }) => Ok(()),
            Ok(SaslIdentity::Plain {
                username, password, ..
            }) => match sas::validate_plain(&username, &password, policies) {
                Ok(granted) => {
                    claims = Some(granted);
                    Ok(())
                }
                Err(error) => Err(format!("SASL PLAIN refused: {error}")),
            },
            Err(error) => Err(format!("SASL refused: {error}")),
        };
        let code = if outcome.is_ok() {
            SaslCode::Ok
        } else {
            SaslCode::Auth
        };
        out.clear();
        encode_frame(&Frame::sasl(sasl::outcome(code)), &mut out);
        send(stream, &out).await?;
        outcome?;
        let header = read_header(stream, buf).await?;
        if header != ProtocolHeader::Amqp {
            return Err("expected the AMQP header after SASL".to_owned());
        }
    }
    send(stream, &ProtocolHeader::Amqp.bytes()).await?;
    Ok(claims)
}
