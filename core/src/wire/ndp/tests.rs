use super::*;
use crate::wire::icmp::Ipv6Packet;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// Source, destination, hop limit and ICMPv6 message of a frame or an IPv6 packet.
fn split(bytes: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, &[u8]) {
    let packet = if bytes[0] >> 4 == 6 {
        bytes
    } else {
        &bytes[14..]
    };
    let ip = Ipv6Packet::parse(packet).unwrap();
    (ip.src(), ip.dst(), ip.hop_limit(), ip.icmpv6().unwrap())
}

fn ends(src: Ipv6Addr, dst: Ipv6Addr) -> Endpoints {
    Endpoints {
        src_mac: MAC,
        dst_mac: PEER,
        src,
        dst,
    }
}

#[test]
fn solicited_node_group() {
    assert_eq!(
        solicited_node(a("fe80::200:ff:fe00:1")),
        a("ff02::1:ff00:1")
    );
    assert_eq!(
        solicited_node(a("2001:db8::abcd:1234")),
        a("ff02::1:ffcd:1234")
    );
    assert!(is_solicited_node(a("ff02::1:ffcd:1234")));
    assert!(!is_solicited_node(a("ff02::1:2")));
}

#[test]
fn ns_frame_layout_round_trip_and_checks() {
    let target = a("fe80::1");
    let group = solicited_node(target);
    let f = neighbor_solicitation(
        &Endpoints::to_group(MAC, a("fe80::2"), group),
        target,
        Some(MAC),
        None,
    );
    assert_eq!(
        &f[..14],
        &[0x33, 0x33, 0xff, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]
    );
    assert_eq!(&f[14..22], &[0x60, 0, 0, 0, 0, 32, 58, 255]);
    let (s, d, h, m) = split(&f);
    assert_eq!(m.len(), 32);
    assert_eq!(&m[4..8], &[0; 4]);
    assert_eq!(&m[24..], &[1, 1, 2, 0, 0, 0, 0, 1]);
    assert_eq!(
        parse(s, d, h, m),
        Ok(NdpMessage::NeighborSolicitation(NeighborSolicit {
            target,
            source_mac: Some(MAC),
            nonce: None
        }))
    );
    assert_eq!(parse(s, d, 254, m), Err(NdpError::BadHopLimit));
    let mut bad = m.to_vec();
    bad[10] ^= 1;
    assert_eq!(parse(s, d, h, &bad), Err(NdpError::BadChecksum));
    // DAD probe: from ::, no SLLAO, to the solicited-node group, with a nonce.
    let dad = neighbor_solicitation(
        &Endpoints::to_group(MAC, Ipv6Addr::UNSPECIFIED, group),
        target,
        None,
        Some([1; 6]),
    );
    let (s, d, h, m) = split(&dad);
    assert!(matches!(
        parse(s, d, h, m),
        Ok(NdpMessage::NeighborSolicitation(NeighborSolicit {
            nonce: Some([1, 1, 1, 1, 1, 1]),
            ..
        }))
    ));
    // From :: with an SLLAO is invalid.
    let bad = neighbor_solicitation(
        &Endpoints::to_group(MAC, Ipv6Addr::UNSPECIFIED, group),
        target,
        Some(MAC),
        None,
    );
    let (s, d, h, m) = split(&bad);
    assert_eq!(parse(s, d, h, m), Err(NdpError::Invalid));
}

#[test]
fn na_round_trip_and_solicited_multicast_is_invalid() {
    let flags = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let f = neighbor_advertisement(
        &ends(a("fe80::1"), a("fe80::2")),
        a("fe80::1"),
        flags,
        Some(MAC),
    );
    assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    let (s, d, h, m) = split(&f);
    assert_eq!(&m[4..8], &[0x60, 0, 0, 0]);
    assert_eq!(
        parse(s, d, h, m),
        Ok(NdpMessage::NeighborAdvertisement(NeighborAdvert {
            target: a("fe80::1"),
            flags,
            target_mac: Some(MAC)
        }))
    );
    let f = neighbor_advertisement(
        &Endpoints::to_group(MAC, a("fe80::1"), ALL_NODES),
        a("fe80::1"),
        flags,
        Some(MAC),
    );
    let (s, d, h, m) = split(&f);
    assert_eq!(parse(s, d, h, m), Err(NdpError::Invalid));
}

