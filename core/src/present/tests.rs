use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

/// The lease the README shows.
fn lease() -> Lease {
    Lease {
        address: ip("192.0.2.123"),
        prefix_len: 24,
        gateway: Some(ip("192.0.2.1")),
        routes: vec![Ipv4Route::default_via(ip("192.0.2.1"))],
        dns: vec![ip("192.0.2.53")],
        domain: Some("lab.example".into()),
        search: vec![],
        mtu: None,
        broadcast: Some(ip("192.0.2.255")),
        lease_time: Some(Duration::from_secs(3600)),
        t1: Some(Duration::from_secs(1800)),
        t2: Some(Duration::from_secs(3150)),
        server: ip("192.0.2.1"),
        acquired_at: Instant::now(),
    }
}

fn event_json(event: Event, link_mtu: u16) -> String {
    serde_json::to_string(&EventView::new(&event, link_mtu)).expect("serializes")
}

fn event_value(event: Event, link_mtu: u16) -> Value {
    serde_json::from_str(&event_json(event, link_mtu)).expect("valid JSON")
}

#[test]
fn lease_event_is_the_readme_line_in_its_order() {
    let line = event_json(DhcpEvent::LeaseAcquired(lease()).into(), 1500);
    assert_eq!(
        line,
        concat!(
            r#"{"event":"lease","address":"192.0.2.123","prefix":24,"gateway":"192.0.2.1","#,
            r#""dns":["192.0.2.53"],"domain":"lab.example","search":["lab.example"],"mtu":1500,"#,
            r#""routes":[{"destination":"192.0.2.0/24","gateway":null},"#,
            r#"{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}],"#,
            r#""lease_seconds":3600,"t1_seconds":1800,"t2_seconds":3150,"#,
            r#""broadcast":"192.0.2.255","server":"192.0.2.1"}"#
        )
    );
}

#[test]
fn lease_mtu_is_the_servers_capped_at_the_link_else_the_links() {
    let mut l = lease();
    assert_eq!(lease_mtu(&l, 1500), 1500);
    assert_eq!(lease_mtu(&l, 1400), 1400);
    l.mtu = Some(1400);
    assert_eq!(lease_mtu(&l, 1500), 1400);
    l.mtu = Some(9000);
    assert_eq!(lease_mtu(&l, 1500), 1500);
    assert_eq!(
        event_value(DhcpEvent::LeaseRenewed(l).into(), 1500)["mtu"],
        json!(1500)
    );
}

#[test]
fn search_list_is_option_119_else_the_domain() {
    let mut l = lease();
    assert_eq!(lease_search(&l), ["lab.example"]);
    l.search = vec!["corp.example".into(), "lab.example".into()];
    assert_eq!(lease_search(&l), ["corp.example", "lab.example"]);
    l.domain = None;
    l.search.clear();
    assert!(lease_search(&l).is_empty());
    assert_eq!(
        event_value(DhcpEvent::LeaseAcquired(l).into(), 1500)["search"],
        json!([])
    );
}

#[test]
fn routes_are_the_subnet_then_classless_routes_without_a_default() {
    let mut l = lease();
    l.gateway = None;
    l.routes = vec![Ipv4Route {
        destination: ip("198.51.100.0"),
        prefix_len: 24,
        gateway: Some(ip("192.0.2.254")),
    }];
    let v = event_value(DhcpEvent::LeaseAcquired(l).into(), 1500);
    assert_eq!(v["gateway"], Value::Null);
    assert_eq!(
        v["routes"],
        json!([
            {"destination": "192.0.2.0/24", "gateway": null},
            {"destination": "198.51.100.0/24", "gateway": "192.0.2.254"},
        ])
    );
}

