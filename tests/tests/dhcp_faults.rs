//! DHCP server faults, end to end: `tapemu run --json` on the vxlan link of the namespace
//! lab against the real dnsmasq, which goes silent, comes back, restarts with another
//! pool, shortens the lease, competes with a second server, or offers an address that a
//! LAN host already uses.
//!
//! Leases are dnsmasq's minimum of 120 s; where a test needs RENEWING and REBINDING soon,
//! dnsmasq sends T1 = 10 s and T2 = 20 s (options 58 and 59), so they come within seconds
//! while expiry still takes the full 120 s. The tests run in parallel threads, each in its
//! own lab: the file takes as long as its longest test, about three minutes.
//!
//! Each test prints a `RECOVERY` line with how long tapemu took to get a usable address
//! back: the figures of BENCHMARKS.md ("Robustness").
//!
//! Needs root and `ip netns` (else SKIP, or a failure under `CI=true`), the `tapemu`
//! binary (`cargo build -p tapemu-cli`), dnsmasq and tcpdump.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dhcproto::v4::{Message, MessageType};
use dhcproto::{Decodable, Decoder};
use serde_json::Value;
use tapemu_tests::lab::*;

const T: Duration = Duration::from_secs(20);
/// T1 and T2 dnsmasq sends where a test wants RENEWING and REBINDING soon.
const SHORT_T1: &str = "--dhcp-option=option:T1,10";
const SHORT_T2: &str = "--dhcp-option=option:T2,20";
const LEASE: Duration = Duration::from_secs(120);

fn prerequisites(test: &str) -> Option<PathBuf> {
    if !require_root(test) {
        return None;
    }
    require_bin(test, "tapemu")
}

/// Prints a figure for BENCHMARKS.md (straight to the stderr fd: libtest captures
/// `eprintln!`).
fn record(test: &str, what: &str, took: Duration) {
    let _ = writeln!(
        std::io::stderr(),
        "RECOVERY {test}: {what}: {:.1} s",
        took.as_secs_f64()
    );
}

/// `tapemu run --link URL --json --no-ipv6 --mac MAC` in the phone namespace.
fn spawn_run(lab: &Lab, bin: &Path, mac: &str) -> Proc {
    let bin = bin.to_string_lossy();
    let url = lab.link_url();
    lab.phone()
        .spawn(
            "tapemu",
            &[
                &bin,
                "run",
                "--link",
                &url,
                "--json",
                "--no-ipv6",
                "--mac",
                mac,
            ],
        )
        .expect("spawn tapemu")
}

/// The JSON event lines `proc` has printed.
fn events(proc: &Proc) -> Vec<Value> {
    proc.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for the `n`th (from 0) event named `event`.
fn nth_event(proc: &Proc, event: &str, n: usize, timeout: Duration) -> Value {
    wait_for(timeout, &format!("tapemu event {event} #{}", n + 1), || {
        events(proc)
            .into_iter()
            .filter(|v| v["event"] == event)
            .nth(n)
    })
}

fn address_of(event: &Value) -> Ipv4Addr {
    event["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {event}"))
}

/// The IPv4 addresses on the TUN.
fn tun_ipv4(lab: &Lab) -> Vec<Ipv4Addr> {
    lab.phone()
        .addrs_of("tapemu0")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| match a.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// Waits until `address` is the one IPv4 address on the TUN.
fn wait_tun_has_only(lab: &Lab, address: Ipv4Addr) {
    wait_until(T, &format!("{address} alone on the TUN"), || {
        tun_ipv4(lab) == [address]
    });
}

/// One DHCP message seen on the wire.
#[derive(Debug, Clone)]
struct Seen {
    at: Duration,
    src_mac: [u8; 6],
    dst_ip: Ipv4Addr,
    kind: Option<MessageType>,
    ciaddr: Ipv4Addr,
}

/// Captures DHCP on the LAN side of the link (`vxlan0` in `lan`), flushed per packet.
struct Capture {
    _tcpdump: Proc,
    path: PathBuf,
}

impl Capture {
    fn start(lab: &Lab) -> Capture {
        let path = lab.lan().dir().join("dhcp.pcap");
        let file = path.to_string_lossy().into_owned();
        let tcpdump = lab
            .lan()
            .spawn(
                "tcpdump",
                &[
                    "tcpdump",
                    "-i",
                    "vxlan0",
                    "-nn",
                    "-U",
                    "--immediate-mode",
                    "-Z",
                    "root",
                    "-w",
                    &file,
                    "udp port 67 or udp port 68",
                ],
            )
            .expect("tcpdump");
        tcpdump
            .wait_stderr_line("listening on", SETUP_TIMEOUT)
            .expect("tcpdump listening");
        Capture {
            _tcpdump: tcpdump,
            path,
        }
    }

    /// Every DHCP message captured so far (a packet still being written is left out).
    fn messages(&self) -> Vec<Seen> {
        let Ok(file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let Ok(mut reader) = pcap_file::pcap::PcapReader::new(file) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(Ok(packet)) = reader.next_packet() {
            if let Some(seen) = parse_dhcp(packet.timestamp, &packet.data) {
                out.push(seen);
            }
        }
        out
    }

    /// Waits until a message from `mac` satisfies `pred`; returns it.
    fn wait_from(
        &self,
        mac: [u8; 6],
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Seen) -> bool,
    ) -> Seen {
        wait_for(timeout, what, || {
            self.messages()
                .into_iter()
                .find(|m| m.src_mac == mac && pred(m))
        })
    }
}

fn parse_dhcp(at: Duration, frame: &[u8]) -> Option<Seen> {
    let sliced = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
        return None;
    };
    let Some(etherparse::TransportSlice::Udp(udp)) = &sliced.transport else {
        return None;
    };
    let msg = Message::decode(&mut Decoder::new(udp.payload())).ok()?;
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(frame.get(6..12)?);
    Some(Seen {
        at,
        src_mac,
        dst_ip: ip.header().destination_addr(),
        kind: msg.opts().msg_type(),
        ciaddr: msg.ciaddr(),
    })
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, part) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(part, 16).expect("mac");
    }
    out
}

