//! [`Tap`]: the sans-IO emulated Ethernet host that ties framing, ARP, the neighbour
//! cache and routing together.
//!
//! The caller owns all IO and the clock. It feeds IP packets read from the TUN to
//! [`Tap::handle_tun_packet`] and Ethernet frames from the link to
//! [`Tap::handle_link_frame`], calls [`Tap::handle_timeout`] at [`Tap::poll_timeout`],
//! and carries out what [`Tap::poll_transmit`] and [`Tap::poll_event`] return.
//!
//! The hot paths do not allocate or copy: egress writes the Ethernet header into 14
//! bytes of headroom in the caller's buffer, ingress returns the range of the frame that
//! is the IP packet.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use etherparse::Ipv4HeaderSlice;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::Config;
use crate::io::{Egress, Ingress, Transmit, HEADROOM};
use crate::ipv4::dhcp::{self, DhcpClient, DhcpEvent, DhcpState, Lease};
use crate::ipv4::route::{Ipv4Interface, NextHop};
use crate::ipv4::{Ipv4Event, Ipv4Mode};
use crate::ipv6::{Ipv6Event, Ipv6Host, Ipv6Info, Ipv6Mode};
use crate::neighbour::{Action, Lookup, NeighbourCache, NeighbourConfig};
use crate::stats::Stats;
use crate::wire::arp::{ArpPacket, Operation};
use crate::wire::ethernet::{self, ether_type, MacAddr, HEADER_LEN};
use crate::wire::icmp::{self, Unreachable};

/// Announcements sent when an address comes up (RFC 5227 `ANNOUNCE_NUM`).
const ANNOUNCE_COUNT: u8 = 2;
/// Time between announcements (RFC 5227 `ANNOUNCE_INTERVAL`).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(2);
/// Least time between two defences of our address (RFC 5227 `DEFEND_INTERVAL`).
const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

/// Something the caller may want to know: each protocol's own event, wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Events are rare and short-lived: boxing the lease would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// Static IPv4 addressing and ARP.
    Ipv4(Ipv4Event),
    /// The DHCPv4 client's lease.
    Dhcp(DhcpEvent),
    /// IPv6 addressing, routers and neighbours.
    Ipv6(Ipv6Event),
}

impl From<Ipv4Event> for Event {
    fn from(event: Ipv4Event) -> Event {
        Event::Ipv4(event)
    }
}

impl From<DhcpEvent> for Event {
    fn from(event: DhcpEvent) -> Event {
        Event::Dhcp(event)
    }
}

impl From<Ipv6Event> for Event {
    fn from(event: Ipv6Event) -> Event {
        Event::Ipv6(event)
    }
}

/// The emulated Ethernet host. See the [module documentation](self).
#[derive(Debug)]
pub struct Tap {
    mac: MacAddr,
    mtu: u16,
    /// The IPv4 MTU in force: the link MTU, lowered by a DHCP lease's option 26.
    ipv4_mtu: u16,
    ipv4: Option<Ipv4Interface>,
    arp_cache: NeighbourCache<Ipv4Addr>,
    ipv6: Option<Ipv6Host>,
    /// Stands in for the NDP cache when IPv6 is disabled.
    ndp_disabled: NeighbourCache<Ipv6Addr>,
    rng: StdRng,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    max_transmits: usize,
    max_events: usize,
    /// Next announcement of our address and how many remain.
    announce: Option<(Instant, u8)>,
    last_defence: Option<Instant>,
    dhcp: Option<DhcpClient>,
    stats: Stats,
}

