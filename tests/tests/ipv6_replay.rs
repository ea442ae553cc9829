//! Replays `tests/data/ipv6-radvd.pcap` (Linux kernel hosts A and B and radvd; see
//! `tests/data/README.md`) through tapemu standing in for host A or host B, with that
//! host's MAC, so its addresses are the kernel's. What tapemu sends must equal what the
//! kernel sent, byte for byte, except where the kernel's bytes are random (DAD nonces).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tapemu::ipv6::{Ipv6Route, LinkLocalMode};
use tapemu::neighbour::State;
use tapemu::{
    Config, Egress, Ingress, Ipv4Mode, Ipv6Config, Ipv6Info, Ipv6Mode, MacAddr, Tap, Transmit,
    HEADROOM,
};
use tapemu::{Event, Ipv6Event};

const ROUTER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x01]);
const HOST_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const HOST_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x14]);
const STRANGER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x99]);

/// Where the ICMPv6 message starts in a frame without extension headers.
const ICMP: usize = 14 + 40;

/// One IPv6 frame of the capture with the fields the tests select by.
#[derive(Debug, Clone)]
struct Frame {
    data: Vec<u8>,
    src_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    /// ICMPv6 type (after a hop-by-hop header for MLD), 0 for other protocols.
    icmp_type: u8,
}

impl Frame {
    fn icmp(&self) -> &[u8] {
        let offset = if self.data[14 + 6] == 0 {
            ICMP + 8
        } else {
            ICMP
        };
        &self.data[offset..]
    }

    /// The target of an NS/NA.
    fn target(&self) -> Ipv6Addr {
        addr(self.icmp(), 8)
    }

    fn ip_packet(&self) -> &[u8] {
        &self.data[14..]
    }
}

fn addr(bytes: &[u8], at: usize) -> Ipv6Addr {
    let octets: [u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
    Ipv6Addr::from(octets)
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

fn load() -> Vec<Frame> {
    let mut frames = Vec::new();
    for data in tapemu_tests::recorded::frames("ipv6-radvd.pcap") {
        if data.len() < ICMP || data[12..14] != [0x86, 0xdd] {
            continue;
        }
        let next = data[14 + 6];
        let icmp_type = match next {
            58 => data[ICMP],
            0 if data.len() > ICMP + 8 && data[ICMP] == 58 => data[ICMP + 8],
            _ => 0,
        };
        frames.push(Frame {
            src_mac: MacAddr(data[6..12].try_into().expect("mac")),
            src: addr(&data, 14 + 8),
            dst: addr(&data, 14 + 24),
            icmp_type,
            data,
        });
    }
    assert!(frames.len() >= 30, "the capture holds the IPv6 exchange");
    frames
}

fn find<'f>(frames: &'f [Frame], what: &str, pred: impl Fn(&Frame) -> bool) -> &'f Frame {
    frames
        .iter()
        .find(|f| pred(f))
        .unwrap_or_else(|| panic!("no {what} in the capture"))
}

fn ll(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

fn drain(tap: &mut Tap) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| tap.poll_transmit())
        .map(|t| match t {
            Transmit::Link(f) => f,
            Transmit::Tun(p) => panic!("unexpected packet to the TUN: {p:?}"),
        })
        .collect()
}

fn events(tap: &mut Tap) -> Vec<Event> {
    std::iter::from_fn(|| tap.poll_event()).collect()
}

