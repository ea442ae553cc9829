//! A TUN with virtio-net headers: super-segments read from it go out as MTU-sized
//! frames, and in-order TCP segments from the link come back coalesced.

use super::*;
use crate::offload::{GsoType, VirtioNetHdr};

/// An IPv4/TCP packet from `src` to `dst` with `payload`, sequence number `seq` and
/// ACK|`flags`, DF set, valid checksums.
fn tcp_packet(src: [u8; 4], dst: [u8; 4], seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::new();
    let builder = etherparse::PacketBuilder::ipv4(src, dst, 64).tcp(40000, 80, seq, 1024);
    let builder = builder.ack(7);
    let builder = if flags & 0x08 != 0 {
        builder.psh()
    } else {
        builder
    };
    builder.write(&mut packet, payload).expect("build");
    packet
}

/// The TCP payload and sequence number of an IPv4 packet, its checksums checked.
fn tcp_payload(packet: &[u8]) -> (u32, Vec<u8>) {
    let sliced = etherparse::SlicedPacket::from_ip(packet).expect("IP packet");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
        panic!("not IPv4");
    };
    let Some(etherparse::TransportSlice::Tcp(tcp)) = &sliced.transport else {
        panic!("not TCP");
    };
    let header = ip.header().to_header();
    assert_eq!(header.calc_header_checksum(), header.header_checksum);
    let sum = tcp
        .to_header()
        .calc_checksum_ipv4(&header, tcp.payload())
        .expect("checksum");
    assert_eq!(sum, tcp.checksum(), "TCP checksum");
    (tcp.sequence_number(), tcp.payload().to_vec())
}