impl Tap {
    /// A new host; a static address is announced at `now`, and in DHCP mode the first
    /// DHCPDISCOVER (or the INIT-REBOOT request) is queued at `now`.
    pub fn new(config: Config, now: Instant) -> Tap {
        let mut rng = StdRng::seed_from_u64(config.rng_seed);
        let mac = config
            .mac
            .unwrap_or_else(|| MacAddr::random_local(&mut rng));
        let mut stats = Stats::default();
        let ipv6 = match config.ipv6 {
            Ipv6Mode::Disabled => None,
            Ipv6Mode::Slaac(v6) => Some(Ipv6Host::new(
                v6,
                config.neighbour.clone(),
                mac,
                config.mtu,
                now,
                &mut rng,
                &mut stats,
            )),
        };
        let mut tap = Tap {
            mac,
            mtu: config.mtu,
            ipv4_mtu: config.mtu,
            ipv4: None,
            arp_cache: NeighbourCache::new(config.neighbour.clone()),
            ipv6,
            ndp_disabled: NeighbourCache::new(NeighbourConfig {
                max_entries: 0,
                ..config.neighbour
            }),
            rng,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            max_transmits: config.max_pending_transmits.max(1),
            max_events: config.max_pending_events.max(1),
            announce: None,
            last_defence: None,
            dhcp: None,
            stats,
        };
        match config.ipv4 {
            Ipv4Mode::Disabled => {}
            Ipv4Mode::Static(iface) => tap.set_ipv4(now, Some(iface)),
            Ipv4Mode::Dhcp(dhcp_config) => {
                let max_size = tap.mtu;
                tap.dhcp = Some(DhcpClient::new(dhcp_config, mac, max_size, now));
                tap.handle_timeout(now);
            }
        }
        tap
    }

    /// Our MAC address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The link MTU (largest IP packet).
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The largest IPv4 packet sent: the link MTU, or the lease's interface MTU
    /// (option 26) when that is smaller.
    pub fn ipv4_mtu(&self) -> u16 {
        self.ipv4_mtu
    }

    /// The IPv4 configuration in force, if any.
    pub fn ipv4(&self) -> Option<&Ipv4Interface> {
        self.ipv4.as_ref()
    }

    /// The IPv4 neighbour (ARP) cache.
    pub fn arp_cache(&self) -> &NeighbourCache<Ipv4Addr> {
        &self.arp_cache
    }

    /// The usable IPv6 configuration (empty when IPv6 is disabled).
    pub fn ipv6_info(&self) -> Ipv6Info {
        self.ipv6.as_ref().map(Ipv6Host::info).unwrap_or_default()
    }

    /// The IPv6 neighbour (NDP) cache (always empty when IPv6 is disabled).
    pub fn ndp_cache(&self) -> &NeighbourCache<Ipv6Addr> {
        self.ipv6
            .as_ref()
            .map_or(&self.ndp_disabled, Ipv6Host::cache)
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        let n = &self.arp_cache.counters;
        stats.arp_cache.resolved = n.resolved;
        stats.arp_cache.failed = n.failed;
        stats.arp_cache.evictions = n.evictions;
        stats.arp_cache.drop_queue_full = n.queue_overflow_drops;
        stats.arp_cache.drop_table_full = n.table_full_drops;
        if let Some(host) = &self.ipv6 {
            host.fill_stats(&mut stats);
        }
        stats
    }

    /// Replaces the IPv4 configuration. A new address clears the ARP cache and is
    /// announced twice, 2 s apart; the same address with new routes keeps the cache.
    pub fn set_ipv4(&mut self, now: Instant, iface: Option<Ipv4Interface>) {
        let old_address = self.ipv4.as_ref().map(|i| i.address);
        let new_address = iface.as_ref().map(|i| i.address);
        self.ipv4 = iface;
        if old_address != new_address {
            self.arp_cache.clear();
            self.run_neighbour_actions();
            self.announce = new_address.map(|_| (now, ANNOUNCE_COUNT));
            self.last_defence = None;
            self.handle_timeout(now);
        }
        if let (Some(iface), true) = (&self.ipv4, old_address != new_address) {
            let iface = iface.clone();
            self.push_event(Event::Ipv4(Ipv4Event::Up(iface)));
        }
    }

    /// Takes an IP packet read from the TUN.
    ///
    /// `frame` is [`HEADROOM`] bytes of space followed by exactly one IP packet. On
    /// [`Egress::Send`] the Ethernet header has been written into the headroom and the
    /// whole buffer is the frame to send; the payload is never copied on that path.
    pub fn handle_tun_packet(&mut self, now: Instant, frame: &mut [u8]) -> Egress {
        self.stats.tun.packets_in += 1;
        self.egress(now, frame)
    }

