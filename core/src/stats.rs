//! Counters: one per outcome and one per drop reason, plain `u64` increments on the
//! hot path, grouped per protocol ([`Stats::link`], [`Stats::arp`], [`Stats::dhcp`] …).
//! Each group marks its drop counters as such: [`Stats::drops_total`] adds exactly
//! those, and [`Stats::fields`] names every counter `group.name`.

/// Declares one group of counters: `counts` are outcomes, `drops` are things refused.
macro_rules! counter_group {
    (
        $(#[doc = $gdoc:literal])+
        $group:ident {
            counts { $( $(#[doc = $doc:literal])+ $name:ident, )* }
            drops { $( $(#[doc = $ddoc:literal])+ $drop:ident, )* }
        }
    ) => {
        $(#[doc = $gdoc])+
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $group {
            $( $(#[doc = $doc])+ pub $name: u64, )*
            $( $(#[doc = $ddoc])+ pub $drop: u64, )*
        }

        impl $group {
            /// Every counter of the group as `(name, value)`, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name), )* $( (stringify!($drop), self.$drop), )*]
            }

            /// The sum of the group's drop counters.
            pub fn drops(&self) -> u64 {
                0 $( + self.$drop )*
            }
        }
    };
}

counter_group! {
    /// Frames crossing the link, and those refused before any protocol saw them.
    LinkStats {
        counts {
            /// Ethernet frames handed to the link (data, ARP, NDP, DHCP).
            frames_out,
            /// Ethernet frames taken from the link.
            frames_in,
        }
        drops {
            /// Frames shorter than an Ethernet header.
            drop_truncated,
            /// Frames for another host's MAC, or a multicast group we do not take.
            drop_not_for_us,
            /// Frames with our own source MAC (reflected back by the link).
            drop_own_frame,
            /// 802.1Q / 802.1ad tagged frames.
            drop_vlan,
            /// Frames of an EtherType we do not handle.
            drop_unknown_ether_type,
        }
    }
}

counter_group! {
    /// Packets crossing the TUN, and those refused before any protocol saw them.
    TunStats {
        counts {
            /// IP packets taken from the TUN.
            packets_in,
            /// IP packets handed to the TUN (delivered data and ICMP errors).
            packets_out,
        }
        drops {
            /// TUN packets shorter than an IP header or with a bad header.
            drop_malformed,
            /// TUN packets of an IP version we do not route.
            drop_unsupported_version,
        }
    }
}

counter_group! {
    /// IPv4 routing, errors and our address.
    Ipv4Stats {
        counts {
            /// ICMP errors handed to the TUN (unreachable, fragmentation needed).
            icmp_errors_to_tun,
            /// Another host claimed our address.
            address_conflicts,
            /// Multicast groups joined on the TUN side beyond `Config::max_ipv4_groups` (their
            /// traffic is not delivered).
            igmp_groups_not_learnt,
        }
        drops {
            /// TUN packets sent while we have no address.
            drop_no_address,
            /// TUN packets with no route (an ICMP network-unreachable went back).
            drop_no_route,
            /// TUN packets over the MTU (with DF an ICMP fragmentation-needed went back).
            drop_too_big,
            /// IPv4 frames with a malformed, truncated or corrupt header.
            drop_link_malformed,
            /// IPv4 frames to a multicast group the TUN side did not join.
            drop_link_not_for_us,
        }
    }
}

counter_group! {
    /// ARP messages.
    ArpStats {
        counts {
            /// ARP requests received.
            requests_in,
            /// ARP replies received.
            replies_in,
            /// ARP requests sent (resolution, probes, announcements).
            requests_out,
            /// ARP replies sent for our address.
            replies_out,
        }
        drops {
            /// ARP frames that are malformed or not Ethernet/IPv4.
            drop_malformed,
        }
    }
}

counter_group! {
    /// One neighbour cache (ARP or NDP): resolutions and the packets waiting for them.
    NeighbourStats {
        counts {
            /// Packets queued while their neighbour resolved.
            queued,
            /// Neighbours resolved.
            resolved,
            /// Neighbour resolutions that failed.
            failed,
            /// Neighbour entries evicted to make room.
            evictions,
        }
        drops {
            /// Packets dropped by neighbour queue limits.
            drop_queue_full,
            /// Packets dropped because the neighbour table was full of unresolved entries.
            drop_table_full,
            /// Packets dropped because their neighbour never answered.
            drop_unreachable,
        }
    }
}

counter_group! {
    /// The DHCPv4 client.
    DhcpStats {
        counts {
            /// DHCP messages sent (DISCOVER, REQUEST, DECLINE, RELEASE).
            messages_out,
            /// DHCP replies accepted (OFFER, ACK, NAK for our transaction in a state that wants them).
            messages_in,
            /// DHCPDECLINEs sent because the probed address was in use.
            declines,
            /// DHCP options that were malformed and ignored (the rest of the reply was used).
            /// Also options 6 and 121 cut to their caps (8 DNS servers, 32 routes).
            options_ignored,
        }
        drops {
            /// DHCP replies that do not parse (truncated, bad cookie, no message type, bad UDP checksum).
            drop_malformed,
            /// DHCP replies for another client: wrong op, xid or chaddr.
            drop_not_ours,
            /// DHCP replies of a type the current state does not expect.
            drop_unexpected,
            /// DHCP offers or ACKs that cannot be used: no yiaddr, no server identifier, no lease
            /// time, a bad subnet mask.
            drop_invalid,
        }
    }
}

counter_group! {
    /// IPv6 routing and errors.
    Ipv6Stats {
        counts {
            /// ICMPv6 errors handed to the TUN (unreachable, packet too big).
            icmp_errors_to_tun,
        }
        drops {
            /// IPv6 frames with a malformed or truncated header.
            drop_link_malformed,
            /// IPv6 frames to an address or group that is not ours (or still tentative).
            drop_link_not_for_us,
            /// IPv6 frames while IPv6 is disabled.
            drop_link_disabled,
            /// IPv6 TUN packets with a malformed header or a length that does not match.
            drop_tun_malformed,
            /// IPv6 TUN packets while IPv6 is disabled.
            drop_tun_disabled,
            /// IPv6 TUN packets with no route (an ICMPv6 no-route went back).
            drop_tun_no_route,
            /// IPv6 TUN packets over the link MTU (an ICMPv6 packet too big went back).
            drop_tun_too_big,
            /// NDP messages (RS, RA, NS, NA, redirect) from the TUN: tapemu speaks NDP itself.
            drop_tun_ndp,
        }
    }
}

counter_group! {
    /// Neighbour discovery: NS, NA, RS, RA and duplicate address detection.
    NdpStats {
        counts {
            /// Neighbour solicitations received (valid ones).
            ns_in,
            /// Neighbour solicitations sent (resolution, probes, DAD).
            ns_out,
            /// Neighbour advertisements received (valid ones).
            na_in,
            /// Neighbour advertisements sent for our addresses.
            na_out,
            /// Router solicitations sent.
            rs_out,
            /// Router advertisements received and processed.
            ra_in,
            /// Valid NDP messages that need nothing from a host (RS, redirects, NS/NA for others).
            ignored,
            /// Duplicate address detections started.
            dad_started,
            /// Duplicate address detections passed (the address became usable).
            dad_succeeded,
            /// Duplicate address detections failed: another host has the address.
            dad_conflicts,
            /// NAs sent to defend a usable address against another host's DAD.
            dad_defended,
        }
        drops {
            /// NDP messages with a hop limit other than 255 (MLD: other than 1).
            drop_bad_hop_limit,
            /// NDP and MLD messages with a wrong ICMPv6 checksum.
            drop_bad_checksum,
            /// NDP and MLD messages too short, with a non-zero code or malformed options.
            drop_malformed,
            /// NDP messages breaking a validity rule (multicast target, bad source, ...).
            drop_invalid,
            /// RA or DHCPv6 contents dropped because a table (routers, prefixes, addresses,
            /// DNS servers, search domains) was full.
            drop_table_limit,
        }
    }
}

counter_group! {
    /// Multicast listener discovery.
    MldStats {
        counts {
            /// MLDv2 reports sent.
            reports_out,
            /// MLD queries answered.
            queries_in,
            /// Multicast groups joined on the TUN side beyond `Ipv6Config::max_groups` (their
            /// traffic is not delivered).
            groups_not_learnt,
        }
        drops {
        }
    }
}

counter_group! {
    /// The stateless DHCPv6 client.
    Dhcpv6Stats {
        counts {
            /// DHCPv6 Information-Requests sent.
            requests_out,
            /// DHCPv6 Replies accepted.
            replies_in,
        }
        drops {
            /// DHCPv6 messages to our client port that are malformed, unexpected or for another
            /// transaction.
            drop_invalid,
        }
    }
}

counter_group! {
    /// The Tap's bounded output queues.
    QueueStats {
        counts {
        }
        drops {
            /// Outputs dropped because the caller did not drain `poll_transmit` in time.
            drop_transmit_full,
            /// Events dropped because the caller did not drain `poll_event` in time.
            drop_event_full,
        }
    }
}

/// What a [`crate::Tap`] has done and dropped since it was created, per protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The link side.
    pub link: LinkStats,
    /// The TUN side.
    pub tun: TunStats,
    /// IPv4.
    pub ipv4: Ipv4Stats,
    /// ARP.
    pub arp: ArpStats,
    /// The IPv4 neighbour (ARP) cache.
    pub arp_cache: NeighbourStats,
    /// The DHCPv4 client.
    pub dhcp: DhcpStats,
    /// IPv6.
    pub ipv6: Ipv6Stats,
    /// Neighbour discovery.
    pub ndp: NdpStats,
    /// The IPv6 neighbour (NDP) cache.
    pub ndp_cache: NeighbourStats,
    /// MLD.
    pub mld: MldStats,
    /// The DHCPv6 client.
    pub dhcpv6: Dhcpv6Stats,
    /// The output queues.
    pub queues: QueueStats,
}

impl Stats {
    /// Every counter as `("group.name", value)`, group by group in a fixed order.
    pub fn fields(&self) -> Vec<(String, u64)> {
        let groups: [(&str, Vec<(&'static str, u64)>); 12] = [
            ("link", self.link.fields()),
            ("tun", self.tun.fields()),
            ("ipv4", self.ipv4.fields()),
            ("arp", self.arp.fields()),
            ("arp_cache", self.arp_cache.fields()),
            ("dhcp", self.dhcp.fields()),
            ("ipv6", self.ipv6.fields()),
            ("ndp", self.ndp.fields()),
            ("ndp_cache", self.ndp_cache.fields()),
            ("mld", self.mld.fields()),
            ("dhcpv6", self.dhcpv6.fields()),
            ("queues", self.queues.fields()),
        ];
        groups
            .into_iter()
            .flat_map(|(group, fields)| {
                fields
                    .into_iter()
                    .map(move |(name, value)| (format!("{group}.{name}"), value))
            })
            .collect()
    }

    /// The sum of every drop counter of every group.
    pub fn drops_total(&self) -> u64 {
        self.link.drops()
            + self.tun.drops()
            + self.ipv4.drops()
            + self.arp.drops()
            + self.arp_cache.drops()
            + self.dhcp.drops()
            + self.ipv6.drops()
            + self.ndp.drops()
            + self.ndp_cache.drops()
            + self.mld.drops()
            + self.dhcpv6.drops()
            + self.queues.drops()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_list_every_counter_and_drops_sum_only_drops() {
        let mut stats = Stats::default();
        stats.ipv4.drop_no_route = 2;
        stats.link.drop_vlan = 3;
        stats.link.frames_in = 10;
        stats.ndp_cache.drop_unreachable = 4;
        assert_eq!(stats.drops_total(), 9);
        let names: Vec<_> = stats.fields().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"tun.packets_in".to_string()));
        assert!(names.contains(&"queues.drop_event_full".to_string()));
        assert!(names.contains(&"ndp_cache.drop_unreachable".to_string()));
        assert_eq!(names.len(), 79);
    }
}
