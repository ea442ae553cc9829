//! The text form of leases the Java side parses (`Lease.parse`): one `key=value` per
//! line; repeated keys (`route`, `dns`, `search`) keep their order.

use std::fmt::Write as _;

use tapemu::{Event, Ipv4Interface};

use crate::callbacks::JavaCallbacks;

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
    for r in &iface.routes {
        match r.gateway {
            Some(gw) => {
                let _ = writeln!(s, "route={}/{} via {gw}", r.destination, r.prefix_len);
            }
            None => {
                let _ = writeln!(s, "route={}/{}", r.destination, r.prefix_len);
            }
        }
    }
    let _ = writeln!(s, "mtu={mtu}");
    let _ = writeln!(s, "lease=-1");
    s
}

/// Forwards the events not handled by the session itself.
pub fn forward(_callbacks: &JavaCallbacks, event: Event) {
    tracing::debug!("tapemu event {event:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lease_text() {
        let iface = Ipv4Interface::new("192.0.2.50".parse().unwrap(), 24, Some("192.0.2.1".parse().unwrap()));
        let s = encode_static(&iface, 1400);
        assert!(s.contains("address=192.0.2.50\n"));
        assert!(s.contains("prefix=24\n"));
        assert!(s.contains("gateway=192.0.2.1\n"));
        assert!(s.contains("route=0.0.0.0/0 via 192.0.2.1\n"));
        assert!(s.contains("mtu=1400\n"));
    }
}
