//! Software segmentation of what a TUN with TSO/USO hands over: a TCP super-segment into
//! MSS-sized segments, a UDP super-datagram into `gso_size`-sized datagrams, as the
//! kernel's own GSO would (`tcp_gso_segment`, `__udp_gso_segment`); and completion of the
//! partial checksum of a packet that was not segmented.

use etherparse::checksum::Sum16BitWords;

use super::{
    is_tcp, sum, transport_checksum, GsoType, IpLayout, OffloadError, VirtioNetHdr, PROTO_UDP,
    TCP_CSUM_OFFSET, TCP_MIN_HEADER_LEN, UDP_CSUM_OFFSET, UDP_HEADER_LEN,
};

/// TCP flag bits (byte 13 of the header).
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// A super-segment read from the TUN, checked and ready to be split.
///
/// ```
/// # use tapemu::offload::{SuperSegment, VirtioNetHdr};
/// # fn send(_: &[u8]) {}
/// # fn demo(read: &[u8], bufs: &mut [Vec<u8>]) -> Result<(), tapemu::offload::OffloadError> {
/// let hdr = VirtioNetHdr::parse(read)?;
/// let sup = SuperSegment::parse(&hdr, &read[VirtioNetHdr::LEN..])?;
/// // 22 bytes of headroom: VXLAN (8) and Ethernet (14) headers go in front of each.
/// let n = sup.write_all(bufs.iter_mut().map(|b| b.as_mut_slice()), 22)?;
/// for (i, buf) in bufs[..n].iter().enumerate() {
///     send(&buf[..22 + sup.segment_len(i)]);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SuperSegment<'a> {
    packet: &'a [u8],
    ip: IpLayout,
    /// IP header, extensions and transport header: what every segment repeats.
    headers_len: usize,
    gso_size: usize,
    count: usize,
}

impl<'a> SuperSegment<'a> {
    /// Checks `packet` (what follows the virtio-net header) against its header `hdr`.
    ///
    /// The IP and transport headers are read from the packet, not taken from `hdr_len`,
    /// which the kernel may set to the whole linear part of the buffer. The IP length
    /// fields of the super-segment are ignored: every segment gets its own.
    pub fn parse(hdr: &VirtioNetHdr, packet: &'a [u8]) -> Result<SuperSegment<'a>, OffloadError> {
        let (want_v6, want_tcp) = match hdr.gso_type {
            GsoType::None => return Err(OffloadError::GsoMismatch),
            GsoType::TcpV4 => (Some(false), true),
            GsoType::TcpV6 => (Some(true), true),
            GsoType::UdpL4 => (None, false),
        };
        if hdr.gso_size == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        let ip = IpLayout::parse(packet)?;
        let proto_ok = if want_tcp {
            is_tcp(ip.proto)
        } else {
            ip.proto == PROTO_UDP
        };
        if want_v6.is_some_and(|v6| v6 != ip.v6) || !proto_ok {
            return Err(OffloadError::GsoMismatch);
        }
        let l4 = ip.l4_offset;
        let (l4_header_len, csum_offset) = if want_tcp {
            let data_offset = packet.get(l4 + 12).ok_or(OffloadError::Malformed)? >> 4;
            (usize::from(data_offset) * 4, TCP_CSUM_OFFSET)
        } else {
            (UDP_HEADER_LEN, UDP_CSUM_OFFSET)
        };
        if want_tcp && l4_header_len < TCP_MIN_HEADER_LEN {
            return Err(OffloadError::Malformed);
        }
        if hdr.needs_csum && (usize::from(hdr.csum_start) != l4 || hdr.csum_offset != csum_offset) {
            return Err(OffloadError::BadChecksumOffsets);
        }
        let headers_len = l4 + l4_header_len;
        let gso_size = usize::from(hdr.gso_size);
        // No payload is no super-segment; a segment must fit a 16-bit IP length.
        let payload_len = packet.len().saturating_sub(headers_len);
        if payload_len == 0 || headers_len + gso_size.min(payload_len) > usize::from(u16::MAX) {
            return Err(OffloadError::Malformed);
        }
        Ok(SuperSegment {
            packet,
            ip,
            headers_len,
            gso_size,
            count: payload_len.div_ceil(gso_size),
        })
    }

    /// How many segments it splits into.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `true` for IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.ip.v6
    }

    /// Length of segment `index` (an IP packet), or 0 past the last.
    pub fn segment_len(&self, index: usize) -> usize {
        self.payload_range(index)
            .map_or(0, |r| self.headers_len + r.len())
    }

    /// Length of the first, longest, segment: with [`Self::count`], what a contiguous
    /// UDP GSO buffer needs per segment.
    pub fn max_segment_len(&self) -> usize {
        self.segment_len(0)
    }

    /// Where segment `index`'s payload is in the super-segment.
    fn payload_range(&self, index: usize) -> Option<std::ops::Range<usize>> {
        let start = self
            .headers_len
            .checked_add(index.checked_mul(self.gso_size)?)?;
        (start < self.packet.len()).then(|| start..self.packet.len().min(start + self.gso_size))
    }

