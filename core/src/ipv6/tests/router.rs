//! Router advertisements: SLAAC, routes, DNS, MTU, lifetimes and the table limits.

use super::*;

#[test]
fn ra_gives_slaac_address_routes_dns_and_mtu() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let t1 = t0 + Duration::from_secs(3);
    let _ = tap.handle_link_frame(t1, &radvd_ra(1800, 86400, 14400));
    // The router's route, DNS and MTU are known at once; the address after DAD.
    let out = run_until(&mut tap, t1 + Duration::from_secs(3));
    let dad = of_type(&out, 135);
    assert_eq!(dad.len(), 1);
    assert_eq!(ipv6_at(&dad[0].msg, 8), Some(global()));
    assert!(of_type(&out, 133).is_empty(), "an RA stops solicitation");
    let ev = events(&mut tap);
    let expected = Ipv6Info {
        addresses: vec![(global(), 64)],
        link_local: Some(ll()),
        routes: vec![
            Ipv6Route {
                destination: a("2001:db8:1::"),
                prefix_len: 64,
                gateway: None,
            },
            Ipv6Route {
                destination: Ipv6Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(a("fe80::1")),
            },
        ],
        dns: vec![a("2001:db8:1::53")],
        search: vec!["lab.example".into()],
        mtu: Some(1400),
    };
    assert_eq!(
        ev.last(),
        Some(&Event::Ipv6(Ipv6Event::Changed(expected.clone())))
    );
    assert_eq!(
        ev.len(),
        2,
        "first without the tentative address, then with it"
    );
    assert_eq!(tap.ipv6_info(), expected);
    // The router's MAC was learnt from its RA.
    assert_eq!(
        tap.ndp_cache().get(a("fe80::1")).map(|e| e.1),
        Some(ROUTER_MAC)
    );
    // The same RA again changes nothing.
    let _ = tap.handle_link_frame(t1 + Duration::from_secs(10), &radvd_ra(1800, 86400, 14400));
    assert!(events(&mut tap).is_empty());
}

#[test]
fn lifetimes_expire_and_zero_router_lifetime_removes_the_default_route() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let now = t0 + Duration::from_secs(20);
    let _ = tap.handle_link_frame(now, &radvd_ra(0, 86400, 14400));
    let ev = events(&mut tap);
    let [Event::Ipv6(Ipv6Event::Changed(info))] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(info.routes.iter().all(|r| r.prefix_len != 0));
    assert_eq!(info.addresses, vec![(global(), 64)]);
    // A fresh tap whose RA has short lifetimes: the router goes after 30 s, DNS after
    // 1200 s, the prefix after its valid lifetime; then no timers remain.
    let mut tap = ready_tap(t0);
    let t1 = t0 + Duration::from_secs(3);
    let _ = tap.handle_link_frame(t1, &radvd_ra(30, 600, 300));
    run_until(&mut tap, t1 + Duration::from_secs(31));
    assert!(tap.ipv6_info().routes.iter().all(|r| r.gateway.is_none()));
    run_until(&mut tap, t1 + Duration::from_secs(2000));
    let info = tap.ipv6_info();
    assert!(info.addresses.is_empty() && info.routes.is_empty() && info.dns.is_empty());
    assert_eq!(info.link_local, Some(ll()));
    // Only the NDP cache's garbage collection may still run.
    while let Some(t) = tap.poll_timeout() {
        tap.handle_timeout(t);
    }
    assert!(tap.ndp_cache().is_empty());
}

#[test]
fn short_valid_lifetime_cannot_kill_an_address_at_once() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let now = t0 + Duration::from_secs(20);
    // RFC 4862 §5.5.3 (e): a spoofed lifetime of 10 s becomes two hours.
    let _ = tap.handle_link_frame(now, &radvd_ra(1800, 10, 5));
    run_until(&mut tap, now + Duration::from_secs(3600));
    assert_eq!(tap.ipv6_info().addresses, vec![(global(), 64)]);
    run_until(&mut tap, now + Duration::from_secs(7201));
    assert!(tap.ipv6_info().addresses.is_empty());
}

