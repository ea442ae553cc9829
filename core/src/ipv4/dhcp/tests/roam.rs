//! A change of network while a lease is in force (`Tap::network_changed`), and a
//! remembered lease at start: INIT-REBOOT without a DISCOVER.

use super::*;

fn kinds(sent: &[(Instant, Transmit)], t0: Instant) -> Vec<(f64, MessageType)> {
    sent.iter()
        .flat_map(|(t, x)| {
            dhcp_sent(std::slice::from_ref(x))
                .into_iter()
                .map(move |s| ((*t - t0).as_secs_f64(), s.message_type()))
        })
        .collect()
}

/// A bound host, its events drained; returns it with the time it was bound.
fn bound_tap() -> (Tap, Instant) {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let bound = bind(&mut tap, &Server::default(), t0);
    events(&mut tap);
    (tap, bound)
}

/// The INIT-REBOOT request the change of network sent, after checking the ARP
/// announcement that went before it.
fn confirm_request(out: &[Transmit]) -> Sent {
    let announcements = arps(out);
    assert_eq!(
        announcements,
        vec![ArpPacket::announcement(OUR_MAC, offered())]
    );
    let request = dhcp_sent(out).pop().expect("a REQUEST");
    assert_eq!(request.message_type(), MessageType::Request);
    assert_eq!(request.eth_dst, MacAddr::BROADCAST);
    assert_eq!(request.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(request.ip_src, Ipv4Addr::UNSPECIFIED);
    assert_eq!(request.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        request.opt(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(offered()))
    );
    assert!(request.opt(OptionCode::ServerIdentifier).is_none());
    request
}

#[test]
fn network_change_confirms_the_lease_with_init_reboot_and_an_ack_renews_it() {
    let (mut tap, bound) = bound_tap();
    let roam = bound + secs(600.0);
    run_until(&mut tap, roam);
    tap.network_changed(roam);
    let request = confirm_request(&drain(&mut tap));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Rebooting));
    assert_eq!(
        tap.ipv4().map(|i| i.address),
        Some(offered()),
        "still in use"
    );
    let out = feed(
        &mut tap,
        roam,
        &Server::default().reply(&request, MessageType::Ack, offered()),
    );
    assert!(arps(&out).is_empty(), "a confirmed lease is not probed");
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    let lease = tap.lease().expect("a lease").clone();
    assert_eq!(lease.acquired_at, roam, "counts from the confirmation");
    assert_eq!(
        events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseRenewed(lease.clone()))]
    );
    assert_eq!(tap.next_timer().map(|t| t.reason), Some("arp announce"));
    // The second announcement 2 s later, then nothing until the new T1.
    let out = run_until(&mut tap, roam + secs(1799.0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, roam + secs(2.0));
    assert_eq!(tap.poll_timeout(), lease.renew_at());
}

#[test]
fn network_change_nak_drops_the_lease_and_discovery_gets_a_new_one() {
    let (mut tap, bound) = bound_tap();
    tap.network_changed(bound);
    let request = confirm_request(&drain(&mut tap));
    let mut out = feed(
        &mut tap,
        bound,
        &Server::default().reply(&request, MessageType::Nak, Ipv4Addr::UNSPECIFIED),
    );
    out.extend(run_until(&mut tap, bound).into_iter().map(|(_, t)| t));
    assert_eq!(tap.ipv4(), None);
    assert_eq!(
        events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseLost {
            address: offered(),
            reason: LeaseLostReason::Nak,
        })]
    );
    assert_eq!(
        dhcp_sent(&out).pop().map(|s| s.message_type()),
        Some(MessageType::Discover)
    );
    // Discovery on the new network gives a new address.
    let discover = dhcp_sent(&out).pop().unwrap();
    let new_address = ip("192.0.2.177");
    let request = dhcp_sent(&feed(
        &mut tap,
        bound,
        &Server::default().reply(&discover, MessageType::Offer, new_address),
    ))
    .pop()
    .unwrap();
    feed(
        &mut tap,
        bound,
        &Server::default().reply(&request, MessageType::Ack, new_address),
    );
    run_until(&mut tap, bound + secs(1.0));
    assert_eq!(tap.ipv4().map(|i| i.address), Some(new_address));
    assert!(matches!(
        &events(&mut tap)[..],
        [.., Event::Dhcp(DhcpEvent::LeaseAcquired(l))] if l.address == new_address
    ));
}

