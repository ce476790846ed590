//! What a connection speaks, from its first bytes: the AMQP protocol header (`AMQP`, plain
//! or SASL), a TLS record (a ClientHello starts with the handshake content type, 0x16), or
//! else HTTP/1.1 (whose parser answers anything that isn't HTTP with 400).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _};

const AMQP: &[u8] = b"AMQP";
/// TLS record content type `handshake`, the first byte of every ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Amqp,
    Tls,
    Http,
}

/// The protocol `bytes` begin, or `None` while they are too few to tell.
pub fn recognise(bytes: &[u8]) -> Option<Protocol> {
    let first = *bytes.first()?;
    if first == TLS_HANDSHAKE {
        return Some(Protocol::Tls);
    }
    let compared = bytes.len().min(AMQP.len());
    if bytes[..compared] != AMQP[..compared] {
        return Some(Protocol::Http);
    }
    (compared == AMQP.len()).then_some(Protocol::Amqp)
}

/// Reads into `buf` until its bytes say what protocol they are; the bytes stay in `buf`.
pub async fn read_protocol(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> std::io::Result<Protocol> {
    loop {
        if let Some(protocol) = recognise(buf) {
            return Ok(protocol);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before saying what protocol it speaks",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_protocol() {
        assert_eq!(recognise(b""), None);
        assert_eq!(recognise(b"A"), None);
        assert_eq!(recognise(b"AMQ"), None);
        assert_eq!(recognise(b"AMQP\x03\x01\x00\x00"), Some(Protocol::Amqp));
        assert_eq!(recognise(b"AMQP"), Some(Protocol::Amqp));
        assert_eq!(recognise(&[0x16, 0x03, 0x01]), Some(Protocol::Tls));
        assert_eq!(recognise(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http));
        assert_eq!(recognise(b"AB"), Some(Protocol::Http));
        assert_eq!(recognise(b"\x00\x00"), Some(Protocol::Http));
    }
}
