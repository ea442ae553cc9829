//! One presentation of leases, IPv6 state and events (feature `serde`): the JSON the
//! CLI prints with `--json` and the Java API (`io.tapemu.Lease`, `Ipv6Info`,
//! `TapListener`) reads. Both surfaces serialize these types, so they show the same
//! fields, under the same names, by the same rules.
//!
//! ```
//! # use std::time::{Duration, Instant};
//! # use tapemu::{Lease, Ipv4Route};
//! use tapemu::present::LeaseView;
//! let lease = Lease {
//!     address: "192.0.2.123".parse().unwrap(),
//!     prefix_len: 24,
//!     gateway: Some("192.0.2.1".parse().unwrap()),
//!     routes: vec![Ipv4Route::default_via("192.0.2.1".parse().unwrap())],
//!     dns: vec!["192.0.2.53".parse().unwrap()],
//!     domain: Some("lab.example".into()),
//!     search: vec![],
//!     mtu: None,
//!     broadcast: Some("192.0.2.255".parse().unwrap()),
//!     lease_time: Some(Duration::from_secs(3600)),
//!     t1: Some(Duration::from_secs(1800)),
//!     t2: Some(Duration::from_secs(3150)),
//!     server: "192.0.2.1".parse().unwrap(),
//!     acquired_at: Instant::now(),
//! };
//! let json = serde_json::to_string(&LeaseView::new(&lease, 1500)).unwrap();
//! assert_eq!(
//!     json,
//!     r#"{"address":"192.0.2.123","prefix":24,"gateway":"192.0.2.1","dns":["192.0.2.53"],"#
//!         .to_owned()
//!         + r#""domain":"lab.example","search":["lab.example"],"mtu":1500,"#
//!         + r#""routes":[{"destination":"192.0.2.0/24","gateway":null},"#
//!         + r#"{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}],"#
//!         + r#""lease_seconds":3600,"t1_seconds":1800,"t2_seconds":3150,"#
//!         + r#""broadcast":"192.0.2.255","server":"192.0.2.1"}"#
//! );
//! ```

use std::fmt;
use std::net::Ipv4Addr;

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

use crate::ipv4::route::prefix_mask;

mod stored;
use crate::{
    DhcpEvent, Event, Ipv4Event, Ipv4Interface, Ipv4Route, Ipv6Event, Ipv6Info, Ipv6Route, Lease,
    LeaseLostReason, MacAddr,
};
pub use stored::StoredLease;

/// The MTU to give the interface a lease configures: the server's interface MTU
/// (option 26) when it sent one, capped at the link's MTU (the emulated host never
/// sends more, [`crate::Tap::ipv4_mtu`]); the link's MTU when it sent none.
pub fn lease_mtu(lease: &Lease, link_mtu: u16) -> u16 {
    lease.mtu.map_or(link_mtu, |m| m.min(link_mtu))
}

/// The DNS search list of a lease: the domain search option (119) when the server sent
/// one, else the domain name (option 15) alone, as resolvers use it; possibly empty.
pub fn lease_search(lease: &Lease) -> Vec<&str> {
    if lease.search.is_empty() {
        lease.domain.iter().map(String::as_str).collect()
    } else {
        lease.search.iter().map(String::as_str).collect()
    }
}

/// Every route to install for an address: the on-link subnet first, then `routes`
/// (a lease's classless static routes, or the default route via its router).
pub fn routes_with_subnet(
    address: Ipv4Addr,
    prefix_len: u8,
    routes: &[Ipv4Route],
) -> Vec<Ipv4Route> {
    let subnet = Ipv4Route {
        destination: Ipv4Addr::from(u32::from(address) & prefix_mask(prefix_len)),
        prefix_len,
        gateway: None,
    };
    std::iter::once(subnet)
        .chain(routes.iter().copied())
        .collect()
}

/// The name a lease-loss reason has on both surfaces (`"expired"`, `"nak"`,
/// `"released"`). The match is exhaustive: a new reason gets its own name here.
pub fn lost_reason(reason: LeaseLostReason) -> &'static str {
    match reason {
        LeaseLostReason::Expired => "expired",
        LeaseLostReason::Nak => "nak",
        LeaseLostReason::Released => "released",
    }
}

/// `address/prefix_len` as one string.
struct Cidr<A>(A, u8);

impl<A: fmt::Display> Serialize for Cidr<A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/{}", self.0, self.1))
    }
}

/// A route as `{"destination":"192.0.2.0/24","gateway":"192.0.2.1"}`; `gateway` is
/// `null` for an on-link route.
fn route<S, A>(s: S, destination: A, prefix_len: u8, gateway: Option<A>) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    A: fmt::Display + Serialize,
{
    let mut route = s.serialize_struct("Route", 2)?;
    route.serialize_field("destination", &Cidr(destination, prefix_len))?;
    route.serialize_field("gateway", &gateway)?;
    route.end()
}

