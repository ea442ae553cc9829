//! Multicast Listener Discovery: the queries we answer (MLDv1, RFC 2710, and MLDv2,
//! RFC 3810), the reports the TUN side sends (which groups its apps join and leave) and
//! the MLDv2 reports we send for our own groups.
//!
//! etherparse reads the ICMPv6 header and checks the checksum; it has no MLD message
//! types, so the group address, the maximum response code and the report's records are
//! read here, every read bounded.

use std::net::Ipv6Addr;

use etherparse::{Icmpv6Slice, Icmpv6Type};

use crate::wire::ethernet::MacAddr;
use crate::wire::icmp::{icmpv6_checksum_ok, icmpv6_frame, Endpoints};
use crate::wire::ndp::{icmpv6_type, is_link_local, NdpError};

/// `ff02::16`, all MLDv2-capable routers (where MLDv2 reports go).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// The hop limit of every MLD message (RFC 3810 §5).
const HOP_LIMIT: u8 = 1;

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
const RECORD_LEN: usize = 20;
/// Size of an MLDv1 message body and of an MLDv2 query body without sources: the group.
const GROUP_LEN: usize = 16;
/// An MLDv2 query body is at least this long (group, flags, QQIC, source count).
const V2_QUERY_LEN: usize = 20;

/// A parsed MLD query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MldQuery {
    /// The group asked about, or `::` for a general query.
    pub group: Ipv6Addr,
    /// Maximum response delay in milliseconds.
    pub max_response_ms: u32,
}

fn group_at(body: &[u8], at: usize) -> Result<Ipv6Addr, NdpError> {
    body.get(at..at + GROUP_LEN)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Ipv6Addr::from)
        .ok_or(NdpError::Malformed)
}

/// The ICMPv6 header of an MLD message after the checks every MLD message needs.
fn checked(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: &[u8],
) -> Result<Icmpv6Slice<'_>, NdpError> {
    if !icmpv6_checksum_ok(src, dst, msg) {
        return Err(NdpError::BadChecksum);
    }
    if hop_limit != HOP_LIMIT {
        return Err(NdpError::BadHopLimit);
    }
    Icmpv6Slice::from_slice(msg).map_err(|_| NdpError::Malformed)
}

