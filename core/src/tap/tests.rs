//! Dispatch: the Ethernet and IP version demultiplexing, the drops before any protocol
//! sees a frame, and what the Tap itself owns (its MAC, its timers). The protocols'
//! behaviour is tested beside them (`ipv4/tests.rs`, `ipv6/tests.rs`).

use std::time::Duration;

use super::*;
use crate::testing::static_ipv4_tap;
use etherparse::PacketBuilder;

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);
const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn tap_with(gateway: Option<&str>, now: Instant) -> Tap {
    static_ipv4_tap(OUR_MAC, gateway.map(ip), now)
}

fn ipv4_frame(dst_mac: MacAddr, payload_len: usize, pad_to: usize) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC.0, dst_mac.0)
        .ipv4([192, 0, 2, 10], [192, 0, 2, 123], 64)
        .udp(1, 2)
        .write(&mut f, &vec![0xab; payload_len])
        .unwrap();
    if f.len() < pad_to {
        f.resize(pad_to, 0);
    }
    f
}

#[test]
fn ingress_drops_by_reason() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let other_host = ipv4_frame(MacAddr([2, 0, 0, 0, 0, 0x99]), 10, 0);
    assert_eq!(tap.handle_link_frame(t0, &other_host), Ingress::Consumed);
    assert_eq!(tap.handle_link_frame(t0, &[0u8; 13]), Ingress::Consumed);
    let mut vlan = ipv4_frame(OUR_MAC, 10, 0);
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(tap.handle_link_frame(t0, &vlan), Ingress::Consumed);
    let mut corrupt = ipv4_frame(OUR_MAC, 10, 0);
    corrupt[14 + 8] ^= 0xff; // TTL changed, checksum now wrong
    assert_eq!(tap.handle_link_frame(t0, &corrupt), Ingress::Consumed);
    let mut truncated = ipv4_frame(OUR_MAC, 100, 0);
    truncated.truncate(60);
    assert_eq!(tap.handle_link_frame(t0, &truncated), Ingress::Consumed);
    let mut own = ipv4_frame(OUR_MAC, 10, 0);
    own[6..12].copy_from_slice(&OUR_MAC.0);
    assert_eq!(tap.handle_link_frame(t0, &own), Ingress::Consumed);
    let mut unknown = ipv4_frame(OUR_MAC, 10, 0);
    unknown[12..14].copy_from_slice(&[0x88, 0xcc]);
    assert_eq!(tap.handle_link_frame(t0, &unknown), Ingress::Consumed);
    let s = tap.stats();
    assert_eq!(s.link.drop_not_for_us, 1);
    assert_eq!(s.link.drop_truncated, 1);
    assert_eq!(s.link.drop_vlan, 1);
    assert_eq!(s.ipv4.drop_link_malformed, 2);
    assert_eq!(s.link.drop_own_frame, 1);
    assert_eq!(s.link.drop_unknown_ether_type, 1);
    assert_eq!(s.drops_total(), 7);
}

#[test]
fn random_mac_is_reproducible_from_the_seed() {
    let t0 = Instant::now();
    let a = Tap::new(
        Config {
            rng_seed: 42,
            ..Config::default()
        },
        t0,
    );
    let b = Tap::new(
        Config {
            rng_seed: 42,
            ..Config::default()
        },
        t0,
    );
    let c = Tap::new(
        Config {
            rng_seed: 43,
            ..Config::default()
        },
        t0,
    );
    assert_eq!(a.mac(), b.mac());
    assert_ne!(a.mac(), c.mac());
    assert!(a.mac().is_unicast());
}

#[test]
fn next_timer_is_the_earliest_deadline_with_its_reason() {
    let t0 = Instant::now();
    let mut tap = tap_with(None, t0);
    let second_announcement = Timer::new(t0 + Duration::from_secs(2), "arp announce");
    assert_eq!(tap.next_timer(), Some(second_announcement));
    assert_eq!(tap.poll_timeout(), Some(second_announcement.at));
    // A packet for an unknown neighbour: the ARP retransmission comes first.
    let mut packet = vec![0u8; HEADROOM];
    PacketBuilder::ipv4([192, 0, 2, 123], [192, 0, 2, 10], 64)
        .udp(1, 2)
        .write(&mut packet, b"x")
        .unwrap();
    assert_eq!(tap.handle_tun_packet(t0, &mut packet), Egress::Consumed);
    assert_eq!(
        tap.next_timer(),
        Some(Timer::new(t0 + Duration::from_secs(1), "arp cache"))
    );

    // With IPv6 the host's own deadlines take part, each with its reason.
    let config = Config {
        mac: Some(OUR_MAC),
        ..Config::default()
    };
    let tap = Tap::new(config, t0);
    let timer = tap.next_timer().expect("the first MLD report and DAD");
    assert!(
        ["mld report", "ipv6 dad"].contains(&timer.reason),
        "{timer:?}"
    );
    assert!(timer.at <= t0 + Duration::from_secs(1));
}
