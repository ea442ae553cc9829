//! Stateless DHCPv6 messages (RFC 8415 §18.2.6): the Information-Request we send and the
//! Reply we take, with their UDP/IPv6 framing.
//!
//! The request is encoded by dhcproto straight into the frame. Replies are parsed here,
//! with a bounds check on every read: dhcproto 0.15's decoder subtracts from option
//! lengths without checking (a status-code option shorter than 2 bytes underflows),
//! which would panic on network data in debug builds. etherparse reads the UDP header
//! and computes the checksums.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode, ORO};
use dhcproto::{Encodable, Encoder};
use etherparse::{IpNumber, UdpHeader, UdpSlice};

use crate::wire::ethernet::{self, MacAddr};
use crate::wire::icmp::{finish_ipv6_frame, ipv6_header, Endpoints, Ipv6Packet};

/// UDP port of DHCPv6 clients.
pub const CLIENT_PORT: u16 = 546;
/// UDP port of DHCPv6 servers and relays.
pub const SERVER_PORT: u16 = 547;
/// `ff02::1:2`, all DHCPv6 relay agents and servers.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// Option codes read from replies.
mod code {
    pub const CLIENT_ID: u16 = 1;
    pub const SERVER_ID: u16 = 2;
    pub const STATUS_CODE: u16 = 13;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
}

/// Message type of a Reply.
const REPLY: u8 = 7;
/// Hop limit of our requests: they never leave the link.
const HOP_LIMIT: u8 = 1;
/// Bytes before the DHCPv6 message in a frame: Ethernet, IPv6 and UDP headers.
const HEADERS: usize = ethernet::HEADER_LEN + etherparse::Ipv6Header::LEN + UdpHeader::LEN;
/// Room reserved for an Information-Request: what ours needs, with some spare.
const REQUEST_ROOM: usize = 64;

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

/// Why a Reply was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not a Reply, or a Reply to another transaction.
    #[error("not a reply to our transaction")]
    NotOurs,
    /// Cut short, or an option of the wrong length.
    #[error("malformed reply")]
    Malformed,
    /// No server identifier (RFC 8415 §16.10).
    #[error("reply without a server identifier")]
    NoServerId,
    /// No client identifier, or another client's (RFC 8415 §16.10).
    #[error("reply without our client identifier")]
    WrongClientId,
    /// A status code other than success.
    #[error("reply with a failure status")]
    Status,
}

/// The DUID-LL (RFC 8415 §11.4) of `mac`: our client identifier.
pub fn duid_ll(mac: MacAddr) -> Vec<u8> {
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac.0);
    duid
}

/// An Information-Request frame from `ends.src` (our link-local address) to
/// `ends.dst` (normally [`ALL_SERVERS`]) with transaction `xid`, our DUID, the options
/// we want and the time since the first try in centiseconds. Written into one buffer:
/// dhcproto encodes the message behind the room left for the headers.
pub fn information_request(ends: &Endpoints, xid: [u8; 3], elapsed_cs: u16) -> Option<Vec<u8>> {
    let mut msg = Message::new_with_id(MessageType::InformationRequest, xid);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::ClientId(duid_ll(ends.src_mac)));
    opts.insert(DhcpOption::ORO(ORO {
        opts: vec![
            OptionCode::DomainNameServers,
            OptionCode::DomainSearchList,
            OptionCode::InformationRefreshTime,
        ],
    }));
    opts.insert(DhcpOption::ElapsedTime(elapsed_cs));
    let mut frame = Vec::with_capacity(HEADERS + REQUEST_ROOM);
    let mut encoder = Encoder::new(&mut frame);
    // The encoder writes from the start of the buffer: step it over the headers' room.
    encoder.write_slice(&[0; HEADERS]).ok()?;
    msg.encode(&mut encoder).ok()?;
    let payload = &frame[HEADERS..];
    let ip = ipv6_header(
        ends,
        IpNumber::UDP,
        HOP_LIMIT,
        UdpHeader::LEN + payload.len(),
    );
    let udp = UdpHeader::with_ipv6_checksum(CLIENT_PORT, SERVER_PORT, &ip, payload).ok()?;
    frame[HEADERS - UdpHeader::LEN..HEADERS].copy_from_slice(&udp.to_bytes());
    finish_ipv6_frame(&mut frame, ends, &ip);
    Some(frame)
}

