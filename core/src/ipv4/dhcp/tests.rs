//! State-machine tests of the DHCP client, driven through [`Tap`] with simulated time.

use super::*;
use crate::testing::{drain, events, run_until};
use crate::NextHop;
use crate::{Config, Ingress, Ipv4Mode, Tap, Transmit};
use crate::{DhcpEvent, Event, Ipv4Event};
use dhcproto::v4::Flags;
use proptest::prelude::*;

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);
const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const OTHER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x33]);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn server_ip() -> Ipv4Addr {
    ip("192.0.2.1")
}

fn offered() -> Ipv4Addr {
    ip("192.0.2.100")
}

fn dhcp_tap(config: DhcpConfig, now: Instant) -> Tap {
    Tap::new(
        Config {
            mac: Some(OUR_MAC),
            ipv4: Ipv4Mode::Dhcp(config),
            ipv6: crate::Ipv6Mode::Disabled,
            rng_seed: 7,
            ..Config::default()
        },
        now,
    )
}

/// A DHCP message we sent, with where it went.
#[derive(Debug)]
struct Sent {
    eth_dst: MacAddr,
    ip_src: Ipv4Addr,
    ip_dst: Ipv4Addr,
    udp_len: usize,
    msg: Message,
}

impl Sent {
    fn message_type(&self) -> MessageType {
        self.msg.opts().msg_type().unwrap()
    }

    fn opt(&self, code: OptionCode) -> Option<&DhcpOption> {
        self.msg.opts().get(code)
    }
}

/// The DHCP messages among `transmits`.
fn dhcp_sent(transmits: &[Transmit]) -> Vec<Sent> {
    transmits
        .iter()
        .filter_map(|t| match t {
            Transmit::Link(f) if f[12..14] == [0x08, 0x00] => {
                let sliced = etherparse::SlicedPacket::from_ethernet(f).unwrap();
                let Some(etherparse::NetSlice::Ipv4(ipv4)) = sliced.net else {
                    return None;
                };
                let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
                    return None;
                };
                if udp.destination_port() != 67 {
                    return None;
                }
                assert_eq!(udp.source_port(), 68);
                Some(Sent {
                    eth_dst: MacAddr(f[0..6].try_into().unwrap()),
                    ip_src: ipv4.header().source_addr(),
                    ip_dst: ipv4.header().destination_addr(),
                    udp_len: udp.payload().len(),
                    msg: Message::decode(&mut Decoder::new(udp.payload())).unwrap(),
                })
            }
            _ => None,
        })
        .collect()
}

fn arps(transmits: &[Transmit]) -> Vec<ArpPacket> {
    transmits
        .iter()
        .filter_map(|t| match t {
            Transmit::Link(f) if f[12..14] == [0x08, 0x06] => ArpPacket::parse(&f[14..]).ok(),
            _ => None,
        })
        .collect()
}

/// Like [`run_until`], answering ARP requests for the server at once.
fn run_answering_arp(tap: &mut Tap, until: Instant) -> Vec<(Instant, Transmit)> {
    let mut out = Vec::new();
    while let Some(t) = tap.poll_timeout().filter(|t| *t <= until) {
        tap.handle_timeout(t);
        let mut batch = drain(tap);
        while let Some(i) = arps(&batch)
            .iter()
            .position(|a| a.target_ip == server_ip() && a.sender_ip != server_ip())
        {
            let _ = i;
            let request = arps(&batch)
                .into_iter()
                .find(|a| a.target_ip == server_ip())
                .unwrap();
            out.extend(batch.drain(..).map(|x| (t, x)));
            let reply = ArpPacket::reply_to(&request, SERVER_MAC, server_ip());
            batch = feed(tap, t, &reply.to_frame(OUR_MAC));
        }
        out.extend(batch.into_iter().map(|x| (t, x)));
    }
    out
}

/// The last DHCP message among `sent`.
fn last_dhcp(sent: &[(Instant, Transmit)]) -> Sent {
    let transmits: Vec<Transmit> = sent.iter().map(|(_, t)| t.clone()).collect();
    dhcp_sent(&transmits).pop().expect("a DHCP message")
}

/// The server side of an exchange: builds replies to our messages.
struct Server {
    lease_secs: u32,
    extra: Vec<DhcpOption>,
    unicast: bool,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            lease_secs: 3600,
            extra: vec![
                DhcpOption::SubnetMask(ip("255.255.255.0")),
                DhcpOption::Router(vec![server_ip()]),
                DhcpOption::DomainNameServer(vec![ip("192.0.2.53"), ip("192.0.2.54")]),
                DhcpOption::DomainName("example.test".into()),
            ],
            unicast: false,
        }
    }
}

