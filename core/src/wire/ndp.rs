//! Neighbor Discovery (RFC 4861) and MLDv2 (RFC 3810) messages: validation and parsing
//! of what arrives, building of what a Linux host sends.
//!
//! Parsing checks everything RFC 4861 §6.1 and §7.1 ask of a receiver (hop limit 255,
//! checksum, code 0, length, option lengths, source/destination rules) and bounds every
//! read, so arbitrary bytes give an [`NdpError`], never a panic. The behaviour (what to
//! answer, what to learn) lives in [`crate::ipv6`].

use std::net::Ipv6Addr;

use etherparse::checksum::Sum16BitWords;

use crate::wire::ethernet::MacAddr;

/// ICMPv6 message types handled here.
pub mod icmpv6_type {
    /// Multicast listener query (MLDv1/v2).
    pub const MLD_QUERY: u8 = 130;
    /// MLDv1 report.
    pub const MLD_V1_REPORT: u8 = 131;
    /// MLDv1 done.
    pub const MLD_V1_DONE: u8 = 132;
    /// Router solicitation.
    pub const ROUTER_SOLICITATION: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERTISEMENT: u8 = 134;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
    /// MLDv2 report.
    pub const MLD_V2_REPORT: u8 = 143;
}

/// NDP option types.
mod option {
    pub const SOURCE_LINK_LAYER: u8 = 1;
    pub const TARGET_LINK_LAYER: u8 = 2;
    pub const PREFIX_INFORMATION: u8 = 3;
    pub const MTU: u8 = 5;
    pub const NONCE: u8 = 14;
    pub const RDNSS: u8 = 25;
    pub const DNSSL: u8 = 31;
}

/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// IP protocol number of the IPv6 hop-by-hop options header.
pub const PROTO_HOP_BY_HOP: u8 = 0;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// `ff02::1`, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// `ff02::2`, all routers on the link.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// `ff02::16`, all MLDv2-capable routers (where MLDv2 reports go).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// Why an NDP or MLD message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NdpError {
    /// The hop limit is not 255 (NDP) or 1 (MLD): the message came from off-link.
    #[error("hop limit not 255")]
    BadHopLimit,
    /// The ICMPv6 checksum is wrong.
    #[error("bad ICMPv6 checksum")]
    BadChecksum,
    /// Too short, a non-zero code, or a malformed option.
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

/// A parsed and validated NDP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdpMessage {
    /// Router solicitation (hosts ignore these).
    RouterSolicitation,
    /// Router advertisement.
    RouterAdvertisement(RouterAdvert),
    /// Neighbour solicitation.
    NeighborSolicitation {
        /// The address asked for.
        target: Ipv6Addr,
        /// The sender's MAC (absent in DAD probes).
        source_mac: Option<MacAddr>,
        /// The RFC 7527 nonce of a DAD probe.
        nonce: Option<[u8; 6]>,
    },
    /// Neighbour advertisement.
    NeighborAdvertisement {
        /// The address advertised.
        target: Ipv6Addr,
        /// R flag: the sender is a router.
        router: bool,
        /// S flag: an answer to our solicitation.
        solicited: bool,
        /// O flag: replace a cached link-layer address.
        override_flag: bool,
        /// The target's MAC.
        target_mac: Option<MacAddr>,
    },
    /// Redirect (not acted on).
    Redirect,
}

/// A parsed MLD query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MldQuery {
    /// The group asked about, or `::` for a general query.
    pub group: Ipv6Addr,
    /// Maximum response delay in milliseconds.
    pub max_response_ms: u32,
}

/// The ICMPv6 checksum of `msg` (with its checksum field as it stands) over the
/// pseudo-header; a received message is intact when this is 0.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    pseudo_checksum(src, dst, PROTO_ICMPV6, msg)
}

/// The checksum of an upper-layer message `msg` of protocol `proto` over the IPv6
/// pseudo-header (RFC 8200 §8.1), with the message's checksum field as it stands.
pub fn pseudo_checksum(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    Sum16BitWords::new()
        .add_16bytes(src.octets())
        .add_16bytes(dst.octets())
        .add_4bytes(len.to_be_bytes())
        .add_4bytes([0, 0, 0, proto])
        .add_slice(msg)
        .ones_complement()
        .to_be()
}

