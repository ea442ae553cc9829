//! [`Config`]: everything a [`crate::Tap`] is created with, and the checks it must pass.

use std::net::Ipv4Addr;

use crate::ipv4::route::prefix_mask;
use crate::ipv4::Ipv4Mode;
use crate::ipv6::Ipv6Mode;
use crate::neighbour::NeighbourConfig;
use crate::wire::ethernet::MacAddr;

/// Smallest link MTU [`Config::validate`] accepts: the IPv4 datagram every host must
/// take (RFC 791).
pub const MIN_MTU: u16 = 576;

/// Longest DHCP host name [`Config::validate`] accepts (what DHCP servers expect of
/// option 12).
pub const MAX_HOSTNAME_LEN: usize = 63;

/// Configuration of a [`crate::Tap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our MAC; `None` picks a random locally administered one from the RNG.
    pub mac: Option<MacAddr>,
    /// IPv4 addressing.
    pub ipv4: Ipv4Mode,
    /// IPv6 addressing: by default a link-local address and SLAAC.
    pub ipv6: Ipv6Mode,
    /// Largest IP packet the link carries (the Ethernet payload), normally 1500.
    pub mtu: u16,
    /// Neighbour cache timing and limits.
    pub neighbour: NeighbourConfig,
    /// Seed of the random source (MAC, reachable-time jitter, DHCP xids and backoff).
    pub rng_seed: u64,
    /// Most outputs held for [`crate::Tap::poll_transmit`] before new ones are dropped.
    pub max_pending_transmits: usize,
    /// Most events held for [`crate::Tap::poll_event`] before new ones are dropped.
    pub max_pending_events: usize,
    /// Most IPv4 multicast groups learnt from the TUN side's IGMP reports; a group
    /// beyond the limit is not learnt (counted), and its frames are dropped like those of
    /// any group we do not take.
    pub max_ipv4_groups: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mac: None,
            ipv4: Ipv4Mode::Disabled,
            ipv6: Ipv6Mode::default(),
            mtu: 1500,
            neighbour: NeighbourConfig::default(),
            rng_seed: 0,
            max_pending_transmits: 4096,
            max_pending_events: 256,
            max_ipv4_groups: 32,
        }
    }
}

/// Why [`Config::validate`] refused a configuration. The message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The MAC has the group bit set: no host may send from it.
    #[error("MAC address {0} is multicast")]
    MulticastMac(MacAddr),
    /// The MAC is `00:00:00:00:00:00`.
    #[error("MAC address is all zeros")]
    ZeroMac,
    /// The MTU is below [`MIN_MTU`].
    #[error("MTU {0} out of range {MIN_MTU}-65535")]
    Mtu(u16),
    /// A static prefix length outside 1–32.
    #[error("prefix length {0} out of range 1-32")]
    PrefixLength(u8),
    /// A static address that cannot be a host's (unspecified, broadcast, multicast).
    #[error("{0} cannot be a host address")]
    HostAddress(Ipv4Addr),
    /// A static route's gateway that is not another host on our subnet.
    #[error("gateway {gateway} is not another host on {address}/{prefix_len}")]
    GatewayNotOnLink {
        /// The gateway.
        gateway: Ipv4Addr,
        /// Our address.
        address: Ipv4Addr,
        /// Our prefix length.
        prefix_len: u8,
    },
    /// A DHCP host name that is not RFC 1123 labels of at most [`MAX_HOSTNAME_LEN`] bytes.
    #[error("bad hostname {0:?}")]
    Hostname(String),
    /// A limit of zero, under which the host could not work at all.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
}

impl Config {
    /// Checks what no emulated host can work with: a multicast or all-zero MAC, an MTU
    /// under [`MIN_MTU`], a static address that is no host address, a prefix outside
    /// 1–32 or a gateway off its subnet, a DHCP host name that is not RFC 1123 labels
    /// (at most 63 bytes), a zero limit. [`crate::Tap::new`] does not call it: every
    /// surface (the CLI, the Java API) does, before it starts anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(mac) = self.mac {
            if mac.is_multicast() {
                return Err(ConfigError::MulticastMac(mac));
            }
            if mac.octets() == [0; 6] {
                return Err(ConfigError::ZeroMac);
            }
        }
        if self.mtu < MIN_MTU {
            return Err(ConfigError::Mtu(self.mtu));
        }
        match &self.ipv4 {
            Ipv4Mode::Disabled => {}
            Ipv4Mode::Static(iface) => {
                let (address, prefix_len) = (iface.address, iface.prefix_len);
                if !(1..=32).contains(&prefix_len) {
                    return Err(ConfigError::PrefixLength(prefix_len));
                }
                if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
                    return Err(ConfigError::HostAddress(address));
                }
                let mask = prefix_mask(prefix_len);
                let on_link = |gw: Ipv4Addr| u32::from(gw) & mask == u32::from(address) & mask;
                for gateway in iface.routes.iter().filter_map(|r| r.gateway) {
                    if !on_link(gateway) || gateway == address {
                        return Err(ConfigError::GatewayNotOnLink {
                            gateway,
                            address,
                            prefix_len,
                        });
                    }
                }
            }
            Ipv4Mode::Dhcp(dhcp) => {
                if let Some(name) = &dhcp.hostname {
                    if !is_hostname(name) {
                        return Err(ConfigError::Hostname(name.clone()));
                    }
                }
            }
        }
        for (name, value) in [
            ("max_pending_transmits", self.max_pending_transmits),
            ("max_pending_events", self.max_pending_events),
            ("neighbour.max_entries", self.neighbour.max_entries),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        Ok(())
    }
}

