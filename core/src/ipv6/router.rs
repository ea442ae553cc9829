//! Router discovery (RFC 4861 §6.3): router solicitation, then what router
//! advertisements teach — the default router list, the on-link prefixes, SLAAC
//! addresses (RFC 4862 §5.5.3), the link MTU, the neighbour cache's timing, and the DNS
//! servers and search domains of RFC 8106. Every list is bounded by the configuration;
//! what a full list refuses is counted in `stats.ndp.drop_table_limit`.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::addr::{Kind, NewAddress};
use super::{expired, expiry, mask, Ipv6Host};
use crate::stats::Stats;
use crate::wire::ethernet::MacAddr;
use crate::wire::ndp::{self, is_link_local, PrefixInfo, RouterAdvert};

/// Lifetime floor for SLAAC addresses against spoofed RAs (RFC 4862 §5.5.3 (e)).
const TWO_HOURS: Duration = Duration::from_secs(2 * 60 * 60);
/// The smallest IPv6 MTU.
const MIN_MTU: u32 = 1280;
/// Largest reachable time an RA may set (RFC 4861 `MAX_REACHABLE_TIME`).
const MAX_REACHABLE_TIME_MS: u32 = 3_600_000;

/// A value with a lifetime (`None`: infinite).
#[derive(Debug, Clone)]
pub(super) struct Timed<T> {
    pub(super) value: T,
    pub(super) expires: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct OnLinkPrefix {
    pub(super) prefix: Ipv6Addr,
    pub(super) prefix_len: u8,
    expires: Option<Instant>,
}

impl OnLinkPrefix {
    pub(super) fn contains(&self, addr: Ipv6Addr) -> bool {
        mask(addr, self.prefix_len) == self.prefix
    }
}

/// What router advertisements taught, and the state of router solicitation.
#[derive(Debug, Default)]
pub(super) struct RouterInfo {
    /// The default router list, first preferred.
    pub(super) routers: Vec<Timed<Ipv6Addr>>,
    pub(super) prefixes: Vec<OnLinkPrefix>,
    pub(super) dns: Vec<Timed<Ipv6Addr>>,
    pub(super) search: Vec<Timed<String>>,
    /// The MTU option of the last RA that had a usable one.
    pub(super) mtu: Option<u16>,
    /// Next router solicitation and how many were sent.
    pub(super) solicit: Option<(Instant, u8)>,
    solicit_started: bool,
}

impl RouterInfo {
    /// The earliest expiry of a router, prefix, DNS server or search domain.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        let routers = self.routers.iter().filter_map(|r| r.expires);
        let prefixes = self.prefixes.iter().filter_map(|p| p.expires);
        let dns = self.dns.iter().filter_map(|d| d.expires);
        let search = self.search.iter().filter_map(|d| d.expires);
        routers.chain(prefixes).chain(dns).chain(search).min()
    }

    /// Forgets the routers, prefixes and DNS entries whose lifetime is over.
    pub(super) fn expire(&mut self, now: Instant) {
        self.routers.retain(|r| !expired(r.expires, now));
        self.prefixes.retain(|p| !expired(p.expires, now));
        self.dns.retain(|d| !expired(d.expires, now));
        self.search.retain(|d| !expired(d.expires, now));
    }

    /// Takes `router` off the default router list.
    pub(super) fn remove_router(&mut self, router: Ipv6Addr) {
        self.routers.retain(|r| r.value != router);
    }
}

impl Ipv6Host {
    /// Starts router solicitation, once: when the link-local address becomes usable.
    pub(super) fn start_solicitation(&mut self, now: Instant) {
        if !self.ra.solicit_started {
            self.ra.solicit_started = true;
            self.ra.solicit = (self.config.router_solicitations > 0).then_some((now, 0));
        }
    }

