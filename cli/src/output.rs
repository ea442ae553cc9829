//! What the CLI prints on stdout: one readable status line per event, or with `--json`
//! one JSON object per line per event.

use serde_json::{json, Value};
use tapemu::driver::{DriverEvent, LinkStatus};
use tapemu::{DhcpEvent, Event, Ipv4Event, Ipv6Event};
use tapemu::{Ipv6Info, Lease, LeaseLostReason};

/// Prints events in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

fn print_json(v: &Value) {
    println!("{v}");
}

/// A lease as the JSON object the README documents (`event` is set by the caller).
pub fn lease_json(event: &str, lease: &Lease) -> Value {
    let routes: Vec<Value> = lease
        .routes
        .iter()
        .filter(|r| r.prefix_len != 0)
        .map(|r| {
            json!({
                "destination": format!("{}/{}", r.destination, r.prefix_len),
                "gateway": r.gateway.map(|g| g.to_string()),
            })
        })
        .collect();
    json!({
        "event": event,
        "address": lease.address.to_string(),
        "prefix": lease.prefix_len,
        "gateway": lease.gateway.map(|g| g.to_string()),
        "dns": lease.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "domain": lease.domain,
        "search": lease.search,
        "mtu": lease.mtu,
        "routes": routes,
        "lease_seconds": lease.lease_time.map(|d| d.as_secs()),
        "t1_seconds": lease.t1.map(|d| d.as_secs()),
        "t2_seconds": lease.t2.map(|d| d.as_secs()),
        "broadcast": lease.broadcast.map(|b| b.to_string()),
        "server": lease.server.to_string(),
    })
}

fn lease_line(lease: &Lease) -> String {
    let mut line = format!("{}/{}", lease.address, lease.prefix_len);
    if let Some(gw) = lease.gateway {
        line += &format!(" gateway {gw}");
    }
    if !lease.dns.is_empty() {
        let dns: Vec<String> = lease.dns.iter().map(|d| d.to_string()).collect();
        line += &format!(" dns {}", dns.join(","));
    }
    if let Some(domain) = &lease.domain {
        line += &format!(" domain {domain}");
    }
    if let Some(mtu) = lease.mtu {
        line += &format!(" mtu {mtu}");
    }
    for r in lease.routes.iter().filter(|r| r.prefix_len != 0) {
        match r.gateway {
            Some(gw) => line += &format!(" route {}/{} via {gw}", r.destination, r.prefix_len),
            None => line += &format!(" route {}/{} on-link", r.destination, r.prefix_len),
        }
    }
    match lease.lease_time {
        Some(t) => line += &format!(" lease {}s", t.as_secs()),
        None => line += " lease infinite",
    }
    line += &format!(" server {}", lease.server);
    line
}

fn reason(r: &LeaseLostReason) -> &'static str {
    match r {
        LeaseLostReason::Expired => "expired",
        LeaseLostReason::Nak => "nak",
        LeaseLostReason::Released => "released",
        _ => "other",
    }
}

fn ipv6_json(info: &Ipv6Info) -> Value {
    json!({
        "event": "ipv6",
        "addresses": info.addresses.iter().map(|(a, l)| format!("{a}/{l}")).collect::<Vec<_>>(),
        "link_local": info.link_local.map(|a| a.to_string()),
        "routes": info.routes.iter().map(|r| json!({
            "destination": format!("{}/{}", r.destination, r.prefix_len),
            "gateway": r.gateway.map(|g| g.to_string()),
        })).collect::<Vec<_>>(),
        "dns": info.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "search": info.search,
        "mtu": info.mtu,
    })
}

impl Output {
    /// JSON lines when `json`, else readable lines.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// The TUN exists and the link is open.
    pub fn started(&self, dev: &str, link: &str) {
        if self.json {
            print_json(&json!({"event": "started", "tun": dev, "link": link}));
        } else {
            tracing::info!("running on {dev} over {link}");
        }
    }

    /// A lease obtained by `tapemu lease`.
    pub fn lease(&self, lease: &Lease) {
        if self.json {
            print_json(&lease_json("lease", lease));
        } else {
            println!("lease {}", lease_line(lease));
        }
    }

