//! DHCPv4 messages (RFC 2131, RFC 2132) as they cross the link: finding a datagram to
//! the client port in an IPv4 packet, parsing a server's reply, and emitting our own
//! messages as whole Ethernet frames.
//!
//! dhcproto encodes our messages and decodes the fixed BOOTP header of replies. The
//! options of replies are walked by `RawOptions`, a bounds-checked parser of our own:
//! dhcproto 0.15's option decoder has `debug_assert!`s on the lengths of options 80, 94
//! and 152–155 (a server-controlled panic in debug builds) and silently stops at the
//! first option it dislikes, losing the rest of the reply. The UDP header and checksum
//! are etherparse's.

use std::net::Ipv4Addr;

use dhcproto::v4::{Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv4HeaderSlice, UdpHeader, UdpHeaderSlice,
    UdpSlice,
};

use crate::wire::ethernet::{self, MacAddr};

/// UDP port of DHCP servers.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
/// Smallest BOOTP message (RFC 1542 §2.1); shorter ones are padded.
pub const BOOTP_MIN_LEN: usize = 300;
/// Length of the fixed BOOTP header plus the magic cookie.
pub const HEADER_LEN: usize = 240;
/// Bytes in front of a DHCP message in our frames: Ethernet, IPv4 without options, UDP.
pub const FRAME_OVERHEAD: usize = ethernet::HEADER_LEN + Ipv4Header::MIN_LEN + UdpHeader::LEN;
/// Most routes taken from option 121: a real network has a handful, and a reply on a
/// link without an MTU limit could otherwise carry thousands.
pub const MAX_ROUTES: usize = 32;
/// Most DNS servers taken from option 6 (resolvers use the first three).
pub const MAX_DNS: usize = 8;
/// Most search domains taken from option 119.
pub const MAX_SEARCH_DOMAINS: usize = 32;
/// IP TTL of our DHCP messages.
const TTL: u8 = 64;
const MAGIC: [u8; 4] = [99, 130, 83, 99];

/// A UDP datagram to the DHCP client port, found in an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct ClientDatagram<'a> {
    /// IP source.
    pub src: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// False when the UDP length is impossible or the checksum is present and wrong.
    pub valid: bool,
    /// The UDP payload (empty when not valid).
    pub payload: &'a [u8],
}

/// If `packet` (a whole, checked IPv4 packet whose header `ip` the caller has already
/// parsed) is an unfragmented UDP datagram to port 68, the datagram.
pub fn client_datagram<'a>(
    ip: &Ipv4HeaderSlice<'_>,
    packet: &'a [u8],
) -> Option<ClientDatagram<'a>> {
    if ip.protocol() != IpNumber::UDP || ip.is_fragmenting_payload() {
        return None;
    }
    let segment = packet.get(ip.slice().len()..)?;
    let header = UdpHeaderSlice::from_slice(segment).ok()?;
    if header.destination_port() != CLIENT_PORT {
        return None;
    }
    let mut datagram = ClientDatagram {
        src: ip.source_addr(),
        src_port: header.source_port(),
        valid: false,
        payload: &[],
    };
    // A length of 0 means "see the IP length" only for IPv6 jumbograms.
    let Ok(udp) = UdpSlice::from_slice(segment) else {
        return Some(datagram);
    };
    if udp.length() == 0 {
        return Some(datagram);
    }
    let checksum = udp.checksum();
    datagram.valid = checksum == 0
        || udp
            .to_header()
            .calc_checksum_ipv4_raw(ip.source(), ip.destination(), udp.payload())
            == Ok(checksum);
    if datagram.valid {
        datagram.payload = udp.payload();
    }
    Some(datagram)
}

/// Where one of our messages goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    /// Our MAC.
    pub src_mac: MacAddr,
    /// The Ethernet destination; `None` leaves the header for whoever routes the frame.
    pub dst_mac: Option<MacAddr>,
    /// IP source: our address, or 0.0.0.0 before we have one.
    pub src: Ipv4Addr,
    /// IP destination: the server, or 255.255.255.255.
    pub dst: Ipv4Addr,
}

