//! Ethernet II framing: MAC addresses, the 14-byte header, and the mapping of IP
//! multicast groups to multicast MAC addresses.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use rand::Rng;

/// Length of an Ethernet II header (destination, source, EtherType).
pub const HEADER_LEN: usize = 14;

/// Shortest Ethernet frame on the wire without the FCS; shorter frames are padded.
pub const MIN_FRAME_LEN: usize = 60;

/// EtherType values tapemu handles.
pub mod ether_type {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag.
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`, the unknown target of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// A random locally administered unicast address (the `x2:`, `x6:`, `xa:`, `xe:` space).
    pub fn random_local(rng: &mut impl Rng) -> MacAddr {
        let mut bytes = [0u8; 6];
        rng.fill_bytes(&mut bytes);
        bytes[0] = (bytes[0] & 0xfc) | 0x02;
        MacAddr(bytes)
    }

    /// A locally administered unicast address that stays the same for one host and
    /// interface: SipHash-2-4 (under a key of tapemu's own) of a per-host `secret` (the
    /// contents of `/etc/machine-id`, say) and the interface `name`, as systemd's
    /// persistent MAC policy derives one. A different name, or another host, gives an
    /// unrelated address; nothing about the secret can be read back from it.
    pub fn stable(secret: &[u8], name: &str) -> MacAddr {
        use std::hash::Hasher;
        /// Keeps these addresses apart from other hashes of the same secret.
        const KEY: [u8; 16] = *b"tapemu stable ma";
        let mut hasher = siphasher::sip::SipHasher24::new_with_key(&KEY);
        // The secret's length first, so no (secret, name) pair hashes like another.
        hasher.write(&(secret.len() as u64).to_be_bytes());
        hasher.write(secret);
        hasher.write(name.as_bytes());
        let hash = hasher.finish().to_le_bytes();
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(&hash[..6]);
        bytes[0] = (bytes[0] & 0xfe) | 0x02;
        MacAddr(bytes)
    }

    /// The multicast MAC an IPv4 group maps to: `01:00:5e` and the low 23 bits (RFC 1112).
    pub fn ipv4_multicast(group: Ipv4Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }

    /// The multicast MAC an IPv6 group maps to: `33:33` and the low 32 bits (RFC 2464).
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// True for `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// True when the group bit is set (multicast and broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for a unicast address other than all zeroes.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// True for an IPv4 multicast MAC (`01:00:5e:00:00:00/25`).
    pub fn is_ipv4_multicast(&self) -> bool {
        self.0[0] == 0x01 && self.0[1] == 0x00 && self.0[2] == 0x5e && self.0[3] & 0x80 == 0
    }

    /// True for an IPv6 multicast MAC (`33:33:xx:xx:xx:xx`).
    pub fn is_ipv6_multicast(&self) -> bool {
        self.0[0] == 0x33 && self.0[1] == 0x33
    }

    /// The six bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex bytes separated by ':' or '-'")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let mut bytes = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in bytes.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(bytes))
    }
}

/// Writes an Ethernet II header into the first 14 bytes of `frame`.
///
/// `frame` must be at least [`HEADER_LEN`] bytes long.
#[inline]
pub fn write_header(frame: &mut [u8], dst: MacAddr, src: MacAddr, ether_type: u16) {
    frame[0..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&src.0);
    frame[12..14].copy_from_slice(&ether_type.to_be_bytes());
}

/// Builds a whole frame: header followed by `payload`.
pub fn build_frame(dst: MacAddr, src: MacAddr, ether_type: u16, payload: &[u8]) -> Vec<u8> {
    // Built by appending, not by zeroing then overwriting: this runs once per frame the
    // host sends (every ARP reply), and a zeroed allocation costs more than the frame.
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The parsed fields of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// EtherType.
    pub ether_type: u16,
}

impl Header {
    /// Reads the header at the start of `frame`, or `None` when it is shorter than 14 bytes.
    #[inline]
    pub fn parse(frame: &[u8]) -> Option<Header> {
        let eth = etherparse::Ethernet2HeaderSlice::from_slice(frame).ok()?;
        Some(Header {
            dst: MacAddr(eth.destination()),
            src: MacAddr(eth.source()),
            ether_type: eth.ether_type().0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn multicast_mapping_follows_rfc1112_and_rfc2464() {
        assert_eq!(
            MacAddr::ipv4_multicast(Ipv4Addr::new(224, 0, 0, 251)).to_string(),
            "01:00:5e:00:00:fb"
        );
        // The high bit of the second octet is dropped: 239.129.2.3 -> 01:00:5e:01:02:03.
        assert_eq!(
            MacAddr::ipv4_multicast(Ipv4Addr::new(239, 129, 2, 3)).to_string(),
            "01:00:5e:01:02:03"
        );
        let group: Ipv6Addr = "ff02::1:ff00:1234".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(group).to_string(),
            "33:33:ff:00:12:34"
        );
    }

    #[test]
    fn random_local_is_unicast_and_locally_administered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let mac = MacAddr::random_local(&mut rng);
            assert!(mac.is_unicast());
            assert_eq!(mac.0[0] & 0x02, 0x02);
        }
    }

    #[test]
    fn stable_mac_is_local_unicast_deterministic_and_differs_by_name_and_host() {
        let secret = b"0123456789abcdef0123456789abcdef\n";
        let mac = MacAddr::stable(secret, "tapemu0");
        assert!(mac.is_unicast());
        assert_eq!(mac.0[0] & 0x03, 0x02, "locally administered unicast");
        assert_eq!(MacAddr::stable(secret, "tapemu0"), mac);
        assert_ne!(MacAddr::stable(secret, "tapemu1"), mac);
        assert_ne!(MacAddr::stable(b"another host", "tapemu0"), mac);
        // The secret and the name are not simply joined.
        assert_ne!(MacAddr::stable(b"ab", "c"), MacAddr::stable(b"a", "bc"));
        // Fixed for all time: a host keeps its MAC across versions.
        assert_eq!(mac.to_string(), "36:ae:18:5f:82:9e");
        for name in ["eth0", "wlan0", "rmnet0", ""] {
            let m = MacAddr::stable(secret, name);
            assert_eq!(m.0[0] & 0x03, 0x02, "{m}");
        }
    }

    #[test]
    fn parses_and_prints_mac() {
        let mac: MacAddr = "02:00:5E:10:00:01".parse().unwrap();
        assert_eq!(mac.to_string(), "02:00:5e:10:00:01");
        assert_eq!("02-00-5e-10-00-01".parse::<MacAddr>().unwrap(), mac);
        for bad in [
            "",
            "02:00",
            "02:00:5e:10:00:01:02",
            "zz:00:5e:10:00:01",
            "002:0:5e:10:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn header_round_trip() {
        let frame = build_frame(
            MacAddr::BROADCAST,
            MacAddr([2, 0, 0, 0, 0, 1]),
            ether_type::ARP,
            &[1, 2],
        );
        let h = Header::parse(&frame).unwrap();
        assert!(h.dst.is_broadcast());
        assert_eq!(h.src, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(h.ether_type, ether_type::ARP);
        assert!(Header::parse(&frame[..13]).is_none());
    }
}
