//! tapemu emulates a TAP (Ethernet) device on top of a TUN (IP) device.
//!
//! The heart is [`Tap`], a sans-IO state machine: it never reads the clock, touches a
//! socket or a file descriptor. The caller feeds it IP packets from the TUN and
//! Ethernet frames from the link, each with the current time, and carries out the
//! frames, packets and events it hands back. It adds and strips Ethernet headers,
//! answers and sends ARP like a Linux host, resolves neighbours while queueing the
//! packets waiting for them, gets its IPv4 address from a DHCP server and keeps it
//! renewed ([`ipv4::dhcp`]), is a full IPv6 host on the link — DAD, NDP, router discovery,
//! SLAAC, RDNSS/DNSSL, stateless DHCPv6 ([`ipv6`], [`wire::ndp`], [`ipv6::dhcpv6`]) — and reports
//! what it drops.
//!
//! ```
//! use std::time::Instant;
//! use tapemu::{Config, Egress, Ipv4Interface, Ipv4Mode, Tap, HEADROOM};
//!
//! let now = Instant::now();
//! let iface = Ipv4Interface::new("192.0.2.123".parse().unwrap(), 24, Some("192.0.2.1".parse().unwrap()));
//! let mut tap = Tap::new(Config { ipv4: Ipv4Mode::Static(iface), ..Config::default() }, now);
//! // A broadcast UDP packet from the TUN, behind 14 bytes of headroom.
//! let mut frame = vec![0u8; HEADROOM];
//! etherparse::PacketBuilder::ipv4([192, 0, 2, 123], [255, 255, 255, 255], 64)
//!     .udp(5000, 5000)
//!     .write(&mut frame, b"hello")
//!     .unwrap();
//! assert_eq!(tap.handle_tun_packet(now, &mut frame), Egress::Send);
//! assert_eq!(&frame[..6], &[0xff; 6]);
//! ```

pub mod config;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod io;
pub mod ipv4;
pub mod ipv6;
pub mod neighbour;
pub mod offload;
#[cfg(feature = "serde")]
pub mod present;
pub mod stats;
pub mod tap;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod wire;

pub use config::{Config, ConfigError};
pub use io::{Egress, Ingress, Timer, Transmit, HEADROOM};
pub use ipv4::dhcp::{DhcpConfig, DhcpEvent, DhcpState, Lease, LeaseLostReason};
pub use ipv4::route::{Ipv4Interface, Ipv4Route, NextHop};
pub use ipv4::{Ipv4Event, Ipv4Mode};
pub use ipv6::{Ipv6Config, Ipv6Event, Ipv6Info, Ipv6Mode, Ipv6Route, LinkLocalMode};
pub use neighbour::NeighbourConfig;
pub use stats::Stats;
pub use tap::{Event, Tap};
pub use wire::ethernet::MacAddr;
