//! Notices a change of network under the link: subscribes to rtnetlink's route and
//! address notifications (IPv4 and IPv6), and after each burst of them (quiet for
//! [`DEBOUNCE`]) asks the kernel for the route to the link's peer (`RTM_GETROUTE`). When
//! its device, gateway or preferred source differs from the last route seen, the
//! network changed (Wi-Fi to cellular, a new address): the driver is told
//! ([`tapemu::driver::DriverHandle::network_changed`]), which reopens the link's sockets
//! and re-announces the emulated host.
//!
//! Losing the route is not itself a change to act on (nothing can be sent anyway, and a
//! datagram link notices by itself); the change is judged when a route is back, against
//! the last route there was. A route back the same as before (a flap) changes nothing.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::{new_multicast_connection, Handle, MulticastGroup, RouteMessageBuilder};
use tapemu::driver::{DriverHandle, LinkSpec, Remote};
use tokio::sync::mpsc;

/// Quiet time after a notification before the route is looked up: one change of
/// network is a burst of notifications (address gone, routes gone, route added).
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a steady stream of notifications delays the lookup.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// The route to the peer as the kernel would use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The peer.
    pub peer: IpAddr,
    /// The outgoing interface's name (its index if the name cannot be read).
    pub dev: String,
    /// The next hop, unless the peer is on-link.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would pick.
    pub source: Option<IpAddr>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route to {} dev {}", self.peer, self.dev)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(src) = self.source {
            write!(f, " src {src}")?;
        }
        Ok(())
    }
}

/// The peer's address of a link, resolved if it is a name; `None` for links without a
/// peer on the network (`tap://`).
pub async fn peer_of(link: &LinkSpec) -> Option<IpAddr> {
    let remote = match link {
        LinkSpec::Udp { remote, .. } | LinkSpec::Tcp { remote, .. } => remote,
        LinkSpec::Vxlan { remote, .. } => remote,
        _ => return None,
    };
    match remote {
        Remote::Addr(addr) => Some(addr.ip()),
        Remote::Name { host, port } => {
            let query = (host.clone(), *port);
            let found = tokio::task::spawn_blocking(move || {
                std::net::ToSocketAddrs::to_socket_addrs(&query).map(|mut a| a.next())
            })
            .await;
            match found {
                Ok(Ok(Some(addr))) => Some(addr.ip()),
                _ => {
                    tracing::warn!("route watch: cannot resolve {host}; not watching");
                    None
                }
            }
        }
    }
}

/// Starts watching the route to `peer`: every change is passed to the driver, then
/// reported on the returned channel. The task ends with the driver. A route through
/// `own_dev` (our TUN: the link would be carried by itself) is not a network to follow.
pub fn spawn(
    peer: IpAddr,
    own_dev: String,
    driver: DriverHandle,
) -> Result<(tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<Path>), String> {
    let (connection, handle, mut messages) = new_multicast_connection(&[
        MulticastGroup::Ipv4Route,
        MulticastGroup::Ipv6Route,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])
    .map_err(|e| format!("route watch: netlink: {e}"))?;
    tokio::spawn(connection);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut last = lookup(&handle, peer).await;
        match &last {
            Some(path) => tracing::info!("route watch: {path}"),
            None => tracing::info!("route watch: no route to {peer} yet"),
        }
        while messages.next().await.is_some() {
            // Let the burst end: quiet for DEBOUNCE, at most MAX_DELAY in all.
            let burst = tokio::time::sleep(MAX_DELAY);
            tokio::pin!(burst);
            loop {
                tokio::select! {
                    () = &mut burst => break,
                    more = tokio::time::timeout(DEBOUNCE, messages.next()) => match more {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => break,
                    },
                }
            }
            let Some(path) = lookup(&handle, peer).await else {
                tracing::debug!("route watch: no route to {peer}");
                continue;
            };
            if last.as_ref() == Some(&path) {
                continue;
            }
            if path.dev == own_dev {
                tracing::warn!(
                    "route watch: the {path} goes through our own TUN (a loop); ignored"
                );
                continue;
            }
            tracing::debug!("route watch: {path}");
            last = Some(path.clone());
            if driver.network_changed().await.is_err() {
                return;
            }
            if tx.send(path).is_err() {
                return;
            }
        }
        tracing::warn!("route watch: the netlink socket closed; no longer watching");
    });
    Ok((task, rx))
}

/// The kernel's route to `peer` now (`ip route get`), `None` if there is none.
async fn lookup(handle: &Handle, peer: IpAddr) -> Option<Path> {
    let full = if peer.is_ipv4() { 32 } else { 128 };
    let request = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(peer, full)
        .ok()?
        .build();
    let route: RouteMessage = handle
        .route()
        .get(request)
        .execute()
        .try_next()
        .await
        .ok()??;
    let mut path = Path {
        peer,
        dev: String::new(),
        gateway: None,
        source: None,
    };
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::Gateway(gw) => path.gateway = ip_of(gw),
            RouteAttribute::PrefSource(src) => path.source = ip_of(src),
            _ => {}
        }
    }
    let oif = oif?;
    path.dev = link_name(handle, oif)
        .await
        .unwrap_or_else(|| oif.to_string());
    Some(path)
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some((*a).into()),
        RouteAddress::Inet6(a) => Some((*a).into()),
        _ => None,
    }
}

async fn link_name(handle: &Handle, index: u32) -> Option<String> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let link = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .ok()??;
    link.attributes.into_iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name),
        _ => None,
    })
}
