//! Stateless DHCPv6.

use super::*;

#[test]
fn o_flag_starts_stateless_dhcpv6_and_its_dns_joins_the_info() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ra = RouterAdvert {
        other: true,
        router_lifetime: 1800,
        source_mac: Some(ROUTER_MAC),
        rdnss: vec![(1200, vec![a("2001:db8:1::53")])],
        ..RouterAdvert::default()
    };
    let packet = ra_packet(a("fe80::1"), ALL_NODES, &ra);
    let t1 = t0 + Duration::from_secs(3);
    let _ = tap.handle_link_frame(
        t1,
        &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &packet),
    );
    events(&mut tap);
    // Within 1 s, an Information-Request from our link-local address to ff02::1:2.
    let out = run_until(&mut tap, t1 + Duration::from_secs(1));
    let requests: Vec<&Vec<u8>> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::Link(f) if f[0..6] == [0x33, 0x33, 0, 1, 0, 2] => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 1);
    let f = requests[0];
    assert_eq!(ipv6_at(&f[14..], 8), Some(ll()));
    assert_eq!(ipv6_at(&f[14..], 24), Some(dhcpv6_wire::ALL_SERVERS));
    assert_eq!(&f[54..58], &[0x02, 0x22, 0x02, 0x23], "546 -> 547");
    let msg = &f[62..];
    assert_eq!(msg[0], 11, "Information-Request");
    let xid: [u8; 3] = msg[1..4].try_into().unwrap();
    // Unanswered: retried about 2 s later.
    let out = run_until(&mut tap, t1 + Duration::from_secs(4));
    assert_eq!(tap.stats().dhcpv6.requests_out, 2, "{}", out.len());
    // A reply for another transaction is dropped, ours is taken.
    let server_reply = |xid: [u8; 3]| {
        let body = dhcpv6_wire::build_reply(
            xid,
            Some(&dhcpv6_wire::duid_ll(OUR_MAC)),
            &[a("2001:db8:1::5")],
            b"\x03lab\x07example\x00",
            Some(3600),
        );
        let from_server = Endpoints {
            src_mac: ROUTER_MAC,
            dst_mac: OUR_MAC,
            src: a("fe80::1"),
            dst: ll(),
        };
        dhcpv6_wire::server_frame(&from_server, &body)
    };
    let now = t1 + Duration::from_secs(4);
    assert_eq!(
        tap.handle_link_frame(now, &server_reply([0, 0, 0])),
        Ingress::Consumed
    );
    assert_eq!(tap.stats().dhcpv6.drop_invalid, 1);
    let _ = tap.handle_link_frame(now, &server_reply(xid));
    let info = tap.ipv6_info();
    assert_eq!(info.dns, vec![a("2001:db8:1::53"), a("2001:db8:1::5")]);
    assert_eq!(info.search, vec!["lab.example".to_string()]);
    assert!(matches!(
        events(&mut tap)[..],
        [Event::Ipv6(Ipv6Event::Changed(_))]
    ));
    // No more retries; the refresh comes after 3600 s.
    let out = run_until(&mut tap, now + Duration::from_secs(3599));
    assert!(out.is_empty());
    run_until(&mut tap, now + Duration::from_secs(3602));
    assert_eq!(tap.stats().dhcpv6.requests_out, 3);
}

#[test]
fn without_o_or_m_flag_no_dhcpv6() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    run_until(&mut tap, t0 + Duration::from_secs(60));
    assert_eq!(tap.stats().dhcpv6.requests_out, 0);
}

#[test]
fn a_reply_for_another_client_or_none_is_refused() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ra = RouterAdvert {
        other: true,
        router_lifetime: 1800,
        ..RouterAdvert::default()
    };
    let t1 = t0 + Duration::from_secs(3);
    let ra = frame_to(
        MacAddr::ipv6_multicast(ALL_NODES),
        ROUTER_MAC,
        &ra_packet(a("fe80::1"), ALL_NODES, &ra),
    );
    let _ = tap.handle_link_frame(t1, &ra);
    let out = run_until(&mut tap, t1 + Duration::from_secs(1));
    let request = out
        .iter()
        .find_map(|t| match t {
            Transmit::Link(f) if f[0..6] == [0x33, 0x33, 0, 1, 0, 2] => Some(f.clone()),
            _ => None,
        })
        .expect("an Information-Request");
    let xid: [u8; 3] = request[63..66].try_into().unwrap();
    events(&mut tap);
    // RFC 8415 §16.10: the right transaction, but no client identifier or another
    // client's DUID: refused and counted, nothing learnt, the exchange goes on.
    let reply = |client: Option<Vec<u8>>| {
        let body = dhcpv6_wire::build_reply(
            xid,
            client.as_deref(),
            &[a("2001:db8:1::5")],
            b"",
            Some(3600),
        );
        let from_server = Endpoints {
            src_mac: ROUTER_MAC,
            dst_mac: OUR_MAC,
            src: a("fe80::1"),
            dst: ll(),
        };
        dhcpv6_wire::server_frame(&from_server, &body)
    };
    let now = t1 + Duration::from_secs(1);
    let other = dhcpv6_wire::duid_ll(PEER_MAC);
    for client in [None, Some(other)] {
        assert_eq!(
            tap.handle_link_frame(now, &reply(client)),
            Ingress::Consumed
        );
    }
    let s = tap.stats();
    assert_eq!((s.dhcpv6.drop_invalid, s.dhcpv6.replies_in), (2, 0));
    assert!(tap.ipv6_info().dns.is_empty());
    assert!(events(&mut tap).is_empty());
    // Ours is taken.
    let ours = dhcpv6_wire::duid_ll(OUR_MAC);
    let _ = tap.handle_link_frame(now, &reply(Some(ours)));
    assert_eq!(tap.stats().dhcpv6.replies_in, 1);
    assert_eq!(tap.ipv6_info().dns, vec![a("2001:db8:1::5")]);
}

#[test]
fn a_long_reply_is_cut_to_the_limits_and_what_is_cut_is_counted() {
    let t0 = Instant::now();
    let mut h = Host::new(Ipv6Config::default(), t0);
    h.run_until(t0 + Duration::from_secs(3));
    let ra = RouterAdvert {
        other: true,
        ..RouterAdvert::default()
    };
    let ends = Endpoints::to_group(ROUTER_MAC, a("fe80::1"), ALL_NODES);
    h.link(&ndp::router_advertisement(&ends, &ra));
    h.run_until(h.now + Duration::from_secs(1));
    let xid = h.last_xid().expect("an Information-Request");
    let servers: Vec<Ipv6Addr> = (1..=12)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
        .collect();
    let mut domains = Vec::new();
    for i in 0..10 {
        domains.extend_from_slice(format!("\x02d{i}\x07example\x00").as_bytes());
    }
    let body = dhcpv6_wire::build_reply(
        xid,
        Some(&dhcpv6_wire::duid_ll(OUR_MAC)),
        &servers,
        &domains,
        None,
    );
    let from_server = Endpoints {
        src_mac: ROUTER_MAC,
        dst_mac: OUR_MAC,
        src: a("fe80::1"),
        dst: ll(),
    };
    h.link(&dhcpv6_wire::server_frame(&from_server, &body));
    let max = Ipv6Config::default().max_dns;
    let info = h.host.info();
    assert_eq!((info.dns.len(), info.search.len()), (max, max));
    assert_eq!(info.dns, servers[..max].to_vec());
    assert_eq!(h.stats.ndp.drop_table_limit, (12 - max + 10 - max) as u64);
}