#[test]
fn rs_carries_our_mac_unless_from_unspecified() {
    let f = router_solicitation(MAC, a("fe80::1"));
    assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 2]);
    let (s, d, h, m) = split(&f);
    assert_eq!((d, h), (ALL_ROUTERS, 255));
    assert_eq!(&m[8..], &[1, 1, 2, 0, 0, 0, 0, 1]);
    assert_eq!(parse(s, d, h, m), Ok(NdpMessage::RouterSolicitation));
    let f = router_solicitation(MAC, Ipv6Addr::UNSPECIFIED);
    let (s, d, h, m) = split(&f);
    assert_eq!(m.len(), 8);
    assert_eq!(parse(s, d, h, m), Ok(NdpMessage::RouterSolicitation));
}

#[test]
fn ra_with_all_options_round_trips() {
    let prefix = PrefixInfo {
        prefix: a("2001:db8:1::"),
        prefix_len: 64,
        on_link: true,
        autonomous: true,
        valid_lifetime: 86400,
        preferred_lifetime: 14400,
    };
    let dns = [a("2001:db8:1::53")];
    let sent = RouterAdvert {
        cur_hop_limit: 64,
        router_lifetime: 1800,
        source_mac: Some(MAC),
        prefixes: vec![prefix],
        mtu: Some(1400),
        rdnss: vec![(600, dns.to_vec())],
        dnssl: vec![(600, vec!["lab.example".into(), "b.example".into()])],
        ..RouterAdvert::default()
    };
    let f = router_advertisement(&Endpoints::to_group(MAC, a("fe80::1"), ALL_NODES), &sent);
    let (s, d, h, m) = split(&f);
    let Ok(NdpMessage::RouterAdvertisement(ra)) = parse(s, d, h, m) else {
        panic!()
    };
    assert_eq!(ra.router_lifetime, 1800);
    assert_eq!(ra.source_mac, Some(MAC));
    assert_eq!(ra.mtu, Some(1400));
    assert_eq!(ra.prefixes, vec![prefix]);
    assert_eq!(ra.rdnss, vec![(600, dns.to_vec())]);
    assert_eq!(ra, sent);
    // From a global address: invalid.
    let f = router_advertisement(
        &Endpoints::to_group(MAC, a("2001:db8::1"), ALL_NODES),
        &sent,
    );
    let (s, d, h, m) = split(&f);
    assert_eq!(parse(s, d, h, m), Err(NdpError::Invalid));
}

/// A router advertisement message (type first) with lifetime 0x0708 and `options`.
fn ra_msg(options: &[u8]) -> Vec<u8> {
    let mut msg = vec![
        icmpv6_type::ROUTER_ADVERTISEMENT,
        0,
        0,
        0,
        64,
        0,
        0x07,
        0x08,
    ];
    msg.extend_from_slice(&[0; 8]);
    msg.extend_from_slice(options);
    msg
}

