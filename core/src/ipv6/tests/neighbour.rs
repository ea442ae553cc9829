//! Neighbour resolution and the data path: NS out, NA in, queues, next hops, errors to
//! the TUN, what is dropped.

use super::*;

#[test]
fn egress_resolves_with_ns_queues_and_flushes_in_order() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::a");
    let now = t0 + Duration::from_secs(5);
    for payload in [&b"one"[..], b"two"] {
        let mut p = udp6_from_tun(ll(), peer, payload);
        assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Consumed);
    }
    let out = drain(&mut tap);
    let ns = of_type(&out, 135);
    assert_eq!(out.len(), 1, "one NS for two packets");
    assert_eq!((ns[0].src, ns[0].dst), (ll(), solicited_node(peer)));
    assert_eq!(ns[0].dst_mac, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x0a]));
    assert_eq!(&ns[0].msg[24..32], &[1, 1, 2, 0, 0, 0, 0, 0x64]);
    let flags = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let _ = tap.handle_link_frame(
        now,
        &na_frame(peer, ll(), flags, Some(PEER_MAC), PEER_MAC, OUR_MAC),
    );
    let flushed = drain(&mut tap);
    let payloads: Vec<&[u8]> = flushed
        .iter()
        .map(|t| match t {
            Transmit::Link(f) => {
                assert_eq!(&f[0..6], &PEER_MAC.0);
                assert_eq!(&f[12..14], &[0x86, 0xdd]);
                &f[14 + 48..]
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(payloads, vec![&b"one"[..], b"two"]);
    assert_eq!(tap.ndp_cache().get(peer).unwrap().0, State::Reachable);
    let mut p = udp6_from_tun(ll(), peer, b"three");
    assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Send);
    assert_eq!(&p[0..6], &PEER_MAC.0);
    let s = tap.stats();
    assert_eq!((s.ndp_cache.queued, s.ndp_cache.resolved), (2, 1));
}

#[test]
fn off_link_goes_to_the_router_and_on_link_prefix_goes_direct() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let now = t0 + Duration::from_secs(10);
    // The router's MAC is already known (stale) from its RA: sent at once.
    let mut p = udp6_from_tun(global(), a("2001:db8:99::1"), b"x");
    assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Send);
    assert_eq!(&p[0..6], &ROUTER_MAC.0);
    // An on-link global destination is resolved, from our global address.
    let mut p = udp6_from_tun(global(), a("2001:db8:1::a"), b"x");
    assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Consumed);
    let ns = of_type(&drain(&mut tap), 135);
    assert_eq!((ns[0].src, ns[0].dst), (global(), a("ff02::1:ff00:a")));
}

#[test]
fn multicast_maps_to_3333_and_needs_no_ndp() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let mut p = udp6_from_tun(ll(), a("ff02::fb"), b"mdns");
    assert_eq!(tap.handle_tun_packet(t0, &mut p), Egress::Send);
    assert_eq!(&p[0..6], &[0x33, 0x33, 0, 0, 0, 0xfb]);
    assert!(drain(&mut tap).is_empty());
}

#[test]
fn no_router_gives_no_route_and_oversize_gives_packet_too_big() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let dst = a("2001:db8:99::1");
    let mut p = udp6_from_tun(a("2001:db8:1::7"), dst, b"x");
    assert_eq!(tap.handle_tun_packet(t0, &mut p), Egress::Consumed);
    let errors = tun_icmp(&drain(&mut tap));
    assert_eq!(errors, vec![(dst, a("2001:db8:1::7"), 1, 0, vec![0; 4])]);
    assert_eq!(tap.stats().ipv6.drop_tun_no_route, 1);

    let mut tap = slaac_tap(t0);
    let mut big = udp6_from_tun(global(), dst, &[0u8; 1400]);
    assert_eq!(tap.handle_tun_packet(t0, &mut big), Egress::Consumed);
    let errors = tun_icmp(&drain(&mut tap));
    assert_eq!(
        errors,
        vec![(dst, global(), 2, 0, 1400u32.to_be_bytes().to_vec())]
    );
    assert_eq!(tap.stats().ipv6.drop_tun_too_big, 1);
}

