//! Tests of the offloads: packets are built with etherparse's `PacketBuilder` and checked
//! with its slices and checksum functions, never with the code under test.

use etherparse::checksum::Sum16BitWords;
use etherparse::{
    IpDscp, IpEcn, IpHeaders, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, NetSlice,
    PacketBuilder, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice,
};

use super::{GsoType, VirtioNetHdr};

mod gro;
mod prop;
mod segment;
mod virtio;

pub(super) const V4_SRC: [u8; 4] = [192, 0, 2, 10];
pub(super) const V4_DST: [u8; 4] = [192, 0, 2, 123];
pub(super) const V6_SRC: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a,
];
pub(super) const V6_DST: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7b,
];

pub(super) const FIN: u8 = 0x01;
pub(super) const SYN: u8 = 0x02;
pub(super) const RST: u8 = 0x04;
pub(super) const PSH: u8 = 0x08;
pub(super) const ACK: u8 = 0x10;
pub(super) const URG: u8 = 0x20;
pub(super) const ECE: u8 = 0x40;
pub(super) const CWR: u8 = 0x80;

/// Everything about a TCP packet's headers a test may want to vary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TcpSpec {
    pub v6: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub flags: u8,
    /// A timestamp option (TSval, TSecr), padded with two NOPs.
    pub ts: Option<(u32, u32)>,
    pub id: u16,
    pub df: bool,
    pub ttl: u8,
    pub tos: u8,
}

impl Default for TcpSpec {
    fn default() -> TcpSpec {
        TcpSpec {
            v6: false,
            src_port: 443,
            dst_port: 40000,
            seq: 1000,
            ack: 1,
            window: 502,
            flags: ACK,
            ts: None,
            id: 7,
            df: true,
            ttl: 64,
            tos: 0,
        }
    }
}

impl TcpSpec {
    /// An IPv6 flow.
    pub fn v6() -> TcpSpec {
        TcpSpec {
            v6: true,
            ..TcpSpec::default()
        }
    }

    /// Length of the IP and TCP headers.
    pub fn headers_len(&self) -> usize {
        (if self.v6 { 40 } else { 20 }) + 20 + if self.ts.is_some() { 12 } else { 0 }
    }

    /// A packet with `payload`, lengths and checksums correct.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut tcp = TcpHeader::new(self.src_port, self.dst_port, self.seq, self.window);
        tcp.acknowledgment_number = self.ack;
        let bit = |b: u8| self.flags & b != 0;
        (tcp.fin, tcp.syn, tcp.rst, tcp.psh) = (bit(FIN), bit(SYN), bit(RST), bit(PSH));
        (tcp.ack, tcp.urg, tcp.ece, tcp.cwr) = (bit(ACK), bit(URG), bit(ECE), bit(CWR));
        if let Some((val, ecr)) = self.ts {
            use TcpOptionElement::{Noop, Timestamp};
            tcp.set_options(&[Noop, Noop, Timestamp(val, ecr)]).unwrap();
        }
        let ip = if self.v6 {
            let h = Ipv6Header {
                traffic_class: self.tos,
                flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
                payload_length: 0,
                next_header: IpNumber::TCP,
                hop_limit: self.ttl,
                source: V6_SRC,
                destination: V6_DST,
            };
            IpHeaders::Ipv6(h, Default::default())
        } else {
            let mut h = Ipv4Header::new(0, self.ttl, IpNumber::TCP, V4_SRC, V4_DST).unwrap();
            h.identification = self.id;
            h.dont_fragment = self.df;
            h.dscp = IpDscp::try_new(self.tos >> 2).unwrap();
            h.ecn = IpEcn::try_new(self.tos & 3).unwrap();
            IpHeaders::Ipv4(h, Default::default())
        };
        let mut out = Vec::new();
        PacketBuilder::ip(ip)
            .tcp_header(tcp)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// What a TUN with TSO hands over for `payload` sent at once: one packet with every
    /// length set for the whole, the TCP checksum partial (the pseudo-header sum), and
    /// its virtio-net header.
    pub fn super_segment(&self, payload: &[u8], mss: u16) -> (VirtioNetHdr, Vec<u8>) {
        let mut packet = self.packet(payload);
        let l4 = if self.v6 { 40 } else { 20 };
        set_partial_checksum(&mut packet, l4, 16);
        let hdr = VirtioNetHdr {
            needs_csum: true,
            data_valid: false,
            gso_type: if self.v6 {
                GsoType::TcpV6
            } else {
                GsoType::TcpV4
            },
            ecn: self.flags & CWR != 0,
            hdr_len: self.headers_len() as u16,
            gso_size: mss,
            csum_start: l4 as u16,
            csum_offset: 16,
        };
        (hdr, packet)
    }
}

/// A UDP packet from the test addresses.
pub(super) fn udp(v6: bool, payload: &[u8]) -> Vec<u8> {
    let builder = if v6 {
        PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
    } else {
        PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
    };
    let mut out = Vec::new();
    builder.udp(5353, 4789).write(&mut out, payload).unwrap();
    out
}

/// Replaces the transport checksum at `l4 + offset` by the pseudo-header sum, as the
/// kernel leaves it with `NEEDS_CSUM`.
pub(super) fn set_partial_checksum(packet: &mut [u8], l4: usize, offset: usize) {
    let v6 = packet[0] >> 4 == 6;
    let (src, dst, proto) = if v6 {
        (&packet[8..24], &packet[24..40], packet[6])
    } else {
        (&packet[12..16], &packet[16..20], packet[9])
    };
    let len = (packet.len() - l4) as u16;
    let sum = Sum16BitWords::new()
        .add_slice(src)
        .add_slice(dst)
        .add_2bytes([0, proto])
        .add_2bytes(len.to_be_bytes());
    let partial = !sum.ones_complement().to_be();
    packet[l4 + offset..l4 + offset + 2].copy_from_slice(&partial.to_be_bytes());
}

/// Asserts that `packet` parses strictly (lengths consistent) and that its IPv4 header
/// checksum and its TCP or UDP checksum are right; returns the transport payload.
pub(super) fn assert_valid(packet: &[u8]) -> Vec<u8> {
    let sliced = SlicedPacket::from_ip(packet).expect("a well-formed IP packet");
    let addrs = match sliced.net.as_ref().expect("an IP header") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(
                h.to_header().calc_header_checksum(),
                h.header_checksum(),
                "IPv4 checksum"
            );
            Err((h.source(), h.destination()))
        }
        NetSlice::Ipv6(ip) => Ok((ip.header().source(), ip.header().destination())),
        NetSlice::Arp(_) => panic!("not IP"),
    };
    match sliced.transport.as_ref().expect("a transport header") {
        TransportSlice::Tcp(tcp) => {
            let expected = match addrs {
                Err((s, d)) => tcp.calc_checksum_ipv4(s, d),
                Ok((s, d)) => tcp.calc_checksum_ipv6(s, d),
            };
            assert_eq!(expected.unwrap(), tcp.checksum(), "TCP checksum");
            tcp.payload().to_vec()
        }
        TransportSlice::Udp(udp) => {
            let h = udp.to_header();
            let expected = match addrs {
                Err((s, d)) => h.calc_checksum_ipv4_raw(s, d, udp.payload()),
                Ok((s, d)) => h.calc_checksum_ipv6_raw(s, d, udp.payload()),
            };
            assert_eq!(expected.unwrap(), udp.checksum(), "UDP checksum");
            udp.payload().to_vec()
        }
        other => panic!("unexpected transport {other:?}"),
    }
}

/// A payload whose bytes say where they are.
pub(super) fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}
