//! Links: where the emulated host's Ethernet frames go, one frame per unit on the wire.
//!
//! | URL | wire format |
//! |---|---|
//! | `udp://HOST:PORT[?bind=ADDR:PORT]` | one frame per datagram, no header |
//! | `tcp://HOST:PORT[?len=2\|4][&user_timeout_ms=N]` | big-endian length prefix (2 bytes by default) then the frame |
//! | `vxlan://HOST[:PORT]?vni=N[&bind=ADDR:PORT]` | RFC 7348: 8-byte header in UDP, bound to PORT (4789) |
//! | `tap://NAME` | a local kernel TAP device (Linux only) |
//! | `fd://N` | one frame per datagram on a socket the embedder hands over ([`fd`](LinkSpec::fd)) |
//! | [`channel`] | frames handed to and taken from the embedding application |
//! | [`batch_channel`] | the same, many frames per message each way |
//!
//! One transport per file; `Link` dispatches to them and keeps what they share: the
//! URL, the status changes to report and the counters. Host names are resolved again
//! on every (re)open, through [`super::DriverConfig::resolver`]; every socket is shown
//! to the socket hook before use, again on every reopen. A link reports
//! [`LinkStatus::Down`] once when it fails and [`LinkStatus::Up`] once when it carries
//! frames again.

mod batch;
mod channel;
pub(crate) mod faults;
mod fd;
mod frames;
mod tcp;
mod udp;
mod url;
mod vxlan;

#[cfg(target_os = "linux")]
mod tap;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use self::batch::{
    batch_channel, BatchClosed, BatchLink, BatchPeer, BatchSender, FrameBatch, BATCH_PREFIX,
};
pub use self::channel::{channel, ChannelLink, ChannelPeer};
pub use self::faults::{FaultCounters, FaultDirection, FaultStats, LinkFaults, ParseFaultsError};
pub use self::fd::FdSpec;
#[cfg(test)]
pub(crate) use self::tcp::{TCP_OUT_LIMIT, TCP_OUT_PAUSE};
pub use self::url::{ParseLinkError, Remote};
pub use self::vxlan::{vxlan_decap, vxlan_header, VXLAN_PORT};
use super::{DriverConfig, DriverError, Resolver, SocketHook};

/// Largest frame a link accepts: a 64 KiB IP packet plus its Ethernet header.
pub const MAX_FRAME: usize = 65535 + 14;
/// Bytes a link may write in front of a frame (the VXLAN header is the largest).
pub const LINK_HEADROOM: usize = vxlan::HEADER_LEN;

/// First wait before a failed link is opened again; doubled on each failure.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between attempts to open a failed link.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Length prefix of the `tcp://` link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthPrefix {
    /// 2 bytes, big-endian: simpletun-style tunnels (`?len=2`, the default).
    U16,
    /// 4 bytes, big-endian: QEMU `-netdev stream`/`socket` (`?len=4`).
    U32,
}

/// Which link to open: parsed from a URL (see the [module documentation](self)), whose
/// `Display` gives the URL back, or made by [`channel`].
pub enum LinkSpec {
    /// `udp://HOST:PORT`: one frame per datagram.
    Udp {
        /// The peer, resolved when the link opens.
        remote: Remote,
        /// Local address to bind; an ephemeral port when `None`.
        bind: Option<std::net::SocketAddr>,
    },
    /// `tcp://HOST:PORT`: length-prefixed frames over one TCP connection, reconnected
    /// with backoff when it drops.
    Tcp {
        /// The peer.
        remote: Remote,
        /// Length prefix size.
        len: LengthPrefix,
        /// `TCP_USER_TIMEOUT` (`?user_timeout_ms=N`); the driver's
        /// [`super::DriverConfig::tcp_user_timeout`] when `None`.
        user_timeout: Option<Duration>,
    },
    /// `vxlan://HOST:PORT?vni=N`: RFC 7348, as the Linux kernel's `vxlan` device.
    Vxlan {
        /// The peer VTEP; frames are accepted from its IP only.
        remote: Remote,
        /// The VXLAN network identifier (24 bits).
        vni: u32,
        /// Local address to bind; the remote's port on every address when `None`.
        bind: Option<std::net::SocketAddr>,
    },
    /// `tap://NAME`: a local kernel TAP device. Parsed everywhere, opened on Linux only.
    Tap {
        /// Interface name, created if missing.
        name: String,
    },
    /// `fd://N`: one frame per datagram on a socket the embedder hands over (or per
    /// `read`/`write` on a TAP fd); the link owns it from when it opens. See
    /// [`LinkSpec::fd`].
    Fd(FdSpec),
    /// Frames exchanged with the application through channels (see [`channel`]).
    Channel(ChannelLink),
    /// Batches of frames exchanged with the application (see [`batch_channel`]).
    Batch(BatchLink),
}

