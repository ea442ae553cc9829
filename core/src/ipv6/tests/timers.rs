//! Timers: every deadline says which timer it is, and the deadline kept between calls
//! is always the one a full scan of the tables would find.

use super::*;
use proptest::prelude::*;

fn ra_frame(ra: &RouterAdvert) -> Vec<u8> {
    let ends = Endpoints::to_group(ROUTER_MAC, a("fe80::1"), ALL_NODES);
    ndp::router_advertisement(&ends, ra)
}

fn reply_frame(xid: [u8; 3], refresh: u32) -> Vec<u8> {
    let body = dhcpv6_wire::build_reply(
        xid,
        Some(&dhcpv6_wire::duid_ll(OUR_MAC)),
        &[a("2001:db8:1::5")],
        b"",
        Some(refresh),
    );
    let from_server = Endpoints {
        src_mac: ROUTER_MAC,
        dst_mac: OUR_MAC,
        src: a("fe80::1"),
        dst: ll(),
    };
    dhcpv6_wire::server_frame(&from_server, &body)
}

#[test]
fn every_deadline_says_which_timer_it_is() {
    let t0 = Instant::now();
    let mut h = Host::new(Ipv6Config::default(), t0);
    assert_eq!(h.host.poll_timeout(), Some(Timer::new(t0, "mld report")));
    let startup = h.run_until(t0 + Duration::from_secs(7));
    for reason in ["mld report", "ipv6 dad", "ipv6 router solicitation"] {
        assert!(startup.contains(&reason), "{reason}: {startup:?}");
    }
    // A packet for an unresolved neighbour: the cache's retransmission comes first.
    h.tun(udp6_from_tun(ll(), a("fe80::77"), b"x"));
    assert_eq!(
        h.host.poll_timeout(),
        Some(Timer::new(h.now + Duration::from_secs(1), "ndp cache"))
    );
    // An RA with the O flag, a router lifetime of 30 s and a prefix for SLAAC.
    let ra = RouterAdvert {
        other: true,
        router_lifetime: 30,
        source_mac: Some(ROUTER_MAC),
        prefixes: vec![PrefixInfo {
            prefix: a("2001:db8:1::"),
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 3600,
            preferred_lifetime: 1800,
        }],
        ..RouterAdvert::default()
    };
    h.link(&ra_frame(&ra));
    let after_ra = h.run_until(h.now + Duration::from_secs(2));
    for reason in ["dhcpv6", "ipv6 dad"] {
        assert!(after_ra.contains(&reason), "{reason}: {after_ra:?}");
    }
    let xid = h.last_xid().expect("an Information-Request");
    h.link(&reply_frame(xid, 600));
    assert_eq!(h.stats.dhcpv6.replies_in, 1);
    // The router goes after 30 s; the reply is refreshed after 600 s.
    let lifetimes = h.run_until(h.now + Duration::from_secs(40));
    assert!(lifetimes.contains(&"ipv6 lifetime"), "{lifetimes:?}");
    assert!(h.host.info().routes.iter().all(|r| r.gateway.is_none()));
    let refresh = h.run_until(h.now + Duration::from_secs(600));
    assert!(refresh.contains(&"dhcpv6 refresh"), "{refresh:?}");
    // An MLD query: the answer within its maximum response delay (1 s).
    let mut q = vec![130, 0, 0, 0, 0x03, 0xe8, 0, 0];
    q.extend_from_slice(&[0; 20]);
    let query = ndp::icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
    h.link(&frame_to(
        MacAddr::ipv6_multicast(ALL_NODES),
        ROUTER_MAC,
        &query,
    ));
    let answer = h.run_until(h.now + Duration::from_secs(1));
    assert!(answer.contains(&"mld query response"), "{answer:?}");
}

/// One thing that happens to the host.
#[derive(Debug, Clone)]
enum Step {
    Wait(u64),
    Ra {
        router: u8,
        lifetime: u16,
        prefix: u8,
        valid: u32,
        dns_lifetime: u32,
        other: bool,
    },
    DadProbe,
    Na {
        peer: u8,
        router: bool,
        override_flag: bool,
    },
    Query(u16),
    Reply(u32),
    Tun(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..5_000_000).prop_map(Step::Wait),
        (0u8..4, 0u16..60, 0u8..4, 0u32..90, 0u32..90, any::<bool>()).prop_map(
            |(router, lifetime, prefix, valid, dns_lifetime, other)| Step::Ra {
                router,
                lifetime,
                prefix,
                valid,
                dns_lifetime,
                other,
            }
        ),
        Just(Step::DadProbe),
        (0u8..4, any::<bool>(), any::<bool>()).prop_map(|(peer, router, override_flag)| {
            Step::Na {
                peer,
                router,
                override_flag,
            }
        }),
        (0u16..5000).prop_map(Step::Query),
        (0u32..2000).prop_map(Step::Reply),
        (0u8..4).prop_map(Step::Tun),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_kept_deadline_is_what_a_scan_finds(steps in proptest::collection::vec(step(), 1..60)) {
        let t0 = Instant::now();
        let mut h = Host::new(Ipv6Config::default(), t0);
        let mut xid = None;
        for step in steps {
            match step {
                Step::Wait(ms) => {
                    h.run_until(h.now + Duration::from_millis(ms));
                }
                Step::Ra { router, lifetime, prefix, valid, dns_lifetime, other } => {
                    let ra = RouterAdvert {
                        other,
                        router_lifetime: lifetime,
                        source_mac: Some(MacAddr([2, 0, 0, 0, 1, router])),
                        prefixes: vec![PrefixInfo {
                            prefix: Ipv6Addr::new(0x2001, 0xdb8, u16::from(prefix), 0, 0, 0, 0, 0),
                            prefix_len: 64,
                            on_link: true,
                            autonomous: true,
                            valid_lifetime: valid,
                            preferred_lifetime: valid / 2,
                        }],
                        rdnss: vec![(dns_lifetime, vec![a("2001:db8::53")])],
                        ..RouterAdvert::default()
                    };
                    let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(router) + 1);
                    let ends = Endpoints::to_group(ROUTER_MAC, src, ALL_NODES);
                    h.link(&ndp::router_advertisement(&ends, &ra));
                }
                Step::DadProbe => {
                    let target = h.host.addresses.last().map_or(ll(), |a| a.addr);
                    let group = solicited_node(target);
                    let ends = Endpoints::to_group(PEER_MAC, Ipv6Addr::UNSPECIFIED, group);
                    h.link(&ndp::neighbor_solicitation(&ends, target, None, Some([9; 6])));
                }
                Step::Na { peer, router, override_flag } => {
                    let target = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(peer) + 1);
                    let flags = NaFlags { router, solicited: false, override_flag };
                    let ends = Endpoints::to_group(PEER_MAC, target, ALL_NODES);
                    h.link(&ndp::neighbor_advertisement(&ends, target, flags, Some(PEER_MAC)));
                }
                Step::Query(code) => {
                    let mut q = vec![130, 0, 0, 0];
                    q.extend_from_slice(&code.to_be_bytes());
                    q.extend_from_slice(&[0; 22]);
                    let query = ndp::icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
                    h.link(&frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &query));
                }
                Step::Reply(refresh) => {
                    if let Some(x) = xid {
                        h.link(&reply_frame(x, refresh));
                    }
                }
                Step::Tun(peer) => {
                    let dst = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(peer) + 0x100);
                    h.tun(udp6_from_tun(ll(), dst, b"x"));
                }
            }
            xid = h.last_xid().or(xid);
        }
    }
}
