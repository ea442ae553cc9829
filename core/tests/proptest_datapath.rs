//! Property tests on the two parser-facing entry points: arbitrary bytes and arbitrary
//! sequences of traffic never panic, and the neighbour table, its queues and the output
//! queues never exceed their limits.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use proptest::prelude::*;
use tapemu::wire::arp::ArpPacket;
use tapemu::{Config, Ipv4Interface, Ipv4Mode, MacAddr, NeighbourConfig, Tap, HEADROOM};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);

fn small_limits() -> NeighbourConfig {
    NeighbourConfig {
        max_entries: 8,
        queue_packets_per_neighbour: 4,
        queue_bytes_per_neighbour: 4000,
        queue_bytes_total: 10_000,
        ..NeighbourConfig::default()
    }
}

fn tap(now: Instant) -> Tap {
    let iface = Ipv4Interface::new(
        Ipv4Addr::new(192, 0, 2, 123),
        24,
        Some(Ipv4Addr::new(192, 0, 2, 1)),
    );
    Tap::new(
        Config {
            mac: Some(OUR_MAC),
            ipv4: Ipv4Mode::Static(iface),
            neighbour: small_limits(),
            max_pending_transmits: 64,
            max_pending_events: 16,
            ..Config::default()
        },
        now,
    )
}

fn check_bounds(tap: &Tap) {
    let cache = tap.arp_cache();
    assert!(cache.len() <= cache.config().max_entries);
    assert!(cache.queued_bytes() <= cache.config().queue_bytes_total);
}

/// One step of traffic.
#[derive(Debug, Clone)]
enum Step {
    /// Raw bytes from the link.
    LinkBytes(Vec<u8>),
    /// Raw bytes from the TUN.
    TunBytes(Vec<u8>),
    /// A well-formed UDP packet from the TUN to 192.0.2.x or beyond.
    TunUdp {
        host: u8,
        off_link: bool,
        len: usize,
    },
    /// An ARP reply (to our MAC) or request (broadcast) from 192.0.2.x.
    Arp {
        host: u8,
        reply: bool,
        target_us: bool,
    },
    /// Time passes.
    Wait(u16),
    /// Drain some outputs.
    Drain(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Step::LinkBytes),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Step::TunBytes),
        (any::<u8>(), any::<bool>(), 0usize..1600).prop_map(|(host, off_link, len)| Step::TunUdp {
            host,
            off_link,
            len
        }),
        (any::<u8>(), any::<bool>(), any::<bool>()).prop_map(|(host, reply, target_us)| {
            Step::Arp {
                host,
                reply,
                target_us,
            }
        }),
        (0u16..5000).prop_map(Step::Wait),
        any::<u8>().prop_map(Step::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_link_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600), ether_type in prop_oneof![Just(0x0800u16), Just(0x0806), Just(0x86dd), Just(0x8100), any::<u16>()]) {
        let now = Instant::now();
        let mut tap = tap(now);
        // As is, and behind a valid header addressed to us with a chosen EtherType.
        let _ = tap.handle_link_frame(now, &bytes);
        let frame = tapemu::wire::ethernet::build_frame(OUR_MAC, MacAddr([2, 0, 0, 0, 0, 9]), ether_type, &bytes);
        if let tapemu::Ingress::Deliver(range) = tap.handle_link_frame(now, &frame) {
            prop_assert!(range.end <= frame.len() && range.start == 14);
        }
        check_bounds(&tap);
    }

    #[test]
    fn arbitrary_tun_packets_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..1600), version4 in any::<bool>()) {
        let now = Instant::now();
        let mut tap = tap(now);
        if version4 && bytes.len() > HEADROOM {
            bytes[HEADROOM] = 0x45;
        }
        let _ = tap.handle_tun_packet(now, &mut bytes);
        tap.handle_tun_packet_owned(now, &bytes);
        check_bounds(&tap);
    }

    #[test]
    fn arbitrary_sequences_stay_within_limits(steps in proptest::collection::vec(step(), 1..120)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut tap = tap(now);
        for step in steps {
            match step {
                Step::LinkBytes(b) => { let _ = tap.handle_link_frame(now, &b); }
                Step::TunBytes(mut b) => { let _ = tap.handle_tun_packet(now, &mut b); }
                Step::TunUdp { host, off_link, len } => {
                    let dst = if off_link { [203, 0, 113, host] } else { [192, 0, 2, host] };
                    let mut buf = vec![0u8; HEADROOM];
                    PacketBuilder::ipv4([192, 0, 2, 123], dst, 64).udp(1, 2).write(&mut buf, &vec![0; len]).unwrap();
                    let _ = tap.handle_tun_packet(now, &mut buf);
                }
                Step::Arp { host, reply, target_us } => {
                    let peer = MacAddr([2, 0, 0, 0, 1, host]);
                    let peer_ip = Ipv4Addr::new(192, 0, 2, host);
                    let target = if target_us { Ipv4Addr::new(192, 0, 2, 123) } else { Ipv4Addr::new(192, 0, 2, 200) };
                    let req = ArpPacket::request(peer, peer_ip, target);
                    let frame = if reply {
                        ArpPacket::reply_to(&ArpPacket::request(OUR_MAC, target, peer_ip), peer, peer_ip).to_frame(OUR_MAC)
                    } else {
                        req.to_frame(MacAddr::BROADCAST)
                    };
                    let _ = tap.handle_link_frame(now, &frame);
                }
                Step::Wait(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    if tap.poll_timeout().is_some_and(|t| t <= now) {
                        tap.handle_timeout(now);
                    }
                }
                Step::Drain(n) => {
                    for _ in 0..n {
                        if tap.poll_transmit().is_none() { break; }
                    }
                    while tap.poll_event().is_some() {}
                }
            }
            check_bounds(&tap);
            // A timer never lies in the past after it has been handled.
            if let Some(t) = tap.poll_timeout() {
                if t <= now { tap.handle_timeout(now); }
                prop_assert!(tap.poll_timeout().is_none_or(|t| t > now));
            }
        }
        // Drained outputs are bounded by the configured queue length.
        let mut outputs = 0;
        while tap.poll_transmit().is_some() { outputs += 1; }
        prop_assert!(outputs <= 64);
    }
}
