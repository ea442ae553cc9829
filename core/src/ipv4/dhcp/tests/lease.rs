//! A lease in force: renewal, rebinding, expiry, NAKs while bound, release.

use super::*;

#[test]
fn renewal_is_unicast_through_arp_and_an_answer_keeps_the_lease_quietly() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let server = Server::default();
    bind(&mut tap, &server, t0);
    events(&mut tap);
    let t1 = t0 + secs(1800.0);
    let out: Vec<Transmit> = run_until(&mut tap, t1)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Renewing));
    assert!(dhcp_sent(&out).is_empty(), "waits for ARP");
    let arp: Vec<_> = arps(&out)
        .into_iter()
        .filter(|a| a.target_ip == server_ip())
        .collect();
    assert_eq!(
        arp,
        vec![ArpPacket::request(OUR_MAC, offered(), server_ip())]
    );

    let reply = ArpPacket::reply_to(&arp[0], SERVER_MAC, server_ip());
    let out = feed(&mut tap, t1, &reply.to_frame(OUR_MAC));
    let renew = dhcp_sent(&out).pop().expect("the REQUEST after ARP");
    assert_eq!(renew.message_type(), MessageType::Request);
    assert_eq!(
        (renew.eth_dst, renew.ip_src, renew.ip_dst),
        (SERVER_MAC, offered(), server_ip())
    );
    assert_eq!(renew.msg.ciaddr(), offered());
    assert!(renew.opt(OptionCode::RequestedIpAddress).is_none());
    assert!(renew.opt(OptionCode::ServerIdentifier).is_none());

    let renewed_at = t1 + secs(0.5);
    let better = Server {
        extra: vec![
            DhcpOption::SubnetMask(ip("255.255.255.0")),
            DhcpOption::Router(vec![server_ip()]),
            DhcpOption::DomainNameServer(vec![ip("192.0.2.99")]),
        ],
        ..Server::default()
    };
    let out = feed(
        &mut tap,
        renewed_at,
        &better.reply(&renew, MessageType::Ack, offered()),
    );
    assert!(
        arps(&out).is_empty(),
        "no new announcement for the same address"
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    let lease = tap.lease().unwrap().clone();
    assert_eq!(lease.dns, vec![ip("192.0.2.99")]);
    assert_eq!(lease.acquired_at, t1);
    assert_eq!(lease.t1, Some(secs(1800.0)));
    assert_eq!(
        events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseRenewed(lease))]
    );
}

#[test]
fn unanswered_renewal_retries_at_half_the_time_to_t2_then_rebinds_then_expires() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    bind(&mut tap, &Server::default(), t0);
    events(&mut tap);
    let sent = run_answering_arp(&mut tap, t0 + secs(3599.0));
    let dhcp: Vec<(f64, Sent)> = sent
        .iter()
        .flat_map(|(t, x)| {
            dhcp_sent(std::slice::from_ref(x))
                .into_iter()
                .map(move |s| ((*t - t0).as_secs_f64(), s))
        })
        .collect();
    let renews: Vec<f64> = dhcp
        .iter()
        .filter(|(_, s)| s.eth_dst != MacAddr::BROADCAST)
        .map(|(t, _)| *t)
        .collect();
    let rebinds: Vec<f64> = dhcp
        .iter()
        .filter(|(_, s)| s.eth_dst == MacAddr::BROADCAST)
        .map(|(t, _)| *t)
        .collect();
    // T1 = 1800, T2 = 3150: half of what is left to T2, at least 60 s, never past T2.
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.01)
    };
    assert!(
        close(
            &renews,
            &[1800.0, 2475.0, 2812.5, 2981.25, 3065.625, 3125.625]
        ),
        "{renews:?}"
    );
    // Expiry 3600: half of what is left to expiry, at least 60 s.
    assert!(
        close(&rebinds, &[3150.0, 3375.0, 3487.5, 3547.5]),
        "{rebinds:?}"
    );
    for (_, s) in &dhcp {
        assert_eq!(s.msg.ciaddr(), offered());
        assert_eq!(s.ip_src, offered());
    }
    let rebind = &dhcp.last().unwrap().1;
    assert_eq!(rebind.ip_dst, Ipv4Addr::BROADCAST);
    assert_ne!(
        rebind.msg.xid(),
        dhcp[0].1.msg.xid(),
        "rebinding is a new transaction"
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Rebinding));
    assert!(tap.ipv4().is_some());
    assert!(events(&mut tap).is_empty());

    let out: Vec<Transmit> = run_until(&mut tap, t0 + secs(3600.0))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(tap.ipv4(), None);
    assert_eq!(tap.lease(), None);
    assert_eq!(
        events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseLost {
            address: offered(),
            reason: LeaseLostReason::Expired
        })]
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Selecting));
    let discover = dhcp_sent(&out).pop().expect("discovery starts over");
    assert_eq!(discover.message_type(), MessageType::Discover);
}

