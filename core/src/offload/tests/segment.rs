use etherparse::{Ipv4HeaderSlice, SlicedPacket, TransportSlice};

use super::super::{complete_checksum, GsoType, OffloadError, SuperSegment, VirtioNetHdr};
use super::{assert_valid, payload, set_partial_checksum, udp, TcpSpec, ACK, CWR, ECE, FIN, PSH};

/// Splits into fresh buffers of `headroom + 1600` bytes filled with 0xee; returns them.
fn split(hdr: &VirtioNetHdr, packet: &[u8], headroom: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
    let sup = SuperSegment::parse(hdr, packet).unwrap();
    let mut bufs = vec![vec![0xee; headroom + 1600]; sup.count()];
    let n = sup
        .write_all(bufs.iter_mut().map(|b| b.as_mut_slice()), headroom)
        .unwrap();
    assert_eq!(n, sup.count());
    let lens = (0..n).map(|i| sup.segment_len(i)).collect();
    (bufs, lens)
}

fn tcp_of(packet: &[u8]) -> etherparse::TcpHeader {
    match SlicedPacket::from_ip(packet).unwrap().transport {
        Some(TransportSlice::Tcp(t)) => t.to_header(),
        other => panic!("not TCP: {other:?}"),
    }
}

#[test]
fn tcp4_super_segment_splits_like_the_kernel() {
    let spec = TcpSpec {
        flags: ACK | PSH | FIN | CWR | ECE,
        seq: 0xffff_f000,
        ts: Some((9, 8)),
        ..TcpSpec::default()
    };
    let data = payload(44 * 1448 - 100);
    let (hdr, packet) = spec.super_segment(&data, 1448);
    let (bufs, lens) = split(&hdr, &packet, 22);
    assert_eq!(lens.len(), 44);

    let mut joined = Vec::new();
    for (i, (buf, &len)) in bufs.iter().zip(&lens).enumerate() {
        assert!(buf[..22].iter().all(|&b| b == 0xee), "headroom untouched");
        assert!(
            buf[22 + len..].iter().all(|&b| b == 0xee),
            "nothing past the segment"
        );
        let seg = &buf[22..22 + len];
        joined.extend(assert_valid(seg));
        let ip = Ipv4HeaderSlice::from_slice(seg).unwrap();
        assert_eq!(ip.identification(), 7 + i as u16);
        assert_eq!(usize::from(ip.total_len()), len);
        assert!(ip.dont_fragment());
        let tcp = tcp_of(seg);
        assert_eq!(
            tcp.sequence_number,
            0xffff_f000u32.wrapping_add(1448 * i as u32)
        );
        assert_eq!(tcp.acknowledgment_number, 1);
        let last = i == 43;
        assert_eq!((tcp.fin, tcp.psh), (last, last), "segment {i}");
        assert_eq!(tcp.cwr, i == 0, "segment {i}");
        assert!(tcp.ece && tcp.ack);
        assert_eq!(tcp.options.as_slice(), &packet[40..52], "options repeated");
        assert_eq!(len, if last { 52 + 1448 - 100 } else { 52 + 1448 });
    }
    assert_eq!(joined, data);
}

#[test]
fn tcp6_super_segment_splits_with_payload_lengths() {
    let spec = TcpSpec {
        flags: ACK | PSH,
        ..TcpSpec::v6()
    };
    let data = payload(3 * 1428 + 1);
    let (hdr, packet) = spec.super_segment(&data, 1428);
    let (bufs, lens) = split(&hdr, &packet, 14);
    assert_eq!(lens, [1488, 1488, 1488, 61]);
    let mut joined = Vec::new();
    for (i, (buf, len)) in bufs.iter().zip(lens).enumerate() {
        let seg = &buf[14..14 + len];
        assert_eq!(usize::from(u16::from_be_bytes([seg[4], seg[5]])), len - 40);
        assert_eq!(tcp_of(seg).psh, i == 3);
        joined.extend(assert_valid(seg));
    }
    assert_eq!(joined, data);
}

