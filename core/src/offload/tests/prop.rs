use proptest::prelude::*;

use super::super::{complete_checksum, Gro, GroConfig, GsoType, SuperSegment, VirtioNetHdr};
use super::gro::{run, Out};
use super::{assert_valid, payload, set_partial_checksum, TcpSpec, ACK, CWR, ECE, FIN, PSH};

/// The IP packets a TUN write of `out` (virtio-net header and packet) stands for: itself,
/// or the segments of a super-segment, each checked.
fn expand(out: &[u8]) -> Vec<Vec<u8>> {
    let hdr = VirtioNetHdr::parse(out).unwrap();
    let packet = &out[VirtioNetHdr::LEN..];
    if hdr.gso_type == GsoType::None {
        assert_eq!(hdr, VirtioNetHdr::NONE);
        return vec![packet.to_vec()];
    }
    // The super-segment itself: right IP lengths and checksum, partial TCP checksum.
    let l4 = usize::from(hdr.csum_start);
    let mut partial = packet.to_vec();
    set_partial_checksum(&mut partial, l4, 16);
    assert_eq!(
        partial, packet,
        "the TCP checksum field holds the pseudo-header sum"
    );
    let mut full = packet.to_vec();
    complete_checksum(
        &VirtioNetHdr {
            gso_type: GsoType::None,
            ..hdr
        },
        &mut full,
    )
    .unwrap();
    assert_valid(&full);

    let sup = SuperSegment::parse(&hdr, packet).unwrap();
    assert!(sup.count() >= 2);
    let mut bufs = vec![vec![0; sup.max_segment_len()]; sup.count()];
    sup.write_all(bufs.iter_mut().map(|b| b.as_mut_slice()), 0)
        .unwrap();
    bufs.iter()
        .enumerate()
        .map(|(i, b)| {
            let seg = b[..sup.segment_len(i)].to_vec();
            assert_valid(&seg);
            seg
        })
        .collect()
}

fn arb_seq() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (u32::MAX - 70_000)..=u32::MAX]
}

fn arb_spec() -> impl Strategy<Value = TcpSpec> {
    let ts = proptest::option::of((any::<u32>(), any::<u32>()));
    (
        any::<bool>(),
        arb_seq(),
        any::<u32>(),
        ts,
        any::<u16>(),
        any::<bool>(),
        1..=255u8,
        any::<u8>(),
        any::<u16>(),
    )
        .prop_map(|(v6, seq, ack, ts, id, df, ttl, tos, window)| TcpSpec {
            v6,
            seq,
            ack,
            ts,
            id,
            df,
            ttl,
            tos,
            window,
            ..TcpSpec::default()
        })
}

/// What happens next in a flow.
#[derive(Debug, Clone)]
enum Ev {
    /// A segment of this many bytes (PSH, CWR as given).
    Data { len: usize, psh: bool, cwr: bool },
    /// No payload.
    BareAck,
    /// The ACK moves on, then a full segment.
    NewAck,
    /// Bytes missing (lost or reordered), then a full segment.
    Gap(u32),
    /// FIN with this much payload.
    Fin(usize),
    /// The timestamp ticks, then a full segment.
    NewTs,
}

fn arb_ev(mss: usize) -> impl Strategy<Value = Ev> {
    prop_oneof![
        10 => Just(Ev::Data { len: mss, psh: false, cwr: false }),
        3 => (1..=mss, any::<bool>(), proptest::bool::weighted(0.1))
            .prop_map(|(len, psh, cwr)| Ev::Data { len, psh, cwr }),
        1 => Just(Ev::BareAck),
        1 => Just(Ev::NewAck),
        1 => (1..5000u32).prop_map(Ev::Gap),
        1 => (0..=mss).prop_map(Ev::Fin),
        1 => Just(Ev::NewTs),
    ]
}

fn arb_flow() -> impl Strategy<Value = (TcpSpec, Vec<Ev>, bool)> {
    (1..=1460usize, arb_spec(), any::<bool>()).prop_flat_map(|(mss, spec, ece)| {
        (
            Just(spec),
            proptest::collection::vec(arb_ev(mss), 0..60),
            Just(ece),
        )
    })
}

/// The packets of flow `f`, in the order it sends them.
fn flow_packets(f: usize, spec: &TcpSpec, events: &[Ev], ece: bool) -> Vec<Vec<u8>> {
    let mut spec = TcpSpec {
        src_port: 1000 + f as u16,
        ..spec.clone()
    };
    let base = if ece { ACK | ECE } else { ACK };
    let mss_full = events.iter().find_map(|e| match e {
        Ev::Data { len, .. } => Some(*len),
        _ => None,
    });
    let full = mss_full.unwrap_or(100);
    let mut out = Vec::new();
    let mut send = |spec: &mut TcpSpec, len: usize, flags: u8| {
        let data: Vec<u8> = (0..len)
            .map(|i| (spec.seq as usize + i) as u8 ^ f as u8)
            .collect();
        out.push(
            TcpSpec {
                flags,
                ..spec.clone()
            }
            .packet(&data),
        );
        spec.seq = spec
            .seq
            .wrapping_add(len as u32 + u32::from(flags & FIN != 0));
        spec.id = spec.id.wrapping_add(1);
    };
    for ev in events {
        match *ev {
            Ev::Data { len, psh, cwr } => {
                let flags = base | if psh { PSH } else { 0 } | if cwr { CWR } else { 0 };
                send(&mut spec, len, flags);
            }
            Ev::BareAck => send(&mut spec, 0, base),
            Ev::NewAck => {
                spec.ack = spec.ack.wrapping_add(1000);
                send(&mut spec, full, base);
            }
            Ev::Gap(n) => {
                spec.seq = spec.seq.wrapping_add(n);
                send(&mut spec, full, base);
            }
            Ev::Fin(len) => send(&mut spec, len, base | FIN),
            Ev::NewTs => {
                spec.ts = spec.ts.map(|(val, ecr)| (val.wrapping_add(1), ecr));
                send(&mut spec, full, base);
            }
        }
    }
    out
}

