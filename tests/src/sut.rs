//! The checks the end-to-end tests make of `tapemu run --json` in the lab's phone
//! namespace: waiting for its JSON event lines, and the reachability every link must give
//! a leased phone (the LAN host finds it by ARP, TCP both ways, SLAAC).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use crate::lab::{tcp_transfer, wait_for, wait_until, Flow, Lab, Proc, HOST_DEV, LAN_HOST};

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