#[test]
fn ra_floods_stay_within_the_limits() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    for i in 0..200u16 {
        let ra = RouterAdvert {
            router_lifetime: 1800,
            source_mac: Some(ROUTER_MAC),
            prefixes: vec![PrefixInfo {
                prefix: Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0),
                prefix_len: 64,
                on_link: true,
                autonomous: true,
                valid_lifetime: 3600,
                preferred_lifetime: 1800,
            }],
            rdnss: vec![(600, vec![Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0x53)])],
            ..RouterAdvert::default()
        };
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, i);
        let packet = ra_packet(src, ALL_NODES, &ra);
        let _ = tap.handle_link_frame(
            t0,
            &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &packet),
        );
    }
    run_until(&mut tap, t0 + Duration::from_secs(5));
    let info = tap.ipv6_info();
    let d = Ipv6Config::default();
    assert_eq!(info.addresses.len(), d.max_addresses);
    assert_eq!(info.routes.len(), d.max_prefixes + 1);
    assert_eq!(info.dns.len(), d.max_dns);
    assert!(tap.stats().ndp.drop_table_limit > 0);
}

#[test]
fn accept_ra_off_sends_no_rs_and_ignores_ras() {
    let t0 = Instant::now();
    let v6 = Ipv6Config {
        accept_ra: false,
        ..Ipv6Config::default()
    };
    let mut tap = Tap::new(config(v6), t0);
    let out = run_until(&mut tap, t0 + Duration::from_secs(20));
    assert!(of_type(&out, 133).is_empty());
    let _ = tap.handle_link_frame(t0, &radvd_ra(1800, 86400, 14400));
    let info = tap.ipv6_info();
    assert!(info.addresses.is_empty() && info.routes.is_empty());
    assert_eq!(tap.stats().ndp.ignored, 1);
}

#[test]
fn ra_retrans_timer_and_reachable_time_drive_the_ndp_cache() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ra = RouterAdvert {
        router_lifetime: 1800,
        reachable_time: 10_000,
        retrans_timer: 1, // raised to 100 ms
        ..RouterAdvert::default()
    };
    let packet = ra_packet(a("fe80::1"), ALL_NODES, &ra);
    let _ = tap.handle_link_frame(
        t0 + Duration::from_secs(3),
        &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &packet),
    );
    assert_eq!(
        tap.ndp_cache().config().retransmit_time,
        Duration::from_millis(100)
    );
    assert_eq!(
        tap.ndp_cache().config().base_reachable_time,
        Duration::from_secs(10)
    );
    // Resolution now retries every 100 ms.
    let now = t0 + Duration::from_secs(4);
    let mut p = udp6_from_tun(ll(), a("fe80::77"), b"x");
    let _ = tap.handle_tun_packet(now, &mut p);
    let mut out = drain(&mut tap);
    out.extend(run_until(&mut tap, now + Duration::from_millis(250)));
    assert_eq!(of_type(&out, 135).len(), 3);
}

/// The default router in the reported routes, if any.
fn default_router(tap: &Tap) -> Option<Ipv6Addr> {
    tap.ipv6_info()
        .routes
        .iter()
        .find(|r| r.prefix_len == 0)
        .and_then(|r| r.gateway)
}

#[test]
fn only_an_accepted_na_takes_a_router_off_the_list() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let router = a("fe80::1");
    let now = t0 + Duration::from_secs(10);
    let all_nodes = MacAddr::ipv6_multicast(ALL_NODES);
    // The router confirms itself: REACHABLE, still a router.
    let confirm = NaFlags {
        router: true,
        solicited: true,
        override_flag: true,
    };
    let _ = tap.handle_link_frame(
        now,
        &na_frame(router, ll(), confirm, Some(ROUTER_MAC), ROUTER_MAC, OUR_MAC),
    );
    assert_eq!(
        tap.ndp_cache().get(router),
        Some((State::Reachable, ROUTER_MAC))
    );
    // RFC 4861 §7.2.5: no override and another MAC only makes the entry STALE; "do not
    // update the entry in any other way", so R=0 there does not unmake the router.
    let other = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let _ = tap.handle_link_frame(
        now,
        &na_frame(
            router,
            ALL_NODES,
            NaFlags::default(),
            Some(other),
            other,
            all_nodes,
        ),
    );
    assert_eq!(
        tap.ndp_cache().get(router),
        Some((State::Stale, ROUTER_MAC))
    );
    assert_eq!(default_router(&tap), Some(router));
    // With override the advertisement is taken: R=0 now removes the router.
    let taken = NaFlags {
        override_flag: true,
        ..NaFlags::default()
    };
    let _ = tap.handle_link_frame(
        now,
        &na_frame(
            router,
            ALL_NODES,
            taken,
            Some(ROUTER_MAC),
            ROUTER_MAC,
            all_nodes,
        ),
    );
    assert_eq!(default_router(&tap), None);
}

