//! Segmentation and receive offloads for a TUN opened with `IFF_VNET_HDR`: the pure
//! building blocks, with no syscalls.
//!
//! With TSO/USO turned on, one TUN read returns a super-segment of up to 64 KiB behind a
//! [`VirtioNetHdr`] instead of one MTU-sized packet. [`SuperSegment`] splits it into
//! MTU-sized IP packets written straight into the caller's buffers, each behind the
//! headroom the Ethernet (and VXLAN) header needs, so the frames can go out with one
//! UDP GSO send. [`complete_checksum`] finishes the partial checksum of a packet the
//! kernel did not segment. On the way back, [`Gro`] merges in-order TCP segments of one
//! flow into a super-segment with a virtio-net header for one TUN write; everything
//! else passes through untouched, and no flow is ever reordered.
//!
//! # Why not a crate
//!
//! `tun-rs` (2.8) has the same algorithms (`gso_split`, `handle_gro`, `VirtioNetHdr`),
//! ported from wireguard-go, but they do not fit here:
//! - its `offload` module is `pub(crate)`; `gso_split`, `handle_gro` and `VirtioNetHdr`
//!   are re-exported `#[doc(hidden)]`, outside its documented, semver-covered API;
//! - the module is compiled for `target_os = "linux"` only, and Android (`target_os =
//!   "android"`) is a target of this crate;
//! - its GRO coalesces in place by growing the first packet's buffer (`ExpandBuffer`, a
//!   `Vec`/`BytesMut` resize), copies every packet into a fresh `Vec` first, and its flow
//!   table doubles without bound; memory here must be bounded and allocation-free after
//!   warm-up;
//! - a packet its GRO cannot merge is written without flushing its flow's pending
//!   segment, so a later segment of the flow can overtake it (a bare ACK, say); here a
//!   non-mergeable packet of a pending flow flushes that flow first;
//! - it would bring a TUN device library (nix, netconfig, ahash, bytes, log) into the
//!   sans-IO core for ~600 lines of logic.
//!
//! Its `gso_split` does take an output offset (the headroom), so the split itself would
//! have fit; the parsing here leans on etherparse's header slices and its
//! [`Sum16BitWords`] checksum instead of offsets and a checksum of our own.
//!
//! Batched UDP with GSO/GRO (`quinn-udp`) is I/O and belongs to the driver, not here; see
//! "Offloads" in `docs/DESIGN.md`.

use etherparse::checksum::Sum16BitWords;
use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv6ExtensionSlice, Ipv6ExtensionsSlice};

mod gro;
mod segment;
mod sum;
mod virtio;

pub use gro::{Gro, GroConfig, GroStats, Push};
pub use segment::{complete_checksum, SuperSegment};
pub use virtio::{GsoType, VirtioNetHdr};

/// Why a super-segment or a packet's offload request was refused. The packet is not
/// usable as it is: the caller drops and counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Fewer than [`VirtioNetHdr::LEN`] bytes in front of the packet.
    #[error("virtio-net header truncated")]
    TruncatedHeader,
    /// A GSO type this module does not segment (e.g. UFO, `VIRTIO_NET_HDR_GSO_UDP`).
    #[error("unsupported GSO type {0}")]
    UnsupportedGsoType(u8),
    /// The GSO type says TCP/IPv4 but the packet is IPv6, or UDP but the packet is TCP.
    #[error("GSO type does not match the packet")]
    GsoMismatch,
    /// `csum_start`/`csum_offset` do not point at the packet's TCP or UDP checksum.
    #[error("checksum offsets do not match the packet")]
    BadChecksumOffsets,
    /// A GSO packet with a `gso_size` of 0.
    #[error("GSO size is zero")]
    ZeroGsoSize,
    /// An IP or transport header is truncated or inconsistent, the packet is a fragment,
    /// it has an IPv6 routing header, or a GSO packet carries no payload.
    #[error("malformed packet")]
    Malformed,
    /// The caller gave fewer output buffers than there are segments.
    #[error("{needed} segments but {available} buffers")]
    TooFewBuffers {
        /// Segments in the super-segment.
        needed: usize,
        /// Buffers given.
        available: usize,
    },
    /// An output buffer cannot hold its segment behind the headroom.
    #[error("buffer of {len} bytes, {needed} needed")]
    BufferTooSmall {
        /// Headroom plus segment length.
        needed: usize,
        /// The buffer's length.
        len: usize,
    },
}

/// IP protocol number of TCP.
const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// Length of a TCP header without options.
const TCP_MIN_HEADER_LEN: usize = 20;
/// Length of the UDP header.
const UDP_HEADER_LEN: usize = 8;
/// Offset of the checksum in the TCP header.
const TCP_CSUM_OFFSET: u16 = 16;
/// Offset of the checksum in the UDP header.
const UDP_CSUM_OFFSET: u16 = 6;