#[test]
fn an_infinite_lease_has_null_times() {
    let mut l = lease();
    l.lease_time = None;
    l.t1 = None;
    l.t2 = None;
    l.broadcast = None;
    l.domain = None;
    let v = serde_json::to_value(LeaseView::new(&l, 1500)).expect("serializes");
    for key in [
        "lease_seconds",
        "t1_seconds",
        "t2_seconds",
        "broadcast",
        "domain",
    ] {
        assert_eq!(v[key], Value::Null, "{key}");
    }
    assert!(v.get("event").is_none(), "a lease alone has no event name");
}

#[test]
fn changed_carries_the_new_lease_and_the_whole_old_one() {
    let old = lease();
    let mut new = lease();
    new.address = ip("192.0.2.124");
    let v = event_value(
        DhcpEvent::LeaseChanged {
            old: old.clone(),
            new,
        }
        .into(),
        1500,
    );
    assert_eq!(v["event"], "changed");
    assert_eq!(v["address"], "192.0.2.124");
    assert_eq!(v["old_address"], "192.0.2.123");
    assert_eq!(
        v["old"],
        serde_json::to_value(LeaseView::new(&old, 1500)).expect("serializes")
    );
}

#[test]
fn every_lost_reason_has_its_own_name() {
    for (reason, name) in [
        (LeaseLostReason::Expired, "expired"),
        (LeaseLostReason::Nak, "nak"),
        (LeaseLostReason::Released, "released"),
    ] {
        let line = event_json(
            DhcpEvent::LeaseLost {
                address: ip("192.0.2.123"),
                reason,
            }
            .into(),
            1500,
        );
        assert_eq!(
            line,
            format!(r#"{{"event":"lost","address":"192.0.2.123","reason":"{name}"}}"#)
        );
    }
}

#[test]
fn a_static_interface_is_presented_like_a_lease_without_dhcp_fields() {
    let iface = Ipv4Interface::new(ip("192.0.2.50"), 24, Some(ip("192.0.2.1")));
    let line = event_json(Ipv4Event::Up(iface).into(), 1400);
    assert_eq!(
        line,
        concat!(
            r#"{"event":"ipv4","address":"192.0.2.50","prefix":24,"gateway":"192.0.2.1","#,
            r#""routes":[{"destination":"192.0.2.0/24","gateway":null},"#,
            r#"{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}],"mtu":1400}"#
        )
    );
}

#[test]
fn conflicts_and_unreachable_neighbours() {
    let mac: MacAddr = "02:00:5e:10:00:99".parse().expect("test MAC");
    let address = ip("192.0.2.50");
    assert_eq!(
        event_json(Ipv4Event::AddressConflict { address, mac }.into(), 1500),
        r#"{"event":"conflict","address":"192.0.2.50","mac":"02:00:5e:10:00:99"}"#
    );
    assert_eq!(
        event_json(DhcpEvent::LeaseDeclined { address, mac }.into(), 1500),
        r#"{"event":"declined","address":"192.0.2.50","mac":"02:00:5e:10:00:99"}"#
    );
    assert_eq!(
        event_json(Ipv6Event::AddressConflict(ip6("2001:db8::5")).into(), 1500),
        r#"{"event":"ipv6_conflict","address":"2001:db8::5"}"#
    );
    assert_eq!(
        event_json(Ipv4Event::NeighbourUnreachable(address).into(), 1500),
        r#"{"event":"neighbour_unreachable","address":"192.0.2.50"}"#
    );
    assert_eq!(
        event_json(Ipv6Event::NeighbourUnreachable(ip6("fe80::1")).into(), 1500),
        r#"{"event":"neighbour_unreachable","address":"fe80::1"}"#
    );
}

#[test]
fn ipv6_info_fields() {
    let info = Ipv6Info {
        addresses: vec![(ip6("2001:db8:1::5"), 64)],
        link_local: Some(ip6("fe80::ff:fe00:1")),
        routes: vec![
            Ipv6Route {
                destination: ip6("2001:db8:1::"),
                prefix_len: 64,
                gateway: None,
            },
            Ipv6Route {
                destination: Ipv6Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Some(ip6("fe80::1")),
            },
        ],
        dns: vec![ip6("2001:db8:1::53")],
        search: vec!["lab.example".into()],
        mtu: None,
    };
    assert_eq!(
        event_json(Ipv6Event::Changed(info.clone()).into(), 1500),
        concat!(
            r#"{"event":"ipv6","addresses":["2001:db8:1::5/64"],"link_local":"fe80::ff:fe00:1","#,
            r#""routes":[{"destination":"2001:db8:1::/64","gateway":null},"#,
            r#"{"destination":"::/0","gateway":"fe80::1"}],"#,
            r#""dns":["2001:db8:1::53"],"search":["lab.example"],"mtu":null}"#
        )
    );
    let alone = serde_json::to_value(&info).expect("serializes");
    assert!(alone.get("event").is_none());
    assert_eq!(alone["routes"][1]["gateway"], "fe80::1");
    assert_eq!(
        serde_json::to_string(&Ipv6Info::default()).expect("serializes"),
        r#"{"addresses":[],"link_local":null,"routes":[],"dns":[],"search":[],"mtu":null}"#
    );
}

#[test]
fn stored_lease_round_trips_through_json_and_keeps_its_wall_clock_expiry() {
    let now = Instant::now();
    let now_unix = 1_700_000_000;
    let mut original = lease();
    original.acquired_at = now - Duration::from_secs(100);
    original.t2 = Some(Duration::from_millis(3_150_250));
    original.routes.push(Ipv4Route {
        destination: ip("198.51.100.0"),
        prefix_len: 24,
        gateway: None,
    });
    let stored = StoredLease::new(&original, now, now_unix);
    assert_eq!(stored.acquired_unix, now_unix - 100);
    let json = serde_json::to_string(&stored).expect("serializes");
    let value: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["routes"][0]["destination"], "0.0.0.0/0");
    assert_eq!(value["t2_ms"], 3_150_250);
    let back: StoredLease = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, stored);
    // Fifty seconds later, in another process.
    let later = now + Duration::from_secs(50);
    let rebuilt = back.to_lease(later, now_unix + 50);
    assert_eq!(rebuilt, original);
    assert!(!back.expired(now_unix + 3499));
    assert!(back.expired(now_unix + 3500));
}

