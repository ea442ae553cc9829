//! What the CLI prints on stdout: one readable status line per event, or with `--json`
//! one JSON object per line per event. The JSON of leases, IPv6 state and the emulated
//! host's events is [`tapemu::present`]'s, the same the Java API reads.

use serde_json::json;
use tapemu::driver::{DriverEvent, LinkStatus};
use tapemu::present::{lost_reason, EventView};
use tapemu::{DhcpEvent, Event, Ipv4Event, Ipv6Event, Ipv6Info, Lease};

/// Prints events in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
    /// The link MTU a lease's MTU is capped at ([`tapemu::present::lease_mtu`]).
    link_mtu: u16,
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

fn ipv6_line(info: &Ipv6Info) -> String {
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
    line
}

/// The readable line for an event of the emulated host, if it has one.
fn tap_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::Dhcp(DhcpEvent::LeaseAcquired(l)) => format!("lease {}", lease_line(l)),
        Event::Dhcp(DhcpEvent::LeaseRenewed(l)) => format!("renewed {}", lease_line(l)),
        Event::Dhcp(DhcpEvent::LeaseChanged { old, new }) => {
            format!("changed from {} to {}", old.address, lease_line(new))
        }
        Event::Dhcp(DhcpEvent::LeaseLost { address, reason }) => {
            format!("lease lost: {address} ({})", lost_reason(*reason))
        }
        Event::Dhcp(DhcpEvent::LeaseDeclined { address, mac }) => {
            format!("declined {address}: in use by {mac}")
        }
        Event::Ipv4(Ipv4Event::AddressConflict { address, mac }) => {
            format!("address conflict: {address} claimed by {mac}")
        }
        Event::Ipv6(Ipv6Event::Changed(info)) => ipv6_line(info),
        Event::Ipv6(Ipv6Event::AddressConflict(a)) => format!("IPv6 address conflict: {a}"),
        _ => return None,
    })
}

/// Whether `--json` prints an event of the emulated host: all but neighbour failures,
/// which the log shows at debug level.
fn printed(event: &Event) -> bool {
    !matches!(
        event,
        Event::Ipv4(Ipv4Event::NeighbourUnreachable(_))
            | Event::Ipv6(Ipv6Event::NeighbourUnreachable(_))
    )
}

impl Output {
    /// JSON lines when `json`, else readable lines; leases presented for a link MTU of
    /// `link_mtu`.
    pub fn new(json: bool, link_mtu: u16) -> Output {
        Output { json, link_mtu }
    }

    fn print_tap_json(&self, event: &Event) {
        match serde_json::to_string(&EventView::new(event, self.link_mtu)) {
            Ok(line) => println!("{line}"),
            Err(e) => tracing::error!("JSON of {event:?}: {e}"),
        }
    }

    /// The TUN exists and the link is open.
    pub fn started(&self, dev: &str, link: &str) {
        if self.json {
            println!("{}", json!({"event": "started", "tun": dev, "link": link}));
        } else {
            tracing::info!("running on {dev} over {link}");
        }
    }

    /// The lease `tapemu lease` obtained (`event` is its [`DhcpEvent::LeaseAcquired`]).
    pub fn lease(&self, event: &Event) {
        if self.json {
            self.print_tap_json(event);
        } else if let Some(line) = tap_line(event) {
            println!("{line}");
        }
    }

    /// `tapemu lease --release` released it.
    pub fn released(&self) {
        if self.json {
            println!("{}", json!({"event": "released"}));
        } else {
            println!("released");
        }
    }

    /// The route to the link's peer changed and the driver was told.
    pub fn network_changed(&self, path: &crate::route_watch::Path) {
        if self.json {
            println!(
                "{}",
                json!({"event": "network_changed", "peer": path.peer.to_string(),
                       "dev": path.dev, "gateway": path.gateway.map(|g| g.to_string()),
                       "source": path.source.map(|s| s.to_string())})
            );
        } else {
            tracing::info!("network changed: {path}");
        }
    }

    /// The driver ended in order.
    pub fn stopped(&self) {
        if self.json {
            println!("{}", json!({"event": "stopped"}));
        } else {
            tracing::info!("stopped");
        }
    }

    /// One driver event.
    pub fn event(&self, event: &DriverEvent) {
        let (value, line) = match event {
            DriverEvent::Tap(event) => {
                if self.json && printed(event) {
                    self.print_tap_json(event);
                } else if !self.json {
                    match tap_line(event) {
                        Some(line) => tracing::info!("{line}"),
                        None => tracing::debug!("{event:?}"),
                    }
                }
                return;
            }
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
            _ => (None, None),
        };
        if self.json {
            if let Some(v) = value {
                println!("{v}");
            }
        } else if let Some(line) = line {
            tracing::info!("{line}");
        }
    }
}
