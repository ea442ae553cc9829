//! IPv6 through the whole [`Tap`]: startup (MLD, DAD, RS), RA processing, NDP answers
//! and resolution, next-hop choice, errors to the TUN, lifetimes and limits.

use super::*;
use crate::ipv6::dhcpv6;
use crate::testing::{drain, events};
use crate::wire::ndp::{PrefixInfo, ALL_ROUTERS};
use crate::{Config, Ipv4Mode, Tap, HEADROOM};
use crate::{Event, Ipv6Event};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

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
    let mut out = Vec::new();
    while let Some(t) = tap.poll_timeout() {
        if t > until {
            break;
        }
        tap.handle_timeout(t);
        out.extend(drain(tap));
    }
    out
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
    let p = &frame[14..];
    let offset = if p[6] == 0 { 48 } else { 40 };
    Some(Parsed {
        dst_mac: MacAddr(frame[0..6].try_into().ok()?),
        src: ipv6_at(p, 8)?,
        dst: ipv6_at(p, 24)?,
        hop: p[7],
        msg: p.get(offset..)?.to_vec(),
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
    let packet = ndp::router_advertisement(a("fe80::1"), ALL_NODES, &ra);
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
    frame_to(
        dst_mac,
        src_mac,
        &ndp::neighbor_advertisement(dst, src, flags, mac),
    )
}

#[test]
fn startup_joins_probes_solicits_and_goes_idle() {
    let t0 = Instant::now();
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    assert_eq!(tap.poll_timeout(), Some(t0));
    let out = run_until(&mut tap, t0 + Duration::from_secs(30));
    // MLDv2 report from :: joining our solicited-node group, hop limit 1, router alert.
    let mld = of_type(&out, 143);
    assert_eq!(
        mld.len(),
        4,
        "robustness: two copies from ::, two from the link-local"
    );
    for m in &mld[2..] {
        assert_eq!(m.src, ll());
        assert_eq!(&m.msg[4..], &mld[0].msg[4..], "the same join record");
    }
    assert_eq!(mld[0].src, Ipv6Addr::UNSPECIFIED);
    assert_eq!(mld[0].dst, a("ff02::16"));
    assert_eq!(mld[0].dst_mac, MacAddr([0x33, 0x33, 0, 0, 0, 0x16]));
    assert_eq!(mld[0].hop, 1);
    assert_eq!(&mld[0].msg[4..8], &[0, 0, 0, 1]);
    assert_eq!(mld[0].msg[8], record_type::CHANGE_TO_EXCLUDE);
    assert_eq!(ipv6_at(&mld[0].msg, 12), Some(a("ff02::1:ff00:64")));
    // One DAD probe: from ::, to the solicited-node group, target our link-local.
    let ns = of_type(&out, 135);
    assert_eq!(ns.len(), 1);
    assert_eq!(
        (ns[0].src, ns[0].dst, ns[0].hop),
        (Ipv6Addr::UNSPECIFIED, a("ff02::1:ff00:64"), 255)
    );
    assert_eq!(ns[0].dst_mac, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x64]));
    assert_eq!(ipv6_at(&ns[0].msg, 8), Some(ll()));
    assert_eq!(
        ns[0].msg[24], 14,
        "RFC 7527 nonce, no source link-layer option"
    );
    // Three RS from the link-local address with our MAC, 4 s apart.
    let rs = of_type(&out, 133);
    assert_eq!(rs.len(), 3);
    for r in &rs {
        assert_eq!((r.src, r.dst, r.hop), (ll(), ALL_ROUTERS, 255));
        assert_eq!(&r.msg[8..16], &[1, 1, 2, 0, 0, 0, 0, 0x64]);
        assert_eq!(ndp::icmpv6_checksum(r.src, r.dst, &r.msg), 0);
    }
    assert_eq!(tap.poll_timeout(), None, "idle: no timers");
    let ev = events(&mut tap);
    assert_eq!(
        ev,
        vec![Event::Ipv6(Ipv6Event::Changed(Ipv6Info {
            link_local: Some(ll()),
            ..Ipv6Info::default()
        }))]
    );
    let s = tap.stats();
    assert_eq!(
        (
            s.ndp.dad_started,
            s.ndp.dad_succeeded,
            s.ndp.rs_out,
            s.mld.reports_out
        ),
        (1, 1, 3, 4)
    );
}