#[test]
fn stored_lease_rounds_its_age_up_and_survives_an_unrepresentable_past() {
    let now = Instant::now();
    let mut original = lease();
    original.acquired_at = now - Duration::from_millis(100_500);
    let stored = StoredLease::new(&original, now, 1_000_000);
    assert_eq!(
        stored.acquired_unix,
        1_000_000 - 101,
        "never younger than it is"
    );
    // Older than the clock can express: counted from now, times shortened.
    let ancient = StoredLease {
        acquired_unix: 0,
        ..stored.clone()
    };
    let rebuilt = ancient.to_lease(now, u64::MAX);
    assert_eq!(rebuilt.acquired_at, now);
    assert!(rebuilt.expires_at().is_some_and(|at| at <= now));
    // An infinite lease stays infinite.
    let infinite = StoredLease {
        lease_ms: None,
        t1_ms: None,
        t2_ms: None,
        ..stored
    };
    assert!(!infinite.expired(u64::MAX));
    assert_eq!(infinite.to_lease(now, 2_000_000).expires_at(), None);
}

#[test]
fn stored_routes_reject_a_bad_destination() {
    for bad in [
        r#"{"destination":"10.0.0.0","gateway":null}"#,
        r#"{"destination":"10.0.0.0/33","gateway":null}"#,
        r#"{"destination":"10.0.0/8","gateway":null}"#,
    ] {
        assert!(serde_json::from_str::<Ipv4Route>(bad).is_err(), "{bad}");
    }
    let route: Ipv4Route =
        serde_json::from_str(r#"{"destination":"10.0.0.0/8","gateway":"192.0.2.1"}"#)
            .expect("parses");
    assert_eq!(route.gateway, Some(ip("192.0.2.1")));
}
