//! The IPv6 side of the emulated interface: addresses with duplicate address detection
//! and lifetimes, SLAAC (RFC 4862), router discovery and the router list (RFC 4861),
//! RA options (MTU, RDNSS and DNSSL of RFC 8106), the on-link prefixes and the next-hop
//! choice, and the MLDv2 reports (RFC 3810) that keep snooping bridges forwarding our
//! solicited-node groups to us. The groups the TUN side joins are learnt from the
//! kernel's own MLD reports, so their traffic is taken from the link and delivered.
//!
//! [`crate::Tap`] owns one [`Ipv6Host`] when IPv6 is enabled and hands it every IPv6
//! packet from the TUN and every IPv6 frame from the link.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngExt};

pub mod dhcpv6;

use crate::io::{Egress, Ingress, Transmit};
use crate::neighbour::{Action, Lookup, NeighbourCache, NeighbourConfig, State};
use crate::stats::Stats;
use crate::wire::ethernet::{self, ether_type, MacAddr, HEADER_LEN};
use crate::wire::icmp::{self, Ipv6Error};
use crate::wire::ndp::{
    self, icmpv6_type, is_link_local, record_type, solicited_node, NaFlags, NdpError, NdpMessage,
    RouterAdvert, ALL_NODES, IPV6_HEADER_LEN, PROTO_HOP_BY_HOP, PROTO_ICMPV6,
};
use dhcpv6::Dhcpv6Info;

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

/// Stable-privacy identifiers are retried this often after a DAD failure (RFC 7217
/// `IDGEN_RETRIES`).
const IDGEN_RETRIES: u8 = 3;
/// Largest random delay before the first DAD probe and between MLD report copies
/// (RFC 4862 `MAX_RTR_SOLICITATION_DELAY`, RFC 3810 unsolicited report interval).
const MAX_INITIAL_DELAY_MS: u64 = 1000;
/// Copies of each unsolicited MLD report (RFC 3810 robustness variable).
const MLD_ROBUSTNESS: u8 = 2;
/// Lifetime floor for SLAAC addresses against spoofed RAs (RFC 4862 §5.5.3 (e)).
const TWO_HOURS: Duration = Duration::from_secs(2 * 60 * 60);
/// The smallest IPv6 MTU.
const MIN_MTU: u32 = 1280;
/// Largest reachable time an RA may set (RFC 4861 `MAX_REACHABLE_TIME`).
const MAX_REACHABLE_TIME_MS: u32 = 3_600_000;
/// Most records in one MLDv2 report: what fits in 1280 bytes.
const MAX_MLD_RECORDS: usize = 60;
/// DHCPv6 Information-Request timing (RFC 8415 §7.6: `INF_MAX_DELAY`, `INF_TIMEOUT`,
/// `INF_MAX_RT`) and the floor of the refresh time (`IRT_MINIMUM`).
const INF_MAX_DELAY_MS: u64 = 1000;
const INF_TIMEOUT: Duration = Duration::from_secs(1);
const INF_MAX_RT: Duration = Duration::from_secs(3600);
const IRT_DEFAULT: u32 = 86400;
const IRT_MINIMUM: u32 = 600;

/// A running stateless DHCPv6 exchange.
#[derive(Debug, Clone, Copy)]
struct InfoRequest {
    xid: [u8; 3],
    started: Instant,
    next: Instant,
    timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LinkLocal,
    Slaac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddrState {
    /// Duplicate address detection running: next probe (or the verdict) at `next`.
    Tentative {
        next: Instant,
        sent: u8,
    },
    Usable,
}

#[derive(Debug, Clone)]
struct Address {
    addr: Ipv6Addr,
    prefix: Ipv6Addr,
    prefix_len: u8,
    kind: Kind,
    state: AddrState,
    valid_until: Option<Instant>,
    preferred_until: Option<Instant>,
    dad_counter: u8,
    nonce: [u8; 6],
}

impl Address {
    fn usable(&self) -> bool {
        self.state == AddrState::Usable
    }

