//! State-machine tests of the DHCP client, driven through [`Tap`] with simulated time:
//! the simulated server and the helpers here, the tests by topic in the submodules.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use etherparse::{Ipv4HeaderSlice, PacketBuilder};
use proptest::prelude::*;

use super::*;
use crate::ipv4::route::{Ipv4Interface, Ipv4Route};
use crate::testing::{drain, events, run_until};
use crate::wire::arp::ArpPacket;
use crate::wire::dhcpv4::HEADER_LEN;
use crate::wire::ethernet::MacAddr;
use crate::NextHop;
use crate::{Config, Ingress, Ipv4Mode, Tap, Transmit};
use crate::{DhcpEvent, Event, Ipv4Event};

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

mod exchange;
mod lease;
mod options;
mod proptests;
mod roam;
