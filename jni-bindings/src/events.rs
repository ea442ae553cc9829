//! What Java hears of the driver: each event as one JSON object, the very one the CLI
//! prints with `--json` ([`tapemu::present`]), which `TapEmulator.onNativeEvent` parses
//! (`io.tapemu.Json`) and hands to the listener by its `"event"` name. The end is
//! `{"event":"stopped","error":…}`. Link status and TUN failures are the CLI's
//! `link_up`, `link_down` and `tun_failed` lines, field for field.
//!
//! The lease in force is also kept in its stored form ([`stored_lease`]), which
//! `TapEmulator.storedLease()` reads back.

use std::time::Instant;

use serde_json::json;
use tapemu::driver::{DriverEvent, LinkStatus};
use tapemu::present::{EventView, StoredLease};
use tapemu::{DhcpEvent, Event, Ipv4Event, Ipv6Event};

/// The JSON `onNativeEvent` gets for `event`, or `None` for what the Java API does not
/// report: neighbour failures, and the IPv4 interface coming up under DHCP (its lease
/// event follows). With a static address (`is_static`) the interface coming up is the
/// listener's `onLeaseAcquired`.
pub fn to_java(event: &DriverEvent, is_static: bool, link_mtu: u16) -> Option<String> {
    match event {
        DriverEvent::Tap(event) => tap_event(event, is_static, link_mtu),
        DriverEvent::Stopped { error } => {
            Some(stopped(error.as_ref().map(ToString::to_string).as_deref()))
        }
        DriverEvent::Link(LinkStatus::Up) => {
            tracing::info!("link up");
            Some(json!({"event": "link_up"}).to_string())
        }
        DriverEvent::Link(LinkStatus::Down { error, retry_in }) => {
            tracing::warn!("link down: {error}");
            let retry_ms = retry_in.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            Some(
                json!({"event": "link_down", "error": error.to_string(), "retry_ms": retry_ms})
                    .to_string(),
            )
        }
        DriverEvent::TunFailed(e) => {
            tracing::warn!("TUN failed and was detached: {e}");
            Some(json!({"event": "tun_failed", "error": e.to_string()}).to_string())
        }
        other => {
            tracing::debug!("driver event {other:?}");
            None
        }
    }
}

fn tap_event(event: &Event, is_static: bool, link_mtu: u16) -> Option<String> {
    let reported = match event {
        Event::Ipv4(Ipv4Event::Up(_)) => is_static,
        Event::Ipv4(Ipv4Event::NeighbourUnreachable(_))
        | Event::Ipv6(Ipv6Event::NeighbourUnreachable(_)) => false,
        _ => true,
    };
    if !reported {
        tracing::debug!("tapemu event {event:?}");
        return None;
    }
    serde_json::to_string(&EventView::new(event, link_mtu))
        .inspect_err(|e| tracing::error!("JSON of {event:?}: {e}"))
        .ok()
}

/// What a DHCP event does to the stored lease: `Some(Some(json))` for a lease now in
/// force (acquired, renewed, changed), `Some(None)` when it is lost, `None` when it
/// stays as it is. The lease was acquired just before the event reached us: its age is
/// taken as the time since then on this thread's clock, rounded up by
/// [`StoredLease::new`], so the stored lease never seems to last longer than it does.
pub fn stored_lease(event: &DriverEvent) -> Option<Option<String>> {
    let DriverEvent::Tap(Event::Dhcp(event)) = event else {
        return None;
    };
    let lease = match event {
        DhcpEvent::LeaseAcquired(lease) | DhcpEvent::LeaseRenewed(lease) => lease,
        DhcpEvent::LeaseChanged { new, .. } => new,
        DhcpEvent::LeaseLost { .. } => return Some(None),
        _ => return None,
    };
    let now = Instant::now().max(lease.acquired_at);
    let stored = StoredLease::new(lease, now, crate::config::unix_now());
    Some(
        serde_json::to_string(&stored)
            .inspect_err(|e| tracing::error!("JSON of the stored lease: {e}"))
            .ok(),
    )
}

