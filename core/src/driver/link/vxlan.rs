//! `vxlan://`: RFC 7348, as the Linux kernel's `vxlan` device: an 8-byte header (I flag,
//! 24-bit VNI) in front of each frame, in UDP datagrams to and from one peer VTEP. The
//! socket is not connected (the kernel's device answers from its own port), so frames
//! are accepted from the peer's IP only. The socket is [`Datagram`]'s: reopened when its
//! route is lost.

use std::io;
use std::net::SocketAddr;

use super::udp::{Datagram, LocalPort};
use super::url::Remote;
use super::{LinkOptions, LinkState, MAX_FRAME};

/// The IANA VXLAN port, the default of `vxlan://HOST`.
pub const VXLAN_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub(super) const HEADER_LEN: usize = 8;

/// An open `vxlan://` link.
pub(super) struct VxlanLink {
    socket: Datagram,
    vni: u32,
    /// For frames sent without headroom.
    scratch: Vec<u8>,
}

impl VxlanLink {
    pub(super) async fn open(
        remote: Remote,
        vni: u32,
        bind: Option<SocketAddr>,
        options: LinkOptions,
    ) -> io::Result<VxlanLink> {
        Ok(VxlanLink {
            socket: Datagram::open(remote, bind, LocalPort::PeersPort, options).await?,
            vni,
            scratch: vec![0; HEADER_LEN + MAX_FRAME],
        })
    }

    pub(super) fn reopen(&mut self) {
        self.socket.reopen();
    }

    pub(super) fn is_open(&self) -> bool {
        self.socket.is_open()
    }

    pub(super) async fn recv_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        spans: &mut [(usize, usize)],
        link: &mut LinkState,
    ) -> io::Result<usize> {
        let n = self.socket.recv(bufs, spans, link).await?;
        let peer = self.socket.peer.ip();
        for i in 0..n {
            let (_, len) = spans[i];
            let from = self.socket.batch.from.get(i).copied().flatten();
            let ok = from.is_some_and(|from| from.ip() == peer)
                && bufs[i]
                    .get(..len)
                    .and_then(|d| vxlan_decap(d, self.vni))
                    .is_some();
            spans[i] = if ok { (HEADER_LEN, len) } else { (0, 0) };
        }
        Ok(n)
    }

    /// Sends `buf[headroom..]`, its header written into the headroom when there is room,
    /// else copied behind one in the scratch buffer.
    pub(super) async fn send(
        &mut self,
        buf: &mut [u8],
        headroom: usize,
        link: &mut LinkState,
    ) -> io::Result<()> {
        let frame_len = buf.len() - headroom;
        let datagram: &[u8] = if headroom >= HEADER_LEN {
            let start = headroom - HEADER_LEN;
            buf[start..headroom].copy_from_slice(&vxlan_header(self.vni));
            &buf[start..]
        } else {
            let Some(room) = self.scratch.get_mut(..HEADER_LEN + frame_len) else {
                link.dropped_out += 1;
                return Ok(());
            };
            room[..HEADER_LEN].copy_from_slice(&vxlan_header(self.vni));
            room[HEADER_LEN..].copy_from_slice(&buf[headroom..]);
            room
        };
        self.socket.send(datagram, link).await
    }

    /// Sends a batch whose buffers all have at least [`HEADER_LEN`] bytes of headroom.
    pub(super) async fn send_batch(
        &mut self,
        bufs: &mut [Vec<u8>],
        items: &[(usize, usize)],
        headroom: usize,
        link: &mut LinkState,
    ) -> io::Result<()> {
        let start = headroom - HEADER_LEN;
        for &(i, _) in items {
            bufs[i][start..headroom].copy_from_slice(&vxlan_header(self.vni));
        }
        self.socket.send_batch(bufs, items, start, link).await
    }
}

/// The RFC 7348 header for `vni`: flags with the I bit, the VNI, reserved bytes zero.
pub fn vxlan_header(vni: u32) -> [u8; HEADER_LEN] {
    let v = vni.to_be_bytes();
    [0x08, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The Ethernet frame inside a VXLAN datagram, if its I flag is set and its VNI is
/// `vni`.
pub fn vxlan_decap(datagram: &[u8], vni: u32) -> Option<&[u8]> {
    let header = datagram.get(..HEADER_LEN)?;
    let got = u32::from_be_bytes([0, header[4], header[5], header[6]]);
    (header[0] & 0x08 != 0 && got == vni).then(|| &datagram[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

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
