//! IPv6 through the whole [`Tap`]: startup (MLD, DAD, RS), RA processing, NDP answers
//! and resolution, next-hop choice, errors to the TUN, lifetimes, limits and timers, one
//! file per topic; the shared builders and readers are here.

use super::*;
use crate::testing::{self, drain, events};
use crate::wire::dhcpv6 as dhcpv6_wire;
use crate::wire::icmp::{icmpv6_checksum_ok, Endpoints};
use crate::wire::mld::record_type;
use crate::wire::ndp::{NaFlags, PrefixInfo, RouterAdvert, ALL_NODES, ALL_ROUTERS};
use crate::{Config, Event, Ipv4Mode, Ipv6Event, Tap, HEADROOM};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use rand::SeedableRng;

mod addr;
mod dhcpv6;
mod mld;
mod neighbour;
mod prop;
mod roam;
mod router;
mod timers;

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);

const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);

const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Our EUI-64 link-local address.
fn ll() -> Ipv6Addr {
    a("fe80::ff:fe00:64")
}

/// Our SLAAC address in 2001:db8:1::/64.
fn global() -> Ipv6Addr {
    a("2001:db8:1::ff:fe00:64")
}

fn config(v6: Ipv6Config) -> Config {
    Config {
        mac: Some(OUR_MAC),
        ipv4: Ipv4Mode::Disabled,
        ipv6: Ipv6Mode::Slaac(v6),
        ..Config::default()
    }
}

/// Runs every timer due up to `until`; returns what was sent.
fn run_until(tap: &mut Tap, until: Instant) -> Vec<Transmit> {
    testing::run_until(tap, until)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// A tap whose link-local address passed DAD by `t0 + 2 s` and whose MLD reports are
/// out by `t0 + 3 s` (outputs drained).
fn ready_tap(t0: Instant) -> Tap {
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    run_until(&mut tap, t0 + Duration::from_secs(3));
    events(&mut tap);
    assert_eq!(tap.ipv6_info().link_local, Some(ll()));
    tap
}

/// An IPv6 packet's fields from a link frame: destination MAC, source, destination,
/// hop limit and the ICMPv6 message (after a hop-by-hop header if any).
struct Parsed {
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop: u8,
    msg: Vec<u8>,
}

fn parse_frame(frame: &[u8]) -> Option<Parsed> {
    if frame.get(12..14)? != [0x86, 0xdd] {
        return None;
    }
    let ip = Ipv6Packet::parse(&frame[14..])?;
    Some(Parsed {
        dst_mac: MacAddr(frame[0..6].try_into().ok()?),
        src: ip.src(),
        dst: ip.dst(),
        hop: ip.hop_limit(),
        msg: ip.payload.to_vec(),
    })
}

fn link_icmp(out: &[Transmit]) -> Vec<Parsed> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Link(f) => parse_frame(f),
            Transmit::Tun(_) => None,
        })
        .collect()
}

fn of_type(out: &[Transmit], kind: u8) -> Vec<Parsed> {
    link_icmp(out)
        .into_iter()
        .filter(|p| p.msg.first() == Some(&kind))
        .collect()
}

fn frame_to(dst_mac: MacAddr, src_mac: MacAddr, packet: &[u8]) -> Vec<u8> {
    ethernet::build_frame(dst_mac, src_mac, ether_type::IPV6, packet)
}

fn radvd_ra(router_lifetime: u16, valid: u32, preferred: u32) -> Vec<u8> {
    let ra = RouterAdvert {
        cur_hop_limit: 64,
        router_lifetime,
        source_mac: Some(ROUTER_MAC),
        mtu: Some(1400),
        prefixes: vec![PrefixInfo {
            prefix: a("2001:db8:1::"),
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: valid,
            preferred_lifetime: preferred,
        }],
        rdnss: vec![(1200, vec![a("2001:db8:1::53")])],
        dnssl: vec![(1200, vec!["lab.example".into()])],
        ..RouterAdvert::default()
    };
    let packet = ra_packet(a("fe80::1"), ALL_NODES, &ra);
    frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &packet)
}

/// A tap with the radvd prefix configured and DAD done on the global address.
fn slaac_tap(t0: Instant) -> Tap {
    let mut tap = ready_tap(t0);
    let t1 = t0 + Duration::from_secs(3);
    assert_eq!(
        tap.handle_link_frame(t1, &radvd_ra(1800, 86400, 14400)),
        Ingress::Consumed
    );
    run_until(&mut tap, t1 + Duration::from_secs(3));
    events(&mut tap);
    assert_eq!(tap.ipv6_info().addresses, vec![(global(), 64)]);
    tap
}

/// An IPv6 UDP packet from us behind headroom, as read from the TUN.
fn udp6_from_tun(src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; HEADROOM];
    PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
        .udp(4000, 5000)
        .write(&mut frame, payload)
        .unwrap();
    frame
}

fn na_frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    flags: NaFlags,
    mac: Option<MacAddr>,
    src_mac: MacAddr,
    dst_mac: MacAddr,
) -> Vec<u8> {
    let _ = dst;
    frame_to(dst_mac, src_mac, &na_packet(dst, src, flags, mac))
}

fn tun_icmp(out: &[Transmit]) -> Vec<(Ipv6Addr, Ipv6Addr, u8, u8, Vec<u8>)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Tun(p) => {
                let sliced = SlicedPacket::from_ip(p).ok()?;
                let Some(etherparse::NetSlice::Ipv6(ip)) = &sliced.net else {
                    return None;
                };
                let Some(TransportSlice::Icmpv6(i)) = sliced.transport else {
                    return None;
                };
                Some((
                    ip.header().source_addr(),
                    ip.header().destination_addr(),
                    i.type_u8(),
                    i.code_u8(),
                    i.bytes5to8().to_vec(),
                ))
            }
            Transmit::Link(_) => None,
        })
        .collect()
}

