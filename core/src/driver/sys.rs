//! Every call into the C library the driver makes, and the only `unsafe` code of the
//! driver: packet devices behind owned non-blocking fds (a TUN or a TAP), the Linux
//! TUN/TAP ioctls, `CLOCK_BOOTTIME` (read, and a `timerfd` to sleep on), socket options
//! (buffer sizes, TCP keepalive and user timeout) and the `recvmmsg`/`sendmmsg` batches of
//! the datagram links.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// One packet per `read`/`write` on an owned fd, under tokio's reactor. The same code
/// serves an Android `VpnService` fd and a Linux `/dev/net/tun` fd.
#[derive(Debug)]
pub struct PacketFd {
    fd: AsyncFd<OwnedFd>,
}

impl PacketFd {
    /// Takes ownership of `fd`, makes it non-blocking and registers it with the
    /// current tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<PacketFd> {
        set_nonblocking(&fd)?;
        // SAFETY: an `OwnedFd` stays open and always returns the same raw fd until it
        // is dropped or given back by `into_inner`.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(PacketFd { fd })
    }

    /// Gives the fd back, deregistered from the reactor (still non-blocking).
    pub fn into_inner(self) -> OwnedFd {
        self.fd.into_inner()
    }

    /// Waits until at least one packet is readable, then reads up to `bufs.len()`
    /// packets, packet `i` into `bufs[i][offset..]`, its length into `lens[i]`.
    /// Returns how many were read (at least one). Cancel-safe.
    ///
    /// A read of 0 bytes is end of file (a TUN never returns an empty packet; a socket
    /// or pipe whose other end closed does, forever, with readiness staying set): it is
    /// an [`io::ErrorKind::UnexpectedEof`] error, not a packet.
    pub async fn read_batch(
        &self,
        bufs: &mut [Vec<u8>],
        offset: usize,
        lens: &mut [usize],
    ) -> io::Result<usize> {
        let max = bufs.len().min(lens.len());
        loop {
            let mut guard = self.fd.readable().await?;
            let mut n = 0;
            while n < max {
                let Some(buf) = bufs[n].get_mut(offset..) else {
                    break;
                };
                match guard.try_io(|fd| read(fd.get_ref().as_raw_fd(), buf)) {
                    Ok(Ok(0)) if n == 0 => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "end of file (not a TUN, or its other end closed)",
                        ))
                    }
                    // Report what was read; end of file comes again on the next call.
                    Ok(Ok(0)) => break,
                    Ok(Ok(len)) => {
                        lens[n] = len;
                        n += 1;
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) if n == 0 => return Err(e),
                    // Report what was read; the error will come again on the next call.
                    Ok(Err(_)) => break,
                    Err(_would_block) => break,
                }
            }
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// Writes one packet. A full device queue drops the packet, as a NIC would.
    pub fn write(&self, packet: &[u8]) -> io::Result<()> {
        loop {
            match write(self.fd.get_ref().as_raw_fd(), packet) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes for the whole call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

/// One `write(2)` of `buf` to `fd`.
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes for the whole call.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

/// Sets `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on an open fd, with integer arguments only.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Time since boot, suspend included (`CLOCK_BOOTTIME`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn boot_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux
    // and Android kernel this runs on (2.6.39+).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return monotonic_fallback();
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec.clamp(0, 999_999_999)).unwrap_or(0),
    )
}

/// Elsewhere, time since the first call (suspend not included).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn boot_time() -> Duration {
    monotonic_fallback()
}