#[test]
fn failed_resolution_sends_three_ns_then_address_unreachable_per_packet() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::77");
    for _ in 0..2 {
        let mut p = udp6_from_tun(ll(), peer, b"lost");
        let _ = tap.handle_tun_packet(t0 + Duration::from_secs(3), &mut p);
    }
    let mut out = drain(&mut tap);
    out.extend(run_until(&mut tap, t0 + Duration::from_secs(20)));
    assert_eq!(of_type(&out, 135).len(), 3);
    let errors = tun_icmp(&out);
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert_eq!((e.0, e.1, e.2, e.3), (peer, ll(), 1, 3));
    }
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::NeighbourUnreachable(peer))]
    );
    assert_eq!(tap.stats().ndp_cache.drop_unreachable, 2);
}

#[test]
fn na_override_rules_follow_rfc4861() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::a");
    let mut p = udp6_from_tun(ll(), peer, b"x");
    let _ = tap.handle_tun_packet(t0, &mut p);
    let solicited = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(peer, ll(), solicited, Some(PEER_MAC), PEER_MAC, OUR_MAC),
    );
    drain(&mut tap);
    assert_eq!(
        tap.ndp_cache().get(peer),
        Some((State::Reachable, PEER_MAC))
    );
    // No override, another MAC: only REACHABLE -> STALE, the MAC stays.
    let other = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(
            peer,
            ALL_NODES,
            NaFlags::default(),
            Some(other),
            other,
            MacAddr::ipv6_multicast(ALL_NODES),
        ),
    );
    assert_eq!(tap.ndp_cache().get(peer), Some((State::Stale, PEER_MAC)));
    // Unsolicited with override: the new MAC, STALE.
    let flags = NaFlags {
        override_flag: true,
        ..NaFlags::default()
    };
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(
            peer,
            ALL_NODES,
            flags,
            Some(other),
            other,
            MacAddr::ipv6_multicast(ALL_NODES),
        ),
    );
    assert_eq!(tap.ndp_cache().get(peer), Some((State::Stale, other)));
    // An NA for a stranger is not learnt.
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(
            a("fe80::55"),
            ALL_NODES,
            flags,
            Some(other),
            other,
            MacAddr::ipv6_multicast(ALL_NODES),
        ),
    );
    assert!(tap.ndp_cache().get(a("fe80::55")).is_none());
}

#[test]
fn stale_neighbour_is_used_then_probed_by_unicast_ns_and_confirmed() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::a");
    let mut p = udp6_from_tun(ll(), peer, b"x");
    let _ = tap.handle_tun_packet(t0, &mut p);
    let solicited = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let na = na_frame(peer, ll(), solicited, Some(PEER_MAC), PEER_MAC, OUR_MAC);
    let _ = tap.handle_link_frame(t0, &na);
    drain(&mut tap);
    // Reachable time is 15..45 s: at 50 s the use sends at once and starts DELAY.
    let t1 = t0 + Duration::from_secs(50);
    run_until(&mut tap, t1);
    let mut p = udp6_from_tun(ll(), peer, b"y");
    assert_eq!(tap.handle_tun_packet(t1, &mut p), Egress::Send);
    assert_eq!(tap.ndp_cache().get(peer).unwrap().0, State::Delay);
    // 5 s later: PROBE with a unicast NS to the known MAC.
    let out = run_until(&mut tap, t1 + Duration::from_secs(5));
    let ns = of_type(&out, 135);
    assert_eq!(ns.len(), 1);
    assert_eq!(
        (ns[0].dst_mac, ns[0].src, ns[0].dst),
        (PEER_MAC, ll(), peer)
    );
    assert_eq!(tap.ndp_cache().get(peer).unwrap().0, State::Probe);
    let na = na_frame(
        peer,
        ll(),
        NaFlags {
            override_flag: false,
            ..solicited
        },
        None,
        PEER_MAC,
        OUR_MAC,
    );
    let _ = tap.handle_link_frame(t1 + Duration::from_secs(5), &na);
    assert_eq!(
        tap.ndp_cache().get(peer),
        Some((State::Reachable, PEER_MAC))
    );
    // Silent in PROBE: three unicast probes, then the entry goes.
    let t2 = t1 + Duration::from_secs(51);
    run_until(&mut tap, t2);
    let mut p = udp6_from_tun(ll(), peer, b"z");
    assert_eq!(tap.handle_tun_packet(t2, &mut p), Egress::Send);
    let out = run_until(&mut tap, t2 + Duration::from_secs(9));
    let probes = of_type(&out, 135);
    assert_eq!(probes.len(), 3);
    assert!(probes
        .iter()
        .all(|p| p.dst == peer && p.dst_mac == PEER_MAC));
    assert!(tap.ndp_cache().get(peer).is_none());
    assert_eq!(tap.stats().ndp_cache.failed, 1);
}

