//! MLD: our reports and answers, and the groups learnt from the TUN side.

use super::*;

#[test]
fn mld_general_query_is_answered_with_our_groups() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let mut q = vec![130, 0, 0, 0, 0x03, 0xe8, 0, 0];
    q.extend_from_slice(&[0; 16]);
    q.extend_from_slice(&[0; 4]);
    let query = ndp::icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
    let now = t0 + Duration::from_secs(5);
    let _ = tap.handle_link_frame(
        now,
        &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &query),
    );
    let out = run_until(&mut tap, now + Duration::from_secs(1));
    let reports = of_type(&out, 143);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].src, ll());
    assert_eq!(reports[0].msg[8], record_type::MODE_IS_EXCLUDE);
    assert_eq!(ipv6_at(&reports[0].msg, 12), Some(solicited_node(ll())));
}

#[test]
fn groups_the_tun_joins_are_delivered_until_it_leaves() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    let mdns = a("ff02::fb");
    let frame = udp6_to_group(mdns);
    assert_eq!(frame[..6], [0x33, 0x33, 0, 0, 0, 0xfb]);
    // Not joined yet: dropped and counted, as any group we do not take.
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 1);
    // The kernel joins ff02::fb (MLDv2 CHANGE_TO_EXCLUDE {}): the report still goes
    // out, and the group's traffic is now delivered.
    let join = mld_packet(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_EXCLUDE, mdns)],
    );
    mld_from_tun(&mut tap, t0, &join);
    assert_eq!(
        tap.handle_link_frame(t0, &frame),
        Ingress::Deliver(14..frame.len())
    );
    // A group never joined (SSDP ff02::c) is still dropped and counted.
    let ssdp = udp6_to_group(a("ff02::c"));
    assert_eq!(tap.handle_link_frame(t0, &ssdp), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 2);
    // Same MAC (33:33:00:00:00:fb), another group: dropped at the IPv6 layer.
    let other = udp6_to_group(a("ff05::fb"));
    assert_eq!(tap.handle_link_frame(t0, &other), Ingress::Consumed);
    assert_eq!(tap.stats().ipv6.drop_link_not_for_us, 1);
    // A general query is answered for the kernel's group too.
    let mut q = vec![130, 0, 0, 0, 0x03, 0xe8, 0, 0];
    q.extend_from_slice(&[0; 20]);
    let query = ndp::icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
    let now = t0 + Duration::from_secs(5);
    let _ = tap.handle_link_frame(
        now,
        &frame_to(MacAddr::ipv6_multicast(ALL_NODES), ROUTER_MAC, &query),
    );
    let out = run_until(&mut tap, now + Duration::from_secs(1));
    let reports = of_type(&out, 143);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].msg[6..8], [0, 2]);
    assert_eq!(ipv6_at(&reports[0].msg, 12), Some(solicited_node(ll())));
    assert_eq!(ipv6_at(&reports[0].msg, 32), Some(mdns));
    // The kernel leaves (CHANGE_TO_INCLUDE {}): dropped and counted again.
    let leave = mld_packet(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_INCLUDE, mdns)],
    );
    mld_from_tun(&mut tap, now, &leave);
    assert_eq!(tap.handle_link_frame(now, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 3);
    // MLDv1 report and done work the same way.
    let site = a("ff05::1:3");
    mld_from_tun(&mut tap, now, &mldv1(131, site));
    let frame = udp6_to_group(site);
    assert_eq!(
        tap.handle_link_frame(now, &frame),
        Ingress::Deliver(14..frame.len())
    );
    mld_from_tun(&mut tap, now, &mldv1(132, site));
    assert_eq!(tap.handle_link_frame(now, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 4);
}

#[test]
fn tun_groups_leave_ndp_and_mld_to_us() {
    let t0 = Instant::now();
    let mut tap = ready_tap(t0);
    // The kernel's solicited-node and all-nodes groups and a bad checksum teach nothing.
    let report = mld_packet(
        Ipv6Addr::UNSPECIFIED,
        &[
            (record_type::CHANGE_TO_EXCLUDE, a("ff02::1:ff00:99")),
            (record_type::CHANGE_TO_EXCLUDE, ALL_NODES),
        ],
    );
    mld_from_tun(&mut tap, t0, &report);
    let mut bad = mld_packet(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::fb"))],
    );
    bad[50] ^= 1;
    mld_from_tun(&mut tap, t0, &bad);
    let ns = ns_packet(
        a("fe80::a"),
        a("ff02::1:ff00:99"),
        a("fe80::99"),
        Some(PEER_MAC),
        None,
    );
    let r = tap.handle_link_frame(
        t0,
        &frame_to(MacAddr([0x33, 0x33, 0xff, 0, 0, 0x99]), PEER_MAC, &ns),
    );
    assert_eq!(r, Ingress::Consumed);
    let frame = udp6_to_group(a("ff02::fb"));
    assert_eq!(tap.handle_link_frame(t0, &frame), Ingress::Consumed);
    assert_eq!(tap.stats().link.drop_not_for_us, 2);
    // In a joined group, MLD from the link is still ours, never the TUN's.
    let join = mld_packet(
        Ipv6Addr::UNSPECIFIED,
        &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::fb"))],
    );
    mld_from_tun(&mut tap, t0, &join);
    let peer_report = ndp::icmpv6_packet(a("fe80::a"), a("ff02::fb"), 1, true, {
        let mut m = vec![131, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&a("ff02::fb").octets());
        m
    });
    let r = tap.handle_link_frame(
        t0,
        &frame_to(
            MacAddr::ipv6_multicast(a("ff02::fb")),
            PEER_MAC,
            &peer_report,
        ),
    );
    assert_eq!(r, Ingress::Consumed);
    assert_eq!(tap.stats().ndp.ignored, 1);
}