/// Two URL links are equal when they name the same peer the same way; a channel link
/// is equal to no link, itself included (each is its own pair of channels).
impl PartialEq for LinkSpec {
    fn eq(&self, other: &Self) -> bool {
        use LinkSpec::*;
        match (self, other) {
            (
                Udp {
                    remote: r1,
                    bind: b1,
                },
                Udp {
                    remote: r2,
                    bind: b2,
                },
            ) => r1 == r2 && b1 == b2,
            (
                Tcp {
                    remote: r1,
                    len: l1,
                    user_timeout: u1,
                },
                Tcp {
                    remote: r2,
                    len: l2,
                    user_timeout: u2,
                },
            ) => r1 == r2 && l1 == l2 && u1 == u2,
            (
                Vxlan {
                    remote: r1,
                    vni: v1,
                    bind: b1,
                },
                Vxlan {
                    remote: r2,
                    vni: v2,
                    bind: b2,
                },
            ) => r1 == r2 && v1 == v2 && b1 == b2,
            (Tap { name: n1 }, Tap { name: n2 }) => n1 == n2,
            (Fd(f1), Fd(f2)) => f1.number() == f2.number(),
            _ => false,
        }
    }
}

/// Something that happened to a link, reported as a driver event, each once per
/// change: the same for every link.
#[derive(Debug, Clone)]
pub enum LinkStatus {
    /// The link carries frames again after [`LinkStatus::Down`]: a TCP link
    /// reconnected, a datagram link sent or received on a reopened socket.
    Up,
    /// The link failed: a TCP connection dropped or timed out, or a datagram link lost
    /// its route (`ENETUNREACH`, `EHOSTUNREACH`, `EADDRNOTAVAIL`). It is opened again
    /// after `retry_in`; frames meanwhile are dropped and counted.
    Down {
        /// Why: a [`DriverError::Link`] naming the URL.
        error: DriverError,
        /// When the next attempt is made, if any.
        retry_in: Option<Duration>,
    },
}

/// What every transport shares: the URL, pending status changes, counters.
#[derive(Debug)]
pub(crate) struct LinkState {
    url: String,
    status: Vec<LinkStatus>,
    /// Frames dropped because the link could not take them (down, full).
    dropped_out: u64,
    /// Times a connection-oriented link reconnected.
    reconnects: u64,
    /// Down was reported and Up not yet.
    is_down: bool,
}

impl LinkState {
    /// The link failed with `e`; reported with the URL unless it was down already.
    fn down(&mut self, e: io::Error, retry_in: Option<Duration>) {
        if self.is_down {
            tracing::debug!("link {}: still down: {e}", self.url);
            return;
        }
        self.is_down = true;
        self.status.push(LinkStatus::Down {
            error: DriverError::Link {
                url: self.url.clone(),
                source: Arc::new(e),
            },
            retry_in,
        });
    }

    /// The link carries frames; reported if it was down.
    fn up(&mut self) {
        if std::mem::take(&mut self.is_down) {
            self.status.push(LinkStatus::Up);
        }
    }
}