    /// Writes segment `index` at the start of `out` and returns its length.
    ///
    /// IPv4 identification is the super-segment's plus `index`; lengths and the IPv4
    /// header checksum are rewritten; a TCP segment's sequence number is advanced by the
    /// payload before it, CWR is kept on the first segment only, FIN and PSH on the last
    /// only; each UDP datagram gets its own length. The transport checksum is computed
    /// in full.
    pub fn write(&self, index: usize, out: &mut [u8]) -> Result<usize, OffloadError> {
        let payload = self
            .payload_range(index)
            .ok_or(OffloadError::TooFewBuffers {
                needed: index + 1,
                available: self.count,
            })?;
        let offset = payload.start - self.headers_len;
        let len = self.headers_len + payload.len();
        let available = out.len();
        let out = out.get_mut(..len).ok_or(OffloadError::BufferTooSmall {
            needed: len,
            len: available,
        })?;
        let headers = &self.packet[..self.headers_len];
        out[..self.headers_len].copy_from_slice(headers);
        // The payload's share of the checksum is taken as it is copied; the headers'
        // is added once they are final, below.
        let payload_sum =
            sum::copy_and_sum(&mut out[self.headers_len..], &self.packet[payload.clone()]);

        let ip = &self.ip;
        if !ip.v6 {
            let id = u16::from_be_bytes([out[4], out[5]]).wrapping_add(index as u16);
            out[4..6].copy_from_slice(&id.to_be_bytes());
        }
        ip.set_length(out, len);

        let l4 = ip.l4_offset;
        let csum_at = if is_tcp(ip.proto) {
            let seq = u32::from_be_bytes([out[l4 + 4], out[l4 + 5], out[l4 + 6], out[l4 + 7]]);
            // A super-segment is at most 64 KiB, so the offset fits in 32 bits.
            let seq = seq.wrapping_add(offset as u32);
            out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            if index > 0 {
                out[l4 + 13] &= !CWR;
            }
            if payload.end < self.packet.len() {
                out[l4 + 13] &= !(FIN | PSH);
            }
            l4 + usize::from(TCP_CSUM_OFFSET)
        } else {
            out[l4 + 4..l4 + 6].copy_from_slice(&((len - l4) as u16).to_be_bytes());
            l4 + usize::from(UDP_CSUM_OFFSET)
        };
        out[csum_at..csum_at + 2].fill(0);
        let sum = ip
            .pseudo_header_sum(out, len - l4)
            .add_slice(&out[l4..self.headers_len])
            .add_2bytes(payload_sum);
        let csum = transport_checksum(&sum, ip.proto);
        out[csum_at..csum_at + 2].copy_from_slice(&csum.to_be_bytes());
        Ok(len)
    }

    /// Writes every segment, segment `i` into the `i`th buffer of `outs` at `headroom`
    /// (`buf[headroom..headroom + segment_len(i)]`), and returns how many it wrote.
    ///
    /// `outs` may be separate buffers or the chunks of one buffer
    /// (`buf.chunks_mut(headroom + max_segment_len())`), the layout a UDP GSO send
    /// takes. On an error, the segments before the failing one are already written.
    pub fn write_all<'b>(
        &self,
        outs: impl IntoIterator<Item = &'b mut [u8]>,
        headroom: usize,
    ) -> Result<usize, OffloadError> {
        let mut written = 0;
        for (index, out) in outs.into_iter().take(self.count).enumerate() {
            let needed = headroom + self.segment_len(index);
            let len = out.len();
            let out = out
                .get_mut(headroom..needed)
                .ok_or(OffloadError::BufferTooSmall { needed, len })?;
            self.write(index, out)?;
            written += 1;
        }
        if written < self.count {
            return Err(OffloadError::TooFewBuffers {
                needed: self.count,
                available: written,
            });
        }
        Ok(written)
    }
}

/// Completes, in place, the transport checksum of a packet read with a header that asks
/// for it (`needs_csum` without GSO): the checksum field holds the pseudo-header sum,
/// and the rest is summed from `csum_start` on. Does nothing if `hdr` does not ask.
pub fn complete_checksum(hdr: &VirtioNetHdr, packet: &mut [u8]) -> Result<(), OffloadError> {
    if !hdr.needs_csum {
        return Ok(());
    }
    if hdr.gso_type != GsoType::None {
        return Err(OffloadError::GsoMismatch);
    }
    let ip = IpLayout::parse(packet)?;
    let csum_offset = match ip.proto {
        p if is_tcp(p) => TCP_CSUM_OFFSET,
        PROTO_UDP => UDP_CSUM_OFFSET,
        _ => return Err(OffloadError::BadChecksumOffsets),
    };
    if usize::from(hdr.csum_start) != ip.l4_offset || hdr.csum_offset != csum_offset {
        return Err(OffloadError::BadChecksumOffsets);
    }
    let at = ip.l4_offset + usize::from(csum_offset);
    if packet.len() < at + 2 {
        return Err(OffloadError::Malformed);
    }
    let sum = Sum16BitWords::new().add_2bytes(sum::payload_sum(&packet[ip.l4_offset..]));
    let csum = transport_checksum(&sum, ip.proto);
    packet[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}
