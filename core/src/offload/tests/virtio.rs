use super::super::{GsoType, OffloadError, VirtioNetHdr};

#[test]
fn header_round_trips_through_its_wire_bytes() {
    let hdr = VirtioNetHdr {
        needs_csum: true,
        data_valid: true,
        gso_type: GsoType::TcpV6,
        ecn: true,
        hdr_len: 86,
        gso_size: 1428,
        csum_start: 40,
        csum_offset: 16,
    };
    let bytes = hdr.to_bytes();
    assert_eq!(bytes[0], 0x03);
    assert_eq!(bytes[1], 0x84);
    assert_eq!(bytes[4..6], 1428u16.to_ne_bytes());
    assert_eq!(VirtioNetHdr::parse(&bytes), Ok(hdr));

    let mut buf = [0xaa; 12];
    assert!(hdr.emit(&mut buf));
    assert_eq!(buf[..10], bytes);
    assert_eq!(buf[10..], [0xaa, 0xaa]);
    assert!(!hdr.emit(&mut buf[..9]));
}

#[test]
fn every_gso_type_handled_parses_and_others_are_refused() {
    for t in [
        GsoType::None,
        GsoType::TcpV4,
        GsoType::TcpV6,
        GsoType::UdpL4,
    ] {
        let bytes = VirtioNetHdr {
            gso_type: t,
            ..VirtioNetHdr::NONE
        }
        .to_bytes();
        assert_eq!(VirtioNetHdr::parse(&bytes).unwrap().gso_type, t);
    }
    let mut ufo = VirtioNetHdr::NONE.to_bytes();
    ufo[1] = 3;
    assert_eq!(
        VirtioNetHdr::parse(&ufo),
        Err(OffloadError::UnsupportedGsoType(3))
    );
    assert_eq!(
        VirtioNetHdr::parse(&[0; 9]),
        Err(OffloadError::TruncatedHeader)
    );
    assert_eq!(VirtioNetHdr::NONE.to_bytes(), [0; 10]);
}

#[test]
fn unknown_flag_bits_are_ignored() {
    let mut bytes = VirtioNetHdr::NONE.to_bytes();
    bytes[0] = 0x04; // VIRTIO_NET_HDR_F_RSC_INFO
    assert_eq!(VirtioNetHdr::parse(&bytes), Ok(VirtioNetHdr::NONE));
}
