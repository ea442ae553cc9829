//! Stateless DHCPv6 (RFC 8415 §18.2.6): when a router advertises the O (or M) flag, an
//! Information-Request asks for DNS servers and search domains, which join those from
//! the RA's RDNSS/DNSSL options.
//!
//! The request is built with dhcproto. Replies are parsed here, with a bounds check on
//! every read: dhcproto 0.15's decoder subtracts from option lengths without checking
//! (a status-code option shorter than 2 bytes underflows), which would panic on network
//! data in debug builds.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode, ORO};
use dhcproto::Encodable;

use crate::wire::ethernet::MacAddr;

/// UDP port of DHCPv6 clients.
pub const CLIENT_PORT: u16 = 546;
/// UDP port of DHCPv6 servers and relays.
pub const SERVER_PORT: u16 = 547;
/// `ff02::1:2`, all DHCPv6 relay agents and servers.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Option codes read from replies.
mod code {
    pub const SERVER_ID: u16 = 2;
    pub const STATUS_CODE: u16 = 13;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
}

/// Message type of a Reply.
const REPLY: u8 = 7;

/// What a Reply to an Information-Request carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dhcpv6Info {
    /// DNS servers (option 23).
    pub dns: Vec<Ipv6Addr>,
    /// Search domains (option 24).
    pub search: Vec<String>,
    /// Seconds until the information should be refreshed (option 32).
    pub refresh: Option<u32>,
}

/// The DUID-LL (RFC 8415 §11.4) of `mac`: our client identifier.
pub fn duid_ll(mac: MacAddr) -> Vec<u8> {
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac.0);
    duid
}

/// An Information-Request (the DHCPv6 message, without UDP/IP) with transaction `xid`,
/// our DUID, the options we want and the time since the first try in centiseconds.
pub fn information_request(xid: [u8; 3], mac: MacAddr, elapsed_cs: u16) -> Option<Vec<u8>> {
    let mut msg = Message::new_with_id(MessageType::InformationRequest, xid);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::ClientId(duid_ll(mac)));
    opts.insert(DhcpOption::ORO(ORO {
        opts: vec![
            OptionCode::DomainNameServers,
            OptionCode::DomainSearchList,
            OptionCode::InformationRefreshTime,
        ],
    }));
    opts.insert(DhcpOption::ElapsedTime(elapsed_cs));
    msg.to_vec().ok()
}

/// Parses a Reply for transaction `xid`; `None` for anything else, a malformed message,
/// a reply without a server identifier, or one with a non-success status.
pub fn parse_reply(bytes: &[u8], xid: [u8; 3]) -> Option<Dhcpv6Info> {
    let (&kind, rest) = bytes.split_first()?;
    if kind != REPLY || rest.get(..3)? != xid {
        return None;
    }
    let mut options = rest.get(3..)?;
    let mut info = Dhcpv6Info::default();
    let mut server_id = false;
    while !options.is_empty() {
        let head = options.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = options.get(4..4 + len)?;
        options = &options[4 + len..];
        match code {
            code::SERVER_ID => server_id = !data.is_empty(),
            code::STATUS_CODE => {
                let status = data.get(..2)?;
                if status != [0, 0] {
                    return None;
                }
            }
            code::DNS_SERVERS => {
                if data.len() % 16 != 0 {
                    return None;
                }
                info.dns.extend(
                    data.chunks_exact(16)
                        .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(Ipv6Addr::from))
                        .filter(|a| !a.is_multicast() && !a.is_unspecified()),
                );
            }
            code::DOMAIN_LIST => info
                .search
                .extend(crate::wire::ndp::parse_domain_list(data).ok()?),
            code::INFORMATION_REFRESH_TIME => {
                let b: [u8; 4] = data.try_into().ok()?;
                info.refresh = Some(u32::from_be_bytes(b));
            }
            _ => {}
        }
    }
    server_id.then_some(info)
}