/// `{"destination":"192.0.2.0/24","gateway":"192.0.2.1"}`.
impl Serialize for Ipv4Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        route(s, self.destination, self.prefix_len, self.gateway)
    }
}

/// `{"destination":"::/0","gateway":"fe80::1"}`.
impl Serialize for Ipv6Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        route(s, self.destination, self.prefix_len, self.gateway)
    }
}

/// `"02:00:5e:10:00:01"`.
impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The IPv6 configuration as presented, field by field:
///
/// - `addresses`: the global addresses that passed DAD, as `"2001:db8::5/64"`;
/// - `link_local`: our link-local address, or `null` before it passed DAD;
/// - `routes`: on-link prefixes and, while a router is valid, `::/0` via it;
/// - `dns`, `search`: RDNSS servers and DNSSL domains (with stateless DHCPv6's);
/// - `mtu`: the router's advertised MTU, or `null` (Java: `-1`) when none was.
impl Serialize for Ipv6Info {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        ipv6_entries(&mut map, self)?;
        map.end()
    }
}

fn ipv6_entries<M: SerializeMap>(map: &mut M, info: &Ipv6Info) -> Result<(), M::Error> {
    let addresses: Vec<Cidr<_>> = info.addresses.iter().map(|(a, l)| Cidr(a, *l)).collect();
    map.serialize_entry("addresses", &addresses)?;
    map.serialize_entry("link_local", &info.link_local)?;
    map.serialize_entry("routes", &info.routes)?;
    map.serialize_entry("dns", &info.dns)?;
    map.serialize_entry("search", &info.search)?;
    map.serialize_entry("mtu", &info.mtu)
}

/// A DHCP lease as presented, with the link MTU its `mtu` is capped at. Field by field:
///
/// - `address`, `prefix`: our address and the subnet's prefix length;
/// - `gateway`: the default gateway (option 121's default route, else the first
///   router), or `null`;
/// - `dns`: the DNS servers, in the server's order;
/// - `domain`: the domain name (option 15), or `null`;
/// - `search`: the search list, [`lease_search`]: option 119, else the domain name;
/// - `mtu`: the interface MTU, [`lease_mtu`]: option 26 capped at the link MTU, else
///   the link MTU; always a number;
/// - `routes`: every route to install, [`routes_with_subnet`]: the on-link subnet
///   first, then option 121's routes or the default route via the router (so the
///   default route is both `gateway` and a route);
/// - `lease_seconds`, `t1_seconds`, `t2_seconds`: the lease time and the renewal and
///   rebinding times as used, `null` (Java: `-1`) for an infinite lease;
/// - `broadcast`: the broadcast address (option 28), or `null`;
/// - `server`: the server identifier (option 54).
#[derive(Debug, Clone, Copy)]
pub struct LeaseView<'a> {
    lease: &'a Lease,
    link_mtu: u16,
}

impl<'a> LeaseView<'a> {
    /// Presents `lease` on a link whose MTU is `link_mtu` ([`crate::Config::mtu`]).
    pub fn new(lease: &'a Lease, link_mtu: u16) -> LeaseView<'a> {
        LeaseView { lease, link_mtu }
    }
}

impl Serialize for LeaseView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        lease_entries(&mut map, self.lease, self.link_mtu)?;
        map.end()
    }
}

fn lease_entries<M: SerializeMap>(
    map: &mut M,
    lease: &Lease,
    link_mtu: u16,
) -> Result<(), M::Error> {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs());
    map.serialize_entry("address", &lease.address)?;
    map.serialize_entry("prefix", &lease.prefix_len)?;
    map.serialize_entry("gateway", &lease.gateway)?;
    map.serialize_entry("dns", &lease.dns)?;
    map.serialize_entry("domain", &lease.domain)?;
    map.serialize_entry("search", &lease_search(lease))?;
    map.serialize_entry("mtu", &lease_mtu(lease, link_mtu))?;
    let routes = routes_with_subnet(lease.address, lease.prefix_len, &lease.routes);
    map.serialize_entry("routes", &routes)?;
    map.serialize_entry("lease_seconds", &secs(lease.lease_time))?;
    map.serialize_entry("t1_seconds", &secs(lease.t1))?;
    map.serialize_entry("t2_seconds", &secs(lease.t2))?;
    map.serialize_entry("broadcast", &lease.broadcast)?;
    map.serialize_entry("server", &lease.server)
}

