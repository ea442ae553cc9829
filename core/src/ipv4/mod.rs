//! IPv4 on the link: the host (`Ipv4Host`: our address, ARP answering, learning,
//! announcements and conflict defence, the ARP cache, the multicast groups the TUN side
//! joined, and the DHCP client), the addressing mode, routes and next hop ([`route`]),
//! the DHCPv4 client ([`dhcp`]) and its lease ([`lease`]).
//!
//! [`crate::Tap`] drives the host as it drives [`crate::ipv6::Ipv6Host`]: it hands it
//! the IPv4 packets from the TUN, the IPv4 and ARP frames from the link and the time,
//! and moves the host's queued outputs and events into its own bounded queues.

mod arp;
pub mod dhcp;
mod igmp;
pub mod lease;
pub mod route;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Instant;

use etherparse::{IpNumber, Ipv4HeaderSlice};
use rand::rngs::StdRng;

use crate::io::{Egress, Ingress, Timer, Transmit, HEADROOM};
use crate::neighbour::{Lookup, NeighbourCache, NeighbourConfig};
use crate::stats::Stats;
use crate::wire::dhcpv4;
use crate::wire::ethernet::{self, ether_type, MacAddr, HEADER_LEN};
use crate::wire::icmp::{self, Unreachable};
use dhcp::{DhcpClient, DhcpConfig, DhcpEvent, DhcpState, Lease};
use route::{Ipv4Interface, NextHop};

/// How the IPv4 address is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
// One per emulated host, built once: its size does not matter, boxing would.
#[allow(clippy::large_enum_variant)]
pub enum Ipv4Mode {
    /// No IPv4 address: IPv4 from the TUN is dropped, ARP for us is not answered.
    Disabled,
    /// A fixed address, subnet and routes.
    Static(Ipv4Interface),
    /// An address from a DHCP server (see [`crate::ipv4::dhcp`]).
    Dhcp(DhcpConfig),
}

/// What the IPv4 side reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ipv4Event {
    /// An IPv4 address was configured and announced.
    Up(Ipv4Interface),
    /// Another host on the link claims our IPv4 address.
    AddressConflict {
        /// The contested address.
        address: Ipv4Addr,
        /// The MAC of the host that claims it.
        mac: MacAddr,
    },
    /// A neighbour did not answer; packets queued for it were dropped.
    NeighbourUnreachable(Ipv4Addr),
}

/// An event of the IPv4 host: its own, or its DHCP client's.
#[derive(Debug, Clone, PartialEq, Eq)]
// Events are rare and short-lived: boxing the lease would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum HostEvent {
    /// Addressing and ARP.
    Ipv4(Ipv4Event),
    /// The lease.
    Dhcp(DhcpEvent),
}

/// The first byte of a queued frame's headroom says who sent the packet, until the
/// Ethernet header is written over it: only the TUN's own packets get ICMP errors back.
mod origin {
    /// The kernel, through the TUN.
    pub const TUN: u8 = 0;
    /// tapemu itself (DHCP): never the subject of an ICMP error to the TUN.
    pub const LOCAL: u8 = 1;
}

/// What became of a routed packet.
enum Routed {
    /// The Ethernet header is written: send the frame now.
    Ready,
    /// Queue it until this neighbour resolves.
    Resolve(Ipv4Addr),
    /// Dropped (counted; an ICMP error went back when the TUN sent it).
    Dropped,
}

/// The IPv4 host. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Ipv4Host {
    mac: MacAddr,
    link_mtu: u16,
    /// The IPv4 MTU in force: the link MTU, lowered by a DHCP lease's option 26.
    mtu: u16,
    iface: Option<Ipv4Interface>,
    cache: NeighbourCache<Ipv4Addr>,
    /// Next announcement of our address and how many remain.
    announce: Option<(Instant, u8)>,
    last_defence: Option<Instant>,
    groups: igmp::TunGroups,
    dhcp: Option<DhcpClient>,
    /// Outputs waiting for the Tap's bounded queue.
    pub(crate) transmits: VecDeque<Transmit>,
    /// Events waiting for the Tap's bounded queue.
    pub(crate) events: VecDeque<HostEvent>,
}

