//! Neighbor Discovery (RFC 4861) messages: validation and parsing of what arrives,
//! building of what a Linux host sends.
//!
//! Parsing checks everything RFC 4861 §6.1 and §7.1 ask of a receiver (hop limit 255,
//! checksum, code 0, length, option lengths, source/destination rules) and bounds every
//! read, so arbitrary bytes give an [`NdpError`], never a panic. etherparse reads the
//! ICMPv6 header, the message bodies and the options it knows; the RDNSS and DNSSL
//! options (RFC 8106) and the nonce (RFC 7527) come to us as its unknown options. The
//! behaviour (what to answer, what to learn) lives in [`crate::ipv6`].

use std::net::Ipv6Addr;

use etherparse::icmpv6::{
    NdpOptionReadError, NdpOptionSlice, NdpOptionType, NdpOptionsIterator,
    NeighborAdvertisementHeader, NeighborAdvertisementPayloadSlice,
    NeighborSolicitationPayloadSlice, RedirectPayloadSlice, RouterAdvertisementPayloadSlice,
};
use etherparse::{Icmpv6Slice, Icmpv6Type};

use crate::wire::ethernet::MacAddr;
use crate::wire::icmp::{icmpv6_checksum_ok, icmpv6_frame, Endpoints};

/// ICMPv6 message types handled here and in [`crate::wire::mld`].
pub mod icmpv6_type {
    pub use etherparse::icmpv6::{
        TYPE_MULTICAST_LISTENER_QUERY as MLD_QUERY,
        TYPE_MULTICAST_LISTENER_REDUCTION as MLD_V1_DONE,
        TYPE_MULTICAST_LISTENER_REPORT as MLD_V1_REPORT,
        TYPE_NEIGHBOR_ADVERTISEMENT as NEIGHBOR_ADVERTISEMENT,
        TYPE_NEIGHBOR_SOLICITATION as NEIGHBOR_SOLICITATION, TYPE_REDIRECT_MESSAGE as REDIRECT,
        TYPE_ROUTER_ADVERTISEMENT as ROUTER_ADVERTISEMENT,
        TYPE_ROUTER_SOLICITATION as ROUTER_SOLICITATION,
    };
    /// MLDv2 report (RFC 3810; etherparse has no constant for it).
    pub const MLD_V2_REPORT: u8 = 143;
}

/// NDP option types etherparse reads as unknown options.
mod option {
    pub const NONCE: u8 = 14;
    pub const RDNSS: u8 = 25;
    pub const DNSSL: u8 = 31;
}

/// The hop limit of every NDP message (RFC 4861 §6.1, §7.1).
const HOP_LIMIT: u8 = 255;

/// `ff02::1`, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// `ff02::2`, all routers on the link.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Why an NDP or MLD message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NdpError {
    /// The hop limit is not 255 (NDP) or 1 (MLD): the message came from off-link.
    #[error("hop limit not 255")]
    BadHopLimit,
    /// The ICMPv6 checksum is wrong.
    #[error("bad ICMPv6 checksum")]
    BadChecksum,
    /// Too short, a non-zero code, a malformed option, or fragmented (RFC 6980).
    #[error("malformed NDP message")]
    Malformed,
    /// Well formed but breaks a validity rule (multicast target, unspecified source with
    /// options, router advertisement from a non-link-local source, ...).
    #[error("invalid NDP message")]
    Invalid,
}

/// A prefix information option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (bits beyond `prefix_len` are not cleared here).
    pub prefix: Ipv6Addr,
    /// Prefix length, 0–128.
    pub prefix_len: u8,
    /// L flag: the prefix is on-link.
    pub on_link: bool,
    /// A flag: the prefix may be used for SLAAC.
    pub autonomous: bool,
    /// Valid lifetime in seconds (`u32::MAX` is infinite).
    pub valid_lifetime: u32,
    /// Preferred lifetime in seconds (`u32::MAX` is infinite).
    pub preferred_lifetime: u32,
}

/// A parsed router advertisement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterAdvert {
    /// Hop limit to use (0: unspecified).
    pub cur_hop_limit: u8,
    /// M flag: addresses are available by DHCPv6.
    pub managed: bool,
    /// O flag: other configuration is available by DHCPv6.
    pub other: bool,
    /// Lifetime as default router, seconds (0: not a default router).
    pub router_lifetime: u16,
    /// Reachable time in ms (0: unspecified).
    pub reachable_time: u32,
    /// Retransmission timer in ms (0: unspecified).
    pub retrans_timer: u32,
    /// The router's MAC, from the source link-layer address option.
    pub source_mac: Option<MacAddr>,
    /// The MTU option.
    pub mtu: Option<u32>,
    /// Prefix information options.
    pub prefixes: Vec<PrefixInfo>,
    /// RDNSS options: lifetime in seconds and servers.
    pub rdnss: Vec<(u32, Vec<Ipv6Addr>)>,
    /// DNSSL options: lifetime in seconds and domains.
    pub dnssl: Vec<(u32, Vec<String>)>,
}