#[test]
fn a_bad_dns_option_is_ignored_alone() {
    // RDNSS of length 2 (no room for an address) and a DNSSL with a bad label.
    let mut options = vec![25, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    options.extend_from_slice(&[31, 2, 0, 0, 0, 0, 1, 0, 3, b'a', b'*', b'c', 0, 0, 0, 0]);
    let p = icmpv6_packet(a("fe80::1"), ALL_NODES, 255, false, ra_msg(&options));
    let (s, d, h, m) = split(&p);
    let Ok(NdpMessage::RouterAdvertisement(ra)) = parse(s, d, h, m) else {
        panic!()
    };
    assert_eq!(ra.router_lifetime, 0x0708);
    assert!(ra.rdnss.is_empty() && ra.dnssl.is_empty());
}

#[test]
fn an_mtu_option_of_the_wrong_size_is_skipped_alone() {
    // MTU with length 2, then a source link-layer option that still counts.
    let mut options = vec![5, 2, 0, 0, 0, 0, 5, 0x78, 0, 0, 0, 0, 0, 0, 0, 0];
    options.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
    let p = icmpv6_packet(a("fe80::1"), ALL_NODES, 255, false, ra_msg(&options));
    let (s, d, h, m) = split(&p);
    let Ok(NdpMessage::RouterAdvertisement(ra)) = parse(s, d, h, m) else {
        panic!()
    };
    assert_eq!((ra.mtu, ra.source_mac), (None, Some(MAC)));
    // A prefix option of the wrong size is malformed (RFC 4861 §4.6.2: length 4).
    let mut options = vec![3, 3];
    options.extend_from_slice(&[0; 22]);
    let p = icmpv6_packet(a("fe80::1"), ALL_NODES, 255, false, ra_msg(&options));
    let (s, d, h, m) = split(&p);
    assert_eq!(parse(s, d, h, m), Err(NdpError::Malformed));
}

#[test]
fn zero_length_and_overlong_options_are_malformed() {
    for opts in [
        &[1u8, 0, 0, 0, 0, 0, 0, 0][..],
        &[1, 2, 0, 0, 0, 0, 0, 0],
        &[1],
        &[5],
        &[5, 0, 0, 0, 0, 0, 0, 0],
        &[5, 3, 0, 0, 0, 0, 0, 0],
    ] {
        let mut msg = vec![icmpv6_type::ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(opts);
        let p = icmpv6_packet(a("fe80::2"), ALL_ROUTERS, 255, false, msg);
        let (s, d, h, m) = split(&p);
        assert_eq!(parse(s, d, h, m), Err(NdpError::Malformed), "{opts:?}");
    }
}

#[test]
fn short_messages_and_other_codes_are_malformed() {
    let p = icmpv6_packet(
        a("fe80::2"),
        ALL_NODES,
        255,
        false,
        vec![135, 0, 0, 0, 0, 0],
    );
    let (s, d, h, m) = split(&p);
    assert_eq!(parse(s, d, h, m), Err(NdpError::Malformed));
    let mut ns = vec![135, 1, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&a("fe80::1").octets());
    let p = icmpv6_packet(a("fe80::2"), solicited_node(a("fe80::1")), 255, false, ns);
    let (s, d, h, m) = split(&p);
    assert_eq!(parse(s, d, h, m), Err(NdpError::Malformed));
}

proptest::proptest! {
    #[test]
    fn arbitrary_messages_never_panic(
        kind in 128u8..=137,
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
    ) {
        let mut msg = vec![kind, 0, 0, 0];
        msg.extend_from_slice(&body);
        let p = icmpv6_packet(a("fe80::2"), ALL_NODES, 255, false, msg);
        let (s, d, h, m) = split(&p);
        let _ = parse(s, d, h, m);
    }
}

#[test]
fn frames_are_written_into_one_buffer_sized_once() {
    let target = a("fe80::1");
    let frames = [
        neighbor_solicitation(&ends(a("fe80::2"), target), target, Some(MAC), Some([3; 6])),
        neighbor_advertisement(
            &ends(target, a("fe80::2")),
            target,
            NaFlags::default(),
            Some(MAC),
        ),
        router_solicitation(MAC, a("fe80::2")),
        router_solicitation(MAC, Ipv6Addr::UNSPECIFIED),
        crate::wire::mld::report(MAC, target, &[(4, a("ff02::fb")), (3, a("ff05::2"))]),
    ];
    for f in frames {
        // Allocated once at the final size: nothing was appended beyond it.
        assert_eq!(f.capacity(), f.len());
    }
}