#[test]
fn bad_hop_limit_checksum_and_garbage_are_counted_and_dropped() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ns = ns_packet(
        a("fe80::a"),
        solicited_node(ll()),
        ll(),
        Some(PEER_MAC),
        None,
    );
    let group = MacAddr::ipv6_multicast(solicited_node(ll()));
    let mut hop = ns.clone();
    hop[7] = 64;
    let mut sum = ns.clone();
    sum[42] ^= 0xff;
    let short = ndp::icmpv6_packet(
        a("fe80::a"),
        solicited_node(ll()),
        255,
        false,
        vec![135, 0, 0, 0, 0, 0, 0, 0, 1, 2],
    );
    let mut msg = ns[40..].to_vec();
    msg[25] = 0; // a zero-length option
    let opt = ndp::icmpv6_packet(a("fe80::a"), solicited_node(ll()), 255, false, msg);
    for bad in [&hop, &sum, &short, &opt] {
        let _ = tap.handle_link_frame(t0, &frame_to(group, PEER_MAC, bad));
    }
    assert!(drain(&mut tap).is_empty());
    let s = tap.stats();
    assert_eq!(
        (
            s.ndp.drop_bad_hop_limit,
            s.ndp.drop_bad_checksum,
            s.ndp.drop_malformed
        ),
        (1, 1, 2)
    );
    assert!(tap.ndp_cache().is_empty());
}

#[test]
fn frames_for_other_groups_and_addresses_are_dropped() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ns = ns_packet(
        a("fe80::a"),
        a("ff02::1:ff00:99"),
        a("fe80::99"),
        Some(PEER_MAC),
        None,
    );
    let r = tap.handle_link_frame(
        t0,
        &frame_to(MacAddr([0x33, 0x33, 0xff, 0, 0, 0x99]), PEER_MAC, &ns),
    );
    assert_eq!(r, Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 1);
    // To our MAC but another unicast address.
    let mut p = vec![0u8; HEADROOM];
    PacketBuilder::ipv6(a("fe80::a").octets(), a("fe80::99").octets(), 64)
        .udp(1, 2)
        .write(&mut p, b"x")
        .unwrap();
    let frame = frame_to(OUR_MAC, PEER_MAC, &p[HEADROOM..]);
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().ipv6.drop_link_not_for_us, 1);
    // To us: delivered, padding trimmed.
    let mut p = vec![0u8; HEADROOM];
    PacketBuilder::ipv6(a("fe80::a").octets(), ll().octets(), 64)
        .udp(1, 2)
        .write(&mut p, b"x")
        .unwrap();
    let mut frame = frame_to(OUR_MAC, PEER_MAC, &p[HEADROOM..]);
    let len = frame.len();
    frame.extend_from_slice(&[0; 8]);
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Deliver(14..len));
}

