//! Arbitrary replies never panic, and whatever a server does the interface matches the
//! lease.

use super::*;

proptest! {
    /// Any fixed header (any hlen, op, flags, addresses) behind the magic cookie with
    /// a message type: never a panic, before or after the xid check.
    #[test]
    fn arbitrary_reply_headers_never_panic(
        header in proptest::collection::vec(any::<u8>(), 236),
        hlen in prop_oneof![Just(0u8), Just(5), Just(6), Just(16), Just(17), any::<u8>()],
        kind in 1u8..9,
    ) {
        let t0 = Instant::now();
        let mut tap = dhcp_tap(DhcpConfig::default(), t0);
        let mut payload = header;
        payload[0] = 2;
        payload[2] = hlen;
        payload.extend_from_slice(&[99, 130, 83, 99, 53, 1, kind, 54, 4, 192, 0, 2, 1, 255]);
        let _ = tap.handle_link_frame(t0, &reply_frame(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, &payload));
    }

    #[test]
    fn arbitrary_udp_payloads_to_port_68_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..700)) {
        let t0 = Instant::now();
        let mut tap = dhcp_tap(DhcpConfig::default(), t0);
        let _ = tap.handle_link_frame(t0, &reply_frame(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, &payload));
    }

    #[test]
    fn arbitrary_options_in_offers_and_acks_never_panic(
        options in proptest::collection::vec(any::<u8>(), 0..600),
        prefix in proptest::collection::vec(prop_oneof![Just(53u8), Just(1), Just(5), Just(2), Just(54), Just(4), Just(119), Just(121), Just(52), Just(3)], 0..8),
    ) {
        let t0 = Instant::now();
        let mut tap = dhcp_tap(DhcpConfig { probe: false, ..DhcpConfig::default() }, t0);
        let mut payload = header_for(&mut tap);
        payload.extend_from_slice(&[53, 1, 2, 54, 4, 192, 0, 2, 1]);
        payload.extend_from_slice(&prefix);
        payload.extend_from_slice(&options);
        let _ = tap.handle_link_frame(t0, &reply_frame(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, &payload));
        let request = dhcp_sent(&drain(&mut tap)).pop();
        if let Some(request) = request {
            let mut ack = raw_ack(&request, offered(), &[]);
            let end = ack.len() - 1;
            ack.truncate(end);
            ack.extend_from_slice(&prefix);
            ack.extend_from_slice(&options);
            fix_lengths(&mut ack);
            let _ = tap.handle_link_frame(t0, &ack);
            let _ = tap.lease();
        }
    }
}

/// One step of a random conversation with a server.
#[derive(Debug, Clone)]
enum Step {
    Wait(u16),
    /// The answer a working server gives to our last message.
    Answer,
    Reply(u8, bool),
    Conflict,
    Release,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u16..4000).prop_map(Step::Wait),
        4 => Just(Step::Answer),
        2 => (0u8..3, any::<bool>()).prop_map(|(k, other)| Step::Reply(k, other)),
        1 => Just(Step::Conflict),
        1 => Just(Step::Release),
    ]
}

proptest! {
    /// Whatever the server does and whenever, the interface is the lease's exactly
    /// while a lease is in force, and no address is configured otherwise.
    #[test]
    fn the_interface_always_matches_the_lease(steps in proptest::collection::vec(step(), 1..40)) {
        let t0 = Instant::now();
        let mut tap = dhcp_tap(DhcpConfig::default(), t0);
        let mut now = t0;
        let mut last: Option<Sent> = None;
        let server = Server { lease_secs: 300, ..Server::default() };
        for step in steps {
            let out = match step {
                Step::Wait(s) => {
                    let until = now + Duration::from_millis(u64::from(s) * 100);
                    let out = run_until(&mut tap, until).into_iter().map(|(_, t)| t).collect();
                    now = until;
                    out
                }
                Step::Answer => match &last {
                    Some(to) if to.message_type() == MessageType::Discover => {
                        feed(&mut tap, now, &server.reply(to, MessageType::Offer, offered()))
                    }
                    Some(to) if to.message_type() == MessageType::Request => {
                        feed(&mut tap, now, &server.reply(to, MessageType::Ack, offered()))
                    }
                    _ => Vec::new(),
                },
                Step::Reply(kind, other) => match &last {
                    Some(to) => {
                        let kind = [MessageType::Offer, MessageType::Ack, MessageType::Nak][usize::from(kind)];
                        let yiaddr = if other { ip("192.0.2.101") } else { offered() };
                        feed(&mut tap, now, &server.reply(to, kind, yiaddr))
                    }
                    None => Vec::new(),
                },
                Step::Conflict => {
                    let arp = ArpPacket::probe(OTHER_MAC, offered());
                    feed(&mut tap, now, &arp.to_frame(MacAddr::BROADCAST))
                }
                Step::Release => {
                    tap.release(now);
                    drain(&mut tap)
                }
            };
            if let Some(sent) = dhcp_sent(&out).pop() {
                last = Some(sent);
            }
            let leased = matches!(
                tap.dhcp_state(),
                Some(DhcpState::Bound | DhcpState::Renewing | DhcpState::Rebinding)
            );
            prop_assert_eq!(leased, tap.lease().is_some());
            prop_assert_eq!(tap.ipv4().cloned(), tap.lease().map(Lease::interface));
            if let Some(l) = tap.lease() {
                prop_assert!(l.expires_at().is_none_or(|e| e > now || tap.poll_timeout().is_some_and(|t| t <= e)));
            }
            let _ = events(&mut tap);
        }
    }
}
