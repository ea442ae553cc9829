//! The exchanges that lead to a lease: DISCOVER, OFFER, REQUEST, ACK, probing, NAKs,
//! INIT-REBOOT, and the replies that are not for us.

use super::*;

#[test]
fn discover_is_retransmitted_at_4_8_16_32_64_64_seconds_with_jitter() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Selecting));
    let first = dhcp_sent(&drain(&mut tap));
    assert_eq!(first.len(), 1);
    let d = &first[0];
    assert_eq!(d.message_type(), MessageType::Discover);
    assert_eq!(
        (d.eth_dst, d.ip_src, d.ip_dst),
        (
            MacAddr::BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST
        )
    );
    assert!(d.udp_len >= BOOTP_MIN_LEN, "padded to the BOOTP minimum");
    assert!(
        !d.msg.flags().broadcast(),
        "no broadcast flag, like Linux clients"
    );
    assert_eq!(
        d.opt(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 0x64]))
    );
    assert_eq!(
        d.opt(OptionCode::MaxMessageSize),
        Some(&DhcpOption::MaxMessageSize(1500))
    );
    let Some(DhcpOption::ParameterRequestList(prl)) = d.opt(OptionCode::ParameterRequestList)
    else {
        panic!("no parameter request list");
    };
    for code in [1u8, 3, 6, 15, 26, 28, 51, 58, 59, 119, 121] {
        assert!(
            prl.contains(&OptionCode::from(code)),
            "asks for option {code}"
        );
    }
    assert!(d.opt(OptionCode::Hostname).is_none());

    let sent = run_until(&mut tap, t0 + secs(300.0));
    let times: Vec<f64> = std::iter::once(t0)
        .chain(sent.iter().map(|(t, _)| *t))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let expected = [4.0, 8.0, 16.0, 32.0, 64.0, 64.0];
    assert!(times.len() >= expected.len(), "{times:?}");
    for (gap, base) in times.iter().zip(expected) {
        assert!((gap - base).abs() <= 1.0, "gap {gap} vs {base}: {times:?}");
    }
    assert!(
        times
            .iter()
            .any(|g| expected.iter().all(|b| (g - b).abs() > 1e-6)),
        "jittered"
    );
    for (_, t) in &sent {
        let s = dhcp_sent(std::slice::from_ref(t));
        assert_eq!(s[0].msg.xid(), d.msg.xid(), "retransmissions keep the xid");
        assert_eq!(s[0].message_type(), MessageType::Discover);
    }
    assert_eq!(tap.stats().dhcp.messages_out, 1 + sent.len() as u64);
}