#[test]
fn ra_gives_slaac_address_routes_dns_and_mtu() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let t1 = t0 + Duration::from_secs(3);
    let _ = tap.handle_link_frame(t1, &radvd_ra(1800, 86400, 14400));
    // The router's route, DNS and MTU are known at once; the address after DAD.
    let out = run_until(&mut tap, t1 + Duration::from_secs(3));
    let dad = of_type(&out, 135);
    assert_eq!(dad.len(), 1);
    assert_eq!(ipv6_at(&dad[0].msg, 8), Some(global()));
    assert!(of_type(&out, 133).is_empty(), "an RA stops solicitation");
    let ev = events(&mut tap);
    let expected = Ipv6Info {
        addresses: vec![(global(), 64)],
        link_local: Some(ll()),
        routes: vec![
            Ipv6Route {
                destination: a("2001:db8:1::"),
                prefix_len: 64,
                gateway: None,
            },
            Ipv6Route {
                destination: Ipv6Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(a("fe80::1")),
            },
        ],
        dns: vec![a("2001:db8:1::53")],
        search: vec!["lab.example".into()],
        mtu: Some(1400),
    };
    assert_eq!(
        ev.last(),
        Some(&Event::Ipv6(Ipv6Event::Changed(expected.clone())))
    );
    assert_eq!(
        ev.len(),
        2,
        "first without the tentative address, then with it"
    );
    assert_eq!(tap.ipv6_info(), expected);
    // The router's MAC was learnt from its RA.
    assert_eq!(
        tap.ndp_cache().get(a("fe80::1")).map(|e| e.1),
        Some(ROUTER_MAC)
    );
    // The same RA again changes nothing.
    let _ = tap.handle_link_frame(t1 + Duration::from_secs(10), &radvd_ra(1800, 86400, 14400));
    assert!(events(&mut tap).is_empty());
}

#[test]
fn multicast_ns_for_our_address_gets_solicited_override_na_with_our_mac() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let peer = a("2001:db8:1::a");
    let ns = ndp::neighbor_solicitation(
        peer,
        solicited_node(global()),
        global(),
        Some(PEER_MAC),
        None,
    );
    let now = t0 + Duration::from_secs(10);
    let frame = frame_to(
        MacAddr::ipv6_multicast(solicited_node(global())),
        PEER_MAC,
        &ns,
    );
    assert_eq!(tap.handle_link_frame(now, &frame), Ingress::Consumed);
    let out = drain(&mut tap);
    let [Transmit::Link(f)] = &out[..] else {
        panic!("{out:?}")
    };
    let expected = ndp::neighbor_advertisement(
        peer,
        global(),
        NaFlags {
            router: false,
            solicited: true,
            override_flag: true,
        },
        Some(OUR_MAC),
    );
    assert_eq!(
        f,
        &ethernet::build_frame(PEER_MAC, OUR_MAC, ether_type::IPV6, &expected)
    );
    assert_eq!(tap.ndp_cache().get(peer), Some((State::Stale, PEER_MAC)));
    // A unicast probe is answered without override and without our MAC (as Linux).
    let ns = ndp::neighbor_solicitation(peer, global(), global(), Some(PEER_MAC), None);
    let _ = tap.handle_link_frame(now, &frame_to(OUR_MAC, PEER_MAC, &ns));
    let na = link_icmp(&drain(&mut tap));
    assert_eq!(na[0].msg[4], 0x40);
    assert_eq!(na[0].msg.len(), 24);
    assert_eq!(tap.stats().ndp.na_out, 2);
}

#[test]
fn tentative_address_is_not_answered_and_a_foreign_probe_is_a_conflict() {
    let t0 = Instant::now();
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    let _ = run_until(&mut tap, t0);
    // A unicast-sourced NS for the tentative address: silently ignored.
    let ns = ndp::neighbor_solicitation(
        a("fe80::a"),
        solicited_node(ll()),
        ll(),
        Some(PEER_MAC),
        None,
    );
    let group_mac = MacAddr::ipv6_multicast(solicited_node(ll()));
    let _ = tap.handle_link_frame(t0, &frame_to(group_mac, PEER_MAC, &ns));
    assert!(drain(&mut tap).is_empty());
    // Another node's DAD probe for it: conflict, the address is dropped.
    let probe = ndp::neighbor_solicitation(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(ll()),
        ll(),
        None,
        Some([9; 6]),
    );
    let _ = tap.handle_link_frame(t0, &frame_to(group_mac, PEER_MAC, &probe));
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::AddressConflict(ll()))]
    );
    let out = run_until(&mut tap, t0 + Duration::from_secs(20));
    assert!(
        of_type(&out, 133).is_empty(),
        "no RS without a link-local address"
    );
    assert_eq!(tap.ipv6_info(), Ipv6Info::default());
    assert_eq!(tap.stats().ndp.dad_conflicts, 1);
    // The group is left (CHANGE_TO_INCLUDE).
    let leave = of_type(&out, 143);
    assert!(leave
        .iter()
        .any(|m| m.msg[8] == record_type::CHANGE_TO_INCLUDE));
}

#[test]
fn our_own_looped_probe_is_not_a_conflict() {
    let t0 = Instant::now();
    let mut tap = Tap::new(config(Ipv6Config::default()), t0);
    let out = run_until(&mut tap, t0 + Duration::from_millis(999));
    let probe = of_type(&out, 135);
    assert_eq!(probe.len(), 1);
    // Rebuild the same probe (same nonce) and send it back from another MAC.
    let nonce: [u8; 6] = probe[0].msg[26..32].try_into().unwrap();
    let looped = ndp::neighbor_solicitation(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(ll()),
        ll(),
        None,
        Some(nonce),
    );
    let group_mac = MacAddr::ipv6_multicast(solicited_node(ll()));
    let _ = tap.handle_link_frame(t0, &frame_to(group_mac, PEER_MAC, &looped));
    assert!(events(&mut tap).is_empty());
}

