//! Configures the TUN: addresses, MTU, link state and routes, through the kernel's
//! netlink interface (`ip` from iproute2), remembering what it added so it can remove
//! exactly that.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use tapemu::{Ipv4Route, Ipv6Info, Lease};

/// One thing added to the interface, undone in reverse order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Added {
    Addr(IpAddr, u8),
    Route(String),
}

/// The configuration applied to one interface.
#[derive(Debug)]
pub struct NetConf {
    dev: String,
    added: Vec<Added>,
    default_route: bool,
    max_mtu: Option<u16>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e} (is iproute2 installed?)", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn route_key(destination: IpAddr, prefix_len: u8, gateway: Option<IpAddr>) -> String {
    match gateway {
        Some(gw) => format!("{destination}/{prefix_len} via {gw}"),
        None => format!("{destination}/{prefix_len}"),
    }
}

impl NetConf {
    /// Prepares `dev`: no kernel-made IPv6 link-local address (tapemu has its own).
    pub fn new(dev: &str, default_route: bool, max_mtu: Option<u16>) -> NetConf {
        let _ = ip(&["link", "set", "dev", dev, "addrgenmode", "none"]);
        NetConf {
            dev: dev.to_owned(),
            added: Vec::new(),
            default_route,
            max_mtu,
        }
    }

    fn mtu(&self, offered: Option<u16>) -> u16 {
        match (offered, self.max_mtu) {
            (Some(o), Some(m)) => o.min(m),
            (Some(o), None) => o,
            (None, Some(m)) => m,
            (None, None) => 1500,
        }
    }

    /// Sets the MTU (the smaller of `offered` and `--mtu`) and brings the link up.
    pub fn link_up(&mut self, offered: Option<u16>) -> Result<(), String> {
        let mtu = self.mtu(offered).to_string();
        ip(&["link", "set", "dev", &self.dev, "mtu", &mtu, "up"])
    }

    fn add_addr(&mut self, addr: IpAddr, prefix_len: u8) -> Result<(), String> {
        if self.added.contains(&Added::Addr(addr, prefix_len)) {
            return Ok(());
        }
        let cidr = format!("{addr}/{prefix_len}");
        match addr {
            IpAddr::V4(_) => ip(&["addr", "replace", &cidr, "dev", &self.dev])?,
            IpAddr::V6(_) => ip(&["-6", "addr", "replace", &cidr, "dev", &self.dev, "nodad"])?,
        }
        self.added.push(Added::Addr(addr, prefix_len));
        Ok(())
    }

    fn del(&mut self, what: &Added) {
        let result = match what {
            Added::Addr(addr, len) => {
                ip(&["addr", "del", &format!("{addr}/{len}"), "dev", &self.dev])
            }
            Added::Route(key) => {
                let mut args = vec!["route", "del"];
                args.extend(key.split(' '));
                args.extend(["dev", &self.dev]);
                ip(&args)
            }
        };
        if let Err(e) = result {
            tracing::debug!("{e}");
        }
        self.added.retain(|a| a != what);
    }

    fn add_route(&mut self, destination: IpAddr, prefix_len: u8, gateway: Option<IpAddr>) {
        let key = route_key(destination, prefix_len, gateway);
        if self.added.contains(&Added::Route(key.clone())) {
            return;
        }
        let mut args = vec!["route", "add"];
        args.extend(key.split(' '));
        args.extend(["dev", &self.dev]);
        match ip(&args) {
            Ok(()) => self.added.push(Added::Route(key)),
            // An existing route (e.g. another default route) is left alone.
            Err(e) => tracing::warn!("route {key} not added: {e}"),
        }
    }

    fn v4_routes(&self, routes: &[Ipv4Route]) -> Vec<(IpAddr, u8, Option<IpAddr>)> {
        routes
            .iter()
            .filter(|r| self.default_route || r.prefix_len != 0)
            .map(|r| {
                (
                    r.destination.into(),
                    r.prefix_len,
                    r.gateway.map(IpAddr::from),
                )
            })
            .collect()
    }

