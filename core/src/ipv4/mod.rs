//! IPv4 on the link: the addressing mode, routes and next hop ([`route`]), and the
//! DHCPv4 client ([`dhcp`]).

pub mod dhcp;
pub mod route;

use std::net::Ipv4Addr;

use crate::wire::ethernet::MacAddr;
use dhcp::DhcpConfig;
use route::Ipv4Interface;

/// How the IPv4 address is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
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