#[test]
fn the_same_seed_replays_the_same_exchange() {
    let t0 = Instant::now();
    let run = || {
        let mut tap = dhcp_tap(DhcpConfig::default(), t0);
        let mut out = drain(&mut tap);
        out.extend(
            run_until(&mut tap, t0 + secs(100.0))
                .into_iter()
                .map(|(_, t)| t),
        );
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn hostname_and_client_id_are_sent_when_configured() {
    let t0 = Instant::now();
    let config = DhcpConfig {
        hostname: Some("phone".into()),
        client_id: Some(vec![0, 1, 2, 3]),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    let d = dhcp_sent(&drain(&mut tap)).pop().unwrap();
    assert_eq!(
        d.opt(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("phone".into()))
    );
    assert_eq!(
        d.opt(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![0, 1, 2, 3]))
    );
}

#[test]
fn offer_request_ack_probe_bound_configures_the_interface() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let server = Server::default();
    let discover = dhcp_sent(&drain(&mut tap)).pop().unwrap();

    let out = feed(
        &mut tap,
        t0,
        &server.reply(&discover, MessageType::Offer, offered()),
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Requesting));
    let request = dhcp_sent(&out).pop().unwrap();
    assert_eq!(request.message_type(), MessageType::Request);
    assert_eq!(request.msg.xid(), discover.msg.xid());
    assert_eq!(request.eth_dst, MacAddr::BROADCAST);
    assert_eq!(request.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        request.opt(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(offered()))
    );
    assert_eq!(
        request.opt(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(server_ip()))
    );
    assert!(request.udp_len >= BOOTP_MIN_LEN);

    let t1 = t0 + secs(0.01);
    let out = feed(
        &mut tap,
        t1,
        &server.reply(&request, MessageType::Ack, offered()),
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Probing));
    assert_eq!(tap.ipv4(), None, "not used before the probe phase ends");
    assert_eq!(arps(&out), vec![ArpPacket::probe(OUR_MAC, offered())]);
    assert!(events(&mut tap).is_empty());

    let later = run_until(&mut tap, t1 + secs(0.999));
    let probes: Vec<_> = later
        .iter()
        .map(|(t, x)| (*t, arps(std::slice::from_ref(x))))
        .collect();
    assert_eq!(probes.len(), 2, "three probes in all");
    assert_eq!(probes[0].0, t1 + secs(1.0) / 3);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Probing));

    let out = run_until(&mut tap, t1 + secs(1.0));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    let out: Vec<Transmit> = out.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        arps(&out),
        vec![ArpPacket::announcement(OUR_MAC, offered())]
    );
    let iface = tap.ipv4().unwrap().clone();
    assert_eq!(iface, Ipv4Interface::new(offered(), 24, Some(server_ip())));
    let lease = tap.lease().unwrap().clone();
    assert_eq!(lease.address, offered());
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.gateway, Some(server_ip()));
    assert_eq!(lease.dns, vec![ip("192.0.2.53"), ip("192.0.2.54")]);
    assert_eq!(lease.domain.as_deref(), Some("example.test"));
    assert_eq!(lease.lease_time, Some(secs(3600.0)));
    assert_eq!(lease.t1, Some(secs(1800.0)));
    assert_eq!(lease.t2, Some(secs(3150.0)));
    assert_eq!(lease.server, server_ip());
    assert_eq!(lease.acquired_at, t0, "counted from the REQUEST");
    let ev = events(&mut tap);
    assert!(
        ev.contains(&Event::Dhcp(DhcpEvent::LeaseAcquired(lease.clone()))),
        "{ev:?}"
    );
    assert!(ev.contains(&Event::Ipv4(Ipv4Event::Up(iface))));
    assert_eq!(
        tap.poll_timeout(),
        Some(t1 + secs(3.0)),
        "the second announcement"
    );

    // ARP for the leased address is answered, with no TUN in sight.
    let who_has = ArpPacket::request(OTHER_MAC, ip("192.0.2.7"), offered());
    let out = feed(
        &mut tap,
        t1 + secs(2.0),
        &who_has.to_frame(MacAddr::BROADCAST),
    );
    assert_eq!(
        arps(&out),
        vec![ArpPacket::reply_to(&who_has, OUR_MAC, offered())]
    );
    let s = tap.stats();
    assert_eq!((s.dhcp.messages_out, s.dhcp.messages_in), (2, 2));
}

#[test]
fn unicast_replies_to_yiaddr_are_accepted_and_never_reach_the_tun() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let server = Server {
        unicast: true,
        ..Server::default()
    };
    bind(&mut tap, &server, t0);
    assert_eq!(tap.stats().tun.packets_out, 0);
    assert_eq!(tap.stats().drops_total(), 0);
}

#[test]
fn nak_while_requesting_restarts_at_once_then_backs_off() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let server = Server::default();
    let mut now = t0;
    let mut restarts = Vec::new();
    let mut out = drain(&mut tap);
    for _ in 0..3 {
        let discover = dhcp_sent(&out).pop().expect("a DISCOVER");
        restarts.push(now);
        let request = dhcp_sent(&feed(
            &mut tap,
            now,
            &server.reply(&discover, MessageType::Offer, offered()),
        ))
        .pop()
        .unwrap();
        feed(
            &mut tap,
            now,
            &server.reply(&request, MessageType::Nak, Ipv4Addr::UNSPECIFIED),
        );
        assert_eq!(tap.dhcp_state(), Some(DhcpState::Init));
        now = tap.poll_timeout().unwrap();
        tap.handle_timeout(now);
        out = drain(&mut tap);
    }
    let gaps: Vec<f64> = restarts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert_eq!(gaps[0], 0.0, "the first NAK restarts at once");
    assert!((3.0..=5.0).contains(&gaps[1]), "{gaps:?}");
}