    fn egress(&mut self, now: Instant, frame: &mut [u8]) -> Egress {
        let Some(packet) = frame.get(HEADROOM..) else {
            self.stats.tun.drop_malformed += 1;
            return Egress::Consumed;
        };
        match packet.first().map(|b| b >> 4) {
            Some(4) => self.egress_ipv4(now, frame),
            Some(6) => match self.ipv6.as_mut() {
                Some(host) => {
                    let egress = host.egress(now, frame, &mut self.stats);
                    self.drain_ipv6();
                    egress
                }
                None => {
                    self.stats.ipv6.drop_tun_disabled += 1;
                    Egress::Consumed
                }
            },
            Some(_) => {
                self.stats.tun.drop_unsupported_version += 1;
                Egress::Consumed
            }
            None => {
                self.stats.tun.drop_malformed += 1;
                Egress::Consumed
            }
        }
    }

    /// Like [`Tap::handle_tun_packet`] for a packet without headroom; the frame, if
    /// any, is queued for [`Tap::poll_transmit`]. Costs one copy.
    pub fn handle_tun_packet_owned(&mut self, now: Instant, packet: &[u8]) {
        self.stats.tun.packets_in += 1;
        self.egress_owned(now, packet);
    }

    fn egress_owned(&mut self, now: Instant, packet: &[u8]) {
        let mut frame = vec![0u8; HEADROOM + packet.len()];
        frame[HEADROOM..].copy_from_slice(packet);
        if self.egress(now, &mut frame) == Egress::Send {
            self.push_transmit(Transmit::Link(frame));
        }
    }

    fn egress_ipv4(&mut self, now: Instant, frame: &mut [u8]) -> Egress {
        let packet = &frame[HEADROOM..];
        let Ok(header) = Ipv4HeaderSlice::from_slice(packet) else {
            self.stats.tun.drop_malformed += 1;
            return Egress::Consumed;
        };
        let dst = header.destination_addr();
        let dont_fragment = header.dont_fragment();
        if usize::from(header.total_len()) != packet.len() {
            self.stats.tun.drop_malformed += 1;
            return Egress::Consumed;
        }
        if packet.len() > usize::from(self.ipv4_mtu) {
            self.stats.ipv4.drop_too_big += 1;
            if dont_fragment {
                let mtu = self.ipv4_mtu;
                self.icmp_to_tun(
                    &frame[HEADROOM..],
                    dst,
                    Unreachable::FragmentationNeeded { mtu },
                );
            }
            return Egress::Consumed;
        }
        let Some(iface) = &self.ipv4 else {
            self.stats.ipv4.drop_no_address += 1;
            return Egress::Consumed;
        };
        let dst_mac = match iface.next_hop(dst) {
            NextHop::Broadcast => MacAddr::BROADCAST,
            NextHop::Multicast(mac) => mac,
            NextHop::NoRoute => {
                self.stats.ipv4.drop_no_route += 1;
                self.icmp_to_tun(&frame[HEADROOM..], dst, Unreachable::Network);
                return Egress::Consumed;
            }
            NextHop::Neighbour(next) => match self.arp_cache.lookup(now, next) {
                Some(mac) => mac,
                None => {
                    self.enqueue_for_neighbour(now, next, frame.to_vec());
                    return Egress::Consumed;
                }
            },
        };
        ethernet::write_header(frame, dst_mac, self.mac, ether_type::IPV4);
        self.stats.link.frames_out += 1;
        Egress::Send
    }

    /// Routes an IPv4 packet that tapemu itself originates (for example a DHCP renewal)
    /// through the same path as TUN traffic, queueing the frame for `poll_transmit`.
    pub fn send_ipv4_packet(&mut self, now: Instant, packet: &[u8]) {
        self.egress_owned(now, packet);
    }

    fn enqueue_for_neighbour(&mut self, now: Instant, next: Ipv4Addr, frame: Vec<u8>) {
        match self.arp_cache.enqueue(now, next, frame) {
            Lookup::Queued => self.stats.arp_cache.queued += 1,
            Lookup::Hit(_) | Lookup::Dropped => {}
        }
        self.run_neighbour_actions();
    }

