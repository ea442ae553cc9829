//! Replays of frames recorded from Linux kernel hosts (`tests/data/arp-kernel.pcap`,
//! `tests/data/ipv4-mixed.pcap`): tapemu, standing in for one of the recorded hosts,
//! must answer and send exactly what that host's kernel did.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherparse::igmp::{GroupAddress, MembershipReportV2Type};
use etherparse::{IgmpType, PacketBuilder};
use tapemu::wire::arp::ArpPacket;
use tapemu::{Config, Egress, Ingress, Ipv4Interface, Ipv4Mode, MacAddr, Tap, Transmit, HEADROOM};
use tapemu_tests::recorded::{frames, src_mac};

const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x14];

/// tapemu configured as a recorded host: `mac`, `ip`/24, no gateway.
fn host(mac: [u8; 6], ip: [u8; 4], now: Instant) -> Tap {
    let iface = Ipv4Interface::new(Ipv4Addr::from(ip), 24, None);
    let mut tap = Tap::new(
        Config {
            mac: Some(MacAddr(mac)),
            ipv4: Ipv4Mode::Static(iface),
            ..Config::default()
        },
        now,
    );
    // Drop the startup announcements: the recorded hosts were already up.
    tap.handle_timeout(now + Duration::from_secs(2));
    while tap.poll_transmit().is_some() {}
    tap
}

fn link_outputs(tap: &mut Tap) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| tap.poll_transmit())
        .map(|t| match t {
            Transmit::Link(f) => f,
            Transmit::Tun(p) => panic!("unexpected packet for the TUN: {p:02x?}"),
        })
        .collect()
}

fn is_arp(frame: &[u8]) -> bool {
    frame[12..14] == [0x08, 0x06]
}

fn with_headroom(ip_packet: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; HEADROOM];
    buf.extend_from_slice(ip_packet);
    buf
}

#[test]
fn as_host_b_we_answer_arp_exactly_as_bs_kernel_did() {
    let recorded = frames("arp-kernel.pcap");
    let now = Instant::now();
    let mut tap = host(B_MAC, [192, 0, 2, 20], now);
    let mut compared = 0;
    for (i, frame) in recorded.iter().enumerate() {
        if src_mac(frame) != A_MAC {
            continue;
        }
        let ingress = tap.handle_link_frame(now, frame);
        let ours = link_outputs(&mut tap);
        if !is_arp(frame) {
            // A's echo requests to B reach the TUN as the very IP packet A sent.
            let Ingress::Deliver(range) = ingress else {
                panic!("frame {i} not delivered")
            };
            assert_eq!(&frame[range], &frame[14..], "frame {i}");
            assert!(ours.is_empty());
            continue;
        }
        let arp = ArpPacket::parse(&frame[14..]).unwrap();
        let asks_for_b = arp.operation == tapemu::wire::arp::Operation::Request
            && arp.target_ip == Ipv4Addr::new(192, 0, 2, 20)
            && arp.sender_ip != arp.target_ip;
        if asks_for_b {
            // B's kernel answered in the next frame; our answer must be identical.
            let kernel_reply = &recorded[i + 1];
            assert_eq!(src_mac(kernel_reply), B_MAC);
            assert_eq!(ours, vec![kernel_reply.clone()], "answer to frame {i}");
            compared += 1;
        } else {
            assert!(ours.is_empty(), "frame {i} ({arp:?}) must not be answered");
        }
    }
    assert_eq!(
        compared, 2,
        "the ping's request and the RFC 5227 probe for B"
    );
    assert_eq!(tap.stats().arp.replies_out, 2);
}

#[test]
fn as_host_a_we_resolve_and_send_exactly_as_as_kernel_did() {
    let recorded = frames("arp-kernel.pcap");
    let now = Instant::now();
    let mut tap = host(A_MAC, [192, 0, 2, 10], now);
    // Frames 1-3: A's request for B, B's reply, A's echo request.
    let (request, reply, echo) = (&recorded[1], &recorded[2], &recorded[3]);
    assert!(is_arp(request) && is_arp(reply) && !is_arp(echo));
    let mut buf = with_headroom(&echo[14..]);
    assert_eq!(tap.handle_tun_packet(now, &mut buf), Egress::Consumed);
    assert_eq!(link_outputs(&mut tap), vec![request.clone()]);
    assert_eq!(tap.handle_link_frame(now, reply), Ingress::Consumed);
    assert_eq!(
        link_outputs(&mut tap),
        vec![echo.clone()],
        "the queued echo request, flushed"
    );
    // B's echo reply to A comes back to the TUN.
    let Ingress::Deliver(range) = tap.handle_link_frame(now, &recorded[4]) else {
        panic!()
    };
    assert_eq!(&recorded[4][range], &recorded[4][14..]);
}

