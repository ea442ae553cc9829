//! Links: where the emulated host's Ethernet frames go, one frame per unit on the wire.
//!
//! | URL | wire format |
//! |---|---|
//! | `udp://HOST:PORT[?bind=ADDR:PORT]` | one frame per datagram, no header |
//! | `tcp://HOST:PORT[?len=2\|4]` | big-endian length prefix (2 bytes by default) then the frame |
//! | `vxlan://HOST:PORT?vni=N[&bind=ADDR:PORT]` | RFC 7348: 8-byte header in UDP, bound to PORT |
//! | `tap://NAME` | a local kernel TAP device (Linux) |
//! | [`channel`] | frames handed to and taken from the embedding application |

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::io::Interest;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::sys::PacketFd;
use super::SocketHook;

/// Largest frame a link accepts: a 64 KiB IP packet plus its Ethernet header.
pub const MAX_FRAME: usize = 65535 + 14;
/// Bytes a link may write in front of a frame (the VXLAN header is the largest).
pub const LINK_HEADROOM: usize = VXLAN_HEADER_LEN;
const VXLAN_HEADER_LEN: usize = 8;
/// The IANA VXLAN port, the default of `vxlan://HOST`.
pub const VXLAN_PORT: u16 = 4789;

/// Length prefix of the `tcp://` link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthPrefix {
    /// 2 bytes, big-endian: simpletun-style tunnels (`?len=2`, the default).
    U16,
    /// 4 bytes, big-endian: QEMU `-netdev stream`/`socket` (`?len=4`).
    U32,
}

/// Which link to open: parsed from a URL (see the [module documentation](self)) or
/// made by [`channel`].
pub enum LinkSpec {
    /// `udp://HOST:PORT`: one frame per datagram.
    Udp {
        /// `HOST:PORT` of the peer, resolved when the link opens.
        remote: String,
        /// Local address to bind; an ephemeral port when `None`.
        bind: Option<SocketAddr>,
    },
    /// `tcp://HOST:PORT`: length-prefixed frames over one TCP connection, reconnected
    /// with backoff when it drops.
    Tcp {
        /// `HOST:PORT` of the peer.
        remote: String,
        /// Length prefix size.
        len: LengthPrefix,
    },
    /// `vxlan://HOST:PORT?vni=N`: RFC 7348, as the Linux kernel's `vxlan` device.
    Vxlan {
        /// `HOST:PORT` of the peer VTEP; frames are accepted from its IP only.
        remote: String,
        /// The VXLAN network identifier (24 bits).
        vni: u32,
        /// Local address to bind; the remote's port on every address when `None`.
        bind: Option<SocketAddr>,
    },
    /// `tap://NAME`: a local kernel TAP device (Linux).
    Tap {
        /// Interface name, created if missing.
        name: String,
    },
    /// Frames exchanged with the application through channels (see [`channel`]).
    Channel(ChannelLink),
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSpec::Udp { remote, bind: None } => write!(f, "udp://{remote}"),
            LinkSpec::Udp {
                remote,
                bind: Some(b),
            } => write!(f, "udp://{remote}?bind={b}"),
            LinkSpec::Tcp { remote, len } => {
                let n = match len {
                    LengthPrefix::U16 => 2,
                    LengthPrefix::U32 => 4,
                };
                write!(f, "tcp://{remote}?len={n}")
            }
            LinkSpec::Vxlan { remote, vni, bind } => {
                write!(f, "vxlan://{remote}?vni={vni}")?;
                if let Some(b) = bind {
                    write!(f, "&bind={b}")?;
                }
                Ok(())
            }
            LinkSpec::Tap { name } => write!(f, "tap://{name}"),
            LinkSpec::Channel(_) => write!(f, "channel:"),
        }
    }
}

