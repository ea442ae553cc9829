//! `tcp://`: length-prefixed frames over one TCP connection, reconnected with backoff
//! when it drops.
//!
//! A dead path is noticed within seconds, not the kernel's quarter of an hour: the
//! socket has keepalive probes (idle 5 s, every 2 s, 3 unanswered) and
//! `TCP_USER_TIMEOUT` for unacknowledged data; connecting (the name resolved again
//! each time) is bounded by the connect timeout.
//!
//! The receive side is tokio-util's `LengthDelimitedCodec`. The send side never waits:
//! frames are queued with their prefix and written with non-blocking writes; a peer that
//! stops reading fills the queue, which first pauses the driver's TUN reads
//! ([`TcpLink::congested`]) and then drops frames (counted), never stalling the driver.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::url::Remote;
use super::{LengthPrefix, LinkOptions, LinkState, BACKOFF_MAX, BACKOFF_MIN, MAX_FRAME};
use crate::driver::sys;

/// Bytes queued for a TCP connection beyond which frames are dropped (and counted):
/// a peer that stops reading must never stall the driver.
pub(crate) const TCP_OUT_LIMIT: usize = 256 << 10;
/// Bytes queued for a TCP connection from which the driver stops reading the TUN
/// ([`TcpLink::congested`]), leaving the excess to the TUN's own queue rather than to
/// this buffer (whose every byte is latency).
pub(crate) const TCP_OUT_PAUSE: usize = 64 << 10;

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

// One per link, never moved on the data path: size does not matter.
#[allow(clippy::large_enum_variant)]
enum TcpState {
    Connected {
        read: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
        /// Written only without blocking, from [`TcpOut`].
        write: OwnedWriteHalf,
    },
    Connecting(ConnectFuture),
    Waiting(Pin<Box<tokio::time::Sleep>>),
}

/// An open `tcp://` link.
pub(super) struct TcpLink {
    remote: Remote,
    prefix: LengthPrefix,
    state: TcpState,
    /// Frames not yet written to the connection.
    out: TcpOut,
    backoff: Duration,
    /// `TCP_USER_TIMEOUT` of every connection.
    user_timeout: Duration,
    options: LinkOptions,
}

impl TcpLink {
    /// Connects; the first connection must succeed.
    pub(super) async fn open(
        remote: Remote,
        prefix: LengthPrefix,
        user_timeout: Duration,
        options: LinkOptions,
    ) -> io::Result<TcpLink> {
        let stream = connect(remote.clone(), user_timeout, options.clone()).await?;
        Ok(TcpLink {
            remote,
            prefix,
            state: connected(stream, prefix),
            out: TcpOut::default(),
            backoff: BACKOFF_MIN,
            user_timeout,
            options,
        })
    }

    fn connecting(&self) -> TcpState {
        TcpState::Connecting(Box::pin(connect(
            self.remote.clone(),
            self.user_timeout,
            self.options.clone(),
        )))
    }

    /// Drops the connection (and what was queued for it) and connects again now.
    pub(super) fn reconnect(&mut self) {
        self.state = self.connecting();
        self.out.clear();
        self.backoff = BACKOFF_MIN;
    }

    /// True while connected.
    pub(super) fn is_open(&self) -> bool {
        matches!(self.state, TcpState::Connected { .. })
    }

