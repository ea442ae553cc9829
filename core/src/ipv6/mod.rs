//! The IPv6 side of the emulated interface, one [`Ipv6Host`] whose work is split by
//! concern:
//!
//! - here: the configuration and events, the dispatch of what comes from the TUN and the
//!   link, the next-hop choice and the timers;
//! - `neighbour`: resolution on the NDP cache (NS out, NA in);
//! - `addr`: our addresses, duplicate address detection and interface identifiers, and
//!   the answers to solicitations for them;
//! - `router`: router discovery, the router and prefix lists, SLAAC, the MTU and the
//!   RDNSS/DNSSL options of RFC 8106;
//! - `mld`: the MLDv2 reports (RFC 3810) that keep snooping bridges forwarding our
//!   solicited-node groups to us, and the groups the TUN side joins, learnt from the
//!   kernel's own MLD reports so their traffic is taken from the link and delivered;
//! - [`dhcpv6`]: the stateless DHCPv6 client.
//!
//! [`crate::Tap`] owns one [`Ipv6Host`] when IPv6 is enabled and hands it every IPv6
//! packet from the TUN and every IPv6 frame from the link.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

mod addr;
pub mod dhcpv6;
mod mld;
mod neighbour;
mod router;

pub use addr::{eui64, siphash24};

use crate::io::{Egress, Ingress, Timer, Transmit};
use crate::neighbour::{Lookup, NeighbourCache, NeighbourConfig, State};
use crate::stats::Stats;
use crate::wire::ethernet::{self, ether_type, MacAddr, HEADER_LEN};
use crate::wire::icmp::{self, Ipv6Error, Ipv6Packet};
use crate::wire::ndp::{self, icmpv6_type, is_link_local, solicited_node, NdpError, NdpMessage};
use addr::{Address, Kind, NewAddress};
use dhcpv6::Dhcpv6Client;
use mld::Mld;
use router::RouterInfo;

/// How the interface identifier of our addresses is formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkLocalMode {
    /// Modified EUI-64 from the MAC (RFC 4291 appendix A).
    Eui64,
    /// Stable, opaque identifiers (RFC 7217): a keyed hash of the prefix, the MAC and a
    /// DAD counter, so an address is stable on one network but not trackable across them.
    StablePrivacy {
        /// The secret key of the hash; keep it stable per device.
        secret: [u8; 16],
    },
}

/// Settings of the IPv6 host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Config {
    /// How interface identifiers are made, for the link-local address and for every
    /// SLAAC address.
    pub link_local: LinkLocalMode,
    /// Solicit and process router advertisements (default router, prefixes, SLAAC, MTU,
    /// DNS).
    pub accept_ra: bool,
    /// Neighbour solicitations sent for duplicate address detection of each address
    /// (RFC 4862 `DupAddrDetectTransmits`, Linux default 1); 0 skips DAD.
    pub dad_transmits: u8,
    /// Router solicitations sent at start (RFC 4861 `MAX_RTR_SOLICITATIONS`: 3).
    pub router_solicitations: u8,
    /// Time between router solicitations (RFC 4861 `RTR_SOLICITATION_INTERVAL`: 4 s).
    pub router_solicitation_interval: Duration,
    /// Most SLAAC addresses kept (besides the link-local one).
    pub max_addresses: usize,
    /// Most default routers kept.
    pub max_routers: usize,
    /// Most on-link prefixes kept.
    pub max_prefixes: usize,
    /// Most DNS servers and most search domains kept (each).
    pub max_dns: usize,
    /// Most multicast groups learnt from the MLD reports the TUN sends (groups its apps
    /// join, such as mDNS `ff02::fb`); traffic to them is delivered to the TUN. A join
    /// beyond the limit is not learnt, and that group's frames are dropped and counted
    /// like any group we do not take.
    pub max_groups: usize,
    /// Ask for DNS servers and search domains with a stateless DHCPv6
    /// Information-Request when a router sets the O or M flag (addresses are not
    /// leased by DHCPv6).
    pub dhcpv6: bool,
}

impl Default for Ipv6Config {
    fn default() -> Self {
        Ipv6Config {
            link_local: LinkLocalMode::Eui64,
            accept_ra: true,
            dad_transmits: 1,
            router_solicitations: 3,
            router_solicitation_interval: Duration::from_secs(4),
            max_addresses: 16,
            max_routers: 8,
            max_prefixes: 16,
            max_dns: 8,
            max_groups: 32,
            dhcpv6: true,
        }
    }
}

/// How IPv6 is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipv6Mode {
    /// No IPv6: IPv6 from the TUN and the link is dropped and counted.
    Disabled,
    /// A link-local address, router discovery and stateless autoconfiguration.
    Slaac(Ipv6Config),
}