impl Server {
    fn reply(&self, to: &Sent, kind: MessageType, yiaddr: Ipv4Addr) -> Vec<u8> {
        let mut msg = Message::new_with_id(
            to.msg.xid(),
            to.msg.ciaddr(),
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &to.msg.chaddr()[..6],
        );
        msg.set_opcode(Opcode::BootReply)
            .set_flags(Flags::default());
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(server_ip()));
        if kind != MessageType::Nak {
            opts.insert(DhcpOption::AddressLeaseTime(self.lease_secs));
            for o in &self.extra {
                opts.insert(o.clone());
            }
        }
        let mut payload = Vec::new();
        msg.encode(&mut Encoder::new(&mut payload)).unwrap();
        let dst = if self.unicast && !yiaddr.is_unspecified() {
            (OUR_MAC, yiaddr)
        } else {
            (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
        };
        reply_frame(dst.0, dst.1, &payload)
    }
}

fn reply_frame(eth_dst: MacAddr, ip_dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(SERVER_MAC.0, eth_dst.0)
        .ipv4(server_ip().octets(), ip_dst.octets(), 64)
        .udp(67, 68)
        .write(&mut frame, payload)
        .unwrap();
    frame
}

/// Feeds a frame; asserts it is not delivered to the TUN.
fn feed(tap: &mut Tap, now: Instant, frame: &[u8]) -> Vec<Transmit> {
    assert_eq!(tap.handle_link_frame(now, frame), Ingress::Consumed);
    drain(tap)
}

/// Answers our DISCOVER with an OFFER and the REQUEST that follows with an ACK, all at
/// `t0`; the probe phase has not run yet.
fn offer_then_ack(tap: &mut Tap, server: &Server, t0: Instant) {
    let discover = dhcp_sent(&drain(tap)).pop().expect("a DISCOVER");
    let request = dhcp_sent(&feed(
        tap,
        t0,
        &server.reply(&discover, MessageType::Offer, offered()),
    ))
    .pop()
    .expect("a REQUEST");
    feed(
        tap,
        t0,
        &server.reply(&request, MessageType::Ack, offered()),
    );
}

/// Drives DISCOVER → OFFER → REQUEST → ACK → probes → BOUND; returns the time bound.
fn bind(tap: &mut Tap, server: &Server, t0: Instant) -> Instant {
    let discover = dhcp_sent(&drain(tap)).pop().expect("a DISCOVER");
    assert_eq!(discover.message_type(), MessageType::Discover);
    let request = dhcp_sent(&feed(
        tap,
        t0,
        &server.reply(&discover, MessageType::Offer, offered()),
    ))
    .pop()
    .expect("a REQUEST");
    assert_eq!(request.message_type(), MessageType::Request);
    feed(
        tap,
        t0,
        &server.reply(&request, MessageType::Ack, offered()),
    );
    let bound = t0 + secs(1.0);
    run_until(tap, bound);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    bound
}

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

/// Fixes the IP and UDP lengths and checksums after a test edited a frame.
fn fix_lengths(frame: &mut [u8]) {
    let ip_len = (frame.len() - 14) as u16;
    frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
    let header = Ipv4HeaderSlice::from_slice(&frame[14..34])
        .unwrap()
        .to_header();
    let sum = header.calc_header_checksum();
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    frame[40..42].copy_from_slice(&[0, 0]);
}

/// Builds an ACK with raw option bytes after the message type, server id and lease time.
fn raw_ack(to: &Sent, yiaddr: Ipv4Addr, raw_options: &[u8]) -> Vec<u8> {
    let mut msg = Message::new_with_id(
        to.msg.xid(),
        Ipv4Addr::UNSPECIFIED,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &OUR_MAC.0,
    );
    msg.set_opcode(Opcode::BootReply);
    let mut payload = Vec::new();
    msg.encode(&mut Encoder::new(&mut payload)).unwrap();
    payload.truncate(HEADER_LEN);
    payload.extend_from_slice(&[53, 1, 5, 54, 4]);
    payload.extend_from_slice(&server_ip().octets());
    payload.extend_from_slice(&[51, 4, 0, 0, 0x0e, 0x10]);
    payload.extend_from_slice(raw_options);
    payload.push(255);
    reply_frame(MacAddr::BROADCAST, Ipv4Addr::BROADCAST, &payload)
}

