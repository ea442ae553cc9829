use super::super::{Gro, GroConfig, GroStats, GsoType, Push, VirtioNetHdr};
use super::{payload, udp, TcpSpec, ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};

/// One write to the TUN, in order.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Out {
    /// Input packet `i`, passed through.
    Pass(usize),
    /// A super-segment (or held single packet) with its virtio-net header.
    Ready(Vec<u8>),
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Pass(i) => write!(f, "Pass({i})"),
            Out::Ready(b) => {
                let head: String = b.iter().take(72).map(|x| format!("{x:02x}")).collect();
                write!(f, "Ready({} bytes: {head}..)", b.len())
            }
        }
    }
}

/// Pushes `packets` the way a driver does, then flushes.
pub(super) fn run(gro: &mut Gro, packets: &[Vec<u8>]) -> Vec<Out> {
    let mut out = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let push = gro.push(p);
        while let Some(ready) = gro.pop_ready() {
            out.push(Out::Ready(ready.to_vec()));
        }
        if push == Push::PassThrough {
            out.push(Out::Pass(i));
        }
    }
    gro.flush();
    while let Some(ready) = gro.pop_ready() {
        out.push(Out::Ready(ready.to_vec()));
    }
    out
}

/// Consecutive segments of one flow with these payload lengths, IPv4 IDs counting up.
pub(super) fn stream(spec: &TcpSpec, lens: &[usize]) -> Vec<Vec<u8>> {
    let mut spec = spec.clone();
    let data = payload(lens.iter().sum());
    let mut at = 0;
    lens.iter()
        .map(|&len| {
            let p = spec.packet(&data[at..at + len]);
            at += len;
            spec.seq = spec.seq.wrapping_add(len as u32);
            spec.id = spec.id.wrapping_add(1);
            p
        })
        .collect()
}

/// A packet passed through alone, as a held single comes out.
fn single(packet: &[u8]) -> Out {
    Out::Ready([&VirtioNetHdr::NONE.to_bytes()[..], packet].concat())
}

/// The super-segment that consecutive segments of one flow, the first as `spec` says,
/// must merge into.
fn merged(spec: &TcpSpec, lens: &[usize], flags: u8) -> Out {
    merged_from(spec, lens, flags, 0)
}

/// [`merged`] for segments whose payload starts at `from` in the stream's.
fn merged_from(spec: &TcpSpec, lens: &[usize], flags: u8, from: usize) -> Out {
    let total: usize = lens.iter().sum();
    let data = &payload(from + total)[from..];
    let (hdr, packet) = TcpSpec {
        flags,
        ..spec.clone()
    }
    .super_segment(data, lens[0] as u16);
    Out::Ready([&hdr.to_bytes()[..], &packet].concat())
}

fn gro() -> Gro {
    Gro::new(GroConfig::default())
}

#[test]
fn forty_four_segments_become_the_super_segment_they_came_from() {
    for spec in [
        TcpSpec {
            ts: Some((5, 6)),
            ..TcpSpec::default()
        },
        TcpSpec::v6(),
    ] {
        let mut lens = vec![1448; 44];
        lens[43] = 1000;
        let mut packets = stream(&spec, &lens);
        // PSH on the last segment only, as the sender's TSO leaves it.
        let last = TcpSpec {
            flags: ACK | PSH,
            seq: spec.seq.wrapping_add(43 * 1448),
            id: spec.id + 43,
            ..spec.clone()
        };
        packets[43] = last.packet(&payload(44 * 1448)[43 * 1448..43 * 1448 + 1000]);
        let mut g = gro();
        assert_eq!(run(&mut g, &packets), [merged(&spec, &lens, ACK | PSH)]);
        let s = g.stats();
        assert_eq!(
            s,
            GroStats {
                packets: 44,
                merged: 43,
                super_segments: 1,
                ..GroStats::default()
            }
        );
    }
}

#[test]
fn the_virtio_header_asks_for_gso_and_a_checksum() {
    let packets = stream(&TcpSpec::v6(), &[1400, 1400]);
    let out = run(&mut gro(), &packets);
    let Out::Ready(bytes) = &out[0] else {
        panic!("{out:?}")
    };
    let hdr = VirtioNetHdr::parse(bytes).unwrap();
    let want = VirtioNetHdr {
        needs_csum: true,
        data_valid: false,
        gso_type: GsoType::TcpV6,
        ecn: false,
        hdr_len: 60,
        gso_size: 1400,
        csum_start: 40,
        csum_offset: 16,
    };
    assert_eq!(hdr, want);
}