    /// Takes an Ethernet frame from the link.
    ///
    /// On [`Ingress::Deliver`] the range of `frame` is an IP packet for the TUN,
    /// with any Ethernet padding trimmed.
    pub fn handle_link_frame(&mut self, now: Instant, frame: &[u8]) -> Ingress {
        self.stats.link.frames_in += 1;
        let Some(header) = ethernet::Header::parse(frame) else {
            self.stats.link.drop_truncated += 1;
            return Ingress::Consumed;
        };
        let ipv6_group = header.dst.is_ipv6_multicast()
            && self
                .ipv6
                .as_ref()
                .is_some_and(|h| h.accepts_mac(header.dst));
        if header.dst != self.mac
            && !header.dst.is_broadcast()
            && !header.dst.is_ipv4_multicast()
            && !ipv6_group
        {
            self.stats.link.drop_not_for_us += 1;
            return Ingress::Consumed;
        }
        if header.src == self.mac {
            self.stats.link.drop_own_frame += 1;
            return Ingress::Consumed;
        }
        match header.ether_type {
            ether_type::IPV4 => self.ingress_ipv4(now, &header, frame),
            ether_type::IPV6 => match self.ipv6.as_mut() {
                Some(host) => {
                    let ingress = host.ingress(now, &header, frame, &mut self.rng, &mut self.stats);
                    self.drain_ipv6();
                    ingress
                }
                None => {
                    self.stats.ipv6.drop_link_disabled += 1;
                    Ingress::Consumed
                }
            },
            ether_type::ARP => {
                self.handle_arp(now, &header, &frame[HEADER_LEN..]);
                Ingress::Consumed
            }
            ether_type::VLAN | ether_type::QINQ => {
                self.stats.link.drop_vlan += 1;
                Ingress::Consumed
            }
            _ => {
                self.stats.link.drop_unknown_ether_type += 1;
                Ingress::Consumed
            }
        }
    }

    fn ingress_ipv4(&mut self, now: Instant, eth: &ethernet::Header, frame: &[u8]) -> Ingress {
        let payload = &frame[HEADER_LEN..];
        let Ok(header) = Ipv4HeaderSlice::from_slice(payload) else {
            self.stats.ipv4.drop_link_malformed += 1;
            return Ingress::Consumed;
        };
        let total_len = usize::from(header.total_len());
        let header_sum = etherparse::checksum::Sum16BitWords::new().add_slice(header.slice());
        if total_len > payload.len() || header_sum.ones_complement() != 0 {
            self.stats.ipv4.drop_link_malformed += 1;
            return Ingress::Consumed;
        }
        if self.dhcp.is_some() {
            if let Some(udp) = dhcp::client_port_payload(&header, &payload[..total_len]) {
                self.handle_dhcp(now, eth.src, udp);
                return Ingress::Consumed;
            }
        }
        self.stats.tun.packets_out += 1;
        Ingress::Deliver(HEADER_LEN..HEADER_LEN + total_len)
    }

    fn handle_arp(&mut self, now: Instant, eth: &ethernet::Header, payload: &[u8]) {
        let Ok(arp) = ArpPacket::parse(payload) else {
            self.stats.arp.drop_malformed += 1;
            return;
        };
        if !arp.sender_mac.is_unicast() {
            self.stats.arp.drop_malformed += 1;
            return;
        }
        match arp.operation {
            Operation::Request => self.stats.arp.requests_in += 1,
            Operation::Reply => self.stats.arp.replies_in += 1,
        }
        if let Some(client) = self.dhcp.as_mut() {
            client.handle_arp(now, &arp, &mut self.rng, &mut self.stats);
            self.run_dhcp_actions(now);
        }
        let Some(our_ip) = self.ipv4.as_ref().map(|i| i.address) else {
            return;
        };
        if arp.sender_ip == our_ip && arp.sender_mac != self.mac {
            self.address_conflict(now, our_ip, arp.sender_mac);
            return;
        }
        if arp.operation == Operation::Request && arp.target_ip == our_ip {
            let reply = ArpPacket::reply_to(&arp, self.mac, our_ip);
            self.stats.arp.replies_out += 1;
            self.push_link(reply.to_frame(arp.sender_mac));
        }
        if arp.is_probe() {
            return;
        }
        let for_us = arp.target_ip == our_ip;
        if arp.operation == Operation::Reply && for_us && eth.dst == self.mac {
            self.arp_cache
                .confirm(now, arp.sender_ip, arp.sender_mac, &mut self.rng);
        } else {
            let create = arp.operation == Operation::Request && for_us;
            self.arp_cache
                .learn(now, arp.sender_ip, arp.sender_mac, create);
        }
        self.run_neighbour_actions();
    }

