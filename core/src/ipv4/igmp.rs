//! The IPv4 multicast groups the TUN side listens to, learnt from the IGMP reports the
//! kernel sends on the TUN (which still go out to the link: snooping bridges need
//! them). Frames to other groups are not for us, as on a NIC with a multicast filter.

use std::net::Ipv4Addr;

use crate::stats::Stats;
use crate::wire::ethernet::MacAddr;
use crate::wire::igmp;

/// 224.0.0.1, the all-hosts group every host is in (RFC 1112); never reported.
pub const ALL_HOSTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);

/// The groups joined on the TUN side, at most a configured number.
#[derive(Debug)]
pub(crate) struct TunGroups {
    groups: Vec<Ipv4Addr>,
    max: usize,
}

impl TunGroups {
    /// No groups yet; at most `max` will be learnt.
    pub fn new(max: usize) -> TunGroups {
        TunGroups {
            groups: Vec::new(),
            max,
        }
    }

    /// The groups learnt so far.
    pub fn groups(&self) -> &[Ipv4Addr] {
        &self.groups
    }

    /// Learns the joins and leaves in an IGMP report from the TUN (`msg`, the IP
    /// payload). A report that does not parse teaches nothing.
    pub fn learn(&mut self, msg: &[u8], stats: &mut Stats) {
        let Ok(changes) = igmp::parse_report(msg) else {
            return;
        };
        for (group, listening) in changes {
            if group == ALL_HOSTS {
                continue;
            }
            let known = self.groups.iter().position(|g| *g == group);
            match (known, listening) {
                (Some(i), false) => {
                    self.groups.swap_remove(i);
                }
                (None, true) if self.groups.len() < self.max => self.groups.push(group),
                (None, true) => stats.ipv4.igmp_groups_not_learnt += 1,
                _ => {}
            }
        }
    }

    /// True when packets to `group` (a multicast address) are for the TUN.
    #[inline]
    pub fn accepts(&self, group: Ipv4Addr) -> bool {
        group == ALL_HOSTS || self.groups.contains(&group)
    }

    /// True when frames to the multicast MAC `mac` may carry a group we take (32 groups
    /// share each MAC: the packet's own address decides in the end).
    pub fn accepts_mac(&self, mac: MacAddr) -> bool {
        mac == MacAddr::ipv4_multicast(ALL_HOSTS)
            || self
                .groups
                .iter()
                .any(|g| MacAddr::ipv4_multicast(*g) == mac)
    }
}
