//! Parsing of the configuration the Java side passes in: the Java-specific checks
//! (strings, `int` ranges, nulls, the link URL) here, the emulated host's own rules in
//! the core's `Config::validate`, shared with the CLI. Everything from Java is
//! untrusted: no panics here.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::str::FromStr;

use tapemu::config::MIN_MTU;
use tapemu::driver::LinkSpec as DriverLink;
use tapemu::present::StoredLease;
use tapemu::{Config, DhcpConfig, Ipv4Interface, Ipv4Mode, Ipv6Mode, MacAddr};

use crate::error::{Error, Result};

/// Where the frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    /// The app's own VPN protocol carries frames: `onFrame` / `sendFrame`.
    Callback,
    /// A built-in link, given by a URL the driver understands.
    Url(LinkUrl),
    /// An `fd://` link on one end of a socket pair the emulator creates; the app takes
    /// the other end (`TapEmulator.peerFd()`) for its engine.
    SocketPair,
}

/// A checked built-in link URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkUrl {
    /// The URL as given.
    pub url: String,
    /// `udp`, `tcp`, `vxlan`, `tap` or `fd`.
    pub scheme: String,
}

/// A validated emulator configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// The emulated host, checked by [`Config::validate`]; its seed is drawn afresh by
    /// [`EmulatorConfig::core_config`]. Its MAC is always set: the one given, else a
    /// random locally administered one drawn once here, so `TapEmulator.mac()` can read
    /// it back before the emulator starts.
    pub tap: Config,
    /// The link.
    pub link: LinkSpec,
    /// A lease of an earlier run, in the stored form (`present::StoredLease`), asked
    /// for again at start (INIT-REBOOT) while it has not expired.
    pub remembered_lease: Option<StoredLease>,
}

/// The raw configuration fields, as they come from `TapConfig`.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// MAC string or `None`.
    pub mac: Option<String>,
    /// Static address or `None` for DHCP.
    pub address: Option<String>,
    /// Static prefix length.
    pub prefix_len: i32,
    /// Static gateway.
    pub gateway: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// MTU.
    pub mtu: i32,
    /// IPv6 on or off.
    pub ipv6: bool,
    /// Link URL or `None` for callback mode.
    pub link: Option<String>,
    /// A remembered lease as JSON (`present::StoredLease`), or `None`.
    pub remembered_lease: Option<String>,
    /// A socket-pair link (then `link` must be `None`).
    pub socket_pair: bool,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::IllegalArgument(msg.into())
}

/// Parses a MAC (whether it may be ours is [`Config::validate`]'s to say).
pub fn parse_mac(s: &str) -> Result<MacAddr> {
    MacAddr::from_str(s.trim()).map_err(|_| bad(format!("bad MAC address {s:?}")))
}

fn parse_ipv4(what: &str, s: &str) -> Result<Ipv4Addr> {
    Ipv4Addr::from_str(s.trim()).map_err(|_| bad(format!("bad {what} {s:?}")))
}

/// Checks a link URL with the driver's own parser (scheme, `host:port` or interface
/// name, query parameters). Names are not resolved here.
pub fn parse_link_url(url: &str) -> Result<LinkUrl> {
    let spec = DriverLink::from_str(url).map_err(|e| bad(e.to_string()))?;
    let scheme = match spec {
        DriverLink::Udp { .. } => "udp",
        DriverLink::Tcp { .. } => "tcp",
        DriverLink::Vxlan { .. } => "vxlan",
        DriverLink::Tap { .. } => "tap",
        DriverLink::Fd(_) => "fd",
        DriverLink::Channel(_) | DriverLink::Batch(_) => {
            return Err(bad(format!("bad link URL {url:?}")))
        }
    };
    Ok(LinkUrl {
        url: url.to_string(),
        scheme: scheme.to_string(),
    })
}