/// `msg` from port 68 to port 67 as one Ethernet frame, padded to [`BOOTP_MIN_LEN`].
///
/// The message is encoded straight into the frame behind room for the headers, which are
/// then written in front of it: one buffer, no copy of the payload. Without a
/// destination MAC the Ethernet header is left zero for the router to fill in.
/// `None` if dhcproto cannot encode the message.
pub fn emit_frame(msg: &Message, to: Addressing) -> Option<Vec<u8>> {
    let mut frame = Vec::with_capacity(FRAME_OVERHEAD + BOOTP_MIN_LEN + 64);
    let mut encoder = Encoder::new(&mut frame);
    // The encoder writes at its own offset: move it past the headers first.
    encoder.write_slice(&[0; FRAME_OVERHEAD]).ok()?;
    msg.encode(&mut encoder).ok()?;
    if frame.len() < FRAME_OVERHEAD + BOOTP_MIN_LEN {
        frame.resize(FRAME_OVERHEAD + BOOTP_MIN_LEN, 0);
    }
    let (headers, payload) = frame.split_at_mut(FRAME_OVERHEAD);
    let udp_len = u16::try_from(UdpHeader::LEN + payload.len()).ok()?;
    let mut ip = Ipv4Header::new(
        udp_len,
        TTL,
        IpNumber::UDP,
        to.src.octets(),
        to.dst.octets(),
    )
    .ok()?;
    ip.header_checksum = ip.calc_header_checksum();
    let udp = UdpHeader::with_ipv4_checksum(CLIENT_PORT, SERVER_PORT, &ip, payload).ok()?;
    let (eth, rest) = headers.split_at_mut(ethernet::HEADER_LEN);
    let (ip_bytes, udp_bytes) = rest.split_at_mut(Ipv4Header::MIN_LEN);
    if let Some(dst) = to.dst_mac {
        let header = Ethernet2Header {
            source: to.src_mac.0,
            destination: dst.0,
            ether_type: EtherType::IPV4,
        };
        eth.copy_from_slice(&header.to_bytes());
    }
    ip_bytes.copy_from_slice(&ip.to_bytes());
    udp_bytes.copy_from_slice(&udp.to_bytes());
    Some(frame)
}

/// A server's reply: the fixed header fields and the options the client uses.
#[derive(Debug)]
pub struct Reply {
    /// BOOTREQUEST or BOOTREPLY.
    pub op: Opcode,
    /// Transaction id.
    pub xid: u32,
    /// Client hardware address, zero unless hlen is 6.
    pub chaddr: MacAddr,
    /// The address offered or acknowledged.
    pub yiaddr: Ipv4Addr,
    /// Option 53.
    pub message_type: MessageType,
    /// Option 54, if it is a usable unicast address.
    pub server_id: Option<Ipv4Addr>,
    /// The other options, each checked.
    pub options: ReplyOptions,
}

/// A route from option 121 (RFC 3442).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClasslessRoute {
    /// Network address (host bits cleared).
    pub destination: Ipv4Addr,
    /// Prefix length, 0–32.
    pub prefix_len: u8,
    /// The router, or `None` for an on-link route (router 0.0.0.0).
    pub router: Option<Ipv4Addr>,
}

/// The options of a reply a lease is built from, each already validated.
#[derive(Debug, Default)]
pub struct ReplyOptions {
    /// Prefix length from option 1.
    pub prefix_len: Option<u8>,
    /// Option 1 was present but not a contiguous mask.
    pub bad_subnet_mask: bool,
    /// Option 3, usable unicast addresses only.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6, at most [`MAX_DNS`].
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 119, at most [`MAX_SEARCH_DOMAINS`].
    pub search: Vec<String>,
    /// Option 26, at least 68.
    pub mtu: Option<u16>,
    /// Option 28.
    pub broadcast: Option<Ipv4Addr>,
    /// Option 51, in seconds.
    pub lease_time: Option<u32>,
    /// Option 58, in seconds.
    pub t1: Option<u32>,
    /// Option 59, in seconds.
    pub t2: Option<u32>,
    /// Option 121, at most [`MAX_ROUTES`].
    pub classless_routes: Option<Vec<ClasslessRoute>>,
    /// Options left out because they were malformed, or cut to their limit.
    pub ignored: u64,
}