#[test]
fn na_for_a_tentative_global_address_is_a_conflict_and_it_is_never_used() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let t1 = t0 + Duration::from_secs(3);
    let _ = tap.handle_link_frame(t1, &radvd_ra(1800, 86400, 14400));
    events(&mut tap);
    let flags = NaFlags {
        override_flag: true,
        ..NaFlags::default()
    };
    let na = na_frame(
        global(),
        ALL_NODES,
        flags,
        Some(PEER_MAC),
        PEER_MAC,
        MacAddr::ipv6_multicast(ALL_NODES),
    );
    let _ = tap.handle_link_frame(t1, &na);
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::AddressConflict(global()))]
    );
    run_until(&mut tap, t1 + Duration::from_secs(5));
    assert!(tap.ipv6_info().addresses.is_empty());
    assert!(events(&mut tap).is_empty());
}

#[test]
fn stable_privacy_uses_opaque_ids_and_retries_after_a_conflict() {
    let t0 = Instant::now();
    let v6 = Ipv6Config {
        link_local: LinkLocalMode::StablePrivacy { secret: [7; 16] },
        ..Ipv6Config::default()
    };
    let mut tap = Tap::new(config(v6.clone()), t0);
    let out = run_until(&mut tap, t0 + Duration::from_millis(999));
    let first = ipv6_at(&of_type(&out, 135)[0].msg, 8).unwrap();
    assert!(is_link_local(first));
    assert_ne!(first, ll());
    // Same secret and MAC: same address (stable); another secret: another address.
    let mut again = Tap::new(config(v6), t0);
    let out2 = run_until(&mut again, t0 + Duration::from_millis(999));
    assert_eq!(ipv6_at(&of_type(&out2, 135)[0].msg, 8), Some(first));
    // A conflict makes a new identifier that goes through DAD.
    let probe = ndp::neighbor_solicitation(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(first),
        first,
        None,
        None,
    );
    let group = MacAddr::ipv6_multicast(solicited_node(first));
    let _ = tap.handle_link_frame(t0, &frame_to(group, PEER_MAC, &probe));
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::AddressConflict(first))]
    );
    run_until(&mut tap, t0 + Duration::from_secs(3));
    let second = tap.ipv6_info().link_local.unwrap();
    assert!(is_link_local(second));
    assert_ne!(second, first);
}

#[test]
fn probe_for_our_usable_address_is_defended() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let probe = ndp::neighbor_solicitation(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(ll()),
        ll(),
        None,
        Some([1; 6]),
    );
    let group = MacAddr::ipv6_multicast(solicited_node(ll()));
    let _ = tap.handle_link_frame(
        t0 + Duration::from_secs(5),
        &frame_to(group, PEER_MAC, &probe),
    );
    let na = link_icmp(&drain(&mut tap));
    assert_eq!(na.len(), 1);
    assert_eq!((na[0].src, na[0].dst), (ll(), ALL_NODES));
    assert_eq!(na[0].dst_mac, MacAddr::ipv6_multicast(ALL_NODES));
    assert_eq!(na[0].msg[4], 0x20, "override, not solicited");
    assert_eq!(tap.stats().ndp.dad_defended, 1);
    assert!(events(&mut tap).is_empty(), "a usable address is kept");
}

#[test]
fn egress_resolves_with_ns_queues_and_flushes_in_order() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::a");
    let now = t0 + Duration::from_secs(5);
    for payload in [&b"one"[..], b"two"] {
        let mut p = udp6_from_tun(ll(), peer, payload);
        assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Consumed);
    }
    let out = drain(&mut tap);
    let ns = of_type(&out, 135);
    assert_eq!(out.len(), 1, "one NS for two packets");
    assert_eq!((ns[0].src, ns[0].dst), (ll(), solicited_node(peer)));
    assert_eq!(ns[0].dst_mac, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x0a]));
    assert_eq!(&ns[0].msg[24..32], &[1, 1, 2, 0, 0, 0, 0, 0x64]);
    let flags = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let _ = tap.handle_link_frame(
        now,
        &na_frame(peer, ll(), flags, Some(PEER_MAC), PEER_MAC, OUR_MAC),
    );
    let flushed = drain(&mut tap);
    let payloads: Vec<&[u8]> = flushed
        .iter()
        .map(|t| match t {
            Transmit::Link(f) => {
                assert_eq!(&f[0..6], &PEER_MAC.0);
                assert_eq!(&f[12..14], &[0x86, 0xdd]);
                &f[14 + 48..]
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(payloads, vec![&b"one"[..], b"two"]);
    assert_eq!(tap.ndp_cache().get(peer).unwrap().0, State::Reachable);
    let mut p = udp6_from_tun(ll(), peer, b"three");
    assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Send);
    assert_eq!(&p[0..6], &PEER_MAC.0);
    let s = tap.stats();
    assert_eq!((s.ndp_cache.queued, s.ndp_cache.resolved), (2, 1));
}

#[test]
fn off_link_goes_to_the_router_and_on_link_prefix_goes_direct() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let now = t0 + Duration::from_secs(10);
    // The router's MAC is already known (stale) from its RA: sent at once.
    let mut p = udp6_from_tun(global(), a("2001:db8:99::1"), b"x");
    assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Send);
    assert_eq!(&p[0..6], &ROUTER_MAC.0);
    // An on-link global destination is resolved, from our global address.
    let mut p = udp6_from_tun(global(), a("2001:db8:1::a"), b"x");
    assert_eq!(tap.handle_tun_packet(now, &mut p), Egress::Consumed);
    let ns = of_type(&drain(&mut tap), 135);
    assert_eq!((ns[0].src, ns[0].dst), (global(), a("ff02::1:ff00:a")));
}

