//! A packet device behind an owned, non-blocking file descriptor: a TUN (IP packets)
//! or a TAP (Ethernet frames). The same code serves an Android `VpnService` fd and a
//! Linux `/dev/net/tun` fd.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// One packet per `read`/`write` on an owned fd, under tokio's reactor.
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
        loop {
            let mut guard = self.fd.readable().await?;
            let mut n = 0;
            while n < bufs.len() {
                let buf = &mut bufs[n][offset..];
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

fn read(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes for the whole call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

fn write(fd: i32, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes for the whole call.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on an fd we own, with integer arguments only.
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

/// Kind of device [`open_tun_device`] creates.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Layer 3: IP packets (`IFF_TUN`).
    Tun,
    /// Layer 2: Ethernet frames (`IFF_TAP`).
    Tap,
}

/// Opens (creating if needed) the Linux TUN/TAP device `name` through `/dev/net/tun`
/// with `IFF_NO_PI`, non-blocking. Returns the fd and the name the kernel gave it.
/// Needs `CAP_NET_ADMIN` to create a device.
#[cfg(target_os = "linux")]
pub fn open_tun_device(name: &str, kind: DeviceKind) -> io::Result<(OwnedFd, String)> {
    use std::os::fd::FromRawFd;

    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_TAP: libc::c_short = 0x0002;
    const IFF_NO_PI: libc::c_short = 0x1000;

    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }

    if name.len() >= libc::IFNAMSIZ || name.bytes().any(|b| b == 0 || b == b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}"),
        ));
    }
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
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_NO_PI
            | match kind {
                DeviceKind::Tun => IFF_TUN,
                DeviceKind::Tap => IFF_TAP,
            },
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
    }
    let len = req
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(req.name.len());
    let actual = String::from_utf8_lossy(&req.name[..len]).into_owned();
    Ok((fd, actual))
}

/// Sets the Linux interface `name` administratively up (`SIOCSIFFLAGS` with `IFF_UP`).
#[cfg(target_os = "linux")]
pub fn set_link_up(name: &str) -> io::Result<()> {
    use std::os::fd::FromRawFd;

    #[repr(C)]
    struct IfReqFlags {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: plain integer arguments.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write a `struct ifreq` with the flags
    // member, which `IfReqFlags` lays out.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
