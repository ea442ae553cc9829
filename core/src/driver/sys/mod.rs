//! Every call into the C library the driver makes, and the only `unsafe` code of the
//! driver: packet devices behind owned non-blocking fds (a TUN or a TAP), the Linux
//! TUN/TAP ioctls, `CLOCK_BOOTTIME` (read, and a `timerfd` to sleep on), socket options
//! (buffer sizes, TCP keepalive and user timeout) and the `recvmmsg`/`sendmmsg` batches of
//! the datagram links.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

mod mmsg;
#[cfg(target_os = "linux")]
mod tun;

pub(crate) use self::mmsg::{recv_batch_from, send_batch_to, MmsgScratch};
#[cfg(target_os = "linux")]
pub use self::tun::{
    has_vnet_hdr, open_tun_device, open_tun_offload, set_link_up, DeviceKind, TunOffload,
};

/// One packet per `read`/`write` on an owned fd, under tokio's reactor. The same code
/// serves an Android `VpnService` fd and a Linux `/dev/net/tun` fd.
///
/// A TUN opened with `IFF_VNET_HDR` ([`open_tun_offload`]) puts a virtio-net header in
/// front of every packet read and expects one in front of every packet written:
/// [`PacketFd::with_vnet_hdr`] says so, [`PacketFd::new`] (no header) is the default.
#[derive(Debug)]
pub struct PacketFd {
    fd: AsyncFd<OwnedFd>,
    vnet_hdr: bool,
}

impl PacketFd {
    /// Takes ownership of `fd` (packets without a virtio-net header), makes it
    /// non-blocking and registers it with the current tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<PacketFd> {
        PacketFd::open(fd, false)
    }

    /// Like [`PacketFd::new`] for a TUN opened with `IFF_VNET_HDR`: every packet read
    /// and written has a virtio-net header in front.
    pub fn with_vnet_hdr(fd: OwnedFd) -> io::Result<PacketFd> {
        PacketFd::open(fd, true)
    }

    fn open(fd: OwnedFd, vnet_hdr: bool) -> io::Result<PacketFd> {
        set_nonblocking(&fd)?;
        // SAFETY: an `OwnedFd` stays open and always returns the same raw fd until it
        // is dropped or given back by `into_inner`.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(PacketFd { fd, vnet_hdr })
    }

    /// Whether packets carry a virtio-net header.
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
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

    /// Writes one IP packet, behind a virtio-net header that asks for nothing if the fd
    /// has headers. A full device queue drops the packet, as a NIC would.
    pub fn write(&self, packet: &[u8]) -> io::Result<()> {
        if self.vnet_hdr {
            let hdr = crate::offload::VirtioNetHdr::NONE.to_bytes();
            retry(|| writev2(self.fd.get_ref().as_raw_fd(), &hdr, packet))
        } else {
            self.write_raw(packet)
        }
    }

    /// Writes `buf` as it is: on an fd with headers, a virtio-net header and a packet.
    pub(crate) fn write_raw(&self, buf: &[u8]) -> io::Result<()> {
        retry(|| write(self.fd.get_ref().as_raw_fd(), buf))
    }
}

/// Repeats a write interrupted by a signal.
fn retry(mut op: impl FnMut() -> io::Result<usize>) -> io::Result<()> {
    loop {
        match op() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One `writev(2)` of `a` then `b` to `fd`.
fn writev2(fd: RawFd, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    // SAFETY: both iovecs point at readable buffers that outlive the call; writev only
    // reads through them.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
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
                // Fallible where `c_long` is 32 bits (32-bit Android); nanoseconds fit.
                #[allow(clippy::unnecessary_fallible_conversions)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_liveness_options_are_set() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let fd = socket.as_raw_fd();
        set_tcp_liveness(fd, Duration::from_millis(7500)).expect("options");
        let get = |level, option| get_option(fd, level, option).expect("getsockopt");
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), KEEPALIVE_IDLE_S);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), KEEPALIVE_COUNT);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT), 7500);
    }
}