#[test]
fn multicast_maps_to_3333_and_needs_no_ndp() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let mut p = udp6_from_tun(ll(), a("ff02::fb"), b"mdns");
    assert_eq!(tap.handle_tun_packet(t0, &mut p), Egress::Send);
    assert_eq!(&p[0..6], &[0x33, 0x33, 0, 0, 0, 0xfb]);
    assert!(drain(&mut tap).is_empty());
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

#[test]
fn no_router_gives_no_route_and_oversize_gives_packet_too_big() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let dst = a("2001:db8:99::1");
    let mut p = udp6_from_tun(a("2001:db8:1::7"), dst, b"x");
    assert_eq!(tap.handle_tun_packet(t0, &mut p), Egress::Consumed);
    let errors = tun_icmp(&drain(&mut tap));
    assert_eq!(errors, vec![(dst, a("2001:db8:1::7"), 1, 0, vec![0; 4])]);
    assert_eq!(tap.stats().ipv6.drop_tun_no_route, 1);

    let mut tap = slaac_tap(t0);
    let mut big = udp6_from_tun(global(), dst, &[0u8; 1400]);
    assert_eq!(tap.handle_tun_packet(t0, &mut big), Egress::Consumed);
    let errors = tun_icmp(&drain(&mut tap));
    assert_eq!(
        errors,
        vec![(dst, global(), 2, 0, 1400u32.to_be_bytes().to_vec())]
    );
    assert_eq!(tap.stats().ipv6.drop_tun_too_big, 1);
}

#[test]
fn failed_resolution_sends_three_ns_then_address_unreachable_per_packet() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::77");
    for _ in 0..2 {
        let mut p = udp6_from_tun(ll(), peer, b"lost");
        let _ = tap.handle_tun_packet(t0 + Duration::from_secs(3), &mut p);
    }
    let mut out = drain(&mut tap);
    out.extend(run_until(&mut tap, t0 + Duration::from_secs(20)));
    assert_eq!(of_type(&out, 135).len(), 3);
    let errors = tun_icmp(&out);
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert_eq!((e.0, e.1, e.2, e.3), (peer, ll(), 1, 3));
    }
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::NeighbourUnreachable(peer))]
    );
    assert_eq!(tap.stats().ndp_cache.drop_unreachable, 2);
}

#[test]
fn na_override_rules_follow_rfc4861() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::a");
    let mut p = udp6_from_tun(ll(), peer, b"x");
    let _ = tap.handle_tun_packet(t0, &mut p);
    let solicited = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(peer, ll(), solicited, Some(PEER_MAC), PEER_MAC, OUR_MAC),
    );
    drain(&mut tap);
    assert_eq!(
        tap.ndp_cache().get(peer),
        Some((State::Reachable, PEER_MAC))
    );
    // No override, another MAC: only REACHABLE -> STALE, the MAC stays.
    let other = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(
            peer,
            ALL_NODES,
            NaFlags::default(),
            Some(other),
            other,
            MacAddr::ipv6_multicast(ALL_NODES),
        ),
    );
    assert_eq!(tap.ndp_cache().get(peer), Some((State::Stale, PEER_MAC)));
    // Unsolicited with override: the new MAC, STALE.
    let flags = NaFlags {
        override_flag: true,
        ..NaFlags::default()
    };
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(
            peer,
            ALL_NODES,
            flags,
            Some(other),
            other,
            MacAddr::ipv6_multicast(ALL_NODES),
        ),
    );
    assert_eq!(tap.ndp_cache().get(peer), Some((State::Stale, other)));
    // An NA for a stranger is not learnt.
    let _ = tap.handle_link_frame(
        t0,
        &na_frame(
            a("fe80::55"),
            ALL_NODES,
            flags,
            Some(other),
            other,
            MacAddr::ipv6_multicast(ALL_NODES),
        ),
    );
    assert!(tap.ndp_cache().get(a("fe80::55")).is_none());
}

