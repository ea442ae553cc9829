//! What Java hears of the driver: each event as one JSON object, the very one the CLI
//! prints with `--json` ([`tapemu::present`]), which `TapEmulator.onNativeEvent` parses
//! (`io.tapemu.Json`) and hands to the listener by its `"event"` name. The end is
//! `{"event":"stopped","error":…}`.

use serde_json::json;
use tapemu::driver::DriverEvent;
use tapemu::present::EventView;
use tapemu::{Event, Ipv4Event, Ipv6Event};

/// The JSON `onNativeEvent` gets for `event`, or `None` for what the Java API does not
/// report: link status and TUN failures (logged), neighbour failures, and the IPv4
/// interface coming up under DHCP (its lease event follows). With a static address
/// (`is_static`) the interface coming up is the listener's `onLeaseAcquired`.
pub fn to_java(event: &DriverEvent, is_static: bool, link_mtu: u16) -> Option<String> {
    match event {
        DriverEvent::Tap(event) => tap_event(event, is_static, link_mtu),
        DriverEvent::Stopped { error } => {
            Some(stopped(error.as_ref().map(ToString::to_string).as_deref()))
        }
        DriverEvent::Link(status) => {
            tracing::info!("link: {status:?}");
            None
        }
        DriverEvent::TunFailed(e) => {
            tracing::warn!("TUN failed and was detached: {e}");
            None
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
    fn neighbour_failures_and_link_status_are_not_reported() {
        let gone = DriverEvent::Tap(Event::Ipv4(Ipv4Event::NeighbourUnreachable(
            "192.0.2.9".parse().unwrap(),
        )));
        assert_eq!(to_java(&gone, true, 1500), None);
        let up = DriverEvent::Link(tapemu::driver::LinkStatus::Up);
        assert_eq!(to_java(&up, true, 1500), None);
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