    fn preferred(&self, now: Instant) -> bool {
        self.usable() && self.preferred_until.is_none_or(|t| now < t)
    }
}

#[derive(Debug, Clone)]
struct Timed<T> {
    value: T,
    expires: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct OnLinkPrefix {
    prefix: Ipv6Addr,
    prefix_len: u8,
    expires: Option<Instant>,
}

impl OnLinkPrefix {
    fn contains(&self, addr: Ipv6Addr) -> bool {
        mask(addr, self.prefix_len) == self.prefix
    }
}

#[derive(Debug, Default)]
struct Mld {
    /// Next copy of the state-change report and how many copies remain.
    next: Option<(Instant, u8)>,
    /// Records of the pending state-change report.
    changes: Vec<(u8, Ipv6Addr)>,
    /// When to answer a query.
    query_response: Option<Instant>,
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

/// The modified EUI-64 interface identifier of `mac` (RFC 4291 appendix A).
pub fn eui64(mac: MacAddr) -> [u8; 8] {
    let m = mac.0;
    [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
}

/// SipHash-2-4 of `data` under `key`: the pseudo-random function of RFC 7217 here.
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = siphasher::sip::SipHasher24::new_with_key(key);
    hasher.write(data);
    hasher.finish()
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
    addresses: Vec<Address>,
    routers: Vec<Timed<Ipv6Addr>>,
    prefixes: Vec<OnLinkPrefix>,
    dns: Vec<Timed<Ipv6Addr>>,
    search: Vec<Timed<String>>,
    ra_mtu: Option<u16>,
    /// Next router solicitation and how many were sent.
    rs: Option<(Instant, u8)>,
    rs_started: bool,
    mld: Mld,
    /// Groups the TUN side listens to, learnt from its MLD reports (at most
    /// `config.max_groups`).
    tun_groups: Vec<Ipv6Addr>,
    dhcp: Option<InfoRequest>,
    dhcp_refresh: Option<Instant>,
    dhcp_info: Dhcpv6Info,
    reported: Ipv6Info,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Ipv6Event>,
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
            routers: Vec::new(),
            prefixes: Vec::new(),
            dns: Vec::new(),
            search: Vec::new(),
            ra_mtu: None,
            rs: None,
            rs_started: false,
            mld: Mld::default(),
            tun_groups: Vec::new(),
            dhcp: None,
            dhcp_refresh: None,
            dhcp_info: Dhcpv6Info::default(),
            reported: Ipv6Info::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0);
        host.add_address(
            now,
            rng,
            stats,
            link_local,
            64,
            Kind::LinkLocal,
            None,
            None,
            0,
        );
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
            .prefixes
            .iter()
            .map(|p| Ipv6Route {
                destination: p.prefix,
                prefix_len: p.prefix_len,
                gateway: None,
            })
            .collect();
        if let Some(router) = self.routers.first() {
            routes.push(Ipv6Route {
                destination: Ipv6Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(router.value),
            });
        }
        let mut dns: Vec<Ipv6Addr> = self.dns.iter().map(|d| d.value).collect();
        for server in &self.dhcp_info.dns {
            if !dns.contains(server) {
                dns.push(*server);
            }
        }
        let mut search: Vec<String> = self.search.iter().map(|d| d.value.clone()).collect();
        for name in &self.dhcp_info.search {
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
            mtu: self.ra_mtu,
        }
    }

