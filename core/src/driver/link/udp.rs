//! `udp://`: one Ethernet frame per datagram, to and from one connected peer. Batches
//! go through one `recvmmsg`/`sendmmsg`; the helpers here serve `vxlan://` too.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::url::Remote;
use super::{sent_or_dropped, transient};
use crate::driver::sys::{self, MmsgScratch};
use crate::driver::SocketHook;

/// An open `udp://` link.
pub(super) struct UdpLink {
    socket: UdpSocket,
    batch: Batch,
}

impl UdpLink {
    pub(super) async fn open(
        remote: &Remote,
        bind: Option<SocketAddr>,
        hook: Option<SocketHook>,
    ) -> io::Result<UdpLink> {
        let addr = resolve(remote).await?;
        let socket = udp_socket(bind.unwrap_or(unspecified_like(&addr, 0)), hook.as_ref())?;
        socket.connect(addr).await?;
        Ok(UdpLink {
            socket,
            batch: Batch::default(),
        })
    }

    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        loop {
            let n = self.batch.recv(&self.socket, bufs, spans).await?;
            if n > 0 {
                return Ok(n);
            }
        }
    }

    pub(super) async fn send(&mut self, frame: &[u8], dropped: &mut u64) -> io::Result<()> {
        sent_or_dropped(self.socket.send(frame).await.map(drop), dropped)
    }

    pub(super) async fn send_batch(
        &mut self,
        bufs: &[Vec<u8>],
        items: &[(usize, usize)],
        start: usize,
        dropped: &mut u64,
    ) -> io::Result<()> {
        self.batch
            .send(&self.socket, bufs, items, start, None, dropped)
            .await
    }
}

/// The scratch of one datagram socket's batches.
#[derive(Default)]
pub(super) struct Batch {
    /// Source address of each datagram of the last batch received.
    pub(super) from: Vec<Option<IpAddr>>,
    mmsg: MmsgScratch,
}

impl Batch {
    /// Waits for datagrams and receives a batch, datagram `i` into
    /// `bufs[i][..spans[i].1]`, its source into `self.from[i]`. Returns 0 when the
    /// socket was readable but had nothing for us after all (an ICMP error).
    pub(super) async fn recv(
        &mut self,
        socket: &UdpSocket,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        socket.readable().await?;
        match socket.try_io(Interest::READABLE, || {
            sys::recv_batch_from(
                socket.as_raw_fd(),
                bufs,
                spans,
                &mut self.from,
                &mut self.mmsg,
            )
        }) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            // ICMP port unreachable from a peer not yet listening.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Sends `bufs[i][start..end]` for each `(i, end)` with `sendmmsg`, to `dest` or the
    /// connected peer; a datagram lost to a transient error is counted in `dropped`.
    pub(super) async fn send(
        &mut self,
        socket: &UdpSocket,
        bufs: &[Vec<u8>],
        items: &[(usize, usize)],
        start: usize,
        dest: Option<SocketAddr>,
        dropped: &mut u64,
    ) -> io::Result<()> {
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            match socket
                .async_io(Interest::WRITABLE, || {
                    sys::send_batch_to(socket.as_raw_fd(), bufs, rest, start, dest, &mut self.mmsg)
                })
                .await
            {
                Ok(sent) => done += sent.max(1),
                Err(e) if transient(&e) => {
                    // The first datagram of the rest is dropped; go on with the others.
                    *dropped += 1;
                    done += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The first address `remote` resolves to.
pub(super) async fn resolve(remote: &Remote) -> io::Result<SocketAddr> {
    let name = match remote {
        Remote::Addr(addr) => return Ok(*addr),
        Remote::Name { host, port } => (host.as_str(), *port),
    };
    tokio::net::lookup_host(name)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{remote}: no address")))
}

/// The unspecified address of `addr`'s family, with `port`.
pub(super) fn unspecified_like(addr: &SocketAddr, port: u16) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    }
}

/// A non-blocking UDP socket bound to `bind`, shown to `hook` first, with large buffers.
pub(super) fn udp_socket(bind: SocketAddr, hook: Option<&SocketHook>) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(bind)?;
    if let Some(hook) = hook {
        hook(socket.as_raw_fd())?;
    }
    socket.set_nonblocking(true)?;
    sys::grow_buffers(socket.as_raw_fd());
    UdpSocket::from_std(socket)
}