/// RFC 1123 labels (letters, digits, inner hyphens) joined by dots, at most
/// [`MAX_HOSTNAME_LEN`] bytes in all.
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HOSTNAME_LEN
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DhcpConfig, Ipv4Interface, Ipv4Route};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    fn with_static(address: &str, prefix_len: u8, gateway: Option<&str>) -> Config {
        let iface = Ipv4Interface {
            prefix_len,
            ..Ipv4Interface::new(ip(address), 24, gateway.map(ip))
        };
        Config {
            ipv4: Ipv4Mode::Static(iface),
            ..Config::default()
        }
    }

    fn with_hostname(name: &str) -> Config {
        Config {
            ipv4: Ipv4Mode::Dhcp(DhcpConfig {
                hostname: Some(name.into()),
                ..DhcpConfig::default()
            }),
            ..Config::default()
        }
    }

    #[test]
    fn defaults_pass() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(
            with_static("192.0.2.50", 24, Some("192.0.2.1")).validate(),
            Ok(())
        );
        assert_eq!(with_static("192.0.2.50", 32, None).validate(), Ok(()));
        assert_eq!(with_hostname("phone-1.lan").validate(), Ok(()));
    }

    #[test]
    fn mac_must_be_unicast_and_not_zero() {
        let with_mac = |s: &str| Config {
            mac: Some(s.parse().expect("test MAC")),
            ..Config::default()
        };
        assert_eq!(with_mac("02:00:5e:10:00:01").validate(), Ok(()));
        for multicast in [
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
            "33:33:00:00:00:01",
        ] {
            assert!(
                matches!(
                    with_mac(multicast).validate(),
                    Err(ConfigError::MulticastMac(_))
                ),
                "{multicast}"
            );
        }
        assert_eq!(
            with_mac("00:00:00:00:00:00").validate(),
            Err(ConfigError::ZeroMac)
        );
        assert_eq!(
            with_mac("01:00:5e:00:00:01")
                .validate()
                .map_err(|e| e.to_string()),
            Err("MAC address 01:00:5e:00:00:01 is multicast".into())
        );
    }

    #[test]
    fn mtu_at_least_576() {
        let with_mtu = |mtu| Config {
            mtu,
            ..Config::default()
        };
        assert_eq!(with_mtu(576).validate(), Ok(()));
        assert_eq!(with_mtu(65535).validate(), Ok(()));
        assert_eq!(with_mtu(575).validate(), Err(ConfigError::Mtu(575)));
    }

    #[test]
    fn static_address_prefix_and_gateway() {
        assert_eq!(
            with_static("192.0.2.50", 0, None).validate(),
            Err(ConfigError::PrefixLength(0))
        );
        assert_eq!(
            with_static("192.0.2.50", 33, None).validate(),
            Err(ConfigError::PrefixLength(33))
        );
        for host in ["0.0.0.0", "255.255.255.255", "224.0.0.1"] {
            assert_eq!(
                with_static(host, 24, None).validate(),
                Err(ConfigError::HostAddress(ip(host)))
            );
        }
        for gateway in ["198.51.100.1", "192.0.2.50"] {
            assert_eq!(
                with_static("192.0.2.50", 24, Some(gateway)).validate(),
                Err(ConfigError::GatewayNotOnLink {
                    gateway: ip(gateway),
                    address: ip("192.0.2.50"),
                    prefix_len: 24
                })
            );
        }
        // Every route's gateway, not only the default route's.
        let mut config = with_static("192.0.2.50", 24, Some("192.0.2.1"));
        if let Ipv4Mode::Static(iface) = &mut config.ipv4 {
            iface.routes.push(Ipv4Route {
                destination: ip("198.51.100.0"),
                prefix_len: 24,
                gateway: Some(ip("203.0.113.1")),
            });
        }
        assert!(matches!(
            config.validate(),
            Err(ConfigError::GatewayNotOnLink { .. })
        ));
    }

    #[test]
    fn hostname_rules() {
        let long = "a".repeat(64);
        for bad in [
            "",
            "bad host",
            "-lead",
            "trail-",
            "a..b",
            "under_score",
            &long,
        ] {
            assert_eq!(
                with_hostname(bad).validate(),
                Err(ConfigError::Hostname(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(with_hostname(&"a".repeat(63)).validate(), Ok(()));
    }

    #[test]
    fn zero_limits() {
        let mut config = Config {
            max_pending_events: 0,
            ..Config::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::ZeroLimit("max_pending_events"))
        );
        config.max_pending_events = 1;
        config.neighbour.max_entries = 0;
        assert_eq!(
            config.validate(),
            Err(ConfigError::ZeroLimit("neighbour.max_entries"))
        );
    }
}