#[test]
fn other_protocols_pass_through_at_once_while_a_flow_is_held() {
    let spec = TcpSpec::default();
    let mut packets = stream(&spec, &[1448, 1448]);
    packets.insert(1, udp(false, b"dns"));
    packets.insert(2, udp(true, b"dns"));
    packets.insert(3, b"\x45not really a packet".to_vec());
    packets.push(Vec::new());
    let out = run(&mut gro(), &packets);
    assert_eq!(
        out,
        [
            Out::Pass(1),
            Out::Pass(2),
            Out::Pass(3),
            Out::Pass(5),
            merged(&spec, &[1448, 1448], ACK)
        ]
    );
}

#[test]
fn a_packet_that_cannot_join_closes_its_flow_first() {
    let spec = TcpSpec::default();
    let packets = stream(&spec, &[1448, 1448, 1448]);
    let next = |flags: u8| TcpSpec {
        seq: spec.seq + 3 * 1448,
        id: spec.id + 3,
        flags,
        ..spec.clone()
    };
    for (name, barrier) in [
        ("FIN", next(ACK | FIN).packet(b"bye")),
        ("bare ACK", next(ACK).packet(b"")),
        ("RST", next(ACK | RST).packet(b"")),
        ("SYN", next(SYN).packet(b"")),
        ("URG", next(ACK | URG).packet(b"!")),
        ("no ACK", next(PSH).packet(b"x")),
    ] {
        let mut all = packets.clone();
        all.push(barrier);
        all.push(next(ACK).packet(&payload(100)));
        let out = run(&mut gro(), &all);
        let want = [
            merged(&spec, &[1448; 3], ACK),
            Out::Pass(3),
            single(&all[4]),
        ];
        assert_eq!(out, want, "{name}");
    }
}

#[test]
fn a_gap_or_a_reordering_starts_a_new_super_segment() {
    let spec = TcpSpec::default();
    let p = stream(&spec, &[1000, 1000, 1000, 1000]);
    assert_eq!(
        run(&mut gro(), &[p[0].clone(), p[1].clone(), p[3].clone()]),
        [merged(&spec, &[1000, 1000], ACK), single(&p[3])]
    );
    assert_eq!(
        run(&mut gro(), &[p[0].clone(), p[2].clone(), p[1].clone()]),
        [single(&p[0]), single(&p[2]), single(&p[1])]
    );
}

#[test]
fn headers_that_differ_do_not_merge() {
    let spec = TcpSpec {
        ts: Some((100, 200)),
        ..TcpSpec::default()
    };
    let second = TcpSpec {
        seq: spec.seq + 1000,
        id: spec.id + 1,
        ..spec.clone()
    };
    let cases = [
        (
            "ack",
            TcpSpec {
                ack: 2,
                ..second.clone()
            },
        ),
        (
            "window",
            TcpSpec {
                window: 501,
                ..second.clone()
            },
        ),
        (
            "timestamp",
            TcpSpec {
                ts: Some((101, 200)),
                ..second.clone()
            },
        ),
        (
            "no options",
            TcpSpec {
                ts: None,
                ..second.clone()
            },
        ),
        (
            "ttl",
            TcpSpec {
                ttl: 63,
                ..second.clone()
            },
        ),
        (
            "tos",
            TcpSpec {
                tos: 0x03,
                ..second.clone()
            },
        ),
        (
            "df",
            TcpSpec {
                df: false,
                ..second.clone()
            },
        ),
        (
            "ece",
            TcpSpec {
                flags: ACK | ECE,
                ..second.clone()
            },
        ),
        (
            "cwr",
            TcpSpec {
                flags: ACK | CWR,
                ..second.clone()
            },
        ),
        (
            "port",
            TcpSpec {
                src_port: 444,
                ..second.clone()
            },
        ),
    ];
    let first = spec.packet(&payload(1000));
    for (name, other) in cases {
        let second = other.packet(&payload(1000));
        let out = run(&mut gro(), &[first.clone(), second.clone()]);
        assert_eq!(out, [single(&first), single(&second)], "{name}");
    }
    let v6 = TcpSpec::v6();
    let first = v6.packet(b"abc");
    for (name, other) in [
        (
            "hop limit",
            TcpSpec {
                ttl: 1,
                seq: v6.seq + 3,
                ..v6.clone()
            },
        ),
        (
            "traffic class",
            TcpSpec {
                tos: 0x10,
                seq: v6.seq + 3,
                ..v6.clone()
            },
        ),
    ] {
        let second = other.packet(b"abc");
        assert_eq!(
            run(&mut gro(), &[first.clone(), second.clone()]),
            [single(&first), single(&second)],
            "{name}"
        );
    }
}