impl Reply {
    /// Parses a DHCP message (a UDP payload); `None` if it is truncated, lacks the magic
    /// cookie or a message type, or its options area is cut short.
    pub fn parse(bytes: &[u8]) -> Option<Reply> {
        let header = bytes.get(..HEADER_LEN)?;
        if header[236..240] != MAGIC {
            return None;
        }
        let msg = Message::decode(&mut Decoder::new(header)).ok()?;
        // Read chaddr from the raw header: dhcproto's `chaddr()` slices by the
        // sender-controlled hlen and panics when it is below 6 or above 16.
        let mut chaddr = [0u8; 6];
        if header[2] == 6 {
            chaddr.copy_from_slice(&header[28..34]);
        }
        let raw = RawOptions::collect(bytes)?;
        let message_type = match raw.get(53) {
            Some([t]) => MessageType::from(*t),
            _ => return None,
        };
        let server_id = raw.get(54).and_then(ipv4).filter(|a| usable_unicast(*a));
        Some(Reply {
            op: msg.opcode(),
            xid: msg.xid(),
            chaddr: MacAddr(chaddr),
            yiaddr: msg.yiaddr(),
            message_type,
            server_id,
            options: ReplyOptions::parse(&raw),
        })
    }
}

/// An address a host can have: not 0.0.0.0, broadcast, multicast, loopback or class E.
pub fn usable_unicast(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified()
        || addr.is_broadcast()
        || addr.is_multicast()
        || addr.is_loopback()
        || addr.octets()[0] >= 240)
}

/// The options of a message as raw values, with split options (RFC 3396) joined and
/// option overload (option 52) followed into the `file` and `sname` fields.
#[derive(Debug, Default)]
struct RawOptions {
    values: Vec<(u8, Vec<u8>)>,
}

impl RawOptions {
    /// `None` when the options area is truncated.
    fn collect(message: &[u8]) -> Option<RawOptions> {
        let mut raw = RawOptions::default();
        raw.walk(message.get(HEADER_LEN..)?)?;
        let overload = match raw.get(52) {
            Some([v]) => *v,
            _ => 0,
        };
        // RFC 3396 §5: options, then file, then sname.
        if overload & 1 != 0 {
            raw.walk(message.get(108..236)?)?;
        }
        if overload & 2 != 0 {
            raw.walk(message.get(44..108)?)?;
        }
        Some(raw)
    }

    fn walk(&mut self, mut area: &[u8]) -> Option<()> {
        loop {
            match area {
                [] | [255, ..] => return Some(()),
                [0, rest @ ..] => area = rest,
                [code, len, rest @ ..] => {
                    let len = usize::from(*len);
                    let value = rest.get(..len)?;
                    match self.values.iter_mut().find(|(c, _)| c == code) {
                        Some((_, existing)) => existing.extend_from_slice(value),
                        None => self.values.push((*code, value.to_vec())),
                    }
                    area = &rest[len..];
                }
                [_] => return None,
            }
        }
    }

    fn get(&self, code: u8) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }
}

fn ipv4(value: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from)
}

fn ipv4_list(value: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if value.is_empty() || value.len() % 4 != 0 {
        return None;
    }
    Some(value.chunks_exact(4).filter_map(ipv4).collect())
}

fn u32_value(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

/// A string option: UTF-8, trailing NULs (which some servers send) removed.
fn string_value(value: &[u8]) -> Option<String> {
    let end = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let s = std::str::from_utf8(&value[..end]).ok()?;
    (!s.is_empty() && !s.contains('\0')).then(|| s.to_owned())
}

/// The netmask of a prefix length (0–32).
fn prefix_mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0)
}