/// The DHCPv6 message in `ip` when it is UDP from the server port to the client port,
/// unfragmented, with a right checksum; `None` for anything else.
pub fn message_to_client<'a>(ip: &Ipv6Packet<'a>) -> Option<&'a [u8]> {
    if ip.protocol != IpNumber::UDP || ip.fragmented {
        return None;
    }
    let udp = UdpSlice::from_slice(ip.payload).ok()?;
    // A length of 0 is a jumbogram to etherparse; here it is simply wrong.
    if udp.source_port() != SERVER_PORT
        || udp.destination_port() != CLIENT_PORT
        || usize::from(udp.length()) < UdpHeader::LEN
    {
        return None;
    }
    let src = ip.header.source();
    let dst = ip.header.destination();
    let expected = udp
        .to_header()
        .calc_checksum_ipv6_raw(src, dst, udp.payload())
        .ok()?;
    // A zero checksum is not allowed over IPv6 (RFC 8200 §8.1).
    (udp.checksum() != 0 && udp.checksum() == expected).then(|| udp.payload())
}

/// Parses a Reply for transaction `xid` to the client `duid`. RFC 8415 §16.10: a Reply
/// must carry a server identifier and our own client identifier; a non-success status
/// code refuses it too.
pub fn parse_reply(bytes: &[u8], xid: [u8; 3], duid: &[u8]) -> Result<Dhcpv6Info, ReplyError> {
    let (&kind, rest) = bytes.split_first().ok_or(ReplyError::Malformed)?;
    if kind != REPLY || rest.get(..3) != Some(&xid[..]) {
        return Err(ReplyError::NotOurs);
    }
    let mut options = &rest[3..];
    let mut info = Dhcpv6Info::default();
    let mut server_id = false;
    let mut client_id = false;
    while !options.is_empty() {
        let head = options.get(..4).ok_or(ReplyError::Malformed)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = options.get(4..4 + len).ok_or(ReplyError::Malformed)?;
        options = &options[4 + len..];
        match code {
            code::CLIENT_ID if data == duid => client_id = true,
            code::CLIENT_ID => return Err(ReplyError::WrongClientId),
            code::SERVER_ID => server_id = !data.is_empty(),
            code::STATUS_CODE => {
                let status = data.get(..2).ok_or(ReplyError::Malformed)?;
                if status != [0, 0] {
                    return Err(ReplyError::Status);
                }
            }
            code::DNS_SERVERS => {
                if data.len() % 16 != 0 {
                    return Err(ReplyError::Malformed);
                }
                info.dns.extend(
                    data.chunks_exact(16)
                        .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(Ipv6Addr::from))
                        .filter(|a| !a.is_multicast() && !a.is_unspecified()),
                );
            }
            code::DOMAIN_LIST => info.search.extend(
                crate::wire::ndp::parse_domain_list(data).map_err(|_| ReplyError::Malformed)?,
            ),
            code::INFORMATION_REFRESH_TIME => {
                let b: [u8; 4] = data.try_into().map_err(|_| ReplyError::Malformed)?;
                info.refresh = Some(u32::from_be_bytes(b));
            }
            _ => {}
        }
    }
    if !server_id {
        return Err(ReplyError::NoServerId);
    }
    if !client_id {
        return Err(ReplyError::WrongClientId);
    }
    Ok(info)
}

/// A Reply as a server would send it (for tests): server identifier, the client
/// identifier `client` when given, DNS servers, a domain list (already encoded) and a
/// refresh time.
#[cfg(any(test, feature = "test-util"))]
pub fn build_reply(
    xid: [u8; 3],
    client: Option<&[u8]>,
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
    if let Some(duid) = client {
        opt(code::CLIENT_ID, duid);
    }
    let addrs: Vec<u8> = dns.iter().flat_map(|a| a.octets()).collect();
    opt(code::DNS_SERVERS, &addrs);
    opt(code::DOMAIN_LIST, domains);
    if let Some(r) = refresh {
        opt(code::INFORMATION_REFRESH_TIME, &r.to_be_bytes());
    }
    m
}

