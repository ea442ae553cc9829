//! `fd://N`: frames on a descriptor the embedder hands over, one Ethernet frame per
//! datagram (an `AF_UNIX` `SOCK_DGRAM` or `SOCK_SEQPACKET` socket, e.g. one end of
//! [`frame_socket_pair`](crate::driver::frame_socket_pair)) or per `read`/`write` (a
//! TAP fd). The other end is what a VPN engine written for a TAP device (OpenVPN
//! `dev tap`, n2n, tinc in switch mode) reads and writes: no JNI, no per-frame upcall.
//!
//! Ownership: the link takes the descriptor when it opens, and closes it when the driver
//! ends (or when opening fails). A number parsed from a URL must therefore be an open
//! descriptor nothing else will close; [`LinkSpec::fd`] hands over an [`OwnedFd`].
//!
//! Sending never waits: a peer whose receive queue is full drops the frame (counted in
//! `link_dropped_out`), as a NIC would. The peer closing its end, or a read error, is
//! fatal for the link.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::frames::FramePort;
use super::{sent_or_dropped, LinkSpec};
use crate::driver::sys;

/// The descriptor of an `fd://` link: a number from a URL, or an owned fd from
/// [`LinkSpec::fd`].
#[derive(Debug)]
pub struct FdSpec(Source);

#[derive(Debug)]
enum Source {
    Number(RawFd),
    Owned(OwnedFd),
}

impl FdSpec {
    /// The descriptor's number, as `fd://N` shows it.
    pub fn number(&self) -> RawFd {
        match &self.0 {
            Source::Number(n) => *n,
            Source::Owned(fd) => fd.as_raw_fd(),
        }
    }

    /// The number parsed from `fd://N`; taken over only when the link opens.
    pub(super) fn from_number(n: RawFd) -> FdSpec {
        FdSpec(Source::Number(n))
    }
}

impl LinkSpec {
    /// An `fd://` link on `fd`, which it owns from now on: one frame per datagram on a
    /// datagram or seqpacket socket, or per `read`/`write` on a TAP fd.
    pub fn fd(fd: OwnedFd) -> LinkSpec {
        LinkSpec::Fd(FdSpec(Source::Owned(fd)))
    }
}

/// An open `fd://` link.
pub(super) struct FdLink {
    port: FramePort,
}

impl FdLink {
    /// Takes the descriptor and checks that it carries frames.
    pub(super) fn open(spec: FdSpec) -> io::Result<FdLink> {
        let fd = match spec.0 {
            Source::Owned(fd) => fd,
            Source::Number(n) => sys::adopt_fd(n)?,
        };
        sys::check_frame_fd(&fd)?;
        sys::grow_buffers(fd.as_raw_fd());
        Ok(FdLink {
            port: FramePort::new(fd)?,
        })
    }

    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
    ) -> io::Result<usize> {
        self.port.recv_batch(bufs, spans).await
    }

    pub(super) fn send(&mut self, frame: &[u8], dropped: &mut u64) -> io::Result<()> {
        match self.port.write(frame) {
            // A full peer queue on a socket: drop, as a full TAP queue does.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *dropped += 1;
                Ok(())
            }
            other => sent_or_dropped(other, dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::sys::PacketFd;

    #[test]
    fn a_closed_number_is_refused_and_nothing_is_closed() {
        let e = FdLink::open(FdSpec::from_number(1 << 20))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("not an open descriptor"), "{e}");
        assert!(FdLink::open(FdSpec::from_number(-1)).is_err());
    }

    #[test]
    fn stream_sockets_and_files_are_refused() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let e = FdLink::open(FdSpec(Source::Owned(a.into())))
            .err()
            .expect("stream refused");
        assert!(e.to_string().contains("stream"), "{e}");
        let file = std::fs::File::open("/proc/self/status").expect("file");
        let e = FdLink::open(FdSpec(Source::Owned(file.into())))
            .err()
            .expect("file refused");
        assert!(e.to_string().contains("socket"), "{e}");
    }

    #[tokio::test]
    async fn datagram_pair_carries_frames_and_a_full_peer_drops() {
        let (ours, theirs) = crate::driver::frame_socket_pair().expect("pair");
        let mut link = FdLink::open(FdSpec(Source::Owned(ours))).expect("open");
        let peer = PacketFd::new(theirs).expect("peer");
        peer.write(&[7u8; 60]).expect("write");
        let mut bufs = vec![vec![0u8; 2048]; 4];
        let mut spans = [(0, 0); 4];
        let n = link.recv_batch(&mut bufs, &mut spans).await.expect("recv");
        assert_eq!((n, spans[0]), (1, (0, 60)));
        let mut dropped = 0;
        // Nobody reads the peer: its queue fills, frames are dropped, never waited for.
        for _ in 0..100_000 {
            link.send(&[1u8; 1514], &mut dropped).expect("never fatal");
            if dropped > 0 {
                break;
            }
        }
        assert!(dropped > 0, "a full peer queue drops");
        let mut lens = [0usize; 1];
        let mut one = vec![vec![0u8; 2048]];
        assert_eq!(
            peer.read_batch(&mut one, 0, &mut lens).await.expect("read"),
            1
        );
        assert_eq!(lens[0], 1514);
    }
}