#[test]
fn unanswered_requests_give_up_after_five_and_rediscover() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let discover = dhcp_sent(&drain(&mut tap)).pop().unwrap();
    feed(
        &mut tap,
        t0,
        &Server::default().reply(&discover, MessageType::Offer, offered()),
    );
    let sent = run_until(&mut tap, t0 + secs(200.0));
    let kinds: Vec<MessageType> = sent
        .iter()
        .flat_map(|(_, t)| dhcp_sent(std::slice::from_ref(t)))
        .map(|s| s.message_type())
        .collect();
    use MessageType::{Discover, Request};
    assert_eq!(kinds[..5], [Request, Request, Request, Request, Discover]);
}

#[test]
fn conflict_during_probe_declines_and_restarts_after_ten_seconds() {
    for conflict in [
        // The address is in use: its owner answers our probe.
        ArpPacket::reply_to(&ArpPacket::probe(OUR_MAC, offered()), OTHER_MAC, offered()),
        // Another host probes for the same address at the same time.
        ArpPacket::probe(OTHER_MAC, offered()),
    ] {
        let t0 = Instant::now();
        let mut tap = dhcp_tap(DhcpConfig::default(), t0);
        let server = Server::default();
        offer_then_ack(&mut tap, &server, t0);
        let t1 = t0 + secs(0.2);
        let dst = if conflict.operation == crate::wire::arp::Operation::Reply {
            OUR_MAC
        } else {
            MacAddr::BROADCAST
        };
        let out = feed(&mut tap, t1, &conflict.to_frame(dst));
        let decline = dhcp_sent(&out).pop().expect("a DECLINE");
        assert_eq!(decline.message_type(), MessageType::Decline);
        assert_eq!(
            (decline.eth_dst, decline.ip_src),
            (MacAddr::BROADCAST, Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(decline.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            decline.opt(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(offered()))
        );
        assert_eq!(
            decline.opt(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(server_ip()))
        );
        assert!(decline.opt(OptionCode::ParameterRequestList).is_none());
        assert_eq!(
            events(&mut tap),
            vec![Event::Dhcp(DhcpEvent::LeaseDeclined {
                address: offered(),
                mac: OTHER_MAC
            })]
        );
        assert_eq!(tap.dhcp_state(), Some(DhcpState::Init));
        assert_eq!(tap.ipv4(), None);
        assert_eq!(tap.lease(), None);
        assert_eq!(tap.stats().dhcp.declines, 1);
        assert_eq!(tap.poll_timeout(), Some(t1 + secs(10.0)));
        let out: Vec<Transmit> = run_until(&mut tap, t1 + secs(10.0))
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            dhcp_sent(&out).pop().unwrap().message_type(),
            MessageType::Discover
        );
    }
}

#[test]
fn arp_from_ourselves_or_about_other_addresses_is_no_conflict() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let server = Server::default();
    offer_then_ack(&mut tap, &server, t0);
    let unrelated = ArpPacket::request(OTHER_MAC, ip("192.0.2.7"), ip("192.0.2.8"));
    feed(&mut tap, t0, &unrelated.to_frame(MacAddr::BROADCAST));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Probing));
    run_until(&mut tap, t0 + secs(1.0));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
}

#[test]
fn probing_can_be_disabled() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(
        DhcpConfig {
            probe: false,
            ..DhcpConfig::default()
        },
        t0,
    );
    let server = Server::default();
    offer_then_ack(&mut tap, &server, t0);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    assert_eq!(tap.ipv4().map(|i| i.address), Some(offered()));
}

#[test]
fn init_reboot_accepted() {
    let t0 = Instant::now();
    let config = DhcpConfig {
        remembered_address: Some(offered()),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Rebooting));
    let request = dhcp_sent(&drain(&mut tap)).pop().unwrap();
    assert_eq!(request.message_type(), MessageType::Request);
    assert_eq!(request.eth_dst, MacAddr::BROADCAST);
    assert_eq!(request.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        request.opt(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(offered()))
    );
    assert!(request.opt(OptionCode::ServerIdentifier).is_none());
    let out = feed(
        &mut tap,
        t0,
        &Server::default().reply(&request, MessageType::Ack, offered()),
    );
    assert_eq!(arps(&out), vec![ArpPacket::probe(OUR_MAC, offered())]);
    run_until(&mut tap, t0 + secs(1.0));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    assert_eq!(tap.lease().unwrap().address, offered());
    assert!(matches!(
        events(&mut tap)[..],
        [.., Event::Dhcp(DhcpEvent::LeaseAcquired(_))]
    ));
}

