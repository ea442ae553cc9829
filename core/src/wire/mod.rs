//! Stateless parsing and emitting of what crosses the link: Ethernet framing, ARP,
//! ICMP errors, NDP, MLD and DHCPv6. No state and no policy here: the protocol modules
//! ([`crate::ipv4`], [`crate::ipv6`]) decide what to send and what a message means.

pub mod arp;
pub mod dhcpv4;
pub mod dhcpv6;
pub mod ethernet;
pub mod icmp;
pub mod igmp;
pub mod mld;
pub mod ndp;
