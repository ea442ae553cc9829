//! Our addresses: the link-local one and those SLAAC forms, their interface identifiers
//! (modified EUI-64 or RFC 7217 stable privacy), duplicate address detection (RFC 4862
//! §5.4, with RFC 7527 nonces) and the answers to neighbour solicitations for them.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngExt};

use super::{expired, mask, Ipv6Event, Ipv6Host, LinkLocalMode};
use crate::stats::Stats;
use crate::wire::ethernet::{self, MacAddr};
use crate::wire::icmp::Endpoints;
use crate::wire::mld::record_type;
use crate::wire::ndp::{self, is_link_local, solicited_node, NaFlags, NeighborSolicit, ALL_NODES};

/// Stable-privacy identifiers are retried this often after a DAD failure (RFC 7217
/// `IDGEN_RETRIES`).
const IDGEN_RETRIES: u8 = 3;
/// Largest random delay before the first DAD probe (RFC 4862 §5.4.2,
/// `MAX_RTR_SOLICITATION_DELAY`).
const MAX_DAD_DELAY_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    LinkLocal,
    Slaac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AddrState {
    /// Duplicate address detection running: next probe (or the verdict) at `next`.
    Tentative {
        next: Instant,
        sent: u8,
    },
    Usable,
}

#[derive(Debug, Clone)]
pub(super) struct Address {
    pub(super) addr: Ipv6Addr,
    pub(super) prefix: Ipv6Addr,
    pub(super) prefix_len: u8,
    pub(super) kind: Kind,
    pub(super) state: AddrState,
    pub(super) valid_until: Option<Instant>,
    pub(super) preferred_until: Option<Instant>,
    dad_counter: u8,
    nonce: [u8; 6],
}

impl Address {
    pub(super) fn usable(&self) -> bool {
        self.state == AddrState::Usable
    }

    fn preferred(&self, now: Instant) -> bool {
        self.usable() && self.preferred_until.is_none_or(|t| now < t)
    }
}

/// An address to form: its prefix, kind, lifetimes and DAD attempt.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewAddress {
    pub(super) prefix: Ipv6Addr,
    pub(super) prefix_len: u8,
    pub(super) kind: Kind,
    pub(super) valid_until: Option<Instant>,
    pub(super) preferred_until: Option<Instant>,
    /// How many identifiers failed DAD before this one (RFC 7217 `DAD_Counter`).
    pub(super) dad_counter: u8,
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

impl Ipv6Host {
    /// The interface identifier for an address in `prefix`, the `dad_counter`-th try.
    fn interface_id(&self, prefix: Ipv6Addr, dad_counter: u8) -> [u8; 8] {
        match &self.config.link_local {
            LinkLocalMode::Eui64 => eui64(self.mac),
            LinkLocalMode::StablePrivacy { secret } => {
                let mut input = Vec::with_capacity(15);
                input.extend_from_slice(&prefix.octets()[..8]);
                input.extend_from_slice(&self.mac.0);
                input.push(dad_counter);
                siphash24(secret, &input).to_be_bytes()
            }
        }
    }