    /// Solicits routers again from `now`, as at startup (the link moved). Before the
    /// link-local address is usable, solicitation starts when it becomes usable.
    pub(super) fn restart_solicitation(&mut self, now: Instant) {
        if self.ra.solicit_started && self.config.accept_ra {
            self.ra.solicit = (self.config.router_solicitations > 0).then_some((now, 0));
        }
    }

    /// Sends the router solicitation due at `now`.
    pub(super) fn send_rs(&mut self, now: Instant, stats: &mut Stats) {
        let Some((at, sent)) = self.ra.solicit else {
            return;
        };
        if at > now {
            return;
        }
        let src = self.link_local().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let rs = ndp::router_solicitation(self.mac, src);
        stats.ndp.rs_out += 1;
        self.push_frame(stats, rs);
        let sent = sent + 1;
        self.ra.solicit = (sent < self.config.router_solicitations)
            .then(|| (now + self.config.router_solicitation_interval, sent));
    }

    /// A router advertisement from `src`, already validated.
    pub(super) fn handle_ra(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        ra: RouterAdvert,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        // A valid RA ends router solicitation (RFC 4861 §6.3.7).
        self.ra.solicit = None;
        if let Some(mac) = ra.source_mac.filter(MacAddr::is_unicast) {
            self.cache.learn(now, src, mac, true);
        }
        let routers = &mut self.ra.routers;
        match (
            routers.iter().position(|r| r.value == src),
            ra.router_lifetime,
        ) {
            (Some(i), 0) => {
                routers.remove(i);
            }
            (Some(i), secs) => routers[i].expires = expiry(now, u32::from(secs)),
            (None, 0) => {}
            (None, secs) if routers.len() < self.config.max_routers => routers.push(Timed {
                value: src,
                expires: expiry(now, u32::from(secs)),
            }),
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
                self.ra.mtu = u16::try_from(mtu).ok();
            }
        }
        for p in &ra.prefixes {
            self.handle_prefix(now, p, rng, stats);
        }
        if ra.other || ra.managed {
            self.dhcp_wanted(now, rng);
        }
        let max_dns = self.config.max_dns;
        for (lifetime, servers) in &ra.rdnss {
            for server in servers {
                if server.is_multicast() || server.is_unspecified() {
                    continue;
                }
                let expires = expiry(now, *lifetime);
                let remove = *lifetime == 0;
                update_timed(&mut self.ra.dns, *server, expires, remove, max_dns, stats);
            }
        }
        for (lifetime, names) in &ra.dnssl {
            for name in names {
                let expires = expiry(now, *lifetime);
                let remove = *lifetime == 0;
                update_timed(
                    &mut self.ra.search,
                    name.clone(),
                    expires,
                    remove,
                    max_dns,
                    stats,
                );
            }
        }
    }

    /// A prefix information option: the on-link prefix list and SLAAC.
    fn handle_prefix(&mut self, now: Instant, p: &PrefixInfo, rng: &mut StdRng, stats: &mut Stats) {
        if is_link_local(p.prefix) || p.prefix.is_multicast() || p.prefix_len > 128 {
            return;
        }
        let prefix = mask(p.prefix, p.prefix_len);
        if p.on_link {
            let prefixes = &mut self.ra.prefixes;
            let existing = prefixes
                .iter()
                .position(|o| o.prefix == prefix && o.prefix_len == p.prefix_len);
            match (existing, p.valid_lifetime) {
                (Some(i), 0) => {
                    prefixes.remove(i);
                }
                (Some(i), secs) => prefixes[i].expires = expiry(now, secs),
                (None, 0) => {}
                (None, secs) if prefixes.len() < self.config.max_prefixes => {
                    prefixes.push(OnLinkPrefix {
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
        let new = NewAddress {
            prefix,
            prefix_len: 64,
            kind: Kind::Slaac,
            valid_until: valid,
            preferred_until: preferred,
            dad_counter: 0,
        };
        self.add_address(now, rng, stats, new);
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