impl ReplyOptions {
    /// Validates each option; a malformed one is counted in `ignored` and left out.
    fn parse(raw: &RawOptions) -> ReplyOptions {
        let mut o = ReplyOptions::default();
        let mut ignored = 0;
        let mut check = |present: bool, ok: bool| {
            if present && !ok {
                ignored += 1;
            }
        };
        if let Some(v) = raw.get(1) {
            o.prefix_len = u32_value(v).and_then(|m| {
                let len = m.leading_ones() as u8;
                (prefix_mask(len) == m).then_some(len)
            });
            o.bad_subnet_mask = o.prefix_len.is_none();
        }
        if let Some(v) = raw.get(3) {
            o.routers = ipv4_list(v).unwrap_or_default();
            o.routers.retain(|a| usable_unicast(*a));
            check(true, !o.routers.is_empty());
        }
        if let Some(v) = raw.get(6) {
            o.dns = ipv4_list(v).unwrap_or_default();
            check(true, !o.dns.is_empty());
            check(true, o.dns.len() <= MAX_DNS);
            o.dns.truncate(MAX_DNS);
        }
        if let Some(v) = raw.get(15) {
            o.domain = string_value(v);
            check(true, o.domain.is_some());
        }
        if let Some(v) = raw.get(119) {
            let search = decode_domain_list(v);
            check(true, search.is_some());
            o.search = search.unwrap_or_default();
        }
        if let Some(v) = raw.get(26) {
            o.mtu = <[u8; 2]>::try_from(v)
                .ok()
                .map(u16::from_be_bytes)
                .filter(|m| *m >= 68);
            check(true, o.mtu.is_some());
        }
        if let Some(v) = raw.get(28) {
            o.broadcast = ipv4(v);
            check(true, o.broadcast.is_some());
        }
        o.lease_time = raw.get(51).and_then(u32_value);
        check(raw.get(51).is_some(), o.lease_time.is_some());
        o.t1 = raw.get(58).and_then(u32_value);
        check(raw.get(58).is_some(), o.t1.is_some());
        o.t2 = raw.get(59).and_then(u32_value);
        check(raw.get(59).is_some(), o.t2.is_some());
        if let Some(v) = raw.get(121) {
            let routes = decode_classless_routes(v);
            check(true, routes.is_some());
            if let Some((routes, complete)) = routes {
                check(true, complete);
                o.classless_routes = Some(routes);
            }
        }
        o.ignored = ignored;
        o
    }
}

/// Option 121 (RFC 3442): (width, significant destination octets, router)*. A router
/// of 0.0.0.0 is an on-link route. The first [`MAX_ROUTES`], and whether that was all
/// of them; `None` if malformed or empty.
fn decode_classless_routes(mut v: &[u8]) -> Option<(Vec<ClasslessRoute>, bool)> {
    let mut routes = Vec::new();
    while let [width, rest @ ..] = v {
        if *width > 32 {
            return None;
        }
        let octets = usize::from(width.div_ceil(8));
        let dest = rest.get(..octets)?;
        let router = ipv4(rest.get(octets..octets + 4)?)?;
        if routes.len() == MAX_ROUTES {
            return Some((routes, false));
        }
        let mut d = [0u8; 4];
        d[..octets].copy_from_slice(dest);
        routes.push(ClasslessRoute {
            destination: Ipv4Addr::from(u32::from_be_bytes(d) & prefix_mask(*width)),
            prefix_len: *width,
            router: (!router.is_unspecified()).then_some(router),
        });
        v = &rest[octets + 4..];
    }
    (!routes.is_empty()).then_some((routes, true))
}

/// Option 119 (RFC 3397): DNS names in wire format, with compression pointers into
/// the option itself. `None` if malformed, or a label holds anything but letters, digits,
/// `-` and `_`.
fn decode_domain_list(v: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut pos = 0;
    // Each name may point back into earlier ones: cap the list so a long option cannot
    // expand into megabytes of names.
    while pos < v.len() && names.len() < MAX_SEARCH_DOMAINS {
        let (name, next) = decode_name(v, pos)?;
        if !name.is_empty() {
            names.push(name);
        }
        pos = next;
    }
    Some(names)
}

/// The name at `start` and the offset after it (after the first pointer, if any).
fn decode_name(v: &[u8], start: usize) -> Option<(String, usize)> {
    let mut labels: Vec<&str> = Vec::new();
    // Length of the dotted name so far; checked as it grows, so compression pointers
    // cannot make a small option expand into a large name.
    let mut name_len = 0usize;
    let mut pos = start;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *v.get(pos)?;
        match len {
            0 => {
                let next = end.unwrap_or(pos + 1);
                return Some((labels.join("."), next));
            }
            1..=63 => {
                name_len += usize::from(len) + usize::from(!labels.is_empty());
                if name_len > 253 {
                    return None;
                }
                let label = v.get(pos + 1..pos + 1 + usize::from(len))?;
                // Host name characters only, as for DNSSL (RFC 8106): a NUL, a dot or a
                // space inside a label would reach resolv.conf or a platform API as is.
                if !label
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                {
                    return None;
                }
                labels.push(std::str::from_utf8(label).ok()?);
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let target = usize::from(u16::from_be_bytes([len, *v.get(pos + 1)?]) & 0x3fff);
                // Pointers must go backwards: no loops.
                if target >= pos || jumps > 64 {
                    return None;
                }
                jumps += 1;
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests;
