//! What a lease is built from: the options of an ACK, malformed ones, and the limits.

use super::*;

#[test]
fn classless_static_routes_replace_the_router_option() {
    #[rustfmt::skip]
    let options = [
        3, 4, 192, 0, 2, 1, // router: ignored
        1, 4, 255, 255, 255, 0,
        121, 20,
        0, 192, 0, 2, 254,                // default via 192.0.2.254
        24, 198, 51, 100, 192, 0, 2, 253, // 198.51.100.0/24 via 192.0.2.253
        16, 203, 0, 0, 0, 0, 0,           // 203.0.0.0/16 on-link
    ];
    let (tap, lease) = lease_from_raw(&options);
    assert_eq!(lease.gateway, Some(ip("192.0.2.254")));
    assert_eq!(
        lease.routes,
        vec![
            Ipv4Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(ip("192.0.2.254"))
            },
            Ipv4Route {
                destination: ip("198.51.100.0"),
                prefix_len: 24,
                gateway: Some(ip("192.0.2.253"))
            },
            Ipv4Route {
                destination: ip("203.0.0.0"),
                prefix_len: 16,
                gateway: None
            },
        ]
    );
    let iface = tap.ipv4().unwrap();
    assert_eq!(
        iface.next_hop(ip("8.8.8.8")),
        NextHop::Neighbour(ip("192.0.2.254"))
    );
    assert_eq!(
        iface.next_hop(ip("198.51.100.5")),
        NextHop::Neighbour(ip("192.0.2.253"))
    );
    assert_eq!(
        iface.next_hop(ip("203.0.7.7")),
        NextHop::Neighbour(ip("203.0.7.7"))
    );
}

#[test]
fn split_options_search_list_overload_and_string_quirks_are_decoded() {
    // "example.test", "lab." + a pointer back to "example.test".
    let search = b"\x07example\x04test\x00\x03lab\xc0\x00";
    // Split in two (RFC 3396), the name cut in the middle.
    let mut options = vec![119, 9];
    options.extend_from_slice(&search[..9]);
    options.extend_from_slice(&[119, 11]);
    options.extend_from_slice(&search[9..]);
    #[rustfmt::skip]
    options.extend_from_slice(&[
        15, 5, b'a', b'.', b'b', 0, 0, // trailing NULs dropped
        26, 2, 0x05, 0xdc,
        28, 4, 192, 0, 2, 255,
        58, 4, 0, 0, 0, 100,
        59, 4, 0, 0, 0, 200,
    ]);
    let (_, lease) = lease_from_raw(&options);
    assert_eq!(
        lease.search,
        vec!["example.test".to_owned(), "lab.example.test".to_owned()]
    );
    assert_eq!(lease.domain.as_deref(), Some("a.b"));
    assert_eq!(lease.mtu, Some(1500));
    assert_eq!(lease.broadcast, Some(ip("192.0.2.255")));
    assert_eq!((lease.t1, lease.t2), (Some(secs(100.0)), Some(secs(200.0))));
    assert_eq!(lease.prefix_len, 24, "classful without a mask");
}

#[test]
fn interface_mtu_option_lowers_the_ipv4_mtu_never_raises_it() {
    let (mut tap, lease) = lease_from_raw(&[26, 2, 0x05, 0x78]); // 1400
    assert_eq!(lease.mtu, Some(1400));
    assert_eq!((tap.mtu(), tap.ipv4_mtu()), (1500, 1400));
    // A 1401-byte packet with DF gets fragmentation-needed carrying 1400.
    let mut frame = vec![0u8; crate::HEADROOM];
    etherparse::PacketBuilder::ipv4(lease.address.octets(), [192, 0, 2, 255], 64)
        .udp(1, 2)
        .write(&mut frame, &[0u8; 1401 - 28])
        .unwrap();
    assert_eq!(
        tap.handle_tun_packet(Instant::now(), &mut frame),
        crate::Egress::Consumed
    );
    let icmp = drain(&mut tap)
        .into_iter()
        .find_map(|t| match t {
            Transmit::Tun(p) => Some(p),
            Transmit::Link(_) => None,
        })
        .expect("an ICMP error for the TUN");
    assert_eq!((icmp[20], icmp[21]), (3, 4));
    assert_eq!(&icmp[26..28], &1400u16.to_be_bytes());
    let (tap, _) = lease_from_raw(&[26, 2, 0x23, 0x28]); // 9000: the link stays at 1500
    assert_eq!(tap.ipv4_mtu(), 1500);
}

#[test]
fn malformed_options_are_ignored_and_counted() {
    #[rustfmt::skip]
    let options = [
        6, 3, 1, 2, 3,          // DNS not a multiple of 4
        26, 2, 0, 10,           // MTU under 68
        121, 3, 33, 1, 2,       // width over 32
        119, 2, 0xc0, 0,        // pointer loop
        15, 2, 0xff, 0xfe,      // not UTF-8
        58, 3, 0, 0, 1,         // T1 of 3 bytes
    ];
    let (tap, lease) = lease_from_raw(&options);
    assert!(lease.dns.is_empty() && lease.search.is_empty() && lease.routes.is_empty());
    assert_eq!((lease.mtu, lease.domain.as_deref()), (None, None));
    assert_eq!(lease.t1, Some(secs(1800.0)));
    assert_eq!(tap.stats().dhcp.options_ignored, 6);
}

#[test]
fn a_non_contiguous_subnet_mask_or_missing_lease_time_makes_the_ack_unusable() {
    let tap = tap_after_raw_ack(&[1, 4, 255, 0, 255, 0]);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Requesting));
    assert_eq!(tap.stats().dhcp.drop_invalid, 1);
}

#[test]
fn inconsistent_t1_t2_fall_back_to_the_defaults() {
    let (_, lease) = lease_from_raw(&[58, 4, 0, 0, 0x10, 0, 59, 4, 0, 0, 0x20, 0]);
    assert_eq!(
        (lease.t1, lease.t2),
        (Some(secs(1800.0)), Some(secs(3150.0)))
    );
}

#[test]
fn routes_and_dns_servers_are_capped_and_the_excess_counted() {
    use crate::wire::dhcpv4::{MAX_DNS, MAX_ROUTES};
    // 40 routes (320 bytes, split over two options as RFC 3396 allows) and 12 servers.
    let mut routes = Vec::new();
    for i in 0..40u8 {
        routes.extend_from_slice(&[24, 198, 51, i, 192, 0, 2, 1]);
    }
    let mut options = vec![121, 160];
    options.extend_from_slice(&routes[..160]);
    options.extend_from_slice(&[121, 160]);
    options.extend_from_slice(&routes[160..]);
    options.extend_from_slice(&[6, 48]);
    for i in 0..12u8 {
        options.extend_from_slice(&[192, 0, 2, 50 + i]);
    }
    let (tap, lease) = lease_from_raw(&options);
    assert_eq!((lease.routes.len(), lease.dns.len()), (MAX_ROUTES, MAX_DNS));
    assert_eq!(lease.routes[31].destination, ip("198.51.31.0"));
    assert_eq!(lease.dns[7], ip("192.0.2.57"));
    assert_eq!(tap.stats().dhcp.options_ignored, 2);
}