#[test]
fn bad_hop_limit_checksum_and_garbage_are_counted_and_dropped() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ns = ndp::neighbor_solicitation(
        a("fe80::a"),
        solicited_node(ll()),
        ll(),
        Some(PEER_MAC),
        None,
    );
    let group = MacAddr::ipv6_multicast(solicited_node(ll()));
    let mut hop = ns.clone();
    hop[7] = 64;
    let mut sum = ns.clone();
    sum[42] ^= 0xff;
    let short = ndp::icmpv6_packet(
        a("fe80::a"),
        solicited_node(ll()),
        255,
        false,
        vec![135, 0, 0, 0, 0, 0, 0, 0, 1, 2],
    );
    let mut msg = ns[40..].to_vec();
    msg[25] = 0; // a zero-length option
    let opt = ndp::icmpv6_packet(a("fe80::a"), solicited_node(ll()), 255, false, msg);
    for bad in [&hop, &sum, &short, &opt] {
        let _ = tap.handle_link_frame(t0, &frame_to(group, PEER_MAC, bad));
    }
    assert!(drain(&mut tap).is_empty());
    let s = tap.stats();
    assert_eq!(
        (
            s.ndp.drop_bad_hop_limit,
            s.ndp.drop_bad_checksum,
            s.ndp.drop_malformed
        ),
        (1, 1, 2)
    );
    assert!(tap.ndp_cache().is_empty());
}

#[test]
fn frames_for_other_groups_and_addresses_are_dropped() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ns = ndp::neighbor_solicitation(
        a("fe80::a"),
        a("ff02::1:ff00:99"),
        a("fe80::99"),
        Some(PEER_MAC),
        None,
    );
    let r = tap.handle_link_frame(
        t0,
        &frame_to(MacAddr([0x33, 0x33, 0xff, 0, 0, 0x99]), PEER_MAC, &ns),
    );
    assert_eq!(r, Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 1);
    // To our MAC but another unicast address.
    let mut p = vec![0u8; HEADROOM];
    PacketBuilder::ipv6(a("fe80::a").octets(), a("fe80::99").octets(), 64)
        .udp(1, 2)
        .write(&mut p, b"x")
        .unwrap();
    let frame = frame_to(OUR_MAC, PEER_MAC, &p[HEADROOM..]);
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().ipv6.drop_link_not_for_us, 1);
    // To us: delivered, padding trimmed.
    let mut p = vec![0u8; HEADROOM];
    PacketBuilder::ipv6(a("fe80::a").octets(), ll().octets(), 64)
        .udp(1, 2)
        .write(&mut p, b"x")
        .unwrap();
    let mut frame = frame_to(OUR_MAC, PEER_MAC, &p[HEADROOM..]);
    let len = frame.len();
    frame.extend_from_slice(&[0; 8]);
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Deliver(14..len));
}

#[test]
fn lifetimes_expire_and_zero_router_lifetime_removes_the_default_route() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let now = t0 + Duration::from_secs(20);
    let _ = tap.handle_link_frame(now, &radvd_ra(0, 86400, 14400));
    let ev = events(&mut tap);
    let [Event::Ipv6(Ipv6Event::Changed(info))] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(info.routes.iter().all(|r| r.prefix_len != 0));
    assert_eq!(info.addresses, vec![(global(), 64)]);
    // A fresh tap whose RA has short lifetimes: the router goes after 30 s, DNS after
    // 1200 s, the prefix after its valid lifetime; then no timers remain.
    let mut tap = ready_tap(t0);
    let t1 = t0 + Duration::from_secs(3);
    let _ = tap.handle_link_frame(t1, &radvd_ra(30, 600, 300));
    run_until(&mut tap, t1 + Duration::from_secs(31));
    assert!(tap.ipv6_info().routes.iter().all(|r| r.gateway.is_none()));
    run_until(&mut tap, t1 + Duration::from_secs(2000));
    let info = tap.ipv6_info();
    assert!(info.addresses.is_empty() && info.routes.is_empty() && info.dns.is_empty());
    assert_eq!(info.link_local, Some(ll()));
    // Only the NDP cache's garbage collection may still run.
    while let Some(t) = tap.poll_timeout() {
        tap.handle_timeout(t);
    }
    assert!(tap.ndp_cache().is_empty());
}

#[test]
fn short_valid_lifetime_cannot_kill_an_address_at_once() {
    let t0 = Instant::now();
    let mut tap = slaac_tap(t0);
    let now = t0 + Duration::from_secs(20);
    // RFC 4862 §5.5.3 (e): a spoofed lifetime of 10 s becomes two hours.
    let _ = tap.handle_link_frame(now, &radvd_ra(1800, 10, 5));
    run_until(&mut tap, now + Duration::from_secs(3600));
    assert_eq!(tap.ipv6_info().addresses, vec![(global(), 64)]);
    run_until(&mut tap, now + Duration::from_secs(7201));
    assert!(tap.ipv6_info().addresses.is_empty());
}

#[test]
fn mld_general_query_is_answered_with_our_groups() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let mut q = vec![130, 0, 0, 0, 0x03, 0xe8, 0, 0];
    q.extend_from_slice(&[0; 16]);
    q.extend_from_slice(&[0; 4]);
    let query = ndp::icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
    let now = t0 + Duration::from_secs(5);
    let _ = tap.handle_link_frame(
        now,
        &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &query),
    );
    let out = run_until(&mut tap, now + Duration::from_secs(1));
    let reports = of_type(&out, 143);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].src, ll());
    assert_eq!(reports[0].msg[8], record_type::MODE_IS_EXCLUDE);
    assert_eq!(ipv6_at(&reports[0].msg, 12), Some(solicited_node(ll())));
}