impl fmt::Debug for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A link URL that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid link URL {url:?}: {reason}")]
pub struct ParseLinkError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for LinkSpec {
    type Err = ParseLinkError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParseLinkError {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err("expected SCHEME://…, SCHEME one of udp, tcp, vxlan, tap"))?;
        let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| err(&format!("query parameter {pair:?} is not KEY=VALUE")))?;
            params.push((k, v));
        }
        let take = |params: &mut Vec<(&str, &str)>, key: &str| {
            params
                .iter()
                .position(|(k, _)| *k == key)
                .map(|i| params.remove(i).1.to_owned())
        };
        let parse_bind = |v: Option<String>| -> Result<Option<SocketAddr>, ParseLinkError> {
            v.map(|v| {
                v.parse::<SocketAddr>()
                    .or_else(|_| {
                        v.parse::<u16>()
                            .map(|p| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), p))
                    })
                    .map_err(|_| err(&format!("bind={v}: expected ADDR:PORT or PORT")))
            })
            .transpose()
        };
        let host_port = |target: &str, default_port: Option<u16>| {
            if target.is_empty() {
                return Err(err("missing HOST:PORT"));
            }
            let has_port = match target.rsplit_once(':') {
                Some((host, port)) => {
                    (!host.contains(':') || host.ends_with(']')) && port.parse::<u16>().is_ok()
                }
                None => false,
            };
            match (has_port, default_port) {
                (true, _) => Ok(target.to_owned()),
                (false, Some(p)) if target.contains(':') && !target.starts_with('[') => {
                    Ok(format!("[{target}]:{p}"))
                }
                (false, Some(p)) => Ok(format!("{target}:{p}")),
                (false, None) => Err(err("missing :PORT")),
            }
        };
        let spec = match scheme {
            "udp" => LinkSpec::Udp {
                remote: host_port(target, None)?,
                bind: parse_bind(take(&mut params, "bind"))?,
            },
            "tcp" => LinkSpec::Tcp {
                remote: host_port(target, None)?,
                len: match take(&mut params, "len").as_deref() {
                    None | Some("2") => LengthPrefix::U16,
                    Some("4") => LengthPrefix::U32,
                    Some(other) => return Err(err(&format!("len={other}: expected 2 or 4"))),
                },
            },
            "vxlan" => {
                let vni = take(&mut params, "vni").ok_or_else(|| err("missing ?vni=N"))?;
                let vni = vni
                    .parse::<u32>()
                    .ok()
                    .filter(|v| *v < (1 << 24))
                    .ok_or_else(|| err(&format!("vni={vni}: expected 0..16777215")))?;
                LinkSpec::Vxlan {
                    remote: host_port(target, Some(VXLAN_PORT))?,
                    vni,
                    bind: parse_bind(take(&mut params, "bind"))?,
                }
            }
            "tap" => {
                if target.is_empty() || target.len() > 15 || target.contains('/') {
                    return Err(err("expected tap://NAME, NAME at most 15 bytes"));
                }
                LinkSpec::Tap {
                    name: target.to_owned(),
                }
            }
            other => {
                return Err(err(&format!(
                    "unknown scheme {other:?}: expected udp, tcp, vxlan or tap"
                )))
            }
        };
        if let Some((k, _)) = params.first() {
            return Err(err(&format!("unknown query parameter {k:?}")));
        }
        Ok(spec)
    }
}

/// Bytes queued for a TCP connection beyond which frames are dropped (and counted):
/// a peer that stops reading must never stall the driver.
const TCP_OUT_LIMIT: usize = 256 << 10;
/// Bytes queued for a TCP connection from which the driver stops reading the TUN
/// ([`Link::congested`]), leaving the excess to the TUN's own queue rather than to this
/// buffer (whose every byte is latency).
const TCP_OUT_PAUSE: usize = 64 << 10;

/// The application's side of a [`channel`] link.
#[derive(Debug)]
pub struct ChannelPeer {
    /// Ethernet frames the emulated host sends: carry them to the network.
    pub from_driver: mpsc::Receiver<Vec<u8>>,
    /// Ethernet frames from the network: send them here. A full channel means the
    /// driver is behind; `try_send` and drop is the Ethernet way.
    pub to_driver: mpsc::Sender<Vec<u8>>,
}

