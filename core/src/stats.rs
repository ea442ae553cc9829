//! Counters: one per outcome and one per drop reason, plain `u64` increments on the
//! hot path.

/// Declares [`Stats`] with one documented `u64` field per counter and a way to list them.
macro_rules! counters {
    ($( $(#[doc = $doc:literal])+ $name:ident, )+) => {
        /// What a [`crate::Tap`] has done and dropped since it was created.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $( $(#[doc = $doc])+ pub $name: u64, )+
        }

        impl Stats {
            /// Every counter as `(name, value)`, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name), )+]
            }

            /// Sum of all `drop_*` counters.
            pub fn drops_total(&self) -> u64 {
                self.fields()
                    .iter()
                    .filter(|(name, _)| name.starts_with("drop_"))
                    .map(|(_, v)| v)
                    .sum()
            }
        }
    };
}

counters! {
    /// IP packets taken from the TUN.
    tun_packets_in,
    /// Ethernet frames handed to the link (data, ARP, NDP, DHCP).
    link_frames_out,
    /// Ethernet frames taken from the link.
    link_frames_in,
    /// IP packets handed to the TUN (delivered data and ICMP errors).
    tun_packets_out,
    /// ARP requests received.
    arp_requests_in,
    /// ARP replies received.
    arp_replies_in,
    /// ARP requests sent (resolution, probes, announcements).
    arp_requests_out,
    /// ARP replies sent for our address.
    arp_replies_out,
    /// ICMP errors handed to the TUN (unreachable, fragmentation needed).
    icmp_errors_to_tun,
    /// Packets queued while their neighbour resolved.
    neighbour_queued,
    /// Neighbours resolved.
    neighbour_resolved,
    /// Neighbour resolutions that failed.
    neighbour_failed,
    /// Neighbour entries evicted to make room.
    neighbour_evictions,
    /// Another host claimed our address.
    address_conflicts,
    /// DHCP messages sent (DISCOVER, REQUEST, DECLINE, RELEASE).
    dhcp_messages_out,
    /// DHCP replies accepted (OFFER, ACK, NAK for our transaction in a state that wants them).
    dhcp_messages_in,
    /// DHCPDECLINEs sent because the probed address was in use.
    dhcp_declines,
    /// DHCP options that were malformed and ignored (the rest of the reply was used).
    dhcp_options_ignored,
    /// TUN packets shorter than an IP header or with a bad header.
    drop_tun_malformed,
    /// TUN packets of an IP version we do not route.
    drop_tun_unsupported_version,
    /// TUN packets sent while we have no address.
    drop_tun_no_address,
    /// TUN packets with no route (an ICMP network-unreachable went back).
    drop_no_route,
    /// TUN packets over the MTU (with DF an ICMP fragmentation-needed went back).
    drop_too_big,
    /// Packets dropped by neighbour queue limits.
    drop_neighbour_queue_full,
    /// Packets dropped because the neighbour table was full of unresolved entries.
    drop_neighbour_table_full,
    /// Packets dropped because their neighbour never answered.
    drop_neighbour_unreachable,
    /// Frames shorter than an Ethernet header.
    drop_link_truncated,
    /// Frames for another host's MAC, or a multicast group we do not take.
    drop_link_not_for_us,
    /// Frames with our own source MAC (reflected back by the link).
    drop_link_own_frame,
    /// 802.1Q / 802.1ad tagged frames.
    drop_link_vlan,
    /// Frames of an EtherType we do not handle.
    drop_link_unknown_ether_type,
    /// IPv4 frames with a malformed, truncated or corrupt header.
    drop_link_ipv4_malformed,
    /// ARP frames that are malformed or not Ethernet/IPv4.
    drop_link_arp_malformed,
    /// Neighbour solicitations received (valid ones).
    ndp_ns_in,
    /// Neighbour solicitations sent (resolution, probes, DAD).
    ndp_ns_out,
    /// Neighbour advertisements received (valid ones).
    ndp_na_in,
    /// Neighbour advertisements sent for our addresses.
    ndp_na_out,
    /// Router solicitations sent.
    ndp_rs_out,
    /// Router advertisements received and processed.
    ndp_ra_in,
    /// Valid NDP messages that need nothing from a host (RS, redirects, NS/NA for others).
    ndp_ignored,
    /// IPv6 packets queued while their neighbour resolved.
    ndp_neighbour_queued,
    /// IPv6 neighbours resolved.
    ndp_neighbour_resolved,
    /// IPv6 neighbour resolutions that failed.
    ndp_neighbour_failed,
    /// IPv6 neighbour entries evicted to make room.
    ndp_neighbour_evictions,
    /// Duplicate address detections started.
    ndp_dad_started,
    /// Duplicate address detections passed (the address became usable).
    ndp_dad_succeeded,
    /// Duplicate address detections failed: another host has the address.
    ndp_dad_conflicts,
    /// NAs sent to defend a usable address against another host's DAD.
    ndp_dad_defended,
    /// MLDv2 reports sent.
    mld_reports_out,
    /// MLD queries answered.
    mld_queries_in,
    /// ICMPv6 errors handed to the TUN (unreachable, packet too big).
    icmpv6_errors_to_tun,
    /// DHCPv6 Information-Requests sent.
    dhcpv6_requests_out,
    /// DHCPv6 Replies accepted.
    dhcpv6_replies_in,
    /// NDP messages with a hop limit other than 255 (MLD: other than 1).
    drop_ndp_bad_hop_limit,
    /// NDP and MLD messages with a wrong ICMPv6 checksum.
    drop_ndp_bad_checksum,
    /// NDP and MLD messages too short, with a non-zero code or malformed options.
    drop_ndp_malformed,
    /// NDP messages breaking a validity rule (multicast target, bad source, ...).
    drop_ndp_invalid,
    /// RA contents dropped because a table (routers, prefixes, addresses, DNS) was full.
    drop_ndp_table_limit,
    /// Multicast groups joined on the TUN side beyond `Ipv6Config::max_groups` (their
    /// traffic is not delivered).
    mld_groups_not_learnt,
    /// IPv6 packets dropped by NDP neighbour queue limits.
    drop_ndp_queue_full,
    /// IPv6 packets dropped because the NDP table was full of unresolved entries.
    drop_ndp_table_full,
    /// IPv6 packets dropped because their neighbour never answered NDP.
    drop_ndp_neighbour_unreachable,
    /// IPv6 frames with a malformed or truncated header.
    drop_link_ipv6_malformed,
    /// IPv6 frames to an address or group that is not ours (or still tentative).
    drop_link_ipv6_not_for_us,
    /// IPv6 frames while IPv6 is disabled.
    drop_link_ipv6_disabled,
    /// IPv6 TUN packets with a malformed header or a length that does not match.
    drop_tun_ipv6_malformed,
    /// IPv6 TUN packets while IPv6 is disabled.
    drop_tun_ipv6_disabled,
    /// IPv6 TUN packets with no route (an ICMPv6 no-route went back).
    drop_tun_ipv6_no_route,
    /// IPv6 TUN packets over the link MTU (an ICMPv6 packet too big went back).
    drop_tun_ipv6_too_big,
    /// NDP messages (RS, RA, NS, NA, redirect) from the TUN: tapemu speaks NDP itself.
    drop_tun_ipv6_ndp,
    /// DHCPv6 messages to our client port that are malformed, unexpected or for another
    /// transaction.
    drop_dhcpv6_invalid,
    /// DHCP replies that do not parse (truncated, bad cookie, no message type, bad UDP checksum).
    drop_dhcp_malformed,
    /// DHCP replies for another client: wrong op, xid or chaddr.
    drop_dhcp_not_ours,
    /// DHCP replies of a type the current state does not expect.
    drop_dhcp_unexpected,
    /// DHCP offers or ACKs that cannot be used: no yiaddr, no server identifier, no lease
    /// time, a bad subnet mask.
    drop_dhcp_invalid,
    /// Outputs dropped because the caller did not drain `poll_transmit` in time.
    drop_transmit_queue_full,
    /// Events dropped because the caller did not drain `poll_event` in time.
    drop_event_queue_full,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_list_every_counter_and_drops_sum_only_drops() {
        let stats = Stats {
            drop_no_route: 2,
            drop_link_vlan: 3,
            link_frames_in: 10,
            ..Stats::default()
        };
        assert_eq!(stats.drops_total(), 5);
        let names: Vec<_> = stats.fields().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"tun_packets_in"));
        assert!(names.contains(&"drop_event_queue_full"));
    }
}