/// (a) The server goes silent while we are bound: RENEWING (unicast REQUEST) at T1,
/// REBINDING (broadcast REQUEST) at T2, at expiry a `lost` event, the address leaves the
/// TUN and DISCOVER backs off (4 s, then 8 s, ±1 s). (b) The server comes back: a new
/// lease, on the TUN, without restarting tapemu.
#[test]
fn server_silent_then_back() {
    const TEST: &str = "server_silent_then_back";
    let Some(bin) = prerequisites(TEST) else {
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan)
        .lease_time(LEASE)
        .dnsmasq_arg(SHORT_T1)
        .dnsmasq_arg(SHORT_T2)
        .build()
        .expect("lab");
    let capture = Capture::start(&lab);
    let mac = "02:00:00:00:fa:01";
    let ours = mac_bytes(mac);
    let tapemu = spawn_run(&lab, &bin, mac);
    let lease = nth_event(&tapemu, "lease", 0, T);
    let bound_at = Instant::now();
    let address = address_of(&lease);
    assert_eq!(lease["t1_seconds"], 10, "{lease}");
    assert_eq!(lease["t2_seconds"], 20, "{lease}");
    wait_tun_has_only(&lab, address);

    lab.dnsmasq().signal(libc::SIGSTOP);
    let renew = capture.wait_from(ours, "a RENEWING request", T, |m| {
        m.kind == Some(MessageType::Request) && m.ciaddr == address && m.dst_ip == LAN_ROUTER
    });
    let rebind = capture.wait_from(ours, "a REBINDING request", T, |m| {
        m.kind == Some(MessageType::Request)
            && m.ciaddr == address
            && m.dst_ip == Ipv4Addr::BROADCAST
    });
    assert!(
        rebind.at > renew.at,
        "rebinding ({:?}) follows renewing ({:?})",
        rebind.at,
        renew.at
    );
    record(
        TEST,
        "T1 → T2 on the wire (expected 10 s)",
        rebind.at - renew.at,
    );

    // Expiry: 120 s after the ACK; wait a little longer than what is left.
    let left = LEASE.saturating_sub(bound_at.elapsed()) + T;
    let lost = nth_event(&tapemu, "lost", 0, left);
    let lost_at = Instant::now();
    assert_eq!(lost["address"], address.to_string(), "{lost}");
    assert_eq!(lost["reason"], "expired", "{lost}");
    wait_until(T, "the expired address off the TUN", || {
        !tun_ipv4(&lab).contains(&address)
    });
    let discovers = wait_for(
        Duration::from_secs(30),
        "three DISCOVERs after expiry",
        || {
            let d: Vec<Seen> = capture
                .messages()
                .into_iter()
                .filter(|m| {
                    m.src_mac == ours && m.kind == Some(MessageType::Discover) && m.at > rebind.at
                })
                .collect();
            (d.len() >= 3).then_some(d)
        },
    );
    let gaps = [
        discovers[1].at - discovers[0].at,
        discovers[2].at - discovers[1].at,
    ];
    record(TEST, "DISCOVER backoff, first gap", gaps[0]);
    record(TEST, "DISCOVER backoff, second gap", gaps[1]);
    // 4 ± 1 s, then 8 ± 1 s (RFC 2131 §4.1): the second gap is the longer one.
    assert!(gaps[1] > gaps[0], "DISCOVER backs off: gaps {gaps:?}");

    lab.dnsmasq().signal(libc::SIGCONT);
    let back_at = Instant::now();
    let again = nth_event(&tapemu, "lease", 1, Duration::from_secs(90));
    record(
        TEST,
        "server back → new lease (DISCOVER backoff then the probe)",
        back_at.elapsed(),
    );
    record(TEST, "lease lost → new lease", lost_at.elapsed());
    let address2 = address_of(&again);
    wait_tun_has_only(&lab, address2);
    assert!(tapemu.is_running(), "tapemu still runs");
    lab.host()
        .wait_ping(address2.into(), T)
        .expect("host → phone on the new lease");
}

