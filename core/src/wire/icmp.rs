//! ICMP errors that tapemu hands back to the TUN, as the kernel would for a packet it
//! could not deliver: destination unreachable (network, host, fragmentation needed) for
//! IPv4; destination unreachable (no route, address unreachable) and packet too big for
//! IPv6.
//!
//! Also the IPv6 ground that ICMPv6 errors, NDP, MLD and DHCPv6 share: [`Ipv6Packet`],
//! the view of a packet down to its upper layer, and the writers that put a whole frame
//! (Ethernet header, IPv6 header, message) into one buffer sized once.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::icmpv6::DestUnreachableCode;
use etherparse::{
    Icmpv4Type, Icmpv6Header, Icmpv6Type, IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice,
    Ipv6FragmentHeaderSlice, Ipv6Header, Ipv6HeaderSlice, Ipv6RawExtHeader, Ipv6RawExtHeaderSlice,
    PacketBuilder,
};

use crate::wire::ethernet::{self, ether_type, MacAddr};

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
/// ICMPv6 types from this one on are informational; below it they are errors.
const FIRST_INFORMATIONAL: u8 = 128;
/// ICMPv6 type of a redirect.
const REDIRECT: u8 = 137;

/// Builds an ICMPv6 error about `original` (an IPv6 packet), sent from `reporter` to the
/// original sender, quoting as much of the original as fits in 1280 bytes (RFC 4443).
///
/// Returns `None` where RFC 4443 §2.4 (e) forbids an error: about an ICMPv6 error or a
/// redirect (found behind any extension headers), a later fragment of an ICMPv6
/// message (its type cannot be seen), a packet to a multicast group (except packet too
/// big), a packet from an unspecified or multicast source, or an unparsable packet.
pub fn ipv6_error(original: &[u8], reporter: Ipv6Addr, kind: Ipv6Error) -> Option<Vec<u8>> {
    let ip = Ipv6Packet::parse(original)?;
    let src = ip.src();
    if src.is_unspecified() || src.is_multicast() || src.is_loopback() {
        return None;
    }
    if ip.dst().is_multicast() && !matches!(kind, Ipv6Error::PacketTooBig { .. }) {
        return None;
    }
    if ip.protocol == IpNumber::IPV6_ICMP {
        if ip.later_fragment {
            return None;
        }
        let icmp_type = *ip.payload.first()?;
        if icmp_type < FIRST_INFORMATIONAL || icmp_type == REDIRECT {
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

/// An IPv6 packet seen down to its upper layer: the fixed header, then the extension
/// headers (RFC 8200 §4) walked with etherparse's header slices.
///
/// The walk is done here rather than by [`etherparse::Ipv6Slice`] for two reasons: it
/// must stop at a fragment other than the first, whose header is followed by the middle
/// of the original packet (etherparse reads on as if more extension headers followed);
/// and a payload length of 0 means no payload, where etherparse takes a jumbogram
/// running to the end of the slice (for a frame, into its Ethernet padding).
#[derive(Debug, Clone)]
pub struct Ipv6Packet<'a> {
    /// The fixed header.
    pub header: Ipv6HeaderSlice<'a>,
    /// The protocol after the last extension header (ICMPv6, UDP, ...).
    pub protocol: IpNumber,
    /// The bytes of that protocol, to the end of the IPv6 payload.
    pub payload: &'a [u8],
    /// The packet is a fragment: a fragment header with an offset or more to come.
    pub fragmented: bool,
    /// A fragment other than the first: `payload` does not start the upper-layer message.
    pub later_fragment: bool,
}

impl<'a> Ipv6Packet<'a> {
    /// Parses `packet`, ignoring bytes beyond its payload length (Ethernet padding).
    ///
    /// `None` when the fixed header is invalid, the packet is shorter than its payload
    /// length says, an extension header is cut short, or a hop-by-hop header is not the
    /// first one.
    pub fn parse(packet: &'a [u8]) -> Option<Ipv6Packet<'a>> {
        let header = Ipv6HeaderSlice::from_slice(packet).ok()?;
        let end = Ipv6Header::LEN + usize::from(header.payload_length());
        let mut rest = packet.get(Ipv6Header::LEN..end)?;
        let mut protocol = header.next_header();
        let mut fragmented = false;
        let mut first = true;
        loop {
            let len = match protocol {
                IpNumber::IPV6_HEADER_HOP_BY_HOP if !first => return None,
                IpNumber::IPV6_HEADER_HOP_BY_HOP
                | IpNumber::IPV6_ROUTE_HEADER
                | IpNumber::IPV6_DESTINATION_OPTIONS => {
                    let ext = Ipv6RawExtHeaderSlice::from_slice(rest).ok()?;
                    protocol = ext.next_header();
                    ext.slice().len()
                }
                IpNumber::IPV6_FRAGMENTATION_HEADER => {
                    let fragment = Ipv6FragmentHeaderSlice::from_slice(rest).ok()?;
                    protocol = fragment.next_header();
                    fragmented |= fragment.is_fragmenting_payload();
                    if fragment.fragment_offset().value() != 0 {
                        return Some(Ipv6Packet {
                            header,
                            protocol,
                            payload: rest.get(fragment.slice().len()..)?,
                            fragmented,
                            later_fragment: true,
                        });
                    }
                    fragment.slice().len()
                }
                IpNumber::AUTHENTICATION_HEADER => {
                    let auth = IpAuthHeaderSlice::from_slice(rest).ok()?;
                    protocol = auth.next_header();
                    auth.slice().len()
                }
                _ => break,
            };
            rest = rest.get(len..)?;
            first = false;
        }
        Some(Ipv6Packet {
            header,
            protocol,
            payload: rest,
            fragmented,
            later_fragment: false,
        })
    }

    /// The source address.
    pub fn src(&self) -> Ipv6Addr {
        self.header.source_addr()
    }

    /// The destination address.
    pub fn dst(&self) -> Ipv6Addr {
        self.header.destination_addr()
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.header.hop_limit()
    }

    /// The length of the packet proper: the fixed header and its payload length.
    pub fn total_len(&self) -> usize {
        Ipv6Header::LEN + usize::from(self.header.payload_length())
    }

    /// The ICMPv6 message (type first) when the upper layer is ICMPv6 and starts here.
    pub fn icmpv6(&self) -> Option<&'a [u8]> {
        (self.protocol == IpNumber::IPV6_ICMP && !self.later_fragment).then_some(self.payload)
    }
}

/// The Ethernet and IPv6 source and destination of a frame tapemu builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
}

impl Endpoints {
    /// From `src_mac` and `src` to the multicast `group`, at its `33:33` MAC.
    pub fn to_group(src_mac: MacAddr, src: Ipv6Addr, group: Ipv6Addr) -> Endpoints {
        Endpoints {
            src_mac,
            dst_mac: MacAddr::ipv6_multicast(group),
            src,
            dst: group,
        }
    }
}

/// Bytes before the IPv6 payload of a frame.
const IPV6_FRAME_HEADERS: usize = ethernet::HEADER_LEN + Ipv6Header::LEN;

/// A frame buffer sized once for `payload_len` bytes of IPv6 payload, holding zeros
/// where [`finish_ipv6_frame`] writes the Ethernet and IPv6 headers.
pub(crate) fn start_ipv6_frame(payload_len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(IPV6_FRAME_HEADERS + payload_len);
    frame.resize(IPV6_FRAME_HEADERS, 0);
    frame
}

/// The IPv6 header of a frame whose payload (everything after the fixed header) is
/// `payload_len` bytes long.
pub(crate) fn ipv6_header(
    ends: &Endpoints,
    next_header: IpNumber,
    hop_limit: u8,
    payload_len: usize,
) -> Ipv6Header {
    Ipv6Header {
        payload_length: u16::try_from(payload_len).unwrap_or(u16::MAX),
        next_header,
        hop_limit,
        source: ends.src.octets(),
        destination: ends.dst.octets(),
        ..Ipv6Header::default()
    }
}

/// Writes the Ethernet header and `ip` into the room [`start_ipv6_frame`] left.
pub(crate) fn finish_ipv6_frame(frame: &mut [u8], ends: &Endpoints, ip: &Ipv6Header) {
    ethernet::write_header(frame, ends.dst_mac, ends.src_mac, ether_type::IPV6);
    frame[ethernet::HEADER_LEN..IPV6_FRAME_HEADERS].copy_from_slice(&ip.to_bytes());
}

/// The hop-by-hop header carrying the router alert option for MLD (RFC 2711), padded
/// with an empty PadN: 8 bytes.
const ROUTER_ALERT_MLD: [u8; 6] = [5, 2, 0, 0, 1, 0];

/// Writes a whole frame carrying one ICMPv6 message into a single buffer: the Ethernet
/// and IPv6 headers, with `router_alert` a hop-by-hop header with the router alert
/// option (MLD), the ICMPv6 header with its checksum, and the `body_len` bytes that
/// `write_body` appends after the 8-byte ICMPv6 header.
pub(crate) fn icmpv6_frame(
    ends: &Endpoints,
    hop_limit: u8,
    router_alert: bool,
    icmp_type: Icmpv6Type,
    body_len: usize,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let hop_by_hop = router_alert
        .then(|| Ipv6RawExtHeader::new_raw(IpNumber::IPV6_ICMP, &ROUTER_ALERT_MLD).ok())
        .flatten();
    let ext_len = hop_by_hop.as_ref().map_or(0, Ipv6RawExtHeader::header_len);
    let icmp_at = IPV6_FRAME_HEADERS + ext_len;
    let body_at = icmp_at + Icmpv6Header::MIN_LEN;
    let mut frame = start_ipv6_frame(ext_len + Icmpv6Header::MIN_LEN + body_len);
    frame.resize(body_at, 0);
    write_body(&mut frame);
    let body = &frame[body_at..];
    // Fails only for messages beyond 4 GiB.
    let icmp = Icmpv6Header::with_checksum(icmp_type, ends.src.octets(), ends.dst.octets(), body)
        .unwrap_or_else(|_| Icmpv6Header::new(icmp_type));
    let next_header = if hop_by_hop.is_some() {
        IpNumber::IPV6_HEADER_HOP_BY_HOP
    } else {
        IpNumber::IPV6_ICMP
    };
    let ip = ipv6_header(
        ends,
        next_header,
        hop_limit,
        frame.len() - IPV6_FRAME_HEADERS,
    );
    frame[icmp_at..body_at].copy_from_slice(&icmp.to_bytes());
    if let Some(ext) = hop_by_hop {
        frame[IPV6_FRAME_HEADERS..icmp_at].copy_from_slice(&ext.to_bytes());
    }
    finish_ipv6_frame(&mut frame, ends, &ip);
    frame
}

/// True when the ICMPv6 checksum of `msg` (type first, checksum field as received) over
/// the pseudo-header of `src` and `dst` is right.
pub fn icmpv6_checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> bool {
    // Not `Icmpv6Slice::is_checksum_valid`: that needs the 8-byte header, and a shorter
    // message must still be told apart as corrupt or merely short.
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    etherparse::checksum::Sum16BitWords::new()
        .add_16bytes(src.octets())
        .add_16bytes(dst.octets())
        .add_4bytes(len.to_be_bytes())
        .add_2bytes([0, IpNumber::IPV6_ICMP.0])
        .add_slice(msg)
        .ones_complement()
        == 0
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

    /// A packet from 2001:db8:1::7 to 2001:db8:99::1 carrying `upper` (protocol
    /// `protocol`) behind one extension header `ext`; a fragment header gets `offset`.
    fn behind(ext: IpNumber, offset: u16, protocol: IpNumber, upper: &[u8]) -> Vec<u8> {
        use etherparse::{IpFragOffset, Ipv6FragmentHeader};
        let ext_bytes = if ext == IpNumber::IPV6_FRAGMENTATION_HEADER {
            let offset = IpFragOffset::try_new(offset).unwrap();
            Ipv6FragmentHeader::new(protocol, offset, true, 7)
                .to_bytes()
                .to_vec()
        } else {
            // One PadN option filling the 6 bytes after next header and length.
            Ipv6RawExtHeader::new_raw(protocol, &[1, 4, 0, 0, 0, 0])
                .unwrap()
                .to_bytes()
                .to_vec()
        };
        let src: Ipv6Addr = "2001:db8:1::7".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
        let header = Ipv6Header {
            payload_length: (ext_bytes.len() + upper.len()) as u16,
            next_header: ext,
            hop_limit: 64,
            source: src.octets(),
            destination: dst.octets(),
            ..Ipv6Header::default()
        };
        [&header.to_bytes()[..], &ext_bytes, upper].concat()
    }

    #[test]
    fn no_error_about_an_icmpv6_error_behind_extension_headers() {
        let reporter: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
        // Destination unreachable (an error), and an echo request (informational).
        let error = [1, 0, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0];
        let echo = [128, 0, 0, 0, 0, 1, 0, 1, 0xaa, 0xbb];
        for ext in [
            IpNumber::IPV6_HEADER_HOP_BY_HOP,
            IpNumber::IPV6_DESTINATION_OPTIONS,
            IpNumber::IPV6_ROUTE_HEADER,
            IpNumber::IPV6_FRAGMENTATION_HEADER,
        ] {
            let about_error = behind(ext, 0, IpNumber::IPV6_ICMP, &error);
            assert!(
                ipv6_error(&about_error, reporter, Ipv6Error::NoRoute).is_none(),
                "{ext:?}"
            );
            let redirect = behind(ext, 0, IpNumber::IPV6_ICMP, &[137, 0, 0, 0, 0, 0, 0, 0]);
            assert!(ipv6_error(&redirect, reporter, Ipv6Error::NoRoute).is_none());
            let about_echo = behind(ext, 0, IpNumber::IPV6_ICMP, &echo);
            assert!(
                ipv6_error(&about_echo, reporter, Ipv6Error::NoRoute).is_some(),
                "{ext:?}"
            );
        }
        // A later fragment of an ICMPv6 message hides its type: no error. A later
        // fragment of UDP may draw one.
        let later = behind(
            IpNumber::IPV6_FRAGMENTATION_HEADER,
            8,
            IpNumber::IPV6_ICMP,
            &echo,
        );
        assert!(ipv6_error(&later, reporter, Ipv6Error::NoRoute).is_none());
        let later = behind(IpNumber::IPV6_FRAGMENTATION_HEADER, 8, IpNumber::UDP, &echo);
        assert!(ipv6_error(&later, reporter, Ipv6Error::NoRoute).is_some());
        // An extension header cut short: unparsable, no error.
        let mut cut = behind(IpNumber::IPV6_DESTINATION_OPTIONS, 0, IpNumber::UDP, &[]);
        cut[41] = 3;
        assert!(ipv6_error(&cut, reporter, Ipv6Error::NoRoute).is_none());
    }

    #[test]
    fn the_view_walks_to_the_upper_layer_and_ignores_padding() {
        let echo = [128, 0, 0, 0, 0, 1, 0, 1];
        let mut packet = behind(IpNumber::IPV6_ROUTE_HEADER, 0, IpNumber::IPV6_ICMP, &echo);
        packet.extend_from_slice(&[0; 6]);
        let ip = Ipv6Packet::parse(&packet).unwrap();
        assert_eq!(ip.protocol, IpNumber::IPV6_ICMP);
        assert_eq!(ip.icmpv6(), Some(&echo[..]));
        assert_eq!(ip.total_len(), packet.len() - 6);
        assert!(!ip.fragmented);
        let first = behind(
            IpNumber::IPV6_FRAGMENTATION_HEADER,
            0,
            IpNumber::IPV6_ICMP,
            &echo,
        );
        let ip = Ipv6Packet::parse(&first).unwrap();
        assert!(ip.fragmented && !ip.later_fragment);
        assert_eq!(ip.icmpv6(), Some(&echo[..]));
        let later = behind(
            IpNumber::IPV6_FRAGMENTATION_HEADER,
            8,
            IpNumber::IPV6_ICMP,
            &echo,
        );
        let ip = Ipv6Packet::parse(&later).unwrap();
        assert!(ip.later_fragment);
        assert_eq!(ip.icmpv6(), None);
        // A hop-by-hop header anywhere but first is malformed.
        let mut late_hbh = behind(
            IpNumber::IPV6_DESTINATION_OPTIONS,
            0,
            IpNumber::UDP,
            &[0; 8],
        );
        late_hbh[40] = 0;
        assert!(Ipv6Packet::parse(&late_hbh).is_none());
    }
}
