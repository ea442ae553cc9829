//! Arbitrary input never panics, and every table and queue stays bounded.

use super::*;
use proptest::prelude::*;
use rand::SeedableRng;

fn arb_ndp() -> impl Strategy<Value = (u8, u8, u8, Vec<u8>, bool)> {
    (
        prop_oneof![Just(130u8), 133u8..=137, Just(143u8), any::<u8>()],
        prop_oneof![Just(255u8), Just(1u8), any::<u8>()],
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_icmpv6_and_ipv6_never_panic_and_stay_bounded(
        msgs in proptest::collection::vec(arb_ndp(), 1..40),
        raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..20),
    ) {
        let t0 = Instant::now();
        let limits = NeighbourConfig { max_entries: 8, queue_bytes_total: 4096, ..NeighbourConfig::default() };
        let mut tap = Tap::new(Config { neighbour: limits, max_pending_transmits: 64, ..config(Ipv6Config::default()) }, t0);
        let mut now = t0;
        for (i, (kind, hop, code, body, fix_sum)) in msgs.into_iter().enumerate() {
            now += Duration::from_millis(300);
            let src = if i % 3 == 0 { Ipv6Addr::UNSPECIFIED } else { Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i as u16) };
            let dst = if i % 2 == 0 { ALL_NODES } else { solicited_node(ll()) };
            let mut msg = vec![kind, code, 0, 0];
            msg.extend_from_slice(&body);
            let mut packet = ndp::icmpv6_packet(src, dst, hop, kind == 130 || kind == 143, msg);
            if !fix_sum && packet.len() > 43 {
                packet[43] ^= 1;
            }
            let _ = tap.handle_link_frame(now, &frame_to(MacAddr::ipv6_multicast(dst), PEER_MAC, &packet));
            let _ = tap.handle_link_frame(now, &frame_to(OUR_MAC, PEER_MAC, &packet[..packet.len().min(i * 7)]));
            let mut frame = vec![0u8; HEADROOM];
            frame.extend_from_slice(&packet);
            let _ = tap.handle_tun_packet(now, &mut frame);
            while let Some(t) = tap.poll_timeout() {
                if t > now { break; }
                tap.handle_timeout(t);
            }
            let _ = drain(&mut tap);
            let _ = events(&mut tap);
        }
        for (i, mut bytes) in raw.into_iter().enumerate() {
            if let Some(b) = bytes.first_mut() { *b = 0x60 | (*b & 0x0f); }
            let frame = frame_to(OUR_MAC, PEER_MAC, &bytes);
            let _ = tap.handle_link_frame(now, &frame);
            let mut tun = vec![0u8; HEADROOM];
            tun.extend_from_slice(&bytes);
            if tun.len() >= HEADROOM + 40 {
                let len = (tun.len() - HEADROOM - 40) as u16;
                tun[HEADROOM + 4..HEADROOM + 6].copy_from_slice(&len.to_be_bytes());
                // Unicast destinations in fe80::/64 exercise the queue.
                tun[HEADROOM + 24] = 0xfe;
                tun[HEADROOM + 25] = 0x80;
                tun[HEADROOM + 39] = i as u8;
            }
            let _ = tap.handle_tun_packet(now, &mut tun);
            prop_assert!(tap.ndp_cache().len() <= 8);
            prop_assert!(tap.ndp_cache().queued_bytes() <= 4096);
        }
        let mut n = 0;
        while tap.poll_transmit().is_some() { n += 1; }
        prop_assert!(n <= 64);
    }
}

fn arb_group() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        (0u16..64).prop_map(|i| Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x100 + i)),
        any::<u128>().prop_map(|g| Ipv6Addr::from(g | (0xff << 120))),
        Just(ALL_NODES),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tun_group_joins_never_grow_past_the_limit(
        reports in proptest::collection::vec(
            (proptest::collection::vec((1u8..=7, arb_group()), 1..30), any::<bool>()),
            1..40,
        ),
        max_groups in 0usize..6,
    ) {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(1);
        let mut stats = Stats::default();
        let config = Ipv6Config { max_groups, ..Ipv6Config::default() };
        let mut host = Ipv6Host::new(
            config, NeighbourConfig::default(), OUR_MAC, 1500, t0, &mut rng, &mut stats,
        );
        for (records, v1) in reports {
            let packets = if v1 {
                records.iter().map(|(k, g)| mldv1(130 + (k % 3), *g)).collect()
            } else {
                vec![mld_packet(Ipv6Addr::UNSPECIFIED, &records)]
            };
            for packet in packets {
                let mut frame = vec![0u8; HEADROOM];
                frame.extend_from_slice(&packet);
                let _ = host.egress(t0, &mut frame, &mut stats);
                prop_assert!(host.tun_groups().len() <= max_groups);
            }
        }
        for g in host.tun_groups() {
            prop_assert!(host.accepts_mac(MacAddr::ipv6_multicast(*g)));
            prop_assert!(*g != ALL_NODES);
        }
    }
}
