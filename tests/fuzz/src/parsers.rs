//! Inputs of the parser targets: the DHCP option walker (`dhcp_options`), the NDP option
//! parser (`ndp_options`) and the configuration check of the Java API
//! (`config_validate`), each wrapping the fuzzed bytes in what the parser needs around
//! them, so that the fuzzer spends its time in the options rather than in headers and
//! checksums.

use std::net::{Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use tapemu::wire::dhcpv4::{Reply, MAX_DNS, MAX_ROUTES, MAX_SEARCH_DOMAINS};
use tapemu::wire::ndp::{self, NdpMessage};

/// Length of the fixed BOOTP header, up to and with the magic cookie.
pub const DHCP_HEADER_LEN: usize = 240;
/// Bytes of `sname` (64) and `file` (128), which option overload (52) fills with options.
pub const DHCP_SNAME_FILE_LEN: usize = 192;
/// `dhcp_options` input flag: the 192 bytes after the flag byte are `sname` and `file`.
pub const DHCP_WITH_SNAME_FILE: u8 = 1;

/// The DHCP message `dhcp_options` parses from `data`: a BOOTREPLY header (xid
/// 0x01020304, yiaddr 192.0.2.100, our chaddr), then either `data[1..]` as the options
/// area, or, when `data[0]` has [`DHCP_WITH_SNAME_FILE`], `data[1..193]` (zero-padded)
/// as `sname` and `file` and the rest as the options area.
pub fn dhcp_message(data: &[u8]) -> Vec<u8> {
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let mut msg = vec![0u8; DHCP_HEADER_LEN];
    msg[0] = 2; // BOOTREPLY
    msg[1] = 1; // Ethernet
    msg[2] = 6;
    msg[4..8].copy_from_slice(&[1, 2, 3, 4]);
    msg[16..20].copy_from_slice(&[192, 0, 2, 100]);
    msg[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    msg[236..240].copy_from_slice(&[99, 130, 83, 99]);
    let options = if flags & DHCP_WITH_SNAME_FILE != 0 {
        let n = rest.len().min(DHCP_SNAME_FILE_LEN);
        msg[44..44 + n].copy_from_slice(&rest[..n]);
        &rest[n..]
    } else {
        rest
    };
    msg.extend_from_slice(options);
    msg
}

/// The options area and, if any, `sname` + `file` of a recorded DHCP message (a UDP
/// payload): the inverse of [`dhcp_message`], for seeds.
pub fn dhcp_input(message: &[u8]) -> Option<Vec<u8>> {
    let options = message.get(DHCP_HEADER_LEN..)?;
    let sname_file = message.get(44..236)?;
    let mut input = Vec::with_capacity(1 + message.len());
    if sname_file.iter().any(|&b| b != 0) {
        input.push(DHCP_WITH_SNAME_FILE);
        input.extend_from_slice(sname_file);
    } else {
        input.push(0);
    }
    input.extend_from_slice(options);
    Some(input)
}

/// Runs the option walker on `data` and checks what it kept against its limits.
pub fn check_dhcp_options(data: &[u8]) {
    let msg = dhcp_message(data);
    let Some(reply) = Reply::parse(&msg) else {
        return;
    };
    let o = &reply.options;
    assert!(o.dns.len() <= MAX_DNS, "{} DNS servers kept", o.dns.len());
    assert!(o.search.len() <= MAX_SEARCH_DOMAINS, "{} search domains", o.search.len());
    assert!(o.prefix_len.is_none_or(|p| p <= 32), "prefix {:?}", o.prefix_len);
    assert!(o.mtu.is_none_or(|m| m >= 68), "MTU {:?}", o.mtu);
    if let Some(routes) = &o.classless_routes {
        assert!(routes.len() <= MAX_ROUTES, "{} routes kept", routes.len());
        for r in routes {
            assert!(r.prefix_len <= 32, "{r:?}");
            let mask = u32::MAX.checked_shl(32 - u32::from(r.prefix_len)).unwrap_or(0);
            assert_eq!(u32::from(r.destination) & !mask, 0, "host bits in {r:?}");
        }
    }
    for name in o.domain.iter().chain(&o.search) {
        assert!(!name.is_empty() && !name.contains('\0'), "{name:?}");
    }
}

/// The NDP messages `ndp_options` builds, by `data[0] % 5`.
const NDP_KINDS: u8 = 5;
/// The router's link-local address, the source of every message `ndp_options` builds.
pub const NDP_SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// Their destination: all nodes.
pub const NDP_DST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const TARGET: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// The ICMPv6 message `ndp_options` parses from `data`: by `data[0] % 5` a router
/// solicitation, advertisement, neighbour solicitation, advertisement or redirect with
/// fixed fields, `data[1..]` as its options, and a valid checksum from [`NDP_SRC`] to
/// [`NDP_DST`].
pub fn ndp_message(data: &[u8]) -> Vec<u8> {
    let (kind, options) = data.split_first().map_or((0, data), |(k, r)| (*k, r));
    let mut msg = match kind % NDP_KINDS {
        0 => vec![133, 0, 0, 0, 0, 0, 0, 0],
        // Hop limit 64, no flags, router lifetime 1800 s, reachable and retrans 0.
        1 => vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
        2 => [&[135, 0, 0, 0, 0, 0, 0, 0][..], &TARGET].concat(),
        // Solicited and override.
        3 => [&[136, 0, 0, 0, 0x60, 0, 0, 0][..], &TARGET].concat(),
        _ => [&[137, 0, 0, 0, 0, 0, 0, 0][..], &TARGET, &TARGET].concat(),
    };
    msg.extend_from_slice(options);
    let sum = icmpv6_checksum(NDP_SRC, NDP_DST, &msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    msg
}

/// The kind byte and options of a recorded NDP message (the ICMPv6 message): the inverse
/// of [`ndp_message`], for seeds; `None` for other ICMPv6 types.
pub fn ndp_input(icmp: &[u8]) -> Option<Vec<u8>> {
    let (kind, fixed) = match icmp.first()? {
        133 => (0u8, 8),
        134 => (1, 16),
        135 => (2, 24),
        136 => (3, 24),
        137 => (4, 40),
        _ => return None,
    };
    Some([&[kind][..], icmp.get(fixed..)?].concat())
}

/// The ICMPv6 checksum of `msg` (its checksum field zero) from `src` to `dst`.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let mut pseudo = Vec::with_capacity(40 + msg.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(msg);
    let mut sum: u32 = 0;
    for pair in pseudo.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Runs the NDP parser on the message built from `data`, and the DNSSL name decoder on
/// the options bytes themselves; checks what a valid message may carry.
pub fn check_ndp_options(data: &[u8]) {
    let msg = ndp_message(data);
    if let Ok(parsed) = ndp::parse(NDP_SRC, NDP_DST, 255, &msg) {
        let kind = data.first().copied().unwrap_or(0) % NDP_KINDS;
        match (kind, &parsed) {
            (0, NdpMessage::RouterSolicitation) | (4, NdpMessage::Redirect) => {}
            (1, NdpMessage::RouterAdvertisement(ra)) => {
                for (_, domains) in &ra.dnssl {
                    for d in domains {
                        assert!(d.len() <= 253, "{d:?}");
                    }
                }
            }
            (2, NdpMessage::NeighborSolicitation(ns)) => {
                assert_eq!(ns.target.octets(), TARGET);
            }
            (3, NdpMessage::NeighborAdvertisement(na)) => {
                assert_eq!(na.target.octets(), TARGET);
            }
            _ => panic!("kind {kind} parsed as {parsed:?}"),
        }
    }
    // A checksum that does not match is refused before anything is read.
    if msg.len() >= 4 {
        let mut bad = msg.clone();
        bad[2] ^= 0xff;
        assert!(ndp::parse(NDP_SRC, NDP_DST, 255, &bad).is_err());
    }
    let options = data.get(1..).unwrap_or_default();
    if let Ok(names) = ndp::parse_domain_list(options) {
        for n in names {
            assert!(n.len() <= 253 && !n.is_empty(), "{n:?}");
        }
    }
}

/// What the Java API hands to the configuration check (`TapConfig`'s fields), and a
/// core [`tapemu::Config`] built field by field.
#[derive(Debug, Arbitrary)]
pub struct ConfigInput {
    /// `RawConfig::mac`.
    pub mac: Option<String>,
    /// `RawConfig::address`.
    pub address: Option<String>,
    /// `RawConfig::prefix_len`.
    pub prefix_len: i32,
    /// `RawConfig::gateway`.
    pub gateway: Option<String>,
    /// `RawConfig::hostname`.
    pub hostname: Option<String>,
    /// `RawConfig::mtu`.
    pub mtu: i32,
    /// `RawConfig::ipv6`.
    pub ipv6: bool,
    /// `RawConfig::link`.
    pub link: Option<String>,
    /// The core configuration, directly.
    pub core: CoreInput,
}

/// A core configuration's checked fields, as raw values.
#[derive(Debug, Arbitrary)]
pub struct CoreInput {
    /// MAC octets, if any.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: u16,
    /// 0: DHCP with `hostname`; 1: static; else disabled.
    pub mode: u8,
    /// Static address.
    pub address: [u8; 4],
    /// Static prefix length.
    pub prefix_len: u8,
    /// Static routes: destination, prefix length, gateway.
    pub routes: Vec<([u8; 4], u8, Option<[u8; 4]>)>,
    /// DHCP host name.
    pub hostname: Option<String>,
    /// `max_pending_transmits`, `max_pending_events`, `neighbour.max_entries` (small).
    pub limits: [u8; 3],
}

impl CoreInput {
    /// The configuration these fields make.
    pub fn config(&self) -> tapemu::Config {
        use tapemu::{Config, DhcpConfig, Ipv4Interface, Ipv4Mode, Ipv4Route, MacAddr};
        let mut config = Config {
            mac: self.mac.map(MacAddr),
            mtu: self.mtu,
            ipv4: match self.mode % 3 {
                0 => Ipv4Mode::Dhcp(DhcpConfig {
                    hostname: self.hostname.clone(),
                    ..DhcpConfig::default()
                }),
                1 => Ipv4Mode::Static(Ipv4Interface {
                    address: Ipv4Addr::from(self.address),
                    prefix_len: self.prefix_len,
                    routes: self
                        .routes
                        .iter()
                        .take(8)
                        .map(|(d, p, g)| Ipv4Route {
                            destination: Ipv4Addr::from(*d),
                            prefix_len: *p,
                            gateway: g.map(Ipv4Addr::from),
                        })
                        .collect(),
                }),
                _ => Ipv4Mode::Disabled,
            },
            ..Config::default()
        };
        config.max_pending_transmits = usize::from(self.limits[0]);
        config.max_pending_events = usize::from(self.limits[1]);
        config.neighbour.max_entries = usize::from(self.limits[2]);
        config
    }
}