    /// The largest IPv6 packet we send: the link MTU, lowered by an RA's MTU option.
    pub fn mtu(&self) -> u16 {
        self.ra_mtu.map_or(self.link_mtu, |m| m.min(self.link_mtu))
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

    /// The solicited-node groups we listen to (one per address, tentative included).
    fn groups(&self) -> Vec<Ipv6Addr> {
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
                .tun_groups
                .iter()
                .any(|g| MacAddr::ipv6_multicast(*g) == mac)
    }

    /// The multicast groups learnt from the TUN side's MLD reports.
    pub fn tun_groups(&self) -> &[Ipv6Addr] {
        &self.tun_groups
    }

    /// Learns the groups joined and left in an MLD report from the TUN (`packet`, the
    /// whole IPv6 packet). Invalid reports teach nothing; they still go out.
    fn learn_tun_groups(&mut self, packet: &[u8], stats: &mut Stats) {
        let Some((PROTO_ICMPV6, offset)) = upper_layer(packet) else {
            return;
        };
        let Some(msg) = packet.get(offset..) else {
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
        let (Some(src), Some(dst)) = (ipv6_at(packet, 8), ipv6_at(packet, 24)) else {
            return;
        };
        let Ok(changes) = ndp::parse_mld_report(src, dst, packet[7], msg) else {
            return;
        };
        for (group, listening) in changes {
            // ff02::1 and solicited-node groups are ours already (NDP is ours alone);
            // interface-local and reserved scopes never reach the link.
            let scope = group.octets()[1] & 0x0f;
            if group == ALL_NODES || is_solicited_node(group) || scope < 2 {
                continue;
            }
            let known = self.tun_groups.iter().position(|g| *g == group);
            match (known, listening) {
                (Some(i), false) => {
                    self.tun_groups.swap_remove(i);
                }
                (None, true) if self.tun_groups.len() < self.config.max_groups => {
                    self.tun_groups.push(group);
                }
                (None, true) => stats.mld.groups_not_learnt += 1,
                _ => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_address(
        &mut self,
        now: Instant,
        rng: &mut StdRng,
        stats: &mut Stats,
        prefix: Ipv6Addr,
        prefix_len: u8,
        kind: Kind,
        valid_until: Option<Instant>,
        preferred_until: Option<Instant>,
        dad_counter: u8,
    ) {
        let iid = match &self.config.link_local {
            LinkLocalMode::Eui64 => eui64(self.mac),
            LinkLocalMode::StablePrivacy { secret } => {
                let mut input = Vec::with_capacity(15);
                input.extend_from_slice(&prefix.octets()[..8]);
                input.extend_from_slice(&self.mac.0);
                input.push(dad_counter);
                siphash24(secret, &input).to_be_bytes()
            }
        };
        let mut octets = prefix.octets();
        octets[8..].copy_from_slice(&iid);
        let addr = Ipv6Addr::from(octets);
        if self.addresses.iter().any(|a| a.addr == addr) {
            return;
        }
        let group = solicited_node(addr);
        let new_group = !self.groups().contains(&group);
        let mut nonce = [0u8; 6];
        rng.fill_bytes(&mut nonce);
        let state = if self.config.dad_transmits == 0 {
            AddrState::Usable
        } else {
            stats.ndp.dad_started += 1;
            let delay = rng.random_range(0..MAX_INITIAL_DELAY_MS);
            AddrState::Tentative {
                next: now + Duration::from_millis(delay),
                sent: 0,
            }
        };
        self.addresses.push(Address {
            addr,
            prefix,
            prefix_len,
            kind,
            state,
            valid_until,
            preferred_until,
            dad_counter,
            nonce,
        });
        if new_group {
            self.mld_change(now, record_type::CHANGE_TO_EXCLUDE, group);
        }
        if state == AddrState::Usable {
            self.address_ready(now, kind);
        }
    }

    fn remove_address(&mut self, now: Instant, index: usize) -> Address {
        let removed = self.addresses.remove(index);
        let group = solicited_node(removed.addr);
        if !self.groups().contains(&group) {
            self.mld_change(now, record_type::CHANGE_TO_INCLUDE, group);
        }
        removed
    }

    fn address_ready(&mut self, now: Instant, kind: Kind) {
        if kind == Kind::LinkLocal {
            // Reports sent from :: during DAD are not learnt by every snooping switch;
            // like Linux, report every group again from the new link-local address.
            for group in self.groups() {
                self.mld_change(now, record_type::CHANGE_TO_EXCLUDE, group);
            }
        }
        if kind == Kind::LinkLocal && self.config.accept_ra && !self.rs_started {
            self.rs_started = true;
            self.rs = (self.config.router_solicitations > 0).then_some((now, 0));
        }
    }

    fn mld_change(&mut self, now: Instant, kind: u8, group: Ipv6Addr) {
        self.mld.changes.retain(|(_, g)| *g != group);
        if self.mld.changes.len() >= MAX_MLD_RECORDS {
            // Address churn faster than reports go out: the oldest change is dropped
            // (a later query or change reports the state again).
            self.mld.changes.remove(0);
        }
        self.mld.changes.push((kind, group));
        self.mld.next = Some((now, MLD_ROBUSTNESS));
    }

    fn link_local(&self) -> Option<Ipv6Addr> {
        self.addresses
            .iter()
            .find(|a| a.kind == Kind::LinkLocal && a.usable())
            .map(|a| a.addr)
    }

    /// Our source address towards `target`: the link-local one for link-local targets,
    /// else a preferred global address in the target's /64, else any usable one.
    fn source_for(&self, now: Instant, target: Ipv6Addr) -> Option<Ipv6Addr> {
        if is_link_local(target) {
            return self.link_local();
        }
        let globals = || self.addresses.iter().filter(|a| a.kind == Kind::Slaac);
        globals()
            .find(|a| a.preferred(now) && mask(target, a.prefix_len) == a.prefix)
            .or_else(|| globals().find(|a| a.preferred(now)))
            .or_else(|| globals().find(|a| a.usable()))
            .map(|a| a.addr)
            .or_else(|| self.link_local())
    }

    fn push_packet(&mut self, stats: &mut Stats, dst_mac: MacAddr, packet: &[u8]) {
        let frame = ethernet::build_frame(dst_mac, self.mac, ether_type::IPV6, packet);
        stats.link.frames_out += 1;
        self.transmits.push_back(Transmit::Link(frame));
    }

    fn push_multicast(&mut self, stats: &mut Stats, packet: &[u8]) {
        let dst = ndp_dst(packet);
        self.push_packet(stats, MacAddr::ipv6_multicast(dst), packet);
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
        if is_link_local(dst) || self.prefixes.iter().any(|p| p.contains(dst)) {
            return Some(dst);
        }
        self.routers
            .iter()
            .find(|r| {
                self.cache
                    .get(r.value)
                    .is_some_and(|(state, _)| state != State::Incomplete)
            })
            .or(self.routers.first())
            .map(|r| r.value)
    }

    /// Takes an IPv6 packet from the TUN behind [`crate::HEADROOM`] bytes; see
    /// [`crate::Tap::handle_tun_packet`].
    pub fn egress(&mut self, now: Instant, frame: &mut [u8], stats: &mut Stats) -> Egress {
        let Some(packet) = frame.get(HEADER_LEN..) else {
            stats.ipv6.drop_tun_malformed += 1;
            return Egress::Consumed;
        };
        let (Some(payload_len), Some(dst)) = (
            packet
                .get(4..6)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))),
            ipv6_at(packet, 24),
        ) else {
            stats.ipv6.drop_tun_malformed += 1;
            return Egress::Consumed;
        };
        if IPV6_HEADER_LEN + payload_len != packet.len() {
            stats.ipv6.drop_tun_malformed += 1;
            return Egress::Consumed;
        }
        if dst.is_multicast() {
            self.learn_tun_groups(packet, stats);
        }
        // We are the only NDP speaker on the link: the kernel's own RS/RA/NS/NA/redirects
        // from the TUN (it runs NDP on no real link) would only confuse the neighbours.
        if packet[6] == PROTO_ICMPV6
            && packet.get(IPV6_HEADER_LEN).is_some_and(|t| {
                (icmpv6_type::ROUTER_SOLICITATION..=icmpv6_type::REDIRECT).contains(t)
            })
        {
            stats.ipv6.drop_tun_ndp += 1;
            return Egress::Consumed;
        }
        if packet.len() > usize::from(self.mtu()) {
            stats.ipv6.drop_tun_too_big += 1;
            let mtu = u32::from(self.mtu());
            let original = packet.to_vec();
            self.error_to_tun(stats, &original, dst, Ipv6Error::PacketTooBig { mtu });
            return Egress::Consumed;
        }
        let dst_mac = if dst.is_multicast() {
            MacAddr::ipv6_multicast(dst)
        } else {
            let Some(next) = self.next_hop(dst) else {
                stats.ipv6.drop_tun_no_route += 1;
                let original = packet.to_vec();
                self.error_to_tun(stats, &original, dst, Ipv6Error::NoRoute);
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

    fn run_cache_actions(&mut self, now: Instant, stats: &mut Stats) {
        while let Some(action) = self.cache.poll_action() {
            match action {
                Action::Solicit { target, unicast } => {
                    let Some(src) = self.source_for(now, target) else {
                        continue;
                    };
                    let (dst, dst_mac) = match unicast {
                        Some(mac) => (target, mac),
                        None => {
                            let group = solicited_node(target);
                            (group, MacAddr::ipv6_multicast(group))
                        }
                    };
                    let ns = ndp::neighbor_solicitation(src, dst, target, Some(self.mac), None);
                    stats.ndp.ns_out += 1;
                    self.push_packet(stats, dst_mac, &ns);
                }
                Action::Flush { mac, frames, .. } => {
                    for mut frame in frames {
                        ethernet::write_header(&mut frame, mac, self.mac, ether_type::IPV6);
                        stats.link.frames_out += 1;
                        self.transmits.push_back(Transmit::Link(frame));
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
        let (Some(&first), Some(len_bytes), Some(src), Some(dst)) = (
            payload.first(),
            payload.get(4..6),
            ipv6_at(payload, 8),
            ipv6_at(payload, 24),
        ) else {
            stats.ipv6.drop_link_malformed += 1;
            return Ingress::Consumed;
        };
        let total = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if first >> 4 != 6 || total > payload.len() || src.is_multicast() {
            stats.ipv6.drop_link_malformed += 1;
            return Ingress::Consumed;
        }
        let packet = &payload[..total];
        let ours = self.addresses.iter().find(|a| a.addr == dst);
        let to_us = if dst.is_multicast() {
            dst == ALL_NODES
                || self.addresses.iter().any(|a| solicited_node(a.addr) == dst)
                || self.tun_groups.contains(&dst)
        } else {
            ours.is_some()
        };
        if !to_us {
            stats.ipv6.drop_link_not_for_us += 1;
            return Ingress::Consumed;
        }
        let tentative = ours.is_some_and(|a| !a.usable());
        // ICMPv6 directly or behind one hop-by-hop header (MLD).
        let Some((proto, offset)) = upper_layer(packet) else {
            stats.ipv6.drop_link_malformed += 1;
            return Ingress::Consumed;
        };
        if proto == PROTO_ICMPV6 {
            if let Some(msg) = packet.get(offset..) {
                if let Some(&kind) = msg.first() {
                    if matches!(
                        kind,
                        icmpv6_type::MLD_QUERY..=icmpv6_type::REDIRECT | icmpv6_type::MLD_V2_REPORT
                    ) {
                        self.handle_control(now, eth, src, dst, packet[7], msg, rng, stats);
                        return Ingress::Consumed;
                    }
                }
            }
        }
        if tentative {
            stats.ipv6.drop_link_not_for_us += 1;
            return Ingress::Consumed;
        }
        if proto == dhcpv6::PROTO_UDP && packet[6] == dhcpv6::PROTO_UDP {
            if let Some(reply) = dhcpv6::udp_to_client(packet) {
                self.handle_dhcp_reply(now, reply, stats);
                return Ingress::Consumed;
            }
        }
        stats.tun.packets_out += 1;
        Ingress::Deliver(HEADER_LEN..HEADER_LEN + total)
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_control(
        &mut self,
        now: Instant,
        eth: &ethernet::Header,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        msg: &[u8],
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let kind = msg.first().copied().unwrap_or(0);
        let count = |stats: &mut Stats, e: NdpError| match e {
            NdpError::BadHopLimit => stats.ndp.drop_bad_hop_limit += 1,
            NdpError::BadChecksum => stats.ndp.drop_bad_checksum += 1,
            NdpError::Malformed => stats.ndp.drop_malformed += 1,
            NdpError::Invalid => stats.ndp.drop_invalid += 1,
        };
        match kind {
            icmpv6_type::MLD_QUERY => match ndp::parse_mld_query(src, dst, hop_limit, msg) {
                Ok(query) => {
                    stats.mld.queries_in += 1;
                    let groups = self.groups();
                    if query.group.is_unspecified()
                        || groups.contains(&query.group)
                        || self.tun_groups.contains(&query.group)
                    {
                        let delay = rng.random_range(0..=u64::from(query.max_response_ms));
                        let at = now.checked_add(Duration::from_millis(delay)).unwrap_or(now);
                        self.mld.query_response =
                            Some(self.mld.query_response.map_or(at, |t| t.min(at)));
                    }
                }
                Err(e) => count(stats, e),
            },
            icmpv6_type::MLD_V1_REPORT | icmpv6_type::MLD_V1_DONE | icmpv6_type::MLD_V2_REPORT => {
                stats.ndp.ignored += 1;
            }
            _ => match ndp::parse(src, dst, hop_limit, msg) {
                Ok(NdpMessage::NeighborSolicitation {
                    target,
                    source_mac,
                    nonce,
                }) => {
                    stats.ndp.ns_in += 1;
                    self.handle_ns(now, eth, src, dst, target, source_mac, nonce, rng, stats);
                }
                Ok(NdpMessage::NeighborAdvertisement {
                    target,
                    router,
                    solicited,
                    override_flag,
                    target_mac,
                }) => {
                    stats.ndp.na_in += 1;
                    self.handle_na(
                        now,
                        target,
                        router,
                        solicited,
                        override_flag,
                        target_mac,
                        rng,
                        stats,
                    );
                }
                Ok(NdpMessage::RouterAdvertisement(ra)) => {
                    if self.config.accept_ra {
                        stats.ndp.ra_in += 1;
                        self.handle_ra(now, src, ra, rng, stats);
                    } else {
                        stats.ndp.ignored += 1;
                    }
                }
                Ok(NdpMessage::RouterSolicitation | NdpMessage::Redirect) => stats.ndp.ignored += 1,
                Err(e) => count(stats, e),
            },
        }
        self.run_cache_actions(now, stats);
        self.check_changed();
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_ns(
        &mut self,
        now: Instant,
        eth: &ethernet::Header,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        source_mac: Option<MacAddr>,
        nonce: Option<[u8; 6]>,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let Some(index) = self.addresses.iter().position(|a| a.addr == target) else {
            stats.ndp.ignored += 1;
            return;
        };
        let address = &self.addresses[index];
        if !address.usable() {
            // RFC 4862 §5.4.3: another node's DAD probe for our tentative address means
            // a duplicate; a probe carrying our own nonce is ours looped back.
            if src.is_unspecified() && nonce != Some(address.nonce) {
                self.dad_failed(now, index, rng, stats);
            } else {
                stats.ndp.ignored += 1;
            }
            return;
        }
        if src.is_unspecified() {
            // Another node probes our address: defend it (RFC 4861 §7.2.4).
            let flags = NaFlags {
                override_flag: true,
                ..NaFlags::default()
            };
            let na = ndp::neighbor_advertisement(ALL_NODES, target, flags, Some(self.mac));
            stats.ndp.dad_defended += 1;
            stats.ndp.na_out += 1;
            self.push_multicast(stats, &na);
            return;
        }
        if let Some(mac) = source_mac {
            self.cache.learn(now, src, mac, true);
        }
        // As Linux: an answer to a multicast solicitation overrides and carries our MAC;
        // to a unicast one (a reachability probe) it does neither.
        let multicast = dst.is_multicast();
        let flags = NaFlags {
            router: false,
            solicited: true,
            override_flag: multicast,
        };
        let na = ndp::neighbor_advertisement(src, target, flags, multicast.then_some(self.mac));
        let dst_mac = source_mac
            .or_else(|| {
                self.cache
                    .get(src)
                    .map(|(_, mac)| mac)
                    .filter(MacAddr::is_unicast)
            })
            .unwrap_or(eth.src);
        stats.ndp.na_out += 1;
        self.push_packet(stats, dst_mac, &na);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_na(
        &mut self,
        now: Instant,
        target: Ipv6Addr,
        router: bool,
        solicited: bool,
        override_flag: bool,
        target_mac: Option<MacAddr>,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        if let Some(index) = self.addresses.iter().position(|a| a.addr == target) {
            if self.addresses[index].usable() {
                // Someone else advertises our address; DAD already passed, so keep it.
                stats.ndp.ignored += 1;
            } else {
                self.dad_failed(now, index, rng, stats);
            }
            return;
        }
        if !router {
            // RFC 4861 §7.2.5: a router that stopped being one leaves the router list.
            self.routers.retain(|r| r.value != target);
        }
        match self.cache.get(target) {
            None => stats.ndp.ignored += 1,
            Some((State::Incomplete, _)) => match target_mac {
                Some(mac) if solicited => self.cache.confirm(now, target, mac, rng),
                Some(mac) => self.cache.learn(now, target, mac, false),
                None => stats.ndp.ignored += 1,
            },
            Some((state, cached)) => {
                let mac = target_mac.unwrap_or(cached);
                if !override_flag && mac != cached {
                    if state == State::Reachable {
                        self.cache.mark_stale(target);
                    }
                } else if solicited {
                    self.cache.confirm(now, target, mac, rng);
                } else if mac != cached {
                    self.cache.learn(now, target, mac, false);
                }
            }
        }
    }

    fn dad_failed(&mut self, now: Instant, index: usize, rng: &mut StdRng, stats: &mut Stats) {
        let failed = self.remove_address(now, index);
        stats.ndp.dad_conflicts += 1;
        self.events
            .push_back(Ipv6Event::AddressConflict(failed.addr));
        if matches!(self.config.link_local, LinkLocalMode::StablePrivacy { .. })
            && failed.dad_counter < IDGEN_RETRIES
        {
            // RFC 7217 §6: try the next identifier.
            self.add_address(
                now,
                rng,
                stats,
                failed.prefix,
                failed.prefix_len,
                failed.kind,
                failed.valid_until,
                failed.preferred_until,
                failed.dad_counter + 1,
            );
        }
    }

    fn handle_ra(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        ra: RouterAdvert,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        // A valid RA ends router solicitation (RFC 4861 §6.3.7).
        self.rs = None;
        if let Some(mac) = ra.source_mac.filter(MacAddr::is_unicast) {
            self.cache.learn(now, src, mac, true);
        }
        let router = self.routers.iter().position(|r| r.value == src);
        match (router, ra.router_lifetime) {
            (Some(i), 0) => {
                self.routers.remove(i);
            }
            (Some(i), secs) => self.routers[i].expires = expiry(now, u32::from(secs)),
            (None, 0) => {}
            (None, secs) if self.routers.len() < self.config.max_routers => {
                self.routers.push(Timed {
                    value: src,
                    expires: expiry(now, u32::from(secs)),
                })
            }
            (None, _) => stats.ndp.drop_table_limit += 1,
        }
        // Like Linux: values below 100 ms are raised to it; RFC 4861 caps reachable time
        // at one hour.
        let ms = |v: u32, max: u32| {
            (v != 0).then(|| Duration::from_millis(u64::from(v.clamp(100, max))))
        };
        self.cache.set_timing(
            ms(ra.reachable_time, MAX_REACHABLE_TIME_MS),
            ms(ra.retrans_timer, u32::MAX),
        );
        if let Some(mtu) = ra.mtu {
            if (MIN_MTU..=u32::from(self.link_mtu)).contains(&mtu) {
                self.ra_mtu = u16::try_from(mtu).ok();
            }
        }
        for p in &ra.prefixes {
            self.handle_prefix(now, p, rng, stats);
        }
        if (ra.other || ra.managed)
            && self.config.dhcpv6
            && self.dhcp.is_none()
            && self.dhcp_refresh.is_none()
        {
            self.start_dhcp(now, rng);
        }
        let max_dns = self.config.max_dns;
        for (lifetime, servers) in &ra.rdnss {
            for server in servers {
                if server.is_multicast() || server.is_unspecified() {
                    continue;
                }
                update_timed(
                    &mut self.dns,
                    *server,
                    expiry(now, *lifetime),
                    *lifetime == 0,
                    max_dns,
                    stats,
                );
            }
        }
        for (lifetime, names) in &ra.dnssl {
            for name in names {
                update_timed(
                    &mut self.search,
                    name.clone(),
                    expiry(now, *lifetime),
                    *lifetime == 0,
                    max_dns,
                    stats,
                );
            }
        }
    }

    fn handle_prefix(
        &mut self,
        now: Instant,
        p: &ndp::PrefixInfo,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        if is_link_local(p.prefix) || p.prefix.is_multicast() || p.prefix_len > 128 {
            return;
        }
        let prefix = mask(p.prefix, p.prefix_len);
        if p.on_link {
            let existing = self
                .prefixes
                .iter()
                .position(|o| o.prefix == prefix && o.prefix_len == p.prefix_len);
            match (existing, p.valid_lifetime) {
                (Some(i), 0) => {
                    self.prefixes.remove(i);
                }
                (Some(i), secs) => self.prefixes[i].expires = expiry(now, secs),
                (None, 0) => {}
                (None, secs) if self.prefixes.len() < self.config.max_prefixes => {
                    self.prefixes.push(OnLinkPrefix {
                        prefix,
                        prefix_len: p.prefix_len,
                        expires: expiry(now, secs),
                    })
                }
                (None, _) => stats.ndp.drop_table_limit += 1,
            }
        }
        // SLAAC (RFC 4862 §5.5.3): 64-bit interface identifiers only.
        if !p.autonomous || p.prefix_len != 64 || p.preferred_lifetime > p.valid_lifetime {
            return;
        }
        let valid = expiry(now, p.valid_lifetime);
        let preferred = expiry(now, p.preferred_lifetime);
        let mut found = false;
        for a in self
            .addresses
            .iter_mut()
            .filter(|a| a.kind == Kind::Slaac && a.prefix == prefix)
        {
            found = true;
            a.preferred_until = preferred;
            let remaining = a.valid_until.map(|t| t.saturating_duration_since(now));
            let received = Duration::from_secs(u64::from(p.valid_lifetime));
            // (e): a short lifetime is only believed down to two hours.
            if p.valid_lifetime == u32::MAX
                || received > TWO_HOURS
                || remaining.is_some_and(|r| received > r)
            {
                a.valid_until = valid;
            } else if remaining.is_none_or(|r| r > TWO_HOURS) {
                a.valid_until = now.checked_add(TWO_HOURS);
            }
        }
        if found || p.valid_lifetime == 0 {
            return;
        }
        let slaac = self
            .addresses
            .iter()
            .filter(|a| a.kind == Kind::Slaac)
            .count();
        if slaac >= self.config.max_addresses {
            stats.ndp.drop_table_limit += 1;
            return;
        }
        self.add_address(
            now,
            rng,
            stats,
            prefix,
            64,
            Kind::Slaac,
            valid,
            preferred,
            0,
        );
    }

    fn start_dhcp(&mut self, now: Instant, rng: &mut StdRng) {
        let mut xid = [0u8; 3];
        rng.fill_bytes(&mut xid);
        let delay = Duration::from_millis(rng.random_range(0..INF_MAX_DELAY_MS));
        self.dhcp = Some(InfoRequest {
            xid,
            started: now,
            next: now + delay,
            timeout: INF_TIMEOUT,
        });
    }

    fn send_dhcp(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        if self.dhcp_refresh.is_some_and(|t| t <= now) {
            self.dhcp_refresh = None;
            self.start_dhcp(now, rng);
        }
        let Some(mut request) = self.dhcp.filter(|r| r.next <= now) else {
            return;
        };
        // RFC 8415 §15: RT = 2 RTprev ± 10 %, at most INF_MAX_RT.
        let jitter = rng.random_range(-0.1..0.1);
        request.timeout = request.timeout.mul_f64(2.0 + jitter).min(INF_MAX_RT);
        request.next = now + request.timeout;
        self.dhcp = Some(request);
        let Some(src) = self.link_local() else {
            return;
        };
        let elapsed = now.saturating_duration_since(request.started).as_millis() / 10;
        let elapsed = u16::try_from(elapsed).unwrap_or(u16::MAX);
        let Some(message) = dhcpv6::information_request(request.xid, self.mac, elapsed) else {
            return;
        };
        let dst = dhcpv6::ALL_SERVERS;
        let port = (dhcpv6::CLIENT_PORT, dhcpv6::SERVER_PORT);
        if let Some(packet) = dhcpv6::udp_packet(src, dst, 1, port.0, port.1, &message) {
            stats.dhcpv6.requests_out += 1;
            self.push_packet(stats, MacAddr::ipv6_multicast(dst), &packet);
        }
    }

    fn handle_dhcp_reply(&mut self, now: Instant, reply: &[u8], stats: &mut Stats) {
        let Some(request) = self.dhcp else {
            stats.dhcpv6.drop_invalid += 1;
            return;
        };
        let Some(mut info) = dhcpv6::parse_reply(reply, request.xid) else {
            stats.dhcpv6.drop_invalid += 1;
            return;
        };
        stats.dhcpv6.replies_in += 1;
        info.dns.truncate(self.config.max_dns);
        info.search.truncate(self.config.max_dns);
        let refresh = info.refresh.unwrap_or(IRT_DEFAULT).max(IRT_MINIMUM);
        self.dhcp = None;
        self.dhcp_refresh = expiry(now, refresh);
        self.dhcp_info = info;
        self.check_changed();
    }

    fn check_changed(&mut self) {
        let info = self.info();
        if info != self.reported {
            self.reported = info.clone();
            self.events.push_back(Ipv6Event::Changed(info));
        }
    }

    /// When [`Ipv6Host::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tentative = self.addresses.iter().filter_map(|a| match a.state {
            AddrState::Tentative { next, .. } => Some(next),
            AddrState::Usable => None,
        });
        let lifetimes = self
            .addresses
            .iter()
            .filter_map(|a| a.valid_until)
            .chain(self.routers.iter().filter_map(|r| r.expires))
            .chain(self.prefixes.iter().filter_map(|p| p.expires))
            .chain(self.dns.iter().filter_map(|d| d.expires))
            .chain(self.search.iter().filter_map(|d| d.expires));
        tentative
            .chain(lifetimes)
            .chain(self.cache.poll_timeout())
            .chain(self.rs.map(|(t, _)| t))
            .chain(self.mld.next.map(|(t, _)| t))
            .chain(self.mld.query_response)
            .chain(self.dhcp.map(|r| r.next))
            .chain(self.dhcp_refresh)
            .min()
    }

    /// Runs the timers due at `now`: DAD probes and verdicts, router solicitations, MLD
    /// reports, neighbour timers, and the expiry of addresses, routers, prefixes and DNS.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        self.cache.handle_timeout(now);
        self.run_cache_actions(now, stats);
        self.send_mld(now, rng, stats);
        let retransmit = self.cache.config().retransmit_time;
        let mut ready = Vec::new();
        let mut probes = Vec::new();
        for a in &mut self.addresses {
            let AddrState::Tentative { next, sent } = a.state else {
                continue;
            };
            if next > now {
                continue;
            }
            if sent < self.config.dad_transmits {
                probes.push((a.addr, a.nonce));
                a.state = AddrState::Tentative {
                    next: now + retransmit,
                    sent: sent + 1,
                };
            } else {
                a.state = AddrState::Usable;
                stats.ndp.dad_succeeded += 1;
                ready.push(a.kind);
            }
        }
        for (addr, nonce) in probes {
            let group = solicited_node(addr);
            let ns =
                ndp::neighbor_solicitation(Ipv6Addr::UNSPECIFIED, group, addr, None, Some(nonce));
            stats.ndp.ns_out += 1;
            self.push_multicast(stats, &ns);
        }
        for kind in ready {
            self.address_ready(now, kind);
        }
        if let Some((at, sent)) = self.rs {
            if at <= now {
                let src = self.link_local().unwrap_or(Ipv6Addr::UNSPECIFIED);
                let rs = ndp::router_solicitation(src, self.mac);
                stats.ndp.rs_out += 1;
                self.push_multicast(stats, &rs);
                let sent = sent + 1;
                self.rs = (sent < self.config.router_solicitations)
                    .then(|| (now + self.config.router_solicitation_interval, sent));
            }
        }
        self.expire(now);
        self.send_mld(now, rng, stats);
        self.send_dhcp(now, rng, stats);
        self.check_changed();
    }

    fn expire(&mut self, now: Instant) {
        while let Some(i) = self
            .addresses
            .iter()
            .position(|a| expired(a.valid_until, now))
        {
            self.remove_address(now, i);
        }
        self.routers.retain(|r| !expired(r.expires, now));
        self.prefixes.retain(|p| !expired(p.expires, now));
        self.dns.retain(|d| !expired(d.expires, now));
        self.search.retain(|d| !expired(d.expires, now));
    }

    fn send_mld(&mut self, now: Instant, rng: &mut StdRng, stats: &mut Stats) {
        let src = self.link_local().unwrap_or(Ipv6Addr::UNSPECIFIED);
        if let Some((at, copies)) = self.mld.next {
            if at <= now {
                let report = ndp::mld_report(src, &self.mld.changes);
                stats.mld.reports_out += 1;
                self.push_multicast(stats, &report);
                if copies > 1 {
                    let delay = rng.random_range(0..MAX_INITIAL_DELAY_MS);
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
            groups.extend_from_slice(&self.tun_groups);
            let records: Vec<(u8, Ipv6Addr)> = groups
                .into_iter()
                .map(|g| (record_type::MODE_IS_EXCLUDE, g))
                .collect();
            for chunk in records.chunks(MAX_MLD_RECORDS) {
                let report = ndp::mld_report(src, chunk);
                stats.mld.reports_out += 1;
                self.push_multicast(stats, &report);
            }
        }
    }
}

/// Adds, refreshes or (with `remove`) deletes `value` in a list of timed entries of at
/// most `max` entries.
fn update_timed<T: PartialEq>(
    list: &mut Vec<Timed<T>>,
    value: T,
    expires: Option<Instant>,
    remove: bool,
    max: usize,
    stats: &mut Stats,
) {
    match list.iter().position(|d| d.value == value) {
        Some(i) if remove => {
            list.remove(i);
        }
        Some(i) => list[i].expires = expires,
        None if remove => {}
        None if list.len() < max => list.push(Timed { value, expires }),
        None => stats.ndp.drop_table_limit += 1,
    }
}

/// The protocol after the IPv6 header of `packet` and where it starts, past one
/// hop-by-hop header if there is one (as MLD has); `None` when that header is cut short.
fn upper_layer(packet: &[u8]) -> Option<(u8, usize)> {
    match *packet.get(6)? {
        PROTO_HOP_BY_HOP => {
            let (&next, &len) = (packet.get(40)?, packet.get(41)?);
            Some((next, IPV6_HEADER_LEN + (usize::from(len) + 1) * 8))
        }
        next => Some((next, IPV6_HEADER_LEN)),
    }
}

/// True for the solicited-node groups `ff02::1:ff00:0/104`.
fn is_solicited_node(group: Ipv6Addr) -> bool {
    group.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

fn ipv6_at(bytes: &[u8], at: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

/// The destination of a packet built by [`crate::wire::ndp`].
fn ndp_dst(packet: &[u8]) -> Ipv6Addr {
    ipv6_at(packet, 24).unwrap_or(ALL_NODES)
}

#[cfg(test)]
mod tests;
