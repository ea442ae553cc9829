//! MLDv2 membership (RFC 3810): state-change reports when one of our solicited-node
//! groups is joined or left, answers to queries, and the groups the TUN side joins.
//!
//! The kernel behind the TUN never sees the link's queries, so we learn its groups from
//! the MLD reports it sends (they still go out, for snooping bridges), take their
//! traffic from the link and answer queries for them too.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::RngExt;

use super::Ipv6Host;
use crate::stats::Stats;
use crate::wire::ethernet::MacAddr;
use crate::wire::icmp::Ipv6Packet;
use crate::wire::mld::{self, record_type};
use crate::wire::ndp::{icmpv6_type, is_solicited_node, solicited_node, NdpError, ALL_NODES};

/// Copies of each unsolicited report (RFC 3810 robustness variable).
const ROBUSTNESS: u8 = 2;
/// Largest random delay between copies of a report (RFC 3810 unsolicited report
/// interval).
const MAX_REPORT_DELAY_MS: u64 = 1000;
/// Most records in one MLDv2 report: what fits in 1280 bytes.
const MAX_RECORDS: usize = 60;

#[derive(Debug, Default)]
pub(super) struct Mld {
    /// Next copy of the state-change report and how many copies remain.
    pub(super) next: Option<(Instant, u8)>,
    /// Records of the pending state-change report (at most [`MAX_RECORDS`]).
    changes: Vec<(u8, Ipv6Addr)>,
    /// When to answer a query.
    pub(super) query_response: Option<Instant>,
    /// Groups the TUN side listens to, learnt from its MLD reports (at most
    /// `config.max_groups`).
    pub(super) tun_groups: Vec<Ipv6Addr>,
}

impl Mld {
    /// Records that `group` was joined or left (`kind`) and schedules the report now.
    pub(super) fn change(&mut self, now: Instant, kind: u8, group: Ipv6Addr) {
        self.changes.retain(|(_, g)| *g != group);
        if self.changes.len() >= MAX_RECORDS {
            // Address churn faster than reports go out: the oldest change is dropped
            // (a later query or change reports the state again).
            self.changes.remove(0);
        }
        self.changes.push((kind, group));
        self.next = Some((now, ROBUSTNESS));
    }
}

impl Ipv6Host {
    /// The solicited-node groups we listen to (one per address, tentative included).
    pub(super) fn groups(&self) -> Vec<Ipv6Addr> {
        let mut groups: Vec<Ipv6Addr> = self
            .addresses
            .iter()
            .map(|a| solicited_node(a.addr))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// True when a frame to the multicast MAC `mac` is for us: all-nodes, one of our
    /// solicited-node groups or a group the TUN side joined.
    pub fn accepts_mac(&self, mac: MacAddr) -> bool {
        mac == MacAddr::ipv6_multicast(ALL_NODES)
            || self
                .addresses
                .iter()
                .any(|a| MacAddr::ipv6_multicast(solicited_node(a.addr)) == mac)
            || self
                .mld
                .tun_groups
                .iter()
                .any(|g| MacAddr::ipv6_multicast(*g) == mac)
    }

    /// The multicast groups learnt from the TUN side's MLD reports (for tests).
    #[cfg(any(test, feature = "test-util"))]
    pub fn tun_groups(&self) -> &[Ipv6Addr] {
        &self.mld.tun_groups
    }

    /// Learns the groups joined and left in an MLD report from the TUN. Invalid reports
    /// teach nothing; they still go out.
    pub(super) fn learn_tun_groups(&mut self, ip: &Ipv6Packet<'_>, stats: &mut Stats) {
        let Some(msg) = ip.icmpv6().filter(|_| !ip.fragmented) else {
            return;
        };
        if !matches!(
            msg.first().copied(),
            Some(
                icmpv6_type::MLD_V1_REPORT | icmpv6_type::MLD_V1_DONE | icmpv6_type::MLD_V2_REPORT
            )
        ) {
            return;
        }
        let Ok(changes) = mld::parse_report(ip.src(), ip.dst(), ip.hop_limit(), msg) else {
            return;
        };
        let tun_groups = &mut self.mld.tun_groups;
        for (group, listening) in changes {
            // ff02::1 and solicited-node groups are ours already (NDP is ours alone);
            // interface-local and reserved scopes never reach the link.
            let scope = group.octets()[1] & 0x0f;
            if group == ALL_NODES || is_solicited_node(group) || scope < 2 {
                continue;
            }
            let known = tun_groups.iter().position(|g| *g == group);
            match (known, listening) {
                (Some(i), false) => {
                    tun_groups.swap_remove(i);
                }
                (None, true) if tun_groups.len() < self.config.max_groups => {
                    tun_groups.push(group);
                }
                (None, true) => stats.mld.groups_not_learnt += 1,
                _ => {}
            }
        }
    }

    /// A query from the link: schedules the answer, within its maximum response delay,
    /// when it asks about all groups or one of ours or the TUN side's.
    pub(super) fn handle_mld_query(
        &mut self,
        now: Instant,
        ip: &Ipv6Packet<'_>,
        msg: &[u8],
        rng: &mut StdRng,
        stats: &mut Stats,
    ) -> Result<(), NdpError> {
        let query = mld::parse_query(ip.src(), ip.dst(), ip.hop_limit(), msg)?;
        stats.mld.queries_in += 1;
        if query.group.is_unspecified()
            || self.groups().contains(&query.group)
            || self.mld.tun_groups.contains(&query.group)
        {
            let delay = rng.random_range(0..=u64::from(query.max_response_ms));
            let at = now.checked_add(Duration::from_millis(delay)).unwrap_or(now);
            self.mld.query_response = Some(self.mld.query_response.map_or(at, |t| t.min(at)));
        }
        Ok(())
    }

    /// Sends the state-change report copy and the query answer due at `now`.
    pub(super) fn send_mld(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        let src = self.link_local().unwrap_or(Ipv6Addr::UNSPECIFIED);
        if let Some((at, copies)) = self.mld.next {
            if at <= now {
                let report = mld::report(self.mac, src, &self.mld.changes);
                stats.mld.reports_out += 1;
                self.push_frame(stats, report);
                if copies > 1 {
                    let delay = rng.random_range(0..MAX_REPORT_DELAY_MS);
                    self.mld.next = Some((now + Duration::from_millis(delay), copies - 1));
                } else {
                    self.mld.next = None;
                    self.mld.changes.clear();
                }
            }
        }
        if self.mld.query_response.is_some_and(|t| t <= now) {
            self.mld.query_response = None;
            // The kernel behind the TUN never sees the queries: we answer for its
            // groups too (never solicited-node ones), so snooping bridges keep
            // forwarding them.
            let mut groups = self.groups();
            groups.extend_from_slice(&self.mld.tun_groups);
            let records: Vec<(u8, Ipv6Addr)> = groups
                .into_iter()
                .map(|g| (record_type::MODE_IS_EXCLUDE, g))
                .collect();
            for chunk in records.chunks(MAX_RECORDS) {
                let report = mld::report(self.mac, src, chunk);
                stats.mld.reports_out += 1;
                self.push_frame(stats, report);
            }
        }
    }
}
