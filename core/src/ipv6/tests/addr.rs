//! Addresses: startup (MLD, DAD, RS), DAD conflicts and defence, interface identifiers.

use super::*;

#[test]
fn startup_joins_probes_solicits_and_goes_idle() {
    let t0 = Instant::now();
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    assert_eq!(tap.poll_timeout(), Some(t0));
    let out = run_until(&mut tap, t0 + Duration::from_secs(30));
    // MLDv2 report from :: joining our solicited-node group, hop limit 1, router alert.
    let mld = of_type(&out, 143);
    assert_eq!(
        mld.len(),
        4,
        "robustness: two copies from ::, two from the link-local"
    );
    for m in &mld[2..] {
        assert_eq!(m.src, ll());
        assert_eq!(&m.msg[4..], &mld[0].msg[4..], "the same join record");
    }
    assert_eq!(mld[0].src, Ipv6Addr::UNSPECIFIED);
    assert_eq!(mld[0].dst, a("ff02::16"));
    assert_eq!(mld[0].dst_mac, MacAddr([0x33, 0x33, 0, 0, 0, 0x16]));
    assert_eq!(mld[0].hop, 1);
    assert_eq!(&mld[0].msg[4..8], &[0, 0, 0, 1]);
    assert_eq!(mld[0].msg[8], record_type::CHANGE_TO_EXCLUDE);
    assert_eq!(ipv6_at(&mld[0].msg, 12), Some(a("ff02::1:ff00:64")));
    // One DAD probe: from ::, to the solicited-node group, target our link-local.
    let ns = of_type(&out, 135);
    assert_eq!(ns.len(), 1);
    assert_eq!(
        (ns[0].src, ns[0].dst, ns[0].hop),
        (Ipv6Addr::UNSPECIFIED, a("ff02::1:ff00:64"), 255)
    );
    assert_eq!(ns[0].dst_mac, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x64]));
    assert_eq!(ipv6_at(&ns[0].msg, 8), Some(ll()));
    assert_eq!(
        ns[0].msg[24], 14,
        "RFC 7527 nonce, no source link-layer option"
    );
    // Three RS from the link-local address with our MAC, 4 s apart.
    let rs = of_type(&out, 133);
    assert_eq!(rs.len(), 3);
    for r in &rs {
        assert_eq!((r.src, r.dst, r.hop), (ll(), ALL_ROUTERS, 255));
        assert_eq!(&r.msg[8..16], &[1, 1, 2, 0, 0, 0, 0, 0x64]);
        assert!(icmpv6_checksum_ok(r.src, r.dst, &r.msg));
    }
    assert_eq!(tap.poll_timeout(), None, "idle: no timers");
    let ev = events(&mut tap);
    assert_eq!(
        ev,
        vec![Event::Ipv6(Ipv6Event::Changed(Ipv6Info {
            link_local: Some(ll()),
            ..Ipv6Info::default()
        }))]
    );
    let s = tap.stats();
    assert_eq!(
        (
            s.ndp.dad_started,
            s.ndp.dad_succeeded,
            s.ndp.rs_out,
            s.mld.reports_out
        ),
        (1, 1, 3, 4)
    );
}

#[test]
fn multicast_ns_for_our_address_gets_solicited_override_na_with_our_mac() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let peer = a("2001:db8:1::a");
    let ns = ns_packet(
        peer,
        solicited_node(global()),
        global(),
        Some(PEER_MAC),
        None,
    );
    let now = t0 + Duration::from_secs(10);
    let frame = frame_to(
        MacAddr::ipv6_multicast(solicited_node(global())),
        PEER_MAC,
        &ns,
    );
    assert_eq!(tap.handle_link_frame(now, &frame), Ingress::Consumed);
    let out = drain(&mut tap);
    let [Transmit::Link(f)] = &out[..] else {
        panic!("{out:?}")
    };
    let expected = na_packet(
        peer,
        global(),
        NaFlags {
            router: false,
            solicited: true,
            override_flag: true,
        },
        Some(OUR_MAC),
    );
    assert_eq!(
        f,
        &ethernet::build_frame(PEER_MAC, OUR_MAC, ether_type::IPV6, &expected)
    );
    assert_eq!(tap.ndp_cache().get(peer), Some((State::Stale, PEER_MAC)));
    // A unicast probe is answered without override and without our MAC (as Linux).
    let ns = ns_packet(peer, global(), global(), Some(PEER_MAC), None);
    let _ = tap.handle_link_frame(now, &frame_to(OUR_MAC, PEER_MAC, &ns));
    let na = link_icmp(&drain(&mut tap));
    assert_eq!(na[0].msg[4], 0x40);
    assert_eq!(na[0].msg.len(), 24);
    assert_eq!(tap.stats().ndp.na_out, 2);
}

