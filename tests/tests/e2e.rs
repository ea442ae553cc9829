//! End-to-end: the `tapemu` binary on a real TUN in the `phone` namespace, reaching a
//! LAN with dnsmasq and a host over each link variant (kernel vxlan, kernel TAP, and
//! `l2peer` for udp and tcp with 2- and 4-byte prefixes).
//!
//! For each: the lease equals dnsmasq's lease file, ping both ways (the LAN host ARPs
//! for us through the emulator), an off-link ping through the gateway, a TCP transfer
//! each way, SIGINT → DHCPRELEASE in dnsmasq's log and the TUN removed, and the pcap
//! parses with frames in both directions.
//!
//! Needs root and `ip netns`; without them each test prints SKIP and passes, except
//! under `CI=true`. Needs the `tapemu` binary: `cargo test --workspace` builds it
//! (or set `TAPEMU_BIN_TAPEMU`); without it they skip, or fail under `CI=true`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tapemu_tests::lab::*;
use tapemu_tests::recorded::read_pcap;
use tapemu_tests::sut::*;

const T: Duration = Duration::from_secs(20);
const L2PEER: &str = env!("CARGO_BIN_EXE_l2peer");

fn lab(link: LabLink, lease_time: Duration) -> Lab {
    Lab::builder(link)
        .lease_time(lease_time)
        .l2peer_bin(L2PEER)
        .build()
        .expect("lab")
}

/// Waits for the next JSON line on `proc`'s stdout with `"event":"<event>"` after
/// `skip` such lines, and parses it.
fn json_event(proc: &Proc, event: &str, skip: usize, timeout: Duration) -> Value {
    let needle = format!("\"event\":\"{event}\"");
    let line = wait_for(
        timeout,
        &format!("tapemu event {event} #{}", skip + 1),
        || {
            proc.stdout()
                .lines()
                .filter(|l| l.contains(&needle))
                .nth(skip)
                .map(str::to_owned)
        },
    );
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

fn check_lease(lab: &Lab, lease: &Value, mac: &str) -> Ipv4Addr {
    let address: Ipv4Addr = lease["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {lease}"));
    assert_eq!(lab.wait_lease_for_mac(mac, T).expect("lease file"), address);
    assert_eq!(lease["prefix"], 24, "{lease}");
    assert_eq!(lease["gateway"], LAN_ROUTER.to_string(), "{lease}");
    assert_eq!(lease["server"], LAN_ROUTER.to_string(), "{lease}");
    assert_eq!(
        lease["dns"],
        serde_json::json!([LAN_DNS.to_string()]),
        "{lease}"
    );
    assert_eq!(lease["domain"], LAN_DOMAIN, "{lease}");
    assert_eq!(lease["mtu"], 1500, "{lease}");
    assert_eq!(
        lease["lease_seconds"],
        lab.lease_time().as_secs(),
        "{lease}"
    );
    address
}

/// Root, namespaces and the `tapemu` binary, or `None` after printing why the test
/// skips (under `CI=true` a missing prerequisite fails the test instead).
fn prerequisites(test: &str) -> Option<std::path::PathBuf> {
    if !require_root(test) {
        return None;
    }
    require_bin(test, "tapemu")
}

/// Starts `tapemu run --link URL --json` and `args` in the phone namespace.
fn spawn_run(lab: &Lab, bin: &Path, args: &[&str]) -> Proc {
    let bin = bin.to_string_lossy();
    let url = lab.link_url();
    let mut argv = vec![&*bin, "run", "--link", &url, "--json"];
    argv.extend_from_slice(args);
    lab.phone().spawn("tapemu", &argv).expect("spawn tapemu")
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, part) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(part, 16).expect("mac");
    }
    out
}

