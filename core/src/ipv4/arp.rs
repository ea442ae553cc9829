//! ARP for the [`Ipv4Host`]: answering for our address, learning neighbours the way
//! Linux does with `arp_accept=0`, announcing a new address, defending it against
//! another host (RFC 5227), and carrying out what the ARP cache asks for.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::{origin, HostEvent, Ipv4Event, Ipv4Host};
use crate::io::{Transmit, HEADROOM};
use crate::neighbour::Action;
use crate::stats::Stats;
use crate::wire::arp::{ArpPacket, Operation};
use crate::wire::ethernet::{self, ether_type, MacAddr};
use crate::wire::icmp::Unreachable;

/// Announcements sent when an address comes up (RFC 5227 `ANNOUNCE_NUM`).
pub(super) const ANNOUNCE_COUNT: u8 = 2;
/// Time between announcements (RFC 5227 `ANNOUNCE_INTERVAL`).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(2);
/// Least time between two defences of our address (RFC 5227 `DEFEND_INTERVAL`).
const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

impl Ipv4Host {
    /// Takes the payload of an ARP frame from the link.
    pub fn handle_arp(
        &mut self,
        now: Instant,
        eth: &ethernet::Header,
        payload: &[u8],
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let Ok(arp) = ArpPacket::parse(payload) else {
            stats.arp.drop_malformed += 1;
            return;
        };
        if !arp.sender_mac.is_unicast() {
            stats.arp.drop_malformed += 1;
            return;
        }
        match arp.operation {
            Operation::Request => stats.arp.requests_in += 1,
            Operation::Reply => stats.arp.replies_in += 1,
        }
        if let Some(client) = self.dhcp.as_mut() {
            client.handle_arp(now, &arp, rng, stats);
            self.run_dhcp_actions(now, stats);
        }
        let Some(our_ip) = self.iface.as_ref().map(|i| i.address) else {
            return;
        };
        if arp.sender_ip == our_ip && arp.sender_mac != self.mac {
            self.address_conflict(now, our_ip, arp.sender_mac, stats);
            return;
        }
        if arp.operation == Operation::Request && arp.target_ip == our_ip {
            stats.arp.replies_out += 1;
            let reply = ArpPacket::reply_to(&arp, self.mac, our_ip);
            self.push_link(reply.to_frame(arp.sender_mac), stats);
        }
        if arp.is_probe() {
            return;
        }
        let for_us = arp.target_ip == our_ip;
        if arp.operation == Operation::Reply && for_us && eth.dst == self.mac {
            self.cache.confirm(now, arp.sender_ip, arp.sender_mac, rng);
        } else {
            let create = arp.operation == Operation::Request && for_us;
            self.cache.learn(now, arp.sender_ip, arp.sender_mac, create);
        }
        self.run_neighbour_actions(stats);
    }

    fn address_conflict(
        &mut self,
        now: Instant,
        address: Ipv4Addr,
        mac: MacAddr,
        stats: &mut Stats,
    ) {
        stats.ipv4.address_conflicts += 1;
        // RFC 5227 §2.4 (b): defend once, unless we defended within DEFEND_INTERVAL.
        // The event goes with the defence, so a flood of claims raises one event per
        // interval (the counter has them all).
        let may_defend = self.last_defence.is_none_or(|t| now >= t + DEFEND_INTERVAL);
        if may_defend {
            let event = Ipv4Event::AddressConflict { address, mac };
            self.events.push_back(HostEvent::Ipv4(event));
            self.last_defence = Some(now);
            self.send_arp_request(ArpPacket::announcement(self.mac, address), None, stats);
        }
    }

    /// Sends the announcement that is due, if one is.
    pub(super) fn announce_due(&mut self, now: Instant, stats: &mut Stats) {
        let Some((at, remaining)) = self.announce else {
            return;
        };
        if at > now {
            return;
        }
        if let Some(address) = self.iface.as_ref().map(|i| i.address) {
            self.send_arp_request(ArpPacket::announcement(self.mac, address), None, stats);
        }
        self.announce = (remaining > 1).then(|| (now + ANNOUNCE_INTERVAL, remaining - 1));
    }

    /// Sends an RFC 5227 probe for `candidate`.
    pub(super) fn send_probe(&mut self, candidate: Ipv4Addr, stats: &mut Stats) {
        self.send_arp_request(ArpPacket::probe(self.mac, candidate), None, stats);
    }

    /// Sends an ARP request, broadcast unless `unicast` names the MAC.
    fn send_arp_request(
        &mut self,
        request: ArpPacket,
        unicast: Option<MacAddr>,
        stats: &mut Stats,
    ) {
        stats.arp.requests_out += 1;
        self.push_link(
            request.to_frame(unicast.unwrap_or(MacAddr::BROADCAST)),
            stats,
        );
    }

    /// Carries out what the ARP cache asks for: solicitations, frames released by a
    /// resolution, and frames whose neighbour never answered.
    pub(super) fn run_neighbour_actions(&mut self, stats: &mut Stats) {
        while let Some(action) = self.cache.poll_action() {
            match action {
                Action::Solicit { target, unicast } => {
                    let Some(address) = self.iface.as_ref().map(|i| i.address) else {
                        continue;
                    };
                    let request = ArpPacket::request(self.mac, address, target);
                    self.send_arp_request(request, unicast, stats);
                }
                Action::Flush { mac, frames, .. } => {
                    for mut frame in frames {
                        ethernet::write_header(&mut frame, mac, self.mac, ether_type::IPV4);
                        stats.link.frames_out += 1;
                        self.transmits.push_back(Transmit::Link(frame));
                    }
                }
                Action::Unreachable { target, frames } => {
                    let event = Ipv4Event::NeighbourUnreachable(target);
                    self.events.push_back(HostEvent::Ipv4(event));
                    for frame in frames {
                        stats.arp_cache.drop_unreachable += 1;
                        // Our own packets (a DHCP renewal) were never the kernel's: it
                        // must not hear about them.
                        if frame.first() != Some(&origin::TUN) {
                            continue;
                        }
                        // Reported from the neighbour's address: the kernel discards
                        // packets arriving with one of its own addresses as the source.
                        if let Some(packet) = frame.get(HEADROOM..) {
                            self.icmp_to_tun(packet, target, Unreachable::Host, stats);
                        }
                    }
                }
            }
        }
    }
}
