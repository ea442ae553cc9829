//! Replays dnsmasq's side of recorded DHCP exchanges (`tests/data/dhcp-dnsmasq.pcap`
//! and `dhcp-dnsmasq-nak.pcap`, ISC dhclient ↔ dnsmasq, see `tests/data/README.md`)
//! through tapemu's DHCP client, and checks that the lease it builds equals the one
//! dhclient wrote to its lease file in the same recording session
//! (`tests/data/dhcp-dnsmasq.dhclient.leases`).
//!
//! The server's replies carry dhclient's transaction ids; each is patched to the xid of
//! tapemu's own request before it is fed in (the UDP checksum is then set to 0, "none").

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tapemu::{
    Config, DhcpConfig, DhcpState, Ingress, Ipv4Mode, Ipv4Route, Lease, MacAddr, Tap, Transmit,
};
use tapemu::{DhcpEvent, Event};
use tapemu_tests::recorded::{data_path as data, frames};

/// dhclient's MAC in the recording.
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x64]);
/// Ethernet + IPv4 (no options in these captures) + UDP.
const UDP_PAYLOAD: usize = 14 + 20 + 8;

/// A DHCP message in a frame: (UDP source port, xid, message type, all options).
struct Dhcp {
    src_port: u16,
    xid: u32,
    kind: u8,
    options: HashMap<u8, Vec<u8>>,
}

fn dhcp(frame: &[u8]) -> Option<Dhcp> {
    let ip = frame.get(14..)?;
    if frame[12..14] != [0x08, 0x00] || ip[0] != 0x45 || ip[9] != 17 {
        return None;
    }
    let udp = &ip[20..];
    let (src_port, dst_port) = (
        u16::from_be_bytes([udp[0], udp[1]]),
        u16::from_be_bytes([udp[2], udp[3]]),
    );
    if !matches!((src_port, dst_port), (67, 68) | (68, 67)) {
        return None;
    }
    let msg = &udp[8..];
    let xid = u32::from_be_bytes(msg[4..8].try_into().ok()?);
    let mut options = HashMap::new();
    let mut rest = msg.get(240..)?;
    while let [code, tail @ ..] = rest {
        match code {
            0 => rest = tail,
            255 => break,
            _ => {
                let len = usize::from(*tail.first()?);
                let value = tail.get(1..1 + len)?;
                options
                    .entry(*code)
                    .or_insert_with(Vec::new)
                    .extend_from_slice(value);
                rest = &tail[1 + len..];
            }
        }
    }
    let kind = *options.get(&53)?.first()?;
    Some(Dhcp {
        src_port,
        xid,
        kind,
        options,
    })
}

const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const RELEASE: u8 = 7;
const DISCOVER: u8 = 1;

/// The server's replies in the capture, in order, with their message types.
fn server_replies(frames: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    frames
        .iter()
        .filter_map(|f| {
            dhcp(f)
                .filter(|d| d.src_port == 67)
                .map(|d| (d.kind, f.clone()))
        })
        .collect()
}

/// `frame` with the DHCP xid replaced and the UDP checksum set to 0.
fn with_xid(frame: &[u8], xid: u32) -> Vec<u8> {
    let mut frame = frame.to_vec();
    frame[UDP_PAYLOAD + 4..UDP_PAYLOAD + 8].copy_from_slice(&xid.to_be_bytes());
    frame[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    frame
}

fn drain(tap: &mut Tap) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| tap.poll_transmit())
        .filter_map(|t| match t {
            Transmit::Link(f) => Some(f),
            Transmit::Tun(_) => None,
        })
        .collect()
}

/// The one DHCP message of type `kind` among what the tap sent.
fn sent(frames: &[Vec<u8>], kind: u8) -> Dhcp {
    let mut found: Vec<Dhcp> = frames
        .iter()
        .filter_map(|f| dhcp(f))
        .filter(|d| d.kind == kind)
        .collect();
    assert_eq!(found.len(), 1, "one message of type {kind}");
    found.remove(0)
}

fn feed(tap: &mut Tap, now: Instant, frame: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(tap.handle_link_frame(now, frame), Ingress::Consumed);
    drain(tap)
}

/// Runs timers up to `until`.
fn run_until(tap: &mut Tap, until: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = tap.poll_timeout().filter(|t| *t <= until) {
        tap.handle_timeout(t);
        out.extend(drain(tap));
    }
    out
}

