//! The text form of leases the Java side parses (`Lease.parse`): one `key=value` per
//! line; repeated keys (`route`, `dns`, `search`) keep their order.

use std::fmt::Write as _;

use std::net::Ipv4Addr;

use tapemu::ipv4::route::prefix_mask;
use tapemu::{Ipv4Interface, Ipv4Route, Ipv6Info, Lease, LeaseLostReason};

use crate::callbacks::{EventKind, JavaCallbacks};
use tapemu::{DhcpEvent, Event, Ipv6Event};

fn subnet(address: Ipv4Addr, prefix_len: u8) -> String {
    let network = Ipv4Addr::from(u32::from(address) & prefix_mask(prefix_len));
    format!("route={network}/{prefix_len}")
}

fn write_routes(s: &mut String, routes: &[Ipv4Route]) {
    for r in routes {
        match r.gateway {
            Some(gw) => {
                let _ = writeln!(s, "route={}/{} via {gw}", r.destination, r.prefix_len);
            }
            None => {
                let _ = writeln!(s, "route={}/{}", r.destination, r.prefix_len);
            }
        }
    }
}

/// Encodes a DHCP lease. `link_mtu` stands in when the server sent no MTU option; the
/// on-link subnet comes first among the routes.
pub fn encode(lease: &Lease, link_mtu: u16) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "address={}", lease.address);
    let _ = writeln!(s, "prefix={}", lease.prefix_len);
    if let Some(gw) = lease.gateway {
        let _ = writeln!(s, "gateway={gw}");
    }
    let _ = writeln!(s, "{}", subnet(lease.address, lease.prefix_len));
    write_routes(&mut s, &lease.routes);
    for d in &lease.dns {
        let _ = writeln!(s, "dns={d}");
    }
    if let Some(d) = &lease.domain {
        let _ = writeln!(s, "domain={}", d.replace('\n', " "));
    }
    let search: Vec<&str> = if lease.search.is_empty() {
        lease.domain.iter().map(String::as_str).collect()
    } else {
        lease.search.iter().map(String::as_str).collect()
    };
    for d in search {
        let _ = writeln!(s, "search={}", d.replace('\n', " "));
    }
    let _ = writeln!(s, "mtu={}", lease.mtu.unwrap_or(link_mtu).min(link_mtu));
    if let Some(b) = lease.broadcast {
        let _ = writeln!(s, "broadcast={b}");
    }
    let secs = |d: Option<std::time::Duration>| {
        d.map_or(-1, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    };
    let _ = writeln!(s, "lease={}", secs(lease.lease_time));
    let _ = writeln!(s, "t1={}", secs(lease.t1));
    let _ = writeln!(s, "t2={}", secs(lease.t2));
    let _ = writeln!(s, "server={}", lease.server);
    s
}

/// Encodes the IPv6 state for `Ipv6Info.parse`.
pub fn encode_ipv6(info: &Ipv6Info) -> String {
    let mut s = String::new();
    for (a, len) in &info.addresses {
        let _ = writeln!(s, "address={a}/{len}");
    }
    if let Some(ll) = info.link_local {
        let _ = writeln!(s, "link_local={ll}");
    }
    for r in &info.routes {
        match r.gateway {
            Some(gw) => {
                let _ = writeln!(s, "route={}/{} via {gw}", r.destination, r.prefix_len);
            }
            None => {
                let _ = writeln!(s, "route={}/{}", r.destination, r.prefix_len);
            }
        }
    }
    for d in &info.dns {
        let _ = writeln!(s, "dns={d}");
    }
    for d in &info.search {
        let _ = writeln!(s, "search={}", d.replace('\n', " "));
    }
    if let Some(mtu) = info.mtu {
        let _ = writeln!(s, "mtu={mtu}");
    }
    s
}

/// The reason string Java sees in `onLeaseLost`.
pub fn reason(reason: &LeaseLostReason) -> &'static str {
    match reason {
        LeaseLostReason::Expired => "expired",
        LeaseLostReason::Nak => "nak",
        LeaseLostReason::Released => "released",
        _ => "lost",
    }
}

/// Encodes a static configuration as a lease with no expiry.
pub fn encode_static(iface: &Ipv4Interface, mtu: u16) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "address={}", iface.address);
    let _ = writeln!(s, "prefix={}", iface.prefix_len);
    if let Some(gw) = iface
        .routes
        .iter()
        .find(|r| r.prefix_len == 0)
        .and_then(|r| r.gateway)
    {
        let _ = writeln!(s, "gateway={gw}");
    }
    let _ = writeln!(s, "{}", subnet(iface.address, iface.prefix_len));
    write_routes(&mut s, &iface.routes);
    let _ = writeln!(s, "mtu={mtu}");
    let _ = writeln!(s, "lease=-1");
    s
}

/// Forwards the lease events; others are logged.
pub fn forward(cb: &JavaCallbacks, event: Event, link_mtu: u16) {
    match event {
        Event::Dhcp(DhcpEvent::LeaseAcquired(l)) => {
            cb.event(EventKind::LeaseAcquired, Some(&encode(&l, link_mtu)), None)
        }
        Event::Dhcp(DhcpEvent::LeaseRenewed(l)) => {
            cb.event(EventKind::LeaseRenewed, Some(&encode(&l, link_mtu)), None)
        }
        Event::Dhcp(DhcpEvent::LeaseChanged { old, new }) => cb.event(
            EventKind::LeaseChanged,
            Some(&encode(&old, link_mtu)),
            Some(&encode(&new, link_mtu)),
        ),
        Event::Dhcp(DhcpEvent::LeaseLost { address, reason: r }) => cb.event(
            EventKind::LeaseLost,
            Some(&address.to_string()),
            Some(reason(&r)),
        ),
        Event::Dhcp(DhcpEvent::LeaseDeclined { address, mac }) => {
            tracing::warn!("declined {address}: in use by {mac}");
            cb.event(
                EventKind::AddressConflict,
                Some(&address.to_string()),
                Some(&mac.to_string()),
            )
        }
        Event::Ipv6(Ipv6Event::Changed(info)) => {
            cb.event(EventKind::Ipv6Changed, Some(&encode_ipv6(&info)), None)
        }
        Event::Ipv6(Ipv6Event::AddressConflict(address)) => {
            cb.event(EventKind::AddressConflict, Some(&address.to_string()), None)
        }
        other => tracing::debug!("tapemu event {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lease_text() {
        let iface = Ipv4Interface::new(
            "192.0.2.50".parse().unwrap(),
            24,
            Some("192.0.2.1".parse().unwrap()),
        );
        let s = encode_static(&iface, 1400);
        assert!(s.contains("address=192.0.2.50\n"));
        assert!(s.contains("prefix=24\n"));
        assert!(s.contains("gateway=192.0.2.1\n"));
        assert!(s.contains("route=0.0.0.0/0 via 192.0.2.1\n"));
        assert!(s.contains("route=192.0.2.0/24\n"));
        assert!(s.contains("mtu=1400\n"));
    }
}