impl Default for Ipv6Mode {
    fn default() -> Self {
        Ipv6Mode::Slaac(Ipv6Config::default())
    }
}

/// What the IPv6 side reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ipv6Event {
    /// The usable IPv6 addresses, routes, DNS servers, search domains or MTU changed;
    /// carries the complete new set.
    Changed(Ipv6Info),
    /// Duplicate address detection failed: another host uses this address, so we do not.
    AddressConflict(Ipv6Addr),
    /// An IPv6 neighbour did not answer; packets queued for it were dropped.
    NeighbourUnreachable(Ipv6Addr),
}

/// An IPv6 route: packets to `destination/prefix_len` go to `gateway`, or straight to
/// the destination when the route is on-link (`gateway` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Route {
    /// Network address.
    pub destination: Ipv6Addr,
    /// Prefix length, 0–128.
    pub prefix_len: u8,
    /// Next hop (a router's link-local address), or `None` for an on-link route.
    pub gateway: Option<Ipv6Addr>,
}

/// The usable IPv6 configuration, as a TUN (or `VpnService.Builder`) needs it.
///
/// Empty until our link-local address passed DAD; from then on `link_local` is always
/// set (a usable link-local address is never removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ipv6Info {
    /// Global addresses that passed DAD and are still valid, with their prefix length.
    pub addresses: Vec<(Ipv6Addr, u8)>,
    /// Our link-local address once it passed DAD.
    pub link_local: Option<Ipv6Addr>,
    /// On-link prefixes and, while a router's lifetime runs, the default route `::/0`
    /// via that router.
    pub routes: Vec<Ipv6Route>,
    /// Recursive DNS servers (RFC 8106 RDNSS).
    pub dns: Vec<Ipv6Addr>,
    /// DNS search domains (RFC 8106 DNSSL).
    pub search: Vec<String>,
    /// The link MTU advertised by the router, if any.
    pub mtu: Option<u16>,
}

/// The IPv6 host: addresses (with DAD and lifetimes), routers, on-link prefixes, DNS
/// from RAs, MLD membership and the NDP neighbour cache.
///
/// [`crate::Tap`] drives it; its outputs wait in `transmits` and `events` until the
/// `Tap` moves them into its own bounded queues.
#[derive(Debug)]
pub struct Ipv6Host {
    config: Ipv6Config,
    mac: MacAddr,
    link_mtu: u16,
    cache: NeighbourCache<Ipv6Addr>,
    /// The link-local address and the SLAAC ones, tentative or usable.
    addresses: Vec<Address>,
    /// What router advertisements taught, and router solicitation.
    ra: RouterInfo,
    mld: Mld,
    dhcp: Dhcpv6Client,
    reported: Ipv6Info,
    /// The earliest of our own timers (the neighbour cache keeps its own), recomputed
    /// whenever a call may have changed one.
    deadline: Option<Timer>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Ipv6Event>,
}

/// `addr` with the bits beyond `prefix_len` cleared.
fn mask(addr: Ipv6Addr, prefix_len: u8) -> Ipv6Addr {
    let bits = u128::from(addr);
    let len = u32::from(prefix_len.min(128));
    let m = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    Ipv6Addr::from(bits & m)
}

/// `now` plus `secs` seconds, `None` for infinity (`u32::MAX`) or beyond the clock.
fn expiry(now: Instant, secs: u32) -> Option<Instant> {
    if secs == u32::MAX {
        None
    } else {
        now.checked_add(Duration::from_secs(u64::from(secs)))
    }
}

fn expired(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_some_and(|t| t <= now)
}

