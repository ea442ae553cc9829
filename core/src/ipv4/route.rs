//! IPv4 addressing of the emulated interface and the next-hop decision for packets
//! leaving through it.

use std::net::Ipv4Addr;

use crate::wire::ethernet::MacAddr;

/// A route: packets to `destination/prefix_len` go to `gateway`, or straight to the
/// destination when the route is on-link (`gateway` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Route {
    /// Network address.
    pub destination: Ipv4Addr,
    /// Prefix length, 0–32.
    pub prefix_len: u8,
    /// Next hop, or `None` for an on-link route.
    pub gateway: Option<Ipv4Addr>,
}

impl Ipv4Route {
    /// The default route (`0.0.0.0/0`) via `gateway`.
    pub fn default_via(gateway: Ipv4Addr) -> Ipv4Route {
        Ipv4Route {
            destination: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            gateway: Some(gateway),
        }
    }

    /// True when `addr` lies in this route's network.
    #[inline]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.prefix_len);
        u32::from(addr) & mask == u32::from(self.destination) & mask
    }
}

/// The netmask of a prefix length (lengths above 32 count as 32).
#[inline]
pub fn prefix_mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

/// The IPv4 configuration of the emulated interface: our address, the on-link subnet
/// and the routes through gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Interface {
    /// Our address.
    pub address: Ipv4Addr,
    /// Prefix length of the on-link subnet.
    pub prefix_len: u8,
    /// Routes beyond the subnet, most specific match wins; a default route is
    /// `0.0.0.0/0` via the gateway.
    pub routes: Vec<Ipv4Route>,
}

/// Where an outgoing IPv4 packet goes on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// To every host: `ff:ff:ff:ff:ff:ff`.
    Broadcast,
    /// To a multicast group's MAC.
    Multicast(MacAddr),
    /// To a neighbour, whose MAC must be resolved (the destination or a gateway).
    Neighbour(Ipv4Addr),
    /// Off-link with no route.
    NoRoute,
}

impl Ipv4Interface {
    /// An interface with `address/prefix_len` and, when given, a default route via `gateway`.
    pub fn new(address: Ipv4Addr, prefix_len: u8, gateway: Option<Ipv4Addr>) -> Self {
        let routes = gateway.map(Ipv4Route::default_via).into_iter().collect();
        Ipv4Interface {
            address,
            prefix_len: prefix_len.min(32),
            routes,
        }
    }

    /// The on-link subnet as a route.
    pub fn subnet(&self) -> Ipv4Route {
        let mask = prefix_mask(self.prefix_len);
        Ipv4Route {
            destination: Ipv4Addr::from(u32::from(self.address) & mask),
            prefix_len: self.prefix_len,
            gateway: None,
        }
    }

    /// The subnet-directed broadcast address, if the subnet has one (prefixes up to /30).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len <= 30)
            .then(|| Ipv4Addr::from(u32::from(self.address) | !prefix_mask(self.prefix_len)))
    }

    /// The default gateway, if a default route exists.
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        self.routes
            .iter()
            .find(|r| r.prefix_len == 0)
            .and_then(|r| r.gateway)
    }

    /// Chooses the next hop for a packet to `dst`.
    #[inline]
    pub fn next_hop(&self, dst: Ipv4Addr) -> NextHop {
        if dst.is_broadcast() {
            return NextHop::Broadcast;
        }
        if dst.is_multicast() {
            return NextHop::Multicast(MacAddr::ipv4_multicast(dst));
        }
        // On the hot path: one mask for the subnet test and its broadcast address.
        let dst_bits = u32::from(dst);
        let mask = prefix_mask(self.prefix_len);
        let on_link = (dst_bits ^ u32::from(self.address)) & mask == 0;
        if on_link && self.prefix_len <= 30 && dst_bits | mask == u32::MAX {
            return NextHop::Broadcast;
        }
        // The most specific match wins: the subnet (no gateway), then the routes.
        let mut best_len = on_link.then_some(self.prefix_len);
        let mut gateway = None;
        for route in &self.routes {
            if route.contains(dst) && best_len.is_none_or(|b| route.prefix_len > b) {
                best_len = Some(route.prefix_len);
                gateway = route.gateway;
            }
        }
        match best_len {
            Some(_) => NextHop::Neighbour(gateway.unwrap_or(dst)),
            None => NextHop::NoRoute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn chooses_broadcast_multicast_onlink_and_gateway() {
        let iface = Ipv4Interface::new(ip("192.0.2.123"), 24, Some(ip("192.0.2.1")));
        assert_eq!(iface.next_hop(ip("255.255.255.255")), NextHop::Broadcast);
        assert_eq!(iface.next_hop(ip("192.0.2.255")), NextHop::Broadcast);
        assert_eq!(
            iface.next_hop(ip("224.0.0.251")),
            NextHop::Multicast(MacAddr([1, 0, 0x5e, 0, 0, 0xfb]))
        );
        assert_eq!(
            iface.next_hop(ip("192.0.2.10")),
            NextHop::Neighbour(ip("192.0.2.10"))
        );
        assert_eq!(
            iface.next_hop(ip("203.0.113.9")),
            NextHop::Neighbour(ip("192.0.2.1"))
        );
    }

    #[test]
    fn no_gateway_means_no_route_off_link() {
        let iface = Ipv4Interface::new(ip("192.0.2.123"), 24, None);
        assert_eq!(iface.next_hop(ip("203.0.113.9")), NextHop::NoRoute);
        // Another /24's broadcast address is just an off-link host.
        assert_eq!(iface.next_hop(ip("198.51.100.255")), NextHop::NoRoute);
    }

    #[test]
    fn most_specific_route_wins() {
        let mut iface = Ipv4Interface::new(ip("192.0.2.123"), 24, Some(ip("192.0.2.1")));
        iface.routes.push(Ipv4Route {
            destination: ip("198.51.100.0"),
            prefix_len: 24,
            gateway: Some(ip("192.0.2.254")),
        });
        iface.routes.push(Ipv4Route {
            destination: ip("203.0.113.0"),
            prefix_len: 24,
            gateway: None,
        });
        assert_eq!(
            iface.next_hop(ip("198.51.100.7")),
            NextHop::Neighbour(ip("192.0.2.254"))
        );
        assert_eq!(
            iface.next_hop(ip("203.0.113.7")),
            NextHop::Neighbour(ip("203.0.113.7"))
        );
        assert_eq!(
            iface.next_hop(ip("8.8.8.8")),
            NextHop::Neighbour(ip("192.0.2.1"))
        );
        assert_eq!(iface.default_gateway(), Some(ip("192.0.2.1")));
    }

    #[test]
    fn point_to_point_prefixes_have_no_broadcast() {
        let iface = Ipv4Interface::new(ip("192.0.2.1"), 31, None);
        assert_eq!(iface.broadcast(), None);
        assert_eq!(
            iface.next_hop(ip("192.0.2.0")),
            NextHop::Neighbour(ip("192.0.2.0"))
        );
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(32), u32::MAX);
    }
}