/// What the IP header of a packet says about where its transport header is. Fields are
/// read and written by offset afterwards: etherparse's slices are read-only views, and
/// segmentation patches a handful of fields in headers it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpLayout {
    /// IPv6 (else IPv4).
    v6: bool,
    /// Where the transport header starts: the IP header and, for IPv6, its extensions.
    l4_offset: usize,
    /// The transport protocol number.
    proto: u8,
    /// The IPv4 header has options (always false for IPv6).
    ipv4_options: bool,
}

impl IpLayout {
    /// Reads the IP header (and IPv6 extension headers) of `packet`. Fragments and IPv6
    /// routing headers (which change the checksum's pseudo-header) are refused.
    fn parse(packet: &[u8]) -> Result<IpLayout, OffloadError> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => {
                let ip =
                    Ipv4HeaderSlice::from_slice(packet).map_err(|_| OffloadError::Malformed)?;
                if ip.is_fragmenting_payload() {
                    return Err(OffloadError::Malformed);
                }
                Ok(IpLayout {
                    v6: false,
                    l4_offset: ip.slice().len(),
                    proto: ip.protocol().0,
                    ipv4_options: !ip.options().is_empty(),
                })
            }
            Some(6) => {
                let fixed = etherparse::Ipv6HeaderSlice::from_slice(packet)
                    .map_err(|_| OffloadError::Malformed)?;
                let rest = &packet[fixed.slice().len()..];
                let (exts, proto, transport) =
                    Ipv6ExtensionsSlice::from_slice(fixed.next_header(), rest)
                        .map_err(|_| OffloadError::Malformed)?;
                let unusable = exts.clone().into_iter().any(|e| {
                    matches!(
                        e,
                        Ipv6ExtensionSlice::Routing(_) | Ipv6ExtensionSlice::Fragment(_)
                    )
                });
                if unusable {
                    return Err(OffloadError::Malformed);
                }
                Ok(IpLayout {
                    v6: true,
                    l4_offset: packet.len() - transport.len(),
                    proto: proto.0,
                    ipv4_options: false,
                })
            }
            _ => Err(OffloadError::Malformed),
        }
    }

    /// The source and destination addresses, as they sit in the header.
    fn addresses<'p>(&self, packet: &'p [u8]) -> (&'p [u8], &'p [u8]) {
        if self.v6 {
            (&packet[8..24], &packet[24..40])
        } else {
            (&packet[12..16], &packet[16..20])
        }
    }

    /// The sum of the checksum pseudo-header (RFC 793 / RFC 8200 §8.1) for a transport
    /// segment of `l4_len` bytes.
    fn pseudo_header_sum(&self, packet: &[u8], l4_len: usize) -> Sum16BitWords {
        let (src, dst) = self.addresses(packet);
        // An IP packet is at most 64 KiB, so the length fits the low 32 bits; for IPv6
        // the upper-layer length field is 32 bits wide, whose upper half sums to zero.
        let len = (l4_len as u32).to_be_bytes();
        Sum16BitWords::new()
            .add_slice(src)
            .add_slice(dst)
            .add_2bytes([0, self.proto])
            .add_2bytes([len[0], len[1]])
            .add_2bytes([len[2], len[3]])
    }

    /// Writes the IP length field for a packet of `total_len` bytes and, for IPv4, the
    /// header checksum.
    fn set_length(&self, packet: &mut [u8], total_len: usize) {
        if self.v6 {
            let payload_len = (total_len - IPV6_FIXED_HEADER_LEN) as u16;
            packet[4..6].copy_from_slice(&payload_len.to_be_bytes());
        } else {
            packet[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
            set_ipv4_checksum(&mut packet[..self.l4_offset]);
        }
    }
}

/// Length of the fixed IPv6 header.
const IPV6_FIXED_HEADER_LEN: usize = 40;

// `Sum16BitWords` adds the words in the host's byte order: `to_be()` turns its results
// into the checksum's value, which the callers write with `to_be_bytes()`.

/// Recomputes the IPv4 header checksum of `header` (the whole header, options included).
fn set_ipv4_checksum(header: &mut [u8]) {
    header[10..12].fill(0);
    let sum = Sum16BitWords::new()
        .add_slice(header)
        .ones_complement()
        .to_be();
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// The folded, uncomplemented value of a sum: what a partial (`NEEDS_CSUM`) checksum
/// field holds.
fn fold(sum: &Sum16BitWords) -> u16 {
    !sum.ones_complement().to_be()
}

/// A TCP/UDP checksum from its sum: UDP sends 0 as `0xffff`, 0 meaning "no checksum".
fn transport_checksum(sum: &Sum16BitWords, proto: u8) -> u16 {
    if proto == PROTO_UDP {
        sum.to_ones_complement_with_no_zero().to_be()
    } else {
        sum.ones_complement().to_be()
    }
}

/// `true` if `proto` is TCP.
fn is_tcp(proto: u8) -> bool {
    proto == IpNumber::TCP.0
}

#[cfg(test)]
mod tests;