/// The driver's side of a [`channel`] link; wrapped in [`LinkSpec::Channel`].
#[derive(Debug)]
pub struct ChannelLink {
    rx: mpsc::Receiver<Vec<u8>>,
    tx: mpsc::Sender<Vec<u8>>,
}

/// A link whose frames go through channels, for applications whose own VPN protocol
/// carries the frames. Each direction holds up to `capacity` frames; frames the
/// application does not take in time are dropped (and counted), never blocking the
/// driver.
pub fn channel(capacity: usize) -> (LinkSpec, ChannelPeer) {
    let (to_app, from_driver) = mpsc::channel(capacity.max(1));
    let (to_driver, from_app) = mpsc::channel(capacity.max(1));
    (
        LinkSpec::Channel(ChannelLink {
            rx: from_app,
            tx: to_app,
        }),
        ChannelPeer {
            from_driver,
            to_driver,
        },
    )
}

/// A link that could not be opened or failed: names the URL and the cause.
#[derive(Debug, thiserror::Error)]
#[error("link {url}: {source}")]
pub struct LinkError {
    /// The link's URL.
    pub url: String,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// Something that happened to a link, reported as a driver event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkStatus {
    /// A connection-oriented link (re)connected.
    Up,
    /// The link failed; a TCP link retries after `retry_in`.
    Down {
        /// Why, naming the URL.
        error: String,
        /// When the next attempt is made, if any.
        retry_in: Option<Duration>,
    },
}

type ConnectFuture = Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send>>;

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

/// The connection failed: drop it and what was queued for it (a partial frame must not
/// reach the next connection), report it and retry after the backoff.
fn tcp_down(
    state: &mut TcpState,
    out: &mut TcpOut,
    backoff: &mut Duration,
    status: &mut Vec<LinkStatus>,
    url: &str,
    e: &io::Error,
) {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    *state = TcpState::Waiting(Box::pin(tokio::time::sleep(wait)));
    out.clear();
    status.push(LinkStatus::Down {
        error: format!("link {url}: {e}"),
        retry_in: Some(wait),
    });
}

/// The arrays a `recvmmsg`/`sendmmsg` call needs, kept between calls so a batch
/// allocates nothing. They are refilled by every call (the headers point into the other
/// arrays and the caller's buffers, so they cannot be kept) and cleared before it returns.
#[derive(Default)]
struct MmsgScratch {
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `msgs` are written and dereferenced only within
// one call of `recv_batch_from`/`send_batch_to`, which clears them before returning;
// outside a call the vectors are empty and hold nothing but their allocations.
unsafe impl Send for MmsgScratch {}

impl MmsgScratch {
    fn clear(&mut self) {
        self.addrs.clear();
        self.iovs.clear();
        self.msgs.clear();
    }
}

#[allow(clippy::large_enum_variant)]
enum Io {
    Udp(UdpSocket),
    Vxlan {
        socket: UdpSocket,
        remote: SocketAddr,
        vni: u32,
        /// For frames sent without headroom.
        scratch: Vec<u8>,
    },
    Tcp {
        remote: String,
        codec: LengthPrefix,
        state: TcpState,
        /// Frames not yet written to the connection.
        out: TcpOut,
        backoff: Duration,
        hook: Option<SocketHook>,
    },
    Tap(PacketFd),
    Channel(ChannelLink),
}

/// An open link.
pub(crate) struct Link {
    url: String,
    io: Io,
    /// Source address of each datagram of a batch.
    from: Vec<Option<IpAddr>>,
    /// Lengths of a batch read from a TAP.
    lens: Vec<usize>,
    /// For `recvmmsg`/`sendmmsg`.
    mmsg: MmsgScratch,
    status: Vec<LinkStatus>,
    /// Frames dropped because the link could not take them (down, full).
    pub(crate) dropped_out: u64,
    /// Times a connection-oriented link reconnected.
    pub(crate) reconnects: u64,
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

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

async fn resolve(remote: &str) -> io::Result<SocketAddr> {
    tokio::net::lookup_host(remote)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{remote}: no address")))
}

fn unspecified_like(addr: &SocketAddr, port: u16) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    }
}

