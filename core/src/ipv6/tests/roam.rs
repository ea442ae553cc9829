//! A change of network (`Tap::network_changed`): unsolicited advertisements of our
//! addresses, router solicitation again, and REACHABLE neighbours made STALE.

use super::*;

/// A SLAAC tap with `fe80::a` resolved to REACHABLE at `now`.
fn tap_with_reachable_peer(t0: Instant, now: Instant) -> Tap {
    let mut tap = slaac_tap(t0);
    let peer = a("fe80::a");
    let mut p = udp6_from_tun(ll(), peer, b"x");
    assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Consumed);
    drain(&mut tap);
    let flags = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let _ = tap.handle_link_frame(
        now,
        &na_frame(peer, ll(), flags, Some(PEER_MAC), PEER_MAC, OUR_MAC),
    );
    drain(&mut tap);
    assert_eq!(
        tap.ndp_cache().get(peer),
        Some((State::Reachable, PEER_MAC))
    );
    tap
}

#[test]
fn network_change_advertises_every_usable_address_and_solicits_routers() {
    let t0 = Instant::now();
    let now = t0 + Duration::from_secs(10);
    let mut tap = tap_with_reachable_peer(t0, now);
    let info = tap.ipv6_info();
    tap.network_changed(now);
    let out = drain(&mut tap);
    let nas = of_type(&out, 136);
    let targets: Vec<Ipv6Addr> = nas
        .iter()
        .map(|na| ipv6_at(&na.msg, 8).expect("a target"))
        .collect();
    assert_eq!(targets, vec![ll(), global()]);
    for na in &nas {
        assert_eq!(na.dst, ALL_NODES);
        assert_eq!(na.dst_mac, MacAddr::ipv6_multicast(ALL_NODES));
        assert_eq!(na.hop, 255);
        assert_eq!(Some(na.src), ipv6_at(&na.msg, 8), "from the address itself");
        assert_eq!(
            na.msg[4] & 0xe0,
            0x20,
            "override only: not solicited, no router"
        );
        // The target link-layer address option carries our MAC.
        assert_eq!(&na.msg[24..32], &[2, 1, 2, 0, 0, 0, 0, 0x64]);
    }
    let rs = of_type(&out, 133);
    assert_eq!(rs.len(), 1, "the first solicitation at once");
    assert_eq!((rs[0].src, rs[0].dst), (ll(), ALL_ROUTERS));
    // The neighbour is kept but must be confirmed again.
    assert_eq!(
        tap.ndp_cache().get(a("fe80::a")),
        Some((State::Stale, PEER_MAC))
    );
    // Three solicitations in all, 4 s apart; nothing is checked again (no DAD).
    let later = run_until(&mut tap, now + Duration::from_secs(20));
    assert_eq!(of_type(&later, 133).len(), 2);
    assert!(of_type(&later, 135).is_empty(), "no DAD, no probe");
    assert_eq!(tap.ipv6_info(), info, "addresses and routes kept");
    assert!(events(&mut tap).is_empty());
}

#[test]
fn network_change_solicitation_stops_at_the_first_router_advertisement() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let now = t0 + Duration::from_secs(10);
    tap.network_changed(now);
    assert_eq!(of_type(&drain(&mut tap), 133).len(), 1);
    let ra_at = now + Duration::from_secs(1);
    run_until(&mut tap, ra_at);
    assert_eq!(
        tap.handle_link_frame(ra_at, &radvd_ra(1800, 86400, 14400)),
        Ingress::Consumed
    );
    let out = run_until(&mut tap, now + Duration::from_secs(30));
    assert!(of_type(&out, 133).is_empty(), "no more solicitations");
}

#[test]
fn network_change_before_the_link_local_address_is_ready_sends_nothing_early() {
    let t0 = Instant::now();
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    drain(&mut tap);
    tap.network_changed(t0);
    let out = drain(&mut tap);
    assert!(
        of_type(&out, 136).is_empty(),
        "a tentative address is not announced"
    );
    assert!(
        of_type(&out, 133).is_empty(),
        "RS waits for the link-local address"
    );
    // Startup goes on as usual: three solicitations once DAD passed.
    let out = run_until(&mut tap, t0 + Duration::from_secs(15));
    assert_eq!(of_type(&out, 133).len(), 3);
}
