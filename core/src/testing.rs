//! The one test harness (feature `test-util`, and every unit test): a [`Tap`] on a
//! virtual clock, the way a simulated link peer sees it. Time moves only when a test
//! says so, and every timer runs at the instant it was due.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::{Config, Event, Ipv4Interface, Ipv4Mode, Ipv6Mode, MacAddr, Tap, Transmit};

/// A Tap at `mac` with the static address 192.0.2.123/24 (gateway as given), IPv6 off,
/// its first gratuitous ARP already drained.
pub fn static_ipv4_tap(mac: MacAddr, gateway: Option<Ipv4Addr>, now: Instant) -> Tap {
    let config = Config {
        mac: Some(mac),
        ipv4: Ipv4Mode::Static(Ipv4Interface::new(
            Ipv4Addr::new(192, 0, 2, 123),
            24,
            gateway,
        )),
        ipv6: Ipv6Mode::Disabled,
        ..Config::default()
    };
    let mut tap = Tap::new(config, now);
    drain(&mut tap);
    tap
}

/// Every output the Tap has queued, in order.
pub fn drain(tap: &mut Tap) -> Vec<Transmit> {
    std::iter::from_fn(|| tap.poll_transmit()).collect()
}

/// Every event the Tap has queued, in order.
pub fn events(tap: &mut Tap) -> Vec<Event> {
    std::iter::from_fn(|| tap.poll_event()).collect()
}

/// Runs every timer due up to `until`, each at the instant it was due; returns what was
/// sent with the time it was sent.
pub fn run_until(tap: &mut Tap, until: Instant) -> Vec<(Instant, Transmit)> {
    let mut out = Vec::new();
    while let Some(t) = tap.poll_timeout().filter(|t| *t <= until) {
        tap.handle_timeout(t);
        out.extend(drain(tap).into_iter().map(|x| (t, x)));
    }
    out
}

/// The Ethernet frames among some outputs.
pub fn link_frames(out: &[Transmit]) -> Vec<&[u8]> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Link(frame) => Some(frame.as_slice()),
            Transmit::Tun(_) => None,
        })
        .collect()
}

/// The IP packets for the TUN among some outputs.
pub fn tun_packets(out: &[Transmit]) -> Vec<&[u8]> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Tun(packet) => Some(packet.as_slice()),
            Transmit::Link(_) => None,
        })
        .collect()
}

/// A [`Tap`] with its own virtual clock.
#[derive(Debug)]
pub struct Sim {
    /// The emulated host.
    pub tap: Tap,
    /// The virtual time now.
    pub now: Instant,
}

impl Sim {
    /// A Tap created at `now`.
    pub fn new(config: crate::Config, now: Instant) -> Sim {
        Sim {
            tap: Tap::new(config, now),
            now,
        }
    }

    /// Moves the clock on by `by`, running every timer due on the way at its own
    /// instant; returns what was sent, with when.
    pub fn advance(&mut self, by: Duration) -> Vec<(Instant, Transmit)> {
        let until = self.now + by;
        let out = run_until(&mut self.tap, until);
        self.now = until;
        out
    }

    /// Hands the Tap a frame from the link now; returns what it asked to send.
    pub fn link_frame(&mut self, frame: &[u8]) -> (crate::Ingress, Vec<Transmit>) {
        let ingress = self.tap.handle_link_frame(self.now, frame);
        (ingress, drain(&mut self.tap))
    }

    /// Every output queued so far.
    pub fn drain(&mut self) -> Vec<Transmit> {
        drain(&mut self.tap)
    }

    /// Every event queued so far.
    pub fn events(&mut self) -> Vec<Event> {
        events(&mut self.tap)
    }
}