/// Binds with an ACK carrying `raw_options`; returns the lease.
/// A host (no probe) that got an OFFER and then an ACK carrying `raw_options`.
fn tap_after_raw_ack(raw_options: &[u8]) -> Tap {
    let t0 = Instant::now();
    let mut tap = dhcp_tap(
        DhcpConfig {
            probe: false,
            ..DhcpConfig::default()
        },
        t0,
    );
    let discover = dhcp_sent(&drain(&mut tap)).pop().unwrap();
    let request = dhcp_sent(&feed(
        &mut tap,
        t0,
        &Server::default().reply(&discover, MessageType::Offer, offered()),
    ))
    .pop()
    .unwrap();
    feed(&mut tap, t0, &raw_ack(&request, offered(), raw_options));
    tap
}

fn lease_from_raw(raw_options: &[u8]) -> (Tap, Lease) {
    let tap = tap_after_raw_ack(raw_options);
    let lease = tap.lease().expect("bound").clone();
    (tap, lease)
}

#[test]
fn classless_static_routes_replace_the_router_option() {
    #[rustfmt::skip]
    let options = [
        3, 4, 192, 0, 2, 1, // router: ignored
        1, 4, 255, 255, 255, 0,
        121, 20,
        0, 192, 0, 2, 254,                // default via 192.0.2.254
        24, 198, 51, 100, 192, 0, 2, 253, // 198.51.100.0/24 via 192.0.2.253
        16, 203, 0, 0, 0, 0, 0,           // 203.0.0.0/16 on-link
    ];
    let (tap, lease) = lease_from_raw(&options);
    assert_eq!(lease.gateway, Some(ip("192.0.2.254")));
    assert_eq!(
        lease.routes,
        vec![
            Ipv4Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(ip("192.0.2.254"))
            },
            Ipv4Route {
                destination: ip("198.51.100.0"),
                prefix_len: 24,
                gateway: Some(ip("192.0.2.253"))
            },
            Ipv4Route {
                destination: ip("203.0.0.0"),
                prefix_len: 16,
                gateway: None
            },
        ]
    );
    let iface = tap.ipv4().unwrap();
    assert_eq!(
        iface.next_hop(ip("8.8.8.8")),
        NextHop::Neighbour(ip("192.0.2.254"))
    );
    assert_eq!(
        iface.next_hop(ip("198.51.100.5")),
        NextHop::Neighbour(ip("192.0.2.253"))
    );
    assert_eq!(
        iface.next_hop(ip("203.0.7.7")),
        NextHop::Neighbour(ip("203.0.7.7"))
    );
}

#[test]
fn split_options_search_list_overload_and_string_quirks_are_decoded() {
    // "example.test", "lab." + a pointer back to "example.test".
    let search = b"\x07example\x04test\x00\x03lab\xc0\x00";
    // Split in two (RFC 3396), the name cut in the middle.
    let mut options = vec![119, 9];
    options.extend_from_slice(&search[..9]);
    options.extend_from_slice(&[119, 11]);
    options.extend_from_slice(&search[9..]);
    #[rustfmt::skip]
    options.extend_from_slice(&[
        15, 5, b'a', b'.', b'b', 0, 0, // trailing NULs dropped
        26, 2, 0x05, 0xdc,
        28, 4, 192, 0, 2, 255,
        58, 4, 0, 0, 0, 100,
        59, 4, 0, 0, 0, 200,
    ]);
    let (_, lease) = lease_from_raw(&options);
    assert_eq!(
        lease.search,
        vec!["example.test".to_owned(), "lab.example.test".to_owned()]
    );
    assert_eq!(lease.domain.as_deref(), Some("a.b"));
    assert_eq!(lease.mtu, Some(1500));
    assert_eq!(lease.broadcast, Some(ip("192.0.2.255")));
    assert_eq!((lease.t1, lease.t2), (Some(secs(100.0)), Some(secs(200.0))));
    assert_eq!(lease.prefix_len, 24, "classful without a mask");
}

