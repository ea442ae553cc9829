//! What the [`crate::Tap`] hands back to its caller: the results of the two fast paths
//! ([`Egress`], [`Ingress`]) and the queued outputs of the slow paths ([`Transmit`]).
//!
//! A leaf: every protocol module may use these types, and this module uses none of them.

use std::ops::Range;
use std::time::Instant;

use crate::wire::ethernet::HEADER_LEN;

/// Bytes of headroom [`crate::Tap::handle_tun_packet`] needs in front of the IP packet.
pub const HEADROOM: usize = HEADER_LEN;

/// Something the caller must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// An Ethernet frame for the link.
    Link(Vec<u8>),
    /// An IP packet for the TUN.
    Tun(Vec<u8>),
}

/// What to do with a packet given to [`crate::Tap::handle_tun_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Egress {
    /// The buffer now holds a complete Ethernet frame: send all of it to the link.
    Send,
    /// Nothing to send now: the packet was queued, answered or dropped (see
    /// [`crate::Tap::poll_transmit`] and [`crate::Tap::stats`]).
    Consumed,
}

/// What to do with a frame given to [`crate::Tap::handle_link_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Ingress {
    /// Write `frame[range]`, an IP packet, to the TUN.
    Deliver(Range<usize>),
    /// Nothing for the TUN: the frame was handled (ARP, DHCP) or dropped.
    Consumed,
}

/// A protocol deadline: when [`crate::Tap::handle_timeout`] must next run, and which
/// timer asks for it (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// When it is due.
    pub at: Instant,
    /// Which timer it is, e.g. `"dhcp renew"` or `"arp retransmit"`.
    pub reason: &'static str,
}

impl Timer {
    /// A deadline `at`, for `reason`.
    pub fn new(at: Instant, reason: &'static str) -> Timer {
        Timer { at, reason }
    }

    /// The earliest of some deadlines, or `None` when there are none.
    pub fn earliest(timers: impl IntoIterator<Item = Option<Timer>>) -> Option<Timer> {
        timers.into_iter().flatten().min_by_key(|t| t.at)
    }
}
