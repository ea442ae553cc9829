//! `udp://`: one Ethernet frame per datagram, to and from one peer. Batches go through
//! one `recvmmsg`/`sendmmsg`; the socket handling here ([`Datagram`]) serves `vxlan://`
//! too.
//!
//! The socket is not connected: every datagram names the peer, so the source address
//! follows the current route when the network changes under us. A send that finds the
//! route gone (`ENETUNREACH`, `EHOSTUNREACH`, `EADDRNOTAVAIL`) takes the link down and
//! opens a new socket after a backoff; until then frames are dropped and counted.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::url::Remote;
use super::{route_lost, transient, LinkOptions, LinkState, BACKOFF_MAX, BACKOFF_MIN};
use crate::driver::sys::{self, MmsgScratch};

/// An open `udp://` link.
pub(super) struct UdpLink {
    socket: Datagram,
}

impl UdpLink {
    pub(super) async fn open(
        remote: Remote,
        bind: Option<SocketAddr>,
        options: LinkOptions,
    ) -> io::Result<UdpLink> {
        Ok(UdpLink {
            socket: Datagram::open(remote, bind, LocalPort::Ephemeral, options).await?,
        })
    }

    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
        link: &mut LinkState,
    ) -> io::Result<usize> {
        let n = self.socket.recv(bufs, spans, link).await?;
        // Unconnected: datagrams from anyone but the peer are dropped (and counted).
        let peer = self.socket.peer;
        for (span, from) in spans.iter_mut().zip(&self.socket.batch.from).take(n) {
            if *from != Some(peer) {
                *span = (0, 0);
            }
        }
        Ok(n)
    }

    pub(super) async fn send(&mut self, frame: &[u8], link: &mut LinkState) -> io::Result<()> {
        self.socket.send(frame, link).await
    }

    pub(super) async fn send_batch(
        &mut self,
        bufs: &[Vec<u8>],
        items: &[(usize, usize)],
        start: usize,
        link: &mut LinkState,
    ) -> io::Result<()> {
        self.socket.send_batch(bufs, items, start, link).await
    }

    pub(super) fn reopen(&mut self) {
        self.socket.reopen();
    }

    pub(super) fn is_open(&self) -> bool {
        self.socket.is_open()
    }
}

/// The local port of a datagram link bound to no explicit address.
#[derive(Debug, Clone, Copy)]
pub(super) enum LocalPort {
    /// Any free port (`udp://`).
    Ephemeral,
    /// The peer's port (`vxlan://`: the kernel's device sends from 4789 to 4789).
    PeersPort,
}

type OpenFuture = Pin<Box<dyn Future<Output = io::Result<(UdpSocket, SocketAddr)>> + Send>>;

// One per link, never moved on the data path: size does not matter.
#[allow(clippy::large_enum_variant)]
enum SocketState {
    Open(UdpSocket),
    /// Down: opened again once the sleep ends.
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Opening(OpenFuture),
}

/// The unconnected socket of a datagram link, to one peer, opened again (peer name
/// resolved again, socket shown to the hook again) when its route is lost or the
/// network changes.
pub(super) struct Datagram {
    remote: Remote,
    bind: Option<SocketAddr>,
    local_port: LocalPort,
    options: LinkOptions,
    state: SocketState,
    /// The peer's address as last resolved.
    pub(super) peer: SocketAddr,
    /// The scratch of the socket's batches.
    pub(super) batch: Batch,
    backoff: Duration,
}

impl Datagram {
    /// Opens the socket; the first open must succeed.
    pub(super) async fn open(
        remote: Remote,
        bind: Option<SocketAddr>,
        local_port: LocalPort,
        options: LinkOptions,
    ) -> io::Result<Datagram> {
        let (socket, peer) = open_socket(remote.clone(), bind, local_port, options.clone()).await?;
        Ok(Datagram {
            remote,
            bind,
            local_port,
            options,
            state: SocketState::Open(socket),
            peer,
            batch: Batch::default(),
            backoff: BACKOFF_MIN,
        })
    }

    /// Drops the socket and opens a new one now.
    pub(super) fn reopen(&mut self) {
        self.backoff = BACKOFF_MIN;
        // The future does nothing until polled, after the old socket is dropped here:
        // the new one may bind the same port.
        self.state = SocketState::Opening(Box::pin(open_socket(
            self.remote.clone(),
            self.bind,
            self.local_port,
            self.options.clone(),
        )));
    }