impl Ipv4Host {
    /// A host for `mac` on a link of `link_mtu`, learning at most `max_groups`
    /// multicast groups. A static address is announced at once; a DHCP client's first
    /// message waits for [`Ipv4Host::handle_timeout`] at `now`.
    pub fn new(
        mode: Ipv4Mode,
        neighbour: NeighbourConfig,
        mac: MacAddr,
        link_mtu: u16,
        max_groups: usize,
        now: Instant,
        stats: &mut Stats,
    ) -> Ipv4Host {
        let mut host = Ipv4Host {
            mac,
            link_mtu,
            mtu: link_mtu,
            iface: None,
            cache: NeighbourCache::new(neighbour),
            announce: None,
            last_defence: None,
            groups: igmp::TunGroups::new(max_groups),
            dhcp: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        match mode {
            Ipv4Mode::Disabled => {}
            Ipv4Mode::Static(iface) => host.set_interface(now, Some(iface), stats),
            Ipv4Mode::Dhcp(config) => {
                host.dhcp = Some(DhcpClient::new(config, mac, link_mtu, now));
            }
        }
        host
    }

    /// The configuration in force, if any.
    pub fn interface(&self) -> Option<&Ipv4Interface> {
        self.iface.as_ref()
    }

    /// The ARP cache.
    pub fn cache(&self) -> &NeighbourCache<Ipv4Addr> {
        &self.cache
    }

    /// The largest IPv4 packet sent: the link MTU, or the lease's interface MTU when
    /// that is smaller.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The multicast groups learnt from the TUN side's IGMP reports.
    pub fn tun_groups(&self) -> &[Ipv4Addr] {
        self.groups.groups()
    }

    /// The DHCP lease in force, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.dhcp.as_ref().and_then(DhcpClient::lease)
    }

    /// The DHCP client's state, or `None` unless the mode is DHCP.
    pub fn dhcp_state(&self) -> Option<DhcpState> {
        self.dhcp.as_ref().map(DhcpClient::state)
    }

    /// Puts the ARP cache counters into `stats`.
    pub fn fill_stats(&self, stats: &mut Stats) {
        let n = &self.cache.counters;
        stats.arp_cache.resolved = n.resolved;
        stats.arp_cache.failed = n.failed;
        stats.arp_cache.evictions = n.evictions;
        stats.arp_cache.drop_queue_full = n.queue_overflow_drops;
        stats.arp_cache.drop_table_full = n.table_full_drops;
    }

    /// Replaces the configuration. A new address clears the ARP cache, is announced at
    /// once and again 2 s later, and is reported; the same address with new routes
    /// keeps the cache.
    pub fn set_interface(&mut self, now: Instant, iface: Option<Ipv4Interface>, stats: &mut Stats) {
        let old_address = self.iface.as_ref().map(|i| i.address);
        let new_address = iface.as_ref().map(|i| i.address);
        self.iface = iface;
        if old_address == new_address {
            return;
        }
        self.cache.clear();
        self.run_neighbour_actions(stats);
        self.last_defence = None;
        self.announce = new_address.map(|_| (now, arp::ANNOUNCE_COUNT));
        self.announce_due(now, stats);
        if let Some(iface) = &self.iface {
            let event = HostEvent::Ipv4(Ipv4Event::Up(iface.clone()));
            self.events.push_back(event);
        }
    }

    /// True when a frame to the IPv4 multicast MAC `mac` may be for us.
    pub fn accepts_mac(&self, mac: MacAddr) -> bool {
        self.groups.accepts_mac(mac)
    }

    /// Takes an IPv4 packet from the TUN behind [`HEADROOM`] bytes; see
    /// [`crate::Tap::handle_tun_packet`]. On a neighbour cache hit the header is written
    /// into the headroom and nothing is copied.
    #[inline]
    pub fn egress(&mut self, now: Instant, frame: &mut [u8], stats: &mut Stats) -> Egress {
        match self.route(now, frame, origin::TUN, stats) {
            Routed::Ready => Egress::Send,
            Routed::Resolve(next) => {
                let mut queued = frame.to_vec();
                queued[0] = origin::TUN;
                self.enqueue(now, next, queued, stats);
                Egress::Consumed
            }
            Routed::Dropped => Egress::Consumed,
        }
    }

    /// Routes a packet tapemu itself sends (a DHCP renewal): `frame` is [`HEADROOM`]
    /// bytes and the packet, and becomes the frame without a copy. No ICMP error about
    /// it ever goes to the TUN.
    pub fn send_local(&mut self, now: Instant, mut frame: Vec<u8>, stats: &mut Stats) {
        match self.route(now, &mut frame, origin::LOCAL, stats) {
            Routed::Ready => self.transmits.push_back(Transmit::Link(frame)),
            Routed::Resolve(next) => {
                frame[0] = origin::LOCAL;
                self.enqueue(now, next, frame, stats);
            }
            Routed::Dropped => {}
        }
    }