/// Which flow a packet is: its IP version and source port.
fn flow_of(packet: &[u8]) -> (bool, u16) {
    let l4 = if packet[0] >> 4 == 6 { 40 } else { 20 };
    (l4 == 40, u16::from_be_bytes([packet[l4], packet[l4 + 1]]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn segment_then_coalesce_is_the_identity(
        spec in arb_spec(),
        (mss, len) in (1..=1460u16).prop_flat_map(|mss| (Just(mss), 1..=(usize::from(mss) * 200).min(60_000))),
        psh in any::<bool>(),
        cwr in any::<bool>(),
        ece in any::<bool>(),
    ) {
        let flags = ACK | if psh { PSH } else { 0 } | if cwr { CWR } else { 0 } | if ece { ECE } else { 0 };
        let spec = TcpSpec { flags, ..spec };
        let data = payload(len);
        let (hdr, packet) = spec.super_segment(&data, mss);
        let sup = SuperSegment::parse(&hdr, &packet).unwrap();
        let mut segments = vec![vec![0; sup.max_segment_len()]; sup.count()];
        sup.write_all(segments.iter_mut().map(|b| b.as_mut_slice()), 0).unwrap();
        let mut joined = Vec::new();
        for (i, s) in segments.iter_mut().enumerate() {
            s.truncate(sup.segment_len(i));
            joined.extend(assert_valid(s));
        }
        prop_assert_eq!(&joined, &data);

        let out = run(&mut Gro::new(GroConfig::default()), &segments);
        if segments.len() == 1 {
            let alone = if psh { Out::Pass(0) } else { Out::Ready([&[0; 10][..], &segments[0]].concat()) };
            prop_assert_eq!(out, vec![alone]);
        } else {
            prop_assert_eq!(out, vec![Out::Ready([&hdr.to_bytes()[..], &packet].concat())]);
        }
    }

    #[test]
    fn coalescing_keeps_every_flow_in_order_and_never_mixes_flows(
        flows in proptest::collection::vec(arb_flow(), 1..=4),
        picks in proptest::collection::vec(0..4usize, 0..200),
        batch in 1..=40usize,
        max_flows in 1..=4usize,
        max_len in prop_oneof![Just(65_535usize), 1500..65_535usize],
    ) {
        let per_flow: Vec<Vec<Vec<u8>>> = flows
            .iter()
            .enumerate()
            .map(|(f, (spec, events, ece))| flow_packets(f, spec, events, *ece))
            .collect();
        // Interleave: each pick takes the next packet of a flow, the rest follow in turn.
        let mut next = vec![0; per_flow.len()];
        let mut input = Vec::new();
        let picks = picks.into_iter().chain((0..per_flow.len()).cycle().take(per_flow.iter().map(Vec::len).sum::<usize>() * per_flow.len()));
        for pick in picks {
            let f = pick % per_flow.len();
            if let Some(p) = per_flow[f].get(next[f]) {
                input.push(p.clone());
                next[f] += 1;
            }
        }

        let mut gro = Gro::new(GroConfig { max_flows, max_len });
        let mut written = Vec::new();
        for chunk in input.chunks(batch) {
            for out in run(&mut gro, chunk) {
                match out {
                    Out::Pass(i) => written.push(chunk[i].clone()),
                    Out::Ready(bytes) => written.extend(expand(&bytes)),
                }
            }
        }
        for (f, (spec, _, _)) in flows.iter().enumerate() {
            let key = (spec.v6, 1000 + f as u16);
            let got: Vec<_> = written.iter().filter(|p| flow_of(p) == key).collect();
            let want: Vec<_> = per_flow[f].iter().collect();
            prop_assert_eq!(got, want, "flow {}", f);
        }
        prop_assert_eq!(written.len(), input.len());
        let stats = gro.stats();
        prop_assert_eq!(stats.packets, input.len() as u64);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        hdr in proptest::collection::vec(any::<u8>(), 10),
        packet in proptest::collection::vec(any::<u8>(), 0..300),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        spec in arb_spec(),
    ) {
        let mut gro = Gro::new(GroConfig { max_flows: 2, max_len: 4000 });
        let mut valid = spec.packet(&payload(200));
        let second = TcpSpec { seq: spec.seq.wrapping_add(200), id: spec.id.wrapping_add(1), ..spec.clone() };
        let _ = gro.push(&valid);
        for (at, value) in &flips {
            let n = valid.len();
            valid[at % n] = *value;
        }
        for p in [&packet, &valid, &second.packet(&payload(200))] {
            let _ = gro.push(p);
            while gro.pop_ready().is_some() {}
        }
        gro.flush();
        while let Some(out) = gro.pop_ready() {
            prop_assert!(out.len() <= VirtioNetHdr::LEN + 4000);
        }

        if let Ok(h) = VirtioNetHdr::parse(&hdr) {
            for p in [&packet, &valid] {
                if let Ok(sup) = SuperSegment::parse(&h, p) {
                    let mut bufs = vec![vec![0; 1600]; 4];
                    let _ = sup.write_all(bufs.iter_mut().map(|b| b.as_mut_slice()), 14);
                }
                let _ = complete_checksum(&h, &mut p.clone());
            }
        }
        let mut rebuilt = spec.packet(&packet);
        let _ = complete_checksum(&VirtioNetHdr { needs_csum: true, csum_start: 20, csum_offset: 16, ..VirtioNetHdr::NONE }, &mut rebuilt);
    }
}