#[test]
fn udp_super_datagram_splits_into_whole_datagrams() {
    for v6 in [false, true] {
        let data = payload(5000);
        let mut packet = udp(v6, &data);
        let l4 = if v6 { 40 } else { 20 };
        set_partial_checksum(&mut packet, l4, 6);
        let hdr = VirtioNetHdr {
            needs_csum: true,
            gso_type: GsoType::UdpL4,
            hdr_len: (l4 + 8) as u16,
            gso_size: 1200,
            csum_start: l4 as u16,
            csum_offset: 6,
            ..VirtioNetHdr::NONE
        };
        let (bufs, lens) = split(&hdr, &packet, 0);
        assert_eq!(lens.len(), 5);
        for (i, (buf, len)) in bufs.iter().zip(lens).enumerate() {
            let seg = &buf[..len];
            let got = assert_valid(seg);
            assert_eq!(got, data[i * 1200..(i * 1200 + 1200).min(5000)]);
            assert_eq!(
                usize::from(u16::from_be_bytes([seg[l4 + 4], seg[l4 + 5]])),
                len - l4
            );
            if !v6 {
                assert_eq!(
                    u16::from_be_bytes([seg[4], seg[5]]),
                    u16::from_be_bytes([packet[4], packet[5]]) + i as u16
                );
            }
        }
    }
}

#[test]
fn segments_can_be_laid_out_back_to_back_for_udp_gso() {
    let (hdr, packet) = TcpSpec::default().super_segment(&payload(10_000), 1448);
    let sup = SuperSegment::parse(&hdr, &packet).unwrap();
    let stride = 22 + sup.max_segment_len();
    let mut gso = vec![0u8; stride * sup.count()];
    sup.write_all(gso.chunks_mut(stride), 22).unwrap();
    let (bufs, lens) = split(&hdr, &packet, 22);
    for (i, (buf, len)) in bufs.iter().zip(lens).enumerate() {
        assert_eq!(
            gso[i * stride + 22..i * stride + 22 + len],
            buf[22..22 + len]
        );
    }
}

#[test]
fn the_kernels_hdr_len_is_not_trusted() {
    let (mut hdr, packet) = TcpSpec::default().super_segment(&payload(4000), 1448);
    hdr.hdr_len = 1500; // the whole linear part, as on the forwarding path
    let (_, lens) = split(&hdr, &packet, 0);
    assert_eq!(lens, [1488, 1488, 1144]);
}

#[test]
fn a_payload_no_larger_than_gso_size_is_one_segment_with_a_full_checksum() {
    let (hdr, packet) = TcpSpec::default().super_segment(&payload(1000), 1448);
    let (bufs, lens) = split(&hdr, &packet, 0);
    assert_eq!(lens, [1040]);
    assert_valid(&bufs[0][..1040]);
}

#[test]
fn inconsistent_super_segments_are_refused() {
    let spec = TcpSpec::default();
    let (hdr, packet) = spec.super_segment(&payload(3000), 1448);
    let parse = |h: VirtioNetHdr, p: &[u8]| SuperSegment::parse(&h, p).map(|s| s.count());
    assert_eq!(parse(hdr, &packet), Ok(3));
    let v6 = VirtioNetHdr {
        gso_type: GsoType::TcpV6,
        ..hdr
    };
    assert_eq!(parse(v6, &packet), Err(OffloadError::GsoMismatch));
    let udp = VirtioNetHdr {
        gso_type: GsoType::UdpL4,
        ..hdr
    };
    assert_eq!(parse(udp, &packet), Err(OffloadError::GsoMismatch));
    assert_eq!(
        parse(VirtioNetHdr::NONE, &packet),
        Err(OffloadError::GsoMismatch)
    );
    assert_eq!(
        parse(VirtioNetHdr { gso_size: 0, ..hdr }, &packet),
        Err(OffloadError::ZeroGsoSize)
    );
    assert_eq!(
        parse(
            VirtioNetHdr {
                csum_offset: 6,
                ..hdr
            },
            &packet
        ),
        Err(OffloadError::BadChecksumOffsets)
    );
    assert_eq!(
        parse(
            VirtioNetHdr {
                csum_start: 24,
                ..hdr
            },
            &packet
        ),
        Err(OffloadError::BadChecksumOffsets)
    );
    // Without NEEDS_CSUM the offsets are not looked at.
    let plain = VirtioNetHdr {
        needs_csum: false,
        csum_start: 0,
        csum_offset: 0,
        ..hdr
    };
    assert_eq!(parse(plain, &packet), Ok(3));
    assert_eq!(
        parse(hdr, &packet[..40]),
        Err(OffloadError::Malformed),
        "headers only"
    );
    assert_eq!(
        parse(hdr, &packet[..30]),
        Err(OffloadError::Malformed),
        "truncated TCP header"
    );
    assert_eq!(parse(hdr, &[]), Err(OffloadError::Malformed));
    let mut fragment = packet.clone();
    fragment[6] = 0x20; // more fragments
    assert_eq!(parse(hdr, &fragment), Err(OffloadError::Malformed));
    let mut bad_offset = packet.clone();
    bad_offset[32] = 0x40; // data offset 4 words
    assert_eq!(parse(hdr, &bad_offset), Err(OffloadError::Malformed));
}