/// An IPv6/UDP packet from `src` to `dst` carrying `payload`, hop limit `hop_limit`,
/// checksum filled in.
pub fn udp_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let builder =
        etherparse::PacketBuilder::ipv6(src.octets(), dst.octets(), hop_limit).udp(sport, dport);
    let mut packet = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut packet, payload).ok()?;
    Some(packet)
}

/// The UDP payload of `packet` (an IPv6 packet whose next header is UDP) when it goes
/// from the server port to the client port and its checksum is right.
pub fn udp_to_client(packet: &[u8]) -> Option<&[u8]> {
    if *packet.get(6)? != PROTO_UDP {
        return None;
    }
    let udp = packet.get(40..)?;
    let header = udp.get(..8)?;
    let sport = u16::from_be_bytes([header[0], header[1]]);
    let dport = u16::from_be_bytes([header[2], header[3]]);
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    if sport != SERVER_PORT || dport != CLIENT_PORT || len < 8 || len > udp.len() {
        return None;
    }
    let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
    let sum = crate::wire::ndp::pseudo_checksum(
        Ipv6Addr::from(src),
        Ipv6Addr::from(dst),
        PROTO_UDP,
        &udp[..len],
    );
    if sum != 0 || header[6..8] == [0, 0] {
        return None;
    }
    udp.get(8..len)
}

/// A Reply as a server would send it (for tests): server identifier, our client
/// identifier, DNS servers, a domain list (already encoded) and a refresh time.
pub fn build_reply(
    xid: [u8; 3],
    client: MacAddr,
    dns: &[Ipv6Addr],
    domains: &[u8],
    refresh: Option<u32>,
) -> Vec<u8> {
    let mut m = vec![REPLY, xid[0], xid[1], xid[2]];
    let mut opt = |code: u16, data: &[u8]| {
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
        m.extend_from_slice(data);
    };
    opt(code::SERVER_ID, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
    opt(1, &duid_ll(client));
    let addrs: Vec<u8> = dns.iter().flat_map(|a| a.octets()).collect();
    opt(code::DNS_SERVERS, &addrs);
    opt(code::DOMAIN_LIST, domains);
    if let Some(r) = refresh {
        opt(code::INFORMATION_REFRESH_TIME, &r.to_be_bytes());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);

    fn reply(xid: [u8; 3], dns: &[Ipv6Addr], domains: &[u8], refresh: Option<u32>) -> Vec<u8> {
        build_reply(xid, MAC, dns, domains, refresh)
    }

    #[test]
    fn information_request_layout() {
        let m = information_request([1, 2, 3], MAC, 0).unwrap();
        assert_eq!(&m[..4], &[11, 1, 2, 3]);
        // Client identifier DUID-LL, option request 23/24/32, elapsed time 0.
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert!(hex.contains("0001000a00030001020000000064"), "{hex}");
        assert!(hex.contains("00060006001700180020"), "{hex}");
        assert!(hex.contains("000800020000"), "{hex}");
    }

    #[test]
    fn reply_parses_dns_domains_and_refresh() {
        let dns = ["2001:db8:1::53".parse().unwrap()];
        let domains = b"\x03lab\x07example\x00";
        let r = reply([1, 2, 3], &dns, domains, Some(3600));
        let info = parse_reply(&r, [1, 2, 3]).unwrap();
        assert_eq!(info.dns, dns.to_vec());
        assert_eq!(info.search, vec!["lab.example".to_string()]);
        assert_eq!(info.refresh, Some(3600));
        assert!(parse_reply(&r, [9, 9, 9]).is_none(), "another transaction");
        for cut in 0..r.len() {
            let _ = parse_reply(&r[..cut], [1, 2, 3]);
        }
        // A short status code is malformed, not a panic.
        let mut bad = r.clone();
        bad.extend_from_slice(&[0, 13, 0, 1, 0]);
        assert!(parse_reply(&bad, [1, 2, 3]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_replies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut m = vec![REPLY, 1, 2, 3];
            m.extend_from_slice(&body);
            let _ = parse_reply(&m, [1, 2, 3]);
            let _ = udp_to_client(&m);
        }
    }
}
