//! A DHCPv4 lease: what a server's ACK gives ([`Lease`]), when it must be renewed,
//! rebound and given up, and why it was lost ([`LeaseLostReason`]).
//!
//! The expiry is always the server's (RFC 2131 §4.4.5): a short lease is never made
//! longer here. Only the client's own timers are clamped, so that a tiny or odd lease
//! cannot make it loop (see [`MIN_LEASE`]).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::ipv4::route::{Ipv4Interface, Ipv4Route};
use crate::wire::dhcpv4::{usable_unicast, Reply};

/// The least time between two acquisitions of a lease. A lease shorter than this is
/// used as the server gave it and goes at the server's expiry; discovery then waits
/// until this long after the lost lease was acquired, so a server handing out leases of
/// a few seconds (or none) cannot make the client loop.
pub const MIN_LEASE: Duration = Duration::from_secs(60);

/// A lease: everything a `VpnService.Builder` or `ip addr`/`ip route` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address (yiaddr).
    pub address: Ipv4Addr,
    /// Prefix length from the subnet mask (option 1), else the address class.
    pub prefix_len: u8,
    /// The default gateway: the 0.0.0.0/0 entry of the classless static routes when
    /// option 121 is present (RFC 3442: the router option is then ignored), else the
    /// first router (option 3).
    pub gateway: Option<Ipv4Addr>,
    /// The routes beyond the subnet: option 121 if present, else a default route via
    /// the first router. An on-link route has `gateway: None`.
    pub routes: Vec<Ipv4Route>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    /// Domain search list (option 119), without trailing dots.
    pub search: Vec<String>,
    /// Interface MTU (option 26); values under 68 are ignored.
    pub mtu: Option<u16>,
    /// Broadcast address (option 28).
    pub broadcast: Option<Ipv4Addr>,
    /// Lease duration as the server gave it (option 51); `None` is an infinite lease.
    pub lease_time: Option<Duration>,
    /// Time from `acquired_at` to RENEWING, as used (`None` for an infinite lease).
    pub t1: Option<Duration>,
    /// Time from `acquired_at` to REBINDING, as used (`None` for an infinite lease).
    pub t2: Option<Duration>,
    /// The server identifier (option 54).
    pub server: Ipv4Addr,
    /// When the request that obtained the lease was first sent: lease times count from
    /// here (RFC 2131 §4.4.1).
    pub acquired_at: Instant,
}

/// Why a lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseLostReason {
    /// Neither renewal nor rebinding succeeded before the lease ran out.
    Expired,
    /// A server answered a renewal or rebinding with DHCPNAK.
    Nak,
    /// Given up by [`crate::Tap::release`].
    Released,
}

/// The times of a lease, from when it was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTimes {
    /// The server's lease.
    pub lease: Duration,
    /// Renewal (T1).
    pub t1: Duration,
    /// Rebinding (T2).
    pub t2: Duration,
}

impl LeaseTimes {
    /// The times of a lease of `lease_secs` seconds, or `None` for an infinite one
    /// (0xffffffff). T1 and T2 come from the server when consistent (T1 < T2 < lease),
    /// else 0.5 and 0.875 of the lease (RFC 2131 §4.4.5).
    pub fn new(lease_secs: u32, t1: Option<u32>, t2: Option<u32>) -> Option<LeaseTimes> {
        if lease_secs == u32::MAX {
            return None;
        }
        let lease = Duration::from_secs(lease_secs.into());
        let given = |v: Option<u32>| v.map(|s| Duration::from_secs(s.into()));
        let t2 = given(t2)
            .filter(|t| !t.is_zero() && *t < lease)
            .unwrap_or(lease * 7 / 8);
        let t1 = given(t1)
            .filter(|t| !t.is_zero() && *t < t2)
            .unwrap_or((lease / 2).min(t2));
        Some(LeaseTimes { lease, t1, t2 })
    }
}