    /// Routes the packet behind the headroom of `frame`: when its next hop's MAC is
    /// known, writes the Ethernet header into the headroom.
    #[inline]
    fn route(&mut self, now: Instant, frame: &mut [u8], from: u8, stats: &mut Stats) -> Routed {
        let packet = frame.get(HEADROOM..).unwrap_or_default();
        let Ok(header) = Ipv4HeaderSlice::from_slice(packet) else {
            stats.tun.drop_malformed += 1;
            return Routed::Dropped;
        };
        let dst = header.destination_addr();
        if usize::from(header.total_len()) != packet.len() {
            stats.tun.drop_malformed += 1;
            return Routed::Dropped;
        }
        if packet.len() > usize::from(self.mtu) {
            stats.ipv4.drop_too_big += 1;
            if header.dont_fragment() && from == origin::TUN {
                let mtu = self.mtu;
                self.icmp_to_tun(packet, dst, Unreachable::FragmentationNeeded { mtu }, stats);
            }
            return Routed::Dropped;
        }
        let Some(iface) = &self.iface else {
            stats.ipv4.drop_no_address += 1;
            return Routed::Dropped;
        };
        let mac = match iface.next_hop(dst) {
            NextHop::Neighbour(next) => match self.cache.lookup(now, next) {
                Some(mac) => mac,
                None => return Routed::Resolve(next),
            },
            NextHop::Broadcast => MacAddr::BROADCAST,
            NextHop::Multicast(mac) => {
                // The kernel's membership reports go out as they are, and teach us
                // which groups to take from the link.
                if header.protocol() == IpNumber::IGMP && from == origin::TUN {
                    self.groups.learn(&packet[header.slice().len()..], stats);
                }
                mac
            }
            NextHop::NoRoute => {
                stats.ipv4.drop_no_route += 1;
                if from == origin::TUN {
                    self.icmp_to_tun(packet, dst, Unreachable::Network, stats);
                }
                return Routed::Dropped;
            }
        };
        ethernet::write_header(frame, mac, self.mac, ether_type::IPV4);
        stats.link.frames_out += 1;
        Routed::Ready
    }

    fn enqueue(&mut self, now: Instant, next: Ipv4Addr, frame: Vec<u8>, stats: &mut Stats) {
        if self.cache.enqueue(now, next, frame) == Lookup::Queued {
            stats.arp_cache.queued += 1;
        }
        self.run_neighbour_actions(stats);
    }

    /// Takes an IPv4 frame from the link (its destination MAC already accepted); see
    /// [`crate::Tap::handle_link_frame`].
    #[inline]
    pub fn ingress(
        &mut self,
        now: Instant,
        eth: &ethernet::Header,
        frame: &[u8],
        rng: &mut StdRng,
        stats: &mut Stats,
    ) -> Ingress {
        let payload = frame.get(HEADER_LEN..).unwrap_or_default();
        let Ok(header) = Ipv4HeaderSlice::from_slice(payload) else {
            stats.ipv4.drop_link_malformed += 1;
            return Ingress::Consumed;
        };
        let total_len = usize::from(header.total_len());
        let header_sum = etherparse::checksum::Sum16BitWords::new().add_slice(header.slice());
        if total_len < header.slice().len()
            || total_len > payload.len()
            || header_sum.ones_complement() != 0
        {
            stats.ipv4.drop_link_malformed += 1;
            return Ingress::Consumed;
        }
        let dst = header.destination_addr();
        if dst.is_multicast() && !self.groups.accepts(dst) {
            stats.ipv4.drop_link_not_for_us += 1;
            return Ingress::Consumed;
        }
        if self.dhcp.is_some() && header.protocol() == IpNumber::UDP {
            if let Some(datagram) = dhcpv4::client_datagram(&header, &payload[..total_len]) {
                if let Some(client) = self.dhcp.as_mut() {
                    client.handle_message(now, eth.src, datagram, rng, stats);
                }
                self.run_dhcp_actions(now, stats);
                return Ingress::Consumed;
            }
        }
        stats.tun.packets_out += 1;
        Ingress::Deliver(HEADER_LEN..HEADER_LEN + total_len)
    }

