//! Throughput of the offload building blocks on one 64 KiB TCP super-segment: splitting
//! it into 1448-byte segments (TUN → link), and coalescing the 44 segments back into one
//! (link → TUN). Bytes are TCP payload bytes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::{PacketBuilder, TcpOptionElement};
use tapemu::offload::{Gro, GroConfig, GsoType, Push, SuperSegment, VirtioNetHdr};

const MSS: usize = 1448;
const SEGMENTS: usize = 44;
/// Room for the VXLAN and Ethernet headers in front of each segment.
const HEADROOM: usize = 8 + 14;

/// A TCP packet with timestamps (so 1448 bytes fill a 1500-byte MTU), `len` bytes of
/// payload from sequence number `seq`.
fn tcp(v6: bool, seq: u32, id: u16, len: usize) -> Vec<u8> {
    let builder = if v6 {
        let src = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a,
        ];
        let dst = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7b,
        ];
        PacketBuilder::ipv6(src, dst, 64)
    } else {
        let mut ip = etherparse::Ipv4Header::new(
            0,
            64,
            etherparse::IpNumber::TCP,
            [192, 0, 2, 10],
            [192, 0, 2, 123],
        )
        .expect("header");
        ip.identification = id;
        ip.dont_fragment = true;
        PacketBuilder::ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
    };
    let payload: Vec<u8> = (0..len).map(|i| (seq as usize + i) as u8).collect();
    let mut out = Vec::new();
    builder
        .tcp(443, 40000, seq, 502)
        .ack(1)
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(1, 2),
        ])
        .expect("options")
        .write(&mut out, &payload)
        .expect("build");
    out
}

fn super_segment(v6: bool) -> (VirtioNetHdr, Vec<u8>) {
    let l4 = if v6 { 40 } else { 20 };
    let hdr = VirtioNetHdr {
        needs_csum: true,
        gso_type: if v6 { GsoType::TcpV6 } else { GsoType::TcpV4 },
        hdr_len: (l4 + 32) as u16,
        gso_size: MSS as u16,
        csum_start: l4 as u16,
        csum_offset: 16,
        ..VirtioNetHdr::NONE
    };
    (hdr, tcp(v6, 1000, 7, SEGMENTS * MSS))
}

fn segment(c: &mut Criterion) {
    let mut group = c.benchmark_group("offload/segment_64k");
    group.throughput(Throughput::Bytes((SEGMENTS * MSS) as u64));
    group.measurement_time(Duration::from_secs(4));
    for v6 in [false, true] {
        let (hdr, packet) = super_segment(v6);
        let mut bufs = vec![vec![0u8; HEADROOM + 1600]; SEGMENTS];
        group.bench_function(if v6 { "ipv6" } else { "ipv4" }, |b| {
            b.iter(|| {
                let sup = SuperSegment::parse(&hdr, black_box(&packet)).expect("valid");
                let n = sup
                    .write_all(bufs.iter_mut().map(|b| b.as_mut_slice()), HEADROOM)
                    .expect("room");
                black_box(n)
            })
        });
    }
    group.finish();
}

fn coalesce(c: &mut Criterion) {
    let mut group = c.benchmark_group("offload/coalesce_44");
    group.throughput(Throughput::Bytes((SEGMENTS * MSS) as u64));
    group.measurement_time(Duration::from_secs(4));
    for v6 in [false, true] {
        let segments: Vec<Vec<u8>> = (0..SEGMENTS)
            .map(|i| tcp(v6, 1000 + (i * MSS) as u32, 7 + i as u16, MSS))
            .collect();
        let mut gro = Gro::new(GroConfig::default());
        group.bench_function(if v6 { "ipv6" } else { "ipv4" }, |b| {
            b.iter(|| {
                let mut written = 0;
                for s in &segments {
                    let push = gro.push(black_box(s));
                    while let Some(out) = gro.pop_ready() {
                        written += out.len();
                    }
                    assert_eq!(push, Push::Held);
                }
                gro.flush();
                while let Some(out) = gro.pop_ready() {
                    written += out.len();
                }
                assert_eq!(
                    written,
                    VirtioNetHdr::LEN + segments[0].len() - MSS + SEGMENTS * MSS
                );
                black_box(written)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, segment, coalesce);
criterion_main!(benches);