/// A parsed neighbour solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicit {
    /// The address asked for.
    pub target: Ipv6Addr,
    /// The sender's MAC (absent in DAD probes).
    pub source_mac: Option<MacAddr>,
    /// The RFC 7527 nonce of a DAD probe.
    pub nonce: Option<[u8; 6]>,
}

/// A parsed neighbour advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvert {
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The R, S and O flags.
    pub flags: NaFlags,
    /// The target's MAC.
    pub target_mac: Option<MacAddr>,
}

/// A parsed and validated NDP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdpMessage {
    /// Router solicitation (hosts ignore these).
    RouterSolicitation,
    /// Router advertisement.
    RouterAdvertisement(RouterAdvert),
    /// Neighbour solicitation.
    NeighborSolicitation(NeighborSolicit),
    /// Neighbour advertisement.
    NeighborAdvertisement(NeighborAdvert),
    /// Redirect (not acted on).
    Redirect,
}

/// The solicited-node multicast group of `addr` (`ff02::1:ffXX:XXXX`).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// True for the solicited-node groups `ff02::1:ff00:0/104`.
pub fn is_solicited_node(group: Ipv6Addr) -> bool {
    group.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// True for `fe80::/10`.
pub fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Calls `f` with each option etherparse reads from `options`. A zero length or an
/// option running past the message is malformed (RFC 4861 §6.1); so is a prefix
/// information option of the wrong size. An MTU option of the wrong size is skipped on
/// its own: the options after it still count.
fn for_each_option<'a>(
    options: &'a [u8],
    mut f: impl FnMut(NdpOptionSlice<'a>) -> Result<(), NdpError>,
) -> Result<(), NdpError> {
    let mut iter = NdpOptionsIterator::from_slice(options);
    loop {
        let rest = iter.rest();
        match iter.next() {
            None => return Ok(()),
            Some(Ok(option)) => f(option)?,
            Some(Err(NdpOptionReadError::UnexpectedSize {
                option_id: NdpOptionType::MTU,
                ..
            })) => {
                // etherparse wants an MTU option of length 1 exactly and stops at the
                // error; carry on past the option when its framing is sound.
                let len = usize::from(rest.get(1).copied().unwrap_or(0)) * 8;
                if len == 0 || len > rest.len() {
                    return Err(NdpError::Malformed);
                }
                iter = NdpOptionsIterator::from_slice(&rest[len..]);
            }
            Some(Err(_)) => return Err(NdpError::Malformed),
        }
    }
}

fn mac_option(link_layer_address: &[u8]) -> Option<MacAddr> {
    let bytes: [u8; 6] = link_layer_address.get(..6)?.try_into().ok()?;
    Some(MacAddr(bytes))
}

/// The lifetime field of an RDNSS or DNSSL option body (after type and length).
fn dns_option_lifetime(body: &[u8]) -> u32 {
    body.get(2..6)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Decodes a list of domain names in RFC 1035 label form without compression, as in
/// DNSSL options (RFC 8106) and DHCPv6 domain lists (RFC 3646); trailing zero padding
/// ends the list.
pub fn parse_domain_list(mut data: &[u8]) -> Result<Vec<String>, NdpError> {
    let mut names = Vec::new();
    // Names follow each other; zero padding after the last one ends the list.
    while data.first().is_some_and(|&b| b != 0) {
        let mut labels: Vec<String> = Vec::new();
        loop {
            let Some((&len, rest)) = data.split_first() else {
                return Err(NdpError::Malformed);
            };
            data = rest;
            if len == 0 {
                break;
            }
            let len = usize::from(len);
            if len > 63 || len > data.len() {
                return Err(NdpError::Malformed);
            }
            let label = &data[..len];
            if !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            {
                return Err(NdpError::Malformed);
            }
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            data = &data[len..];
        }
        let name = labels.join(".");
        if name.len() > 253 {
            return Err(NdpError::Malformed);
        }
        names.push(name);
    }
    Ok(names)
}

/// Validates and parses an NDP message: `msg` is the ICMPv6 message (type first) of an
/// IPv6 packet from `src` to `dst` with `hop_limit`.
pub fn parse(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: &[u8],
) -> Result<NdpMessage, NdpError> {
    if !icmpv6_checksum_ok(src, dst, msg) {
        return Err(NdpError::BadChecksum);
    }
    let icmp = Icmpv6Slice::from_slice(msg).map_err(|_| NdpError::Malformed)?;
    if hop_limit != HOP_LIMIT {
        return Err(NdpError::BadHopLimit);
    }
    if icmp.code_u8() != 0 {
        return Err(NdpError::Malformed);
    }
    let body = icmp.payload();
    match icmp.icmp_type() {
        Icmpv6Type::RouterSolicitation => {
            let mut has_sllao = false;
            for_each_option(body, |o| {
                has_sllao |= matches!(o, NdpOptionSlice::SourceLinkLayerAddress(_));
                Ok(())
            })?;
            if src.is_unspecified() && has_sllao {
                return Err(NdpError::Invalid);
            }
            Ok(NdpMessage::RouterSolicitation)
        }
        Icmpv6Type::RouterAdvertisement(header) => {
            let ra = RouterAdvertisementPayloadSlice::from_slice(body)
                .map_err(|_| NdpError::Malformed)?;
            if !is_link_local(src) {
                return Err(NdpError::Invalid);
            }
            let mut advert = RouterAdvert {
                cur_hop_limit: header.cur_hop_limit,
                managed: header.managed_address_config,
                other: header.other_config,
                router_lifetime: header.router_lifetime,
                reachable_time: ra.reachable_time(),
                retrans_timer: ra.retrans_timer(),
                ..RouterAdvert::default()
            };
            for_each_option(ra.options(), |o| {
                ra_option(&mut advert, o);
                Ok(())
            })?;
            Ok(NdpMessage::RouterAdvertisement(advert))
        }
        Icmpv6Type::NeighborSolicitation => {
            let ns = NeighborSolicitationPayloadSlice::from_slice(body)
                .map_err(|_| NdpError::Malformed)?;
            let target = ns.target_address();
            let mut source_mac = None;
            let mut nonce = None;
            for_each_option(ns.options(), |o| {
                match o {
                    NdpOptionSlice::SourceLinkLayerAddress(sllao) => {
                        source_mac = mac_option(sllao.link_layer_address());
                    }
                    NdpOptionSlice::Unknown(u) if u.option_type().0 == option::NONCE => {
                        nonce = u.data().try_into().ok();
                    }
                    _ => {}
                }
                Ok(())
            })?;
            if target.is_multicast() {
                return Err(NdpError::Invalid);
            }
            if src.is_unspecified() && (source_mac.is_some() || dst != solicited_node(target)) {
                return Err(NdpError::Invalid);
            }
            Ok(NdpMessage::NeighborSolicitation(NeighborSolicit {
                target,
                source_mac,
                nonce,
            }))
        }
        Icmpv6Type::NeighborAdvertisement(flags) => {
            let na = NeighborAdvertisementPayloadSlice::from_slice(body)
                .map_err(|_| NdpError::Malformed)?;
            let target = na.target_address();
            let mut target_mac = None;
            for_each_option(na.options(), |o| {
                if let NdpOptionSlice::TargetLinkLayerAddress(tllao) = o {
                    target_mac = mac_option(tllao.link_layer_address());
                }
                Ok(())
            })?;
            if target.is_multicast() || (dst.is_multicast() && flags.solicited) {
                return Err(NdpError::Invalid);
            }
            Ok(NdpMessage::NeighborAdvertisement(NeighborAdvert {
                target,
                flags: NaFlags {
                    router: flags.router,
                    solicited: flags.solicited,
                    override_flag: flags.r#override,
                },
                target_mac,
            }))
        }
        Icmpv6Type::Redirect => {
            if RedirectPayloadSlice::from_slice(body).is_err() || !is_link_local(src) {
                return Err(NdpError::Malformed);
            }
            Ok(NdpMessage::Redirect)
        }
        _ => Err(NdpError::Malformed),
    }
}

/// Takes one option of a router advertisement into `ra`.
fn ra_option(ra: &mut RouterAdvert, option: NdpOptionSlice<'_>) {
    match option {
        NdpOptionSlice::SourceLinkLayerAddress(sllao) => {
            ra.source_mac = mac_option(sllao.link_layer_address());
        }
        NdpOptionSlice::Mtu(mtu) => ra.mtu = Some(mtu.mtu()),
        NdpOptionSlice::PrefixInformation(p) => ra.prefixes.push(PrefixInfo {
            prefix: Ipv6Addr::from(p.prefix()),
            prefix_len: p.prefix_length(),
            on_link: p.on_link(),
            autonomous: p.autonomous_address_configuration(),
            valid_lifetime: p.valid_lifetime(),
            preferred_lifetime: p.preferred_lifetime(),
        }),
        NdpOptionSlice::Unknown(u) => {
            let body = u.data();
            let lifetime = dns_option_lifetime(body);
            let values = body.get(6..).unwrap_or_default();
            match u.option_type().0 {
                // RFC 8106 §5.1: length 3 + 2n, at least one address. A bad one is
                // ignored on its own (§5.3.1); the rest of the RA still counts.
                option::RDNSS if !values.is_empty() && values.len() % 16 == 0 => {
                    let servers = values
                        .chunks_exact(16)
                        .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(Ipv6Addr::from))
                        .collect();
                    ra.rdnss.push((lifetime, servers));
                }
                option::DNSSL => {
                    if let Ok(names) = parse_domain_list(values) {
                        ra.dnssl.push((lifetime, names));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Length of a link-layer address option for a MAC.
const LINK_LAYER_OPTION_LEN: usize = 8;

fn link_layer_option(kind: NdpOptionType, mac: MacAddr) -> [u8; LINK_LAYER_OPTION_LEN] {
    let m = mac.0;
    [kind.0, 1, m[0], m[1], m[2], m[3], m[4], m[5]]
}

/// A neighbour solicitation frame for `target`, from `ends.src` to `ends.dst` (the
/// solicited-node group, or the target for a unicast probe). `source_mac` adds the
/// source link-layer option (not allowed from `::`); `nonce` adds an RFC 7527 nonce
/// (DAD probes).
pub fn neighbor_solicitation(
    ends: &Endpoints,
    target: Ipv6Addr,
    source_mac: Option<MacAddr>,
    nonce: Option<[u8; 6]>,
) -> Vec<u8> {
    let body_len = 16
        + source_mac.map_or(0, |_| LINK_LAYER_OPTION_LEN)
        + nonce.map_or(0, |_| LINK_LAYER_OPTION_LEN);
    let icmp_type = Icmpv6Type::NeighborSolicitation;
    icmpv6_frame(ends, HOP_LIMIT, false, icmp_type, body_len, |body| {
        body.extend_from_slice(&target.octets());
        if let Some(mac) = source_mac {
            body.extend_from_slice(&link_layer_option(
                NdpOptionType::SOURCE_LINK_LAYER_ADDRESS,
                mac,
            ));
        }
        if let Some(n) = nonce {
            body.extend_from_slice(&[option::NONCE, 1]);
            body.extend_from_slice(&n);
        }
    })
}

/// Flags of a neighbour advertisement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NaFlags {
    /// R: we are a router.
    pub router: bool,
    /// S: answers a solicitation.
    pub solicited: bool,
    /// O: override cached link-layer addresses.
    pub override_flag: bool,
}

/// A neighbour advertisement frame for `target` (normally `ends.src` too), with the
/// target link-layer option when `target_mac` is given.
pub fn neighbor_advertisement(
    ends: &Endpoints,
    target: Ipv6Addr,
    flags: NaFlags,
    target_mac: Option<MacAddr>,
) -> Vec<u8> {
    let icmp_type = Icmpv6Type::NeighborAdvertisement(NeighborAdvertisementHeader {
        router: flags.router,
        solicited: flags.solicited,
        r#override: flags.override_flag,
    });
    let body_len = 16 + target_mac.map_or(0, |_| LINK_LAYER_OPTION_LEN);
    icmpv6_frame(ends, HOP_LIMIT, false, icmp_type, body_len, |body| {
        body.extend_from_slice(&target.octets());
        if let Some(mac) = target_mac {
            body.extend_from_slice(&link_layer_option(
                NdpOptionType::TARGET_LINK_LAYER_ADDRESS,
                mac,
            ));
        }
    })
}

/// A router solicitation frame from `src_mac`/`src` to all routers; the source
/// link-layer option is added unless `src` is `::`.
pub fn router_solicitation(src_mac: MacAddr, src: Ipv6Addr) -> Vec<u8> {
    let ends = Endpoints::to_group(src_mac, src, ALL_ROUTERS);
    let with_sllao = !src.is_unspecified();
    let body_len = if with_sllao { LINK_LAYER_OPTION_LEN } else { 0 };
    let icmp_type = Icmpv6Type::RouterSolicitation;
    icmpv6_frame(&ends, HOP_LIMIT, false, icmp_type, body_len, |body| {
        if with_sllao {
            body.extend_from_slice(&link_layer_option(
                NdpOptionType::SOURCE_LINK_LAYER_ADDRESS,
                src_mac,
            ));
        }
    })
}

/// Builds a router advertisement frame carrying `ra` (for tests): the header fields,
/// then the source link-layer, MTU, prefix, RDNSS and DNSSL options.
#[cfg(any(test, feature = "test-util"))]
pub fn router_advertisement(ends: &Endpoints, ra: &RouterAdvert) -> Vec<u8> {
    use etherparse::icmpv6::{PrefixInformation, RouterAdvertisementHeader};
    let mut options = Vec::new();
    if let Some(mac) = ra.source_mac {
        options.extend_from_slice(&link_layer_option(
            NdpOptionType::SOURCE_LINK_LAYER_ADDRESS,
            mac,
        ));
    }
    if let Some(mtu) = ra.mtu {
        options.extend_from_slice(&[NdpOptionType::MTU.0, 1, 0, 0]);
        options.extend_from_slice(&mtu.to_be_bytes());
    }
    for p in &ra.prefixes {
        let info = PrefixInformation {
            prefix_length: p.prefix_len,
            on_link: p.on_link,
            autonomous_address_configuration: p.autonomous,
            valid_lifetime: p.valid_lifetime,
            preferred_lifetime: p.preferred_lifetime,
            prefix: p.prefix.octets(),
        };
        options.extend_from_slice(&info.to_bytes());
    }
    for (lifetime, servers) in &ra.rdnss {
        let units = u8::try_from(1 + 2 * servers.len()).unwrap_or(u8::MAX);
        options.extend_from_slice(&[option::RDNSS, units, 0, 0]);
        options.extend_from_slice(&lifetime.to_be_bytes());
        for s in servers {
            options.extend_from_slice(&s.octets());
        }
    }
    for (lifetime, names) in &ra.dnssl {
        let mut encoded = Vec::new();
        for name in names {
            for label in name.split('.').filter(|l| !l.is_empty()) {
                encoded.push(u8::try_from(label.len()).unwrap_or(63));
                encoded.extend_from_slice(label.as_bytes());
            }
            encoded.push(0);
        }
        while encoded.len() % 8 != 0 {
            encoded.push(0);
        }
        let units = u8::try_from((encoded.len() + 8) / 8).unwrap_or(u8::MAX);
        options.extend_from_slice(&[option::DNSSL, units, 0, 0]);
        options.extend_from_slice(&lifetime.to_be_bytes());
        options.extend_from_slice(&encoded);
    }
    let icmp_type = Icmpv6Type::RouterAdvertisement(RouterAdvertisementHeader {
        cur_hop_limit: ra.cur_hop_limit,
        managed_address_config: ra.managed,
        other_config: ra.other,
        router_lifetime: ra.router_lifetime,
    });
    icmpv6_frame(
        ends,
        HOP_LIMIT,
        false,
        icmp_type,
        8 + options.len(),
        |body| {
            body.extend_from_slice(&ra.reachable_time.to_be_bytes());
            body.extend_from_slice(&ra.retrans_timer.to_be_bytes());
            body.extend_from_slice(&options);
        },
    )
}

/// An IPv6 packet (no Ethernet header) carrying any ICMPv6 message `msg` (type first,
/// checksum filled in here when it is long enough), for tests that need malformed or
/// unusual messages. With `router_alert` a hop-by-hop header with the router alert
/// option goes in front (MLD).
#[cfg(any(test, feature = "test-util"))]
pub fn icmpv6_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    router_alert: bool,
    mut msg: Vec<u8>,
) -> Vec<u8> {
    use etherparse::IpNumber;
    if msg.len() >= 4 {
        msg[2..4].fill(0);
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        let sum = etherparse::checksum::Sum16BitWords::new()
            .add_16bytes(src.octets())
            .add_16bytes(dst.octets())
            .add_4bytes(len.to_be_bytes())
            .add_2bytes([0, IpNumber::IPV6_ICMP.0])
            .add_slice(&msg)
            .ones_complement()
            .to_be();
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let hbh: &[u8] = if router_alert {
        &[58, 0, 5, 2, 0, 0, 1, 0]
    } else {
        &[]
    };
    let next = if router_alert { 0 } else { 58 };
    let payload_len = u16::try_from(hbh.len() + msg.len()).unwrap_or(u16::MAX);
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&payload_len.to_be_bytes());
    packet.extend_from_slice(&[next, hop_limit]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(hbh);
    packet.extend_from_slice(&msg);
    packet
}

#[cfg(test)]
mod tests;