    /// `tapemu lease --release` released it.
    pub fn released(&self) {
        if self.json {
            print_json(&json!({"event": "released"}));
        } else {
            println!("released");
        }
    }

    /// The driver ended in order.
    pub fn stopped(&self) {
        if self.json {
            print_json(&json!({"event": "stopped"}));
        } else {
            tracing::info!("stopped");
        }
    }

    /// One driver event.
    pub fn event(&self, event: &DriverEvent) {
        let (value, line): (Option<Value>, Option<String>) = match event {
            DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseAcquired(l))) => (
                Some(lease_json("lease", l)),
                Some(format!("lease {}", lease_line(l))),
            ),
            DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseRenewed(l))) => (
                Some(lease_json("renewed", l)),
                Some(format!("renewed {}", lease_line(l))),
            ),
            DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseChanged { old, new })) => {
                let mut v = lease_json("changed", new);
                v["old_address"] = json!(old.address.to_string());
                (
                    Some(v),
                    Some(format!(
                        "changed from {} to {}",
                        old.address,
                        lease_line(new)
                    )),
                )
            }
            DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseLost { address, reason: r })) => (
                Some(json!({"event": "lost", "address": address.to_string(), "reason": reason(r)})),
                Some(format!("lease lost: {address} ({})", reason(r))),
            ),
            DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseDeclined { address, mac })) => (
                Some(
                    json!({"event": "declined", "address": address.to_string(), "mac": mac.to_string()}),
                ),
                Some(format!("declined {address}: in use by {mac}")),
            ),
            DriverEvent::Tap(Event::Ipv4(Ipv4Event::Up(iface))) => (
                Some(
                    json!({"event": "ipv4", "address": iface.address.to_string(), "prefix": iface.prefix_len}),
                ),
                None,
            ),
            DriverEvent::Tap(Event::Ipv4(Ipv4Event::AddressConflict { address, mac })) => (
                Some(
                    json!({"event": "conflict", "address": address.to_string(), "mac": mac.to_string()}),
                ),
                Some(format!("address conflict: {address} claimed by {mac}")),
            ),
            DriverEvent::Tap(Event::Ipv6(Ipv6Event::Changed(info))) => {
                let mut line = String::from("ipv6");
                for (a, l) in &info.addresses {
                    line += &format!(" {a}/{l}");
                }
                if let Some(ll) = info.link_local {
                    line += &format!(" link-local {ll}");
                }
                for r in info.routes.iter().filter(|r| r.prefix_len == 0) {
                    if let Some(gw) = r.gateway {
                        line += &format!(" router {gw}");
                    }
                }
                if !info.dns.is_empty() {
                    let dns: Vec<String> = info.dns.iter().map(|d| d.to_string()).collect();
                    line += &format!(" dns {}", dns.join(","));
                }
                (Some(ipv6_json(info)), Some(line))
            }
            DriverEvent::Tap(Event::Ipv6(Ipv6Event::AddressConflict(a))) => (
                Some(json!({"event": "ipv6_conflict", "address": a.to_string()})),
                Some(format!("IPv6 address conflict: {a}")),
            ),
            DriverEvent::Tap(_) => (None, None),
            DriverEvent::Link(LinkStatus::Up) => (
                Some(json!({"event": "link_up"})),
                Some("link up".to_owned()),
            ),
            DriverEvent::Link(LinkStatus::Down { error, retry_in }) => (
                Some(
                    json!({"event": "link_down", "error": error.to_string(), "retry_ms": retry_in.map(|d| d.as_millis() as u64)}),
                ),
                None,
            ),
            DriverEvent::TunFailed(e) => (
                Some(json!({"event": "tun_failed", "error": e.to_string()})),
                Some(format!("TUN failed: {e}")),
            ),
            DriverEvent::Stopped { .. } => (None, None),
            _ => (None, None),
        };
        if self.json {
            if let Some(v) = value {
                print_json(&v);
            }
        } else if let Some(line) = line {
            tracing::info!("{line}");
        }
    }
}
