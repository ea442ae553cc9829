//! End-to-end: a phone that roams and restarts. The `tapemu` binary runs in the `phone`
//! namespace, which has two underlays to the LAN namespace: "wlan" (the lab's `up0`,
//! 198.51.100.2/24) and "cell" (`cell`, 203.0.113.3/24, the LAN side 203.0.113.2).
//!
//! Roaming (tcp, udp and vxlan links): with a ping every 100 ms and a TCP stream from
//! the phone to the LAN host running, the phone's address on one underlay is removed
//! and its default route moved to the other; tapemu's route watch notices by itself.
//! Each switch must keep the DHCP address (dnsmasq logs a DHCPREQUEST and no DISCOVER),
//! pings must resume within 3 s (the gap is printed), the TCP stream must go on, and
//! the LAN host must reach the phone again. The udp peer (`l2peer`) answers the latest
//! source address it heard from and its tcp side takes a new connection in place of the
//! old one, as OpenVPN and SoftEther servers do; the LAN's vxlan device learns, with
//! both underlay addresses in its flood list. `TAPEMU_ROAM_SWITCHES` sets the number of
//! switches (default 2: there and back).
//!
//! Restart: `tapemu run --no-release`, SIGTERM, `tapemu run` again gets the same
//! address by INIT-REBOOT from its lease file, faster than the first time. A corrupt lease
//! file is a warning: the lease is discovered anew and stored over it.
//!
//! Needs root and `ip netns`; skips (or fails under `CI=true`) without them.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tapemu_tests::lab::*;

const T: Duration = Duration::from_secs(20);
const L2PEER: &str = env!("CARGO_BIN_EXE_l2peer");
/// Longest a roam may interrupt the pings.
const MAX_GAP: Duration = Duration::from_secs(3);

const CELL_DEV: &str = "cell";
const CELL_LAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const CELL_PHONE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);
const TUN: &str = "tun0";

/// One of the phone's two underlays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Underlay {
    Wlan,
    Cell,
}

impl Underlay {
    fn dev(self) -> &'static str {
        match self {
            Underlay::Wlan => UNDERLAY_DEV,
            Underlay::Cell => CELL_DEV,
        }
    }

    /// The phone's address and the LAN side's (the gateway).
    fn addrs(self) -> (Ipv4Addr, Ipv4Addr) {
        match self {
            Underlay::Wlan => (UNDERLAY_PHONE, UNDERLAY_LAN),
            Underlay::Cell => (CELL_PHONE, CELL_LAN),
        }
    }

    fn other(self) -> Underlay {
        match self {
            Underlay::Wlan => Underlay::Cell,
            Underlay::Cell => Underlay::Wlan,
        }
    }
}

fn prerequisites(test: &str) -> Option<std::path::PathBuf> {
    if !require_root(test) {
        return None;
    }
    require_bin(test, "tapemu")
}

/// The lab with a second underlay "cell" and the phone's default route on wlan. A vxlan
/// lab's `vxlan0` is made again without a fixed remote: learning, flooding to both of
/// the phone's underlay addresses.
fn roaming_lab(link: LabLink) -> Lab {
    let lab = Lab::builder(link).l2peer_bin(L2PEER).build().expect("lab");
    let (lan, phone) = (lab.lan(), lab.phone());
    let mtu = UNDERLAY_MTU.to_string();
    lan.ip(&[
        "link",
        "add",
        CELL_DEV,
        "mtu",
        &mtu,
        "type",
        "veth",
        "peer",
        "name",
        CELL_DEV,
        "netns",
        phone.name(),
    ])
    .expect("cell veth");
    lan.ip(&["addr", "add", &format!("{CELL_LAN}/24"), "dev", CELL_DEV])
        .expect("cell address (LAN)");
    lan.ip(&["link", "set", CELL_DEV, "up"]).expect("cell up");
    phone
        .ip(&["addr", "add", &format!("{CELL_PHONE}/24"), "dev", CELL_DEV])
        .expect("cell address (phone)");
    phone.ip(&["link", "set", CELL_DEV, "up"]).expect("cell up");
    // Checksums final before they cross the veth, as the lab does for up0.
    for ns in [lan, phone] {
        ns.run_ok(&["ethtool", "-K", CELL_DEV, "tx", "off"])
            .expect("ethtool");
    }
    phone
        .ip(&["route", "add", "default", "via", &UNDERLAY_LAN.to_string()])
        .expect("default route on wlan");
    if link == LabLink::Vxlan {
        lan.ip(&["link", "del", "vxlan0"]).expect("old vxlan0");
        lan.ip(&[
            "link",
            "add",
            "vxlan0",
            "type",
            "vxlan",
            "id",
            &VXLAN_VNI.to_string(),
            "local",
            &UNDERLAY_LAN.to_string(),
            "dstport",
            &VXLAN_PORT.to_string(),
            "learning",
        ])
        .expect("learning vxlan0");
        lan.ip(&["link", "set", "vxlan0", "mtu", "1500"])
            .expect("mtu");
        for dst in [UNDERLAY_PHONE, CELL_PHONE] {
            lan.run_ok(&[
                "bridge",
                "fdb",
                "append",
                "00:00:00:00:00:00",
                "dev",
                "vxlan0",
                "dst",
                &dst.to_string(),
            ])
            .expect("flood entry");
        }
        lan.sysctl("net/ipv6/conf/vxlan0/disable_ipv6", "1")
            .expect("sysctl");
        lan.ip(&["link", "set", "vxlan0", "master", LAN_BRIDGE, "up"])
            .expect("vxlan0 into br0");
    }
    lab
}