    /// See [`super::Link::recv_batch`]: returns 0 after a state change or a write.
    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
        link: &mut LinkState,
    ) -> usize {
        match &mut self.state {
            TcpState::Waiting(sleep) => {
                sleep.as_mut().await;
                self.state = self.connecting();
                0
            }
            TcpState::Connecting(fut) => {
                match fut.as_mut().await {
                    Ok(stream) => {
                        self.state = connected(stream, self.prefix);
                        self.out.clear();
                        self.backoff = BACKOFF_MIN;
                        link.reconnects += 1;
                        link.up();
                    }
                    Err(e) => self.down(link, e),
                }
                0
            }
            TcpState::Connected { read, write } => {
                let first = if self.out.is_empty() {
                    read.next().await
                } else {
                    tokio::select! {
                        item = read.next() => item,
                        ready = write.writable() => {
                            if let Err(e) = ready.and_then(|()| self.out.write_to(write)) {
                                self.down(link, e);
                            }
                            return 0;
                        }
                    }
                };
                let mut n = 0;
                let mut next = Some(first);
                let mut failure = None;
                while let Some(item) = next.take() {
                    match item {
                        Some(Ok(frame)) => {
                            // The codec's limit is not the buffers' size: never index by
                            // a length the peer chose. A frame that does not fit is an
                            // empty span, dropped and counted.
                            spans[n] = match bufs[n].get_mut(..frame.len()) {
                                Some(buf) => {
                                    buf.copy_from_slice(&frame);
                                    (0, frame.len())
                                }
                                None => (0, 0),
                            };
                            n += 1;
                            if n < bufs.len() {
                                next = read.next().now_or_never();
                            }
                        }
                        Some(Err(e)) => failure = Some(e),
                        None => {
                            failure = Some(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "connection closed by peer",
                            ))
                        }
                    }
                }
                if let Some(e) = failure {
                    self.down(link, e);
                }
                n
            }
        }
    }

    /// The connection failed (or could not be made): drop it and what was queued for it
    /// (a partial frame must not reach the next connection), report it and retry after
    /// the backoff.
    fn down(&mut self, link: &mut LinkState, e: io::Error) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.state = TcpState::Waiting(Box::pin(tokio::time::sleep(wait)));
        self.out.clear();
        link.down(e, Some(wait));
    }

    /// Queues a frame; down, or a peer not reading fast enough, drops it as Ethernet
    /// would.
    pub(super) fn send(&mut self, frame: &[u8], dropped: &mut u64) {
        let connected = matches!(self.state, TcpState::Connected { .. });
        if !connected || !self.out.push(self.prefix, frame) {
            *dropped += 1;
        }
    }

    /// Writes what is queued as far as the socket takes it now.
    pub(super) fn flush(&mut self, link: &mut LinkState) {
        if let TcpState::Connected { write, .. } = &self.state {
            if let Err(e) = self.out.write_to(write) {
                self.down(link, e);
            }
        }
    }

    /// Bytes queued, not yet written.
    pub(super) fn queued(&self) -> usize {
        self.out.len()
    }

    pub(super) fn congested(&self) -> bool {
        self.out.len() >= TCP_OUT_PAUSE
    }

    /// Waits until what is queued is written, or the connection fails.
    pub(super) async fn drain(&mut self) {
        if let TcpState::Connected { write, .. } = &self.state {
            while !self.out.is_empty() {
                if write.writable().await.is_err() || self.out.write_to(write).is_err() {
                    return;
                }
            }
        }
    }
}

fn codec(len: LengthPrefix) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(match len {
            LengthPrefix::U16 => 2,
            LengthPrefix::U32 => 4,
        })
        .max_frame_length(MAX_FRAME)
        .big_endian()
        .new_codec()
}

fn connected(stream: TcpStream, prefix: LengthPrefix) -> TcpState {
    let (r, w) = stream.into_split();
    TcpState::Connected {
        read: FramedRead::new(r, codec(prefix)),
        write: w,
    }
}

/// Resolves `remote` and connects to its addresses in turn, each socket shown to the
/// hook first; all within the connect timeout.
async fn connect(
    remote: Remote,
    user_timeout: Duration,
    options: LinkOptions,
) -> io::Result<TcpStream> {
    let attempt = async {
        let mut last = None;
        for addr in options.resolve(&remote).await? {
            match connect_to(addr, user_timeout, &options).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::NotFound.into()))
    };
    match tokio::time::timeout(options.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{remote}: connect timed out"),
        )),
    }
}

async fn connect_to(
    addr: std::net::SocketAddr,
    user_timeout: Duration,
    options: &LinkOptions,
) -> io::Result<TcpStream> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    sys::set_tcp_liveness(socket.as_raw_fd(), user_timeout)?;
    options.show(socket.as_raw_fd())?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Length-prefixed frames queued for a TCP connection, written without ever waiting:
/// `buf[head..]` is still to be written.
#[derive(Debug, Default)]
struct TcpOut {
    buf: Vec<u8>,
    head: usize,
}

impl TcpOut {
    /// Bytes not yet written.
    fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }

    /// Queues `frame` with its length prefix; false (nothing queued) when it would take
    /// the queue past [`TCP_OUT_LIMIT`] or does not fit the prefix.
    fn push(&mut self, prefix: LengthPrefix, frame: &[u8]) -> bool {
        let Ok(len) = u32::try_from(frame.len()) else {
            return false;
        };
        let header: &[u8] = match prefix {
            LengthPrefix::U16 => match u16::try_from(len) {
                Ok(n) => &n.to_be_bytes()[..],
                Err(_) => return false,
            },
            LengthPrefix::U32 => &len.to_be_bytes()[..],
        };
        if frame.len() > MAX_FRAME || self.len() + header.len() + frame.len() > TCP_OUT_LIMIT {
            return false;
        }
        // Written bytes are reclaimed once they outweigh the rest: amortised O(1).
        if self.head > 0 && self.head >= self.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(header);
        self.buf.extend_from_slice(frame);
        true
    }

    /// Writes as much as the socket takes now. An error means the connection failed.
    fn write_to(&mut self, write: &OwnedWriteHalf) -> io::Result<()> {
        while !self.is_empty() {
            match write.try_write(&self.buf[self.head..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.head += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.is_empty() {
            self.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
