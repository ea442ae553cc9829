//! The IPv4 host through the [`Tap`]: routing and queueing for ARP, ICMP errors to the
//! TUN, ARP answers, learning, announcements and defence, ingress checks, and the
//! multicast groups learnt from the TUN side's IGMP reports.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

use crate::io::{Egress, Ingress, Transmit, HEADROOM};
use crate::ipv4::route::Ipv4Interface;
use crate::ipv4::Ipv4Mode;
use crate::testing::{drain, static_ipv4_tap};
use crate::wire::arp::{ArpPacket, FRAME_LEN as ARP_FRAME_LEN};
use crate::wire::ethernet::MacAddr;
use crate::{Config, Event, Ipv4Event, Ipv6Mode, Tap};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);
const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn tap_with(gateway: Option<&str>, now: Instant) -> Tap {
    static_ipv4_tap(OUR_MAC, gateway.map(ip), now)
}

/// A UDP packet behind headroom, as the driver reads it from the TUN.
fn udp_from_tun(dst: &str, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; HEADROOM];
    PacketBuilder::ipv4([192, 0, 2, 123], ip(dst).octets(), 64)
        .udp(4000, 5000)
        .write(&mut frame, payload)
        .unwrap();
    frame
}

fn arp_frame(packet: ArpPacket, dst: MacAddr) -> Vec<u8> {
    packet.to_frame(dst)
}

