//! The driver's counters.

use super::link::FaultStats;
use crate::{Lease, Stats};

/// Counters of the driver and its [`Tap`](crate::Tap).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// The emulated host's counters.
    pub tap: Stats,
    /// Whether a TUN is attached.
    pub tun_attached: bool,
    /// Frames the link could not take (down, buffer full, a TCP peer not reading) and
    /// dropped.
    pub link_dropped_out: u64,
    /// Frames from the link dropped before the emulated host: empty, too large, or
    /// (VXLAN) from another source or VNI.
    pub link_dropped_in: u64,
    /// Bytes queued for a TCP link, not yet written; from 64 KiB the driver stops
    /// reading the TUN until the peer catches up.
    pub link_queued: u64,
    /// Packets the TUN could not take and dropped.
    pub tun_dropped_out: u64,
    /// Packets read from a TUN with virtio-net headers that could not be used (a
    /// super-segment or checksum request that does not match its packet) and dropped.
    pub tun_dropped_in: u64,
    /// Super-segments read from a TUN with virtio-net headers and split into packets.
    pub tun_super_segments_in: u64,
    /// Coalesced TCP super-segments written to a TUN with virtio-net headers.
    pub tun_super_segments_out: u64,
    /// Link frames or TUN packets that arrived while no TUN was attached.
    pub dropped_no_tun: u64,
    /// Times a connection-oriented link reconnected.
    pub link_reconnects: u64,
    /// Events dropped because the consumer of [`DriverEvents`](super::DriverEvents) was behind.
    pub events_dropped: u64,
    /// Times the loop woke up.
    pub wakeups: u64,
    /// The link's URL.
    pub link: String,
    /// The DHCP lease in force, if any.
    pub lease: Option<Lease>,
    /// What [`DriverConfig::link_faults`](super::DriverConfig::link_faults) did to the link's frames.
    pub link_faults: FaultStats,
}