    /// True while a socket is open (not waiting for a backoff, not opening).
    pub(super) fn is_open(&self) -> bool {
        matches!(self.state, SocketState::Open(_))
    }

    /// See [`super::Link::recv_batch`]: returns 0 when only the socket's state changed
    /// or a datagram was not for us.
    pub(super) async fn recv(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
        link: &mut LinkState,
    ) -> io::Result<usize> {
        match &mut self.state {
            SocketState::Open(socket) => {
                let n = self.batch.recv(socket, bufs, spans).await?;
                if n > 0 {
                    self.carried(link);
                }
                Ok(n)
            }
            SocketState::Waiting(sleep) => {
                sleep.as_mut().await;
                self.state = SocketState::Opening(Box::pin(open_socket(
                    self.remote.clone(),
                    self.bind,
                    self.local_port,
                    self.options.clone(),
                )));
                Ok(0)
            }
            SocketState::Opening(open) => {
                match open.as_mut().await {
                    Ok((socket, peer)) => {
                        self.state = SocketState::Open(socket);
                        self.peer = peer;
                    }
                    Err(e) => self.down(link, e),
                }
                Ok(0)
            }
        }
    }

    /// Sends one datagram to the peer; see [`Datagram::send_batch`].
    pub(super) async fn send(&mut self, datagram: &[u8], link: &mut LinkState) -> io::Result<()> {
        let SocketState::Open(socket) = &self.state else {
            link.dropped_out += 1;
            return Ok(());
        };
        let result = match self.fault() {
            Some(e) => Err(e),
            None => socket.send_to(datagram, self.peer).await.map(drop),
        };
        match result {
            Ok(()) => self.carried(link),
            Err(e) if route_lost(&e) => {
                link.dropped_out += 1;
                self.down(link, e);
            }
            Err(e) if transient(&e) => link.dropped_out += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Sends `bufs[i][start..end]` for each `(i, end)` to the peer with `sendmmsg`. A
    /// datagram lost to a transient error is dropped and counted; a lost route takes
    /// the link down (the rest of the batch dropped and counted) and opens a new socket
    /// after the backoff. Only other errors are returned.
    pub(super) async fn send_batch(
        &mut self,
        bufs: &[Vec<u8>],
        items: &[(usize, usize)],
        start: usize,
        link: &mut LinkState,
    ) -> io::Result<()> {
        let SocketState::Open(socket) = &self.state else {
            link.dropped_out += items.len() as u64;
            return Ok(());
        };
        let result = match self.fault() {
            Some(e) => Err((0, e)),
            None => {
                let peer = Some(self.peer);
                self.batch
                    .send(socket, bufs, items, start, peer, link)
                    .await
            }
        };
        match result {
            Ok(()) => {
                if !items.is_empty() {
                    self.carried(link);
                }
                Ok(())
            }
            Err((done, e)) if route_lost(&e) => {
                link.dropped_out += (items.len() - done) as u64;
                self.down(link, e);
                Ok(())
            }
            Err((_, e)) => Err(e),
        }
    }

    /// A datagram went through: the link is up.
    fn carried(&mut self, link: &mut LinkState) {
        self.backoff = BACKOFF_MIN;
        link.up();
    }

    /// The route is lost (or the socket could not be opened): report it and open a new
    /// socket after the backoff.
    fn down(&mut self, link: &mut LinkState, e: io::Error) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.state = SocketState::Waiting(Box::pin(tokio::time::sleep(wait)));
        link.down(e, Some(wait));
    }

    /// The error a test injected in the send path, if any.
    #[cfg(test)]
    fn fault(&self) -> Option<io::Error> {
        let errno = self.options.send_fault.as_ref()?;
        match errno.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            e => Some(io::Error::from_raw_os_error(e)),
        }
    }

    #[cfg(not(test))]
    fn fault(&self) -> Option<io::Error> {
        None
    }
}

/// Resolves the peer and opens a socket for it, shown to the hook first.
async fn open_socket(
    remote: Remote,
    bind: Option<SocketAddr>,
    local_port: LocalPort,
    options: LinkOptions,
) -> io::Result<(UdpSocket, SocketAddr)> {
    let peer = options.resolve_first(&remote).await?;
    let port = match local_port {
        LocalPort::Ephemeral => 0,
        LocalPort::PeersPort => peer.port(),
    };
    let bind = bind.unwrap_or(unspecified_like(&peer, port));
    let socket = udp_socket(bind, &options)?;
    Ok((socket, peer))
}