#[test]
fn an_na_for_a_router_not_in_the_cache_is_ignored() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    // A router whose RA carries no link-layer address: listed, not in the cache.
    let ra = RouterAdvert {
        router_lifetime: 1800,
        ..RouterAdvert::default()
    };
    let router = a("fe80::2");
    let all_nodes = MacAddr::ipv6_multicast(ALL_NODES);
    let now = t0 + Duration::from_secs(5);
    let _ = tap.handle_link_frame(
        now,
        &frame_to(all_nodes, ROUTER_MAC, &ra_packet(router, ALL_NODES, &ra)),
    );
    assert_eq!(default_router(&tap), Some(router));
    assert!(tap.ndp_cache().get(router).is_none());
    let ignored = tap.stats().ndp.ignored;
    let flags = NaFlags {
        override_flag: true,
        ..NaFlags::default()
    };
    let _ = tap.handle_link_frame(
        now,
        &na_frame(
            router,
            ALL_NODES,
            flags,
            Some(ROUTER_MAC),
            ROUTER_MAC,
            all_nodes,
        ),
    );
    assert_eq!(tap.stats().ndp.ignored, ignored + 1);
    assert_eq!(default_router(&tap), Some(router));
    assert!(tap.ndp_cache().get(router).is_none());
}

#[test]
fn a_flood_of_random_ras_keeps_every_table_at_its_limit() {
    use rand::{Rng, RngExt};
    let t0 = Instant::now();
    let neighbour = NeighbourConfig {
        max_entries: 64,
        ..NeighbourConfig::default()
    };
    let mut h = Host::with_cache(Ipv6Config::default(), neighbour.clone(), t0);
    h.run_until(t0 + Duration::from_secs(3));
    let mut random = StdRng::seed_from_u64(99);
    for i in 0..10_000u32 {
        let mut mac = [0u8; 6];
        random.fill_bytes(&mut mac);
        mac[0] = 0x02;
        let prefix = |r: &mut StdRng| {
            let bits: u128 = r.random();
            Ipv6Addr::from((0x2001_0db8_u128 << 96) | (bits >> 32 << 64))
        };
        let ra = RouterAdvert {
            other: true,
            router_lifetime: random.random_range(1..9000),
            source_mac: Some(MacAddr(mac)),
            prefixes: (0..4)
                .map(|_| PrefixInfo {
                    prefix: prefix(&mut random),
                    prefix_len: if random.random_bool(0.8) {
                        64
                    } else {
                        random.random_range(1..=128)
                    },
                    on_link: random.random(),
                    autonomous: true,
                    valid_lifetime: random.random_range(7200..100_000),
                    preferred_lifetime: 3600,
                })
                .collect(),
            rdnss: vec![(600, (0..3).map(|_| prefix(&mut random)).collect())],
            dnssl: vec![(600, vec![format!("d{}.example", random.random::<u32>())])],
            ..RouterAdvert::default()
        };
        let router = Ipv6Addr::from((0xfe80_u128 << 112) | u128::from(random.random::<u64>()));
        let ends = Endpoints::to_group(MacAddr(mac), router, ALL_NODES);
        h.link(&ndp::router_advertisement(&ends, &ra));
        if i % 100 == 0 {
            h.run_until(h.now + Duration::from_millis(50));
            h.host.transmits.clear();
            h.host.events.clear();
        }
    }
    let d = Ipv6Config::default();
    let host = &h.host;
    let slaac = host
        .addresses
        .iter()
        .filter(|a| a.kind == Kind::Slaac)
        .count();
    assert_eq!(host.ra.routers.len(), d.max_routers);
    assert_eq!(host.ra.prefixes.len(), d.max_prefixes);
    assert_eq!(slaac, d.max_addresses);
    assert_eq!(host.ra.dns.len(), d.max_dns);
    assert_eq!(host.ra.search.len(), d.max_dns);
    assert_eq!(host.cache.len(), neighbour.max_entries);
    assert!(host.mld.tun_groups.is_empty());
    assert_eq!(h.stats.ndp.ra_in, 10_000);
    assert!(h.stats.ndp.drop_table_limit >= 10_000);
}
