//! ICMP errors that tapemu hands back to the TUN, as the kernel would for a packet it
//! could not deliver: destination unreachable (network, host, fragmentation needed) for
//! IPv4; destination unreachable (no route, address unreachable) and packet too big for
//! IPv6.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::icmpv6::DestUnreachableCode;
use etherparse::{Icmpv4Type, Icmpv6Type, IpNumber, Ipv4HeaderSlice, PacketBuilder};

/// Which ICMPv4 destination-unreachable error to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// Code 0: no route to the network.
    Network,
    /// Code 1: the neighbour did not answer ARP.
    Host,
    /// Code 4: the packet is larger than the MTU and may not be fragmented.
    FragmentationNeeded {
        /// The MTU of the link.
        mtu: u16,
    },
}

/// Builds an ICMPv4 destination-unreachable packet about `original` (an IPv4 packet),
/// sent from `reporter` to the original sender, carrying the original header and the
/// first 8 bytes of its payload (RFC 792).
///
/// Returns `None` where RFC 1122 §3.2.2 forbids an error: about an ICMP error, a
/// non-initial fragment, a broadcast or multicast packet, or an unparsable packet.
pub fn ipv4_unreachable(original: &[u8], reporter: Ipv4Addr, kind: Unreachable) -> Option<Vec<u8>> {
    let header = Ipv4HeaderSlice::from_slice(original).ok()?;
    let dst = header.destination_addr();
    let src = header.source_addr();
    if dst.is_broadcast() || dst.is_multicast() || src.is_unspecified() || src.is_multicast() {
        return None;
    }
    if header.fragments_offset().value() != 0 {
        return None;
    }
    let header_len = header.slice().len();
    if header.protocol() == IpNumber::ICMP {
        // Only informational messages (echo and the like) may draw an error.
        let icmp_type = *original.get(header_len)?;
        if matches!(icmp_type, 3 | 4 | 5 | 11 | 12) {
            return None;
        }
    }
    let quoted_len = original.len().min(header_len + 8);
    let quoted = &original[..quoted_len];
    let code = match kind {
        Unreachable::Network => DestUnreachableHeader::Network,
        Unreachable::Host => DestUnreachableHeader::Host,
        Unreachable::FragmentationNeeded { mtu } => {
            DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu }
        }
    };
    let builder = PacketBuilder::ipv4(reporter.octets(), src.octets(), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(code));
    let mut packet = Vec::with_capacity(builder.size(quoted.len()));
    builder.write(&mut packet, quoted).ok()?;
    Some(packet)
}

/// Which ICMPv6 error to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Error {
    /// Destination unreachable, code 0: no route to the destination.
    NoRoute,
    /// Destination unreachable, code 3: the neighbour did not answer NDP.
    AddressUnreachable,
    /// Packet too big, with the MTU of the link.
    PacketTooBig {
        /// The MTU of the link.
        mtu: u32,
    },
}

/// The smallest MTU of IPv6 links; an ICMPv6 error never exceeds it (RFC 4443 §2.4 (c)).
const IPV6_MIN_MTU: usize = 1280;