/// The scratch of one datagram socket's batches.
#[derive(Default)]
pub(super) struct Batch {
    /// Source address of each datagram of the last batch received.
    pub(super) from: Vec<Option<SocketAddr>>,
    mmsg: MmsgScratch,
    /// UDP GSO was refused on this socket's route: runs of equal-size datagrams go as
    /// separate messages of the `sendmmsg` from then on.
    no_gso: bool,
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

    /// Sends `bufs[i][start..end]` for each `(i, end)` with `sendmmsg` to `dest`, runs
    /// of equal-size datagrams as one UDP GSO message each until the kernel refuses GSO
    /// on the route (then without, for good); a datagram lost to a transient error is
    /// dropped and counted. An error comes with how many items were done before it.
    async fn send(
        &mut self,
        socket: &UdpSocket,
        bufs: &[Vec<u8>],
        items: &[(usize, usize)],
        start: usize,
        dest: Option<SocketAddr>,
        link: &mut LinkState,
    ) -> Result<(), (usize, io::Error)> {
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            let gso = !self.no_gso;
            match socket
                .async_io(Interest::WRITABLE, || {
                    sys::send_batch_to(
                        socket.as_raw_fd(),
                        bufs,
                        rest,
                        start,
                        dest,
                        gso,
                        &mut self.mmsg,
                    )
                })
                .await
            {
                Ok(sent) => done += sent.max(1),
                Err(e) if gso && gso_refused(&e) => {
                    tracing::info!("UDP GSO refused ({e}); sending datagram by datagram");
                    self.no_gso = true;
                }
                Err(e) if transient(&e) && !route_lost(&e) => {
                    // The first datagram of the rest is dropped; go on with the others.
                    link.dropped_out += 1;
                    done += 1;
                }
                Err(e) => return Err((done, e)),
            }
        }
        Ok(())
    }
}

/// The errors of a UDP GSO send the kernel cannot do on this route: `EIO` (the device
/// does not checksum), `EINVAL` (a datagram beyond the path MTU, or no GSO at all).
fn gso_refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
}

/// The unspecified address of `addr`'s family, with `port`.
pub(super) fn unspecified_like(addr: &SocketAddr, port: u16) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    }
}

/// A non-blocking UDP socket bound to `bind`, shown to the socket hook first, with large
/// buffers.
fn udp_socket(bind: SocketAddr, options: &LinkOptions) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(bind)?;
    options.show(socket.as_raw_fd())?;
    socket.set_nonblocking(true)?;
    sys::grow_buffers(socket.as_raw_fd());
    UdpSocket::from_std(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_state() -> LinkState {
        LinkState {
            url: "udp://test".into(),
            status: Vec::new(),
            dropped_out: 0,
            reconnects: 0,
            is_down: false,
        }
    }

    /// Equal-size frames go as one GSO send; a socket whose sends the kernel refuses to
    /// segment (`SO_NO_CHECK` makes every GSO send `EINVAL`) falls back to one datagram
    /// each and loses nothing.
    #[tokio::test]
    async fn a_refused_gso_send_falls_back_to_datagrams() {
        for refuse in [false, true] {
            let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            rx.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let tx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            if refuse {
                sys::set_int_option(tx.as_raw_fd(), libc::SO_NO_CHECK, 1).expect("SO_NO_CHECK");
            }
            let bufs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 4 + 600]).collect();
            let items: Vec<(usize, usize)> = (0..5).map(|i| (i, 604)).collect();
            let mut batch = Batch::default();
            let mut link = link_state();
            let dest = rx.local_addr().ok();
            batch
                .send(&tx, &bufs, &items, 4, dest, &mut link)
                .await
                .expect("sent");
            assert_eq!(batch.no_gso, refuse);
            assert_eq!(link.dropped_out, 0);
            let mut buf = [0; 2000];
            for i in 0..5u8 {
                let n = rx.recv(&mut buf).expect("datagram");
                assert_eq!(&buf[..n], &[i; 600][..], "datagram {i}");
            }
        }
    }
}