#[test]
fn rebinding_answered_by_any_server_keeps_the_address() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    bind(&mut tap, &Server::default(), t0);
    events(&mut tap);
    let sent = run_until(&mut tap, t0 + secs(3150.0));
    let rebind = last_dhcp(&sent);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Rebinding));
    let now = t0 + secs(3151.0);
    feed(
        &mut tap,
        now,
        &Server::default().reply(&rebind, MessageType::Ack, offered()),
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    let ev = events(&mut tap);
    assert!(
        matches!(ev.as_slice(), [.., Event::Dhcp(DhcpEvent::LeaseRenewed(l))] if l.acquired_at == t0 + secs(3150.0)),
        "{ev:?}"
    );
}

#[test]
fn nak_while_renewing_drops_the_address_and_starts_over() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    bind(&mut tap, &Server::default(), t0);
    events(&mut tap);
    let t1 = t0 + secs(1800.0);
    let sent = run_answering_arp(&mut tap, t1);
    let renew = last_dhcp(&sent);
    let out = feed(
        &mut tap,
        t1,
        &Server::default().reply(&renew, MessageType::Nak, Ipv4Addr::UNSPECIFIED),
    );
    assert_eq!(tap.ipv4(), None);
    assert_eq!(
        events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseLost {
            address: offered(),
            reason: LeaseLostReason::Nak
        })]
    );
    let out: Vec<Transmit> = out
        .into_iter()
        .chain(run_until(&mut tap, t1).into_iter().map(|(_, t)| t))
        .collect();
    assert_eq!(
        dhcp_sent(&out).pop().unwrap().message_type(),
        MessageType::Discover
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Selecting));
}

#[test]
fn infinite_leases_never_renew_and_short_ones_keep_their_time() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    bind(
        &mut tap,
        &Server {
            lease_secs: u32::MAX,
            ..Server::default()
        },
        t0,
    );
    let lease = tap.lease().unwrap();
    assert_eq!((lease.lease_time, lease.t1, lease.t2), (None, None, None));
    run_until(&mut tap, t0 + secs(10.0)); // the announcements
    assert_eq!(tap.poll_timeout(), None, "no timer at all");

    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    bind(
        &mut tap,
        &Server {
            lease_secs: 5,
            ..Server::default()
        },
        t0,
    );
    let lease = tap.lease().unwrap();
    assert_eq!(lease.lease_time, Some(secs(5.0)));
    assert_eq!((lease.t1, lease.t2), (Some(secs(2.5)), Some(secs(4.375))));
}

#[test]
fn a_renewal_with_another_address_says_the_tun_must_be_rebuilt() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    bind(&mut tap, &Server::default(), t0);
    events(&mut tap);
    let sent = run_until(&mut tap, t0 + secs(3150.0));
    let rebind = last_dhcp(&sent);
    let now = t0 + secs(3151.0);
    let out = feed(
        &mut tap,
        now,
        &Server::default().reply(&rebind, MessageType::Ack, ip("192.0.2.101")),
    );
    assert_eq!(tap.ipv4().unwrap().address, ip("192.0.2.101"));
    assert_eq!(
        arps(&out),
        vec![ArpPacket::announcement(OUR_MAC, ip("192.0.2.101"))]
    );
    let ev = events(&mut tap);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Dhcp(DhcpEvent::LeaseChanged { old, new }) if old.address == offered() && new.address == ip("192.0.2.101"))),
        "{ev:?}"
    );
}

#[test]
fn release_unicasts_to_the_server_and_drops_the_address() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let bound = bind(&mut tap, &Server::default(), t0);
    events(&mut tap);
    drain(&mut tap);
    tap.release(bound);
    let out = drain(&mut tap);
    let release = dhcp_sent(&out).pop().expect("a RELEASE");
    assert_eq!(release.message_type(), MessageType::Release);
    assert_eq!(
        (release.eth_dst, release.ip_src, release.ip_dst),
        (SERVER_MAC, offered(), server_ip())
    );
    assert_eq!(release.msg.ciaddr(), offered());
    assert_eq!(
        release.opt(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(server_ip()))
    );
    assert!(release.opt(OptionCode::RequestedIpAddress).is_none());
    assert_eq!(tap.ipv4(), None);
    assert_eq!(tap.lease(), None);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Released));
    assert_eq!(
        events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseLost {
            address: offered(),
            reason: LeaseLostReason::Released
        })]
    );
    assert_eq!(tap.poll_timeout(), None);
    // Released before any lease: nothing to send, the client just stops.
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    drain(&mut tap);
    tap.release(t0);
    assert!(drain(&mut tap).is_empty());
    assert_eq!(tap.poll_timeout(), None);
}