/// Validates and parses an MLD query (`msg` after any hop-by-hop header).
pub fn parse_query(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: &[u8],
) -> Result<MldQuery, NdpError> {
    let icmp = checked(src, dst, hop_limit, msg)?;
    if icmp.payload().len() < GROUP_LEN || icmp.code_u8() != 0 {
        return Err(NdpError::Malformed);
    }
    if !is_link_local(src) {
        return Err(NdpError::Invalid);
    }
    let [hi, lo, ..] = icmp.bytes5to8();
    let code = u16::from_be_bytes([hi, lo]);
    let group = group_at(icmp.payload(), 0)?;
    // MLDv2 (RFC 3810 §5.1.3): codes from 32768 on are a floating-point encoding.
    let max_response_ms = if icmp.payload().len() >= V2_QUERY_LEN && code >= 0x8000 {
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

/// Validates an MLD report or done message (`msg` after any hop-by-hop header: MLDv1
/// report or done, or MLDv2 report) and returns, per group it names, whether the
/// sender now listens to it (`true`) or stopped (`false`).
///
/// Listening: an MLDv1 report; an MLDv2 record in exclude mode, allowing sources, or
/// in include mode with sources. Stopped: an MLDv1 done; an MLDv2 record in include
/// mode without sources. BLOCK_OLD_SOURCES and unknown record types say neither and are
/// skipped (RFC 3810 §5.2.12); so are groups that are not multicast addresses.
pub fn parse_report(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: &[u8],
) -> Result<Vec<(Ipv6Addr, bool)>, NdpError> {
    let icmp = checked(src, dst, hop_limit, msg)?;
    let body = icmp.payload();
    let mut changes = Vec::new();
    match icmp.type_u8() {
        kind @ (icmpv6_type::MLD_V1_REPORT | icmpv6_type::MLD_V1_DONE) => {
            let group = group_at(body, 0)?;
            if group.is_multicast() {
                changes.push((group, kind == icmpv6_type::MLD_V1_REPORT));
            }
        }
        icmpv6_type::MLD_V2_REPORT => {
            let [_, _, hi, lo] = icmp.bytes5to8();
            let count = usize::from(u16::from_be_bytes([hi, lo]));
            let mut rest = body;
            for _ in 0..count {
                let header = rest.get(..RECORD_LEN).ok_or(NdpError::Malformed)?;
                let (kind, aux_words) = (header[0], usize::from(header[1]));
                let sources = usize::from(u16::from_be_bytes([header[2], header[3]]));
                let len = RECORD_LEN + sources * 16 + aux_words * 4;
                let group = group_at(header, 4)?;
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

/// An MLDv2 report frame from `src_mac` and `src` (link-local, or `::` before we have
/// one) to `ff02::16`, hop limit 1 with router alert, one record without sources per
/// `(type, group)`.
pub fn report(src_mac: MacAddr, src: Ipv6Addr, records: &[(u8, Ipv6Addr)]) -> Vec<u8> {
    let count = u16::try_from(records.len()).unwrap_or(u16::MAX);
    let records = &records[..usize::from(count)];
    let [hi, lo] = count.to_be_bytes();
    let icmp_type = Icmpv6Type::Unknown {
        type_u8: icmpv6_type::MLD_V2_REPORT,
        code_u8: 0,
        bytes5to8: [0, 0, hi, lo],
    };
    let ends = Endpoints::to_group(src_mac, src, ALL_MLDV2_ROUTERS);
    let body_len = records.len() * RECORD_LEN;
    icmpv6_frame(&ends, HOP_LIMIT, true, icmp_type, body_len, |body| {
        for (kind, group) in records {
            body.extend_from_slice(&[*kind, 0, 0, 0]);
            body.extend_from_slice(&group.octets());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ndp::{icmpv6_packet, ALL_NODES};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    #[test]
    fn report_layout() {
        let f = report(
            MAC,
            Ipv6Addr::UNSPECIFIED,
            &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::1:ff00:1"))],
        );
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 0x16]);
        assert_eq!(&f[6..14], &[2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
        let p = &f[14..];
        assert_eq!(p[6], 0, "hop-by-hop first");
        assert_eq!(p[7], 1);
        assert_eq!(&p[40..48], &[58, 0, 5, 2, 0, 0, 1, 0]);
        assert!(icmpv6_checksum_ok(
            Ipv6Addr::UNSPECIFIED,
            ALL_MLDV2_ROUTERS,
            &p[48..]
        ));
        assert_eq!(p.len(), 40 + 8 + 8 + 20);
        assert_eq!(&p[48..56], &[143, 0, p[50], p[51], 0, 0, 0, 1]);
        assert_eq!(&p[56..60], &[record_type::CHANGE_TO_EXCLUDE, 0, 0, 0]);
    }

    #[test]
    fn general_query_with_floating_point_code_parses() {
        // A general MLDv2 query with max response code 10000 ms.
        let mut q = vec![130, 0, 0, 0, 0x27, 0x10, 0, 0];
        q.extend_from_slice(&[0; 16]);
        q.extend_from_slice(&[0, 0, 0, 0]);
        let pkt = icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q.clone());
        let parsed = parse_query(a("fe80::1"), ALL_NODES, 1, &pkt[48..]).unwrap();
        assert_eq!(parsed.max_response_ms, 10000);
        assert!(parsed.group.is_unspecified());
        // Code 0x8001: exponent 0, mantissa 1 → (1 | 0x1000) << 3.
        q[4..6].copy_from_slice(&0x8001u16.to_be_bytes());
        let pkt = icmpv6_packet(a("fe80::1"), ALL_NODES, 1, true, q);
        let parsed = parse_query(a("fe80::1"), ALL_NODES, 1, &pkt[48..]).unwrap();
        assert_eq!(parsed.max_response_ms, 0x1001 << 3);
        assert_eq!(
            parse_query(a("2001:db8::1"), ALL_NODES, 1, &pkt[48..]),
            Err(NdpError::BadChecksum),
            "the checksum covers the source"
        );
        assert_eq!(
            parse_query(a("fe80::1"), ALL_NODES, 2, &pkt[48..]),
            Err(NdpError::BadHopLimit)
        );
    }

    #[test]
    fn report_records_say_who_listens() {
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
        let parse =
            |p: &[u8], hop| parse_report(Ipv6Addr::UNSPECIFIED, ALL_MLDV2_ROUTERS, hop, &p[48..]);
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
        // Our own report reads back as a join.
        let ours = report(
            MAC,
            Ipv6Addr::UNSPECIFIED,
            &[(record_type::CHANGE_TO_EXCLUDE, a("ff02::fb"))],
        );
        assert_eq!(parse(&ours[14..], 1), Ok(vec![(a("ff02::fb"), true)]));
    }
}