    /// Forms an address and starts its DAD (or makes it usable at once without DAD).
    pub(super) fn add_address(
        &mut self,
        now: Instant,
        rng: &mut StdRng,
        stats: &mut Stats,
        new: NewAddress,
    ) {
        let mut octets = new.prefix.octets();
        octets[8..].copy_from_slice(&self.interface_id(new.prefix, new.dad_counter));
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
            let delay = rng.random_range(0..MAX_DAD_DELAY_MS);
            AddrState::Tentative {
                next: now + Duration::from_millis(delay),
                sent: 0,
            }
        };
        self.addresses.push(Address {
            addr,
            prefix: new.prefix,
            prefix_len: new.prefix_len,
            kind: new.kind,
            state,
            valid_until: new.valid_until,
            preferred_until: new.preferred_until,
            dad_counter: new.dad_counter,
            nonce,
        });
        if new_group {
            self.mld.change(now, record_type::CHANGE_TO_EXCLUDE, group);
        }
        if state == AddrState::Usable {
            self.address_ready(now, new.kind);
        }
    }

    pub(super) fn remove_address(&mut self, now: Instant, index: usize) -> Address {
        let removed = self.addresses.remove(index);
        let group = solicited_node(removed.addr);
        if !self.groups().contains(&group) {
            self.mld.change(now, record_type::CHANGE_TO_INCLUDE, group);
        }
        removed
    }

    fn address_ready(&mut self, now: Instant, kind: Kind) {
        if kind == Kind::LinkLocal {
            // Reports sent from :: during DAD are not learnt by every snooping switch;
            // like Linux, report every group again from the new link-local address.
            for group in self.groups() {
                self.mld.change(now, record_type::CHANGE_TO_EXCLUDE, group);
            }
            if self.config.accept_ra {
                self.start_solicitation(now);
            }
        }
    }

    pub(super) fn link_local(&self) -> Option<Ipv6Addr> {
        self.addresses
            .iter()
            .find(|a| a.kind == Kind::LinkLocal && a.usable())
            .map(|a| a.addr)
    }

    /// Announces every usable address with an unsolicited neighbour advertisement to
    /// all nodes, override flag set, carrying our MAC (RFC 4861 §7.2.6), so that
    /// neighbours and learning bridges find us where the link now is.
    pub(super) fn announce_addresses(&mut self, stats: &mut Stats) {
        let flags = NaFlags {
            override_flag: true,
            ..NaFlags::default()
        };
        let usable: Vec<Ipv6Addr> = self
            .addresses
            .iter()
            .filter(|a| a.usable())
            .map(|a| a.addr)
            .collect();
        for addr in usable {
            let ends = Endpoints::to_group(self.mac, addr, ALL_NODES);
            let na = ndp::neighbor_advertisement(&ends, addr, flags, Some(self.mac));
            stats.ndp.na_out += 1;
            self.push_frame(stats, na);
        }
    }

    /// Our source address towards `target`: the link-local one for link-local targets,
    /// else a preferred global address in the target's /64, else any usable one.
    pub(super) fn source_for(&self, now: Instant, target: Ipv6Addr) -> Option<Ipv6Addr> {
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

    /// A neighbour solicitation from `src` to `dst`: answered for our usable addresses,
    /// a DAD conflict for a tentative one (RFC 4862 §5.4.3).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_ns(
        &mut self,
        now: Instant,
        eth: &ethernet::Header,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ns: &NeighborSolicit,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let target = ns.target;
        let Some(index) = self.addresses.iter().position(|a| a.addr == target) else {
            stats.ndp.ignored += 1;
            return;
        };
        let address = &self.addresses[index];
        if !address.usable() {
            // Another node's DAD probe for our tentative address means a duplicate; a
            // probe carrying our own nonce is ours looped back.
            if src.is_unspecified() && ns.nonce != Some(address.nonce) {
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
            let ends = Endpoints::to_group(self.mac, target, ALL_NODES);
            let na = ndp::neighbor_advertisement(&ends, target, flags, Some(self.mac));
            stats.ndp.dad_defended += 1;
            stats.ndp.na_out += 1;
            self.push_frame(stats, na);
            return;
        }
        if let Some(mac) = ns.source_mac {
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
        let dst_mac = ns
            .source_mac
            .or_else(|| {
                self.cache
                    .get(src)
                    .map(|(_, mac)| mac)
                    .filter(MacAddr::is_unicast)
            })
            .unwrap_or(eth.src);
        let ends = Endpoints {
            src_mac: self.mac,
            dst_mac,
            src: target,
            dst: src,
        };
        let na = ndp::neighbor_advertisement(&ends, target, flags, multicast.then_some(self.mac));
        stats.ndp.na_out += 1;
        self.push_frame(stats, na);
    }

    /// Another host has the address at `index`: it goes, and with stable-privacy
    /// identifiers the next identifier is tried (RFC 7217 §6).
    pub(super) fn dad_failed(
        &mut self,
        now: Instant,
        index: usize,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
        let failed = self.remove_address(now, index);
        stats.ndp.dad_conflicts += 1;
        self.events
            .push_back(Ipv6Event::AddressConflict(failed.addr));
        if matches!(self.config.link_local, LinkLocalMode::StablePrivacy { .. })
            && failed.dad_counter < IDGEN_RETRIES
        {
            let retry = NewAddress {
                prefix: failed.prefix,
                prefix_len: failed.prefix_len,
                kind: failed.kind,
                valid_until: failed.valid_until,
                preferred_until: failed.preferred_until,
                dad_counter: failed.dad_counter + 1,
            };
            self.add_address(now, rng, stats, retry);
        }
    }

    /// Sends the DAD probes due at `now` and gives the verdict on addresses whose
    /// probes all went unanswered.
    pub(super) fn run_dad(&mut self, now: Instant, stats: &mut Stats) {
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
            let ends = Endpoints::to_group(self.mac, Ipv6Addr::UNSPECIFIED, solicited_node(addr));
            let ns = ndp::neighbor_solicitation(&ends, addr, None, Some(nonce));
            stats.ndp.ns_out += 1;
            self.push_frame(stats, ns);
        }
        for kind in ready {
            self.address_ready(now, kind);
        }
    }

    /// The next DAD probe or verdict.
    pub(super) fn dad_deadline(&self) -> Option<Instant> {
        self.addresses
            .iter()
            .filter_map(|a| match a.state {
                AddrState::Tentative { next, .. } => Some(next),
                AddrState::Usable => None,
            })
            .min()
    }

    /// Removes the addresses whose valid lifetime is over.
    pub(super) fn expire_addresses(&mut self, now: Instant) {
        while let Some(i) = self
            .addresses
            .iter()
            .position(|a| expired(a.valid_until, now))
        {
            self.remove_address(now, i);
        }
    }
}