#[test]
fn broadcast_multicast_and_ip_options_leave_exactly_as_the_kernel_sent_them() {
    let recorded = frames("ipv4-mixed.pcap");
    let now = Instant::now();
    let mut tap = host(A_MAC, [192, 0, 2, 10], now);
    let (mut sent_direct, mut sent_after_arp) = (0, 0);
    for (i, frame) in recorded.iter().enumerate() {
        if src_mac(frame) != A_MAC {
            // B's frames, as A receives them: none of them calls for an answer.
            let _ = tap.handle_link_frame(now, frame);
            assert!(link_outputs(&mut tap).is_empty(), "after frame {i}");
            continue;
        }
        if is_arp(frame) {
            continue; // checked when the packet that caused it is sent
        }
        let mut buf = with_headroom(&frame[14..]);
        match tap.handle_tun_packet(now, &mut buf) {
            Egress::Send => {
                assert_eq!(&buf, frame, "frame {i}");
                sent_direct += 1;
            }
            Egress::Consumed => {
                // The first packet to B waits for ARP: our request is A's (two frames
                // back), and B's reply (one frame back) releases exactly A's frame.
                assert_eq!(
                    link_outputs(&mut tap),
                    vec![recorded[i - 2].clone()],
                    "frame {i}"
                );
                let _ = tap.handle_link_frame(now, &recorded[i - 1]);
                assert_eq!(link_outputs(&mut tap), vec![frame.clone()], "frame {i}");
                sent_after_arp += 1;
            }
        }
    }
    // 255.255.255.255, 192.0.2.255, 224.0.0.251, 239.1.2.3, the echo without payload,
    // and the echo with the Record Route option.
    assert_eq!(sent_direct, 6);
    assert_eq!(sent_after_arp, 1, "the 1-byte UDP datagram to B");
}

fn is_igmp(frame: &[u8]) -> bool {
    frame[12..14] == [0x08, 0x00] && frame[14 + 9] == 2
}

/// The kernel behind the TUN joins `group`, as a socket listening to it makes it do:
/// tapemu forwards the IGMPv2 report (returned) and from then on takes the group's
/// traffic.
fn join_from_tun(tap: &mut Tap, now: Instant, src: [u8; 4], group: [u8; 4]) -> Vec<u8> {
    let report = IgmpType::MembershipReportV2(MembershipReportV2Type {
        group_address: GroupAddress::new(group),
    });
    let mut buf = vec![0u8; HEADROOM];
    PacketBuilder::ipv4(src, group, 1)
        .igmp(report)
        .write(&mut buf, &[])
        .expect("an IGMP report");
    assert_eq!(tap.handle_tun_packet(now, &mut buf), Egress::Send);
    buf
}

#[test]
fn received_frames_reach_the_tun_trimmed_and_tagged_frames_are_dropped() {
    let recorded = frames("ipv4-mixed.pcap");
    let now = Instant::now();
    let mut tap = host(B_MAC, [192, 0, 2, 20], now);
    // B's kernel joined 239.1.2.3 in the recording (frames 1-2, replayed below through
    // the TUN); 224.0.0.251 it did not, so an mDNS listener joins it here.
    let report = join_from_tun(&mut tap, now, [192, 0, 2, 20], [224, 0, 0, 251]);
    // A link that reflects our own frames: the report comes back and is dropped.
    assert_eq!(tap.handle_link_frame(now, &report), Ingress::Consumed);
    while tap.poll_transmit().is_some() {}
    let mut delivered = 0;
    for (i, frame) in recorded.iter().enumerate() {
        if src_mac(frame) == B_MAC && is_igmp(frame) {
            // B's own membership reports come from its kernel, through the TUN, and
            // leave exactly as it sent them.
            let mut buf = with_headroom(&frame[14..]);
            assert_eq!(tap.handle_tun_packet(now, &mut buf), Egress::Send);
            assert_eq!(&buf, frame, "frame {i}");
            continue;
        }
        let tagged = frame[12..14] == [0x81, 0x00];
        // Every frame as recorded, and padded to the Ethernet minimum as a NIC would.
        let mut padded = frame.clone();
        if padded.len() < 60 {
            padded.resize(60, 0);
        }
        for f in [frame, &padded] {
            let outcome = tap.handle_link_frame(now, f);
            let from_us = src_mac(f) == B_MAC;
            let for_us = f[0..6] == B_MAC || f[0] & 1 == 1;
            match outcome {
                Ingress::Deliver(range) => {
                    assert!(!tagged && !from_us && for_us && !is_arp(f), "frame {i}");
                    assert_eq!(&f[range], &frame[14..], "frame {i}: exactly the IP packet");
                    delivered += 1;
                }
                Ingress::Consumed => {
                    assert!(tagged || from_us || !for_us || is_arp(f), "frame {i}")
                }
            }
        }
        while tap.poll_transmit().is_some() {}
    }
    let stats = tap.stats();
    // 2 broadcast, 2 multicast, 1-byte UDP, 2 echo requests; each as recorded and padded.
    assert_eq!(delivered, 14);
    // The tagged broadcast ARP request, as recorded and padded; the other tagged frames
    // are unicast between other hosts' MACs and are dropped as not for us.
    assert_eq!(stats.link.drop_vlan, 2);
    assert_eq!(stats.link.drop_own_frame, 1);
    // B left 239.1.2.3 at the end (frames 18-19): its traffic is no longer taken.
    let not_for_us = stats.link.drop_not_for_us;
    assert_eq!(tap.handle_link_frame(now, &recorded[5]), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, not_for_us + 1);
    assert_eq!(tap.ipv4_groups(), &[Ipv4Addr::new(224, 0, 0, 251)]);
}