impl RawConfig {
    /// Reads the Java fields (strings, `int` ranges, a gateway without an address, the
    /// link URL), then checks the emulated host with [`Config::validate`], the check
    /// the CLI makes too.
    pub fn parse(&self) -> Result<EmulatorConfig> {
        let mac = match self.mac.as_deref() {
            Some(mac) => parse_mac(mac)?,
            None => random_mac(),
        };
        let mtu = u16::try_from(self.mtu)
            .map_err(|_| bad(format!("MTU {} out of range {MIN_MTU}-65535", self.mtu)))?;
        let ipv4 = match &self.address {
            None => {
                if self.gateway.is_some() {
                    return Err(bad("a gateway needs a static address"));
                }
                Ipv4Mode::Dhcp(DhcpConfig {
                    hostname: self.hostname.clone(),
                    ..DhcpConfig::default()
                })
            }
            Some(a) => {
                let address = parse_ipv4("address", a)?;
                let prefix_len = u8::try_from(self.prefix_len).map_err(|_| {
                    bad(format!(
                        "prefix length {} out of range 1-32",
                        self.prefix_len
                    ))
                })?;
                let gateway = self
                    .gateway
                    .as_deref()
                    .map(|g| parse_ipv4("gateway", g))
                    .transpose()?;
                // The prefix as given, for the check: `new` would cap it at 32.
                Ipv4Mode::Static(Ipv4Interface {
                    prefix_len,
                    ..Ipv4Interface::new(address, prefix_len, gateway)
                })
            }
        };
        let remembered_lease = self
            .remembered_lease
            .as_deref()
            .map(parse_stored_lease)
            .transpose()?;
        if remembered_lease.is_some() && !matches!(ipv4, Ipv4Mode::Dhcp(_)) {
            return Err(bad("a remembered lease needs DHCP, not a static address"));
        }
        let tap = Config {
            mac: Some(mac),
            ipv4,
            ipv6: if self.ipv6 {
                Ipv6Mode::default()
            } else {
                Ipv6Mode::Disabled
            },
            mtu,
            ..Config::default()
        };
        tap.validate().map_err(|e| bad(e.to_string()))?;
        let link = match (&self.link, self.socket_pair) {
            (None, false) => LinkSpec::Callback,
            (None, true) => LinkSpec::SocketPair,
            (Some(url), false) => LinkSpec::Url(parse_link_url(url)?),
            (Some(_), true) => return Err(bad("a socket pair and a link URL at once")),
        };
        Ok(EmulatorConfig {
            tap,
            link,
            remembered_lease,
        })
    }
}

/// Reads a lease stored by an earlier run (the JSON of `present::StoredLease`).
pub fn parse_stored_lease(json: &str) -> Result<StoredLease> {
    serde_json::from_str(json).map_err(|e| bad(format!("bad remembered lease: {e}")))
}

/// A random locally administered unicast MAC.
pub fn random_mac() -> MacAddr {
    let seed = random_seed().to_be_bytes();
    let mut bytes = [0u8; 6];
    bytes.copy_from_slice(&seed[..6]);
    bytes[0] = (bytes[0] & 0xfc) | 0x02;
    MacAddr(bytes)
}

/// Seconds since the UNIX epoch on the wall clock (0 before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl EmulatorConfig {
    /// The core configuration, with a fresh random seed (DHCP xids) and the remembered
    /// lease, if any, on the `Instant` timeline of a driver started now.
    pub fn core_config(&self) -> Config {
        let mut tap = Config {
            rng_seed: random_seed(),
            ..self.tap.clone()
        };
        if let (Ipv4Mode::Dhcp(dhcp), Some(stored)) = (&mut tap.ipv4, &self.remembered_lease) {
            dhcp.remembered_lease = Some(stored.to_lease(std::time::Instant::now(), unix_now()));
        }
        tap
    }

    /// The MAC the emulated host uses.
    pub fn mac(&self) -> MacAddr {
        self.tap.mac.unwrap_or_default()
    }

    /// Whether the IPv4 address is static (reported as a lease when it is up).
    pub fn is_static(&self) -> bool {
        matches!(self.tap.ipv4, Ipv4Mode::Static(_))
    }
}