/// Moves the phone onto `to`: its address there (again), the default route through it,
/// then the address on the other underlay removed.
fn roam(phone: &Netns, to: Underlay) {
    let (addr, gateway) = to.addrs();
    let cidr = format!("{addr}/24");
    if !phone
        .addrs_of(to.dev())
        .is_ok_and(|a| a.iter().any(|a| a.addr == IpAddr::V4(addr)))
    {
        phone
            .ip(&["addr", "add", &cidr, "dev", to.dev()])
            .expect("address");
    }
    phone
        .ip(&[
            "route",
            "replace",
            "default",
            "via",
            &gateway.to_string(),
            "dev",
            to.dev(),
        ])
        .expect("default route");
    let from = to.other();
    let (old, _) = from.addrs();
    phone
        .ip(&["addr", "del", &format!("{old}/24"), "dev", from.dev()])
        .expect("old address removed");
}

/// The wall-clock times (seconds) of the replies in `ping -D` output.
fn reply_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Events named `event` on `proc`'s JSON stdout so far.
fn events(proc: &Proc, event: &str) -> Vec<Value> {
    let needle = format!("\"event\":\"{event}\"");
    proc.stdout()
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn address_of(v: &Value) -> Option<Ipv4Addr> {
    v["address"].as_str()?.parse().ok()
}

/// A TCP stream from the phone to the LAN host: the phone writes 512 bytes every 20 ms,
/// the host counts what it reads.
struct Stream {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
    writer: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Stream {
    fn start(lab: &Lab, port: u16) -> Stream {
        let addr = SocketAddr::from((LAN_HOST, port));
        let listener = lab.host().tcp_listen(addr).expect("listen");
        let mut client = lab.phone().tcp_connect(addr, T).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let read = Arc::new(AtomicU64::new(0));
        let count = read.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = server.read(&mut buf) {
                if n == 0 {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (stop2, written2) = (stop.clone(), written.clone());
        let writer = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                client.write_all(&[0x5a; 512])?;
                written2.fetch_add(512, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        });
        Stream {
            stop,
            written,
            read,
            writer,
        }
    }

    /// Waits until the host has read everything written so far.
    fn wait_caught_up(&self, what: &str) {
        let target = self.written.load(Ordering::Relaxed);
        wait_until(T, what, || self.read.load(Ordering::Relaxed) >= target);
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let result = self.writer.join().expect("writer thread");
        assert!(result.is_ok(), "the TCP stream broke: {result:?}");
    }
}

/// How the emulator learns of the roam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detection {
    /// The CLI's route watch calls `network_changed`.
    RouteWatch,
    /// None (`--no-route-watch`): a tcp link's `TCP_USER_TIMEOUT` takes the dead
    /// connection down, and the reconnected link re-announces the host.
    UserTimeout,
}

fn roaming(link: LabLink, detection: Detection) {
    let name = match detection {
        Detection::RouteWatch => format!("roam_{}", link.name()),
        Detection::UserTimeout => format!("roam_{}_user_timeout", link.name()),
    };
    let Some(bin) = prerequisites(&name) else {
        return;
    };
    let switches: usize = std::env::var("TAPEMU_ROAM_SWITCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let lab = roaming_lab(link);
    let phone = lab.phone();
    let bin = bin.to_string_lossy();
    let url = lab.link_url();
    let mut argv = vec![
        &*bin,
        "run",
        "--link",
        &url,
        "--json",
        "--tun",
        TUN,
        "--no-default-route",
        "--tcp-user-timeout",
        "1500",
    ];
    if detection == Detection::UserTimeout {
        argv.push("--no-route-watch");
    }
    let tapemu = phone.spawn("tapemu", &argv).expect("spawn tapemu");
    let lease = json_event_first(&tapemu, "lease");
    let address = address_of(&lease).expect("leased address");
    wait_until(T, "the leased address on the TUN", || {
        phone
            .addrs_of(TUN)
            .is_ok_and(|a| a.iter().any(|a| a.addr == IpAddr::V4(address)))
    });
    lab.host()
        .wait_ping(address.into(), T)
        .expect("host → phone");

    let pinger = phone
        .spawn(
            "ping",
            &["ping", "-n", "-D", "-i", "0.1", &LAN_HOST.to_string()],
        )
        .expect("ping");
    wait_until(T, "pings answered", || {
        reply_times(&pinger.stdout()).len() >= 5
    });
    let stream = Stream::start(&lab, 5301);
    stream.wait_caught_up("the TCP stream flowing");
    // Configuring the TUN changes routes too, never the route to the link's peer.
    assert!(
        events(&tapemu, "network_changed").is_empty(),
        "a change seen before any roam"
    );

    let mut gaps = Vec::new();
    let mut on = Underlay::Wlan;
    for switch in 0..switches {
        let to = on.other();
        let log_before = lab.dnsmasq_log().len();
        let renewed_before = events(&tapemu, "renewed").len();
        let changes_before = events(&tapemu, "network_changed").len();
        let ups_before = events(&tapemu, "link_up").len();
        let started = unix_now();
        roam(phone, to);
        on = to;

        match detection {
            // The route watch noticed.
            Detection::RouteWatch => {
                let change = wait_for(T, "a network_changed event", || {
                    events(&tapemu, "network_changed")
                        .into_iter()
                        .nth(changes_before)
                });
                assert_eq!(change["dev"], to.dev(), "{change}");
                assert_eq!(change["source"], to.addrs().0.to_string(), "{change}");
            }
            // The connection timed out and was made again: link_down, then link_up.
            Detection::UserTimeout => {
                wait_for(T, "link_up after the roam", || {
                    events(&tapemu, "link_up").into_iter().nth(ups_before)
                });
                let down = events(&tapemu, "link_down");
                assert_eq!(down.len(), ups_before + 1, "{down:?}");
                assert!(events(&tapemu, "network_changed").is_empty());
            }
        }
        // Pings resume.
        let (last_before, first_after) = wait_for(T, "pings after the roam", || {
            let times = reply_times(&pinger.stdout());
            let before = times.iter().copied().rfind(|t| *t <= started)?;
            let after = times.iter().copied().find(|t| *t > started)?;
            Some((before, after))
        });
        let gap = Duration::from_secs_f64((first_after - last_before).max(0.0));
        println!(
            "{name} #{}: {:?} → {:?}: pings interrupted for {} ms",
            switch + 1,
            to.other(),
            to,
            gap.as_millis()
        );
        gaps.push(gap);
        // The same lease, confirmed: REQUEST and ACK, no DISCOVER.
        let renewed = wait_for(T, "the lease confirmed", || {
            events(&tapemu, "renewed").into_iter().nth(renewed_before)
        });
        assert_eq!(address_of(&renewed), Some(address), "{renewed}");
        let log = lab.dnsmasq_log();
        let new_log = &log[log_before..];
        assert!(new_log.contains("DHCPREQUEST(br0)"), "{new_log}");
        assert!(new_log.contains("DHCPACK(br0)"), "{new_log}");
        assert!(!new_log.contains("DHCPDISCOVER"), "{new_log}");
        assert!(events(&tapemu, "changed").is_empty());
        assert!(events(&tapemu, "lost").is_empty());
        // The TCP stream goes on; the LAN host reaches the phone.
        stream.wait_caught_up("the TCP stream after the roam");
        lab.host()
            .wait_ping(address.into(), T)
            .expect("host → phone after the roam");
        let max_gap = match detection {
            Detection::RouteWatch => MAX_GAP,
            // The user timeout (1.5 s), the first reconnection backoff (0.25 s), then
            // the ping's next interval and the TCP link's connect.
            Detection::UserTimeout => Duration::from_secs(4),
        };
        assert!(gap < max_gap, "pings interrupted for {gap:?}");
    }
    stream.finish();
    gaps.sort();
    println!(
        "{name}: gap p50 {} ms, max {} ms over {} switches",
        gaps[gaps.len() / 2].as_millis(),
        gaps[gaps.len() - 1].as_millis(),
        gaps.len()
    );
    tapemu.signal(libc::SIGTERM);
    let status = tapemu.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", tapemu.stderr());
}

/// The first `event` on `proc`'s JSON stdout.
fn json_event_first(proc: &Proc, event: &str) -> Value {
    wait_for(T, &format!("tapemu event {event}"), || {
        events(proc, event).into_iter().next()
    })
}

#[test]
fn roam_tcp() {
    roaming(LabLink::Tcp2, Detection::RouteWatch);
}

#[test]
fn roam_tcp_user_timeout() {
    roaming(LabLink::Tcp2, Detection::UserTimeout);
}

#[test]
fn roam_udp() {
    roaming(LabLink::Udp, Detection::RouteWatch);
}

#[test]
fn roam_vxlan() {
    roaming(LabLink::Vxlan, Detection::RouteWatch);
}

/// Starts `tapemu run` and returns it with the time it took to get a lease.
fn run_until_lease(lab: &Lab, bin: &Path, extra: &[&str]) -> (Proc, Value, Duration) {
    let bin = bin.to_string_lossy();
    let url = lab.link_url();
    let mut argv = vec![&*bin, "run", "--link", &url, "--json", "--tun", TUN];
    argv.extend_from_slice(extra);
    let started = Instant::now();
    let tapemu = lab.phone().spawn("tapemu", &argv).expect("spawn tapemu");
    let lease = json_event_first(&tapemu, "lease");
    (tapemu, lease, started.elapsed())
}

#[test]
fn restart_keeps_the_address() {
    let Some(bin) = prerequisites("roam_restart") else {
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
    let (first, lease, first_time) = run_until_lease(&lab, &bin, &["--no-release"]);
    let address = address_of(&lease).expect("address");
    // The lease file is the TUN's, in the state directory (the lab's phone directory).
    let file = lab.phone().dir().join(format!("{TUN}.lease"));
    wait_until(T, "the lease file", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains(&address.to_string()))
    });
    first.signal(libc::SIGTERM);
    let status = first.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", first.stderr());
    assert!(
        !lab.dnsmasq_log().contains("DHCPRELEASE"),
        "--no-release sent a release"
    );
    assert!(file.exists(), "the lease file is kept");

    let log_before = lab.dnsmasq_log().len();
    let (second, lease, second_time) = run_until_lease(&lab, &bin, &[]);
    assert_eq!(address_of(&lease), Some(address), "{lease}");
    let log = lab.dnsmasq_log();
    let new_log = &log[log_before..];
    assert!(new_log.contains("DHCPREQUEST(br0)"), "{new_log}");
    assert!(!new_log.contains("DHCPDISCOVER"), "{new_log}");
    println!(
        "time to lease: first start {} ms, restart (INIT-REBOOT) {} ms",
        first_time.as_millis(),
        second_time.as_millis()
    );
    assert!(second_time < first_time);
    // Stopped without --no-release: released, and the lease file is gone.
    second.signal(libc::SIGTERM);
    let status = second.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", second.stderr());
    lab.wait_dnsmasq_log("DHCPRELEASE(br0)", T)
        .expect("released");
    assert!(!file.exists(), "the lease file is removed with the lease");
}

#[test]
fn a_corrupt_lease_file_is_a_warning() {
    let Some(bin) = prerequisites("roam_corrupt_lease_file") else {
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
    let file = lab.phone().dir().join("stored.lease");
    std::fs::write(&file, "{\"address\": \"192.0.2.1").expect("write");
    let path = file.to_string_lossy().into_owned();
    let (tapemu, lease, _) = run_until_lease(&lab, &bin, &["--lease-file", &path]);
    let address = address_of(&lease).expect("address");
    assert!(lab.dnsmasq_log().contains("DHCPDISCOVER(br0)"));
    assert!(
        tapemu.stderr().contains("not a stored lease"),
        "{}",
        tapemu.stderr()
    );
    // The file is replaced by the new lease.
    wait_until(T, "the lease stored", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains(&address.to_string()))
    });
    tapemu.signal(libc::SIGTERM);
    let status = tapemu.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", tapemu.stderr());
}