#[test]
fn ipv4_ids_must_count_up_unless_df_is_set() {
    for df in [false, true] {
        let spec = TcpSpec {
            df,
            ..TcpSpec::default()
        };
        let first = spec.packet(&payload(500));
        let second = TcpSpec {
            seq: spec.seq + 500,
            id: spec.id + 5,
            ..spec.clone()
        }
        .packet(&payload(1000)[500..]);
        let out = run(&mut gro(), &[first.clone(), second.clone()]);
        if df {
            assert_eq!(out, [merged(&spec, &[500, 500], ACK)]);
        } else {
            assert_eq!(out, [single(&first), single(&second)]);
        }
    }
}

#[test]
fn psh_or_a_short_segment_ends_the_super_segment_at_once() {
    let spec = TcpSpec::default();
    let mut p = stream(&spec, &[1448, 1448, 1448]);
    p[1] = TcpSpec {
        flags: ACK | PSH,
        seq: spec.seq + 1448,
        id: spec.id + 1,
        ..spec.clone()
    }
    .packet(&payload(2 * 1448)[1448..]);
    let mut g = gro();
    assert_eq!(g.push(&p[0]), Push::Held);
    assert_eq!(g.pop_ready(), None);
    assert_eq!(g.push(&p[1]), Push::Held);
    assert_eq!(
        g.pop_ready().map(<[u8]>::to_vec),
        match merged(&spec, &[1448, 1448], ACK | PSH) {
            Out::Ready(b) => Some(b),
            Out::Pass(_) => None,
        }
    );
    assert_eq!(g.pop_ready(), None);

    let short = stream(&spec, &[1448, 1000, 1000]);
    assert_eq!(
        run(&mut gro(), &short),
        [merged(&spec, &[1448, 1000], ACK), single(&short[2])]
    );
    let longer = stream(&spec, &[1000, 1448]);
    assert_eq!(
        run(&mut gro(), &longer),
        [single(&longer[0]), single(&longer[1])]
    );
    // A PSH segment with nothing pending passes straight through.
    let lone = TcpSpec {
        flags: ACK | PSH,
        ..spec
    }
    .packet(b"ls\n");
    assert_eq!(run(&mut gro(), &[lone]), [Out::Pass(0)]);
}

#[test]
fn corrupt_packets_are_never_merged() {
    let spec = TcpSpec::default();
    let p = stream(&spec, &[1000, 1000, 1000]);
    for at in [30, 36, 1039, 10] {
        // 30: sequence number, 36: TCP checksum, 1039: payload, 10: IPv4 header checksum
        let mut bad = p[1].clone();
        bad[at] ^= 0x01;
        let out = run(&mut gro(), &[p[0].clone(), bad.clone(), p[2].clone()]);
        assert_eq!(
            out,
            [single(&p[0]), Out::Pass(1), single(&p[2])],
            "byte {at}"
        );
    }
}

#[test]
fn interleaved_flows_merge_separately() {
    let a = TcpSpec::default();
    let b = TcpSpec {
        dst_port: 40001,
        ..TcpSpec::default()
    };
    let c = TcpSpec::v6();
    let (sa, sb, sc) = (
        stream(&a, &[900; 3]),
        stream(&b, &[700; 3]),
        stream(&c, &[500; 3]),
    );
    let packets: Vec<_> = (0..3)
        .flat_map(|i| [sa[i].clone(), sb[i].clone(), sc[i].clone()])
        .collect();
    let out = run(&mut gro(), &packets);
    assert_eq!(
        out,
        [
            merged(&a, &[900; 3], ACK),
            merged(&b, &[700; 3], ACK),
            merged(&c, &[500; 3], ACK)
        ]
    );
}

