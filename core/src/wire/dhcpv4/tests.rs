//! The DHCPv4 wire format: our frames, the UDP checks, and the option walker's bounds.

use super::*;
use dhcproto::v4::DhcpOption;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);

fn discover() -> Message {
    let mut msg = Message::new_with_id(
        0x1234_5678,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &OUR_MAC.0,
    );
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    msg
}

#[test]
fn emitted_frames_carry_the_message_behind_correct_headers() {
    let to = Addressing {
        src_mac: OUR_MAC,
        dst_mac: Some(MacAddr::BROADCAST),
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::BROADCAST,
    };
    let frame = emit_frame(&discover(), to).unwrap();
    assert_eq!(frame.len(), FRAME_OVERHEAD + BOOTP_MIN_LEN, "padded");
    assert_eq!(&frame[0..6], &[0xff; 6]);
    assert_eq!(&frame[6..12], &OUR_MAC.0);
    let sliced = SlicedPacket::from_ethernet(&frame).unwrap();
    let Some(NetSlice::Ipv4(ip)) = sliced.net else {
        panic!("no IPv4")
    };
    let header = ip.header().to_header();
    assert_eq!(header.header_checksum, header.calc_header_checksum());
    assert_eq!((header.time_to_live, header.protocol), (64, IpNumber::UDP));
    let Some(TransportSlice::Udp(udp)) = sliced.transport else {
        panic!("no UDP")
    };
    assert_eq!((udp.source_port(), udp.destination_port()), (68, 67));
    let msg = Message::decode(&mut Decoder::new(udp.payload())).unwrap();
    assert_eq!(msg.xid(), 0x1234_5678);
    assert_eq!(msg.chaddr(), &OUR_MAC.0);
    // Our own UDP check accepts it (the frame is a DHCP message to port 67, so look at
    // it as if the ports were swapped).
    let mut reply = frame.clone();
    reply[34..38].copy_from_slice(&[0, 67, 0, 68]);
    reply[40..42].fill(0);
    let ip = Ipv4HeaderSlice::from_slice(&reply[14..]).unwrap();
    let datagram = client_datagram(&ip, &reply[14..]).unwrap();
    assert!(datagram.valid && datagram.src_port == 67);

    // Without a destination MAC the Ethernet header is left for the router.
    let routed = emit_frame(
        &discover(),
        Addressing {
            dst_mac: None,
            src: Ipv4Addr::new(192, 0, 2, 100),
            dst: Ipv4Addr::new(192, 0, 2, 1),
            ..to
        },
    )
    .unwrap();
    assert_eq!(&routed[..ethernet::HEADER_LEN], &[0; ethernet::HEADER_LEN]);
    assert_eq!(&routed[ethernet::HEADER_LEN..][16..20], &[192, 0, 2, 1]);
}

/// A UDP datagram from port 67 to `dst_port` in an IPv4 packet.
fn udp_packet(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::new();
    etherparse::PacketBuilder::ipv4([192, 0, 2, 1], [255, 255, 255, 255], 64)
        .udp(67, dst_port)
        .write(&mut packet, payload)
        .unwrap();
    packet
}

#[test]
fn client_datagrams_are_found_and_checked() {
    let packet = udp_packet(68, b"hello");
    let ip = Ipv4HeaderSlice::from_slice(&packet).unwrap();
    let datagram = client_datagram(&ip, &packet).unwrap();
    assert!(datagram.valid);
    assert_eq!(datagram.payload, b"hello");
    assert_eq!(datagram.src, Ipv4Addr::new(192, 0, 2, 1));

    let other_port = udp_packet(69, b"hello");
    let ip = Ipv4HeaderSlice::from_slice(&other_port).unwrap();
    assert!(client_datagram(&ip, &other_port).is_none());

    let mut bad_checksum = packet.clone();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 1;
    let ip = Ipv4HeaderSlice::from_slice(&bad_checksum).unwrap();
    assert!(!client_datagram(&ip, &bad_checksum).unwrap().valid);

    // No checksum at all is allowed over IPv4.
    let mut no_checksum = bad_checksum.clone();
    no_checksum[26..28].fill(0);
    let ip = Ipv4HeaderSlice::from_slice(&no_checksum).unwrap();
    assert!(client_datagram(&ip, &no_checksum).unwrap().valid);

    // A UDP length beyond the packet, below the header, or 0.
    for udp_len in [100u16, 7, 0] {
        let mut bad_len = no_checksum.clone();
        bad_len[24..26].copy_from_slice(&udp_len.to_be_bytes());
        let ip = Ipv4HeaderSlice::from_slice(&bad_len).unwrap();
        let datagram = client_datagram(&ip, &bad_len).unwrap();
        assert!(!datagram.valid && datagram.payload.is_empty(), "{udp_len}");
    }
}

#[test]
fn classless_routes_past_the_cap_are_left_out() {
    let mut option = Vec::new();
    for i in 0..=MAX_ROUTES as u8 {
        option.extend_from_slice(&[24, 198, 51, i, 0, 0, 0, 0]);
    }
    let (routes, complete) = decode_classless_routes(&option).unwrap();
    assert_eq!((routes.len(), complete), (MAX_ROUTES, false));
    assert_eq!(routes[0].router, None, "0.0.0.0 is on-link");
    let (routes, complete) = decode_classless_routes(&option[..8 * MAX_ROUTES]).unwrap();
    assert_eq!((routes.len(), complete), (MAX_ROUTES, true));
}

#[test]
fn search_list_compression_cannot_amplify() {
    // 120 one-byte labels, then a pointer back to the start: each pass adds 240
    // characters, so the name passes 253 on the second pass and is refused.
    let mut option = Vec::new();
    for _ in 0..120 {
        option.extend_from_slice(&[1, b'a']);
    }
    option.extend_from_slice(&[0xc0, 0x00]);
    assert_eq!(decode_domain_list(&option), None);
    // Many short names each pointing back at a long one: the list is capped.
    let mut option = vec![60];
    option.extend_from_slice(&[b'b'; 60]);
    option.push(0);
    for _ in 0..500 {
        option.extend_from_slice(&[0xc0, 0x00]);
    }
    let names = decode_domain_list(&option).unwrap();
    assert_eq!(names.len(), MAX_SEARCH_DOMAINS);
    // A normal compressed list still decodes.
    let list = [
        3, b'l', b'a', b'b', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 4, b'c', b'o', b'r',
        b'p', 0xc0, 4,
    ];
    assert_eq!(
        decode_domain_list(&list).unwrap(),
        vec!["lab.example".to_string(), "corp.example".to_string()]
    );
}

/// A search domain with a NUL, a dot, a space or a non-ASCII byte inside a label is
/// malformed (the whole option is left out), as DNSSL's are.
#[test]
fn search_list_labels_are_host_name_characters() {
    assert_eq!(
        decode_domain_list(b"\x03lab\x07example\x00\x04a-_9\x00").unwrap(),
        ["lab.example", "a-_9"]
    );
    for bad in [
        &b"\x03lab\x07examr\x00\x00\x00"[..],
        b"\x03l.b\x00",
        b"\x03l b\x00",
        b"\x02\xc3\xa9\x00",
    ] {
        assert_eq!(decode_domain_list(bad), None, "{bad:?}");
    }
}
