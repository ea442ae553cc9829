//! [`Config`]: everything a [`crate::Tap`] is created with.

use crate::ipv4::Ipv4Mode;
use crate::ipv6::Ipv6Mode;
use crate::neighbour::NeighbourConfig;
use crate::wire::ethernet::MacAddr;

/// Configuration of a [`crate::Tap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our MAC; `None` picks a random locally administered one from the RNG.
    pub mac: Option<MacAddr>,
    /// IPv4 addressing.
    pub ipv4: Ipv4Mode,
    /// IPv6 addressing: by default a link-local address and SLAAC.
    pub ipv6: Ipv6Mode,
    /// Largest IP packet the link carries (the Ethernet payload), normally 1500.
    pub mtu: u16,
    /// Neighbour cache timing and limits.
    pub neighbour: NeighbourConfig,
    /// Seed of the random source (MAC, reachable-time jitter, DHCP xids and backoff).
    pub rng_seed: u64,
    /// Most outputs held for [`crate::Tap::poll_transmit`] before new ones are dropped.
    pub max_pending_transmits: usize,
    /// Most events held for [`crate::Tap::poll_event`] before new ones are dropped.
    pub max_pending_events: usize,
    /// Most IPv4 multicast groups learnt from the TUN side's IGMP reports; a group
    /// beyond the limit is not learnt (counted), and its frames are dropped like those of
    /// any group we do not take.
    pub max_ipv4_groups: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mac: None,
            ipv4: Ipv4Mode::Disabled,
            ipv6: Ipv6Mode::default(),
            mtu: 1500,
            neighbour: NeighbourConfig::default(),
            rng_seed: 0,
            max_pending_transmits: 4096,
            max_pending_events: 256,
            max_ipv4_groups: 32,
        }
    }
}