    /// Applies an IPv4 address and routes (a lease, or a static address), replacing
    /// whatever IPv4 configuration this `NetConf` applied before.
    pub fn apply_ipv4(
        &mut self,
        address: Ipv4Addr,
        prefix_len: u8,
        routes: &[Ipv4Route],
        mtu: Option<u16>,
    ) -> Result<(), String> {
        let wanted_addr = Added::Addr(address.into(), prefix_len);
        let wanted_routes: Vec<String> = self
            .v4_routes(routes)
            .iter()
            .map(|(d, l, g)| route_key(*d, *l, *g))
            .collect();
        let stale: Vec<Added> = self
            .added
            .iter()
            .filter(|a| match a {
                Added::Addr(IpAddr::V4(_), _) => **a != wanted_addr,
                Added::Route(key) => !key.contains(':') && !wanted_routes.contains(key),
                Added::Addr(IpAddr::V6(_), _) => false,
            })
            .cloned()
            .collect();
        for a in stale.iter().rev() {
            self.del(a);
        }
        self.link_up(mtu)?;
        self.add_addr(address.into(), prefix_len)?;
        for (d, l, g) in self.v4_routes(routes) {
            self.add_route(d, l, g);
        }
        Ok(())
    }

    /// Applies a DHCP lease.
    pub fn apply_lease(&mut self, lease: &Lease) -> Result<(), String> {
        self.apply_ipv4(lease.address, lease.prefix_len, &lease.routes, lease.mtu)
    }

    /// Removes every IPv4 address and route this `NetConf` added.
    pub fn remove_ipv4(&mut self) {
        let v4: Vec<Added> = self
            .added
            .iter()
            .filter(|a| match a {
                Added::Addr(addr, _) => addr.is_ipv4(),
                Added::Route(key) => !key.contains(':'),
            })
            .cloned()
            .collect();
        for a in v4.iter().rev() {
            self.del(a);
        }
    }

    /// Applies the IPv6 configuration, replacing what was applied before.
    pub fn apply_ipv6(&mut self, info: &Ipv6Info) -> Result<(), String> {
        let mut addrs: Vec<(Ipv6Addr, u8)> = info.addresses.clone();
        if let Some(ll) = info.link_local {
            addrs.push((ll, 64));
        }
        let routes: Vec<(IpAddr, u8, Option<IpAddr>)> = info
            .routes
            .iter()
            .filter(|r| self.default_route || r.prefix_len != 0)
            .map(|r| {
                (
                    r.destination.into(),
                    r.prefix_len,
                    r.gateway.map(IpAddr::from),
                )
            })
            .collect();
        let keys: Vec<String> = routes
            .iter()
            .map(|(d, l, g)| route_key(*d, *l, *g))
            .collect();
        let stale: Vec<Added> = self
            .added
            .iter()
            .filter(|a| match a {
                Added::Addr(IpAddr::V6(addr), len) => !addrs.contains(&(*addr, *len)),
                Added::Route(key) => key.contains(':') && !keys.contains(key),
                Added::Addr(IpAddr::V4(_), _) => false,
            })
            .cloned()
            .collect();
        for a in stale.iter().rev() {
            self.del(a);
        }
        if let Some(mtu) = info.mtu {
            let mtu = self.mtu(Some(mtu)).to_string();
            ip(&["link", "set", "dev", &self.dev, "mtu", &mtu])?;
        }
        ip(&["link", "set", "dev", &self.dev, "up"])?;
        for (addr, len) in addrs {
            self.add_addr(addr.into(), len)?;
        }
        for (d, l, g) in routes {
            self.add_route(d, l, g);
        }
        Ok(())
    }

    /// Removes everything this `NetConf` added.
    pub fn remove_all(&mut self) {
        let all = self.added.clone();
        for a in all.iter().rev() {
            self.del(a);
        }
    }
}