#[test]
fn too_few_or_too_small_buffers_are_errors() {
    let (hdr, packet) = TcpSpec::default().super_segment(&payload(3000), 1448);
    let sup = SuperSegment::parse(&hdr, &packet).unwrap();
    let mut two = vec![vec![0; 1600]; 2];
    assert_eq!(
        sup.write_all(two.iter_mut().map(|b| b.as_mut_slice()), 14),
        Err(OffloadError::TooFewBuffers {
            needed: 3,
            available: 2
        })
    );
    let mut small = vec![vec![0; 1500]; 3];
    assert_eq!(
        sup.write_all(small.iter_mut().map(|b| b.as_mut_slice()), 14),
        Err(OffloadError::BufferTooSmall {
            needed: 1502,
            len: 1500
        })
    );
    assert_eq!(
        sup.write(3, &mut [0; 1600]),
        Err(OffloadError::TooFewBuffers {
            needed: 4,
            available: 3
        })
    );
    assert_eq!(sup.segment_len(3), 0);
}

#[test]
fn partial_checksums_are_completed_in_place() {
    for v6 in [false, true] {
        let spec = TcpSpec {
            v6,
            ts: Some((1, 2)),
            ..TcpSpec::default()
        };
        let good = spec.packet(&payload(777));
        let l4 = if v6 { 40 } else { 20 };
        let mut packet = good.clone();
        set_partial_checksum(&mut packet, l4, 16);
        assert_ne!(packet, good);
        let hdr = VirtioNetHdr {
            needs_csum: true,
            csum_start: l4 as u16,
            csum_offset: 16,
            ..VirtioNetHdr::NONE
        };
        complete_checksum(&hdr, &mut packet).unwrap();
        assert_eq!(packet, good);

        let good = udp(v6, &payload(333));
        let mut packet = good.clone();
        set_partial_checksum(&mut packet, l4, 6);
        let hdr = VirtioNetHdr {
            csum_offset: 6,
            ..hdr
        };
        complete_checksum(&hdr, &mut packet).unwrap();
        assert_eq!(packet, good);
    }
}

#[test]
fn a_udp_checksum_that_computes_to_zero_is_sent_as_all_ones() {
    // Choose the last payload word so that the checksum comes out as zero.
    let mut packet = udp(false, &[1, 2, 3, 4, 0, 0]);
    set_partial_checksum(&mut packet, 20, 6);
    let sum = etherparse::checksum::Sum16BitWords::new().add_slice(&packet[20..]);
    let word = !sum.ones_complement().to_be(); // the folded sum: adding its complement gives 0xffff
    packet[32..34].copy_from_slice(&(!word).to_be_bytes());
    let hdr = VirtioNetHdr {
        needs_csum: true,
        csum_start: 20,
        csum_offset: 6,
        ..VirtioNetHdr::NONE
    };
    complete_checksum(&hdr, &mut packet).unwrap();
    assert_eq!(packet[26..28], [0xff, 0xff]);
    assert_valid(&packet);
}

#[test]
fn checksum_completion_checks_its_offsets() {
    let mut packet = TcpSpec::default().packet(b"x");
    let before = packet.clone();
    complete_checksum(&VirtioNetHdr::NONE, &mut packet).unwrap();
    assert_eq!(packet, before, "nothing asked, nothing done");
    let hdr = VirtioNetHdr {
        needs_csum: true,
        csum_start: 20,
        csum_offset: 16,
        ..VirtioNetHdr::NONE
    };
    let wrong = [
        VirtioNetHdr {
            csum_offset: 6,
            ..hdr
        },
        VirtioNetHdr {
            csum_start: 21,
            ..hdr
        },
    ];
    for h in wrong {
        assert_eq!(
            complete_checksum(&h, &mut packet),
            Err(OffloadError::BadChecksumOffsets)
        );
    }
    let gso = VirtioNetHdr {
        gso_type: GsoType::TcpV4,
        gso_size: 1000,
        ..hdr
    };
    assert_eq!(
        complete_checksum(&gso, &mut packet),
        Err(OffloadError::GsoMismatch)
    );
    assert_eq!(
        complete_checksum(&hdr, &mut packet[..30]),
        Err(OffloadError::Malformed)
    );
    assert_eq!(packet, before);
}
