//! The checks the end-to-end tests make of `tapemu run --json` in the lab's phone
//! namespace: waiting for its JSON event lines, the reachability every link must give
//! a leased phone (the LAN host finds it by ARP, TCP both ways, SLAAC), and the whole
//! run of checks for tapemu behind a real layer-2 VPN.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::lab::{
    add_bridge_port, tcp_transfer, wait_for, wait_until, Flow, Lab, Netns, Proc, HOST_DEV, LAN_DNS,
    LAN_HOST, LAN_ROUTER,
};

/// The TUN `tapemu run` creates when no name is given.
pub const TUN_DEV: &str = "tapemu0";

/// Waits for the first JSON event line on `proc`'s stdout that satisfies `pred`, and
/// parses it. The error names `what`.
pub fn json_event_where(
    proc: &Proc,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(timeout, what, || {
        proc.stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| pred(v))
    })
}

/// The LAN host has never seen the phone at `address`: it must ARP through the emulator,
/// whose answer carries `mac`, then ping it; and the phone pings the host.
pub fn host_finds_phone(lab: &Lab, address: Ipv4Addr, mac: &str, timeout: Duration) {
    let host = lab.host();
    host.ip(&["neigh", "flush", "dev", HOST_DEV])
        .expect("flush the host's neighbours");
    host.wait_ping(address.into(), timeout)
        .expect("host → phone");
    let neigh = host
        .ip(&["neigh", "show", &address.to_string()])
        .expect("neigh");
    assert!(neigh.to_ascii_lowercase().contains(mac), "{neigh}");
    lab.ping_from_phone(LAN_HOST).expect("phone → host");
}

/// A verified TCP transfer of `bytes` phone → host, then host → the phone at `address`.
pub fn tcp_each_way(lab: &Lab, address: Ipv4Addr, bytes: u64, timeout: Duration) {
    let (phone, host) = (lab.phone(), lab.host());
    let to_host = SocketAddr::from((LAN_HOST, 5201));
    tcp_transfer(phone, host, to_host, bytes, Flow::ClientToServer, timeout)
        .expect("TCP phone → host");
    let to_phone = SocketAddr::from((address, 5202));
    tcp_transfer(host, phone, to_phone, bytes, Flow::ClientToServer, timeout)
        .expect("TCP host → phone");
}

/// Waits for an `ipv6` event with a global address (SLAAC from the router's RA) and for
/// that address on the TUN, and returns it.
pub fn global_ipv6(lab: &Lab, tapemu: &Proc, timeout: Duration) -> Ipv6Addr {
    let v6 = json_event_where(tapemu, "a global IPv6 address", timeout, |v| {
        v["event"] == "ipv6" && v["addresses"].as_array().is_some_and(|a| !a.is_empty())
    });
    let ours: Ipv6Addr = v6["addresses"][0]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("bad ipv6 event {v6}"));
    wait_until(timeout, "the IPv6 address on the TUN", || {
        lab.phone()
            .addrs_of(TUN_DEV)
            .is_ok_and(|a| a.iter().any(|a| a.addr == IpAddr::V6(ours)))
    });
    ours
}

/// A counter of `dev` in `ns` (`rx_bytes`, `tx_bytes`).
pub fn counter(ns: &Netns, dev: &str, name: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/{name}");
    ns.run_ok(&["cat", &path])
        .expect("read counter")
        .trim()
        .parse()
        .expect("a number")
}

/// tapemu behind a layer-2 VPN whose phone end is `vpn_dev`, a port of the phone's
/// `switch` bridge: starts `tapemu run --link tap://tap0` with `mac` and makes `tap0` the
/// switch's other port, then checks the lease against the lab's dnsmasq, ARP and ping
/// both ways, TCP each way (counted on `vpn_dev`: it went through the VPN), SLAAC and an
/// IPv6 ping, and DHCPRELEASE on SIGINT. Returns the lease event.
pub fn through_layer2_vpn(
    lab: &Lab,
    bin: &Path,
    switch: &str,
    vpn_dev: &str,
    mac: &str,
    timeout: Duration,
) -> Value {
    let phone = lab.phone();
    let bin = bin.to_string_lossy();
    let argv = [&*bin, "run", "--link", "tap://tap0", "--json", "--mac", mac];
    let tapemu = phone.spawn("tapemu", &argv).expect("spawn tapemu");
    phone.wait_link("tap0", timeout).expect("tapemu's TAP");
    add_bridge_port(phone, "tap0", switch).expect("tap0 into the phone switch");

    let lease = json_event_where(&tapemu, "a lease", timeout, |v| v["event"] == "lease");
    let address: Ipv4Addr = lease["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {lease}"));
    let leased = lab.wait_lease_for_mac(mac, timeout).expect("lease file");
    assert_eq!(leased, address);
    assert_eq!(lease["server"], LAN_ROUTER.to_string(), "{lease}");
    assert_eq!(lease["prefix"], 24, "{lease}");
    assert_eq!(lease["dns"], serde_json::json!([LAN_DNS.to_string()]));
    wait_until(timeout, "the leased address on the TUN", || {
        phone
            .addrs_of(TUN_DEV)
            .is_ok_and(|a| a.iter().any(|a| a.addr == IpAddr::V4(address)))
    });
    host_finds_phone(lab, address, mac, timeout);

    // The VPN's TAP is where the phone switch hands frames to the VPN (its rx) and takes
    // them back (its tx).
    let (rx0, tx0) = (
        counter(phone, vpn_dev, "rx_bytes"),
        counter(phone, vpn_dev, "tx_bytes"),
    );
    let bytes = 4 * 1024 * 1024;
    tcp_each_way(lab, address, bytes, timeout);
    let (rx1, tx1) = (
        counter(phone, vpn_dev, "rx_bytes"),
        counter(phone, vpn_dev, "tx_bytes"),
    );
    assert!(
        rx1 - rx0 > bytes && tx1 - tx0 > bytes,
        "the VPN's TAP carried {} bytes out, {} in",
        rx1 - rx0,
        tx1 - tx0
    );

    // IPv6: the router's RA crosses the VPN like any multicast frame.
    let ours = global_ipv6(lab, &tapemu, timeout);
    lab.host()
        .wait_ping(ours.into(), timeout)
        .expect("host → phone over IPv6");

    tapemu.signal(libc::SIGINT);
    let status = tapemu.wait_exit(timeout).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", tapemu.stderr());
    lab.wait_dnsmasq_log(&format!("DHCPRELEASE(br0) {address}"), timeout)
        .expect("DHCPRELEASE through the VPN");
    lease
}