#[test]
fn flows_beyond_the_limit_pass_through() {
    let a = TcpSpec::default();
    let b = TcpSpec {
        src_port: 80,
        ..TcpSpec::default()
    };
    let (sa, sb) = (stream(&a, &[800; 2]), stream(&b, &[800; 2]));
    let mut g = Gro::new(GroConfig {
        max_flows: 1,
        ..GroConfig::default()
    });
    let out = run(
        &mut g,
        &[sa[0].clone(), sb[0].clone(), sa[1].clone(), sb[1].clone()],
    );
    assert_eq!(
        out,
        [Out::Pass(1), Out::Pass(3), merged(&a, &[800; 2], ACK)]
    );
}

#[test]
fn super_segments_stop_at_the_length_limit() {
    let spec = TcpSpec::default();
    let p = stream(&spec, &[1448; 5]);
    let mut g = Gro::new(GroConfig {
        max_len: 3000,
        ..GroConfig::default()
    });
    let out = run(&mut g, &p);
    let second = TcpSpec {
        seq: spec.seq + 2 * 1448,
        id: spec.id + 2,
        ..spec.clone()
    };
    let want = [
        merged(&spec, &[1448; 2], ACK),
        merged_from(&second, &[1448; 2], ACK, 2 * 1448),
        single(&p[4]),
    ];
    assert_eq!(out, want);
}

#[test]
fn cwr_is_kept_on_the_first_segment_and_marked_in_the_gso_type() {
    let spec = TcpSpec::default();
    let mut p = stream(&spec, &[1000; 3]);
    p[0] = TcpSpec {
        flags: ACK | CWR,
        ..spec.clone()
    }
    .packet(&payload(1000));
    let out = run(&mut gro(), &p);
    let want = merged(
        &TcpSpec {
            flags: ACK | CWR,
            ..spec.clone()
        },
        &[1000; 3],
        ACK | CWR,
    );
    assert_eq!(out, std::slice::from_ref(&want));
    let Out::Ready(bytes) = want else {
        unreachable!()
    };
    assert!(VirtioNetHdr::parse(&bytes).unwrap().ecn);
}

#[test]
fn fragments_and_extension_headers_close_the_flows_they_may_belong_to() {
    let spec = TcpSpec::default();
    let p = stream(&spec, &[1000; 2]);
    let mut fragment = TcpSpec {
        seq: spec.seq + 2000,
        ..spec.clone()
    }
    .packet(b"frag");
    fragment[6] = 0x20; // more fragments
    let other = udp(false, b"not TCP");
    let mut other_fragment = other.clone();
    other_fragment[6] = 0x20;
    let out = run(
        &mut gro(),
        &[p[0].clone(), other_fragment, p[1].clone(), fragment],
    );
    assert_eq!(
        out,
        [Out::Pass(1), merged(&spec, &[1000; 2], ACK), Out::Pass(3)]
    );

    let v6 = TcpSpec::v6();
    let q = stream(&v6, &[600; 2]);
    // The second segment behind a destination-options header (PadN).
    let mut ext = q[1][..40].to_vec();
    ext[6] = 60;
    ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    ext.extend_from_slice(&q[1][40..]);
    let len = u16::from_be_bytes([ext[4], ext[5]]) + 8;
    ext[4..6].copy_from_slice(&len.to_be_bytes());
    let out = run(&mut gro(), &[q[0].clone(), ext]);
    assert_eq!(out, [single(&q[0]), Out::Pass(1)]);
}

#[test]
fn ready_segments_left_unread_are_kept_in_order() {
    let spec = TcpSpec::default();
    let p = stream(&spec, &[1000; 6]);
    let mut g = Gro::new(GroConfig {
        max_flows: 1,
        ..GroConfig::default()
    });
    // Every packet out of order: each push closes the previous one, nothing is read.
    let order = [0, 2, 4, 1, 3, 5];
    let pushes: Vec<_> = order.iter().map(|&i| g.push(&p[i])).collect();
    assert_eq!(pushes[..2], [Push::Held, Push::Held]);
    assert!(
        pushes[2..].iter().all(|&x| x == Push::PassThrough),
        "{pushes:?}"
    );
    g.flush();
    let mut got = Vec::new();
    while let Some(r) = g.pop_ready() {
        got.push(r.to_vec());
    }
    assert_eq!(got.len(), 2);
    assert_eq!(Out::Ready(got[0].clone()), single(&p[0]));
    assert_eq!(Out::Ready(got[1].clone()), single(&p[2]));
}
