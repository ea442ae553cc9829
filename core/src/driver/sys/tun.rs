//! Linux TUN/TAP devices: `TUNSETIFF`, `IFF_VNET_HDR` with `TUNSETOFFLOAD`, and setting
//! a link up.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

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
    let flags = match kind {
        DeviceKind::Tun => libc::IFF_TUN,
        DeviceKind::Tap => libc::IFF_TAP,
    };
    open_dev_net_tun(name, flags)
}

/// Offloads TUN reads may use: checksum and TCP segmentation always, UDP segmentation
/// where the kernel has it (6.2+).
#[cfg(target_os = "linux")]
const TUN_OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
#[cfg(target_os = "linux")]
const TUN_UDP_OFFLOADS: libc::c_uint = libc::TUN_F_USO4 | libc::TUN_F_USO6;

/// What [`open_tun_offload`] got from the kernel.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunOffload {
    /// `IFF_VNET_HDR` with checksum, TSO4/TSO6 and USO4/USO6.
    TcpUdp,
    /// `IFF_VNET_HDR` with checksum and TSO4/TSO6 (a kernel without USO).
    Tcp,
    /// A plain TUN: the kernel refused the header or the offloads.
    None,
}

#[cfg(target_os = "linux")]
impl TunOffload {
    /// Whether packets on the fd carry a virtio-net header ([`PacketFd::with_vnet_hdr`](super::PacketFd::with_vnet_hdr)).
    pub fn vnet_hdr(self) -> bool {
        self != TunOffload::None
    }
}

/// Opens (creating if needed) the Linux TUN device `name` with `IFF_VNET_HDR` and
/// segmentation offloads (`TUNSETOFFLOAD`): reads may then return TCP (and UDP)
/// super-segments of up to 64 KiB. Falls back to USO off, then to a plain TUN, when
/// the kernel refuses. Returns the fd, the device's name and what was turned on.
#[cfg(target_os = "linux")]
pub fn open_tun_offload(name: &str) -> io::Result<(OwnedFd, String, TunOffload)> {
    let (fd, actual) = match open_dev_net_tun(name, libc::IFF_TUN | libc::IFF_VNET_HDR) {
        Ok(opened) => opened,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            let (fd, actual) = open_dev_net_tun(name, libc::IFF_TUN)?;
            return Ok((fd, actual, TunOffload::None));
        }
        Err(e) => return Err(e),
    };
    for (offloads, got) in [
        (TUN_OFFLOADS | TUN_UDP_OFFLOADS, TunOffload::TcpUdp),
        (TUN_OFFLOADS, TunOffload::Tcp),
    ] {
        // SAFETY: TUNSETOFFLOAD takes its flags by value.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(offloads),
            )
        };
        if rc == 0 {
            return Ok((fd, actual, got));
        }
    }
    tracing::info!("TUN {actual}: no offloads; a plain TUN");
    // The header cannot be turned off on an attached fd: close it (a device this call
    // created goes away) and open the device again without.
    drop(fd);
    let (fd, actual) = open_dev_net_tun(&actual, libc::IFF_TUN)?;
    Ok((fd, actual, TunOffload::None))
}

/// `open("/dev/net/tun")` and `TUNSETIFF` with `IFF_NO_PI | flags`.
#[cfg(target_os = "linux")]
fn open_dev_net_tun(name: &str, flags: libc::c_int) -> io::Result<(OwnedFd, String)> {
    use std::os::fd::FromRawFd;

    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = (libc::IFF_NO_PI | flags) as libc::c_short;
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

/// Whether `fd` is a Linux TUN/TAP fd opened with `IFF_VNET_HDR` (`TUNGETIFF`): its
/// packets then carry a virtio-net header. False for any other fd (the ioctl fails).
#[cfg(target_os = "linux")]
pub fn has_vnet_hdr(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    // SAFETY: all-zero is a valid `ifreq`.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF writes the name and flags of the `struct ifreq` it is given,
    // which lives for the whole call; on any other fd it fails without writing.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF, &mut req) };
    // SAFETY: the flags member is the one TUNGETIFF wrote (or the zero it started as).
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    rc == 0 && libc::c_int::from(flags) & libc::IFF_VNET_HDR != 0
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

    /// A TUN opened with the header is told from one without, and from any other fd.
    /// Needs `/dev/net/tun` and CAP_NET_ADMIN (the test suite runs as root).
    #[test]
    fn a_tun_with_virtio_net_headers_is_recognised() {
        use std::os::fd::AsFd;
        let pid = std::process::id() % 100_000;
        let (offload, _, got) =
            open_tun_offload(&format!("tpvh{pid}")).expect("/dev/net/tun as root");
        // A kernel that refuses the offloads hands back a plain TUN: told as plain.
        assert_eq!(has_vnet_hdr(offload.as_fd()), got.vnet_hdr(), "{got:?}");
        let (plain, _) =
            open_tun_device(&format!("tpvp{pid}"), DeviceKind::Tun).expect("/dev/net/tun");
        assert!(!has_vnet_hdr(plain.as_fd()));
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert!(!has_vnet_hdr(socket.as_fd()));
    }
}
