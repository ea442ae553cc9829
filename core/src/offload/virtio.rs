//! The virtio-net header (`struct virtio_net_hdr`, virtio spec §5.1.6) that a TUN opened
//! with `IFF_VNET_HDR` puts in front of every packet it reads and expects in front of
//! every packet written to it.
//!
//! Ten bytes: `flags`, `gso_type`, then four 16-bit fields in the byte order the TUN
//! uses, which is the host's unless `TUNSETVNETLE`/`TUNSETVNETBE` says otherwise (the
//! driver sets neither).

use super::OffloadError;

/// The GSO type of a [`VirtioNetHdr`], without its ECN bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GsoType {
    /// One packet, not to be segmented (`VIRTIO_NET_HDR_GSO_NONE`).
    #[default]
    None,
    /// A TCP/IPv4 super-segment (`VIRTIO_NET_HDR_GSO_TCPV4`).
    TcpV4,
    /// A TCP/IPv6 super-segment (`VIRTIO_NET_HDR_GSO_TCPV6`).
    TcpV6,
    /// A UDP super-datagram, split into whole datagrams (`VIRTIO_NET_HDR_GSO_UDP_L4`).
    UdpL4,
}

impl GsoType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::TcpV6 => 4,
            GsoType::UdpL4 => 5,
        }
    }

    /// The type for a wire value with the ECN bit cleared; `None` for types not handled
    /// here (3, UFO, which the TUN never produces when UFO is not offered).
    pub fn from_u8(value: u8) -> Option<GsoType> {
        match value {
            0 => Some(GsoType::None),
            1 => Some(GsoType::TcpV4),
            4 => Some(GsoType::TcpV6),
            5 => Some(GsoType::UdpL4),
            _ => None,
        }
    }
}

/// A parsed virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the transport checksum is partial (the
    /// pseudo-header sum only) and must be completed from `csum_start` on.
    pub needs_csum: bool,
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
    pub data_valid: bool,
    /// How the packet is to be segmented.
    pub gso_type: GsoType,
    /// `VIRTIO_NET_HDR_GSO_ECN`: the TCP super-segment carries CWR on its first segment
    /// only.
    pub ecn: bool,
    /// Length of the headers to repeat in each segment. Only a hint: the kernel may put
    /// the whole linear part there, so segmentation reads the headers instead.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Where checksumming starts: the transport header.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum field is (16 for TCP, 6 for UDP).
    pub csum_offset: u16,
}

const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_ECN: u8 = 0x80;

impl VirtioNetHdr {
    /// Length of the header on the wire (no `num_buffers`: the TUN's default size).
    pub const LEN: usize = 10;

    /// A header that asks for nothing: what goes in front of a packet written as it is.
    pub const NONE: VirtioNetHdr = VirtioNetHdr {
        needs_csum: false,
        data_valid: false,
        gso_type: GsoType::None,
        ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads the header from the first [`Self::LEN`] bytes of `buf`. Unknown flag bits
    /// are ignored; an unknown GSO type is an error.
    pub fn parse(buf: &[u8]) -> Result<VirtioNetHdr, OffloadError> {
        let b: &[u8; Self::LEN] = buf
            .get(..Self::LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(OffloadError::TruncatedHeader)?;
        let word = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        let gso_type = GsoType::from_u8(b[1] & !GSO_ECN)
            .ok_or(OffloadError::UnsupportedGsoType(b[1] & !GSO_ECN))?;
        Ok(VirtioNetHdr {
            needs_csum: b[0] & F_NEEDS_CSUM != 0,
            data_valid: b[0] & F_DATA_VALID != 0,
            gso_type,
            ecn: b[1] & GSO_ECN != 0,
            hdr_len: word(2),
            gso_size: word(4),
            csum_start: word(6),
            csum_offset: word(8),
        })
    }

    /// The header's wire bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0; Self::LEN];
        b[0] = if self.needs_csum { F_NEEDS_CSUM } else { 0 }
            | if self.data_valid { F_DATA_VALID } else { 0 };
        b[1] = self.gso_type.to_u8() | if self.ecn { GSO_ECN } else { 0 };
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// Writes the header into the first [`Self::LEN`] bytes of `buf` (e.g. the headroom
    /// in front of a packet), or returns `false` if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) -> bool {
        match buf.get_mut(..Self::LEN) {
            Some(out) => {
                out.copy_from_slice(&self.to_bytes());
                true
            }
            None => false,
        }
    }
}