/// A random 64-bit seed from the standard library's per-process hash keys and the clock.
pub fn random_seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawConfig {
        RawConfig {
            mtu: 1500,
            ..RawConfig::default()
        }
    }

    #[test]
    fn defaults_are_dhcp_callback() {
        let c = raw().parse().unwrap();
        assert!(matches!(c.tap.ipv4, Ipv4Mode::Dhcp(_)));
        assert!(!c.is_static());
        assert_eq!(c.link, LinkSpec::Callback);
        let mac = c.tap.mac.expect("a MAC is drawn");
        assert!(mac.is_unicast() && mac.octets()[0] & 0x02 != 0, "{mac}");
        assert_ne!(raw().parse().unwrap().mac(), mac, "drawn afresh");
    }

    #[test]
    fn remembered_lease_round_trip() {
        let json = r#"{"address":"192.0.2.123","prefix":24,"gateway":"192.0.2.1","lease_ms":3600000,"t1_ms":1800000,"t2_ms":3150000,"server":"192.0.2.1","acquired_unix":1700000000}"#;
        let mut r = raw();
        r.remembered_lease = Some(json.into());
        let c = r.parse().unwrap();
        assert_eq!(
            c.remembered_lease.as_ref().map(|l| l.address),
            Some("192.0.2.123".parse().unwrap())
        );
        let Ipv4Mode::Dhcp(dhcp) = c.core_config().ipv4 else {
            panic!("dhcp")
        };
        assert_eq!(
            dhcp.remembered_lease.map(|l| l.address),
            Some("192.0.2.123".parse().unwrap())
        );
        for bad in ["", "{}", "[1]", r#"{"address":"x"}"#] {
            r.remembered_lease = Some(bad.into());
            assert!(matches!(r.parse(), Err(Error::IllegalArgument(_))), "{bad}");
        }
        r.remembered_lease = Some(json.into());
        r.address = Some("192.0.2.50".into());
        r.prefix_len = 24;
        assert!(r.parse().is_err(), "static address and remembered lease");
    }

    #[test]
    fn mac_rules() {
        let with_mac = |mac: &str| RawConfig {
            mac: Some(mac.into()),
            ..raw()
        };
        assert!(with_mac("02:00:5e:10:00:01").parse().is_ok());
        assert!(with_mac("02-00-5e-10-00-01").parse().is_ok());
        for bad in [
            "",
            "zz:00:5e:10:00:01",
            "02:00:5e:10:00",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
        ] {
            assert!(
                matches!(with_mac(bad).parse(), Err(Error::IllegalArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn static_address_rules() {
        let mut r = raw();
        r.address = Some("192.0.2.50".into());
        r.prefix_len = 24;
        r.gateway = Some("192.0.2.1".into());
        assert!(r.parse().unwrap().is_static());
        r.gateway = Some("198.51.100.1".into());
        assert!(r.parse().is_err());
        r.gateway = None;
        for prefix_len in [0, 33, 300, -1] {
            r.prefix_len = prefix_len;
            assert!(r.parse().is_err(), "/{prefix_len}");
        }
        r.prefix_len = 24;
        r.address = Some("192.0.2".into());
        assert!(r.parse().is_err());
        let mut r = raw();
        r.gateway = Some("192.0.2.1".into());
        assert!(r.parse().is_err());
    }

    #[test]
    fn mtu_and_hostname() {
        let mut r = raw();
        r.mtu = 100;
        assert!(r.parse().is_err());
        r.mtu = 70000;
        assert!(r.parse().is_err());
        r.mtu = 1400;
        r.hostname = Some("phone-1.lan".into());
        assert!(r.parse().is_ok());
        r.hostname = Some("bad host".into());
        assert!(r.parse().is_err());
    }

    #[test]
    fn link_urls() {
        for ok in [
            "udp://192.0.2.1:4789",
            "tcp://example.net:5000?len=4",
            "vxlan://198.51.100.1:4789?vni=42",
            "tap://tap0",
            "udp://[2001:db8::1]:9",
            "fd://3",
        ] {
            assert!(parse_link_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "udp://",
            "udp://host",
            "ftp://a:1",
            "vxlan://a:1?vni=99999999",
            "tcp://a:1?len=3",
            "udp://a:1?x=1",
            "tap://",
            "192.0.2.1:4789",
        ] {
            assert!(
                matches!(parse_link_url(bad), Err(Error::IllegalArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
