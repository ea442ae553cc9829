//! [`Tap`]: the sans-IO emulated Ethernet host. It demultiplexes frames by EtherType
//! and packets by IP version to the IPv4 host ([`crate::ipv4`]: ARP, routing, DHCP) and
//! the IPv6 host ([`crate::ipv6`]), and holds their outputs in bounded queues.
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
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::Config;
use crate::io::{Egress, Ingress, Timer, Transmit, HEADROOM};
use crate::ipv4::dhcp::{DhcpEvent, DhcpState, Lease};
use crate::ipv4::route::Ipv4Interface;
use crate::ipv4::{HostEvent, Ipv4Event, Ipv4Host, Ipv4Mode};
use crate::ipv6::{Ipv6Event, Ipv6Host, Ipv6Info, Ipv6Mode};
use crate::neighbour::{NeighbourCache, NeighbourConfig};
use crate::stats::Stats;
use crate::wire::ethernet::{self, ether_type, MacAddr, HEADER_LEN};

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

impl From<HostEvent> for Event {
    fn from(event: HostEvent) -> Event {
        match event {
            HostEvent::Ipv4(event) => Event::Ipv4(event),
            HostEvent::Dhcp(event) => Event::Dhcp(event),
        }
    }
}

/// The emulated Ethernet host. See the [module documentation](self).
#[derive(Debug)]
pub struct Tap {
    mac: MacAddr,
    mtu: u16,
    ipv4: Ipv4Host,
    ipv6: Option<Ipv6Host>,
    /// Stands in for the NDP cache when IPv6 is disabled.
    ndp_disabled: NeighbourCache<Ipv6Addr>,
    rng: StdRng,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    max_transmits: usize,
    max_events: usize,
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
        let starts_ipv4 = config.ipv4 != Ipv4Mode::Disabled;
        let ipv4 = Ipv4Host::new(
            config.ipv4,
            config.neighbour.clone(),
            mac,
            config.mtu,
            config.max_ipv4_groups,
            now,
            &mut stats,
        );
        let mut tap = Tap {
            mac,
            mtu: config.mtu,
            ipv4,
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
            stats,
        };
        tap.drain_ipv4();
        if starts_ipv4 {
            tap.handle_timeout(now);
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
        self.ipv4.mtu()
    }

    /// The IPv4 configuration in force, if any.
    pub fn ipv4(&self) -> Option<&Ipv4Interface> {
        self.ipv4.interface()
    }

    /// The IPv4 neighbour (ARP) cache.
    pub fn arp_cache(&self) -> &NeighbourCache<Ipv4Addr> {
        self.ipv4.cache()
    }

    /// The IPv4 multicast groups the TUN side joined, learnt from its IGMP reports
    /// (224.0.0.1 is always taken and never listed).
    pub fn ipv4_groups(&self) -> &[Ipv4Addr] {
        self.ipv4.tun_groups()
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
        self.ipv4.fill_stats(&mut stats);
        if let Some(host) = &self.ipv6 {
            host.fill_stats(&mut stats);
        }
        stats
    }