#[test]
fn interface_mtu_option_lowers_the_ipv4_mtu_never_raises_it() {
    let (mut tap, lease) = lease_from_raw(&[26, 2, 0x05, 0x78]); // 1400
    assert_eq!(lease.mtu, Some(1400));
    assert_eq!((tap.mtu(), tap.ipv4_mtu()), (1500, 1400));
    // A 1401-byte packet with DF gets fragmentation-needed carrying 1400.
    let mut frame = vec![0u8; crate::HEADROOM];
    etherparse::PacketBuilder::ipv4(lease.address.octets(), [192, 0, 2, 255], 64)
        .udp(1, 2)
        .write(&mut frame, &[0u8; 1401 - 28])
        .unwrap();
    assert_eq!(
        tap.handle_tun_packet(Instant::now(), &mut frame),
        crate::Egress::Consumed
    );
    let icmp = drain(&mut tap)
        .into_iter()
        .find_map(|t| match t {
            Transmit::Tun(p) => Some(p),
            Transmit::Link(_) => None,
        })
        .expect("an ICMP error for the TUN");
    assert_eq!((icmp[20], icmp[21]), (3, 4));
    assert_eq!(&icmp[26..28], &1400u16.to_be_bytes());
    let (tap, _) = lease_from_raw(&[26, 2, 0x23, 0x28]); // 9000: the link stays at 1500
    assert_eq!(tap.ipv4_mtu(), 1500);
}

#[test]
fn malformed_options_are_ignored_and_counted() {
    #[rustfmt::skip]
    let options = [
        6, 3, 1, 2, 3,          // DNS not a multiple of 4
        26, 2, 0, 10,           // MTU under 68
        121, 3, 33, 1, 2,       // width over 32
        119, 2, 0xc0, 0,        // pointer loop
        15, 2, 0xff, 0xfe,      // not UTF-8
        58, 3, 0, 0, 1,         // T1 of 3 bytes
    ];
    let (tap, lease) = lease_from_raw(&options);
    assert!(lease.dns.is_empty() && lease.search.is_empty() && lease.routes.is_empty());
    assert_eq!((lease.mtu, lease.domain.as_deref()), (None, None));
    assert_eq!(lease.t1, Some(secs(1800.0)));
    assert_eq!(tap.stats().dhcp.options_ignored, 6);
}

#[test]
fn a_non_contiguous_subnet_mask_or_missing_lease_time_makes_the_ack_unusable() {
    let tap = tap_after_raw_ack(&[1, 4, 255, 0, 255, 0]);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Requesting));
    assert_eq!(tap.stats().dhcp.drop_invalid, 1);
}

#[test]
fn infinite_leases_never_renew_and_short_ones_are_clamped() {
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
    assert_eq!(lease.lease_time, Some(MIN_LEASE));
    assert_eq!((lease.t1, lease.t2), (Some(secs(30.0)), Some(secs(52.5))));
}

#[test]
fn inconsistent_t1_t2_fall_back_to_the_defaults() {
    let (_, lease) = lease_from_raw(&[58, 4, 0, 0, 0x10, 0, 59, 4, 0, 0, 0x20, 0]);
    assert_eq!(
        (lease.t1, lease.t2),
        (Some(secs(1800.0)), Some(secs(3150.0)))
    );
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

/// A reply header for the client's current transaction (so the options get parsed).
fn header_for(tap: &mut Tap) -> Vec<u8> {
    let discover = dhcp_sent(&drain(tap)).pop().unwrap();
    let mut msg = Message::new_with_id(
        discover.msg.xid(),
        Ipv4Addr::UNSPECIFIED,
        offered(),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &OUR_MAC.0,
    );
    msg.set_opcode(Opcode::BootReply);
    let mut payload = Vec::new();
    msg.encode(&mut Encoder::new(&mut payload)).unwrap();
    payload.truncate(HEADER_LEN);
    payload
}

#[test]
fn search_list_compression_cannot_amplify() {
    // 120 one-byte labels, then a pointer back to the start: each pass adds 240
    // characters, so the name passes 253 on the second pass and is refused.
    let mut option = Vec::new();
    for _ in 0..120 {
        option.extend_from_slice(&[1, b'a']);
    }
    option.extend_from_slice(&[0xc0, 0x00]);
    assert_eq!(decode_domain_list(&option), None);
    // Many short names each pointing back at a long one: the list is capped.
    let mut option = vec![60];
    option.extend_from_slice(&[b'b'; 60]);
    option.push(0);
    for _ in 0..500 {
        option.extend_from_slice(&[0xc0, 0x00]);
    }
    let names = decode_domain_list(&option).unwrap();
    assert_eq!(names.len(), MAX_SEARCH_DOMAINS);
    // A normal compressed list still decodes.
    let list = [
        3, b'l', b'a', b'b', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 4, b'c', b'o', b'r',
        b'p', 0xc0, 4,
    ];
    assert_eq!(
        decode_domain_list(&list).unwrap(),
        vec!["lab.example".to_string(), "corp.example".to_string()]
    );
}

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