#[test]
fn tentative_address_is_not_answered_and_a_foreign_probe_is_a_conflict() {
    let t0 = Instant::now();
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    let _ = run_until(&mut tap, t0);
    // A unicast-sourced NS for the tentative address: silently ignored.
    let ns = ns_packet(
        a("fe80::a"),
        solicited_node(ll()),
        ll(),
        Some(PEER_MAC),
        None,
    );
    let group_mac = MacAddr::ipv6_multicast(solicited_node(ll()));
    let _ = tap.handle_link_frame(t0, &frame_to(group_mac, PEER_MAC, &ns));
    assert!(drain(&mut tap).is_empty());
    // Another node's DAD probe for it: conflict, the address is dropped.
    let probe = ns_packet(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(ll()),
        ll(),
        None,
        Some([9; 6]),
    );
    let _ = tap.handle_link_frame(t0, &frame_to(group_mac, PEER_MAC, &probe));
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::AddressConflict(ll()))]
    );
    let out = run_until(&mut tap, t0 + Duration::from_secs(20));
    assert!(
        of_type(&out, 133).is_empty(),
        "no RS without a link-local address"
    );
    assert_eq!(tap.ipv6_info(), Ipv6Info::default());
    assert_eq!(tap.stats().ndp.dad_conflicts, 1);
    // The group is left (CHANGE_TO_INCLUDE).
    let leave = of_type(&out, 143);
    assert!(leave
        .iter()
        .any(|m| m.msg[8] == record_type::CHANGE_TO_INCLUDE));
}

#[test]
fn our_own_looped_probe_is_not_a_conflict() {
    let t0 = Instant::now();
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    let out = run_until(&mut tap, t0 + Duration::from_millis(999));
    let probe = of_type(&out, 135);
    assert_eq!(probe.len(), 1);
    // Rebuild the same probe (same nonce) and send it back from another MAC.
    let nonce: [u8; 6] = probe[0].msg[26..32].try_into().unwrap();
    let looped = ns_packet(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(ll()),
        ll(),
        None,
        Some(nonce),
    );
    let group_mac = MacAddr::ipv6_multicast(solicited_node(ll()));
    let _ = tap.handle_link_frame(t0, &frame_to(group_mac, PEER_MAC, &looped));
    assert!(events(&mut tap).is_empty());
}

#[test]
fn na_for_a_tentative_global_address_is_a_conflict_and_it_is_never_used() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let t1 = t0 + Duration::from_secs(3);
    let _ = tap.handle_link_frame(t1, &radvd_ra(1800, 86400, 14400));
    events(&mut tap);
    let flags = NaFlags {
        override_flag: true,
        ..NaFlags::default()
    };
    let na = na_frame(
        global(),
        ALL_NODES,
        flags,
        Some(PEER_MAC),
        PEER_MAC,
        MacAddr::ipv6_multicast(ALL_NODES),
    );
    let _ = tap.handle_link_frame(t1, &na);
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::AddressConflict(global()))]
    );
    run_until(&mut tap, t1 + Duration::from_secs(5));
    assert!(tap.ipv6_info().addresses.is_empty());
    assert!(events(&mut tap).is_empty());
}