fn monotonic_fallback() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// A `timerfd` on `CLOCK_BOOTTIME` under tokio's reactor: the driver's protocol sleep.
/// Its deadline is absolute boot time, so time spent suspended counts and a deadline
/// that passed during a suspend fires as soon as the device wakes.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug)]
pub(crate) struct BootTimer {
    fd: AsyncFd<OwnedFd>,
    /// The deadline armed, `None` when disarmed or expired.
    armed: Option<Duration>,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl BootTimer {
    /// A disarmed timer.
    pub(crate) fn new() -> io::Result<BootTimer> {
        use std::os::fd::FromRawFd;

        // SAFETY: plain integer arguments.
        let raw = unsafe {
            libc::timerfd_create(libc::CLOCK_BOOTTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an `OwnedFd` stays open and always returns the same raw fd until it
        // is dropped, which deregisters it first.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(BootTimer { fd, armed: None })
    }

    /// Arms the timer for the boot time `at` (disarms it for `None`); nothing to do when
    /// that deadline is already armed.
    // `c_long` is 32 bits on 32-bit Android, where the conversion can fail.
    #[allow(clippy::unnecessary_fallible_conversions)]
    pub(crate) fn arm(&mut self, at: Option<Duration>) -> io::Result<()> {
        if at == self.armed {
            return Ok(());
        }
        // A zero `it_value` disarms: an armed deadline is at least 1 ns.
        let value = at.map_or(Duration::ZERO, |d| d.max(Duration::from_nanos(1)));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(value.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::try_from(value.subsec_nanos()).unwrap_or(0),
            },
        };
        // SAFETY: `spec` is a valid itimerspec read during the call; the old value is
        // not asked for.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            self.armed = None;
            return Err(io::Error::last_os_error());
        }
        self.armed = at;
        Ok(())
    }

    /// Waits until the armed deadline passes (forever while disarmed). Cancel-safe.
    pub(crate) async fn expired(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut ticks = [0u8; 8];
            match guard.try_io(|fd| read(fd.get_ref().as_raw_fd(), &mut ticks)) {
                Ok(Ok(_)) => {
                    self.armed = None;
                    return Ok(());
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                // Re-armed since it became readable: wait again.
                Err(_would_block) => {}
            }
        }
    }
}

/// Kind of device [`open_tun_device`] creates.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Layer 3: IP packets (`IFF_TUN`).
    Tun,
    /// Layer 2: Ethernet frames (`IFF_TAP`).
    Tap,
}

/// A zeroed `struct ifreq` naming `name`; an error for names the kernel refuses
/// (empty, too long, with a NUL, `/`, `:` or white space).
#[cfg(target_os = "linux")]
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bad = name.is_empty()
        || name.len() >= libc::IFNAMSIZ
        || name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}"),
        ));
    }
    // SAFETY: all-zero is a valid `ifreq` (a name of NULs and a zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, b) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = libc::c_char::from_ne_bytes([b]);
    }
    Ok(req)
}

/// Opens (creating if needed) the Linux TUN/TAP device `name` through `/dev/net/tun`
/// with `IFF_NO_PI`, non-blocking. Returns the fd and the name the kernel gave it.
/// Needs `CAP_NET_ADMIN` to create a device.
#[cfg(target_os = "linux")]
pub fn open_tun_device(name: &str, kind: DeviceKind) -> io::Result<(OwnedFd, String)> {
    use std::os::fd::FromRawFd;

    let mut req = ifreq(name)?;
    let flags = libc::IFF_NO_PI
        | match kind {
            DeviceKind::Tun => libc::IFF_TUN,
            DeviceKind::Tap => libc::IFF_TAP,
        };
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: a NUL-terminated path and plain flags.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("/dev/net/tun: {e}")));
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: TUNSETIFF reads and writes the `struct ifreq` it is given, which lives
    // for the whole call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
    }
    let actual: Vec<u8> = req
        .ifr_name
        .iter()
        .map(|c| c.to_ne_bytes()[0])
        .take_while(|&b| b != 0)
        .collect();
    Ok((fd, String::from_utf8_lossy(&actual).into_owned()))
}

/// Sets the Linux interface `name` administratively up (`SIOCSIFFLAGS` with `IFF_UP`).
#[cfg(target_os = "linux")]
pub fn set_link_up(name: &str) -> io::Result<()> {
    use std::os::fd::FromRawFd;

    let mut req = ifreq(name)?;
    // SAFETY: plain integer arguments.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of the
    // `struct ifreq` they are given, which lives for both calls; the kernel wrote the
    // flags member before it is read.
    unsafe {
        if libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as libc::Ioctl,
            &mut req,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS as libc::Ioctl,
            &mut req,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Socket buffers for bursts at line rate: a TCP window's worth of frames arrives
/// back to back. Beyond `net.core.[rw]mem_max` only with `CAP_NET_ADMIN` (…FORCE);
/// failures leave the defaults.
pub(crate) fn grow_buffers(fd: RawFd) {
    const SIZE: libc::c_int = 4 << 20;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if set_int_option(fd, force, SIZE).is_err() {
            let _ = set_int_option(fd, plain, SIZE);
        }
    }
}

/// `setsockopt(fd, SOL_SOCKET, option, value)` for an integer option.
pub(crate) fn set_int_option(fd: RawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    set_option(fd, libc::SOL_SOCKET, option, value)
}

/// Keepalive probes after this much idle time, every `KEEPALIVE_INTERVAL`, given up
/// after `KEEPALIVE_COUNT` unanswered: a dead idle TCP path is noticed in about 11 s.
const KEEPALIVE_IDLE_S: libc::c_int = 5;
const KEEPALIVE_INTERVAL_S: libc::c_int = 2;
const KEEPALIVE_COUNT: libc::c_int = 3;

/// Makes a dead TCP connection fail fast: keepalive probes while idle, and
/// `TCP_USER_TIMEOUT` (`user_timeout`, in whole milliseconds) for data left unacknowledged.
pub(crate) fn set_tcp_liveness(fd: RawFd, user_timeout: Duration) -> io::Result<()> {
    let ms = libc::c_int::try_from(user_timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    set_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, KEEPALIVE_IDLE_S)?;
    set_option(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        KEEPALIVE_INTERVAL_S,
    )?;
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_COUNT)?;
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms)
}