#[test]
fn network_change_unanswered_keeps_the_lease_and_its_t1_t2_schedule() {
    let (mut tap, bound) = bound_tap();
    let lease = tap.lease().unwrap().clone();
    let roam = bound + secs(100.0);
    run_until(&mut tap, roam);
    tap.network_changed(roam);
    let mut out: Vec<(Instant, Transmit)> =
        drain(&mut tap).into_iter().map(|t| (roam, t)).collect();
    out.extend(run_until(&mut tap, roam + secs(10.0)));
    let sent = kinds(&out, roam);
    assert_eq!(
        sent.len(),
        2,
        "the request and one retransmission: {sent:?}"
    );
    assert!(sent.iter().all(|(_, k)| *k == MessageType::Request));
    assert_eq!(sent[0].0, 0.0);
    assert!((3.0..=5.0).contains(&sent[1].0), "{sent:?}");
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    assert_eq!(tap.lease(), Some(&lease), "the same lease, unchanged");
    assert_eq!(tap.ipv4().map(|i| i.address), Some(offered()));
    assert!(events(&mut tap).is_empty());
    assert_eq!(tap.poll_timeout(), lease.renew_at());
    // At T1 the renewal is unicast to the server as usual.
    let out = run_answering_arp(&mut tap, lease.renew_at().unwrap());
    let renewal = last_dhcp(&out);
    assert_eq!(renewal.ip_dst, server_ip());
    assert_eq!(renewal.msg.ciaddr(), offered());
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Renewing));
}

#[test]
fn network_change_past_t1_goes_back_to_renewing_without_an_answer() {
    let (mut tap, _) = bound_tap();
    let lease = tap.lease().unwrap().clone();
    let t1 = lease.renew_at().unwrap();
    run_answering_arp(&mut tap, t1);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Renewing));
    let roam = t1 + secs(30.0);
    tap.network_changed(roam);
    confirm_request(&drain(&mut tap));
    let out = run_answering_arp(&mut tap, roam + secs(10.0));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Renewing));
    let renewal = last_dhcp(&out);
    assert_eq!(renewal.ip_dst, server_ip(), "renewing again, by unicast");
    assert_eq!(tap.lease(), Some(&lease));
}

#[test]
fn static_address_is_only_announced_on_network_change() {
    let t0 = Instant::now();
    let iface = Ipv4Interface::new(offered(), 24, Some(server_ip()));
    let mut tap = Tap::new(
        Config {
            mac: Some(OUR_MAC),
            ipv4: Ipv4Mode::Static(iface),
            ipv6: crate::Ipv6Mode::Disabled,
            ..Config::default()
        },
        t0,
    );
    run_until(&mut tap, t0 + secs(5.0));
    drain(&mut tap);
    events(&mut tap);
    let roam = t0 + secs(60.0);
    tap.network_changed(roam);
    let mut out: Vec<(Instant, Transmit)> =
        drain(&mut tap).into_iter().map(|t| (roam, t)).collect();
    out.extend(run_until(&mut tap, roam + secs(60.0)));
    let frames: Vec<Transmit> = out.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(
        arps(&frames),
        vec![ArpPacket::announcement(OUR_MAC, offered()); 2]
    );
    assert_eq!(out[1].0, roam + secs(2.0), "2 s apart");
    assert!(dhcp_sent(&frames).is_empty());
    assert_eq!(frames.len(), 2, "nothing else");
    assert!(events(&mut tap).is_empty());
    assert_eq!(tap.dhcp_state(), None);
}

#[test]
fn network_change_while_selecting_starts_discovery_again_at_once() {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let first = dhcp_sent(&drain(&mut tap)).pop().unwrap();
    let roam = t0 + secs(2.0);
    run_until(&mut tap, roam);
    tap.network_changed(roam);
    let out = drain(&mut tap);
    assert!(arps(&out).is_empty(), "no address to announce");
    let discover = dhcp_sent(&out).pop().expect("a DISCOVER at once");
    assert_eq!(discover.message_type(), MessageType::Discover);
    assert_ne!(discover.msg.xid(), first.msg.xid());
}