/// A frame carrying the DHCPv6 `message` from the server port to the client port (for
/// tests).
#[cfg(any(test, feature = "test-util"))]
pub fn server_frame(ends: &Endpoints, message: &[u8]) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(ends.src_mac.0, ends.dst_mac.0)
        .ipv6(ends.src.octets(), ends.dst.octets(), 64)
        .udp(SERVER_PORT, CLIENT_PORT);
    let mut frame = Vec::with_capacity(builder.size(message.len()));
    let _ = builder.write(&mut frame, message);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
    const SERVER: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn duid() -> Vec<u8> {
        duid_ll(MAC)
    }

    fn reply(xid: [u8; 3], dns: &[Ipv6Addr], domains: &[u8], refresh: Option<u32>) -> Vec<u8> {
        build_reply(xid, Some(&duid()), dns, domains, refresh)
    }

    fn ends() -> Endpoints {
        Endpoints {
            src_mac: MAC,
            dst_mac: MacAddr::ipv6_multicast(ALL_SERVERS),
            src: "fe80::ff:fe00:64".parse().unwrap(),
            dst: ALL_SERVERS,
        }
    }

    #[test]
    fn information_request_frame_layout() {
        let f = information_request(&ends(), [1, 2, 3], 0).unwrap();
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 1, 0, 2]);
        let ip = Ipv6Packet::parse(&f[14..]).unwrap();
        assert_eq!((ip.hop_limit(), ip.dst()), (1, ALL_SERVERS));
        let udp = UdpSlice::from_slice(ip.payload).unwrap();
        assert_eq!((udp.source_port(), udp.destination_port()), (546, 547));
        let expected = udp
            .to_header()
            .calc_checksum_ipv6_raw(ip.header.source(), ip.header.destination(), udp.payload())
            .unwrap();
        assert_eq!(udp.checksum(), expected);
        let m = udp.payload();
        assert_eq!(&m[..4], &[11, 1, 2, 3]);
        // Client identifier DUID-LL, option request 23/24/32, elapsed time 0.
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert!(hex.contains("0001000a00030001020000000064"), "{hex}");
        assert!(hex.contains("00060006001700180020"), "{hex}");
        assert!(hex.contains("000800020000"), "{hex}");
        assert_eq!(
            f.capacity(),
            HEADERS + REQUEST_ROOM,
            "one buffer, never grown"
        );
    }

    #[test]
    fn reply_parses_dns_domains_and_refresh() {
        let dns = ["2001:db8:1::53".parse().unwrap()];
        let domains = b"\x03lab\x07example\x00";
        let r = reply([1, 2, 3], &dns, domains, Some(3600));
        let info = parse_reply(&r, [1, 2, 3], &duid()).unwrap();
        assert_eq!(info.dns, dns.to_vec());
        assert_eq!(info.search, vec!["lab.example".to_string()]);
        assert_eq!(info.refresh, Some(3600));
        assert_eq!(
            parse_reply(&r, [9, 9, 9], &duid()),
            Err(ReplyError::NotOurs),
            "another transaction"
        );
        for cut in 0..r.len() {
            let _ = parse_reply(&r[..cut], [1, 2, 3], &duid());
        }
        // A short status code is malformed, not a panic.
        let mut bad = r.clone();
        bad.extend_from_slice(&[0, 13, 0, 1, 0]);
        assert_eq!(
            parse_reply(&bad, [1, 2, 3], &duid()),
            Err(ReplyError::Malformed)
        );
    }

    #[test]
    fn reply_without_our_client_identifier_is_refused() {
        let r = build_reply([1, 2, 3], None, &[], b"", None);
        assert_eq!(
            parse_reply(&r, [1, 2, 3], &duid()),
            Err(ReplyError::WrongClientId)
        );
        let other = duid_ll(MacAddr([2, 0, 0, 0, 0, 0x65]));
        let r = build_reply([1, 2, 3], Some(&other), &[], b"", None);
        assert_eq!(
            parse_reply(&r, [1, 2, 3], &duid()),
            Err(ReplyError::WrongClientId)
        );
        let r = build_reply([1, 2, 3], Some(&duid()), &[], b"", None);
        assert!(parse_reply(&r, [1, 2, 3], &duid()).is_ok());
    }

    #[test]
    fn only_checksummed_udp_from_the_server_port_is_a_message() {
        let from_server = Endpoints {
            src_mac: SERVER,
            dst_mac: MAC,
            src: "fe80::1".parse().unwrap(),
            dst: ends().src,
        };
        let f = server_frame(&from_server, b"\x07abc");
        let ip = Ipv6Packet::parse(&f[14..]).unwrap();
        assert_eq!(message_to_client(&ip), Some(&b"\x07abc"[..]));
        let mut bad = f.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            message_to_client(&Ipv6Packet::parse(&bad[14..]).unwrap()),
            None
        );
        let mut zero = f.clone();
        zero[14 + 40 + 6..14 + 40 + 8].fill(0);
        assert_eq!(
            message_to_client(&Ipv6Packet::parse(&zero[14..]).unwrap()),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_replies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut m = vec![REPLY, 1, 2, 3];
            m.extend_from_slice(&body);
            let _ = parse_reply(&m, [1, 2, 3], &duid());
            if let Some(ip) = Ipv6Packet::parse(&m) {
                let _ = message_to_client(&ip);
            }
        }
    }
}