/// A configured IPv4 interface (a static address, or the one a lease set up): the
/// lease's `address`, `prefix`, `gateway`, `routes` (subnet first) and `mtu` (the
/// link's: a lease's own MTU comes with its lease event).
fn interface_entries<M: SerializeMap>(
    map: &mut M,
    iface: &Ipv4Interface,
    link_mtu: u16,
) -> Result<(), M::Error> {
    map.serialize_entry("address", &iface.address)?;
    map.serialize_entry("prefix", &iface.prefix_len)?;
    map.serialize_entry("gateway", &iface.default_gateway())?;
    let routes = routes_with_subnet(iface.address, iface.prefix_len, &iface.routes);
    map.serialize_entry("routes", &routes)?;
    map.serialize_entry("mtu", &link_mtu)
}

/// An event of the emulated host as presented: one JSON object whose `"event"` names
/// it, then its fields.
///
/// | `event` | from | fields |
/// |---|---|---|
/// | `lease` | [`DhcpEvent::LeaseAcquired`] | the [`LeaseView`] fields |
/// | `renewed` | [`DhcpEvent::LeaseRenewed`] | the [`LeaseView`] fields |
/// | `changed` | [`DhcpEvent::LeaseChanged`] | the new lease's fields, `old_address`, `old` (the old lease) |
/// | `lost` | [`DhcpEvent::LeaseLost`] | `address`, `reason` ([`lost_reason`]) |
/// | `declined` | [`DhcpEvent::LeaseDeclined`] | `address`, `mac` |
/// | `ipv4` | [`Ipv4Event::Up`] | `address`, `prefix`, `gateway`, `routes`, `mtu` (the link's) |
/// | `conflict` | [`Ipv4Event::AddressConflict`] | `address`, `mac` |
/// | `ipv6` | [`Ipv6Event::Changed`] | the [`Ipv6Info`] fields |
/// | `ipv6_conflict` | [`Ipv6Event::AddressConflict`] | `address` |
/// | `neighbour_unreachable` | [`Ipv4Event::NeighbourUnreachable`], [`Ipv6Event::NeighbourUnreachable`] | `address` |
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    event: &'a Event,
    link_mtu: u16,
}

impl<'a> EventView<'a> {
    /// Presents `event` of a host whose link MTU is `link_mtu` ([`crate::Config::mtu`]).
    pub fn new(event: &'a Event, link_mtu: u16) -> EventView<'a> {
        EventView { event, link_mtu }
    }

    /// The `"event"` name. The matches are exhaustive: a new event gets its own name.
    pub fn name(&self) -> &'static str {
        match self.event {
            Event::Dhcp(e) => match e {
                DhcpEvent::LeaseAcquired(_) => "lease",
                DhcpEvent::LeaseRenewed(_) => "renewed",
                DhcpEvent::LeaseChanged { .. } => "changed",
                DhcpEvent::LeaseLost { .. } => "lost",
                DhcpEvent::LeaseDeclined { .. } => "declined",
            },
            Event::Ipv4(e) => match e {
                Ipv4Event::Up(_) => "ipv4",
                Ipv4Event::AddressConflict { .. } => "conflict",
                Ipv4Event::NeighbourUnreachable(_) => "neighbour_unreachable",
            },
            Event::Ipv6(e) => match e {
                Ipv6Event::Changed(_) => "ipv6",
                Ipv6Event::AddressConflict(_) => "ipv6_conflict",
                Ipv6Event::NeighbourUnreachable(_) => "neighbour_unreachable",
            },
        }
    }
}

impl Serialize for EventView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mtu = self.link_mtu;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("event", self.name())?;
        match self.event {
            Event::Dhcp(DhcpEvent::LeaseAcquired(lease) | DhcpEvent::LeaseRenewed(lease)) => {
                lease_entries(&mut map, lease, mtu)?;
            }
            Event::Dhcp(DhcpEvent::LeaseChanged { old, new }) => {
                lease_entries(&mut map, new, mtu)?;
                map.serialize_entry("old_address", &old.address)?;
                map.serialize_entry("old", &LeaseView::new(old, mtu))?;
            }
            Event::Dhcp(DhcpEvent::LeaseLost { address, reason }) => {
                map.serialize_entry("address", address)?;
                map.serialize_entry("reason", lost_reason(*reason))?;
            }
            Event::Dhcp(DhcpEvent::LeaseDeclined { address, mac })
            | Event::Ipv4(Ipv4Event::AddressConflict { address, mac }) => {
                map.serialize_entry("address", address)?;
                map.serialize_entry("mac", mac)?;
            }
            Event::Ipv4(Ipv4Event::Up(iface)) => interface_entries(&mut map, iface, mtu)?,
            Event::Ipv4(Ipv4Event::NeighbourUnreachable(address)) => {
                map.serialize_entry("address", address)?;
            }
            Event::Ipv6(Ipv6Event::Changed(info)) => ipv6_entries(&mut map, info)?,
            Event::Ipv6(
                Ipv6Event::AddressConflict(address) | Ipv6Event::NeighbourUnreachable(address),
            ) => {
                map.serialize_entry("address", address)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;