fn udp_socket(bind: SocketAddr, hook: Option<&SocketHook>) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(bind)?;
    if let Some(hook) = hook {
        hook(socket.as_raw_fd())?;
    }
    socket.set_nonblocking(true)?;
    grow_buffers(socket.as_raw_fd());
    UdpSocket::from_std(socket)
}

/// Socket buffers for bursts at line rate: a TCP window's worth of frames arrives
/// back to back. Beyond `net.core.[rw]mem_max` only with `CAP_NET_ADMIN` (…FORCE);
/// failures leave the defaults.
fn grow_buffers(fd: std::os::fd::RawFd) {
    const SIZE: libc::c_int = 4 << 20;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let set = |opt| {
            // SAFETY: setsockopt reads one c_int from a valid pointer.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&SIZE as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(force) != 0 {
            set(plain);
        }
    }
}

/// Receives up to `bufs.len()` datagrams with one `recvmmsg`, datagram `i` into
/// `bufs[i][..spans[i].1]`, its source IP into `from[i]`. Non-blocking.
fn recv_batch_from(
    fd: std::os::fd::RawFd,
    bufs: &mut [Vec<u8>],
    spans: &mut [(usize, usize)],
    from: &mut Vec<Option<IpAddr>>,
    scratch: &mut MmsgScratch,
) -> io::Result<usize> {
    let n = bufs.len().min(spans.len());
    let MmsgScratch { addrs, iovs, msgs } = scratch;
    // SAFETY: all-zero is a valid sockaddr_storage.
    addrs.resize(n, unsafe { std::mem::zeroed() });
    iovs.extend(bufs[..n].iter_mut().map(|b| libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    }));
    // `addrs` and `iovs` are complete: the pointers taken into them stay valid while
    // `msgs` grows.
    msgs.extend(iovs.iter_mut().zip(addrs.iter_mut()).map(|(iov, addr)| {
        // SAFETY: all-zero is a valid mmsghdr.
        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
        m
    }));
    // SAFETY: `msgs` holds `n` headers, each naming one writable `addrs` entry and one
    // iovec over a writable buffer of `bufs`; all of them outlive the call and nothing
    // else touches them during it.
    let got = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            n as _,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let result = if got < 0 {
        Err(io::Error::last_os_error())
    } else {
        let got = got.unsigned_abs() as usize;
        from.clear();
        for i in 0..got {
            spans[i] = (0, msgs[i].msg_len as usize);
            from.push(sockaddr_ip(&addrs[i]));
        }
        Ok(got)
    };
    scratch.clear();
    result
}

/// Sends `bufs[i][start..end]` for each `(i, end)` with one `sendmmsg`, to `dest` or
/// to the connected peer. Returns how many were sent.
fn send_batch_to(
    fd: std::os::fd::RawFd,
    bufs: &[Vec<u8>],
    items: &[(usize, usize)],
    start: usize,
    dest: Option<SocketAddr>,
    scratch: &mut MmsgScratch,
) -> io::Result<usize> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let name_len = dest.map_or(0, |d| sockaddr_from(d, &mut name));
    let name_ptr: *mut libc::sockaddr_storage = &mut name;
    let MmsgScratch { iovs, msgs, .. } = scratch;
    iovs.extend(items.iter().map(|&(i, end)| libc::iovec {
        iov_base: bufs[i][start..end].as_ptr() as *mut libc::c_void,
        iov_len: end - start,
    }));
    // `iovs` is complete: the pointers taken into it stay valid while `msgs` grows.
    msgs.extend(iovs.iter_mut().map(|iov| {
        // SAFETY: all-zero is a valid mmsghdr.
        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
        if name_len > 0 {
            m.msg_hdr.msg_name = name_ptr.cast();
            m.msg_hdr.msg_namelen = name_len;
        }
        m
    }));
    // SAFETY: `msgs` holds valid headers, each naming one iovec over a readable buffer of
    // `bufs` and, if any, the local `name`; all outlive the call and sendmmsg only reads
    // them (the iovecs' `*mut` is the C type's, nothing is written through it).
    let sent =
        unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as _, libc::MSG_DONTWAIT) };
    scratch.clear();
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent.unsigned_abs() as usize)
    }
}