#[test]
fn init_reboot_refused_by_nak_falls_back_to_discovery() {
    let t0 = Instant::now();
    let config = DhcpConfig {
        remembered_address: Some(ip("198.51.100.9")),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    let request = dhcp_sent(&drain(&mut tap)).pop().unwrap();
    let mut out = feed(
        &mut tap,
        t0,
        &Server::default().reply(&request, MessageType::Nak, Ipv4Addr::UNSPECIFIED),
    );
    out.extend(run_until(&mut tap, t0).into_iter().map(|(_, t)| t));
    assert_eq!(
        dhcp_sent(&out).pop().unwrap().message_type(),
        MessageType::Discover
    );
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Selecting));
    assert!(
        events(&mut tap).is_empty(),
        "nothing was configured, nothing is lost"
    );
}

#[test]
fn init_reboot_unanswered_falls_back_to_discovery_after_ten_seconds() {
    let t0 = Instant::now();
    let config = DhcpConfig {
        remembered_address: Some(offered()),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    drain(&mut tap);
    let sent = run_until(&mut tap, t0 + secs(10.0));
    let kinds: Vec<(f64, MessageType)> = sent
        .iter()
        .flat_map(|(t, x)| {
            dhcp_sent(std::slice::from_ref(x))
                .into_iter()
                .map(move |s| ((*t - t0).as_secs_f64(), s.message_type()))
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(kinds[0].1, MessageType::Request);
    assert_eq!(kinds[1], (10.0, MessageType::Discover));
}

#[test]
fn replies_for_others_and_unusable_offers_are_ignored_and_counted() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let server = Server::default();
    let discover = dhcp_sent(&drain(&mut tap)).pop().unwrap();
    let offer = server.reply(&discover, MessageType::Offer, offered());
    let udp = 14 + 20 + 8;

    let mut wrong_xid = offer.clone();
    wrong_xid[udp + 4] ^= 0xff;
    fix_lengths(&mut wrong_xid);
    let mut wrong_chaddr = offer.clone();
    wrong_chaddr[udp + 28 + 5] ^= 0xff;
    fix_lengths(&mut wrong_chaddr);
    let no_yiaddr = server.reply(&discover, MessageType::Offer, Ipv4Addr::UNSPECIFIED);
    let no_server_id = {
        let mut msg = Message::decode(&mut Decoder::new(&offer[udp..])).unwrap();
        msg.opts_mut().remove(OptionCode::ServerIdentifier);
        let mut payload = Vec::new();
        msg.encode(&mut Encoder::new(&mut payload)).unwrap();
        reply_frame(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, &payload)
    };
    let ack_while_selecting = server.reply(&discover, MessageType::Ack, offered());
    let mut bad_checksum = offer.clone();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0x55;
    let mut bad_cookie = offer.clone();
    bad_cookie[udp + 236] = 0;
    fix_lengths(&mut bad_cookie);
    let mut truncated_options = offer.clone();
    truncated_options.truncate(udp + 243);
    fix_lengths(&mut truncated_options);

    for frame in [
        &wrong_xid,
        &wrong_chaddr,
        &no_yiaddr,
        &no_server_id,
        &ack_while_selecting,
        &bad_checksum,
        &bad_cookie,
        &truncated_options,
    ] {
        assert!(feed(&mut tap, t0, frame).is_empty());
        assert_eq!(tap.dhcp_state(), Some(DhcpState::Selecting));
    }
    let s = tap.stats();
    assert_eq!(s.dhcp.drop_not_ours, 2);
    assert_eq!(s.dhcp.drop_invalid, 2);
    assert_eq!(s.dhcp.drop_unexpected, 1);
    assert_eq!(s.dhcp.drop_malformed, 3);
    assert_eq!(s.dhcp.messages_in, 0);
    // The real offer still works.
    assert_eq!(dhcp_sent(&feed(&mut tap, t0, &offer)).len(), 1);
}

#[test]
fn static_mode_delivers_port_68_to_the_tun() {
    let t0 = Instant::now();
    let iface = Ipv4Interface::new(offered(), 24, None);
    let mut tap = Tap::new(
        Config {
            mac: Some(OUR_MAC),
            ipv4: Ipv4Mode::Static(iface),
            ..Config::default()
        },
        t0,
    );
    let frame = reply_frame(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, &[0; 300]);
    assert!(matches!(
        tap.handle_link_frame(t0, &frame),
        Ingress::Deliver(_)
    ));
    assert_eq!(tap.dhcp_state(), None);
}