fn end_to_end(link: LabLink, mac: &str) {
    let Some(bin) = prerequisites(&format!("e2e_{}", link.name())) else {
        return;
    };
    let lab = lab(link, Duration::from_secs(3600));
    let phone = lab.phone();
    let pcap = phone.dir().join("tapemu.pcap");
    let pcap_arg = pcap.to_string_lossy().into_owned();
    let tapemu = spawn_run(
        &lab,
        &bin,
        &["--mac", mac, "--hostname", "phone", "--pcap", &pcap_arg],
    );
    if link == LabLink::Tap {
        lab.enslave_to_phone_bridge(DEFAULT_PHONE_TAP, T)
            .expect("tap0 into the phone bridge");
    }
    let lease = json_event(&tapemu, "lease", 0, T);
    let address = check_lease(&lab, &lease, mac);
    phone.wait_link("tapemu0", T).expect("TUN exists");
    wait_until(T, "the leased address on the TUN", || {
        phone.addrs_of("tapemu0").is_ok_and(|addrs| {
            addrs
                .iter()
                .any(|a| a.addr == IpAddr::V4(address) && a.prefix_len == 24)
        })
    });

    host_finds_phone(&lab, address, mac, T);
    lab.ping_from_phone(OFFLINK_SERVER)
        .expect("phone → off-link via the gateway");

    // IPv6 from the router's RA (SLAAC), configured on the TUN from the ipv6 event.
    let our6 = global_ipv6(&lab, &tapemu, T);
    lab.host()
        .wait_ping(our6.into(), T)
        .expect("host → phone over IPv6");
    lab.ping_from_phone(OFFLINK_SERVER6)
        .expect("phone → off-link over IPv6 via the router");

    tcp_each_way(&lab, address, 4 * 1024 * 1024, T);

    tapemu.signal(libc::SIGINT);
    let status = tapemu.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", tapemu.stderr());
    lab.wait_dnsmasq_log(&format!("DHCPRELEASE(br0) {address}"), T)
        .expect("DHCPRELEASE logged");
    assert!(!phone.has_link("tapemu0"), "the TUN is gone");
    let out = tapemu.stdout();
    assert!(
        out.lines().any(|l| l.contains("\"event\":\"lost\"")),
        "{out}"
    );

    let frames = read_pcap(&pcap);
    let ours = mac_bytes(mac);
    let sent = frames
        .iter()
        .filter(|f| f.get(6..12) == Some(&ours[..]))
        .count();
    let received = frames
        .iter()
        .filter(|f| f.get(..6) == Some(&ours[..]))
        .count();
    assert!(
        sent > 100 && received > 100,
        "pcap: {sent} sent, {received} received"
    );
    // The release is the last DHCP frame we sent: UDP 68 → 67, message type 7.
    assert!(
        frames
            .iter()
            .any(|f| f.get(6..12) == Some(&ours[..]) && f.len() > 300),
        "pcap has our DHCP frames"
    );
}

#[test]
fn e2e_vxlan() {
    end_to_end(LabLink::Vxlan, "02:00:00:00:e2:01");
}

#[test]
fn e2e_tap() {
    end_to_end(LabLink::Tap, "02:00:00:00:e2:02");
}

#[test]
fn e2e_udp() {
    end_to_end(LabLink::Udp, "02:00:00:00:e2:03");
}

#[test]
fn e2e_tcp_len2() {
    end_to_end(LabLink::Tcp2, "02:00:00:00:e2:04");
}

#[test]
fn e2e_tcp_len4() {
    end_to_end(LabLink::Tcp4, "02:00:00:00:e2:05");
}

