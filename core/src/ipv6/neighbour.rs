//! Neighbour resolution on the NDP cache (RFC 4861 §7): the solicitations the cache
//! asks for, the frames it releases or gives up on, and the advertisements that update
//! it (§7.2.5).

use std::time::Instant;

use rand::rngs::StdRng;

use super::{Ipv6Event, Ipv6Host};
use crate::neighbour::{Action, State};
use crate::stats::Stats;
use crate::wire::ethernet::{self, ether_type, HEADER_LEN};
use crate::wire::icmp::{Endpoints, Ipv6Error};
use crate::wire::ndp::{self, solicited_node, NeighborAdvert};

impl Ipv6Host {
    /// Carries out what the neighbour cache asks: solicitations, the flush of frames
    /// waiting for a neighbour that resolved, errors for those of one that did not.
    pub(super) fn run_cache_actions(&mut self, now: Instant, stats: &mut Stats) {
        while let Some(action) = self.cache.poll_action() {
            match action {
                Action::Solicit { target, unicast } => {
                    let Some(src) = self.source_for(now, target) else {
                        continue;
                    };
                    let ends = match unicast {
                        Some(dst_mac) => Endpoints {
                            src_mac: self.mac,
                            dst_mac,
                            src,
                            dst: target,
                        },
                        None => Endpoints::to_group(self.mac, src, solicited_node(target)),
                    };
                    let ns = ndp::neighbor_solicitation(&ends, target, Some(self.mac), None);
                    stats.ndp.ns_out += 1;
                    self.push_frame(stats, ns);
                }
                Action::Flush { mac, frames, .. } => {
                    for mut frame in frames {
                        ethernet::write_header(&mut frame, mac, self.mac, ether_type::IPV6);
                        self.push_frame(stats, frame);
                    }
                }
                Action::Unreachable { target, frames } => {
                    self.events
                        .push_back(Ipv6Event::NeighbourUnreachable(target));
                    for frame in frames {
                        stats.ndp_cache.drop_unreachable += 1;
                        // From the neighbour's address: the kernel drops packets that
                        // arrive with one of its own addresses as the source.
                        if let Some(packet) = frame.get(HEADER_LEN..) {
                            self.error_to_tun(stats, packet, target, Ipv6Error::AddressUnreachable);
                        }
                    }
                }
            }
        }
    }

    /// A neighbour advertisement (RFC 4861 §7.2.5). One for our own address is a DAD
    /// conflict while the address is tentative.
    pub(super) fn handle_na(
        &mut self,
        now: Instant,
        na: &NeighborAdvert,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let target = na.target;
        if let Some(index) = self.addresses.iter().position(|a| a.addr == target) {
            if self.addresses[index].usable() {
                // Someone else advertises our address; DAD already passed, so keep it.
                stats.ndp.ignored += 1;
            } else {
                self.dad_failed(now, index, rng, stats);
            }
            return;
        }
        // RFC 4861 §7.2.5: what the advertisement may change depends on the entry.
        let accepted = match self.cache.get(target) {
            None => {
                stats.ndp.ignored += 1;
                false
            }
            Some((State::Incomplete, _)) => match na.target_mac {
                Some(mac) if na.flags.solicited => {
                    self.cache.confirm(now, target, mac, rng);
                    true
                }
                Some(mac) => {
                    self.cache.learn(now, target, mac, false);
                    true
                }
                None => {
                    stats.ndp.ignored += 1;
                    false
                }
            },
            Some((state, cached)) => {
                let mac = na.target_mac.unwrap_or(cached);
                if !na.flags.override_flag && mac != cached {
                    // Another MAC without override: a REACHABLE entry becomes STALE,
                    // "but do not update the entry in any other way".
                    if state == State::Reachable {
                        self.cache.mark_stale(target);
                    }
                    false
                } else {
                    if na.flags.solicited {
                        self.cache.confirm(now, target, mac, rng);
                    } else if mac != cached {
                        self.cache.learn(now, target, mac, false);
                    }
                    true
                }
            }
        };
        // The IsRouter flag follows only an advertisement the rules above took; a
        // router that stopped being one leaves the default router list.
        if accepted && !na.flags.router {
            self.ra.remove_router(target);
        }
    }
}
