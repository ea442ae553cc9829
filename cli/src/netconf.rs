//! Configures the TUN through rtnetlink: addresses, MTU, queue length, link state and
//! routes, remembering what it added so it can remove exactly that.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use tapemu::present::lease_mtu;
use tapemu::{Ipv4Route, Ipv6Info, Lease};

/// A route as added: destination, prefix length, gateway (`None`: on-link).
type Route = (IpAddr, u8, Option<IpAddr>);

/// One thing added to the interface, undone in reverse order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Added {
    Addr(IpAddr, u8),
    Route(Route),
}

/// The configuration applied to one interface.
#[derive(Debug)]
pub struct NetConf {
    handle: Handle,
    dev: String,
    index: u32,
    added: Vec<Added>,
    default_route: bool,
    /// The emulated host's MTU: the TUN's, unless a lease or an RA lowers it.
    link_mtu: u16,
}

fn route_text(r: &Route) -> String {
    match r.2 {
        Some(gw) => format!("{}/{} via {gw}", r.0, r.1),
        None => format!("{}/{}", r.0, r.1),
    }
}

impl NetConf {
    /// Opens a netlink connection and prepares `dev`: no kernel-made IPv6 link-local
    /// address (tapemu has its own), a TAP's queue length. `link_mtu` is the emulated
    /// host's MTU ([`tapemu::Config::mtu`]).
    pub async fn new(dev: &str, default_route: bool, link_mtu: u16) -> Result<NetConf, String> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| format!("netlink: {e}"))?;
        tokio::spawn(connection);
        let link = handle
            .link()
            .get()
            .match_name(dev.to_owned())
            .execute()
            .try_next()
            .await
            .map_err(|e| format!("netlink: interface {dev}: {e}"))?
            .ok_or_else(|| format!("netlink: no interface {dev}"))?;
        let index = link.header.index;
        // addr_gen_mode 1 = none; absent when IPv6 is off in the kernel.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/addr_gen_mode"), "1");
        // A TAP's default queue: bursts from the kernel wait for tapemu instead of being
        // dropped (a TUN's default is 500).
        let conf = NetConf {
            handle,
            dev: dev.to_owned(),
            index,
            added: Vec::new(),
            default_route,
            link_mtu,
        };
        conf.set_link(LinkUnspec::new_with_index(index).txqueuelen(1000).build())
            .await?;
        Ok(conf)
    }

    async fn set_link(
        &self,
        message: rtnetlink::packet_route::link::LinkMessage,
    ) -> Result<(), String> {
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| format!("netlink: setting {} : {e}", self.dev))
    }

    /// Sets the MTU and brings the link up.
    pub async fn link_up(&mut self, mtu: u16) -> Result<(), String> {
        self.set_link(
            LinkUnspec::new_with_index(self.index)
                .mtu(u32::from(mtu))
                .up()
                .build(),
        )
        .await
    }

    async fn add_addr(&mut self, addr: IpAddr, prefix_len: u8) -> Result<(), String> {
        if self.added.contains(&Added::Addr(addr, prefix_len)) {
            return Ok(());
        }
        let mut request = self
            .handle
            .address()
            .add(self.index, addr, prefix_len)
            .replace();
        if addr.is_ipv6() {
            // tapemu ran duplicate address detection on the link already.
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(|e| format!("netlink: address {addr}/{prefix_len} on {}: {e}", self.dev))?;
        self.added.push(Added::Addr(addr, prefix_len));
        Ok(())
    }

    fn route_message(&self, r: &Route) -> RouteMessage {
        match r {
            (IpAddr::V4(d), len, gw) => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(*d, *len)
                    .output_interface(self.index);
                if let Some(IpAddr::V4(g)) = gw {
                    b = b.gateway(*g);
                }
                b.build()
            }
            (IpAddr::V6(d), len, gw) => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(*d, *len)
                    .output_interface(self.index);
                if let Some(IpAddr::V6(g)) = gw {
                    b = b.gateway(*g);
                }
                b.build()
            }
        }
    }

    async fn del(&mut self, what: &Added) {
        let result = match what {
            Added::Addr(addr, len) => {
                let message = match addr {
                    IpAddr::V4(a) => rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
                        .index(self.index)
                        .address(*a, *len)
                        .build(),
                    IpAddr::V6(a) => rtnetlink::AddressMessageBuilder::<Ipv6Addr>::new()
                        .index(self.index)
                        .address(*a, *len)
                        .build(),
                };
                self.handle.address().del(message).execute().await
            }
            Added::Route(r) => {
                self.handle
                    .route()
                    .del(self.route_message(r))
                    .execute()
                    .await
            }
        };
        if let Err(e) = result {
            tracing::debug!("netlink: removing {what:?} from {}: {e}", self.dev);
        }
        self.added.retain(|a| a != what);
    }

    async fn add_route(&mut self, r: Route) {
        if self.added.contains(&Added::Route(r)) {
            return;
        }
        match self
            .handle
            .route()
            .add(self.route_message(&r))
            .execute()
            .await
        {
            Ok(()) => self.added.push(Added::Route(r)),
            // An existing route (e.g. another default route) is left alone.
            Err(e) => tracing::warn!("route {} not added: {e}", route_text(&r)),
        }
    }

    async fn del_all(&mut self, stale: Vec<Added>) {
        for a in stale.iter().rev() {
            self.del(a).await;
        }
    }

    fn v4_routes(&self, routes: &[Ipv4Route]) -> Vec<Route> {
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

    /// Applies an IPv4 address, routes and MTU (a lease, or a static address),
    /// replacing whatever IPv4 configuration this `NetConf` applied before.
    async fn apply_ipv4(
        &mut self,
        address: Ipv4Addr,
        prefix_len: u8,
        routes: &[Ipv4Route],
        mtu: u16,
    ) -> Result<(), String> {
        let wanted_addr = Added::Addr(address.into(), prefix_len);
        let wanted_routes = self.v4_routes(routes);
        let stale: Vec<Added> = self
            .added
            .iter()
            .filter(|a| match a {
                Added::Addr(IpAddr::V4(_), _) => **a != wanted_addr,
                Added::Route(r) => r.0.is_ipv4() && !wanted_routes.contains(r),
                Added::Addr(IpAddr::V6(_), _) => false,
            })
            .cloned()
            .collect();
        self.del_all(stale).await;
        self.link_up(mtu).await?;
        self.add_addr(address.into(), prefix_len).await?;
        for r in wanted_routes {
            self.add_route(r).await;
        }
        Ok(())
    }

    /// Applies a static address, at the link MTU.
    pub async fn apply_static(
        &mut self,
        address: Ipv4Addr,
        prefix_len: u8,
        routes: &[Ipv4Route],
    ) -> Result<(), String> {
        self.apply_ipv4(address, prefix_len, routes, self.link_mtu)
            .await
    }

    /// Applies a DHCP lease, at the MTU both surfaces present ([`lease_mtu`]).
    pub async fn apply_lease(&mut self, lease: &Lease) -> Result<(), String> {
        let mtu = lease_mtu(lease, self.link_mtu);
        self.apply_ipv4(lease.address, lease.prefix_len, &lease.routes, mtu)
            .await
    }

    /// Removes every IPv4 address and route this `NetConf` added.
    pub async fn remove_ipv4(&mut self) {
        let v4: Vec<Added> = self
            .added
            .iter()
            .filter(|a| match a {
                Added::Addr(addr, _) => addr.is_ipv4(),
                Added::Route(r) => r.0.is_ipv4(),
            })
            .cloned()
            .collect();
        self.del_all(v4).await;
    }

    /// Applies the IPv6 configuration, replacing what was applied before.
    pub async fn apply_ipv6(&mut self, info: &Ipv6Info) -> Result<(), String> {
        let mut addrs: Vec<(Ipv6Addr, u8)> = info.addresses.clone();
        if let Some(ll) = info.link_local {
            addrs.push((ll, 64));
        }
        let routes: Vec<Route> = info
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
        let stale: Vec<Added> = self
            .added
            .iter()
            .filter(|a| match a {
                Added::Addr(IpAddr::V6(addr), len) => !addrs.contains(&(*addr, *len)),
                Added::Route(r) => r.0.is_ipv6() && !routes.contains(r),
                Added::Addr(IpAddr::V4(_), _) => false,
            })
            .cloned()
            .collect();
        self.del_all(stale).await;
        self.set_link(LinkUnspec::new_with_index(self.index).up().build())
            .await?;
        // The RA's MTU is IPv6's alone (as the kernel applies it): the link MTU stays
        // what DHCP or --mtu set for IPv4.
        if let Some(mtu) = info.mtu {
            let mtu = mtu.min(self.link_mtu);
            let path = format!("/proc/sys/net/ipv6/conf/{}/mtu", self.dev);
            if let Err(e) = std::fs::write(&path, mtu.to_string()) {
                tracing::warn!("IPv6 MTU {mtu} on {}: {e}", self.dev);
            }
        }
        for (addr, len) in addrs {
            self.add_addr(addr.into(), len).await?;
        }
        for r in routes {
            self.add_route(r).await;
        }
        Ok(())
    }

    /// Removes everything this `NetConf` added.
    pub async fn remove_all(&mut self) {
        let all = self.added.clone();
        self.del_all(all).await;
    }
}