/// `getsockopt(fd, level, option)` for an integer option.
pub(crate) fn get_option(fd: RawFd, level: libc::c_int, option: libc::c_int) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, and `len` back.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setsockopt(fd, level, option, value)` for an integer option.
fn set_option(
    fd: RawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads one c_int from a valid pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The arrays a `recvmmsg`/`sendmmsg` call needs, kept between calls so a batch
/// allocates nothing. They are refilled by every call (the headers point into the other
/// arrays and the caller's buffers, so they cannot be kept) and cleared before it returns.
#[derive(Default)]
pub(crate) struct MmsgScratch {
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

/// Receives up to `bufs.len()` datagrams with one `recvmmsg`, datagram `i` into
/// `bufs[i][..spans[i].1]`, its source into `from[i]`. Non-blocking.
pub(crate) fn recv_batch_from(
    fd: RawFd,
    bufs: &mut [Vec<u8>],
    spans: &mut [(usize, usize)],
    from: &mut Vec<Option<SocketAddr>>,
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
            from.push(sockaddr_addr(&addrs[i]));
        }
        Ok(got)
    };
    scratch.clear();
    result
}

/// Sends `bufs[i][start..end]` for each `(i, end)` with one `sendmmsg`, to `dest` or
/// to the connected peer. Returns how many were sent.
pub(crate) fn send_batch_to(
    fd: RawFd,
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

/// The address in `addr`, an IPv4-mapped IPv6 address as the IPv4 address.
fn sockaddr_addr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)));
            Some(SocketAddr::new(ip, u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some(SocketAddr::new(ip, u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

/// A connected pair of `AF_UNIX` `SOCK_DGRAM` sockets (close-on-exec, large buffers):
/// one Ethernet frame per datagram, as a TAP fd has one per `read`/`write`. Give one end
/// to an `fd://` link ([`crate::driver::LinkSpec::fd`]) and the other to a VPN engine
/// written for a TAP device.
pub fn frame_socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;

    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into the array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by nothing else.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    grow_buffers(fds[0]);
    grow_buffers(fds[1]);
    Ok(pair)
}

/// Takes ownership of descriptor `n`, handed over by number (`fd://N`): refused unless
/// it is open.
pub(crate) fn adopt_fd(n: RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;

    // SAFETY: F_GETFD reads the descriptor's flags and nothing else.
    if n < 0 || unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {n} is not an open descriptor"),
        ));
    }
    // SAFETY: `n` is open, and whoever wrote `fd://N` handed it over to the link (the
    // documented contract of the URL): nothing else closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Checks that `fd` keeps frame boundaries: a datagram or seqpacket socket, or a
/// character device (a TAP fd).
pub(crate) fn check_frame_fd(fd: &OwnedFd) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;

    let raw = fd.as_raw_fd();
    // fstat through a duplicate borrowed as a `File`, which closes only the duplicate.
    let kind = std::fs::File::from(fd.try_clone()?).metadata()?.file_type();
    if kind.is_char_device() {
        return Ok(());
    }
    if !kind.is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {raw} is neither a datagram socket nor a TAP device"),
        ));
    }
    match get_option(raw, libc::SOL_SOCKET, libc::SO_TYPE)? {
        libc::SOCK_DGRAM | libc::SOCK_SEQPACKET => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {raw} is a stream socket: frames need a datagram or seqpacket socket"),
        )),
    }
}

/// A connected pair of `SOCK_SEQPACKET` sockets: one packet per read, like a TUN.
#[cfg(test)]
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;

    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into the array.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn interface_names_the_kernel_refuses_are_refused_here() {
        for bad in ["", "a/b", "a:b", "a b", "a\0b", "sixteen-bytes-xx"] {
            let e = ifreq(bad).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let req = ifreq("tap0").expect("valid");
        let name: Vec<u8> = req.ifr_name.iter().map(|c| c.to_ne_bytes()[0]).collect();
        assert_eq!(&name[..5], b"tap0\0");
    }
}