impl Lease {
    /// The lease an ACK gives, counted from `acquired_at`, from `server`; `None` if the
    /// ACK lacks what a lease needs (a usable yiaddr, a lease time, a valid mask).
    pub(crate) fn from_reply(
        reply: &Reply,
        server: Ipv4Addr,
        acquired_at: Instant,
    ) -> Option<Lease> {
        let o = &reply.options;
        if !usable_unicast(reply.yiaddr) || o.bad_subnet_mask {
            return None;
        }
        let times = LeaseTimes::new(o.lease_time?, o.t1, o.t2);
        let (routes, gateway) = match &o.classless_routes {
            Some(routes) => {
                let routes: Vec<Ipv4Route> = routes
                    .iter()
                    .map(|r| Ipv4Route {
                        destination: r.destination,
                        prefix_len: r.prefix_len,
                        gateway: r.router,
                    })
                    .collect();
                let gateway = routes
                    .iter()
                    .find(|r| r.prefix_len == 0)
                    .and_then(|r| r.gateway);
                (routes, gateway)
            }
            None => {
                let gateway = o.routers.first().copied();
                let routes = gateway.map(Ipv4Route::default_via).into_iter().collect();
                (routes, gateway)
            }
        };
        Some(Lease {
            address: reply.yiaddr,
            prefix_len: o
                .prefix_len
                .unwrap_or_else(|| classful_prefix(reply.yiaddr)),
            gateway,
            routes,
            dns: o.dns.clone(),
            domain: o.domain.clone(),
            search: o.search.clone(),
            mtu: o.mtu,
            broadcast: o.broadcast,
            lease_time: times.map(|t| t.lease),
            t1: times.map(|t| t.t1),
            t2: times.map(|t| t.t2),
            server,
            acquired_at,
        })
    }

    /// When the lease runs out, or `None` if it is infinite.
    pub fn expires_at(&self) -> Option<Instant> {
        self.lease_time.map(|d| self.acquired_at + d)
    }

    /// When renewing starts (T1), or `None` for an infinite lease.
    pub fn renew_at(&self) -> Option<Instant> {
        self.t1.map(|d| self.acquired_at + d)
    }

    /// When rebinding starts (T2), or `None` for an infinite lease.
    pub fn rebind_at(&self) -> Option<Instant> {
        self.t2.map(|d| self.acquired_at + d)
    }

    /// The interface configuration the lease gives.
    pub fn interface(&self) -> Ipv4Interface {
        Ipv4Interface {
            address: self.address,
            prefix_len: self.prefix_len,
            routes: self.routes.clone(),
        }
    }
}

/// The prefix length of the classful network of `addr` (used without option 1).
fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn short_leases_keep_the_servers_time() {
        let t = LeaseTimes::new(30, None, None).unwrap();
        assert_eq!((t.lease, t.t1, t.t2), (secs(30.0), secs(15.0), secs(26.25)));
        let t = LeaseTimes::new(0, None, None).unwrap();
        assert_eq!(
            (t.lease, t.t1, t.t2),
            (Duration::ZERO, Duration::ZERO, Duration::ZERO)
        );
        assert_eq!(LeaseTimes::new(u32::MAX, Some(1), Some(2)), None);
    }

    #[test]
    fn server_t1_t2_are_used_only_when_consistent() {
        let t = LeaseTimes::new(3600, Some(100), Some(200)).unwrap();
        assert_eq!((t.t1, t.t2), (secs(100.0), secs(200.0)));
        // T1 after T2, T2 after the lease: both defaults.
        let t = LeaseTimes::new(3600, Some(0x1000), Some(0x2000)).unwrap();
        assert_eq!((t.t1, t.t2), (secs(1800.0), secs(3150.0)));
        // A zero T1 is not a renewal at once.
        let t = LeaseTimes::new(3600, Some(0), None).unwrap();
        assert_eq!(t.t1, secs(1800.0));
    }
}