fn run_until(tap: &mut Tap, until: Instant) -> Vec<Vec<u8>> {
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

fn icmp_type_of(frame: &[u8]) -> u8 {
    match frame.get(14 + 6) {
        Some(0) => frame.get(ICMP + 8).copied().unwrap_or(0),
        Some(58) => frame.get(ICMP).copied().unwrap_or(0),
        _ => 0,
    }
}

fn tap_as(mac: MacAddr, t0: Instant) -> Tap {
    let config = Config {
        mac: Some(mac),
        ipv4: Ipv4Mode::Disabled,
        ipv6: Ipv6Mode::Slaac(Ipv6Config {
            link_local: LinkLocalMode::Eui64,
            ..Ipv6Config::default()
        }),
        ..Config::default()
    };
    Tap::new(config, t0)
}

/// Host `mac` with its link-local address through DAD and the RA `ra` applied, its
/// SLAAC address through DAD too; all outputs drained.
fn configured(mac: MacAddr, ra: &Frame, t0: Instant) -> Tap {
    let mut tap = tap_as(mac, t0);
    run_until(&mut tap, t0 + Duration::from_secs(2));
    assert_eq!(
        tap.handle_link_frame(t0 + Duration::from_secs(3), &ra.data),
        Ingress::Consumed
    );
    run_until(&mut tap, t0 + Duration::from_secs(6));
    events(&mut tap);
    assert_eq!(tap.ipv6_info().addresses.len(), 1);
    tap
}

fn multicast_ra(frames: &[Frame]) -> &Frame {
    find(frames, "multicast RA", |f| {
        f.icmp_type == 134 && f.dst == a("ff02::1") && f.icmp()[6..8] != [0, 0]
    })
}

#[test]
fn startup_mld_dad_and_rs_match_the_kernel() {
    let frames = load();
    let t0 = Instant::now();
    let mut tap = tap_as(HOST_B, t0);
    let out = run_until(&mut tap, t0 + Duration::from_secs(3));

    let kernel_mld = find(&frames, "B's first MLD report", |f| {
        f.src_mac == HOST_B && f.icmp_type == 143 && f.src.is_unspecified()
    });
    let ours = out
        .iter()
        .find(|f| icmp_type_of(f) == 143)
        .expect("our MLD report");
    assert_eq!(ours, &kernel_mld.data, "MLDv2 join from ::");

    let kernel_dad = find(&frames, "B's link-local DAD probe", |f| {
        f.src_mac == HOST_B
            && f.icmp_type == 135
            && f.src.is_unspecified()
            && f.target() == ll(HOST_B)
    });
    let ours = out
        .iter()
        .find(|f| icmp_type_of(f) == 135)
        .expect("our DAD probe");
    assert_eq!(ours.len(), kernel_dad.data.len());
    // Equal except the random nonce (option bytes 2..8) and, with it, the checksum.
    let mask = |f: &[u8]| {
        let mut f = f.to_vec();
        f[ICMP + 2..ICMP + 4].fill(0);
        f[ICMP + 26..ICMP + 32].fill(0);
        f
    };
    assert_eq!(mask(ours), mask(&kernel_dad.data));

    let kernel_rs = find(&frames, "B's RS", |f| {
        f.src_mac == HOST_B && f.icmp_type == 133
    });
    let ours = out.iter().find(|f| icmp_type_of(f) == 133).expect("our RS");
    assert_eq!(ours, &kernel_rs.data);
}

#[test]
fn recorded_ra_gives_the_kernels_slaac_address_routes_dns_and_mtu() {
    let frames = load();
    let t0 = Instant::now();
    let ra = multicast_ra(&frames);
    let mut tap = tap_as(HOST_B, t0);
    run_until(&mut tap, t0 + Duration::from_secs(2));
    events(&mut tap);
    let _ = tap.handle_link_frame(t0 + Duration::from_secs(3), &ra.data);
    let out = run_until(&mut tap, t0 + Duration::from_secs(6));

    // The address the kernel formed is the one whose DAD probe B sent from ::.
    let kernel_global_dad = find(&frames, "B's global DAD probe", |f| {
        f.src_mac == HOST_B
            && f.icmp_type == 135
            && f.src.is_unspecified()
            && f.target() != ll(HOST_B)
    });
    let our_global_dad = out
        .iter()
        .find(|f| icmp_type_of(f) == 135)
        .expect("our global DAD probe");
    assert_eq!(addr(our_global_dad, ICMP + 8), kernel_global_dad.target());

    // The options, decoded here from the recorded RA's bytes.
    let msg = ra.icmp();
    let mut prefix = None;
    let mut mtu = None;
    let mut dns = None;
    let mut rest = &msg[16..];
    while rest.len() >= 8 {
        let len = usize::from(rest[1]) * 8;
        let opt = &rest[..len];
        match opt[0] {
            3 => prefix = Some((addr(opt, 16), opt[2])),
            5 => {
                mtu = Some(
                    u16::try_from(u32::from_be_bytes(opt[4..8].try_into().expect("4")))
                        .expect("mtu"),
                )
            }
            25 => dns = Some(addr(opt, 8)),
            _ => {}
        }
        rest = &rest[len..];
    }
    let (prefix, prefix_len) = prefix.expect("prefix option");
    let expected = Ipv6Info {
        addresses: vec![(kernel_global_dad.target(), prefix_len)],
        link_local: Some(ll(HOST_B)),
        routes: vec![
            Ipv6Route {
                destination: prefix,
                prefix_len,
                gateway: None,
            },
            Ipv6Route {
                destination: Ipv6Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(ra.src),
            },
        ],
        dns: vec![dns.expect("RDNSS option")],
        search: vec!["lab.example".to_string()],
        mtu,
    };
    assert_eq!(expected.mtu, Some(1400));
    assert_eq!(tap.ipv6_info(), expected);
    assert_eq!(
        events(&mut tap).last(),
        Some(&Event::Ipv6(Ipv6Event::Changed(expected.clone())))
    );

    // radvd's goodbye (router lifetime 0, RDNSS/DNSSL lifetime 0): no default route, no
    // DNS, the address and the on-link prefix stay.
    let goodbye = find(&frames, "final RA", |f| {
        f.icmp_type == 134 && f.icmp()[6..8] == [0, 0]
    });
    let _ = tap.handle_link_frame(t0 + Duration::from_secs(20), &goodbye.data);
    let after = tap.ipv6_info();
    assert_eq!(after.addresses, expected.addresses);
    assert_eq!(after.routes, expected.routes[..1].to_vec());
    assert!(after.dns.is_empty() && after.search.is_empty());
}

#[test]
fn unicast_ns_gets_the_kernels_na_byte_for_byte() {
    let frames = load();
    let t0 = Instant::now();
    let ra = multicast_ra(&frames);
    for (host, asker) in [(HOST_B, ROUTER), (HOST_A, ROUTER), (HOST_A, HOST_B)] {
        let mut tap = configured(host, ra, t0);
        let ns = find(&frames, "unicast NS", |f| {
            f.src_mac == asker
                && f.icmp_type == 135
                && !f.dst.is_multicast()
                && f.data[0..6] == host.0
        });
        let kernel_na = find(&frames, "the kernel's NA", |f| {
            f.src_mac == host && f.icmp_type == 136 && f.dst == ns.src && f.target() == ns.target()
        });
        assert_eq!(
            tap.handle_link_frame(t0 + Duration::from_secs(10), &ns.data),
            Ingress::Consumed
        );
        assert_eq!(
            drain(&mut tap),
            vec![kernel_na.data.clone()],
            "{host} answering {asker}"
        );
    }
}

#[test]
fn multicast_ns_gets_the_kernels_na_byte_for_byte() {
    let frames = load();
    let t0 = Instant::now();
    let mut tap = configured(HOST_B, multicast_ra(&frames), t0);
    let ns = find(&frames, "A's multicast NS for B", |f| {
        f.src_mac == HOST_A && f.icmp_type == 135 && f.dst.is_multicast() && !f.src.is_unspecified()
    });
    let kernel_na = find(&frames, "B's solicited NA", |f| {
        f.src_mac == HOST_B && f.icmp_type == 136 && f.dst == ns.src
    });
    let _ = tap.handle_link_frame(t0 + Duration::from_secs(10), &ns.data);
    assert_eq!(drain(&mut tap), vec![kernel_na.data.clone()]);
    // A was learnt from its source link-layer option, STALE as in Linux.
    assert_eq!(tap.ndp_cache().get(ns.src), Some((State::Stale, HOST_A)));
}

#[test]
fn probe_for_our_address_is_defended_with_the_kernels_announcement() {
    let frames = load();
    let t0 = Instant::now();
    let mut tap = configured(HOST_B, multicast_ra(&frames), t0);
    // B's own DAD probe for its global address, as if another host (another MAC) sent it.
    let mut probe = find(&frames, "B's global DAD probe", |f| {
        f.src_mac == HOST_B
            && f.icmp_type == 135
            && f.src.is_unspecified()
            && f.target() != ll(HOST_B)
    })
    .clone();
    probe.data[6..12].copy_from_slice(&STRANGER.0);
    // The kernel's unsolicited NA (ndisc_notify) has the same form as a defence.
    let kernel_na = find(&frames, "B's unsolicited NA", |f| {
        f.src_mac == HOST_B
            && f.icmp_type == 136
            && f.dst == a("ff02::1")
            && f.target() == probe.target()
    });
    let _ = tap.handle_link_frame(t0 + Duration::from_secs(10), &probe.data);
    assert_eq!(drain(&mut tap), vec![kernel_na.data.clone()]);
    assert!(events(&mut tap).is_empty(), "the address is kept");
}

#[test]
fn recorded_dad_probe_during_our_dad_is_a_conflict() {
    let frames = load();
    let t0 = Instant::now();
    let mut tap = tap_as(HOST_A, t0);
    let _ = run_until(&mut tap, t0);
    let mut probe = find(&frames, "A's link-local DAD probe", |f| {
        f.src_mac == HOST_A && f.icmp_type == 135 && f.src.is_unspecified()
    })
    .clone();
    probe.data[6..12].copy_from_slice(&STRANGER.0);
    let _ = tap.handle_link_frame(t0, &probe.data);
    assert_eq!(
        events(&mut tap),
        vec![Event::Ipv6(Ipv6Event::AddressConflict(ll(HOST_A)))]
    );
    run_until(&mut tap, t0 + Duration::from_secs(10));
    assert_eq!(tap.ipv6_info().link_local, None);
}

#[test]
fn ping6_resolution_and_data_match_the_kernel() {
    let frames = load();
    let t0 = Instant::now();
    let unicast_ra = find(&frames, "unicast RA to A", |f| {
        f.icmp_type == 134 && f.dst == ll(HOST_A)
    });
    let mut tap = configured(HOST_A, unicast_ra, t0);
    let request = find(&frames, "A's echo request", |f| {
        f.src_mac == HOST_A && f.icmp_type == 128
    });
    let kernel_ns = find(&frames, "A's NS for B", |f| {
        f.src_mac == HOST_A && f.icmp_type == 135 && f.target() == request.dst
    });
    let b_na = find(&frames, "B's answer", |f| {
        f.src_mac == HOST_B && f.icmp_type == 136 && f.dst == kernel_ns.src
    });
    let now = t0 + Duration::from_secs(10);

    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(request.ip_packet());
    assert_eq!(
        tap.handle_tun_packet(now, &mut buf),
        Egress::Consumed,
        "queued"
    );
    assert_eq!(
        drain(&mut tap),
        vec![kernel_ns.data.clone()],
        "the kernel's NS"
    );
    let _ = tap.handle_link_frame(now, &b_na.data);
    assert_eq!(
        drain(&mut tap),
        vec![request.data.clone()],
        "the kernel's frame"
    );
    assert_eq!(
        tap.ndp_cache().get(request.dst),
        Some((State::Reachable, HOST_B))
    );

    // B's reply comes up to the TUN as it is.
    let reply = find(&frames, "B's echo reply", |f| {
        f.src_mac == HOST_B && f.icmp_type == 129
    });
    assert_eq!(
        tap.handle_link_frame(now, &reply.data),
        Ingress::Deliver(14..reply.data.len())
    );
    // The next request goes out at once, in place.
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(request.ip_packet());
    assert_eq!(tap.handle_tun_packet(now, &mut buf), Egress::Send);
    assert_eq!(buf, request.data);
}

#[test]
fn unsolicited_na_does_not_create_an_entry() {
    let frames = load();
    let t0 = Instant::now();
    let mut tap = configured(HOST_A, multicast_ra(&frames), t0);
    let na = find(&frames, "B's unsolicited NA", |f| {
        f.src_mac == HOST_B && f.icmp_type == 136 && f.dst == a("ff02::1")
    });
    let _ = tap.handle_link_frame(t0 + Duration::from_secs(10), &na.data);
    assert!(drain(&mut tap).is_empty());
    assert!(tap.ndp_cache().get(na.target()).is_none());
    assert_eq!(tap.stats().ndp.na_in, 1);
}

#[test]
fn every_recorded_frame_is_handled_without_surprises() {
    // All 42 frames through a tap as host B: nothing panics, nothing reaches the TUN
    // except B's own ICMPv6 echo traffic, and no NDP frame is counted malformed.
    let frames = load();
    let t0 = Instant::now();
    let mut tap = tap_as(MacAddr([2, 0, 0, 0, 0, 0x77]), t0);
    for (i, f) in frames.iter().enumerate() {
        let now = t0 + Duration::from_millis(100 * i as u64);
        run_until(&mut tap, now);
        let _ = tap.handle_link_frame(now, &f.data);
        drain(&mut tap);
    }
    let s = tap.stats();
    assert_eq!(
        (
            s.ndp.drop_malformed,
            s.ndp.drop_bad_checksum,
            s.ndp.drop_bad_hop_limit,
            s.ndp.drop_invalid
        ),
        (0, 0, 0, 0)
    );
    assert!(s.ndp.ra_in >= 1);
}

#[test]
fn recorded_ra_before_link_local_dad_never_reports_a_global_address_alone() {
    let frames = load();
    let ra = multicast_ra(&frames);
    // Whichever DAD finishes first (the random delays differ per seed), every event
    // carries the link-local address, and the last one the SLAAC address too.
    for seed in 0..16 {
        let t0 = Instant::now();
        let mut tap = Tap::new(
            Config {
                mac: Some(HOST_B),
                rng_seed: seed,
                ipv4: Ipv4Mode::Disabled,
                ..Config::default()
            },
            t0,
        );
        assert_eq!(tap.handle_link_frame(t0, &ra.data), Ingress::Consumed);
        run_until(&mut tap, t0 + Duration::from_secs(5));
        let infos: Vec<Ipv6Info> = events(&mut tap)
            .into_iter()
            .filter_map(|e| match e {
                Event::Ipv6(Ipv6Event::Changed(info)) => Some(info),
                _ => None,
            })
            .collect();
        assert!(
            infos.iter().all(|i| i.link_local == Some(ll(HOST_B))),
            "seed {seed}: {infos:?}"
        );
        assert_eq!(
            infos.last().map(|i| i.addresses.len()),
            Some(1),
            "seed {seed}"
        );
    }
}

#[test]
fn groups_from_a_recorded_kernel_report_on_the_tun_are_delivered() {
    let frames = load();
    let t0 = Instant::now();
    let mut tap = configured(HOST_B, multicast_ra(&frames), t0);
    // The router's kernel joined ff02::1:ff00:1, ff05::2 and ff02::2; here the same
    // report comes from B's TUN.
    let report = find(&frames, "the router's MLD report", |f| {
        f.src_mac == ROUTER && f.icmp_type == 143 && f.src.is_unspecified()
    });
    let mut tun = vec![0u8; HEADROOM];
    tun.extend_from_slice(report.ip_packet());
    let now = t0 + Duration::from_secs(10);
    assert_eq!(tap.handle_tun_packet(now, &mut tun), Egress::Send);
    let udp_to = |group: Ipv6Addr| {
        let mut p = Vec::new();
        etherparse::PacketBuilder::ethernet2(HOST_A.0, MacAddr::ipv6_multicast(group).0)
            .ipv6(ll(HOST_A).octets(), group.octets(), 1)
            .udp(1000, 2000)
            .write(&mut p, b"group")
            .expect("packet");
        p
    };
    let site = udp_to(a("ff05::2"));
    assert_eq!(
        tap.handle_link_frame(now, &site),
        Ingress::Deliver(14..site.len())
    );
    // A group nobody joined is dropped and counted.
    let before = tap.stats().link.drop_not_for_us;
    let _ = tap.handle_link_frame(now, &udp_to(a("ff05::3")));
    assert_eq!(tap.stats().link.drop_not_for_us, before + 1);
    // NDP to a joined group is still ours: A's RS to ff02::2 is not delivered.
    let rs = find(&frames, "A's RS", |f| {
        f.src_mac == HOST_A && f.icmp_type == 133
    });
    assert_eq!(tap.handle_link_frame(now, &rs.data), Ingress::Consumed);
    assert!(drain(&mut tap).is_empty());
}
