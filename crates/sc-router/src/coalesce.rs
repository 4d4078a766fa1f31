//! Fewer, larger socket writes under an HTTP/2 connection.
//!
//! h2 writes every frame it has queued with its own system call and asks for a flush after
//! each: a request's HEADERS and its DATA leave in two writes, so the backend reads (and wakes)
//! twice per call.
//!
//! [`Coalesce`] sits between h2 and the socket. Small writes (frame headers, HEADERS, window
//! updates, small messages) are copied into a buffer; a flush that follows new writes is put off
//! once: it reports success, wakes the task and leaves the bytes buffered, so frames produced in
//! the same turn of the connection task leave together. The next flush with nothing written
//! since (h2 flushes at the end of every poll of its connection, and the wake-up guarantees that
//! poll) sends them. A large write is not copied: it leaves at once, behind the buffered bytes,
//! in one vectored write. The buffer is also sent when it holds [`LIMIT`] bytes, and before
//! shutting down. Reads pass straight through.
//!
//! A unary call's request to a backend (HEADERS, then a DATA frame in a later turn) and its
//! response to the client (HEADERS, DATA, trailers) thus each leave in one write.
//!
//! The contract this relies on: the owner of the stream calls `poll_flush` again each time its
//! task is polled, as an h2 connection does. It does not hold for a TLS handshake or other
//! one-shot writers, so wrap the stream h2 is given, not the socket under a handshake.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes smaller than this are copied and held back; larger ones leave at once, with the
/// bytes held back before them, in one vectored write (copying them costs more than the
/// system calls it would save).
pub const SMALL: usize = 8 * 1024;

/// Bytes held back before they go out without waiting for a flush.
pub const LIMIT: usize = 64 * 1024;

/// A buffer this big or smaller is kept between batches; a bigger one is given back.
const KEEP: usize = 16 * 1024;

/// An I/O stream whose writes are gathered into fewer system calls (see the module docs).
#[derive(Debug)]
pub struct Coalesce<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` is already written.
    sent: usize,
    /// Something was written since the last `poll_flush`.
    fresh: bool,
}

impl<T> Coalesce<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Coalesce {
            inner,
            buf: Vec::new(),
            sent: 0,
            fresh: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.clear();
        Poll::Ready(Ok(()))
    }

    /// Writes the buffered bytes and then `bufs` in one vectored write where the stream takes
    /// them all; answers how much of `bufs` was written (never 0 for a non-empty `bufs`).
    fn poll_write_through(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        const MAX: usize = 8;
        loop {
            let ours = self.pending();
            if ours == 0 {
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            }
            let mut slices = [IoSlice::new(&[]); MAX];
            slices[0] = IoSlice::new(&self.buf[self.sent..]);
            let theirs = bufs.len().min(MAX - 1);
            slices[1..=theirs].copy_from_slice(&bufs[..theirs]);
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices[..=theirs]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n > ours {
                self.clear();
                return Poll::Ready(Ok(n - ours));
            }
            self.sent += n;
        }
    }

    fn clear(&mut self) {
        self.sent = 0;
        self.buf.clear();
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if total >= SMALL {
            // A large frame is not copied: it leaves now, with whatever is buffered before it.
            return this.poll_write_through(cx, bufs);
        }
        if this.pending() + total > LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        this.fresh = true;
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.fresh) && this.pending() > 0 {
            // Put off once: whatever else this turn of the task writes joins these bytes.
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Coalesce<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Counts the writes that reach the stream below (a vectored write takes every slice).
    #[derive(Default)]
    struct Counting {
        writes: usize,
        bytes: Vec<u8>,
        /// Takes at most this much per write (a socket with a full send buffer).
        cap: Option<usize>,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            let mut room = self.cap.unwrap_or(usize::MAX);
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(room);
                self.bytes.extend_from_slice(&b[..take]);
                n += take;
                room -= take;
            }
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_flush_after_writes_is_put_off_once_then_sends_all_in_one_write() {
        let mut io = Coalesce::new(Counting::default());
        io.write_all(b"headers").await.unwrap();
        io.flush().await.unwrap();
        io.write_all(b"data").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(io.get_ref().writes, 0, "both flushes followed new writes");
        io.flush().await.unwrap();
        assert_eq!(io.get_ref().writes, 1);
        assert_eq!(io.get_ref().bytes, b"headersdata");
        io.flush().await.unwrap();
        assert_eq!(io.get_ref().writes, 1, "nothing left to send");
    }

    #[tokio::test]
    async fn a_large_write_leaves_at_once_behind_the_held_bytes_without_a_copy() {
        let mut io = Coalesce::new(Counting::default());
        io.write_all(b"head").await.unwrap();
        io.flush().await.unwrap();
        let payload = vec![7u8; SMALL];
        let n = io
            .write_vectored(&[IoSlice::new(b"frame"), IoSlice::new(&payload)])
            .await
            .unwrap();
        assert_eq!(n, 5 + SMALL);
        assert_eq!(
            io.get_ref().writes,
            1,
            "held bytes and the frame in one write"
        );
        assert_eq!(io.get_ref().bytes.len(), 4 + 5 + SMALL);
        assert!(io.get_ref().bytes.starts_with(b"headframe"));
    }

    #[tokio::test]
    async fn a_full_buffer_goes_out_without_a_flush_and_shutdown_sends_the_rest() {
        let mut io = Coalesce::new(Counting::default());
        let small = vec![3u8; SMALL - 1];
        let count = LIMIT / small.len() + 1;
        for _ in 0..count {
            io.write_all(&small).await.unwrap();
            io.flush().await.unwrap();
        }
        assert_eq!(io.get_ref().writes, 1, "one write once the buffer filled");
        io.shutdown().await.unwrap();
        assert_eq!(io.get_ref().writes, 2);
        assert_eq!(io.get_ref().bytes.len(), count * small.len());
    }

    #[tokio::test]
    async fn partial_writes_keep_every_byte_in_order() {
        for cap in [1, 3, 4096, SMALL + 1] {
            let mut io = Coalesce::new(Counting {
                cap: Some(cap),
                ..Counting::default()
            });
            let mut expected = Vec::new();
            for i in 0..60usize {
                let chunk = vec![i as u8; if i % 4 == 0 { SMALL * 2 + i } else { i * 13 }];
                let head = [i as u8, 0xFE];
                let mut slices = [IoSlice::new(&head), IoSlice::new(&chunk)];
                let mut rest: &mut [IoSlice<'_>] = &mut slices;
                while !rest.is_empty() {
                    let n = io.write_vectored(rest).await.unwrap();
                    assert!(n > 0);
                    IoSlice::advance_slices(&mut rest, n);
                }
                expected.extend_from_slice(&head);
                expected.extend_from_slice(&chunk);
                io.flush().await.unwrap();
            }
            io.shutdown().await.unwrap();
            assert_eq!(io.get_ref().bytes, expected, "cap {cap}");
        }
    }

    #[tokio::test]
    async fn bytes_arrive_in_order_over_a_real_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut io = Coalesce::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut expected = Vec::new();
        for i in 0..2000u32 {
            let chunk = vec![(i % 251) as u8; (i as usize * 37) % 40_000 + 1];
            io.write_all(&chunk).await.unwrap();
            if i % 3 == 0 {
                io.flush().await.unwrap();
            }
            expected.extend_from_slice(&chunk);
        }
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), expected);
    }
}
