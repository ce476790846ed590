//! The socket the connection task drives through readiness: the TCP connection itself, or
//! (for AMQP over WebSockets) the local end of a socket pair whose other end a bridge task
//! carries over the WebSocket (see `websocket`).

use std::io;

use bytes::BytesMut;
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

pub(crate) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Bridged(UnixStream),
}

impl Socket {
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(stream) => stream.readable().await,
            #[cfg(unix)]
            Socket::Bridged(stream) => stream.readable().await,
        }
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(stream) => stream.writable().await,
            #[cfg(unix)]
            Socket::Bridged(stream) => stream.writable().await,
        }
    }

    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.try_read_buf(buf),
            #[cfg(unix)]
            Socket::Bridged(stream) => stream.try_read_buf(buf),
        }
    }

    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.try_write(buf),
            #[cfg(unix)]
            Socket::Bridged(stream) => stream.try_write(buf),
        }
    }
}
