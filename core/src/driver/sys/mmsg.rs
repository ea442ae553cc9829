//! Batches of datagrams: `recvmmsg`, and `sendmmsg` whose messages may each carry a run
//! of equal-size datagrams for UDP GSO (`UDP_SEGMENT`).
//!
//! Why not `quinn-udp`, which does batched UDP with GSO/GRO and falls back when a device
//! refuses GSO: its `Transmit` is one contiguous buffer of equal-size datagrams, so the
//! frames the `Tap` wrote in place, each in its own buffer behind its own headroom,
//! would be copied into one buffer per send; one `Transmit` is one `sendmsg` (0.5 has no
//! `sendmmsg`), so a batch of mixed sizes would cost a syscall per run instead of one;
//! its receive turns on `UDP_GRO`, which puts many frames in one buffer where the runner
//! takes one frame per buffer; and 0.6 needs a newer Rust than the workspace's 1.85.
//! Here a GSO run is one message with one iovec per frame, gathered from where the
//! frames already are.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

/// The arrays a `recvmmsg`/`sendmmsg` call needs, kept between calls so a batch
/// allocates nothing. They are refilled by every call (the headers point into the other
/// arrays and the caller's buffers, so they cannot be kept) and cleared before it returns.
#[derive(Default)]
pub(crate) struct MmsgScratch {
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// The runs of a GSO send: (datagrams, size of each).
    runs: Vec<(usize, usize)>,
    cmsgs: Vec<SegmentCmsg>,
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
        self.runs.clear();
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
    let MmsgScratch {
        addrs, iovs, msgs, ..
    } = scratch;
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

/// Most datagrams in one UDP GSO send (the kernel's `UDP_MAX_SEGMENTS`).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one UDP GSO send: the payload of one maximal UDP datagram.
const GSO_MAX_BYTES: usize = 65507;
/// `UDP_SEGMENT` (`linux/udp.h`): the size of each datagram of a GSO send.
const UDP_SEGMENT: libc::c_int = 103;

/// Room for one control message holding a `u16`, aligned for `cmsghdr`.
#[derive(Clone, Copy, Default)]
#[repr(C, align(8))]
struct SegmentCmsg([u8; 32]);

/// Sends `bufs[i][start..end]` for each `(i, end)` with one `sendmmsg`, to `dest` or
/// to the connected peer. Returns how many items were sent.
///
/// With `gso`, consecutive items of the same length (the last of a run may be shorter)
/// go as one message carrying `UDP_SEGMENT`: one trip through the stack for up to
/// [`GSO_MAX_SEGMENTS`] datagrams, gathered from their own buffers (one iovec each), so
/// nothing is copied. A kernel may refuse such a message: `EIO` where it cannot
/// checksum the segments, `EINVAL` where a datagram exceeds the path MTU; the caller
/// then sends again without `gso`.
pub(crate) fn send_batch_to(
    fd: RawFd,
    bufs: &[Vec<u8>],
    items: &[(usize, usize)],
    start: usize,
    dest: Option<SocketAddr>,
    gso: bool,
    scratch: &mut MmsgScratch,
) -> io::Result<usize> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let name_len = dest.map_or(0, |d| sockaddr_from(d, &mut name));
    let name_ptr: *mut libc::sockaddr_storage = &mut name;
    let MmsgScratch {
        iovs,
        msgs,
        runs,
        cmsgs,
        ..
    } = scratch;
    iovs.extend(items.iter().map(|&(i, end)| libc::iovec {
        iov_base: bufs[i][start..end].as_ptr() as *mut libc::c_void,
        iov_len: end - start,
    }));
    runs_of(iovs, gso, runs);
    cmsgs.resize(runs.len(), SegmentCmsg::default());
    // `iovs` and `cmsgs` are complete: the pointers taken into them stay valid while
    // `msgs` grows.
    let mut first = 0;
    for (&(count, size), cmsg) in runs.iter().zip(cmsgs.iter_mut()) {
        // SAFETY: all-zero is a valid mmsghdr.
        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
        m.msg_hdr.msg_iov = &mut iovs[first];
        m.msg_hdr.msg_iovlen = count as _;
        if name_len > 0 {
            m.msg_hdr.msg_name = name_ptr.cast();
            m.msg_hdr.msg_namelen = name_len;
        }
        if count > 1 {
            set_segment(&mut m.msg_hdr, cmsg, size);
        }
        msgs.push(m);
        first += count;
    }
    // SAFETY: `msgs` holds valid headers, each naming iovecs over readable buffers of
    // `bufs`, at most one control message in `cmsgs` and, if any, the local `name`; all
    // outlive the call and sendmmsg only reads them (the iovecs' `*mut` is the C type's,
    // nothing is written through it).
    let sent =
        unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as _, libc::MSG_DONTWAIT) };
    let result = if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        let sent = sent.unsigned_abs() as usize;
        Ok(runs.iter().take(sent).map(|&(count, _)| count).sum())
    };
    scratch.clear();
    result
}