impl Ipv6Host {
    /// A host for `mac` on a link of `link_mtu`; its link-local address starts DAD, and
    /// the first outputs come from [`Ipv6Host::handle_timeout`] at `now`.
    pub fn new(
        config: Ipv6Config,
        neighbour: NeighbourConfig,
        mac: MacAddr,
        link_mtu: u16,
        now: Instant,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) -> Self {
        let mut host = Ipv6Host {
            config,
            mac,
            link_mtu,
            cache: NeighbourCache::new(neighbour),
            addresses: Vec::new(),
            ra: RouterInfo::default(),
            mld: Mld::default(),
            dhcp: Dhcpv6Client::default(),
            reported: Ipv6Info::default(),
            deadline: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        let link_local = NewAddress {
            prefix: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            prefix_len: 64,
            kind: Kind::LinkLocal,
            valid_until: None,
            preferred_until: None,
            dad_counter: 0,
        };
        host.add_address(now, rng, stats, link_local);
        host.refresh_deadline();
        host
    }

    /// The NDP neighbour cache.
    pub fn cache(&self) -> &NeighbourCache<Ipv6Addr> {
        &self.cache
    }

    /// The usable configuration: empty until the link-local address passed DAD, so
    /// every non-empty [`Ipv6Info`] (and every [`Ipv6Event::Changed`]) carries
    /// `link_local`; a global address whose DAD finished first waits for it.
    pub fn info(&self) -> Ipv6Info {
        let Some(link_local) = self.link_local() else {
            return Ipv6Info::default();
        };
        let addresses = self
            .addresses
            .iter()
            .filter(|a| a.kind == Kind::Slaac && a.usable())
            .map(|a| (a.addr, a.prefix_len))
            .collect();
        let mut routes: Vec<Ipv6Route> = self
            .ra
            .prefixes
            .iter()
            .map(|p| Ipv6Route {
                destination: p.prefix,
                prefix_len: p.prefix_len,
                gateway: None,
            })
            .collect();
        if let Some(router) = self.ra.routers.first() {
            routes.push(Ipv6Route {
                destination: Ipv6Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(router.value),
            });
        }
        let mut dns: Vec<Ipv6Addr> = self.ra.dns.iter().map(|d| d.value).collect();
        for server in &self.dhcp.info.dns {
            if !dns.contains(server) {
                dns.push(*server);
            }
        }
        let mut search: Vec<String> = self.ra.search.iter().map(|d| d.value.clone()).collect();
        for name in &self.dhcp.info.search {
            if !search.contains(name) {
                search.push(name.clone());
            }
        }
        Ipv6Info {
            addresses,
            link_local: Some(link_local),
            routes,
            dns,
            search,
            mtu: self.ra.mtu,
        }
    }

    /// The largest IPv6 packet we send: the link MTU, lowered by an RA's MTU option.
    pub fn mtu(&self) -> u16 {
        self.ra.mtu.map_or(self.link_mtu, |m| m.min(self.link_mtu))
    }

    /// Puts the NDP cache counters into `stats`.
    pub fn fill_stats(&self, stats: &mut Stats) {
        let n = &self.cache.counters;
        stats.ndp_cache.resolved = n.resolved;
        stats.ndp_cache.failed = n.failed;
        stats.ndp_cache.evictions = n.evictions;
        stats.ndp_cache.drop_queue_full = n.queue_overflow_drops;
        stats.ndp_cache.drop_table_full = n.table_full_drops;
    }

    /// Queues a frame built for the link.
    fn push_frame(&mut self, stats: &mut Stats, frame: Vec<u8>) {
        stats.link.frames_out += 1;
        self.transmits.push_back(Transmit::Link(frame));
    }

    fn error_to_tun(
        &mut self,
        stats: &mut Stats,
        original: &[u8],
        reporter: Ipv6Addr,
        kind: Ipv6Error,
    ) {
        if reporter.is_multicast() || reporter.is_unspecified() {
            return;
        }
        if let Some(packet) = icmp::ipv6_error(original, reporter, kind) {
            stats.ipv6.icmp_errors_to_tun += 1;
            stats.tun.packets_out += 1;
            self.transmits.push_back(Transmit::Tun(packet));
        }
    }

    /// Chooses the neighbour a unicast packet to `dst` goes to: the destination when it
    /// is link-local or in an on-link prefix, else a default router (one not known to be
    /// unresolved first, RFC 4861 §6.3.6).
    fn next_hop(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        if dst.is_unspecified() || dst.is_loopback() {
            return None;
        }
        if is_link_local(dst) || self.ra.prefixes.iter().any(|p| p.contains(dst)) {
            return Some(dst);
        }
        self.ra
            .routers
            .iter()
            .find(|r| {
                self.cache
                    .get(r.value)
                    .is_some_and(|(state, _)| state != State::Incomplete)
            })
            .or(self.ra.routers.first())
            .map(|r| r.value)
    }

    /// Takes an IPv6 packet from the TUN behind [`crate::HEADROOM`] bytes; see
    /// [`crate::Tap::handle_tun_packet`].
    pub fn egress(&mut self, now: Instant, frame: &mut [u8], stats: &mut Stats) -> Egress {
        let packet = frame.get(HEADER_LEN..).unwrap_or_default();
        let Some(ip) = Ipv6Packet::parse(packet).filter(|ip| ip.total_len() == packet.len()) else {
            stats.ipv6.drop_tun_malformed += 1;
            return Egress::Consumed;
        };
        let dst = ip.dst();
        if dst.is_multicast() {
            self.learn_tun_groups(&ip, stats);
        }
        // We are the only NDP speaker on the link: the kernel's own RS/RA/NS/NA/redirects
        // from the TUN (it runs NDP on no real link) would only confuse the neighbours.
        let ndp_types = icmpv6_type::ROUTER_SOLICITATION..=icmpv6_type::REDIRECT;
        if ip
            .icmpv6()
            .and_then(|msg| msg.first())
            .is_some_and(|t| ndp_types.contains(t))
        {
            stats.ipv6.drop_tun_ndp += 1;
            return Egress::Consumed;
        }
        if packet.len() > usize::from(self.mtu()) {
            stats.ipv6.drop_tun_too_big += 1;
            let mtu = u32::from(self.mtu());
            self.error_to_tun(stats, packet, dst, Ipv6Error::PacketTooBig { mtu });
            return Egress::Consumed;
        }
        let dst_mac = if dst.is_multicast() {
            MacAddr::ipv6_multicast(dst)
        } else {
            let Some(next) = self.next_hop(dst) else {
                stats.ipv6.drop_tun_no_route += 1;
                self.error_to_tun(stats, packet, dst, Ipv6Error::NoRoute);
                return Egress::Consumed;
            };
            match self.cache.lookup(now, next) {
                Some(mac) => mac,
                None => {
                    if self.cache.enqueue(now, next, frame.to_vec()) == Lookup::Queued {
                        stats.ndp_cache.queued += 1;
                    }
                    self.run_cache_actions(now, stats);
                    return Egress::Consumed;
                }
            }
        };
        ethernet::write_header(frame, dst_mac, self.mac, ether_type::IPV6);
        stats.link.frames_out += 1;
        Egress::Send
    }

    /// Takes an IPv6 frame from the link (its destination MAC already accepted); see
    /// [`crate::Tap::handle_link_frame`].
    pub fn ingress(
        &mut self,
        now: Instant,
        eth: &ethernet::Header,
        frame: &[u8],
        rng: &mut StdRng,
        stats: &mut Stats,
    ) -> Ingress {
        let payload = frame.get(HEADER_LEN..).unwrap_or_default();
        let Some(ip) = Ipv6Packet::parse(payload).filter(|ip| !ip.src().is_multicast()) else {
            stats.ipv6.drop_link_malformed += 1;
            return Ingress::Consumed;
        };
        let dst = ip.dst();
        let ours = self.addresses.iter().find(|a| a.addr == dst);
        let to_us = if dst.is_multicast() {
            dst == ndp::ALL_NODES
                || self.addresses.iter().any(|a| solicited_node(a.addr) == dst)
                || self.mld.tun_groups.contains(&dst)
        } else {
            ours.is_some()
        };
        if !to_us {
            stats.ipv6.drop_link_not_for_us += 1;
            return Ingress::Consumed;
        }
        let tentative = ours.is_some_and(|a| !a.usable());
        if let Some(msg) = ip
            .icmpv6()
            .filter(|msg| msg.first().is_some_and(is_control))
        {
            if ip.fragmented {
                // RFC 6980: fragmented neighbour discovery is never taken.
                stats.ndp.drop_malformed += 1;
            } else {
                self.handle_control(now, eth, &ip, msg, rng, stats);
            }
            return Ingress::Consumed;
        }
        if tentative {
            stats.ipv6.drop_link_not_for_us += 1;
            return Ingress::Consumed;
        }
        if let Some(message) = crate::wire::dhcpv6::message_to_client(&ip) {
            self.handle_dhcp_reply(now, message, stats);
            self.refresh_deadline();
            return Ingress::Consumed;
        }
        stats.tun.packets_out += 1;
        Ingress::Deliver(HEADER_LEN..HEADER_LEN + ip.total_len())
    }

    /// Handles an NDP or MLD message `msg` that came in `ip`.
    fn handle_control(
        &mut self,
        now: Instant,
        eth: &ethernet::Header,
        ip: &Ipv6Packet<'_>,
        msg: &[u8],
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let (src, dst, hop_limit) = (ip.src(), ip.dst(), ip.hop_limit());
        let parsed = match msg.first().copied().unwrap_or(0) {
            icmpv6_type::MLD_QUERY => self.handle_mld_query(now, ip, msg, rng, stats),
            icmpv6_type::MLD_V1_REPORT | icmpv6_type::MLD_V1_DONE | icmpv6_type::MLD_V2_REPORT => {
                stats.ndp.ignored += 1;
                Ok(())
            }
            _ => ndp::parse(src, dst, hop_limit, msg).map(|message| match message {
                NdpMessage::NeighborSolicitation(ns) => {
                    stats.ndp.ns_in += 1;
                    self.handle_ns(now, eth, src, dst, &ns, rng, stats);
                }
                NdpMessage::NeighborAdvertisement(na) => {
                    stats.ndp.na_in += 1;
                    self.handle_na(now, &na, rng, stats);
                }
                NdpMessage::RouterAdvertisement(ra) if self.config.accept_ra => {
                    stats.ndp.ra_in += 1;
                    self.handle_ra(now, src, ra, rng, stats);
                }
                NdpMessage::RouterAdvertisement(_)
                | NdpMessage::RouterSolicitation
                | NdpMessage::Redirect => stats.ndp.ignored += 1,
            }),
        };
        if let Err(e) = parsed {
            match e {
                NdpError::BadHopLimit => stats.ndp.drop_bad_hop_limit += 1,
                NdpError::BadChecksum => stats.ndp.drop_bad_checksum += 1,
                NdpError::Malformed => stats.ndp.drop_malformed += 1,
                NdpError::Invalid => stats.ndp.drop_invalid += 1,
            }
        }
        self.run_cache_actions(now, stats);
        self.check_changed();
        self.refresh_deadline();
    }

    fn check_changed(&mut self) {
        let info = self.info();
        if info != self.reported {
            self.reported = info.clone();
            self.events.push_back(Ipv6Event::Changed(info));
        }
    }

    /// When [`Ipv6Host::handle_timeout`] must next be called, and why: the earliest of
    /// our own timers and the neighbour cache's. Neither is searched for here: ours is
    /// kept by the calls that change it ([`Ipv6Host::ingress`] when it takes an NDP, MLD
    /// or DHCPv6 message, [`Ipv6Host::handle_timeout`]; [`Ipv6Host::egress`] changes
    /// only the cache's), and the cache keeps its own in a heap.
    pub fn poll_timeout(&self) -> Option<Timer> {
        let cache = self
            .cache
            .poll_timeout()
            .map(|at| Timer::new(at, "ndp cache"));
        Timer::earliest([self.deadline, cache])
    }

    /// Recomputes the earliest of our own timers after a change.
    fn refresh_deadline(&mut self) {
        self.deadline = self.scan_deadline();
    }

    /// The earliest of our own timers, from every list that holds one.
    fn scan_deadline(&self) -> Option<Timer> {
        Timer::earliest([
            self.dad_deadline().map(|at| Timer::new(at, "ipv6 dad")),
            self.ra
                .solicit
                .map(|(at, _)| Timer::new(at, "ipv6 router solicitation")),
            self.lifetime_deadline()
                .map(|at| Timer::new(at, "ipv6 lifetime")),
            self.mld.next.map(|(at, _)| Timer::new(at, "mld report")),
            self.mld
                .query_response
                .map(|at| Timer::new(at, "mld query response")),
            self.dhcp.next_timer(),
        ])
    }

    /// The earliest expiry of an address, router, prefix or DNS entry.
    fn lifetime_deadline(&self) -> Option<Instant> {
        let addresses = self.addresses.iter().filter_map(|a| a.valid_until);
        addresses.chain(self.ra.next_expiry()).min()
    }

    /// The link moved: REACHABLE neighbours become STALE (re-checked on next use,
    /// never flushed), every usable address is announced with an unsolicited neighbour
    /// advertisement, and router solicitation starts again as at startup. Addresses
    /// are not checked again (no new DAD).
    pub fn network_changed(&mut self, now: Instant, stats: &mut Stats) {
        self.cache.mark_all_stale();
        self.announce_addresses(stats);
        self.restart_solicitation(now);
        self.send_rs(now, stats);
        self.refresh_deadline();
    }

    /// Runs the timers due at `now`: DAD probes and verdicts, router solicitations, MLD
    /// reports, neighbour timers, and the expiry of addresses, routers, prefixes and DNS.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        self.cache.handle_timeout(now);
        self.run_cache_actions(now, stats);
        self.send_mld(now, rng, stats);
        self.run_dad(now, stats);
        self.send_rs(now, stats);
        self.expire_addresses(now);
        self.ra.expire(now);
        self.send_mld(now, rng, stats);
        self.send_dhcp(now, rng, stats);
        self.check_changed();
        self.refresh_deadline();
    }
}

/// True for the ICMPv6 types we handle ourselves: MLD and NDP.
fn is_control(icmp_type: &u8) -> bool {
    matches!(
        *icmp_type,
        icmpv6_type::MLD_QUERY..=icmpv6_type::REDIRECT | icmpv6_type::MLD_V2_REPORT
    )
}

#[cfg(test)]
mod tests;