/// The Android order: a lease with no TUN at all, printed, then released.
#[test]
fn e2e_lease_without_tun_then_release() {
    let Some(bin) = prerequisites("e2e_lease_without_tun_then_release") else {
        return;
    };
    let lab = lab(LabLink::Vxlan, Duration::from_secs(3600));
    let mac = "02:00:00:00:e2:06";
    let out = lab
        .phone()
        .run_timeout(
            &[
                &bin.to_string_lossy(),
                "lease",
                "--link",
                &lab.link_url(),
                "--mac",
                mac,
                "--json",
                "--release",
            ],
            T,
        )
        .expect("tapemu lease");
    assert!(out.success(), "{}", out.stderr);
    let line = out.stdout.lines().next().expect("a line");
    let lease: Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(lease["event"], "lease");
    let address: Ipv4Addr = lease["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("address");
    lab.wait_dnsmasq_log(&format!("DHCPACK(br0) {address} {mac}"), T)
        .expect("the lease dnsmasq gave");
    assert!(
        out.stdout.contains("\"event\":\"released\""),
        "{}",
        out.stdout
    );
    lab.wait_dnsmasq_log(&format!("DHCPRELEASE(br0) {address}"), T)
        .expect("DHCPRELEASE logged");
    assert!(!lab.phone().has_link("tapemu0"), "no TUN was created");
}

/// A 120 s lease (dnsmasq's minimum): T1 comes at 60 s and the renewal is applied
/// live while traffic keeps flowing.
#[test]
fn e2e_dhcp_renewal() {
    let Some(bin) = prerequisites("e2e_dhcp_renewal") else {
        return;
    };
    let lab = lab(LabLink::Vxlan, Duration::from_secs(120));
    let mac = "02:00:00:00:e2:07";
    let tapemu = spawn_run(&lab, &bin, &["--mac", mac]);
    let lease = json_event(&tapemu, "lease", 0, T);
    let address = check_lease(&lab, &lease, mac);
    let expires_before = lab.leases()[0].expires;
    let renewed = json_event(&tapemu, "renewed", 0, Duration::from_secs(90));
    assert_eq!(renewed["address"], address.to_string(), "{renewed}");
    wait_until(T, "dnsmasq to extend the lease", || {
        lab.leases()
            .iter()
            .any(|l| l.ip == address && l.expires > expires_before)
    });
    lab.wait_dnsmasq_log(&format!("DHCPACK(br0) {address}"), T)
        .expect("ACK logged");
    lab.ping_from_host(address)
        .expect("still reachable after the renewal");
    tapemu.signal(libc::SIGTERM);
    assert!(tapemu.wait_exit(T).expect("exit").success());
    lab.wait_dnsmasq_log(&format!("DHCPRELEASE(br0) {address}"), T)
        .expect("DHCPRELEASE logged");
}

/// A static address (no DHCP) with a gateway, on the udp link.
#[test]
fn e2e_static_address() {
    let Some(bin) = prerequisites("e2e_static_address") else {
        return;
    };
    let lab = lab(LabLink::Udp, Duration::from_secs(3600));
    let address = Ipv4Addr::new(192, 0, 2, 77);
    let tapemu = spawn_run(
        &lab,
        &bin,
        &[
            "--static",
            "192.0.2.77/24",
            "--gateway",
            &LAN_ROUTER.to_string(),
            "--no-ipv6",
        ],
    );
    json_event(&tapemu, "ipv4", 0, T);
    lab.host()
        .wait_ping(address.into(), T)
        .expect("host → phone");
    lab.ping_from_phone(OFFLINK_SERVER)
        .expect("phone → off-link via the static gateway");
    tapemu.signal(libc::SIGTERM);
    assert!(tapemu.wait_exit(T).expect("exit").success());
    assert!(lab.leases().is_empty(), "no DHCP in static mode");
}

/// IPv6 from dnsmasq's router advertisements, which advertise MTU 1400: tapemu takes
/// a SLAAC address, applies the MTU to IPv6 only, the LAN host resolves us through the
/// emulator's NDP answers, and TCP crosses both ways over IPv6.
#[test]
fn e2e_ipv6_slaac_mtu_ping_and_tcp() {
    let Some(bin) = prerequisites("e2e_ipv6_slaac_mtu_ping_and_tcp") else {
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan)
        .dnsmasq_arg(format!("--ra-param={LAN_BRIDGE},mtu:1400,10"))
        .build()
        .expect("lab");
    let phone = lab.phone();
    let tapemu = spawn_run(&lab, &bin, &["--mac", "02:00:00:00:e2:08"]);
    let v6 = json_event_where(&tapemu, "an IPv6 address with the RA's MTU", T, |v| {
        v["event"] == "ipv6"
            && v["mtu"] == 1400
            && v["addresses"].as_array().is_some_and(|a| !a.is_empty())
    });
    let ours: std::net::Ipv6Addr = v6["addresses"][0]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("bad ipv6 event {v6}"));
    // SLAAC from the EUI-64 of our MAC in the advertised prefix.
    assert_eq!(
        ours,
        "2001:db8:1::ff:fe00:e208"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
    );
    wait_until(T, "the IPv6 address and MTU on the TUN", || {
        let addr_ok = phone
            .addrs_of("tapemu0")
            .is_ok_and(|a| a.iter().any(|a| a.addr == IpAddr::V6(ours)));
        let mtu6 = phone
            .run_ok(&["cat", "/proc/sys/net/ipv6/conf/tapemu0/mtu"])
            .unwrap_or_default();
        addr_ok && mtu6.trim() == "1400"
    });
    let link = phone.ip(&["link", "show", "tapemu0"]).expect("link");
    assert!(
        link.contains("mtu 1500"),
        "IPv4's MTU is left alone: {link}"
    );

    let host6 = lab.host_ipv6(T).expect("the LAN host's SLAAC address");
    lab.host()
        .ip(&["-6", "neigh", "flush", "dev", HOST_DEV])
        .expect("flush");
    lab.host()
        .wait_ping(ours.into(), T)
        .expect("host → phone over IPv6");
    phone
        .wait_ping(host6.into(), T)
        .expect("phone → host over IPv6");
    let mb = 2 * 1024 * 1024;
    tcp_transfer(
        phone,
        lab.host(),
        SocketAddr::from((host6, 5301)),
        mb,
        Flow::ClientToServer,
        T,
    )
    .expect("TCP phone → host over IPv6");
    tcp_transfer(
        lab.host(),
        phone,
        SocketAddr::from((ours, 5302)),
        mb,
        Flow::ClientToServer,
        T,
    )
    .expect("TCP host → phone over IPv6");
    tapemu.signal(libc::SIGTERM);
    assert!(tapemu.wait_exit(T).expect("exit").success());
}
