//! Per-frame cost of a spoofed ARP flood against a full neighbour table: every frame is a
//! request for our address from a sender the table does not hold, so each one evicts an
//! entry and learns a new one. The cost must not grow with the table's size.
//!
//! Senders come from 198.18.0.0/15 (RFC 2544, set aside for benchmarks); no frame leaves
//! the process.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapemu::wire::arp::ArpPacket;
use tapemu::{Config, Ipv4Interface, Ipv4Mode, Ipv6Mode, MacAddr, NeighbourConfig, Tap, Transmit};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 123);

/// A spoofed request for our address from the `n`th sender.
fn spoofed_request(n: u32) -> Vec<u8> {
    let sender_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n + 1);
    let [_, _, a, b] = (n + 1).to_be_bytes();
    let sender_mac = MacAddr([0x02, 0x5f, 0, 0, a, b]);
    ArpPacket::request(sender_mac, sender_ip, OUR_IP).to_frame(MacAddr::BROADCAST)
}

fn full_table(entries: usize, now: Instant) -> Tap {
    let config = Config {
        mac: Some(OUR_MAC),
        ipv4: Ipv4Mode::Static(Ipv4Interface::new(OUR_IP, 24, None)),
        ipv6: Ipv6Mode::Disabled,
        neighbour: NeighbourConfig {
            max_entries: entries,
            ..NeighbourConfig::default()
        },
        ..Config::default()
    };
    let mut tap = Tap::new(config, now);
    for n in 0..entries as u32 {
        let _ = tap.handle_link_frame(now, &spoofed_request(n));
    }
    while tap.poll_transmit().is_some() {}
    assert_eq!(tap.arp_cache().len(), entries, "the table is full");
    tap
}

fn flood(c: &mut Criterion) {
    let mut group = c.benchmark_group("spoofed_arp_flood");
    group.throughput(Throughput::Elements(1));
    for entries in [16usize, 1024, 4096] {
        let now = Instant::now();
        let mut tap = full_table(entries, now);
        // Four times the table's size, cycled: every sender is gone by the time it
        // comes round again, so every frame evicts.
        let frames: Vec<Vec<u8>> = (entries as u32..5 * entries as u32)
            .map(spoofed_request)
            .collect();
        let mut next = 0;
        group.bench_function(BenchmarkId::from_parameter(entries), |b| {
            b.iter(|| {
                let frame = &frames[next];
                next = (next + 1) % frames.len();
                let _ = black_box(tap.handle_link_frame(now, frame));
                while let Some(Transmit::Link(reply)) = tap.poll_transmit() {
                    black_box(reply);
                }
            })
        });
        assert_eq!(tap.arp_cache().len(), entries);
    }
    group.finish();
}

criterion_group!(benches, flood);
criterion_main!(benches);
