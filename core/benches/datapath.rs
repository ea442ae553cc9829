//! Per-packet cost of the data path with a warm neighbour cache: egress (TUN → link)
//! and ingress (link → TUN) on a realistic mix of packet sizes.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use tapemu::wire::arp::ArpPacket;
use tapemu::{Config, Egress, Ingress, Ipv4Interface, Ipv4Mode, MacAddr, Tap, HEADROOM};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);
const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: [u8; 4] = [192, 0, 2, 123];
const PEER_IP: [u8; 4] = [192, 0, 2, 10];
const GW_IP: [u8; 4] = [192, 0, 2, 1];

/// A warm host: the LAN peer and the gateway are resolved.
fn warm_tap(now: Instant) -> Tap {
    let iface = Ipv4Interface::new(OUR_IP.into(), 24, Some(GW_IP.into()));
    let config = Config {
        mac: Some(OUR_MAC),
        ipv4: Ipv4Mode::Static(iface),
        ..Config::default()
    };
    let mut tap = Tap::new(config, now);
    for (ip, mac) in [(PEER_IP, PEER_MAC), (GW_IP, GW_MAC)] {
        let request = ArpPacket::request(OUR_MAC, OUR_IP.into(), Ipv4Addr::from(ip));
        tap.handle_tun_packet_owned(now, &udp(OUR_IP, ip, 1));
        let reply = ArpPacket::reply_to(&request, mac, ip.into());
        let _ = tap.handle_link_frame(now, &reply.to_frame(OUR_MAC));
    }
    while tap.poll_transmit().is_some() {}
    tap
}

fn udp(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(40000, 443)
        .write(&mut v, &vec![0x5a; len])
        .expect("build");
    v
}

fn tcp(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .tcp(40000, 443, 1, 65535)
        .ack(1)
        .write(&mut v, &vec![0x5a; len])
        .expect("build");
    v
}

/// The mix: full-size TCP segments, bare ACKs, mid-size UDP, to the LAN and beyond.
fn mix() -> Vec<Vec<u8>> {
    vec![
        tcp(OUR_IP, PEER_IP, 1460),
        tcp(OUR_IP, [203, 0, 113, 7], 0),
        udp(OUR_IP, [198, 51, 100, 9], 512),
        tcp(OUR_IP, [203, 0, 113, 7], 1460),
        udp(OUR_IP, PEER_IP, 64),
        tcp(OUR_IP, PEER_IP, 0),
    ]
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let packets = mix();
    let mut group = c.benchmark_group("datapath");
    group.throughput(Throughput::Elements(packets.len() as u64));

    let mut tap = warm_tap(now);
    let mut buffers: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            let mut b = vec![0u8; HEADROOM];
            b.extend_from_slice(p);
            b
        })
        .collect();
    group.bench_function("egress", |b| {
        b.iter(|| {
            for buf in buffers.iter_mut() {
                let out = tap.handle_tun_packet(now, black_box(buf));
                debug_assert_eq!(out, Egress::Send);
                let _ = black_box(out);
            }
        })
    });

    let mut tap = warm_tap(now);
    let frames: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            // The same packets coming back from the LAN to us.
            let mut f = tapemu::wire::ethernet::build_frame(OUR_MAC, PEER_MAC, 0x0800, p);
            f[14 + 12..14 + 16].copy_from_slice(&PEER_IP);
            f[14 + 16..14 + 20].copy_from_slice(&OUR_IP);
            f[14 + 10..14 + 12].fill(0);
            let h = etherparse::Ipv4HeaderSlice::from_slice(&f[14..])
                .expect("ipv4")
                .to_header();
            f[14 + 10..14 + 12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
            if f.len() < 60 {
                f.resize(60, 0);
            }
            f
        })
        .collect();
    group.bench_function("ingress", |b| {
        b.iter(|| {
            for frame in &frames {
                let out = tap.handle_link_frame(now, black_box(frame));
                debug_assert!(matches!(out, Ingress::Deliver(_)));
                let _ = black_box(out);
            }
        })
    });

    // The same frames to a host in DHCP mode, where every IPv4 packet is also checked
    // for the DHCP client port.
    let config = Config {
        mac: Some(OUR_MAC),
        ipv4: Ipv4Mode::Dhcp(tapemu::ipv4::dhcp::DhcpConfig::default()),
        ..Config::default()
    };
    let mut tap = Tap::new(config, now);
    while tap.poll_transmit().is_some() {}
    group.bench_function("ingress_dhcp_mode", |b| {
        b.iter(|| {
            for frame in &frames {
                let out = tap.handle_link_frame(now, black_box(frame));
                let _ = black_box(out);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