fn dhcp_tap(config: DhcpConfig, now: Instant) -> Tap {
    Tap::new(
        Config {
            mac: Some(CLIENT_MAC),
            ipv4: Ipv4Mode::Dhcp(config),
            ..Config::default()
        },
        now,
    )
}

fn lease_events(tap: &mut Tap) -> Vec<Event> {
    std::iter::from_fn(|| tap.poll_event())
        .filter(|e| {
            matches!(
                e,
                Event::Dhcp(DhcpEvent::LeaseAcquired(_))
                    | Event::Dhcp(DhcpEvent::LeaseRenewed(_))
                    | Event::Dhcp(DhcpEvent::LeaseChanged { .. })
                    | Event::Dhcp(DhcpEvent::LeaseLost { .. })
            )
        })
        .collect()
}

// ------------------------------------------------------------------ dhclient's lease file

/// The `lease { }` blocks of a dhclient lease file, oldest first: `option` statements
/// keyed by option name, others by keyword.
fn dhclient_leases(text: &str) -> Vec<HashMap<String, String>> {
    text.split("lease {")
        .skip(1)
        .filter_map(|b| b.split('}').next())
        .map(|block| {
            block
                .lines()
                .map(str::trim)
                .filter_map(|l| l.strip_suffix(';'))
                .filter_map(|l| {
                    let l = l.strip_prefix("option ").unwrap_or(l);
                    let (key, value) = l.split_once(' ')?;
                    Some((key.to_owned(), value.trim().to_owned()))
                })
                .collect()
        })
        .collect()
}

fn addr(s: &str) -> Ipv4Addr {
    s.trim().parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_owned()
}