#[test]
fn network_change_after_release_sends_nothing() {
    let (mut tap, bound) = bound_tap();
    tap.release(bound);
    drain(&mut tap);
    tap.network_changed(bound + secs(1.0));
    assert!(drain(&mut tap).is_empty());
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Released));
}

fn remembered(acquired_at: Instant) -> Lease {
    Lease {
        address: offered(),
        prefix_len: 24,
        gateway: Some(server_ip()),
        routes: vec![Ipv4Route::default_via(server_ip())],
        dns: vec![],
        domain: None,
        search: vec![],
        mtu: None,
        broadcast: None,
        lease_time: Some(secs(3600.0)),
        t1: Some(secs(1800.0)),
        t2: Some(secs(3150.0)),
        server: server_ip(),
        acquired_at,
    }
}

#[test]
fn remembered_lease_starts_with_init_reboot_and_an_ack_binds_it() {
    let t0 = Instant::now() + secs(4000.0);
    let config = DhcpConfig {
        remembered_lease: Some(remembered(t0 - secs(600.0))),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Rebooting));
    let sent = dhcp_sent(&drain(&mut tap));
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.message_type(), MessageType::Request);
    assert_eq!(request.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        request.opt(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(offered()))
    );
    assert!(request.opt(OptionCode::ServerIdentifier).is_none());
    assert_eq!(tap.ipv4(), None, "not used before the server agrees");
    let out = feed(
        &mut tap,
        t0,
        &Server::default().reply(request, MessageType::Ack, offered()),
    );
    // A lease held until the restart is bound at once: no probe, an announcement.
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound), "no probe");
    assert!(
        arps(&out).iter().all(|a| !a.is_probe()),
        "no probe: {:?}",
        arps(&out)
    );
    assert_eq!(tap.ipv4().map(|i| i.address), Some(offered()));
    let out = run_until(&mut tap, t0 + secs(1.0));
    let frames: Vec<Transmit> = out.into_iter().map(|(_, t)| t).collect();
    assert!(dhcp_sent(&frames).is_empty(), "no DISCOVER");
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    assert!(matches!(
        &events(&mut tap)[..],
        [.., Event::Dhcp(DhcpEvent::LeaseAcquired(l))] if l.address == offered()
    ));
}

#[test]
fn expired_remembered_lease_starts_with_discovery() {
    let t0 = Instant::now() + secs(4000.0);
    let config = DhcpConfig {
        remembered_lease: Some(remembered(t0 - secs(3600.0))),
        // The lease decides when both are set.
        remembered_address: Some(offered()),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Selecting));
    let sent = dhcp_sent(&drain(&mut tap));
    assert_eq!(
        sent.iter().map(Sent::message_type).collect::<Vec<_>>(),
        vec![MessageType::Discover]
    );
}

#[test]
fn every_client_message_carries_the_client_identifier() {
    let id = DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 0x64]);
    let (mut tap, bound) = bound_tap();
    let mut messages = Vec::new();
    // INIT-REBOOT after a change of network.
    tap.network_changed(bound);
    messages.extend(dhcp_sent(&drain(&mut tap)));
    run_until(&mut tap, bound + secs(10.0));
    // The renewal, the rebinding and the release.
    let lease = tap.lease().unwrap().clone();
    let out = run_answering_arp(&mut tap, lease.rebind_at().unwrap());
    let out: Vec<Transmit> = out.into_iter().map(|(_, t)| t).collect();
    messages.extend(dhcp_sent(&out));
    let rebinding = lease.rebind_at().unwrap();
    tap.release(rebinding);
    messages.extend(dhcp_sent(&drain(&mut tap)));
    let kinds: Vec<MessageType> = messages.iter().map(Sent::message_type).collect();
    assert!(kinds.contains(&MessageType::Release), "{kinds:?}");
    assert!(kinds.len() >= 4, "{kinds:?}");
    for m in &messages {
        assert_eq!(
            m.opt(OptionCode::ClientIdentifier),
            Some(&id),
            "{:?}",
            m.message_type()
        );
    }
}