#[test]
fn stable_privacy_uses_opaque_ids_and_retries_after_a_conflict() {
    let t0 = Instant::now();
    let v6 = Ipv6Config {
        link_local: LinkLocalMode::StablePrivacy { secret: [7; 16] },
        ..Ipv6Config::default()
    };
    let mut tap = Tap::new(config(v6.clone()), t0);
    let out = run_until(&mut tap, t0 + Duration::from_millis(999));
    let first = ipv6_at(&of_type(&out, 135)[0].msg, 8).unwrap();
    assert!(is_link_local(first));
    assert_ne!(first, ll());
    // Same secret and MAC: same address (stable); another secret: another address.
    let mut again = Tap::new(config(v6), t0);
    let out2 = run_until(&mut again, t0 + Duration::from_millis(999));
    assert_eq!(ipv6_at(&of_type(&out2, 135)[0].msg, 8), Some(first));
    // A conflict makes a new identifier that goes through DAD.
    let probe = ns_packet(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(first),
        first,
        None,
        None,
    );
    let group = MacAddr::ipv6_multicast(solicited_node(first));
    let _ = tap.handle_link_frame(t0, &frame_to(group, PEER_MAC, &probe));
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::AddressConflict(first))]
    );
    run_until(&mut tap, t0 + Duration::from_secs(3));
    let second = tap.ipv6_info().link_local.unwrap();
    assert!(is_link_local(second));
    assert_ne!(second, first);
}

#[test]
fn probe_for_our_usable_address_is_defended() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let probe = ns_packet(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(ll()),
        ll(),
        None,
        Some([1; 6]),
    );
    let group = MacAddr::ipv6_multicast(solicited_node(ll()));
    let _ = tap.handle_link_frame(
        t0 + Duration::from_secs(5),
        &frame_to(group, PEER_MAC, &probe),
    );
    let na = link_icmp(&drain(&mut tap));
    assert_eq!(na.len(), 1);
    assert_eq!((na[0].src, na[0].dst), (ll(), ALL_NODES));
    assert_eq!(na[0].dst_mac, MacAddr::ipv6_multicast(ALL_NODES));
    assert_eq!(na[0].msg[4], 0x20, "override, not solicited");
    assert_eq!(tap.stats().ndp.dad_defended, 1);
    assert!(events(&mut tap).is_empty(), "a usable address is kept");
}

#[test]
fn siphash_matches_the_reference_vector() {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
    let msg: Vec<u8> = (0..15).collect();
    assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
}

#[test]
fn without_dad_addresses_are_usable_at_once() {
    let t0 = Instant::now();
    let v6 = Ipv6Config {
        dad_transmits: 0,
        ..Ipv6Config::default()
    };
    let mut tap = Tap::new(config(v6), t0);
    assert_eq!(tap.ipv6_info().link_local, Some(ll()));
    let out = run_until(&mut tap, t0);
    assert!(of_type(&out, 135).is_empty(), "no DAD probe");
    assert_eq!(of_type(&out, 133).len(), 1, "RS at once");
    let _ = tap.handle_link_frame(t0, &radvd_ra(1800, 86400, 14400));
    assert_eq!(tap.ipv6_info().addresses, vec![(global(), 64)]);
}

#[test]
fn every_event_after_link_local_dad_carries_the_link_local_address() {
    // An RA that arrives while the link-local address is still tentative: whichever
    // DAD finishes first, no event reports a global address without the link-local one,
    // and every event from the link-local verdict on carries it.
    for seed in 0..32 {
        let t0 = Instant::now();
        let mut tap = Tap::new(
            Config {
                rng_seed: seed,
                ..config(Ipv6Config::default())
            },
            t0,
        );
        let _ = tap.handle_link_frame(t0, &radvd_ra(1800, 86400, 14400));
        // The router's routes and DNS are known but not reported without a link-local
        // address.
        assert_eq!(tap.ipv6_info(), Ipv6Info::default());
        assert!(events(&mut tap).is_empty());
        run_until(&mut tap, t0 + Duration::from_secs(5));
        let infos: Vec<Ipv6Info> = events(&mut tap)
            .into_iter()
            .filter_map(|e| match e {
                Event::Ipv6(Ipv6Event::Changed(info)) => Some(info),
                _ => None,
            })
            .collect();
        assert!(!infos.is_empty(), "seed {seed}");
        for info in &infos {
            assert_eq!(info.link_local, Some(ll()), "seed {seed}: {infos:?}");
        }
        assert_eq!(
            infos.last().map(|i| i.addresses.clone()),
            Some(vec![(global(), 64)])
        );
    }
}