/// How links open their sockets: taken from the [`DriverConfig`], cloned into every
/// (re)open.
#[derive(Clone)]
pub(crate) struct LinkOptions {
    /// See [`SocketHook`].
    pub(crate) hook: Option<SocketHook>,
    /// See [`Resolver`]; the system resolver when `None`.
    pub(crate) resolver: Option<Resolver>,
    /// Longest a name resolution, or a TCP connect, may take.
    pub(crate) connect_timeout: Duration,
    /// `TCP_USER_TIMEOUT` of TCP links whose URL does not set it.
    pub(crate) tcp_user_timeout: Duration,
    /// Datagram sends fail with this errno instead of sending while it is not 0.
    #[cfg(test)]
    pub(crate) send_fault: Option<Arc<std::sync::atomic::AtomicI32>>,
}

impl LinkOptions {
    pub(crate) fn new(config: &DriverConfig) -> LinkOptions {
        LinkOptions {
            hook: config.socket_hook.clone(),
            resolver: config.resolver.clone(),
            connect_timeout: config.connect_timeout,
            tcp_user_timeout: config.tcp_user_timeout,
            #[cfg(test)]
            send_fault: config.send_fault.clone(),
        }
    }

    /// Shows a new socket to the hook.
    fn show(&self, fd: std::os::fd::RawFd) -> io::Result<()> {
        match &self.hook {
            Some(hook) => hook(fd),
            None => Ok(()),
        }
    }

    /// The addresses of `remote`, resolved now (off the driver's loop, within the
    /// connect timeout) if it is a name.
    async fn resolve(&self, remote: &Remote) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = match remote {
            Remote::Addr(addr) => return Ok(vec![*addr]),
            Remote::Name { host, port } => (host.clone(), *port),
        };
        let resolver = self.resolver.clone();
        let lookup = tokio::task::spawn_blocking(move || match resolver {
            Some(resolve) => resolve(&host, port),
            None => std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                .map(Iterator::collect),
        });
        let addrs = match tokio::time::timeout(self.connect_timeout, lookup).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => return Err(io::Error::other(join)),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{remote}: resolution timed out"),
                ))
            }
        };
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{remote}: no address"),
            ));
        }
        Ok(addrs)
    }

    /// The first address of `remote`, resolved now.
    async fn resolve_first(&self, remote: &Remote) -> io::Result<SocketAddr> {
        let addrs = self.resolve(remote).await?;
        addrs
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{remote}: no address")))
    }
}

// One per link, never moved on the data path: size does not matter.
#[allow(clippy::large_enum_variant)]
enum Io {
    Udp(udp::UdpLink),
    Vxlan(vxlan::VxlanLink),
    Tcp(tcp::TcpLink),
    #[cfg(target_os = "linux")]
    Tap(tap::TapLink),
    Fd(fd::FdLink),
    Channel(ChannelLink),
    Batch(BatchLink),
}

/// An open link.
pub(crate) struct Link {
    io: Io,
    state: LinkState,
}

impl Link {
    /// Opens the link; the first TCP connection must succeed. The error names the URL.
    pub(crate) async fn open(spec: LinkSpec, options: LinkOptions) -> Result<Link, DriverError> {
        let url = spec.to_string();
        let io = Self::open_io(spec, options)
            .await
            .map_err(|source| DriverError::LinkOpen {
                url: url.clone(),
                source: Arc::new(source),
            })?;
        Ok(Link {
            io,
            state: LinkState {
                url,
                status: Vec::new(),
                dropped_out: 0,
                reconnects: 0,
                is_down: false,
            },
        })
    }