#[test]
fn ra_floods_stay_within_the_limits() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    for i in 0..200u16 {
        let ra = RouterAdvert {
            router_lifetime: 1800,
            source_mac: Some(ROUTER_MAC),
            prefixes: vec![PrefixInfo {
                prefix: Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0),
                prefix_len: 64,
                on_link: true,
                autonomous: true,
                valid_lifetime: 3600,
                preferred_lifetime: 1800,
            }],
            rdnss: vec![(600, vec![Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0x53)])],
            ..RouterAdvert::default()
        };
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, i);
        let packet = ndp::router_advertisement(src, ALL_NODES, &ra);
        let _ = tap.handle_link_frame(
            t0,
            &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &packet),
        );
    }
    run_until(&mut tap, t0 + Duration::from_secs(5));
    let info = tap.ipv6_info();
    let d = Ipv6Config::default();
    assert_eq!(info.addresses.len(), d.max_addresses);
    assert_eq!(info.routes.len(), d.max_prefixes + 1);
    assert_eq!(info.dns.len(), d.max_dns);
    assert!(tap.stats().ndp.drop_table_limit > 0);
}

#[test]
fn disabled_ipv6_drops_both_ways() {
    let t0 = Instant::now();
    let mut tap = Tap::new(
        Config {
            mac: Some(OUR_MAC),
            ipv6: Ipv6Mode::Disabled,
            ..Config::default()
        },
        t0,
    );
    assert_eq!(tap.poll_timeout(), None);
    let mut p = udp6_from_tun(ll(), a("fe80::a"), b"x");
    assert_eq!(tap.handle_tun_packet(t0, &mut p), Egress::Consumed);
    let frame = frame_to(OUR_MAC, PEER_MAC, &p[HEADROOM..]);
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    let s = tap.stats();
    assert_eq!(
        (s.ipv6.drop_tun_disabled, s.ipv6.drop_link_disabled),
        (1, 1)
    );
    assert!(tap.ndp_cache().is_empty());
}

#[test]
fn siphash_matches_the_reference_vector() {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
    let msg: Vec<u8> = (0..15).collect();
    assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
}

#[test]
fn stale_neighbour_is_used_then_probed_by_unicast_ns_and_confirmed() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let peer = a("fe80::a");
    let mut p = udp6_from_tun(ll(), peer, b"x");
    let _ = tap.handle_tun_packet(t0, &mut p);
    let solicited = NaFlags {
        solicited: true,
        override_flag: true,
        router: false,
    };
    let na = na_frame(peer, ll(), solicited, Some(PEER_MAC), PEER_MAC, OUR_MAC);
    let _ = tap.handle_link_frame(t0, &na);
    drain(&mut tap);
    // Reachable time is 15..45 s: at 50 s the use sends at once and starts DELAY.
    let t1 = t0 + Duration::from_secs(50);
    run_until(&mut tap, t1);
    let mut p = udp6_from_tun(ll(), peer, b"y");
    assert_eq!(tap.handle_tun_packet(t1, &mut p), Egress::Send);
    assert_eq!(tap.ndp_cache().get(peer).unwrap().0, State::Delay);
    // 5 s later: PROBE with a unicast NS to the known MAC.
    let out = run_until(&mut tap, t1 + Duration::from_secs(5));
    let ns = of_type(&out, 135);
    assert_eq!(ns.len(), 1);
    assert_eq!(
        (ns[0].dst_mac, ns[0].src, ns[0].dst),
        (PEER_MAC, ll(), peer)
    );
    assert_eq!(tap.ndp_cache().get(peer).unwrap().0, State::Probe);
    let na = na_frame(
        peer,
        ll(),
        NaFlags {
            override_flag: false,
            ..solicited
        },
        None,
        PEER_MAC,
        OUR_MAC,
    );
    let _ = tap.handle_link_frame(t1 + Duration::from_secs(5), &na);
    assert_eq!(
        tap.ndp_cache().get(peer),
        Some((State::Reachable, PEER_MAC))
    );
    // Silent in PROBE: three unicast probes, then the entry goes.
    let t2 = t1 + Duration::from_secs(51);
    run_until(&mut tap, t2);
    let mut p = udp6_from_tun(ll(), peer, b"z");
    assert_eq!(tap.handle_tun_packet(t2, &mut p), Egress::Send);
    let out = run_until(&mut tap, t2 + Duration::from_secs(9));
    let probes = of_type(&out, 135);
    assert_eq!(probes.len(), 3);
    assert!(probes
        .iter()
        .all(|p| p.dst == peer && p.dst_mac == PEER_MAC));
    assert!(tap.ndp_cache().get(peer).is_none());
    assert_eq!(tap.stats().ndp_cache.failed, 1);
}

#[test]
fn without_dad_addresses_are_usable_at_once() {
    let t0 = Instant::now();
    let v6 = Ipv6Config {
        dad_transmits: 0,
        ..Ipv6Config::default()
    };
    let mut tap = Tap::new(config(v6), t0);
    assert_eq!(tap.ipv6_info().link_local, Some(ll()));
    let out = run_until(&mut tap, t0);
    assert!(of_type(&out, 135).is_empty(), "no DAD probe");
    assert_eq!(of_type(&out, 133).len(), 1, "RS at once");
    let _ = tap.handle_link_frame(t0, &radvd_ra(1800, 86400, 14400));
    assert_eq!(tap.ipv6_info().addresses, vec![(global(), 64)]);
}