fn sockaddr_from(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn sockaddr_ip(addr: &libc::sockaddr_storage) -> Option<IpAddr> {
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4))
        }
        _ => None,
    }
}

async fn tcp_connect(remote: String, hook: Option<SocketHook>) -> io::Result<TcpStream> {
    let addr = resolve(&remote).await?;
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(hook) = &hook {
        hook(socket.as_raw_fd())?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Link {
    /// Opens the link; the first TCP connection must succeed.
    pub(crate) async fn open(spec: LinkSpec, hook: Option<SocketHook>) -> Result<Link, LinkError> {
        let url = spec.to_string();
        let io = Self::open_io(spec, hook)
            .await
            .map_err(|source| LinkError {
                url: url.clone(),
                source,
            })?;
        Ok(Link {
            url,
            io,
            from: Vec::new(),
            lens: Vec::new(),
            mmsg: MmsgScratch::default(),
            status: Vec::new(),
            dropped_out: 0,
            reconnects: 0,
        })
    }

    async fn open_io(spec: LinkSpec, hook: Option<SocketHook>) -> io::Result<Io> {
        Ok(match spec {
            LinkSpec::Udp { remote, bind } => {
                let addr = resolve(&remote).await?;
                let socket = udp_socket(bind.unwrap_or(unspecified_like(&addr, 0)), hook.as_ref())?;
                socket.connect(addr).await?;
                Io::Udp(socket)
            }
            LinkSpec::Vxlan { remote, vni, bind } => {
                let addr = resolve(&remote).await?;
                let bind = bind.unwrap_or(unspecified_like(&addr, addr.port()));
                let socket = udp_socket(bind, hook.as_ref())?;
                Io::Vxlan {
                    socket,
                    remote: addr,
                    vni,
                    scratch: vec![0; VXLAN_HEADER_LEN + MAX_FRAME],
                }
            }
            LinkSpec::Tcp { remote, len } => {
                let stream = tcp_connect(remote.clone(), hook.clone()).await?;
                let (r, w) = stream.into_split();
                Io::Tcp {
                    remote,
                    codec: len,
                    state: TcpState::Connected {
                        read: FramedRead::new(r, codec(len)),
                        write: w,
                    },
                    out: TcpOut::default(),
                    backoff: BACKOFF_MIN,
                    hook,
                }
            }
            #[cfg(target_os = "linux")]
            LinkSpec::Tap { name } => {
                let (fd, actual) = super::sys::open_tun_device(&name, super::sys::DeviceKind::Tap)?;
                super::sys::set_link_up(&actual)?;
                Io::Tap(PacketFd::new(fd)?)
            }
            #[cfg(not(target_os = "linux"))]
            LinkSpec::Tap { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "tap:// links exist on Linux only",
                ))
            }
            LinkSpec::Channel(c) => Io::Channel(c),
        })
    }

    /// The URL the link was opened from.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Status changes since the last call.
    pub(crate) fn take_status(&mut self) -> Vec<LinkStatus> {
        std::mem::take(&mut self.status)
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
        match &mut self.io {
            Io::Udp(socket) => loop {
                socket.readable().await?;
                match socket.try_io(Interest::READABLE, || {
                    recv_batch_from(
                        socket.as_raw_fd(),
                        bufs,
                        spans,
                        &mut self.from,
                        &mut self.mmsg,
                    )
                }) {
                    Ok(n) if n > 0 => return Ok(n),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // ICMP port unreachable from a peer not yet listening.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                }
            },
            Io::Vxlan {
                socket,
                remote,
                vni,
                ..
            } => loop {
                socket.readable().await?;
                let n = match socket.try_io(Interest::READABLE, || {
                    recv_batch_from(
                        socket.as_raw_fd(),
                        bufs,
                        spans,
                        &mut self.from,
                        &mut self.mmsg,
                    )
                }) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => 0,
                    Err(e) => return Err(e),
                };
                for i in 0..n {
                    let (_, len) = spans[i];
                    let ok = self.from[i] == Some(remote.ip())
                        && vxlan_decap(&bufs[i][..len], *vni).is_some();
                    spans[i] = if ok { (VXLAN_HEADER_LEN, len) } else { (0, 0) };
                }
                if n > 0 {
                    return Ok(n);
                }
            },
            Io::Tap(dev) => {
                self.lens.resize(bufs.len(), 0);
                let n = dev.read_batch(bufs, 0, &mut self.lens).await?;
                for (span, len) in spans.iter_mut().zip(&self.lens).take(n) {
                    *span = (0, *len);
                }
                Ok(n)
            }
            Io::Channel(c) => {
                let Some(first) = c.rx.recv().await else {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the application closed the channel",
                    ));
                };
                let mut n = 0;
                let mut next = Some(first);
                while let Some(frame) = next.take() {
                    // A frame too large for the buffers is an empty span: dropped and
                    // counted like an empty frame.
                    spans[n] = match bufs[n].get_mut(..frame.len()) {
                        Some(buf) => {
                            buf.copy_from_slice(&frame);
                            (0, frame.len())
                        }
                        None => (0, 0),
                    };
                    n += 1;
                    if n < bufs.len() {
                        next = c.rx.try_recv().ok();
                    }
                }
                Ok(n)
            }
            Io::Tcp {
                remote,
                codec: len,
                state,
                out,
                backoff,
                hook,
            } => {
                let url = &self.url;
                match state {
                    TcpState::Waiting(sleep) => {
                        sleep.as_mut().await;
                        *state = TcpState::Connecting(Box::pin(tcp_connect(
                            remote.clone(),
                            hook.clone(),
                        )));
                        Ok(0)
                    }
                    TcpState::Connecting(fut) => {
                        match fut.as_mut().await {
                            Ok(stream) => {
                                let (r, w) = stream.into_split();
                                *state = TcpState::Connected {
                                    read: FramedRead::new(r, codec(*len)),
                                    write: w,
                                };
                                out.clear();
                                *backoff = BACKOFF_MIN;
                                self.reconnects += 1;
                                self.status.push(LinkStatus::Up);
                            }
                            Err(e) => {
                                let wait = *backoff;
                                *backoff = (*backoff * 2).min(BACKOFF_MAX);
                                *state = TcpState::Waiting(Box::pin(tokio::time::sleep(wait)));
                                self.status.push(LinkStatus::Down {
                                    error: format!("link {url}: {e}"),
                                    retry_in: Some(wait),
                                });
                            }
                        }
                        Ok(0)
                    }
                    TcpState::Connected { read, write } => {
                        let first = if out.is_empty() {
                            read.next().await
                        } else {
                            tokio::select! {
                                item = read.next() => item,
                                ready = write.writable() => {
                                    let written = ready.and_then(|()| out.write_to(write));
                                    if let Err(e) = written {
                                        tcp_down(state, out, backoff, &mut self.status, url, &e);
                                    }
                                    return Ok(0);
                                }
                            }
                        };
                        let mut n = 0;
                        let mut next = Some(first);
                        let mut failure = None;
                        while let Some(item) = next.take() {
                            match item {
                                Some(Ok(frame)) => {
                                    bufs[n][..frame.len()].copy_from_slice(&frame);
                                    spans[n] = (0, frame.len());
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
                            tcp_down(state, out, backoff, &mut self.status, url, &e);
                        }
                        Ok(n)
                    }
                }
            }
        }
    }

    /// Sends the frame `buf[headroom..]`; `buf[..headroom]` is free space the link may
    /// write a header into (`headroom` is 0 or at least [`LINK_HEADROOM`]). A link that
    /// cannot take the frame drops it; only a fatal error is returned. A TCP link only
    /// queues the frame (see [`Link::flush`]) and never waits for its peer.
    pub(crate) async fn send(&mut self, buf: &mut [u8], headroom: usize) -> io::Result<()> {
        let frame_len = buf.len() - headroom;
        match &mut self.io {
            Io::Udp(socket) => match socket.send(&buf[headroom..]).await {
                Ok(_) => Ok(()),
                Err(e) if transient(&e) => {
                    self.dropped_out += 1;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Io::Vxlan {
                socket,
                remote,
                vni,
                scratch,
            } => {
                let datagram: &[u8] = if headroom >= VXLAN_HEADER_LEN {
                    let start = headroom - VXLAN_HEADER_LEN;
                    buf[start..headroom].copy_from_slice(&vxlan_header(*vni));
                    &buf[start..]
                } else {
                    scratch[..VXLAN_HEADER_LEN].copy_from_slice(&vxlan_header(*vni));
                    scratch[VXLAN_HEADER_LEN..VXLAN_HEADER_LEN + frame_len]
                        .copy_from_slice(&buf[headroom..]);
                    &scratch[..VXLAN_HEADER_LEN + frame_len]
                };
                match socket.send_to(datagram, *remote).await {
                    Ok(_) => Ok(()),
                    Err(e) if transient(&e) => {
                        self.dropped_out += 1;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Io::Tap(dev) => match dev.write(&buf[headroom..]) {
                Ok(()) => Ok(()),
                Err(e) if transient(&e) => {
                    self.dropped_out += 1;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Io::Channel(c) => {
                if c.tx.try_send(buf[headroom..].to_vec()).is_err() {
                    self.dropped_out += 1;
                }
                Ok(())
            }
            Io::Tcp {
                state, out, codec, ..
            } => {
                // Down, or a peer not reading fast enough: drop, as Ethernet would.
                let connected = matches!(state, TcpState::Connected { .. });
                if !connected || !out.push(*codec, &buf[headroom..]) {
                    self.dropped_out += 1;
                }
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
        let (socket, dest, vni) = match &self.io {
            Io::Udp(socket) => (socket, None, None),
            Io::Vxlan {
                socket,
                remote,
                vni,
                ..
            } if headroom >= VXLAN_HEADER_LEN => (socket, Some(*remote), Some(*vni)),
            _ => {
                for &(i, end) in items {
                    self.send(&mut bufs[i][..end], headroom).await?;
                }
                return Ok(());
            }
        };
        let start = match vni {
            Some(vni) => {
                let start = headroom - VXLAN_HEADER_LEN;
                for &(i, _) in items {
                    bufs[i][start..headroom].copy_from_slice(&vxlan_header(vni));
                }
                start
            }
            None => headroom,
        };
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            match socket
                .async_io(Interest::WRITABLE, || {
                    send_batch_to(socket.as_raw_fd(), bufs, rest, start, dest, &mut self.mmsg)
                })
                .await
            {
                Ok(sent) => done += sent.max(1),
                Err(e) if transient(&e) => {
                    // The first datagram of the rest is dropped; go on with the others.
                    self.dropped_out += 1;
                    done += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes what [`Link::send`] queued (TCP) as far as the socket takes it now, without
    /// waiting; [`Link::recv_batch`] writes the rest as the socket drains.
    pub(crate) fn flush(&mut self) {
        if let Io::Tcp {
            state,
            out,
            backoff,
            ..
        } = &mut self.io
        {
            if let TcpState::Connected { write, .. } = state {
                if let Err(e) = out.write_to(write) {
                    tcp_down(state, out, backoff, &mut self.status, &self.url, &e);
                }
            }
        }
    }

    /// True while a TCP link has so much queued that the driver should stop reading
    /// the TUN until the peer catches up.
    pub(crate) fn congested(&self) -> bool {
        matches!(&self.io, Io::Tcp { out, .. } if out.len() >= TCP_OUT_PAUSE)
    }

    /// Waits until what [`Link::send`] queued is written (TCP), or the connection fails.
    /// Unbounded: the caller sets the deadline.
    pub(crate) async fn drain(&mut self) {
        if let Io::Tcp {
            state: TcpState::Connected { write, .. },
            out,
            ..
        } = &mut self.io
        {
            while !out.is_empty() {
                if write.writable().await.is_err() || out.write_to(write).is_err() {
                    return;
                }
            }
        }
    }
}

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

/// The RFC 7348 header for `vni`: flags with the I bit, the VNI, reserved bytes zero.
pub fn vxlan_header(vni: u32) -> [u8; VXLAN_HEADER_LEN] {
    let v = vni.to_be_bytes();
    [0x08, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The Ethernet frame inside a VXLAN datagram, if its I flag is set and its VNI is
/// `vni`.
pub fn vxlan_decap(datagram: &[u8], vni: u32) -> Option<&[u8]> {
    let header = datagram.get(..VXLAN_HEADER_LEN)?;
    let got = u32::from_be_bytes([0, header[4], header[5], header[6]]);
    (header[0] & 0x08 != 0 && got == vni).then(|| &datagram[VXLAN_HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let s: LinkSpec = "udp://192.0.2.1:5000".parse().expect("udp");
        assert!(matches!(&s, LinkSpec::Udp { remote, bind: None } if remote == "192.0.2.1:5000"));
        let s: LinkSpec = "udp://192.0.2.1:5000?bind=6000".parse().expect("udp bind");
        assert_eq!(s.to_string(), "udp://192.0.2.1:5000?bind=0.0.0.0:6000");
        let s: LinkSpec = "tcp://host.example:7000?len=4".parse().expect("tcp");
        assert!(matches!(
            s,
            LinkSpec::Tcp {
                len: LengthPrefix::U32,
                ..
            }
        ));
        let s: LinkSpec = "tcp://[2001:db8::1]:7000".parse().expect("tcp v6");
        assert!(matches!(
            s,
            LinkSpec::Tcp {
                len: LengthPrefix::U16,
                ..
            }
        ));
        let s: LinkSpec = "vxlan://198.51.100.1?vni=42".parse().expect("vxlan");
        assert_eq!(s.to_string(), "vxlan://198.51.100.1:4789?vni=42");
        let s: LinkSpec = "tap://tap0".parse().expect("tap");
        assert_eq!(s.to_string(), "tap://tap0");
        for bad in [
            "192.0.2.1:5000",
            "udp://192.0.2.1",
            "tcp://h:1?len=3",
            "vxlan://h:1",
            "vxlan://h:1?vni=16777216",
            "tap://",
            "ftp://h:1",
            "udp://h:1?x=1",
        ] {
            assert!(bad.parse::<LinkSpec>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn tcp_queue_prefixes_frames_and_drops_past_its_limit() {
        let mut out = TcpOut::default();
        assert!(out.push(LengthPrefix::U16, b"abc"));
        assert!(out.push(LengthPrefix::U32, b"de"));
        assert_eq!(out.buf, b"\x00\x03abc\x00\x00\x00\x02de");
        assert!(
            !out.push(LengthPrefix::U16, &vec![0; 65536]),
            "over a 2-byte prefix"
        );
        // Written bytes are reclaimed when a frame is queued once they outweigh the rest.
        out.head = 7;
        assert!(out.push(LengthPrefix::U16, b"f"));
        assert_eq!(out.buf, b"\x00\x02de\x00\x01f");
        assert_eq!((out.head, out.len()), (0, 7));
        let frame = vec![0; 1500];
        let mut queued = 1;
        while out.push(LengthPrefix::U16, &frame) {
            queued += 1;
        }
        assert!(out.len() <= TCP_OUT_LIMIT);
        assert!(out.len() + 1502 > TCP_OUT_LIMIT);
        assert_eq!(queued, 1 + (TCP_OUT_LIMIT - 7) / 1502);
        assert!(
            out.push(LengthPrefix::U16, b""),
            "room for the smallest frame"
        );
    }

    #[test]
    fn vxlan_round_trip() {
        let mut d = vxlan_header(42).to_vec();
        d.extend_from_slice(b"frame");
        assert_eq!(d[..8], [0x08, 0, 0, 0, 0, 0, 42, 0]);
        assert_eq!(vxlan_decap(&d, 42), Some(&b"frame"[..]));
        assert_eq!(vxlan_decap(&d, 43), None);
        assert_eq!(vxlan_decap(&d[..7], 42), None);
        d[0] = 0;
        assert_eq!(vxlan_decap(&d, 42), None);
    }
}