    /// When [`Ipv4Host::handle_timeout`] must next run, and why.
    pub fn next_timer(&self) -> Option<Timer> {
        Timer::earliest([
            self.cache
                .poll_timeout()
                .map(|at| Timer::new(at, "arp cache")),
            self.announce.map(|(at, _)| Timer::new(at, "arp announce")),
            self.dhcp.as_ref().and_then(DhcpClient::poll_timeout),
        ])
    }

    /// Runs the timers due at `now`: the ARP cache, announcements, DHCP.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        self.cache.handle_timeout(now);
        self.run_neighbour_actions(stats);
        self.announce_due(now, stats);
        if let Some(client) = self.dhcp.as_mut() {
            if client.poll_timeout().is_some_and(|t| t.at <= now) {
                client.handle_timeout(now, rng, stats);
                self.run_dhcp_actions(now, stats);
            }
        }
    }

    /// The link moved: REACHABLE neighbours become STALE (re-checked on next use), our
    /// address is announced twice again, 2 s apart, and a DHCP lease in force is
    /// confirmed (see [`DhcpClient::network_changed`]); see
    /// [`crate::Tap::network_changed`].
    pub fn network_changed(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        self.cache.mark_all_stale();
        if self.iface.is_some() {
            self.announce = Some((now, arp::ANNOUNCE_COUNT));
            self.announce_due(now, stats);
        }
        if let Some(client) = self.dhcp.as_mut() {
            client.network_changed(now);
            client.handle_timeout(now, rng, stats);
            self.run_dhcp_actions(now, stats);
        }
    }

    /// Sends DHCPRELEASE for the lease in force, removes the address and stops the
    /// client; see [`crate::Tap::release`].
    pub fn release(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        let Some(client) = self.dhcp.as_mut() else {
            return;
        };
        if let Some(mut release) = client.release(now, rng, stats) {
            // The frame must leave before the address and the ARP cache are gone, so
            // it cannot wait for resolution: use the cached next hop, else the MAC the
            // server's last ACK came from, else broadcast.
            let next = self.iface.as_ref().map(|i| i.next_hop(release.server));
            let cached = match next {
                Some(NextHop::Neighbour(n)) => self.cache.get(n).map(|(_, mac)| mac),
                _ => None,
            };
            let dst = cached.or(release.server_mac).unwrap_or(MacAddr::BROADCAST);
            ethernet::write_header(&mut release.frame, dst, self.mac, ether_type::IPV4);
            self.push_link(release.frame, stats);
        }
        self.run_dhcp_actions(now, stats);
    }

    /// Carries out what the DHCP client asked for.
    fn run_dhcp_actions(&mut self, now: Instant, stats: &mut Stats) {
        let Some(client) = self.dhcp.as_mut() else {
            return;
        };
        for action in client.take_actions() {
            match action {
                dhcp::Action::Link(frame) => self.push_link(frame, stats),
                dhcp::Action::Route(frame) => self.send_local(now, frame, stats),
                dhcp::Action::Probe(candidate) => self.send_probe(candidate, stats),
                dhcp::Action::Configure(iface) => {
                    self.set_interface(now, iface, stats);
                    // Option 26 (at least 68, RFC 2132) may lower the MTU, never raise it.
                    let lease_mtu = self.lease().and_then(|l| l.mtu);
                    self.mtu = lease_mtu.map_or(self.link_mtu, |m| m.clamp(68, self.link_mtu));
                }
                dhcp::Action::Event(event) => self.events.push_back(HostEvent::Dhcp(event)),
            }
        }
    }

    /// Hands the TUN an ICMP error about `original` (one of its own packets), reported
    /// from `reporter`.
    fn icmp_to_tun(
        &mut self,
        original: &[u8],
        reporter: Ipv4Addr,
        kind: Unreachable,
        stats: &mut Stats,
    ) {
        if let Some(packet) = icmp::ipv4_unreachable(original, reporter, kind) {
            stats.ipv4.icmp_errors_to_tun += 1;
            stats.tun.packets_out += 1;
            self.transmits.push_back(Transmit::Tun(packet));
        }
    }

    fn push_link(&mut self, frame: Vec<u8>, stats: &mut Stats) {
        stats.link.frames_out += 1;
        self.transmits.push_back(Transmit::Link(frame));
    }
}