/// Builds an ICMPv6 error about `original` (an IPv6 packet), sent from `reporter` to the
/// original sender, quoting as much of the original as fits in 1280 bytes (RFC 4443).
///
/// Returns `None` where RFC 4443 §2.4 (e) forbids an error: about an ICMPv6 error or a
/// redirect, a packet to a multicast group (except packet too big), a packet from an
/// unspecified or multicast source, or an unparsable packet.
pub fn ipv6_error(original: &[u8], reporter: Ipv6Addr, kind: Ipv6Error) -> Option<Vec<u8>> {
    let (header, _) = etherparse::Ipv6Header::from_slice(original).ok()?;
    let src = header.source_addr();
    let dst = header.destination_addr();
    if src.is_unspecified() || src.is_multicast() || src.is_loopback() {
        return None;
    }
    if dst.is_multicast() && !matches!(kind, Ipv6Error::PacketTooBig { .. }) {
        return None;
    }
    if header.next_header == IpNumber::IPV6_ICMP {
        // Only informational messages (type 128 and up) other than redirects may draw
        // an error; an unknown extension chain is looked through by etherparse.
        let icmp_type = *original.get(etherparse::Ipv6Header::LEN)?;
        if icmp_type < 128 || icmp_type == 137 {
            return None;
        }
    }
    let icmp_type = match kind {
        Ipv6Error::NoRoute => Icmpv6Type::DestinationUnreachable(DestUnreachableCode::NoRoute),
        Ipv6Error::AddressUnreachable => {
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Address)
        }
        Ipv6Error::PacketTooBig { mtu } => Icmpv6Type::PacketTooBig { mtu },
    };
    let builder = PacketBuilder::ipv6(reporter.octets(), src.octets(), 64).icmpv6(icmp_type);
    let room = IPV6_MIN_MTU - builder.size(0);
    let quoted = &original[..original.len().min(room)];
    let mut packet = Vec::with_capacity(builder.size(quoted.len()));
    builder.write(&mut packet, quoted).ok()?;
    Some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn udp_packet(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src, dst, 64).udp(1000, 2000);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn host_unreachable_quotes_header_and_eight_bytes() {
        let original = udp_packet([192, 0, 2, 123], [192, 0, 2, 99], &[7u8; 100]);
        let reporter = Ipv4Addr::new(192, 0, 2, 99);
        let icmp = ipv4_unreachable(&original, reporter, Unreachable::Host).unwrap();
        let sliced = SlicedPacket::from_ip(&icmp).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
            panic!()
        };
        assert_eq!(ip.header().source_addr(), reporter);
        assert_eq!(
            ip.header().destination_addr(),
            Ipv4Addr::new(192, 0, 2, 123)
        );
        let Some(TransportSlice::Icmpv4(icmp4)) = sliced.transport else {
            panic!()
        };
        assert_eq!(icmp4.type_u8(), 3);
        assert_eq!(icmp4.code_u8(), 1);
        assert_eq!(icmp4.payload(), &original[..28]);
        // The checksum is valid.
        assert_eq!(
            icmp4.icmp_type().calc_checksum(icmp4.payload()),
            icmp4.checksum()
        );
    }

    #[test]
    fn fragmentation_needed_carries_mtu() {
        let original = udp_packet([192, 0, 2, 123], [203, 0, 113, 1], &[0u8; 1600]);
        let icmp = ipv4_unreachable(
            &original,
            Ipv4Addr::new(192, 0, 2, 1),
            Unreachable::FragmentationNeeded { mtu: 1400 },
        )
        .unwrap();
        let sliced = SlicedPacket::from_ip(&icmp).unwrap();
        let Some(TransportSlice::Icmpv4(icmp4)) = sliced.transport else {
            panic!()
        };
        assert_eq!(icmp4.code_u8(), 4);
        assert_eq!(&icmp4.bytes5to8()[2..4], &1400u16.to_be_bytes());
    }

    #[test]
    fn no_error_about_errors_broadcast_or_garbage() {
        let reporter = Ipv4Addr::new(192, 0, 2, 1);
        let original = udp_packet([192, 0, 2, 123], [192, 0, 2, 99], &[1]);
        let error = ipv4_unreachable(&original, reporter, Unreachable::Host).unwrap();
        assert!(ipv4_unreachable(&error, reporter, Unreachable::Host).is_none());
        let bcast = udp_packet([192, 0, 2, 123], [255, 255, 255, 255], &[1]);
        assert!(ipv4_unreachable(&bcast, reporter, Unreachable::Host).is_none());
        assert!(ipv4_unreachable(&[0x45, 0, 0], reporter, Unreachable::Host).is_none());
    }

    fn udp6(src: &str, dst: &str, len: usize) -> Vec<u8> {
        let src: Ipv6Addr = src.parse().unwrap();
        let dst: Ipv6Addr = dst.parse().unwrap();
        let b = PacketBuilder::ipv6(src.octets(), dst.octets(), 64).udp(1000, 2000);
        let mut v = Vec::new();
        b.write(&mut v, &vec![5u8; len]).unwrap();
        v
    }

    #[test]
    fn ipv6_errors_come_from_the_reporter_and_fit_the_minimum_mtu() {
        let reporter: Ipv6Addr = "2001:db8:1::99".parse().unwrap();
        let original = udp6("2001:db8:1::7", "2001:db8:1::99", 3000);
        for (kind, t, code) in [
            (Ipv6Error::NoRoute, 1, 0),
            (Ipv6Error::AddressUnreachable, 1, 3),
            (Ipv6Error::PacketTooBig { mtu: 1400 }, 2, 0),
        ] {
            let icmp = ipv6_error(&original, reporter, kind).unwrap();
            assert_eq!(icmp.len(), 1280);
            let sliced = SlicedPacket::from_ip(&icmp).unwrap();
            let Some(NetSlice::Ipv6(ip)) = &sliced.net else {
                panic!()
            };
            assert_eq!(ip.header().source_addr(), reporter);
            assert_eq!(
                ip.header().destination_addr(),
                "2001:db8:1::7".parse::<Ipv6Addr>().unwrap()
            );
            let Some(TransportSlice::Icmpv6(i)) = sliced.transport else {
                panic!()
            };
            assert_eq!((i.type_u8(), i.code_u8()), (t, code));
            let src = ip.header().source_addr().octets();
            let dst = ip.header().destination_addr().octets();
            assert_eq!(
                i.icmp_type().calc_checksum(src, dst, i.payload()).unwrap(),
                i.checksum()
            );
        }
        // No error about an error, nor about multicast (except too big), nor garbage.
        let error = ipv6_error(&original, reporter, Ipv6Error::NoRoute).unwrap();
        assert!(ipv6_error(&error, reporter, Ipv6Error::NoRoute).is_none());
        let mcast = udp6("2001:db8:1::7", "ff02::fb", 10);
        assert!(ipv6_error(&mcast, reporter, Ipv6Error::NoRoute).is_none());
        assert!(ipv6_error(&mcast, reporter, Ipv6Error::PacketTooBig { mtu: 1280 }).is_some());
        assert!(ipv6_error(&[0x60, 0, 0], reporter, Ipv6Error::NoRoute).is_none());
    }
}