#[test]
fn accept_ra_off_sends_no_rs_and_ignores_ras() {
    let t0 = Instant::now();
    let v6 = Ipv6Config {
        accept_ra: false,
        ..Ipv6Config::default()
    };
    let mut tap = Tap::new(config(v6), t0);
    let out = run_until(&mut tap, t0 + Duration::from_secs(20));
    assert!(of_type(&out, 133).is_empty());
    let _ = tap.handle_link_frame(t0, &radvd_ra(1800, 86400, 14400));
    let info = tap.ipv6_info();
    assert!(info.addresses.is_empty() && info.routes.is_empty());
    assert_eq!(tap.stats().ndp.ignored, 1);
}

#[test]
fn the_kernels_own_ndp_from_the_tun_is_not_forwarded() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let rs = ndp::router_solicitation(a("fe80::1234"), PEER_MAC);
    let mut frame = vec![0u8; HEADROOM];
    frame.extend_from_slice(&rs);
    assert_eq!(tap.handle_tun_packet(t0, &mut frame), Egress::Consumed);
    assert!(drain(&mut tap).is_empty());
    assert_eq!(tap.stats().ipv6.drop_tun_ndp, 1);
    // MLD reports (the kernel's groups, for snooping bridges) do go out.
    let report = ndp::mld_report(
        a("fe80::1234"),
        &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::fb"))],
    );
    let mut frame = vec![0u8; HEADROOM];
    frame.extend_from_slice(&report);
    assert_eq!(tap.handle_tun_packet(t0, &mut frame), Egress::Send);
}

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
    let packet = ndp::router_advertisement(a("fe80::1"), ALL_NODES, &ra);
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
    assert_eq!(ipv6_at(&f[14..], 24), Some(dhcpv6::ALL_SERVERS));
    assert_eq!(&f[54..58], &[0x02, 0x22, 0x02, 0x23], "546 -> 547");
    let msg = &f[62..];
    assert_eq!(msg[0], 11, "Information-Request");
    let xid: [u8; 3] = msg[1..4].try_into().unwrap();
    // Unanswered: retried about 2 s later.
    let out = run_until(&mut tap, t1 + Duration::from_secs(4));
    assert_eq!(tap.stats().dhcpv6.requests_out, 2, "{}", out.len());
    // A reply for another transaction is dropped, ours is taken.
    let server_reply = |xid: [u8; 3]| {
        let body = dhcpv6::build_reply(
            xid,
            OUR_MAC,
            &[a("2001:db8:1::5")],
            b"\x03lab\x07example\x00",
            Some(3600),
        );
        let udp = dhcpv6::udp_packet(a("fe80::1"), ll(), 64, 547, 546, &body).unwrap();
        frame_to(OUR_MAC, ROUTER_MAC, &udp)
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
fn ra_retrans_timer_and_reachable_time_drive_the_ndp_cache() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let ra = RouterAdvert {
        router_lifetime: 1800,
        reachable_time: 10_000,
        retrans_timer: 1, // raised to 100 ms
        ..RouterAdvert::default()
    };
    let packet = ndp::router_advertisement(a("fe80::1"), ALL_NODES, &ra);
    let _ = tap.handle_link_frame(
        t0 + Duration::from_secs(3),
        &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &packet),
    );
    assert_eq!(
        tap.ndp_cache().config().retransmit_time,
        Duration::from_millis(100)
    );
    assert_eq!(
        tap.ndp_cache().config().base_reachable_time,
        Duration::from_secs(10)
    );
    // Resolution now retries every 100 ms.
    let now = t0 + Duration::from_secs(4);
    let mut p = udp6_from_tun(ll(), a("fe80::77"), b"x");
    let _ = tap.handle_tun_packet(now, &mut p);
    let mut out = drain(&mut tap);
    out.extend(run_until(&mut tap, now + Duration::from_millis(250)));
    assert_eq!(of_type(&out, 135).len(), 3);
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