/// The solicited-node multicast group of `addr` (`ff02::1:ffXX:XXXX`).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// True for `fe80::/10`.
pub fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Walks the NDP options of `options`, checking every length, and calls `f` with each
/// option's type and body (the bytes after type and length).
fn for_each_option<'a>(
    mut options: &'a [u8],
    mut f: impl FnMut(u8, &'a [u8]) -> Result<(), NdpError>,
) -> Result<(), NdpError> {
    while !options.is_empty() {
        let [kind, units, ..] = *options else {
            return Err(NdpError::Malformed);
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(NdpError::Malformed);
        }
        f(kind, &options[2..len])?;
        options = &options[len..];
    }
    Ok(())
}

fn mac_option(body: &[u8]) -> Option<MacAddr> {
    let bytes: [u8; 6] = body.get(..6)?.try_into().ok()?;
    Some(MacAddr(bytes))
}

fn addr_at(bytes: &[u8], at: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Decodes a list of domain names in RFC 1035 label form without compression, as in
/// DNSSL options (RFC 8106) and DHCPv6 domain lists (RFC 3646); trailing zero padding
/// ends the list.
pub fn parse_domain_list(data: &[u8]) -> Result<Vec<String>, NdpError> {
    parse_domains(data)
}

fn parse_domains(mut data: &[u8]) -> Result<Vec<String>, NdpError> {
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
    if icmpv6_checksum(src, dst, msg) != 0 {
        return Err(NdpError::BadChecksum);
    }
    let [kind, code, ..] = *msg else {
        return Err(NdpError::Malformed);
    };
    if hop_limit != 255 {
        return Err(NdpError::BadHopLimit);
    }
    if code != 0 {
        return Err(NdpError::Malformed);
    }
    match kind {
        icmpv6_type::ROUTER_SOLICITATION => {
            let options = msg.get(8..).ok_or(NdpError::Malformed)?;
            let mut has_sllao = false;
            for_each_option(options, |k, _| {
                has_sllao |= k == option::SOURCE_LINK_LAYER;
                Ok(())
            })?;
            if src.is_unspecified() && has_sllao {
                return Err(NdpError::Invalid);
            }
            Ok(NdpMessage::RouterSolicitation)
        }
        icmpv6_type::ROUTER_ADVERTISEMENT => parse_ra(src, msg),
        icmpv6_type::NEIGHBOR_SOLICITATION => {
            let target = addr_at(msg, 8).ok_or(NdpError::Malformed)?;
            let mut source_mac = None;
            let mut nonce = None;
            for_each_option(&msg[24..], |k, body| {
                match k {
                    option::SOURCE_LINK_LAYER => source_mac = mac_option(body),
                    option::NONCE if body.len() == 6 => nonce = body.try_into().ok(),
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
            Ok(NdpMessage::NeighborSolicitation {
                target,
                source_mac,
                nonce,
            })
        }
        icmpv6_type::NEIGHBOR_ADVERTISEMENT => {
            let target = addr_at(msg, 8).ok_or(NdpError::Malformed)?;
            let flags = msg[4];
            let mut target_mac = None;
            for_each_option(&msg[24..], |k, body| {
                if k == option::TARGET_LINK_LAYER {
                    target_mac = mac_option(body);
                }
                Ok(())
            })?;
            let solicited = flags & 0x40 != 0;
            if target.is_multicast() || (dst.is_multicast() && solicited) {
                return Err(NdpError::Invalid);
            }
            Ok(NdpMessage::NeighborAdvertisement {
                target,
                router: flags & 0x80 != 0,
                solicited,
                override_flag: flags & 0x20 != 0,
                target_mac,
            })
        }
        icmpv6_type::REDIRECT => {
            if msg.len() < 40 || !is_link_local(src) {
                return Err(NdpError::Malformed);
            }
            Ok(NdpMessage::Redirect)
        }
        _ => Err(NdpError::Malformed),
    }
}

fn parse_ra(src: Ipv6Addr, msg: &[u8]) -> Result<NdpMessage, NdpError> {
    if msg.len() < 16 {
        return Err(NdpError::Malformed);
    }
    if !is_link_local(src) {
        return Err(NdpError::Invalid);
    }
    let mut ra = RouterAdvert {
        cur_hop_limit: msg[4],
        managed: msg[5] & 0x80 != 0,
        other: msg[5] & 0x40 != 0,
        router_lifetime: u16::from_be_bytes([msg[6], msg[7]]),
        reachable_time: u32_at(msg, 8).unwrap_or(0),
        retrans_timer: u32_at(msg, 12).unwrap_or(0),
        ..RouterAdvert::default()
    };
    for_each_option(&msg[16..], |kind, body| {
        match kind {
            option::SOURCE_LINK_LAYER => ra.source_mac = mac_option(body),
            option::MTU => ra.mtu = u32_at(body, 2),
            option::PREFIX_INFORMATION => {
                // Type and length are gone: 30 bytes remain.
                if body.len() != 30 {
                    return Err(NdpError::Malformed);
                }
                ra.prefixes.push(PrefixInfo {
                    prefix_len: body[0],
                    on_link: body[1] & 0x80 != 0,
                    autonomous: body[1] & 0x40 != 0,
                    valid_lifetime: u32_at(body, 2).unwrap_or(0),
                    preferred_lifetime: u32_at(body, 6).unwrap_or(0),
                    prefix: addr_at(body, 14).ok_or(NdpError::Malformed)?,
                });
            }
            option::RDNSS => {
                // RFC 8106 §5.1: length 3 + 2n, at least one address. A bad one is
                // ignored on its own (§5.3.1); the rest of the RA still counts.
                let addrs = body.get(6..).unwrap_or_default();
                if !addrs.is_empty() && addrs.len() % 16 == 0 {
                    let lifetime = u32_at(body, 2).unwrap_or(0);
                    let servers = addrs
                        .chunks_exact(16)
                        .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(Ipv6Addr::from))
                        .collect();
                    ra.rdnss.push((lifetime, servers));
                }
            }
            option::DNSSL => {
                let names = body.get(6..).unwrap_or_default();
                let lifetime = u32_at(body, 2).unwrap_or(0);
                if let Ok(names) = parse_domains(names) {
                    ra.dnssl.push((lifetime, names));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(NdpMessage::RouterAdvertisement(ra))
}

/// Validates and parses an MLD query (`msg` after any hop-by-hop header).
pub fn parse_mld_query(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: &[u8],
) -> Result<MldQuery, NdpError> {
    if icmpv6_checksum(src, dst, msg) != 0 {
        return Err(NdpError::BadChecksum);
    }
    if hop_limit != 1 {
        return Err(NdpError::BadHopLimit);
    }
    if msg.len() < 24 || msg.get(1) != Some(&0) {
        return Err(NdpError::Malformed);
    }
    if !is_link_local(src) {
        return Err(NdpError::Invalid);
    }
    let code = u16::from_be_bytes([msg[4], msg[5]]);
    let group = addr_at(msg, 8).ok_or(NdpError::Malformed)?;
    // MLDv2 (RFC 3810 §5.1.3): codes from 32768 on are a floating-point encoding.
    let max_response_ms = if msg.len() >= 28 && code >= 0x8000 {
        let exp = u32::from((code >> 12) & 0x7);
        let mant = u32::from(code & 0x0fff);
        (mant | 0x1000) << (exp + 3)
    } else {
        u32::from(code)
    };
    Ok(MldQuery {
        group,
        max_response_ms,
    })
}

/// Wraps an ICMPv6 message in an IPv6 header, filling in the checksum. With
/// `router_alert` a hop-by-hop header with the router alert option goes in front (MLD).
pub fn icmpv6_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    router_alert: bool,
    mut msg: Vec<u8>,
) -> Vec<u8> {
    if msg.len() >= 4 {
        msg[2..4].fill(0);
        let sum = icmpv6_checksum(src, dst, &msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let hbh: &[u8] = if router_alert {
        // Next header ICMPv6, length 0 (8 bytes), router alert (MLD), PadN of 0.
        &[PROTO_ICMPV6, 0, 5, 2, 0, 0, 1, 0]
    } else {
        &[]
    };
    let payload_len = u16::try_from(hbh.len() + msg.len()).unwrap_or(u16::MAX);
    let next = if router_alert {
        PROTO_HOP_BY_HOP
    } else {
        PROTO_ICMPV6
    };
    let mut packet = Vec::with_capacity(IPV6_HEADER_LEN + usize::from(payload_len));
    packet.extend_from_slice(&[0x60, 0, 0, 0]);
    packet.extend_from_slice(&payload_len.to_be_bytes());
    packet.extend_from_slice(&[next, hop_limit]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(hbh);
    packet.extend_from_slice(&msg);
    packet
}

fn link_layer_option(kind: u8, mac: MacAddr) -> [u8; 8] {
    let m = mac.0;
    [kind, 1, m[0], m[1], m[2], m[3], m[4], m[5]]
}

/// A neighbour solicitation packet for `target` from `src` to `dst` (the solicited-node
/// group, or the target for a unicast probe). `source_mac` adds the source link-layer
/// option (not allowed from `::`); `nonce` adds an RFC 7527 nonce (DAD probes).
pub fn neighbor_solicitation(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    source_mac: Option<MacAddr>,
    nonce: Option<[u8; 6]>,
) -> Vec<u8> {
    let mut msg = vec![icmpv6_type::NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&target.octets());
    if let Some(mac) = source_mac {
        msg.extend_from_slice(&link_layer_option(option::SOURCE_LINK_LAYER, mac));
    }
    if let Some(n) = nonce {
        msg.extend_from_slice(&[option::NONCE, 1]);
        msg.extend_from_slice(&n);
    }
    icmpv6_packet(src, dst, 255, false, msg)
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

/// A neighbour advertisement packet for `target` (also the source) to `dst`, with the
/// target link-layer option when `target_mac` is given.
pub fn neighbor_advertisement(
    dst: Ipv6Addr,
    target: Ipv6Addr,
    flags: NaFlags,
    target_mac: Option<MacAddr>,
) -> Vec<u8> {
    let f = u8::from(flags.router) << 7
        | u8::from(flags.solicited) << 6
        | u8::from(flags.override_flag) << 5;
    let mut msg = vec![icmpv6_type::NEIGHBOR_ADVERTISEMENT, 0, 0, 0, f, 0, 0, 0];
    msg.extend_from_slice(&target.octets());
    if let Some(mac) = target_mac {
        msg.extend_from_slice(&link_layer_option(option::TARGET_LINK_LAYER, mac));
    }
    icmpv6_packet(target, dst, 255, false, msg)
}

/// A router solicitation to all routers; the source link-layer option is added unless
/// `src` is `::`.
pub fn router_solicitation(src: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let mut msg = vec![icmpv6_type::ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    if !src.is_unspecified() {
        msg.extend_from_slice(&link_layer_option(option::SOURCE_LINK_LAYER, mac));
    }
    icmpv6_packet(src, ALL_ROUTERS, 255, false, msg)
}

/// MLDv2 multicast address record types (RFC 3810 §5.2.12).
pub mod record_type {
    /// MODE_IS_INCLUDE: listening to the listed sources only (none: not listening).
    pub const MODE_IS_INCLUDE: u8 = 1;
    /// MODE_IS_EXCLUDE: the answer to a query for a group we listen to.
    pub const MODE_IS_EXCLUDE: u8 = 2;
    /// CHANGE_TO_INCLUDE_MODE with no sources: we left the group.
    pub const CHANGE_TO_INCLUDE: u8 = 3;
    /// CHANGE_TO_EXCLUDE_MODE with no sources: we joined the group.
    pub const CHANGE_TO_EXCLUDE: u8 = 4;
    /// ALLOW_NEW_SOURCES: more sources are listened to.
    pub const ALLOW_NEW_SOURCES: u8 = 5;
    /// BLOCK_OLD_SOURCES: fewer sources are listened to.
    pub const BLOCK_OLD_SOURCES: u8 = 6;
}

/// Size of an MLDv2 multicast address record without sources and auxiliary data.
const MLD_RECORD_LEN: usize = 20;

/// Validates an MLD report or done message (`msg` after any hop-by-hop header: MLDv1
/// report or done, or MLDv2 report) and returns, per group it names, whether the
/// sender now listens to it (`true`) or stopped (`false`).
///
/// Listening: an MLDv1 report; an MLDv2 record in exclude mode, allowing sources, or
/// in include mode with sources. Stopped: an MLDv1 done; an MLDv2 record in include
/// mode without sources. BLOCK_OLD_SOURCES and unknown record types say neither and are
/// skipped (RFC 3810 §5.2.12); so are groups that are not multicast addresses.
pub fn parse_mld_report(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: &[u8],
) -> Result<Vec<(Ipv6Addr, bool)>, NdpError> {
    if icmpv6_checksum(src, dst, msg) != 0 {
        return Err(NdpError::BadChecksum);
    }
    if hop_limit != 1 {
        return Err(NdpError::BadHopLimit);
    }
    let mut changes = Vec::new();
    match msg.first().copied() {
        Some(kind @ (icmpv6_type::MLD_V1_REPORT | icmpv6_type::MLD_V1_DONE)) => {
            let group = addr_at(msg, 8).ok_or(NdpError::Malformed)?;
            if group.is_multicast() {
                changes.push((group, kind == icmpv6_type::MLD_V1_REPORT));
            }
        }
        Some(icmpv6_type::MLD_V2_REPORT) => {
            let count = msg.get(6..8).ok_or(NdpError::Malformed)?;
            let count = usize::from(u16::from_be_bytes([count[0], count[1]]));
            let mut rest = msg.get(8..).ok_or(NdpError::Malformed)?;
            for _ in 0..count {
                let header = rest.get(..MLD_RECORD_LEN).ok_or(NdpError::Malformed)?;
                let (kind, aux_words) = (header[0], usize::from(header[1]));
                let sources = usize::from(u16::from_be_bytes([header[2], header[3]]));
                let len = MLD_RECORD_LEN + sources * 16 + aux_words * 4;
                let group = addr_at(header, 4).ok_or(NdpError::Malformed)?;
                rest = rest.get(len..).ok_or(NdpError::Malformed)?;
                let listening = match kind {
                    record_type::MODE_IS_INCLUDE | record_type::CHANGE_TO_INCLUDE => sources > 0,
                    record_type::MODE_IS_EXCLUDE
                    | record_type::CHANGE_TO_EXCLUDE
                    | record_type::ALLOW_NEW_SOURCES => true,
                    _ => continue,
                };
                if group.is_multicast() {
                    changes.push((group, listening));
                }
            }
        }
        _ => return Err(NdpError::Invalid),
    }
    Ok(changes)
}

/// An MLDv2 report from `src` (link-local, or `::` before we have one) to `ff02::16`,
/// hop limit 1 with router alert, one record without sources per `(type, group)`.
pub fn mld_report(src: Ipv6Addr, records: &[(u8, Ipv6Addr)]) -> Vec<u8> {
    let count = u16::try_from(records.len()).unwrap_or(u16::MAX);
    let mut msg = vec![icmpv6_type::MLD_V2_REPORT, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&count.to_be_bytes());
    for (kind, group) in records.iter().take(usize::from(count)) {
        msg.extend_from_slice(&[*kind, 0, 0, 0]);
        msg.extend_from_slice(&group.octets());
    }
    icmpv6_packet(src, ALL_MLDV2_ROUTERS, 1, true, msg)
}

/// Builds a router advertisement carrying `ra` (for tests and examples): the header
/// fields, then the source link-layer, MTU, prefix, RDNSS and DNSSL options.
pub fn router_advertisement(src: Ipv6Addr, dst: Ipv6Addr, ra: &RouterAdvert) -> Vec<u8> {
    let flags = u8::from(ra.managed) << 7 | u8::from(ra.other) << 6;
    let mut msg = vec![
        icmpv6_type::ROUTER_ADVERTISEMENT,
        0,
        0,
        0,
        ra.cur_hop_limit,
        flags,
    ];
    msg.extend_from_slice(&ra.router_lifetime.to_be_bytes());
    msg.extend_from_slice(&ra.reachable_time.to_be_bytes());
    msg.extend_from_slice(&ra.retrans_timer.to_be_bytes());
    if let Some(mac) = ra.source_mac {
        msg.extend_from_slice(&link_layer_option(option::SOURCE_LINK_LAYER, mac));
    }
    if let Some(mtu) = ra.mtu {
        msg.extend_from_slice(&[option::MTU, 1, 0, 0]);
        msg.extend_from_slice(&mtu.to_be_bytes());
    }
    for p in &ra.prefixes {
        let flags = u8::from(p.on_link) << 7 | u8::from(p.autonomous) << 6;
        msg.extend_from_slice(&[option::PREFIX_INFORMATION, 4, p.prefix_len, flags]);
        msg.extend_from_slice(&p.valid_lifetime.to_be_bytes());
        msg.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
        msg.extend_from_slice(&[0; 4]);
        msg.extend_from_slice(&p.prefix.octets());
    }
    for (lifetime, servers) in &ra.rdnss {
        let units = u8::try_from(1 + 2 * servers.len()).unwrap_or(u8::MAX);
        msg.extend_from_slice(&[option::RDNSS, units, 0, 0]);
        msg.extend_from_slice(&lifetime.to_be_bytes());
        for s in servers {
            msg.extend_from_slice(&s.octets());
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
        msg.extend_from_slice(&[option::DNSSL, units, 0, 0]);
        msg.extend_from_slice(&lifetime.to_be_bytes());
        msg.extend_from_slice(&encoded);
    }
    icmpv6_packet(src, dst, 255, false, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn split(packet: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, &[u8]) {
        (
            addr_at(packet, 8).unwrap(),
            addr_at(packet, 24).unwrap(),
            packet[7],
            &packet[40..],
        )
    }

    #[test]
    fn solicited_node_group() {
        assert_eq!(
            solicited_node(a("fe80::200:ff:fe00:1")),
            a("ff02::1:ff00:1")
        );
        assert_eq!(
            solicited_node(a("2001:db8::abcd:1234")),
            a("ff02::1:ffcd:1234")
        );
    }

    #[test]
    fn ns_round_trip_and_checks() {
        let target = a("fe80::1");
        let p = neighbor_solicitation(
            a("fe80::2"),
            solicited_node(target),
            target,
            Some(MAC),
            None,
        );
        let (s, d, h, m) = split(&p);
        assert_eq!(
            parse(s, d, h, m),
            Ok(NdpMessage::NeighborSolicitation {
                target,
                source_mac: Some(MAC),
                nonce: None
            })
        );
        assert_eq!(parse(s, d, 254, m), Err(NdpError::BadHopLimit));
        let mut bad = m.to_vec();
        bad[10] ^= 1;
        assert_eq!(parse(s, d, h, &bad), Err(NdpError::BadChecksum));
        // DAD probe: from ::, no SLLAO, to the solicited-node group, with a nonce.
        let dad = neighbor_solicitation(
            Ipv6Addr::UNSPECIFIED,
            solicited_node(target),
            target,
            None,
            Some([1; 6]),
        );
        let (s, d, h, m) = split(&dad);
        assert!(matches!(
            parse(s, d, h, m),
            Ok(NdpMessage::NeighborSolicitation {
                nonce: Some([1, 1, 1, 1, 1, 1]),
                ..
            })
        ));
        // From :: with an SLLAO is invalid.
        let bad = neighbor_solicitation(
            Ipv6Addr::UNSPECIFIED,
            solicited_node(target),
            target,
            Some(MAC),
            None,
        );
        let (s, d, h, m) = split(&bad);
        assert_eq!(parse(s, d, h, m), Err(NdpError::Invalid));
    }

    #[test]
    fn na_round_trip_and_solicited_multicast_is_invalid() {
        let flags = NaFlags {
            solicited: true,
            override_flag: true,
            router: false,
        };
        let p = neighbor_advertisement(a("fe80::2"), a("fe80::1"), flags, Some(MAC));
        let (s, d, h, m) = split(&p);
        assert_eq!(
            parse(s, d, h, m),
            Ok(NdpMessage::NeighborAdvertisement {
                target: a("fe80::1"),
                router: false,
                solicited: true,
                override_flag: true,
                target_mac: Some(MAC)
            })
        );
        let p = neighbor_advertisement(ALL_NODES, a("fe80::1"), flags, Some(MAC));
        let (s, d, h, m) = split(&p);
        assert_eq!(parse(s, d, h, m), Err(NdpError::Invalid));
    }

    #[test]
    fn ra_with_all_options_round_trips() {
        let prefix = PrefixInfo {
            prefix: a("2001:db8:1::"),
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
        };
        let dns = [a("2001:db8:1::53")];
        let sent = RouterAdvert {
            cur_hop_limit: 64,
            router_lifetime: 1800,
            source_mac: Some(MAC),
            prefixes: vec![prefix],
            mtu: Some(1400),
            rdnss: vec![(600, dns.to_vec())],
            dnssl: vec![(600, vec!["lab.example".into(), "b.example".into()])],
            ..RouterAdvert::default()
        };
        let p = router_advertisement(a("fe80::1"), ALL_NODES, &sent);
        let (s, d, h, m) = split(&p);
        let Ok(NdpMessage::RouterAdvertisement(ra)) = parse(s, d, h, m) else {
            panic!()
        };
        assert_eq!(ra.router_lifetime, 1800);
        assert_eq!(ra.source_mac, Some(MAC));
        assert_eq!(ra.mtu, Some(1400));
        assert_eq!(ra.prefixes, vec![prefix]);
        assert_eq!(ra.rdnss, vec![(600, dns.to_vec())]);
        assert_eq!(ra, sent);
        // From a global address: invalid.
        let p = router_advertisement(a("2001:db8::1"), ALL_NODES, &sent);
        let (s, d, h, m) = split(&p);
        assert_eq!(parse(s, d, h, m), Err(NdpError::Invalid));
    }

    #[test]
    fn a_bad_dns_option_is_ignored_alone() {
        let mut msg = vec![
            icmpv6_type::ROUTER_ADVERTISEMENT,
            0,
            0,
            0,
            64,
            0,
            0x07,
            0x08,
        ];
        msg.extend_from_slice(&[0; 8]);
        // RDNSS of length 2 (no room for an address) and a DNSSL with a bad label.
        msg.extend_from_slice(&[option::RDNSS, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(&[
            option::DNSSL,
            2,
            0,
            0,
            0,
            0,
            1,
            0,
            3,
            b'a',
            b'*',
            b'c',
            0,
            0,
            0,
            0,
        ]);
        let p = icmpv6_packet(a("fe80::1"), ALL_NODES, 255, false, msg);
        let (s, d, h, m) = split(&p);
        let Ok(NdpMessage::RouterAdvertisement(ra)) = parse(s, d, h, m) else {
            panic!()
        };
        assert_eq!(ra.router_lifetime, 0x0708);
        assert!(ra.rdnss.is_empty() && ra.dnssl.is_empty());
    }

    #[test]
    fn zero_length_and_overlong_options_are_malformed() {
        for opts in [
            &[1u8, 0, 0, 0, 0, 0, 0, 0][..],
            &[1, 2, 0, 0, 0, 0, 0, 0],
            &[1],
        ] {
            let mut msg = vec![icmpv6_type::ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
            msg.extend_from_slice(opts);
            let p = icmpv6_packet(a("fe80::2"), ALL_ROUTERS, 255, false, msg);
            let (s, d, h, m) = split(&p);
            assert_eq!(parse(s, d, h, m), Err(NdpError::Malformed), "{opts:?}");
        }
    }

    #[test]
    fn mld_report_layout_and_query_parse() {
        let p = mld_report(
            Ipv6Addr::UNSPECIFIED,
            &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::1:ff00:1"))],
        );
        assert_eq!(p[6], PROTO_HOP_BY_HOP);
        assert_eq!(p[7], 1);
        assert_eq!(&p[40..48], &[58, 0, 5, 2, 0, 0, 1, 0]);
        let (s, d) = (addr_at(&p, 8).unwrap(), addr_at(&p, 24).unwrap());
        assert_eq!(icmpv6_checksum(s, d, &p[48..]), 0);
        assert_eq!(p.len(), 40 + 8 + 8 + 20);
        // A general MLDv2 query with max response code 10000 ms.
        let mut q = vec![130, 0, 0, 0, 0x27, 0x10, 0, 0];
        q.extend_from_slice(&[0; 16]);
        q.extend_from_slice(&[0, 0, 0, 0]);
        let pkt = icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
        let parsed = parse_mld_query(a("fe80::1"), ALL_NODES, 1, &pkt[48..]).unwrap();
        assert_eq!(parsed.max_response_ms, 10000);
        assert!(parsed.group.is_unspecified());
    }

    #[test]
    fn mld_report_records_say_who_listens() {
        let record = |kind: u8, aux: u8, sources: u16, group: &str| {
            let mut r = vec![kind, aux];
            r.extend_from_slice(&sources.to_be_bytes());
            r.extend_from_slice(&a(group).octets());
            r.extend(std::iter::repeat_n(0xaa, usize::from(sources) * 16));
            r.extend(std::iter::repeat_n(0xbb, usize::from(aux) * 4));
            r
        };
        let records = [
            record(record_type::MODE_IS_INCLUDE, 0, 0, "ff02::a"),
            record(record_type::CHANGE_TO_INCLUDE, 1, 2, "ff02::b"),
            record(record_type::MODE_IS_EXCLUDE, 0, 1, "ff02::c"),
            record(record_type::ALLOW_NEW_SOURCES, 0, 1, "ff05::d"),
            record(record_type::BLOCK_OLD_SOURCES, 0, 1, "ff02::e"),
            record(9, 0, 0, "ff02::f"),
            record(record_type::CHANGE_TO_EXCLUDE, 0, 0, "2001:db8::1"),
        ];
        let build = |count: u16, body: &[u8]| {
            let mut msg = vec![icmpv6_type::MLD_V2_REPORT, 0, 0, 0, 0, 0];
            msg.extend_from_slice(&count.to_be_bytes());
            msg.extend_from_slice(body);
            icmpv6_packet(Ipv6Addr::UNSPECIFIED, ALL_MLDV2_ROUTERS, 1, true, msg)
        };
        let p = build(7, &records.concat());
        let parse = |p: &[u8], hop| {
            parse_mld_report(Ipv6Addr::UNSPECIFIED, ALL_MLDV2_ROUTERS, hop, &p[48..])
        };
        assert_eq!(
            parse(&p, 1),
            Ok(vec![
                (a("ff02::a"), false),
                (a("ff02::b"), true),
                (a("ff02::c"), true),
                (a("ff05::d"), true),
            ])
        );
        assert_eq!(parse(&p, 255), Err(NdpError::BadHopLimit));
        // A record count beyond the records, or a record cut short, is malformed.
        assert_eq!(
            parse(&build(8, &records.concat()), 1),
            Err(NdpError::Malformed)
        );
        let cut = &records[1][..30];
        assert_eq!(parse(&build(1, cut), 1), Err(NdpError::Malformed));
        let mut bad = p.clone();
        bad[60] ^= 1;
        assert_eq!(parse(&bad, 1), Err(NdpError::BadChecksum));
    }
}