fn link_arps(transmits: &[Transmit]) -> Vec<(MacAddr, ArpPacket)> {
    transmits
        .iter()
        .filter_map(|t| match t {
            Transmit::Link(f) if f[12..14] == [0x08, 0x06] => Some((
                MacAddr(f[0..6].try_into().unwrap()),
                ArpPacket::parse(&f[14..]).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn first_packet_to_a_new_neighbour_is_queued_and_sent_after_arp() {
    let t0 = Instant::now();
    let mut tap = tap_with(Some("192.0.2.1"), t0);
    let mut first = udp_from_tun("192.0.2.10", b"first");
    let mut second = udp_from_tun("192.0.2.10", b"second");
    assert_eq!(tap.handle_tun_packet(t0, &mut first), Egress::Consumed);
    assert_eq!(tap.handle_tun_packet(t0, &mut second), Egress::Consumed);
    let out = drain(&mut tap);
    let arps = link_arps(&out);
    assert_eq!(out.len(), 1, "one ARP request for two packets");
    assert_eq!(arps[0].0, MacAddr::BROADCAST);
    assert_eq!(
        arps[0].1,
        ArpPacket::request(OUR_MAC, ip("192.0.2.123"), ip("192.0.2.10"))
    );

    let reply = ArpPacket::reply_to(&arps[0].1, PEER_MAC, ip("192.0.2.10"));
    let t1 = t0 + Duration::from_millis(3);
    assert_eq!(
        tap.handle_link_frame(t1, &arp_frame(reply, OUR_MAC)),
        Ingress::Consumed
    );
    let flushed = drain(&mut tap);
    let payloads: Vec<&[u8]> = flushed
        .iter()
        .map(|t| match t {
            Transmit::Link(f) => {
                assert_eq!(&f[0..6], &PEER_MAC.0);
                assert_eq!(&f[6..12], &OUR_MAC.0);
                assert_eq!(&f[12..14], &[0x08, 0x00]);
                &f[14 + 28..]
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(payloads, vec![&b"first"[..], &b"second"[..]]);

    // Now a cache hit: sent in place, no copy, nothing queued.
    let mut third = udp_from_tun("192.0.2.10", b"third");
    let ptr = third.as_ptr();
    assert_eq!(tap.handle_tun_packet(t1, &mut third), Egress::Send);
    assert_eq!(third.as_ptr(), ptr);
    assert_eq!(&third[0..6], &PEER_MAC.0);
    assert!(tap.poll_transmit().is_none());
    let stats = tap.stats();
    assert_eq!(stats.arp_cache.queued, 2);
    assert_eq!(stats.arp_cache.resolved, 1);
}

#[test]
fn off_link_goes_to_the_gateway_mac() {
    let t0 = Instant::now();
    let mut tap = tap_with(Some("192.0.2.1"), t0);
    let mut pkt = udp_from_tun("203.0.113.5", b"x");
    assert_eq!(tap.handle_tun_packet(t0, &mut pkt), Egress::Consumed);
    let arps = link_arps(&drain(&mut tap));
    assert_eq!(arps[0].1.target_ip, ip("192.0.2.1"));
    let reply = ArpPacket::reply_to(&arps[0].1, GW_MAC, ip("192.0.2.1"));
    let _ = tap.handle_link_frame(t0, &arp_frame(reply, OUR_MAC));
    match &drain(&mut tap)[..] {
        [Transmit::Link(f)] => assert_eq!(&f[0..6], &GW_MAC.0),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn broadcast_and_multicast_need_no_arp() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    for (dst, mac) in [
        ("255.255.255.255", [0xff; 6]),
        ("192.0.2.255", [0xff; 6]),
        ("224.0.0.251", [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]),
        ("239.129.2.3", [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]),
    ] {
        let mut pkt = udp_from_tun(dst, b"x");
        assert_eq!(tap.handle_tun_packet(t0, &mut pkt), Egress::Send, "{dst}");
        assert_eq!(&pkt[0..6], &mac, "{dst}");
    }
    assert!(
        drain(&mut tap).is_empty(),
        "no ARP for broadcast or multicast"
    );
}

#[test]
fn off_link_without_gateway_gets_network_unreachable() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let mut pkt = udp_from_tun("203.0.113.5", b"x");
    assert_eq!(tap.handle_tun_packet(t0, &mut pkt), Egress::Consumed);
    let out = drain(&mut tap);
    let [Transmit::Tun(icmp)] = &out[..] else {
        panic!("{out:?}")
    };
    let sliced = SlicedPacket::from_ip(icmp).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = sliced.transport else {
        panic!()
    };
    assert_eq!((i.type_u8(), i.code_u8()), (3, 0));
    assert_eq!(tap.stats().ipv4.drop_no_route, 1);
}

#[test]
fn failed_resolution_returns_host_unreachable_per_queued_packet() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    for _ in 0..2 {
        let mut pkt = udp_from_tun("192.0.2.77", b"lost");
        let _ = tap.handle_tun_packet(t0, &mut pkt);
    }
    let mut requests = link_arps(&drain(&mut tap)).len();
    let mut icmps = Vec::new();
    while let Some(t) = tap.poll_timeout() {
        tap.handle_timeout(t);
        for t in drain(&mut tap) {
            match t {
                Transmit::Link(_) => requests += 1,
                Transmit::Tun(p) => icmps.push(p),
            }
        }
        if t > t0 + Duration::from_secs(10) {
            break;
        }
    }
    assert_eq!(
        requests,
        3 + 1,
        "3 ARP requests plus the second announcement"
    );
    assert_eq!(icmps.len(), 2);
    for p in &icmps {
        let sliced = SlicedPacket::from_ip(p).unwrap();
        let Some(etherparse::NetSlice::Ipv4(v4)) = &sliced.net else {
            panic!()
        };
        assert_eq!(v4.header().source_addr(), ip("192.0.2.77"));
        assert_eq!(v4.header().destination_addr(), ip("192.0.2.123"));
        let Some(TransportSlice::Icmpv4(i)) = sliced.transport else {
            panic!()
        };
        assert_eq!((i.type_u8(), i.code_u8()), (3, 1));
    }
    assert_eq!(tap.stats().arp_cache.drop_unreachable, 2);
    assert_eq!(
        tap.poll_event(),
        Some(Event::Ipv4(Ipv4Event::Up(tap.ipv4().unwrap().clone())))
    );
    assert_eq!(
        tap.poll_event(),
        Some(Event::Ipv4(Ipv4Event::NeighbourUnreachable(ip(
            "192.0.2.77"
        ))))
    );
}

#[test]
fn answers_arp_only_for_our_address_and_learns_the_asker() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let request = ArpPacket::request(PEER_MAC, ip("192.0.2.10"), ip("192.0.2.123"));
    let _ = tap.handle_link_frame(t0, &arp_frame(request, MacAddr::BROADCAST));
    let out = drain(&mut tap);
    let [Transmit::Link(reply)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(reply.len(), ARP_FRAME_LEN);
    assert_eq!(&reply[0..6], &PEER_MAC.0);
    assert_eq!(
        ArpPacket::parse(&reply[14..]).unwrap(),
        ArpPacket::reply_to(&request, OUR_MAC, ip("192.0.2.123"))
    );
    assert!(
        tap.arp_cache().get(ip("192.0.2.10")).is_some(),
        "the asker is learned"
    );

    // A request for someone else: no answer, and the stranger is not learned.
    let other = ArpPacket::request(
        MacAddr([2, 0, 0, 0, 0, 0x33]),
        ip("192.0.2.33"),
        ip("192.0.2.44"),
    );
    let _ = tap.handle_link_frame(t0, &arp_frame(other, MacAddr::BROADCAST));
    assert!(drain(&mut tap).is_empty());
    assert!(tap.arp_cache().get(ip("192.0.2.33")).is_none());
    // An unsolicited reply from a stranger is not learned either.
    let unsolicited =
        ArpPacket::reply_to(&request, MacAddr([2, 0, 0, 0, 0, 0x55]), ip("192.0.2.55"));
    let _ = tap.handle_link_frame(t0, &arp_frame(unsolicited, OUR_MAC));
    assert!(tap.arp_cache().get(ip("192.0.2.55")).is_none());
}

#[test]
fn announces_twice_two_seconds_apart() {
    let t0 = Instant::now();
    let iface = Ipv4Interface::new(ip("192.0.2.123"), 24, None);
    let config = Config {
        mac: Some(OUR_MAC),
        ipv4: Ipv4Mode::Static(iface),
        ipv6: Ipv6Mode::Disabled,
        ..Config::default()
    };
    let mut tap = Tap::new(config, t0);
    let first = link_arps(&drain(&mut tap));
    assert_eq!(
        first,
        vec![(
            MacAddr::BROADCAST,
            ArpPacket::announcement(OUR_MAC, ip("192.0.2.123"))
        )]
    );
    assert_eq!(tap.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    tap.handle_timeout(t0 + Duration::from_secs(2));
    assert_eq!(link_arps(&drain(&mut tap)).len(), 1);
    assert_eq!(tap.poll_timeout(), None, "idle: no timer at all");
}

#[test]
fn conflict_raises_event_and_defends_at_most_every_ten_seconds() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let _ = tap.poll_event();
    let intruder = MacAddr([2, 0, 0, 0, 0, 0x66]);
    let claim = ArpPacket::announcement(intruder, ip("192.0.2.123"));
    let _ = tap.handle_link_frame(t0, &arp_frame(claim, MacAddr::BROADCAST));
    assert_eq!(
        tap.poll_event(),
        Some(Event::Ipv4(Ipv4Event::AddressConflict {
            address: ip("192.0.2.123"),
            mac: intruder
        }))
    );
    assert_eq!(link_arps(&drain(&mut tap)).len(), 1, "one defence");
    let _ = tap.handle_link_frame(
        t0 + Duration::from_secs(1),
        &arp_frame(claim, MacAddr::BROADCAST),
    );
    assert!(
        link_arps(&drain(&mut tap)).is_empty(),
        "no second defence within 10 s"
    );
    assert_eq!(
        tap.poll_event(),
        None,
        "a flood of claims raises one event per interval"
    );
    assert_eq!(tap.stats().ipv4.address_conflicts, 2);
    let _ = tap.handle_link_frame(
        t0 + Duration::from_secs(10),
        &arp_frame(claim, MacAddr::BROADCAST),
    );
    assert_eq!(
        link_arps(&drain(&mut tap)).len(),
        1,
        "defends again after 10 s"
    );
    assert!(matches!(
        tap.poll_event(),
        Some(Event::Ipv4(Ipv4Event::AddressConflict { .. }))
    ));
}

/// Sets or clears DF (flags byte at IP offset 6) and fixes the header checksum.
fn with_df(mut frame: Vec<u8>, df: bool) -> Vec<u8> {
    if df {
        frame[HEADROOM + 6] |= 0x40;
    } else {
        frame[HEADROOM + 6] &= !0x40;
    }
    frame[HEADROOM + 10..HEADROOM + 12].fill(0);
    let h = etherparse::Ipv4HeaderSlice::from_slice(&frame[HEADROOM..])
        .unwrap()
        .to_header();
    let csum = h.calc_header_checksum();
    frame[HEADROOM + 10..HEADROOM + 12].copy_from_slice(&csum.to_be_bytes());
    frame
}

#[test]
fn too_big_packets_get_fragmentation_needed_when_df_is_set() {
    let t0 = Instant::now();
    let iface = Ipv4Interface::new(ip("192.0.2.123"), 24, None);
    let config = Config {
        mac: Some(OUR_MAC),
        mtu: 1400,
        ipv4: Ipv4Mode::Static(iface),
        ..Config::default()
    };
    let mut tap = Tap::new(config, t0);
    drain(&mut tap);
    let mut big = with_df(udp_from_tun("192.0.2.255", &[0u8; 1400]), true);
    assert_eq!(tap.handle_tun_packet(t0, &mut big), Egress::Consumed);
    let out = drain(&mut tap);
    let [Transmit::Tun(icmp)] = &out[..] else {
        panic!("{out:?}")
    };
    let sliced = SlicedPacket::from_ip(icmp).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = sliced.transport else {
        panic!()
    };
    assert_eq!((i.type_u8(), i.code_u8()), (3, 4));
    assert_eq!(&i.bytes5to8()[2..4], &1400u16.to_be_bytes());

    let mut big_no_df = with_df(udp_from_tun("192.0.2.255", &[0u8; 1400]), false);
    assert_eq!(tap.handle_tun_packet(t0, &mut big_no_df), Egress::Consumed);
    assert!(drain(&mut tap).is_empty());
    assert_eq!(tap.stats().ipv4.drop_too_big, 2);
}

fn ipv4_frame(dst_mac: MacAddr, payload_len: usize, pad_to: usize) -> Vec<u8> {
    ipv4_frame_to(dst_mac, ip("192.0.2.123"), payload_len, pad_to)
}

fn ipv4_frame_to(dst_mac: MacAddr, dst: Ipv4Addr, payload_len: usize, pad_to: usize) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC.0, dst_mac.0)
        .ipv4([192, 0, 2, 10], dst.octets(), 64)
        .udp(1, 2)
        .write(&mut f, &vec![0xab; payload_len])
        .unwrap();
    if f.len() < pad_to {
        f.resize(pad_to, 0);
    }
    f
}

#[test]
fn ingress_strips_header_and_trims_padding() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let frame = ipv4_frame(OUR_MAC, 1, 60);
    assert_eq!(frame.len(), 60);
    assert_eq!(
        tap.handle_link_frame(t0, &frame),
        Ingress::Deliver(14..14 + 29)
    );
    // A group the TUN side joined (an mDNS responder, say).
    let mut report = igmp_from_tun(ip("224.0.0.251"), igmpv2(REPORT_V2, ip("224.0.0.251")));
    assert_eq!(tap.handle_tun_packet(t0, &mut report), Egress::Send);
    let mcast = group_frame(ip("224.0.0.251"), 10);
    assert_eq!(&mcast[0..6], &[1, 0, 0x5e, 0, 0, 0xfb]);
    assert!(matches!(
        tap.handle_link_frame(t0, &mcast),
        Ingress::Deliver(_)
    ));
    let bcast = ipv4_frame(MacAddr::BROADCAST, 10, 0);
    assert!(matches!(
        tap.handle_link_frame(t0, &bcast),
        Ingress::Deliver(_)
    ));
}

#[test]
fn no_address_drops_tun_traffic_and_ignores_arp() {
    let t0 = Instant::now();
    let mut tap = Tap::new(
        Config {
            mac: Some(OUR_MAC),
            ..Config::default()
        },
        t0,
    );
    let mut pkt = udp_from_tun("192.0.2.10", b"x");
    assert_eq!(tap.handle_tun_packet(t0, &mut pkt), Egress::Consumed);
    let request = ArpPacket::request(PEER_MAC, ip("192.0.2.10"), ip("192.0.2.123"));
    let _ = tap.handle_link_frame(t0, &arp_frame(request, MacAddr::BROADCAST));
    assert!(drain(&mut tap).is_empty());
    assert_eq!(tap.stats().ipv4.drop_no_address, 1);
}

/// A UDP datagram from the LAN peer to a multicast group, on the group's MAC.
fn group_frame(group: Ipv4Addr, payload_len: usize) -> Vec<u8> {
    ipv4_frame_to(MacAddr::ipv4_multicast(group), group, payload_len, 0)
}

const REPORT_V2: u8 = 0x16;
const LEAVE_V2: u8 = 0x17;

/// An IGMPv2 report or leave for `group`.
fn igmpv2(kind: u8, group: Ipv4Addr) -> Vec<u8> {
    let g = group.octets();
    vec![kind, 0, 0, 0, g[0], g[1], g[2], g[3]]
}

/// An IGMPv3 report with one record of `record_type`, no sources, for `group`.
fn igmpv3(record_type: u8, group: Ipv4Addr) -> Vec<u8> {
    let g = group.octets();
    vec![
        0x22,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        record_type,
        0,
        0,
        0,
        g[0],
        g[1],
        g[2],
        g[3],
    ]
}

/// `msg` with its checksum, in an IPv4 packet from us to `dst` with TTL 1 as the
/// kernel sends it, behind headroom.
fn igmp_from_tun(dst: Ipv4Addr, mut msg: Vec<u8>) -> Vec<u8> {
    msg[2..4].fill(0);
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_slice(&msg)
        .ones_complement();
    // etherparse sums the words in native byte order.
    msg[2..4].copy_from_slice(&sum.to_ne_bytes());
    let mut frame = vec![0u8; HEADROOM];
    PacketBuilder::ipv4([192, 0, 2, 123], dst.octets(), 1)
        .write(&mut frame, etherparse::IpNumber::IGMP, &msg)
        .unwrap();
    frame
}

#[test]
fn multicast_is_delivered_for_all_hosts_and_the_groups_the_tun_joined_only() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let group = ip("239.1.2.3");
    assert_eq!(
        tap.handle_link_frame(t0, &group_frame(group, 10)),
        Ingress::Consumed,
        "nobody joined it yet"
    );
    assert!(matches!(
        tap.handle_link_frame(t0, &group_frame(ip("224.0.0.1"), 10)),
        Ingress::Deliver(_)
    ));

    // The kernel joins: the report goes out unchanged (snooping bridges need it).
    let mut join = igmp_from_tun(group, igmpv2(REPORT_V2, group));
    let sent = join.clone();
    assert_eq!(tap.handle_tun_packet(t0, &mut join), Egress::Send);
    assert_eq!(&join[0..6], &MacAddr::ipv4_multicast(group).0);
    assert_eq!(&join[HEADROOM..], &sent[HEADROOM..]);
    assert_eq!(tap.ipv4_groups(), &[group]);
    assert!(matches!(
        tap.handle_link_frame(t0, &group_frame(group, 10)),
        Ingress::Deliver(_)
    ));
    // 224.1.2.3 shares the MAC of 239.1.2.3 but is not joined.
    let twin = ip("224.1.2.3");
    assert_eq!(
        MacAddr::ipv4_multicast(twin),
        MacAddr::ipv4_multicast(group)
    );
    let frame = ipv4_frame_to(MacAddr::ipv4_multicast(group), twin, 10, 0);
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);

    // IGMPv3: change to exclude {} joins, change to include {} leaves.
    let other = ip("239.1.2.4");
    let mut v3_join = igmp_from_tun(ip("224.0.0.22"), igmpv3(4, other));
    assert_eq!(tap.handle_tun_packet(t0, &mut v3_join), Egress::Send);
    assert_eq!(tap.ipv4_groups(), &[group, other]);
    let mut v3_leave = igmp_from_tun(ip("224.0.0.22"), igmpv3(3, other));
    assert_eq!(tap.handle_tun_packet(t0, &mut v3_leave), Egress::Send);
    // An IGMPv2 leave, to all-routers.
    let mut leave = igmp_from_tun(ip("224.0.0.2"), igmpv2(LEAVE_V2, group));
    assert_eq!(tap.handle_tun_packet(t0, &mut leave), Egress::Send);
    assert!(tap.ipv4_groups().is_empty());
    assert_eq!(
        tap.handle_link_frame(t0, &group_frame(group, 10)),
        Ingress::Consumed
    );
    // A corrupt report teaches nothing, and still goes out.
    let mut corrupt = igmp_from_tun(group, igmpv2(REPORT_V2, group));
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert_eq!(tap.handle_tun_packet(t0, &mut corrupt), Egress::Send);
    assert!(tap.ipv4_groups().is_empty());

    let s = tap.stats();
    assert_eq!(
        s.link.drop_not_for_us, 2,
        "the group's MAC, before and after"
    );
    assert_eq!(s.ipv4.drop_link_not_for_us, 1, "the twin group");
}

#[test]
fn groups_beyond_the_limit_are_not_learnt_and_counted() {
    let t0 = Instant::now();
    let config = Config {
        mac: Some(OUR_MAC),
        ipv4: Ipv4Mode::Static(Ipv4Interface::new(ip("192.0.2.123"), 24, None)),
        ipv6: Ipv6Mode::Disabled,
        max_ipv4_groups: 1,
        ..Config::default()
    };
    let mut tap = Tap::new(config, t0);
    for group in [ip("239.1.2.3"), ip("239.1.2.4")] {
        let mut join = igmp_from_tun(group, igmpv2(REPORT_V2, group));
        assert_eq!(tap.handle_tun_packet(t0, &mut join), Egress::Send);
    }
    assert_eq!(tap.ipv4_groups(), &[ip("239.1.2.3")]);
    assert_eq!(tap.stats().ipv4.igmp_groups_not_learnt, 1);
    assert_eq!(
        tap.handle_link_frame(t0, &group_frame(ip("239.1.2.4"), 10)),
        Ingress::Consumed
    );
}

#[test]
fn a_packet_shorter_than_its_own_header_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let mut frame = ipv4_frame(OUR_MAC, 10, 0);
    // Total length 16, header length 20: the checksum is right, the packet is not.
    frame[14 + 2..14 + 4].copy_from_slice(&16u16.to_be_bytes());
    frame[14 + 10..14 + 12].fill(0);
    let h = etherparse::Ipv4HeaderSlice::from_slice(&frame[14..])
        .unwrap()
        .to_header();
    frame[14 + 10..14 + 12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    let s = tap.stats();
    assert_eq!(s.ipv4.drop_link_malformed, 1);
    assert_eq!(s.tun.packets_out, 0);
}

#[test]
fn our_own_packets_never_bring_icmp_errors_to_the_tun() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let packet = |dst: &str| udp_from_tun(dst, b"ours")[HEADROOM..].to_vec();
    // No route, and a neighbour that never answers.
    tap.send_ipv4_packet(t0, &packet("203.0.113.5"));
    tap.send_ipv4_packet(t0, &packet("192.0.2.77"));
    let mut out = drain(&mut tap);
    out.extend(
        crate::testing::run_until(&mut tap, t0 + Duration::from_secs(10))
            .into_iter()
            .map(|(_, t)| t),
    );
    assert!(
        crate::testing::tun_packets(&out).is_empty(),
        "nothing for the TUN: {out:?}"
    );
    let s = tap.stats();
    assert_eq!((s.ipv4.drop_no_route, s.arp_cache.drop_unreachable), (1, 1));
    assert_eq!(s.ipv4.icmp_errors_to_tun, 0);
}

#[test]
fn network_change_announces_again_and_makes_reachable_neighbours_stale() {
    use crate::neighbour::State;
    let t0 = Instant::now();
    let mut tap = tap_with(Some("192.0.2.1"), t0);
    let now = t0 + Duration::from_secs(5);
    drain_timers(&mut tap, now);
    let mut first = udp_from_tun("192.0.2.10", b"first");
    assert_eq!(tap.handle_tun_packet(now, &mut first), Egress::Consumed);
    let request = link_arps(&drain(&mut tap))[0].1;
    let reply = ArpPacket::reply_to(&request, PEER_MAC, ip("192.0.2.10"));
    let _ = tap.handle_link_frame(now, &arp_frame(reply, OUR_MAC));
    drain(&mut tap);
    let peer = ip("192.0.2.10");
    assert_eq!(
        tap.arp_cache().get(peer),
        Some((State::Reachable, PEER_MAC))
    );

    tap.network_changed(now);
    let announcement = ArpPacket::announcement(OUR_MAC, ip("192.0.2.123"));
    assert_eq!(
        link_arps(&drain(&mut tap)),
        vec![(MacAddr::BROADCAST, announcement)]
    );
    assert_eq!(tap.arp_cache().get(peer), Some((State::Stale, PEER_MAC)));
    let later = crate::testing::run_until(&mut tap, now + Duration::from_secs(2));
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].0, now + Duration::from_secs(2));
    let second: Vec<Transmit> = later.into_iter().map(|(_, t)| t).collect();
    assert_eq!(link_arps(&second), vec![(MacAddr::BROADCAST, announcement)]);
    // A stale neighbour is still used, then checked by a unicast request.
    let mut next = udp_from_tun("192.0.2.10", b"next");
    assert_eq!(tap.handle_tun_packet(now, &mut next), Egress::Send);
    assert_eq!(tap.arp_cache().get(peer).map(|e| e.0), Some(State::Delay));
}

fn drain_timers(tap: &mut Tap, until: Instant) {
    crate::testing::run_until(tap, until);
    crate::testing::events(tap);
}