/// The last event: the emulator stopped, on its own with `error`, or after `close()`.
pub fn stopped(error: Option<&str>) -> String {
    json!({"event": "stopped", "error": error}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapemu::Ipv4Interface;

    #[test]
    fn the_interface_coming_up_is_reported_only_for_a_static_address() {
        let iface = Ipv4Interface::new(
            "192.0.2.50".parse().unwrap(),
            24,
            Some("192.0.2.1".parse().unwrap()),
        );
        let up = DriverEvent::Tap(Event::Ipv4(Ipv4Event::Up(iface)));
        assert_eq!(to_java(&up, false, 1500), None);
        let json = to_java(&up, true, 1400).unwrap();
        assert!(json.starts_with(r#"{"event":"ipv4","address":"192.0.2.50","prefix":24,"#));
        assert!(json.ends_with(r#","mtu":1400}"#), "{json}");
    }

    #[test]
    fn neighbour_failures_are_not_reported() {
        let gone = DriverEvent::Tap(Event::Ipv4(Ipv4Event::NeighbourUnreachable(
            "192.0.2.9".parse().unwrap(),
        )));
        assert_eq!(to_java(&gone, true, 1500), None);
    }

    /// The very lines `tapemu run --json` prints (cli/src/output.rs).
    #[test]
    fn link_status_and_tun_failures_as_the_cli_prints_them() {
        let up = DriverEvent::Link(LinkStatus::Up);
        assert_eq!(to_java(&up, true, 1500).unwrap(), r#"{"event":"link_up"}"#);
        let error = tapemu::driver::DriverError::Link {
            url: "tcp://192.0.2.1:7001?len=2".into(),
            source: std::sync::Arc::new(std::io::Error::other("connection reset")),
        };
        let down = DriverEvent::Link(LinkStatus::Down {
            error: error.clone(),
            retry_in: Some(std::time::Duration::from_millis(250)),
        });
        assert_eq!(
            to_java(&down, false, 1500).unwrap(),
            r#"{"error":"link tcp://192.0.2.1:7001?len=2: connection reset","event":"link_down","retry_ms":250}"#
        );
        let down = DriverEvent::Link(LinkStatus::Down {
            error,
            retry_in: None,
        });
        assert!(to_java(&down, false, 1500)
            .unwrap()
            .ends_with(r#""retry_ms":null}"#));
        let tun = DriverEvent::TunFailed(std::sync::Arc::new(std::io::Error::other("gone")));
        assert_eq!(
            to_java(&tun, false, 1500).unwrap(),
            r#"{"error":"gone","event":"tun_failed"}"#
        );
    }

    #[test]
    fn lease_events_keep_the_stored_lease_and_losing_it_clears_it() {
        let now = Instant::now();
        let lease = tapemu::Lease {
            address: "192.0.2.123".parse().unwrap(),
            prefix_len: 24,
            gateway: Some("192.0.2.1".parse().unwrap()),
            routes: vec![],
            dns: vec![],
            domain: None,
            search: vec![],
            mtu: None,
            broadcast: None,
            lease_time: Some(std::time::Duration::from_secs(3600)),
            t1: None,
            t2: None,
            server: "192.0.2.1".parse().unwrap(),
            acquired_at: now,
        };
        let acquired = DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseAcquired(lease.clone())));
        let json = stored_lease(&acquired).unwrap().unwrap();
        let back: StoredLease = serde_json::from_str(&json).unwrap();
        assert_eq!(back.address, lease.address);
        assert_eq!(back.lease_ms, Some(3_600_000));
        let age = crate::config::unix_now().saturating_sub(back.acquired_unix);
        assert!(age <= 2, "acquired just now: {age} s ago");
        let lost = DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseLost {
            address: lease.address,
            reason: tapemu::LeaseLostReason::Expired,
        }));
        assert_eq!(stored_lease(&lost), Some(None));
        assert_eq!(stored_lease(&DriverEvent::Link(LinkStatus::Up)), None);
    }

    #[test]
    fn stopped_with_and_without_an_error() {
        assert_eq!(
            to_java(&DriverEvent::Stopped { error: None }, false, 1500).unwrap(),
            r#"{"error":null,"event":"stopped"}"#
        );
        assert_eq!(
            stopped(Some("link \"x\" failed")),
            r#"{"error":"link \"x\" failed","event":"stopped"}"#
        );
    }
}