/// The folded, uncomplemented sum of the pseudo-header of an IPv4/TCP packet: what the
/// kernel leaves in the checksum field of a packet it asks to be completed.
fn pseudo_header_sum(packet: &[u8]) -> u16 {
    let tcp_len = packet.len() - 20;
    let words = [
        &packet[12..20],
        &[0, 6],
        &(tcp_len as u16).to_be_bytes()[..],
    ]
    .concat();
    let mut sum: u32 = words
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn super_segment_from_the_tun_goes_out_as_mss_sized_frames() {
    let (link, mut peer) = channel(64);
    let (tun_ours, tun_kernel) = seqpacket_pair();
    let config = DriverConfig {
        tun_vnet_hdr: true,
        ..config()
    };
    let (handle, _events) = Driver::start(config, link, Some(tun_ours))
        .await
        .expect("start");
    // 4,000 bytes in segments of 1,000 to the broadcast address (no ARP needed), the
    // transport checksum left partial as the kernel leaves it.
    let data = pattern(4000);
    let packet = tcp_packet([192, 0, 2, 123], [255, 255, 255, 255], 1000, 0x08, &data);
    let hdr = VirtioNetHdr {
        needs_csum: true,
        gso_type: GsoType::TcpV4,
        hdr_len: 40,
        gso_size: 1000,
        csum_start: 20,
        csum_offset: 16,
        ..VirtioNetHdr::NONE
    };
    write_packet(&tun_kernel, &[&hdr.to_bytes()[..], &packet].concat()).expect("write");
    let mut got = Vec::new();
    for i in 0..4u32 {
        let frame = next_frame(&mut peer, |f| f[12..14] == [8, 0]).await;
        assert!(frame.len() <= 14 + 1040, "{} bytes", frame.len());
        let (seq, payload) = tcp_payload(&frame[14..]);
        assert_eq!(seq, 1000 + i * 1000);
        got.extend_from_slice(&payload);
    }
    assert_eq!(got, data);

    // A packet that only asks for its checksum to be completed.
    let small = tcp_packet([192, 0, 2, 123], [255, 255, 255, 255], 9, 0, b"hello");
    let mut partial = small.clone();
    // As the kernel leaves it: the pseudo-header sum in the checksum field.
    let pseudo = pseudo_header_sum(&partial);
    partial[36..38].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VirtioNetHdr {
        needs_csum: true,
        csum_start: 20,
        csum_offset: 16,
        ..VirtioNetHdr::NONE
    };
    write_packet(&tun_kernel, &[&hdr.to_bytes()[..], &partial].concat()).expect("write");
    let frame = next_frame(&mut peer, |f| f[12..14] == [8, 0]).await;
    assert_eq!(&frame[14..], &small[..]);

    // A header that does not match its packet is dropped and counted.
    let bad = VirtioNetHdr {
        gso_type: GsoType::TcpV6,
        gso_size: 1000,
        ..VirtioNetHdr::NONE
    };
    write_packet(&tun_kernel, &[&bad.to_bytes()[..], &packet].concat()).expect("write");
    let stats = wait_for_stats(&handle, false, |s| s.tun_dropped_in == 1).await;
    assert_eq!(stats.tun_super_segments_in, 1);
    handle.stop().await;
}

#[tokio::test]
async fn tcp_segments_from_the_link_reach_the_tun_coalesced() {
    let (link, peer) = channel(64);
    let (tun_ours, tun_kernel) = seqpacket_pair();
    let config = DriverConfig {
        tun_vnet_hdr: true,
        ..config()
    };
    let (handle, _events) = Driver::start(config, link, Some(tun_ours))
        .await
        .expect("start");
    let data = pattern(4000);
    let mut frames = Vec::new();
    for (i, chunk) in data.chunks(1000).enumerate() {
        let seq = 5000 + 1000 * i as u32;
        let packet = tcp_packet([192, 0, 2, 1], [192, 0, 2, 123], seq, 0, chunk);
        let mut frame = Vec::new();
        etherparse::Ethernet2Header {
            source: PEER_MAC.0,
            destination: OUR_MAC.0,
            ether_type: etherparse::EtherType::IPV4,
        }
        .write(&mut frame)
        .expect("ethernet");
        frame.extend_from_slice(&packet);
        frames.push(frame);
    }
    // A UDP packet of another flow passes through as it comes (it may overtake the
    // pending TCP flow); a FIN of the TCP flow cannot join it and follows it.
    let mut udp = Vec::new();
    etherparse::PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 123], 64)
        .udp(7, 7)
        .write(&mut udp, b"after")
        .expect("build");
    frames.push(udp.clone());
    let mut fin = Vec::new();
    etherparse::PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 123], 64)
        .tcp(40000, 80, 9000, 1024)
        .ack(7)
        .fin()
        .write(&mut fin, &[])
        .expect("build");
    frames.push(fin.clone());
    // Queued without yielding: the driver takes them in one batch.
    for frame in frames {
        peer.to_driver.send(frame).await.expect("send");
    }
    let kernel = PacketFd::new(tun_kernel).expect("register");
    let mut bufs = vec![vec![0u8; 65536]; 4];
    let mut lens = [0usize; 4];
    let mut reads = Vec::new();
    while reads.len() < 3 {
        let n = timeout(WAIT, kernel.read_batch(&mut bufs, 0, &mut lens))
            .await
            .expect("packets in time")
            .expect("read");
        reads.extend((0..n).map(|i| bufs[i][..lens[i]].to_vec()));
    }
    let udp_at = reads
        .iter()
        .position(|r| r[VirtioNetHdr::LEN..] == udp[14..])
        .expect("the UDP packet");
    let udp_read = reads.remove(udp_at);
    let hdr = VirtioNetHdr::parse(&udp_read).expect("header");
    assert_eq!(hdr, VirtioNetHdr::NONE);
    let hdr = VirtioNetHdr::parse(&reads[0]).expect("header");
    assert_eq!(hdr.gso_type, GsoType::TcpV4);
    assert_eq!(hdr.gso_size, 1000);
    assert!(hdr.needs_csum);
    let sup = &reads[0][VirtioNetHdr::LEN..];
    assert_eq!(&sup[40..], &data[..], "one super-segment of the four");
    assert_eq!(
        &reads[1][VirtioNetHdr::LEN..],
        &fin[14..],
        "the FIN after it"
    );
    let stats = handle.stats().await.expect("stats");
    assert_eq!(stats.tun_super_segments_out, 1);
    handle.stop().await;
}