#[test]
fn the_kernels_own_ndp_from_the_tun_is_not_forwarded() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    // The frame's Ethernet header stands in for the headroom.
    let mut frame = ndp::router_solicitation(PEER_MAC, a("fe80::1234"));
    assert_eq!(tap.handle_tun_packet(t0, &mut frame), Egress::Consumed);
    assert!(drain(&mut tap).is_empty());
    assert_eq!(tap.stats().ipv6.drop_tun_ndp, 1);
    // MLD reports (the kernel's groups, for snooping bridges) do go out.
    let report = mld_packet(
        a("fe80::1234"),
        &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::fb"))],
    );
    let mut frame = vec![0u8; HEADROOM];
    frame.extend_from_slice(&report);
    assert_eq!(tap.handle_tun_packet(t0, &mut frame), Egress::Send);
}

#[test]
fn disabled_ipv6_drops_both_ways() {
    let t0 = Instant::now();
    let mut tap = Tap::new(
        Config {
            mac: Some(OUR_MAC),
            ipv6: Ipv6Mode::Disabled,
            ..Config::default()
        },
        t0,
    );
    assert_eq!(tap.poll_timeout(), None);
    let mut p = udp6_from_tun(ll(), a("fe80::a"), b"x");
    assert_eq!(tap.handle_tun_packet(t0, &mut p), Egress::Consumed);
    let frame = frame_to(OUR_MAC, PEER_MAC, &p[HEADROOM..]);
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    let s = tap.stats();
    assert_eq!(
        (s.ipv6.drop_tun_disabled, s.ipv6.drop_link_disabled),
        (1, 1)
    );
    assert!(tap.ndp_cache().is_empty());
}

#[test]
fn no_icmpv6_error_goes_back_about_an_error_behind_extension_headers() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    // The kernel relays a destination unreachable behind a destination options header
    // towards a destination with no route: dropped and counted, but no error about it.
    let error = [1u8, 4, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0];
    let dst = a("2001:db8:99::1");
    let src = a("2001:db8:1::7");
    let options =
        etherparse::Ipv6RawExtHeader::new_raw(etherparse::IpNumber::IPV6_ICMP, &[1, 4, 0, 0, 0, 0])
            .unwrap()
            .to_bytes();
    let header = etherparse::Ipv6Header {
        payload_length: (options.len() + error.len()) as u16,
        next_header: etherparse::IpNumber::IPV6_DESTINATION_OPTIONS,
        hop_limit: 64,
        source: src.octets(),
        destination: dst.octets(),
        ..Default::default()
    };
    let mut frame = vec![0u8; HEADROOM];
    frame.extend_from_slice(&header.to_bytes());
    frame.extend_from_slice(&options);
    frame.extend_from_slice(&error);
    assert_eq!(tap.handle_tun_packet(t0, &mut frame), Egress::Consumed);
    assert!(tun_icmp(&drain(&mut tap)).is_empty());
    let s = tap.stats();
    assert_eq!(
        (s.ipv6.drop_tun_no_route, s.ipv6.icmp_errors_to_tun),
        (1, 0)
    );
    // The same behind no extension header: no error either (as before).
    let mut direct = udp6_from_tun(src, dst, b"");
    direct.truncate(HEADROOM);
    let plain = etherparse::Ipv6Header {
        payload_length: error.len() as u16,
        next_header: etherparse::IpNumber::IPV6_ICMP,
        ..header
    };
    direct.extend_from_slice(&plain.to_bytes());
    direct.extend_from_slice(&error);
    assert_eq!(tap.handle_tun_packet(t0, &mut direct), Egress::Consumed);
    assert!(tun_icmp(&drain(&mut tap)).is_empty());
    assert_eq!(tap.stats().ipv6.icmp_errors_to_tun, 0);
}