    fn address_conflict(&mut self, now: Instant, address: Ipv4Addr, mac: MacAddr) {
        self.stats.ipv4.address_conflicts += 1;
        // RFC 5227 §2.4 (b): defend once, unless we defended within DEFEND_INTERVAL.
        // The event goes with the defence, so a flood of claims raises one event per
        // interval (the counter has them all).
        let may_defend = self.last_defence.is_none_or(|t| now >= t + DEFEND_INTERVAL);
        if may_defend {
            self.push_event(Event::Ipv4(Ipv4Event::AddressConflict { address, mac }));
            self.last_defence = Some(now);
            self.stats.arp.requests_out += 1;
            self.push_link(ArpPacket::announcement(self.mac, address).to_frame(MacAddr::BROADCAST));
        }
    }

    /// When [`Tap::handle_timeout`] must next be called, or `None` if no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let announce = self.announce.map(|(t, _)| t);
        let ipv6 = self
            .ipv6
            .as_ref()
            .and_then(Ipv6Host::poll_timeout)
            .map(|t| t.at);
        let dhcp = self.dhcp.as_ref().and_then(DhcpClient::poll_timeout);
        [self.arp_cache.poll_timeout(), announce, dhcp, ipv6]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.arp_cache.handle_timeout(now);
        self.run_neighbour_actions();
        if let Some(host) = self.ipv6.as_mut() {
            host.handle_timeout(now, &mut self.rng, &mut self.stats);
            self.drain_ipv6();
        }
        if let Some((at, remaining)) = self.announce {
            if at <= now {
                if let Some(iface) = &self.ipv4 {
                    let frame = ArpPacket::announcement(self.mac, iface.address)
                        .to_frame(MacAddr::BROADCAST);
                    self.stats.arp.requests_out += 1;
                    self.push_link(frame);
                }
                self.announce = (remaining > 1).then(|| (now + ANNOUNCE_INTERVAL, remaining - 1));
            }
        }
        // Runs after the ARP timers: set_ipv4 (which the DHCP client may ask for) calls
        // back into handle_timeout, and by then no DHCP timer is due any more.
        if let Some(client) = self.dhcp.as_mut() {
            if client.poll_timeout().is_some_and(|t| t <= now) {
                client.handle_timeout(now, &mut self.rng, &mut self.stats);
                self.run_dhcp_actions(now);
            }
        }
    }

    /// The DHCP lease in force, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.dhcp.as_ref().and_then(DhcpClient::lease)
    }

    /// The DHCP client's state, or `None` unless the IPv4 mode is DHCP.
    pub fn dhcp_state(&self) -> Option<DhcpState> {
        self.dhcp.as_ref().map(DhcpClient::state)
    }

    /// Orderly shutdown of DHCP: sends DHCPRELEASE for the lease in force (unicast to
    /// the server), removes the address (a [`DhcpEvent::LeaseLost`] with
    /// [`LeaseLostReason::Released`] follows) and stops the client. Does nothing
    /// unless the IPv4 mode is DHCP.
    pub fn release(&mut self, now: Instant) {
        let Some(client) = self.dhcp.as_mut() else {
            return;
        };
        if let Some(release) = client.release(now, &mut self.rng, &mut self.stats) {
            // The frame must leave before the address and the ARP cache are gone, so
            // it cannot wait for resolution: use the cached next hop, else the MAC the
            // server's last ACK came from, else broadcast.
            let next = self.ipv4.as_ref().map(|i| i.next_hop(release.server));
            let cached = match next {
                Some(NextHop::Neighbour(n)) => self.arp_cache.get(n).map(|(_, mac)| mac),
                _ => None,
            };
            let dst = cached.or(release.server_mac).unwrap_or(MacAddr::BROADCAST);
            let mut frame = vec![0u8; HEADROOM];
            frame.extend_from_slice(&release.packet);
            ethernet::write_header(&mut frame, dst, self.mac, ether_type::IPV4);
            self.push_link(frame);
        }
        self.run_dhcp_actions(now);
    }

    fn handle_dhcp(&mut self, now: Instant, src_mac: MacAddr, datagram: dhcp::UdpDatagram<'_>) {
        if let Some(client) = self.dhcp.as_mut() {
            client.handle_message(now, src_mac, datagram, &mut self.rng, &mut self.stats);
            self.run_dhcp_actions(now);
        }
    }

    fn run_dhcp_actions(&mut self, now: Instant) {
        let Some(client) = self.dhcp.as_mut() else {
            return;
        };
        for action in client.take_actions() {
            match action {
                dhcp::Action::Link(frame) => self.push_link(frame),
                dhcp::Action::Route(packet) => self.send_ipv4_packet(now, &packet),
                dhcp::Action::Probe(candidate) => {
                    self.stats.arp.requests_out += 1;
                    let probe = ArpPacket::probe(self.mac, candidate);
                    self.push_link(probe.to_frame(MacAddr::BROADCAST));
                }
                dhcp::Action::Configure(iface) => {
                    self.set_ipv4(now, iface);
                    // Option 26 (at least 68, RFC 2132) may lower the MTU, never raise it.
                    let lease_mtu = self.lease().and_then(|l| l.mtu);
                    self.ipv4_mtu = lease_mtu.map_or(self.mtu, |m| m.clamp(68, self.mtu));
                }
                dhcp::Action::Event(event) => self.push_event(event.into()),
            }
        }
    }

    /// The next output to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn run_neighbour_actions(&mut self) {
        while let Some(action) = self.arp_cache.poll_action() {
            match action {
                Action::Solicit { target, unicast } => {
                    let Some(iface) = &self.ipv4 else { continue };
                    let request = ArpPacket::request(self.mac, iface.address, target);
                    self.stats.arp.requests_out += 1;
                    self.push_link(request.to_frame(unicast.unwrap_or(MacAddr::BROADCAST)));
                }
                Action::Flush { mac, frames, .. } => {
                    for mut frame in frames {
                        ethernet::write_header(&mut frame, mac, self.mac, ether_type::IPV4);
                        self.stats.link.frames_out += 1;
                        self.push_transmit(Transmit::Link(frame));
                    }
                }
                Action::Unreachable { target, frames } => {
                    self.push_event(Event::Ipv4(Ipv4Event::NeighbourUnreachable(target)));
                    for frame in frames {
                        self.stats.arp_cache.drop_unreachable += 1;
                        // Reported from the neighbour's address: the kernel discards
                        // packets arriving with one of its own addresses as the source.
                        if let Some(packet) = frame.get(HEADROOM..) {
                            self.icmp_to_tun(packet, target, Unreachable::Host);
                        }
                    }
                }
            }
        }
    }

    fn icmp_to_tun(&mut self, original: &[u8], reporter: Ipv4Addr, kind: Unreachable) {
        if let Some(packet) = icmp::ipv4_unreachable(original, reporter, kind) {
            self.stats.ipv4.icmp_errors_to_tun += 1;
            self.stats.tun.packets_out += 1;
            self.push_transmit(Transmit::Tun(packet));
        }
    }

    /// Moves the IPv6 host's outputs into the bounded queues.
    fn drain_ipv6(&mut self) {
        let Some(host) = self.ipv6.as_mut() else {
            return;
        };
        if host.transmits.is_empty() && host.events.is_empty() {
            return;
        }
        let transmits = std::mem::take(&mut host.transmits);
        let events = std::mem::take(&mut host.events);
        for transmit in transmits {
            self.push_transmit(transmit);
        }
        for event in events {
            self.push_event(event.into());
        }
    }

    fn push_link(&mut self, frame: Vec<u8>) {
        self.stats.link.frames_out += 1;
        self.push_transmit(Transmit::Link(frame));
    }

    fn push_transmit(&mut self, transmit: Transmit) {
        if self.transmits.len() >= self.max_transmits {
            self.stats.queues.drop_transmit_full += 1;
            return;
        }
        self.transmits.push_back(transmit);
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.max_events {
            self.stats.queues.drop_event_full += 1;
            return;
        }
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests;