/// The lease tapemu should build from what dhclient recorded.
fn expected_lease(file: &HashMap<String, String>, acquired_at: Instant) -> Lease {
    let get = |k: &str| file.get(k).map(String::as_str);
    let secs = |k: &str| get(k).map(|v| Duration::from_secs(v.parse().expect("seconds")));
    let mask = u32::from(addr(get("subnet-mask").expect("subnet-mask")));
    let routers: Vec<Ipv4Addr> = get("routers")
        .map(|v| v.split(',').map(addr).collect())
        .unwrap_or_default();
    // RFC 3442: classless routes, when present, replace the router option.
    let (routes, gateway) = match get("rfc3442-classless-static-routes") {
        Some(v) => {
            let bytes: Vec<u8> = v
                .split(',')
                .map(|b| b.trim().parse().expect("u8"))
                .collect();
            let mut routes = Vec::new();
            let mut rest = &bytes[..];
            while let [width, tail @ ..] = rest {
                let n = usize::from(width.div_ceil(8));
                let mut dest = [0u8; 4];
                dest[..n].copy_from_slice(&tail[..n]);
                let router = Ipv4Addr::new(tail[n], tail[n + 1], tail[n + 2], tail[n + 3]);
                routes.push(Ipv4Route {
                    destination: Ipv4Addr::from(dest),
                    prefix_len: *width,
                    gateway: (!router.is_unspecified()).then_some(router),
                });
                rest = &tail[n + 4..];
            }
            let gateway = routes
                .iter()
                .find(|r| r.prefix_len == 0)
                .and_then(|r| r.gateway);
            (routes, gateway)
        }
        None => {
            let gateway = routers.first().copied();
            let routes = gateway.map(Ipv4Route::default_via).into_iter().collect();
            (routes, gateway)
        }
    };
    Lease {
        address: addr(get("fixed-address").expect("fixed-address")),
        prefix_len: mask.leading_ones() as u8,
        gateway,
        routes,
        dns: get("domain-name-servers")
            .map(|v| v.split(',').map(addr).collect())
            .unwrap_or_default(),
        domain: get("domain-name").map(unquote),
        search: get("domain-search")
            .map(|v| {
                v.split(',')
                    .map(|s| unquote(s).trim_end_matches('.').to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        mtu: get("interface-mtu").map(|v| v.parse().expect("mtu")),
        broadcast: get("broadcast-address").map(addr),
        lease_time: secs("dhcp-lease-time"),
        t1: secs("dhcp-renewal-time"),
        t2: secs("dhcp-rebinding-time"),
        server: addr(get("dhcp-server-identifier").expect("server identifier")),
        acquired_at,
    }
}

/// dhclient's lease file from the recording. It holds two leases: the one from the
/// first ACK (DISCOVER/OFFER/REQUEST/ACK) and, last, the one from the ACK to its
/// INIT-REBOOT request. (dhclient rewrote the file when it restarted, so the renewal's
/// lease is not in it.)
fn dhclient_leases_file() -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(data("dhcp-dnsmasq.dhclient.leases"))
        .expect("dhclient's lease file");
    let leases = dhclient_leases(&text);
    assert_eq!(leases.len(), 2, "the first lease and the INIT-REBOOT one");
    leases
}

// ------------------------------------------------------------------ the replays

#[test]
fn dnsmasq_exchange_yields_the_lease_dhclient_got() {
    let capture = frames("dhcp-dnsmasq.pcap");
    let replies = server_replies(&capture);
    let offer = &replies
        .iter()
        .find(|(k, _)| *k == OFFER)
        .expect("an OFFER")
        .1;
    let acks: Vec<&Vec<u8>> = replies
        .iter()
        .filter(|(k, _)| *k == ACK)
        .map(|(_, f)| f)
        .collect();
    assert!(acks.len() >= 2, "the initial ACK and the renewal's");
    let files = dhclient_leases_file();
    let file = &files[0];

    // INIT → SELECTING → REQUESTING → (probe) → BOUND.
    let t0 = Instant::now();
    let mut tap = dhcp_tap(DhcpConfig::default(), t0);
    let discover = sent(&drain(&mut tap), DISCOVER);
    let request = sent(&feed(&mut tap, t0, &with_xid(offer, discover.xid)), REQUEST);
    assert_eq!(request.xid, discover.xid);
    let offered = dhcp(offer).expect("the OFFER parses");
    assert_eq!(request.options.get(&54), offered.options.get(&54));
    feed(&mut tap, t0, &with_xid(acks[0], request.xid));
    run_until(&mut tap, t0 + Duration::from_secs(1));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    let lease = tap.lease().expect("a lease").clone();
    assert_eq!(lease, expected_lease(file, t0));
    assert_eq!(
        lease_events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseAcquired(lease.clone()))]
    );
    let iface = tap.ipv4().expect("the interface is configured");
    assert_eq!(iface.address, lease.address);
    assert_eq!(iface.routes, lease.routes);

    // In the recording the server checks the client with a unicast ARP request a few
    // seconds after the ACK, from which the client learns the server's MAC; the renewal
    // at T1 then goes straight to it. The same recorded frame does that here.
    let server_arp = capture
        .iter()
        .find(|f| f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[0..6] == CLIENT_MAC.0)
        .expect("the server's unicast ARP request to the client");
    let out = feed(&mut tap, t0 + Duration::from_secs(5), server_arp);
    assert!(
        out.iter()
            .any(|f| f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2]),
        "the leased address is defended with no TUN attached"
    );
    let t1 = t0 + lease.t1.expect("a finite lease");
    let out = run_until(&mut tap, t1);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Renewing));
    let renew = sent(&out, REQUEST);
    let renew_frame = out
        .iter()
        .find(|f| dhcp(f).is_some_and(|d| d.kind == REQUEST))
        .expect("the renewal");
    assert_eq!(
        renew_frame[0..6],
        [2, 0, 0, 0, 0, 1],
        "unicast to the server's MAC"
    );
    assert_eq!(
        renew_frame[30..34],
        lease.server.octets(),
        "and its address"
    );
    let renewal_ack = acks
        .iter()
        .skip(1)
        .find(|f| f[30..34] == lease.address.octets())
        .unwrap_or(&acks[1]);
    feed(&mut tap, t1, &with_xid(renewal_ack, renew.xid));
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Bound));
    let renewed = tap.lease().expect("still a lease").clone();
    // dnsmasq's renewal ACK counts T1/T2 down from its configured T1 (9 s and 524 s in
    // this recording) while the lease time starts again at 600 s; everything else is
    // the lease dhclient recorded.
    let ack = dhcp(renewal_ack).expect("the renewal ACK parses");
    let seconds = |code: u8| {
        ack.options
            .get(&code)
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(|b| Duration::from_secs(u32::from_be_bytes(b).into()))
    };
    let expected = Lease {
        t1: seconds(58),
        t2: seconds(59),
        ..expected_lease(file, t1)
    };
    assert_eq!(renewed, expected);
    assert_eq!(
        lease_events(&mut tap),
        vec![Event::Dhcp(DhcpEvent::LeaseRenewed(renewed.clone()))]
    );

    // DHCPRELEASE on shutdown: addressed like dhclient's.
    let theirs = capture
        .iter()
        .find(|f| dhcp(f).is_some_and(|d| d.kind == RELEASE))
        .expect("dhclient's RELEASE in the capture");
    tap.release(t1 + Duration::from_secs(1));
    let out = drain(&mut tap);
    let ours = out
        .iter()
        .find(|f| dhcp(f).is_some_and(|d| d.kind == RELEASE))
        .expect("our RELEASE");
    assert_eq!(ours[0..6], theirs[0..6], "Ethernet destination: the server");
    assert_eq!(ours[26..34], theirs[26..34], "IP source and destination");
    assert_eq!(
        ours[UDP_PAYLOAD + 12..UDP_PAYLOAD + 16],
        theirs[UDP_PAYLOAD + 12..UDP_PAYLOAD + 16],
        "ciaddr"
    );
    assert_eq!(
        dhcp(ours).and_then(|d| d.options.get(&54).cloned()),
        dhcp(theirs).and_then(|d| d.options.get(&54).cloned())
    );
    assert_eq!(tap.ipv4(), None);
}

