//! The stored form of a lease ([`StoredLease`]): what the CLI keeps in its lease file so
//! that a restarted emulator asks for the same address again
//! ([`crate::DhcpConfig::remembered_lease`]). A [`Lease`] counts from an `Instant`,
//! which means nothing to another process; the stored form counts from the wall clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};

use crate::{Ipv4Route, Lease};

/// A [`Lease`] as it is stored between runs, in JSON:
///
/// ```json
/// {"address":"192.0.2.123","prefix":24,"gateway":"192.0.2.1",
///  "routes":[{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}],
///  "dns":["192.0.2.53"],"domain":"lab.example","search":[],"mtu":null,
///  "broadcast":"192.0.2.255","lease_ms":3600000,"t1_ms":1800000,"t2_ms":3150000,
///  "server":"192.0.2.1","acquired_unix":1700000000}
/// ```
///
/// Times are milliseconds (T1 and T2 may be fractions of a second), `null` for an
/// infinite lease; `acquired_unix` is when the lease was acquired, in whole seconds
/// since the UNIX epoch, rounded down so that the lease never seems to last longer
/// than it does. Fields added later have defaults, so older files still load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLease {
    /// Our address.
    pub address: Ipv4Addr,
    /// Prefix length.
    #[serde(rename = "prefix")]
    pub prefix_len: u8,
    /// The default gateway, if any.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// The routes beyond the subnet, as [`Lease::routes`].
    #[serde(default)]
    pub routes: Vec<Ipv4Route>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    #[serde(default)]
    pub domain: Option<String>,
    /// Domain search list (option 119).
    #[serde(default)]
    pub search: Vec<String>,
    /// Interface MTU (option 26).
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Broadcast address (option 28).
    #[serde(default)]
    pub broadcast: Option<Ipv4Addr>,
    /// Lease duration in milliseconds; `None` for an infinite lease.
    pub lease_ms: Option<u64>,
    /// Time to T1 in milliseconds.
    pub t1_ms: Option<u64>,
    /// Time to T2 in milliseconds.
    pub t2_ms: Option<u64>,
    /// The server identifier.
    pub server: Ipv4Addr,
    /// When the lease was acquired, in seconds since the UNIX epoch.
    pub acquired_unix: u64,
}

fn to_ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl StoredLease {
    /// The stored form of `lease`, at `now` on the Tap's clock, which is `now_unix`
    /// seconds since the UNIX epoch on the wall clock.
    pub fn new(lease: &Lease, now: Instant, now_unix: u64) -> StoredLease {
        let age = now.saturating_duration_since(lease.acquired_at);
        // Rounded up: the stored acquisition is never later than the real one.
        let age_secs = age.as_secs() + u64::from(age.subsec_nanos() > 0);
        StoredLease {
            address: lease.address,
            prefix_len: lease.prefix_len,
            gateway: lease.gateway,
            routes: lease.routes.clone(),
            dns: lease.dns.clone(),
            domain: lease.domain.clone(),
            search: lease.search.clone(),
            mtu: lease.mtu,
            broadcast: lease.broadcast,
            lease_ms: to_ms(lease.lease_time),
            t1_ms: to_ms(lease.t1),
            t2_ms: to_ms(lease.t2),
            server: lease.server,
            acquired_unix: now_unix.saturating_sub(age_secs),
        }
    }

    /// The lease again, at `now` on the Tap's clock, which is `now_unix` seconds since
    /// the UNIX epoch: it runs out at the same wall-clock time as when it was stored.
    /// It may have expired already ([`Lease::expires_at`] not after `now`); the DHCP
    /// client then starts with discovery. An acquisition before what `Instant` can
    /// express counts from `now` with its times shortened by its age instead, which
    /// keeps the expiry. A wall clock set back makes the lease look younger.
    pub fn to_lease(&self, now: Instant, now_unix: u64) -> Lease {
        let age = Duration::from_secs(now_unix.saturating_sub(self.acquired_unix));
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        let (acquired_at, shorten) = match now.checked_sub(age) {
            Some(at) => (at, Duration::ZERO),
            None => (now, age),
        };
        let time = |v: Option<u64>| ms(v).map(|d| d.saturating_sub(shorten));
        Lease {
            address: self.address,
            prefix_len: self.prefix_len,
            gateway: self.gateway,
            routes: self.routes.clone(),
            dns: self.dns.clone(),
            domain: self.domain.clone(),
            search: self.search.clone(),
            mtu: self.mtu,
            broadcast: self.broadcast,
            lease_time: time(self.lease_ms),
            t1: time(self.t1_ms),
            t2: time(self.t2_ms),
            server: self.server,
            acquired_at,
        }
    }

    /// True when the lease has run out at `now_unix` (seconds since the UNIX epoch).
    pub fn expired(&self, now_unix: u64) -> bool {
        self.lease_ms
            .is_some_and(|ms| self.acquired_unix.saturating_add(ms / 1000) <= now_unix)
    }
}

/// The form [`Ipv4Route`] is serialized in: `{"destination":"a.b.c.d/n","gateway":…}`.
#[derive(Deserialize)]
struct RouteForm {
    destination: String,
    #[serde(default)]
    gateway: Option<Ipv4Addr>,
}

/// Reads what [`Ipv4Route`]'s `Serialize` writes.
impl<'de> Deserialize<'de> for Ipv4Route {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let form = RouteForm::deserialize(d)?;
        let bad = || D::Error::custom(format!("bad destination {:?}", form.destination));
        let (address, len) = form.destination.split_once('/').ok_or_else(bad)?;
        let destination: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        if prefix_len > 32 {
            return Err(bad());
        }
        Ok(Ipv4Route {
            destination,
            prefix_len,
            gateway: form.gateway,
        })
    }
}