/// (c) The server restarts with another pool and no memory of us: the renewal at T1 is
/// NAKed, the address goes, and a new one from the new pool is leased and configured.
#[test]
fn server_restarts_with_another_pool() {
    const TEST: &str = "server_restarts_with_another_pool";
    let Some(bin) = prerequisites(TEST) else {
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan)
        .lease_time(LEASE)
        .dnsmasq_arg(SHORT_T1)
        .dnsmasq_arg(SHORT_T2)
        .build()
        .expect("lab");
    let mac = "02:00:00:00:fa:02";
    let tapemu = spawn_run(&lab, &bin, mac);
    let address = address_of(&nth_event(&tapemu, "lease", 0, T));
    wait_tun_has_only(&lab, address);

    lab.dnsmasq().stop();
    let pool = (Ipv4Addr::new(192, 0, 2, 50), Ipv4Addr::new(192, 0, 2, 60));
    let options = DnsmasqOptions {
        pool,
        stem: "dnsmasq-new-pool".into(),
        ..lab.dnsmasq_options().clone()
    };
    let server = spawn_dnsmasq(lab.lan(), &options).expect("dnsmasq with the new pool");
    let nak = server
        .wait_file_line(&options.log_path(), "DHCPNAK(br0)", T)
        .expect("the renewal NAKed");
    let nak_at = Instant::now();
    assert!(nak.contains(&address.to_string()), "{nak}");
    let lost = nth_event(&tapemu, "lost", 0, T);
    assert_eq!(lost["reason"], "nak", "{lost}");
    let lease = nth_event(&tapemu, "lease", 1, T);
    record(TEST, "NAK → new lease", nak_at.elapsed());
    let new = address_of(&lease);
    assert!(
        (pool.0..=pool.1).contains(&new),
        "{new} is from the new pool {pool:?}"
    );
    wait_tun_has_only(&lab, new);
    lab.host()
        .wait_ping(new.into(), T)
        .expect("host → phone on the new address");
}

/// (d) The server shortens the lease at renewal (600 s → 120 s): the `renewed` event
/// carries the new lease time and T1/T2, and the next renewal comes at the new T1 (about
/// 60 s), not at the old one (10 s).
#[test]
fn server_shortens_the_lease_at_renewal() {
    const TEST: &str = "server_shortens_the_lease_at_renewal";
    let Some(bin) = prerequisites(TEST) else {
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan)
        .lease_time(Duration::from_secs(600))
        .dnsmasq_arg(SHORT_T1)
        .dnsmasq_arg(SHORT_T2)
        .build()
        .expect("lab");
    let mac = "02:00:00:00:fa:03";
    let tapemu = spawn_run(&lab, &bin, mac);
    let lease = nth_event(&tapemu, "lease", 0, T);
    assert_eq!(lease["lease_seconds"], 600, "{lease}");
    let address = address_of(&lease);

    // The same server and lease file, now with 120 s leases and its default T1/T2.
    lab.dnsmasq().stop();
    let options = DnsmasqOptions {
        lease_time: LEASE,
        extra_args: Vec::new(),
        ..lab.dnsmasq_options().clone()
    };
    let _server = spawn_dnsmasq(lab.lan(), &options).expect("dnsmasq with shorter leases");
    let renewed = nth_event(&tapemu, "renewed", 0, T);
    let renewed_at = Instant::now();
    assert_eq!(renewed["address"], address.to_string(), "{renewed}");
    assert_eq!(renewed["lease_seconds"], 120, "{renewed}");
    // dnsmasq's default T1/T2 are 1/2 and 7/8 of the lease, less a random few seconds
    // so that its clients do not renew in step.
    let (t1, t2) = (
        renewed["t1_seconds"].as_u64().unwrap_or(0),
        renewed["t2_seconds"].as_u64().unwrap_or(0),
    );
    assert!(
        (30..=60).contains(&t1) && t1 < t2 && t2 <= 105,
        "new T1/T2 in force: {renewed}"
    );
    let again = nth_event(&tapemu, "renewed", 1, Duration::from_secs(90));
    let interval = renewed_at.elapsed();
    record(
        TEST,
        &format!("interval to the next renewal (new T1 {t1} s)"),
        interval,
    );
    assert_eq!(again["lease_seconds"], 120, "{again}");
    // The old T1 would renew 10 s later; the new one 60 s later. The margin is wide, and
    // a slow machine only makes the interval longer.
    assert!(
        interval > Duration::from_secs(30),
        "the next renewal came after {interval:?}: the old T1 is still in force"
    );
    wait_tun_has_only(&lab, address);
}