#[test]
fn dnsmasq_acknowledges_init_reboot_with_the_same_lease() {
    let capture = frames("dhcp-dnsmasq.pcap");
    let files = dhclient_leases_file();
    let file = files.last().expect("a lease");
    // The last ACK of the session answers dhclient's INIT-REBOOT request.
    let ack = server_replies(&capture)
        .into_iter()
        .filter(|(k, _)| *k == ACK)
        .map(|(_, f)| f)
        .next_back()
        .expect("an ACK");
    let t0 = Instant::now();
    let remembered = addr(&file["fixed-address"]);
    let config = DhcpConfig {
        remembered_address: Some(remembered),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Rebooting));
    let request = sent(&drain(&mut tap), REQUEST);
    assert_eq!(
        request.options.get(&50),
        Some(&remembered.octets().to_vec())
    );
    assert_eq!(request.options.get(&54), None);
    feed(&mut tap, t0, &with_xid(&ack, request.xid));
    run_until(&mut tap, t0 + Duration::from_secs(1));
    assert_eq!(tap.lease(), Some(&expected_lease(file, t0)));
}

#[test]
fn dnsmasq_nak_of_init_reboot_leads_to_discovery_and_a_lease() {
    let capture = frames("dhcp-dnsmasq-nak.pcap");
    let replies = server_replies(&capture);
    let nak = &replies.iter().find(|(k, _)| *k == NAK).expect("a NAK").1;
    let offer = &replies
        .iter()
        .find(|(k, _)| *k == OFFER)
        .expect("an OFFER")
        .1;
    let ack = &replies.iter().find(|(k, _)| *k == ACK).expect("an ACK").1;
    // The address dhclient remembered: its first REQUEST's option 50.
    let remembered = capture
        .iter()
        .filter_map(|f| dhcp(f))
        .find(|d| d.kind == REQUEST)
        .and_then(|d| d.options.get(&50).cloned())
        .expect("dhclient's INIT-REBOOT request");
    let remembered = Ipv4Addr::from(<[u8; 4]>::try_from(remembered).expect("4 bytes"));

    let t0 = Instant::now();
    let config = DhcpConfig {
        remembered_address: Some(remembered),
        ..DhcpConfig::default()
    };
    let mut tap = dhcp_tap(config, t0);
    let request = sent(&drain(&mut tap), REQUEST);
    let mut out = feed(&mut tap, t0, &with_xid(nak, request.xid));
    out.extend(run_until(&mut tap, t0));
    let discover = sent(&out, DISCOVER);
    assert_eq!(tap.dhcp_state(), Some(DhcpState::Selecting));
    let request = sent(&feed(&mut tap, t0, &with_xid(offer, discover.xid)), REQUEST);
    feed(&mut tap, t0, &with_xid(ack, request.xid));
    run_until(&mut tap, t0 + Duration::from_secs(1));
    let lease = tap.lease().expect("a lease after the NAK");
    assert_eq!(
        lease.address.octets(),
        ack[UDP_PAYLOAD + 16..UDP_PAYLOAD + 20]
    );
    assert_ne!(lease.address, remembered);
    assert_eq!(
        lease_events(&mut tap).len(),
        1,
        "one LeaseAcquired, nothing lost"
    );
}