    /// Replaces the IPv4 configuration. A new address clears the ARP cache and is
    /// announced twice, 2 s apart; the same address with new routes keeps the cache.
    pub fn set_ipv4(&mut self, now: Instant, iface: Option<Ipv4Interface>) {
        let changed = self.ipv4.interface().map(|i| i.address) != iface.as_ref().map(|i| i.address);
        self.ipv4.set_interface(now, iface, &mut self.stats);
        self.drain_ipv4();
        if changed {
            self.handle_timeout(now);
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
            Some(4) => {
                let egress = self.ipv4.egress(now, frame, &mut self.stats);
                // Sending at once queues nothing: the fast path skips the queues.
                if egress == Egress::Consumed {
                    self.drain_ipv4();
                }
                egress
            }
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
        let mut frame = with_headroom(packet);
        if self.egress(now, &mut frame) == Egress::Send {
            self.push_transmit(Transmit::Link(frame));
        }
    }

    /// Routes an IPv4 packet that tapemu itself originates through the same path as
    /// TUN traffic (ARP for the next hop), queueing the frame for `poll_transmit`. No
    /// ICMP error about it goes to the TUN: the kernel never sent it.
    pub fn send_ipv4_packet(&mut self, now: Instant, packet: &[u8]) {
        self.ipv4
            .send_local(now, with_headroom(packet), &mut self.stats);
        self.drain_ipv4();
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
        if header.dst != self.mac && !header.dst.is_broadcast() && !self.takes_group(header.dst) {
            self.stats.link.drop_not_for_us += 1;
            return Ingress::Consumed;
        }
        if header.src == self.mac {
            self.stats.link.drop_own_frame += 1;
            return Ingress::Consumed;
        }
        match header.ether_type {
            ether_type::IPV4 => {
                let ingress =
                    self.ipv4
                        .ingress(now, &header, frame, &mut self.rng, &mut self.stats);
                // Delivering queues nothing: the fast path skips the queues.
                if ingress == Ingress::Consumed {
                    self.drain_ipv4();
                }
                ingress
            }
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
                self.ipv4.handle_arp(
                    now,
                    &header,
                    &frame[HEADER_LEN..],
                    &mut self.rng,
                    &mut self.stats,
                );
                self.drain_ipv4();
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

    /// True for a multicast MAC of a group we take: IPv4 all-hosts and the groups the
    /// TUN side joined, IPv6 all-nodes, our solicited-node groups and the joined ones.
    fn takes_group(&self, mac: MacAddr) -> bool {
        if mac.is_ipv4_multicast() {
            return self.ipv4.accepts_mac(mac);
        }
        mac.is_ipv6_multicast() && self.ipv6.as_ref().is_some_and(|h| h.accepts_mac(mac))
    }

    /// When [`Tap::handle_timeout`] must next be called, or `None` if no timer runs.
    ///
    /// This is the next protocol deadline (a retransmission, a lease's T1, an
    /// announcement, a neighbour probe), on the same clock as the `now` passed to
    /// every call. An embedder that sleeps between packets (an Android alarm, a
    /// `tokio::time::sleep_until`) schedules its wake-up here and calls
    /// [`Tap::handle_timeout`] then; the answer changes after every call that takes a
    /// `now`, so ask again after each. A late call is harmless: every timer due by
    /// then runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|t| t.at)
    }

    /// The earliest deadline and which timer asks for it, or `None` if no timer runs:
    /// [`Tap::poll_timeout`] with its reason (`Timer::reason`, e.g. `"dhcp renew (T1)"`)
    /// for logs and for embedders that schedule an alarm.
    ///
    /// `Timer::at` is on the same clock as the `now` the caller passes in (the core
    /// never reads a clock itself), so an embedder converts it to its own alarm time
    /// by the offset from its last `now`. Ask again after every call that takes a
    /// `now`: any of them may move the deadline.
    pub fn next_timer(&self) -> Option<Timer> {
        let ipv6 = self.ipv6.as_ref().and_then(Ipv6Host::poll_timeout);
        Timer::earliest([self.ipv4.next_timer(), ipv6])
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(host) = self.ipv6.as_mut() {
            host.handle_timeout(now, &mut self.rng, &mut self.stats);
            self.drain_ipv6();
        }
        self.ipv4
            .handle_timeout(now, &mut self.rng, &mut self.stats);
        self.drain_ipv4();
    }

    /// Tells the host that its link moved (Wi-Fi to cellular, a new access point, a
    /// reconnected transport): it re-announces itself as a host does after a link flap,
    /// keeping its lease and addresses.
    ///
    /// * IPv4: a gratuitous ARP for our address at once and again 2 s later, so that
    ///   bridges and learning FDBs (VXLAN) learn our MAC where it now is; a DHCP lease
    ///   in force is confirmed with an INIT-REBOOT DHCPREQUEST ([`DhcpState::Rebooting`]
    ///   meanwhile, the address staying in use): an ACK renews it
    ///   ([`DhcpEvent::LeaseRenewed`]), a NAK drops it ([`DhcpEvent::LeaseLost`]) and
    ///   discovery starts over, and no answer keeps it on its T1/T2 schedule.
    /// * IPv6: an unsolicited neighbour advertisement (override flag, our MAC) to
    ///   ff02::1 for every usable address, and router solicitation as at startup.
    /// * Both neighbour caches: REACHABLE entries become STALE (not flushed).
    ///
    /// A static address is only announced. Call it once the link can send again.
    pub fn network_changed(&mut self, now: Instant) {
        self.ipv4
            .network_changed(now, &mut self.rng, &mut self.stats);
        self.drain_ipv4();
        if let Some(host) = self.ipv6.as_mut() {
            host.network_changed(now, &mut self.stats);
            self.drain_ipv6();
        }
    }

    /// The DHCP lease in force, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.ipv4.lease()
    }

    /// The DHCP client's state, or `None` unless the IPv4 mode is DHCP.
    pub fn dhcp_state(&self) -> Option<DhcpState> {
        self.ipv4.dhcp_state()
    }

    /// Orderly shutdown of DHCP: sends DHCPRELEASE for the lease in force (unicast to
    /// the server), removes the address (a [`DhcpEvent::LeaseLost`] with
    /// [`crate::LeaseLostReason::Released`] follows) and stops the client. Does nothing
    /// unless the IPv4 mode is DHCP.
    pub fn release(&mut self, now: Instant) {
        self.ipv4.release(now, &mut self.rng, &mut self.stats);
        self.drain_ipv4();
    }

    /// The next output to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves the IPv4 host's outputs into the bounded queues.
    #[inline]
    fn drain_ipv4(&mut self) {
        if self.ipv4.transmits.is_empty() && self.ipv4.events.is_empty() {
            return;
        }
        while let Some(transmit) = self.ipv4.transmits.pop_front() {
            self.push_transmit(transmit);
        }
        while let Some(event) = self.ipv4.events.pop_front() {
            self.push_event(event.into());
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

/// `packet` behind [`HEADROOM`] bytes for the Ethernet header.
fn with_headroom(packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADROOM + packet.len());
    frame.resize(HEADROOM, 0);
    frame.extend_from_slice(packet);
    frame
}

#[cfg(test)]
mod tests;