    async fn open_io(spec: LinkSpec, options: LinkOptions) -> io::Result<Io> {
        Ok(match spec {
            LinkSpec::Udp { remote, bind } => {
                Io::Udp(udp::UdpLink::open(remote, bind, options).await?)
            }
            LinkSpec::Vxlan { remote, vni, bind } => {
                Io::Vxlan(vxlan::VxlanLink::open(remote, vni, bind, options).await?)
            }
            LinkSpec::Tcp {
                remote,
                len,
                user_timeout,
            } => {
                let user_timeout = user_timeout.unwrap_or(options.tcp_user_timeout);
                Io::Tcp(tcp::TcpLink::open(remote, len, user_timeout, options).await?)
            }
            #[cfg(target_os = "linux")]
            LinkSpec::Tap { name } => Io::Tap(tap::TapLink::open(&name)?),
            #[cfg(not(target_os = "linux"))]
            LinkSpec::Tap { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "tap:// links exist on Linux only",
                ))
            }
            LinkSpec::Fd(spec) => Io::Fd(fd::FdLink::open(spec)?),
            LinkSpec::Channel(c) => Io::Channel(c),
            LinkSpec::Batch(b) => Io::Batch(b),
        })
    }

    /// The URL the link was opened from.
    pub(crate) fn url(&self) -> &str {
        &self.state.url
    }

    /// Frames dropped because the link could not take them (down, full).
    pub(crate) fn dropped_out(&self) -> u64 {
        self.state.dropped_out
    }

    /// Times a connection-oriented link reconnected.
    pub(crate) fn reconnects(&self) -> u64 {
        self.state.reconnects
    }

    /// Status changes since the last call.
    pub(crate) fn take_status(&mut self) -> Vec<LinkStatus> {
        std::mem::take(&mut self.state.status)
    }

    /// A fatal error of the link, naming its URL.
    pub(crate) fn error(&self, e: io::Error) -> DriverError {
        DriverError::Link {
            url: self.state.url.clone(),
            source: Arc::new(e),
        }
    }

    /// Waits for frames and reads up to `bufs.len()` of them, frame `i` being
    /// `bufs[i][spans[i].0..spans[i].1]` (an empty span is a frame to drop: empty, too
    /// large, or a datagram not for us). Returns 0 when only the link's state changed
    /// (see [`Link::take_status`]) or it wrote out queued bytes: a TCP link with bytes
    /// queued also waits for its socket to take more. Cancel-safe. An error is fatal for
    /// the link.
    pub(crate) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        let n = bufs.len().min(spans.len());
        let (bufs, spans) = (&mut bufs[..n], &mut spans[..n]);
        match &mut self.io {
            Io::Udp(link) => link.recv_batch(bufs, spans, &mut self.state).await,
            Io::Vxlan(link) => link.recv_batch(bufs, spans, &mut self.state).await,
            Io::Tcp(link) => Ok(link.recv_batch(bufs, spans, &mut self.state).await),
            #[cfg(target_os = "linux")]
            Io::Tap(link) => link.recv_batch(bufs, spans).await,
            Io::Fd(link) => link.recv_batch(bufs, spans).await,
            Io::Channel(link) => link.recv_batch(bufs, spans).await,
            Io::Batch(link) => link.recv_batch(bufs, spans).await,
        }
    }

    /// Sends the frame `buf[headroom..]`; `buf[..headroom]` is free space the link may
    /// write a header into (`headroom` is 0 or at least [`LINK_HEADROOM`]). A link that
    /// cannot take the frame drops it; only a fatal error is returned. A TCP link only
    /// queues the frame (see [`Link::flush`]) and never waits for its peer.
    pub(crate) async fn send(&mut self, buf: &mut [u8], headroom: usize) -> io::Result<()> {
        let dropped = &mut self.state.dropped_out;
        match &mut self.io {
            Io::Udp(link) => link.send(&buf[headroom..], &mut self.state).await,
            Io::Vxlan(link) => link.send(buf, headroom, &mut self.state).await,
            Io::Tcp(link) => {
                link.send(&buf[headroom..], dropped);
                Ok(())
            }
            #[cfg(target_os = "linux")]
            Io::Tap(link) => link.send(&buf[headroom..], dropped),
            Io::Fd(link) => link.send(&buf[headroom..], dropped),
            Io::Channel(link) => {
                link.send(&buf[headroom..], dropped);
                Ok(())
            }
            Io::Batch(link) => {
                link.send(&buf[headroom..], dropped);
                Ok(())
            }
        }
    }

    /// Sends the frames `bufs[i][headroom..end]` for each `(i, end)` in `items`, in
    /// order; datagram links use one `sendmmsg` for the lot.
    pub(crate) async fn send_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        items: &[(usize, usize)],
        headroom: usize,
    ) -> io::Result<()> {
        let state = &mut self.state;
        match &mut self.io {
            Io::Udp(link) => link.send_batch(bufs, items, headroom, state).await,
            Io::Vxlan(link) if headroom >= LINK_HEADROOM => {
                link.send_batch(bufs, items, headroom, state).await
            }
            _ => {
                for &(i, end) in items {
                    self.send(&mut bufs[i][..end], headroom).await?;
                }
                Ok(())
            }
        }
    }

    /// Writes what [`Link::send`] queued (TCP) as far as the socket takes it now, without
    /// waiting; [`Link::recv_batch`] writes the rest as the socket drains.
    pub(crate) fn flush(&mut self) {
        match &mut self.io {
            Io::Tcp(link) => link.flush(&mut self.state),
            Io::Batch(link) => link.flush(),
            _ => {}
        }
    }

    /// The network under the link changed: sockets are opened again (shown to the
    /// socket hook again, names resolved again), a TCP link reconnecting at once.
    /// Frames meanwhile are dropped and counted.
    pub(crate) fn network_changed(&mut self) {
        match &mut self.io {
            Io::Udp(link) => link.reopen(),
            Io::Vxlan(link) => link.reopen(),
            Io::Tcp(link) => link.reconnect(),
            #[cfg(target_os = "linux")]
            Io::Tap(_) => {}
            Io::Fd(_) | Io::Channel(_) | Io::Batch(_) => {}
        }
    }

    /// True when the link can carry a frame now: its socket is open (a TCP link
    /// connected), not waiting to be opened again.
    pub(crate) fn is_open(&self) -> bool {
        match &self.io {
            Io::Udp(link) => link.is_open(),
            Io::Vxlan(link) => link.is_open(),
            Io::Tcp(link) => link.is_open(),
            #[cfg(target_os = "linux")]
            Io::Tap(_) => true,
            Io::Fd(_) | Io::Channel(_) | Io::Batch(_) => true,
        }
    }

    /// Bytes queued for a connection-oriented link, not yet written.
    pub(crate) fn queued(&self) -> usize {
        match &self.io {
            Io::Tcp(link) => link.queued(),
            _ => 0,
        }
    }

    /// True while a TCP link has so much queued that the driver should stop reading
    /// the TUN until the peer catches up.
    pub(crate) fn congested(&self) -> bool {
        matches!(&self.io, Io::Tcp(link) if link.congested())
    }

    /// Waits until what [`Link::send`] queued is written (TCP), or the connection fails.
    /// Unbounded: the caller sets the deadline.
    pub(crate) async fn drain(&mut self) {
        if let Io::Tcp(link) = &mut self.io {
            link.drain().await;
        }
    }
}

/// A send error that means the route to the peer, or our source address, is gone (the
/// network changed under us): the socket is opened again rather than frames dropped
/// forever.
fn route_lost(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL)
    )
}

/// A send error that loses one frame (counted) rather than the link.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
        || e.raw_os_error() == Some(libc::EIO)
}

/// The result of sending one frame: `Ok` also when a transient error dropped it
/// (counted in `dropped`): the links that send one frame at a time (TAP, fd).
fn sent_or_dropped(result: io::Result<()>, dropped: &mut u64) -> io::Result<()> {
    match result {
        Err(e) if transient(&e) => {
            *dropped += 1;
            Ok(())
        }
        other => other,
    }
}
