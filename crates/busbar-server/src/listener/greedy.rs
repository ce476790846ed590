//! A reader that hands over everything already decrypted or buffered, not one TLS record:
//! a TLS stream's read returns at most one record (16 KiB), where a socket's returns all
//! that arrived; a connection that takes one record per round runs four times as many
//! rounds (each with its engine pass, write and commit) for the same bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Stops filling a read once less than this is left of the caller's buffer.
const MIN_ROOM: usize = 1024;

pub struct Greedy<S>(S);

impl<S> Greedy<S> {
    pub fn new(inner: S) -> Self {
        Greedy(inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Greedy<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let start = buf.filled().len();
        loop {
            let before = buf.filled().len();
            match Pin::new(&mut self.0).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() > before => {
                    if buf.remaining() < MIN_ROOM {
                        return Poll::Ready(Ok(()));
                    }
                }
                // End of stream, or an error: reported now if nothing was read, else by
                // the next read.
                Poll::Ready(result) if buf.filled().len() == start => return Poll::Ready(result),
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                // What was read goes now; the waker stays registered, at worst waking the
                // task once for nothing.
                Poll::Pending if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Greedy<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A reader giving out at most `chunk` bytes per read, as a TLS stream does records.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl AsyncRead for Chunked<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.chunk.min(self.data.len()).min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn one_read_takes_every_chunk_that_is_ready() {
        let data = vec![7u8; 40_000];
        let mut reader = Greedy::new(Chunked {
            data: &data,
            chunk: 16_384,
        });
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        assert_eq!(reader.read_buf(&mut buf).await.unwrap(), 40_000);
        assert_eq!(reader.read_buf(&mut buf).await.unwrap(), 0, "then the end");
    }

    #[tokio::test]
    async fn a_read_stops_at_pending_with_what_it_has() {
        let (mut writer, reader) = tokio::io::duplex(1024);
        let mut reader = Greedy::new(reader);
        writer.write_all(b"first").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf).await.unwrap(), 5);
    }
}