#[test]
fn a_short_lease_keeps_the_servers_time_and_the_address_goes_at_its_expiry() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let server = Server {
        lease_secs: 30,
        ..Server::default()
    };
    bind(&mut tap, &server, t0);
    let lease = tap.lease().unwrap().clone();
    assert_eq!(lease.lease_time, Some(secs(30.0)), "the server's time");
    assert_eq!((lease.t1, lease.t2), (Some(secs(15.0)), Some(secs(26.25))));
    assert!(events(&mut tap).contains(&Event::Dhcp(DhcpEvent::LeaseAcquired(lease))));

    // The server is gone: a renewal at T1 (its ARP unanswered), rebinding at T2.
    let sent = run_until(&mut tap, t0 + secs(29.9));
    let rebind = last_dhcp(&sent);
    assert_eq!(rebind.ip_dst, Ipv4Addr::BROADCAST);
    assert!(tap.ipv4().is_some());
    // At the server's expiry the address goes.
    run_until(&mut tap, t0 + secs(30.0));
    assert_eq!(tap.ipv4(), None);
    assert!(
        events(&mut tap).contains(&Event::Dhcp(DhcpEvent::LeaseLost {
            address: offered(),
            reason: LeaseLostReason::Expired
        }))
    );
    // The server may give it to someone else now: we no longer answer for it.
    let who_has = ArpPacket::request(OTHER_MAC, ip("192.0.2.7"), offered());
    let out = feed(
        &mut tap,
        t0 + secs(30.0),
        &who_has.to_frame(MacAddr::BROADCAST),
    );
    assert!(arps(&out).is_empty(), "{out:?}");
    // A tiny lease cannot make the client loop: discovery waits for MIN_LEASE.
    assert_eq!(
        tap.next_timer(),
        Some(crate::Timer::new(t0 + MIN_LEASE, "dhcp start"))
    );
}

#[test]
fn an_unanswered_renewal_puts_no_icmp_error_on_the_tun() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    bind(&mut tap, &Server::default(), t0);
    events(&mut tap);
    // The renewal waits for the server's MAC, which never comes.
    let out: Vec<Transmit> = run_until(&mut tap, t0 + secs(1810.0))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Renewing));
    assert!(
        crate::testing::tun_packets(&out).is_empty(),
        "the kernel never sent the renewal: {out:?}"
    );
    let s = tap.stats();
    assert_eq!(
        (s.arp_cache.drop_unreachable, s.ipv4.icmp_errors_to_tun),
        (1, 0)
    );
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv4(Ipv4Event::NeighbourUnreachable(server_ip()))]
    );
}

#[test]
fn timers_say_why_they_run() {
    let reason = |tap: &Tap| tap.next_timer().map(|t| t.reason);
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    assert_eq!(reason(&tap), Some("dhcp retransmit"));
    offer_then_ack(&mut tap, &Server::default(), t0);
    assert_eq!(reason(&tap), Some("dhcp probe"));
    run_until(&mut tap, t0 + secs(1.0));
    assert_eq!(reason(&tap), Some("arp announce"));
    run_until(&mut tap, t0 + secs(3.0));
    assert_eq!(
        tap.next_timer(),
        Some(crate::Timer::new(t0 + secs(1800.0), "dhcp renew (T1)"))
    );
    assert_eq!(tap.poll_timeout(), Some(t0 + secs(1800.0)));
    run_until(&mut tap, t0 + secs(1800.0));
    assert_eq!(reason(&tap), Some("arp cache"), "resolving the server");
    // Then the cache collects the failed entry.
    run_until(&mut tap, t0 + secs(1900.0));
    assert_eq!(reason(&tap), Some("dhcp retransmit"));
    run_until(&mut tap, t0 + secs(3140.0));
    assert_eq!(reason(&tap), Some("dhcp rebind (T2)"));
    run_until(&mut tap, t0 + secs(3590.0));
    assert_eq!(
        tap.next_timer(),
        Some(crate::Timer::new(t0 + secs(3600.0), "dhcp expiry"))
    );
}