/// (e) Two servers answer: one lease is taken, the other offer is let go (a REQUEST
/// naming the chosen server), no crash, one address on the TUN.
#[test]
fn two_servers_one_lease() {
    const TEST: &str = "two_servers_one_lease";
    let Some(bin) = prerequisites(TEST) else {
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
    let second = lab
        .add_lan_host("dhcp2", Ipv4Addr::new(192, 0, 2, 2))
        .expect("a second server's namespace");
    let options = DnsmasqOptions {
        interface: HOST_DEV.into(),
        pool: (Ipv4Addr::new(192, 0, 2, 210), Ipv4Addr::new(192, 0, 2, 220)),
        authoritative: false,
        router_advertisements: false,
        ..DnsmasqOptions::standard(second.dir())
    };
    let server2 = spawn_dnsmasq(&second, &options).expect("the second dnsmasq");
    let mac = "02:00:00:00:fa:04";
    let started = Instant::now();
    let tapemu = spawn_run(&lab, &bin, mac);
    let lease = nth_event(&tapemu, "lease", 0, T);
    record(TEST, "start → lease with two servers", started.elapsed());
    let address = address_of(&lease);
    let offer = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("DHCPOFFER(") && l.contains(mac))
    };
    wait_until(T, "an offer from each server", || {
        offer(&lab.dnsmasq_log_path()) && offer(&options.log_path())
    });
    wait_tun_has_only(&lab, address);
    let acks = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("DHCPACK(") && l.contains(mac))
            .count()
    };
    let (first, second_acks) = (acks(&lab.dnsmasq_log_path()), acks(&options.log_path()));
    assert_eq!(
        first + second_acks,
        1,
        "one server acknowledged: {first} + {second_acks}"
    );
    assert!(tapemu.is_running(), "tapemu lives");
    assert!(server2.is_running(), "the second server lives");
    let leases = events(&tapemu)
        .into_iter()
        .filter(|v| v["event"] == "lease" || v["event"] == "changed")
        .count();
    assert_eq!(leases, 1, "one lease: {}", tapemu.stdout());
    lab.host()
        .wait_ping(address.into(), T)
        .expect("host → phone");
}

/// (f) The server offers an address a LAN host already uses (no ping check): the RFC 5227
/// probe gets the host's answer, tapemu declines (DHCPDECLINE in dnsmasq's log), and after
/// the 10 s wait of RFC 2131 §3.1 gets another address.
#[test]
fn offered_address_in_use_is_declined() {
    const TEST: &str = "offered_address_in_use_is_declined";
    let Some(bin) = prerequisites(TEST) else {
        return;
    };
    let mac = "02:00:00:00:fa:05";
    let taken = Ipv4Addr::new(192, 0, 2, 150);
    let lab = Lab::builder(LabLink::Vxlan)
        .dhcp_ping_check(false)
        .dnsmasq_arg(format!("--dhcp-host={mac},{taken}"))
        .build()
        .expect("lab");
    lab.host()
        .ip(&[
            "addr",
            "add",
            &format!("{taken}/{LAN_PREFIX_LEN}"),
            "dev",
            HOST_DEV,
        ])
        .expect("the host takes the address");
    let host_mac = lab.host().mac_of(HOST_DEV).expect("host MAC");
    let tapemu = spawn_run(&lab, &bin, mac);
    let declined = nth_event(&tapemu, "declined", 0, T);
    let declined_at = Instant::now();
    assert_eq!(declined["address"], taken.to_string(), "{declined}");
    assert_eq!(declined["mac"], host_mac, "{declined}");
    lab.wait_dnsmasq_log(&format!("DHCPDECLINE(br0) {taken}"), T)
        .expect("DHCPDECLINE logged");
    let lease = nth_event(&tapemu, "lease", 0, Duration::from_secs(40));
    record(
        TEST,
        "DECLINE → new lease (incl. the 10 s wait)",
        declined_at.elapsed(),
    );
    let address = address_of(&lease);
    assert_ne!(address, taken, "{lease}");
    wait_tun_has_only(&lab, address);
    lab.host()
        .wait_ping(address.into(), T)
        .expect("host → phone on the new address");
}