#[test]
fn groups_the_tun_joins_are_delivered_until_it_leaves() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let mdns = a("ff02::fb");
    let frame = udp6_to_group(mdns);
    assert_eq!(frame[..6], [0x33, 0x33, 0, 0, 0, 0xfb]);
    // Not joined yet: dropped and counted, as any group we do not take.
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 1);
    // The kernel joins ff02::fb (MLDv2 CHANGE_TO_EXCLUDE {}): the report still goes
    // out, and the group's traffic is now delivered.
    let join = ndp::mld_report(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_EXCLUDE, mdns)],
    );
    mld_from_tun(&mut tap, t0, &join);
    assert_eq!(
        tap.handle_link_frame(t0, &frame),
        Ingress::Deliver(14..frame.len())
    );
    // A group never joined (SSDP ff02::c) is still dropped and counted.
    let ssdp = udp6_to_group(a("ff02::c"));
    assert_eq!(tap.handle_link_frame(t0, &ssdp), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 2);
    // Same MAC (33:33:00:00:00:fb), another group: dropped at the IPv6 layer.
    let other = udp6_to_group(a("ff05::fb"));
    assert_eq!(tap.handle_link_frame(t0, &other), Ingress::Consumed);
    assert_eq!(tap.stats().ipv6.drop_link_not_for_us, 1);
    // A general query is answered for the kernel's group too.
    let mut q = vec![130, 0, 0, 0, 0x03, 0xe8, 0, 0];
    q.extend_from_slice(&[0; 20]);
    let query = ndp::icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
    let now = t0 + Duration::from_secs(5);
    let _ = tap.handle_link_frame(
        now,
        &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &query),
    );
    let out = run_until(&mut tap, now + Duration::from_secs(1));
    let reports = of_type(&out, 143);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].msg[6..8], [0, 2]);
    assert_eq!(ipv6_at(&reports[0].msg, 12), Some(solicited_node(ll())));
    assert_eq!(ipv6_at(&reports[0].msg, 32), Some(mdns));
    // The kernel leaves (CHANGE_TO_INCLUDE {}): dropped and counted again.
    let leave = ndp::mld_report(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_INCLUDE, mdns)],
    );
    mld_from_tun(&mut tap, now, &leave);
    assert_eq!(tap.handle_link_frame(now, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 3);
    // MLDv1 report and done work the same way.
    let site = a("ff05::1:3");
    mld_from_tun(&mut tap, now, &mldv1(131, site));
    let frame = udp6_to_group(site);
    assert_eq!(
        tap.handle_link_frame(now, &frame),
        Ingress::Deliver(14..frame.len())
    );
    mld_from_tun(&mut tap, now, &mldv1(132, site));
    assert_eq!(tap.handle_link_frame(now, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 4);
}

#[test]
fn tun_groups_leave_ndp_and_mld_to_us() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    // The kernel's solicited-node and all-nodes groups and a bad checksum teach nothing.
    let report = ndp::mld_report(
        Ipv6Addr::UNSPECIFIED,
        &[
            (record_type::CHANGE_TO_EXCLUDE, a("ff02::1:ff00:99")),
            (record_type::CHANGE_TO_EXCLUDE, ALL_NODES),
        ],
    );
    mld_from_tun(&mut tap, t0, &report);
    let mut bad = ndp::mld_report(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::fb"))],
    );
    bad[50] ^= 1;
    mld_from_tun(&mut tap, t0, &bad);
    let ns = ndp::neighbor_solicitation(
        a("fe80::a"),
        a("ff02::1:ff00:99"),
        a("fe80::99"),
        Some(PEER_MAC),
        None,
    );
    let r = tap.handle_link_frame(
        t0,
        &frame_to(MacAddr([0x33, 0x33, 0xff, 0, 0, 0x99]), PEER_MAC, &ns),
    );
    assert_eq!(r, Ingress::Consumed);
    let frame = udp6_to_group(a("ff02::fb"));
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 2);
    // In a joined group, MLD from the link is still ours, never the TUN's.
    let join = ndp::mld_report(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::fb"))],
    );
    mld_from_tun(&mut tap, t0, &join);
    let peer_report = ndp::icmpv6_packet(a("fe80::a"), a("ff02::fb"), 1, true, {
        let mut m = vec![131, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&a("ff02::fb").octets());
        m
    });
    let r = tap.handle_link_frame(
        t0,
        &frame_to(
            MacAddr::ipv6_multicast(a("ff02::fb")),
            PEER_MAC,
            &peer_report,
        ),
    );
    assert_eq!(r, Ingress::Consumed);
    assert_eq!(tap.stats().ndp.ignored, 1);
}

mod prop {
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
                    vec![ndp::mld_report(Ipv6Addr::UNSPECIFIED, &records)]
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
}

#[test]
fn every_event_after_link_local_dad_carries_the_link_local_address() {
    // An RA that arrives while the link-local address is still tentative: whichever
    // DAD finishes first, no event reports a global address without the link-local one,
    // and every event from the link-local verdict on carries it.
    for seed in 0..32 {
        let t0 = Instant::now();
        let mut tap = Tap::new(
            Config {
                rng_seed: seed,
                ..config(Ipv6Config::default())
            },
            t0,
        );
        let _ = tap.handle_link_frame(t0, &radvd_ra(1800, 86400, 14400));
        // The router's routes and DNS are known but not reported without a link-local
        // address.
        assert_eq!(tap.ipv6_info(), Ipv6Info::default());
        assert!(events(&mut tap).is_empty());
        run_until(&mut tap, t0 + Duration::from_secs(5));
        let infos: Vec<Ipv6Info> = events(&mut tap)
            .into_iter()
            .filter_map(|e| match e {
                Event::Ipv6(Ipv6Event::Changed(info)) => Some(info),
                _ => None,
            })
            .collect();
        assert!(!infos.is_empty(), "seed {seed}");
        for info in &infos {
            assert_eq!(info.link_local, Some(ll()), "seed {seed}: {infos:?}");
        }
        assert_eq!(
            infos.last().map(|i| i.addresses.clone()),
            Some(vec![(global(), 64)])
        );
    }
}