/// Groups `iovs` into runs `(count, size)` for [`send_batch_to`]: without `gso`, one
/// datagram each; with it, as many equal-size datagrams as one GSO send takes, the last
/// possibly shorter.
fn runs_of(iovs: &[libc::iovec], gso: bool, runs: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i < iovs.len() {
        let size = iovs[i].iov_len;
        let (mut count, mut bytes) = (1, size);
        while gso && i + count < iovs.len() && count < GSO_MAX_SEGMENTS && size > 0 {
            let next = iovs[i + count].iov_len;
            if next > size || next == 0 || bytes + next > GSO_MAX_BYTES {
                break;
            }
            count += 1;
            bytes += next;
            if next < size {
                break;
            }
        }
        runs.push((count, size));
        i += count;
    }
}

/// Puts one `UDP_SEGMENT` control message with `size` into `hdr`, in `room`.
fn set_segment(hdr: &mut libc::msghdr, room: &mut SegmentCmsg, size: usize) {
    let size = u16::try_from(size).unwrap_or(u16::MAX);
    hdr.msg_control = room.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is arithmetic on a constant size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as _) } as usize;
    debug_assert!(space <= room.0.len());
    hdr.msg_controllen = space as _;
    // SAFETY: `hdr` names `room`, 8-aligned and at least CMSG_SPACE(2) bytes long, so
    // CMSG_FIRSTHDR returns a pointer to its start, valid for a cmsghdr and its data;
    // the data is written unaligned.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as _) as _;
        libc::CMSG_DATA(cmsg).cast::<u16>().write_unaligned(size);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn iovs(lens: &[usize]) -> Vec<libc::iovec> {
        lens.iter()
            .map(|&len| libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: len,
            })
            .collect()
    }

    fn runs(lens: &[usize], gso: bool) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        runs_of(&iovs(lens), gso, &mut out);
        out
    }

    #[test]
    fn equal_sizes_make_one_run_the_last_may_be_shorter() {
        assert_eq!(runs(&[100, 100, 100, 40], true), [(4, 100)]);
        assert_eq!(runs(&[100, 100, 40, 100], true), [(3, 100), (1, 100)]);
        assert_eq!(runs(&[40, 100, 100], true), [(1, 40), (2, 100)]);
        assert_eq!(runs(&[100, 100], false), [(1, 100), (1, 100)]);
        assert_eq!(runs(&[], true), []);
        // Bounded by the segment count and by one UDP datagram's payload.
        assert_eq!(runs(&[10; 70], true), [(64, 10), (6, 10)]);
        assert_eq!(runs(&[1522; 50], true), [(43, 1522), (7, 1522)]);
    }

    #[test]
    fn a_gso_send_arrives_as_separate_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let lens = [1000, 1000, 1000, 300, 700, 700];
        let bufs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let mut b = vec![0xee; 8 + len];
                b[8..].fill(i as u8);
                b
            })
            .collect();
        let items: Vec<(usize, usize)> =
            bufs.iter().enumerate().map(|(i, b)| (i, b.len())).collect();
        let dest = rx.local_addr().ok();
        let mut scratch = MmsgScratch::default();
        let mut sent = 0;
        while sent < items.len() {
            sent += send_batch_to(
                tx.as_raw_fd(),
                &bufs,
                &items[sent..],
                8,
                dest,
                true,
                &mut scratch,
            )
            .expect("loopback takes GSO");
        }
        let mut buf = [0; 2000];
        for (i, &len) in lens.iter().enumerate() {
            let n = rx.recv(&mut buf).expect("datagram");
            assert_eq!(n, len, "datagram {i}");
            assert!(buf[..n].iter().all(|&b| b == i as u8), "datagram {i}");
        }
    }
}