/// An MLD report or done from the TUN (the kernel's own, from `::`), behind headroom.
fn mld_from_tun(tap: &mut Tap, now: Instant, packet: &[u8]) {
    let mut frame = vec![0u8; HEADROOM];
    frame.extend_from_slice(packet);
    // It still goes out to the link, for snooping bridges.
    assert_eq!(tap.handle_tun_packet(now, &mut frame), Egress::Send);
    assert_eq!(frame[HEADROOM - 14..HEADROOM - 12], [0x33, 0x33]);
}

/// A UDP datagram from a peer to the multicast group `group`, as a link frame.
fn udp6_to_group(group: Ipv6Addr) -> Vec<u8> {
    let mut p = vec![0u8; HEADROOM];
    PacketBuilder::ipv6(a("fe80::a").octets(), group.octets(), 255)
        .udp(5353, 5353)
        .write(&mut p, b"mdns")
        .unwrap();
    frame_to(MacAddr::ipv6_multicast(group), PEER_MAC, &p[HEADROOM..])
}

/// An MLDv1 report (131) or done (132) for `group`.
fn mldv1(kind: u8, group: Ipv6Addr) -> Vec<u8> {
    let mut msg = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&group.octets());
    let dst = if kind == 131 { group } else { ALL_ROUTERS };
    ndp::icmpv6_packet(Ipv6Addr::UNSPECIFIED, dst, 1, true, msg)
}

/// The address at `at` in `bytes`.
fn ipv6_at(bytes: &[u8], at: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

/// The IPv6 packet of a frame the wire module built.
fn ip_of(frame: Vec<u8>) -> Vec<u8> {
    frame[HEADER_LEN..].to_vec()
}

/// Endpoints for a packet whose Ethernet header the test writes itself.
fn ends(src: Ipv6Addr, dst: Ipv6Addr) -> Endpoints {
    Endpoints {
        src_mac: PEER_MAC,
        dst_mac: OUR_MAC,
        src,
        dst,
    }
}

/// A neighbour solicitation packet from `src` to `dst`.
fn ns_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    source_mac: Option<MacAddr>,
    nonce: Option<[u8; 6]>,
) -> Vec<u8> {
    ip_of(ndp::neighbor_solicitation(
        &ends(src, dst),
        target,
        source_mac,
        nonce,
    ))
}

/// A neighbour advertisement packet for `target`, from it to `dst`.
fn na_packet(dst: Ipv6Addr, target: Ipv6Addr, flags: NaFlags, mac: Option<MacAddr>) -> Vec<u8> {
    ip_of(ndp::neighbor_advertisement(
        &ends(target, dst),
        target,
        flags,
        mac,
    ))
}

/// A router advertisement packet from `src` to `dst`.
fn ra_packet(src: Ipv6Addr, dst: Ipv6Addr, ra: &RouterAdvert) -> Vec<u8> {
    ip_of(ndp::router_advertisement(&ends(src, dst), ra))
}

/// An MLDv2 report packet from `src`.
fn mld_packet(src: Ipv6Addr, records: &[(u8, Ipv6Addr)]) -> Vec<u8> {
    ip_of(crate::wire::mld::report(PEER_MAC, src, records))
}

/// An [`Ipv6Host`] on its own, as the [`Tap`] drives it.
struct Host {
    host: Ipv6Host,
    rng: StdRng,
    stats: Stats,
    now: Instant,
}

impl Host {
    fn new(config: Ipv6Config, now: Instant) -> Host {
        Host::with_cache(config, NeighbourConfig::default(), now)
    }

    fn with_cache(config: Ipv6Config, neighbour: NeighbourConfig, now: Instant) -> Host {
        let mut rng = StdRng::seed_from_u64(7);
        let mut stats = Stats::default();
        let host = Ipv6Host::new(config, neighbour, OUR_MAC, 1500, now, &mut rng, &mut stats);
        let h = Host {
            host,
            rng,
            stats,
            now,
        };
        h.check();
        h
    }

    /// The kept deadline is what a scan finds now.
    fn check(&self) {
        assert_eq!(self.host.deadline, self.host.scan_deadline());
    }

    fn link(&mut self, frame: &[u8]) {
        let Some(eth) = ethernet::Header::parse(frame) else {
            return;
        };
        let (rng, stats) = (&mut self.rng, &mut self.stats);
        let _ = self.host.ingress(self.now, &eth, frame, rng, stats);
        self.check();
    }

    fn tun(&mut self, mut frame: Vec<u8>) {
        let _ = self.host.egress(self.now, &mut frame, &mut self.stats);
        self.check();
    }

    /// Runs every timer due up to `until`; returns their reasons in order.
    fn run_until(&mut self, until: Instant) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        while let Some(timer) = self.host.poll_timeout().filter(|t| t.at <= until) {
            reasons.push(timer.reason);
            self.now = timer.at;
            self.host
                .handle_timeout(self.now, &mut self.rng, &mut self.stats);
            self.check();
        }
        self.now = until;
        reasons
    }

    /// The transaction of the last Information-Request sent, if any.
    fn last_xid(&mut self) -> Option<[u8; 3]> {
        let mut xid = None;
        for t in self.host.transmits.drain(..) {
            if let Transmit::Link(f) = t {
                if f.get(..6) == Some(&[0x33, 0x33, 0, 1, 0, 2][..]) {
                    xid = f.get(63..66).and_then(|x| x.try_into().ok());
                }
            }
        }
        self.host.events.clear();
        xid
    }
}
