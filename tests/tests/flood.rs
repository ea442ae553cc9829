//! Floods from the LAN: `tapemu run --json` on the vxlan link of the namespace lab, and
//! `framegen` (tests/src/bin) writing raw frames into the LAN's `vxlan0` port as fast as
//! it can, one kind per test: spoofed ARP, NS/NA, router advertisements, DHCP OFFER/ACK
//! look-alikes and random garbage.
//!
//! Each flood is bounded: at most [`FLOOD_FRAMES`] frames and [`FLOOD_SECONDS`] seconds
//! (`TAPEMU_FLOOD_FRAMES` / `TAPEMU_FLOOD_SECONDS` lower them for a quick run). During and
//! after it:
//! - tapemu lives, and its peak RSS (`VmHWM`) stays under [`PEAK_RSS_BOUND_KIB`];
//! - it prints fewer than [`MAX_EVENT_LINES`] JSON lines: no event storm reaches the
//!   consumer;
//! - the LAN host, its neighbour cache flushed, still resolves and pings our address
//!   (and our IPv6 address after the IPv6 floods).
//!
//! Each test prints one `FLOOD` line with the frames sent, the rate, the frames tapemu
//! read (UDP datagrams of the phone namespace), the CPU time per frame and the peak RSS:
//! the figures of BENCHMARKS.md ("Robustness"). The floods run one at a time (a lock),
//! so their rates and CPU figures are not shared with another flood.
//!
//! Needs root and `ip netns` (else SKIP, or a failure under `CI=true`) and the `tapemu`
//! binary (`cargo build -p tapemu-cli`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tapemu_tests::lab::*;
use tapemu_tests::sut::*;

const FRAMEGEN: &str = env!("CARGO_BIN_EXE_framegen");
const T: Duration = Duration::from_secs(20);

/// Most frames per flood.
const FLOOD_FRAMES: u64 = 1_000_000;
/// Most seconds per flood.
const FLOOD_SECONDS: f64 = 20.0;
/// Peak RSS tapemu may reach, in KiB. Measured (debug build, 2026-12-01): 16.8–17.3 MiB
/// after every flood kind on the tree with the TUN offloads (13.7–14.1 MiB before it), at most
/// 0.4 MiB over the same process before the flood. Everything
/// a flood can grow is capped: the neighbour tables at 1024 entries each (about 100 bytes
/// an entry, plus at most 1 MiB of queued packets, and no packets queue in a flood from
/// the LAN), the IPv6 routers, prefixes and addresses at 8/16/16 (`Ipv6Config`), the output
/// queue at 4096 frames (at most 6 MiB of 1514-byte frames, never near full while the
/// driver drains it every turn); the socket buffers are the kernel's. 32 MiB is that worst
/// case with headroom; an unbounded structure fed by a million frames would pass it.
const PEAK_RSS_BOUND_KIB: u64 = 32 * 1024;
/// Most JSON lines tapemu may print from the start of a flood until the checks after it.
const MAX_EVENT_LINES: usize = 100;
/// How much more CPU per frame the ARP flood with a full (1024-entry, evicting) table may
/// cost than with a 16-entry one. The table is ordered and its eviction O(log n): the
/// measured ratio was 1.1–1.6. 4 leaves room for a noisy shared machine and still catches
/// per-frame work that grows several-fold with the table.
const MAX_CPU_RATIO_FULL_VS_SMALL_TABLE: f64 = 4.0;

/// One flood at a time: a flood takes all the CPU it can get.
static FLOODS: Mutex<()> = Mutex::new(());

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// tapemu running with a lease and IPv6 on the vxlan link of a fresh lab.
struct Target {
    // Field order is drop order: tapemu before the lab.
    tapemu: Proc,
    lab: Lab,
    mac: String,
    address: Ipv4Addr,
    link_local: Ipv6Addr,
    global6: Ipv6Addr,
}

fn prerequisites(test: &str) -> Option<PathBuf> {
    if !require_root(test) {
        return None;
    }
    require_bin(test, "tapemu")
}

/// The address of a JSON string `"address/prefix-length"`.
fn ip_of(v: &Value) -> Option<IpAddr> {
    v.as_str()?.split('/').next()?.parse().ok()
}

impl Target {
    fn start(bin: &std::path::Path, mac: &str) -> Target {
        let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
        let bin = bin.to_string_lossy();
        let url = lab.link_url();
        let tapemu = lab
            .phone()
            .spawn(
                "tapemu",
                &[&bin, "run", "--link", &url, "--json", "--mac", mac],
            )
            .expect("spawn tapemu");
        let lease = json_event_where(&tapemu, "a lease", T, |v| v["event"] == "lease");
        let Some(IpAddr::V4(address)) = ip_of(&lease["address"]) else {
            panic!("no address in {lease}");
        };
        let v6 = json_event_where(&tapemu, "a global IPv6 address", T, |v| {
            v["event"] == "ipv6" && v["addresses"].as_array().is_some_and(|a| !a.is_empty())
        });
        let (Some(IpAddr::V6(link_local)), Some(IpAddr::V6(global6))) =
            (ip_of(&v6["link_local"]), ip_of(&v6["addresses"][0]))
        else {
            panic!("bad ipv6 event {v6}");
        };
        let phone = lab.phone();
        wait_until(T, "both addresses on the TUN", || {
            phone.addrs_of("tapemu0").is_ok_and(|a| {
                a.iter().any(|a| a.addr == IpAddr::V4(address))
                    && a.iter().any(|a| a.addr == IpAddr::V6(global6))
            })
        });
        lab.host()
            .wait_ping(address.into(), T)
            .expect("host → phone before the flood");
        Target {
            tapemu,
            lab,
            mac: mac.to_string(),
            address,
            link_local,
            global6,
        }
    }

    fn pid(&self) -> u32 {
        self.tapemu.pid()
    }

    fn json_lines(&self) -> usize {
        self.tapemu.stdout().lines().count()
    }

    /// The neighbour cache of the LAN host flushed, it resolves us again and pings.
    fn still_answers_arp(&self) {
        let host = self.lab.host();
        host.ip(&["neigh", "flush", "dev", HOST_DEV])
            .expect("flush");
        host.wait_ping(self.address.into(), T)
            .expect("host → phone after the flood (ARP for our address answered)");
    }

    /// The same over IPv6 (neighbour solicitation for our global address answered).
    fn still_answers_ndp(&self) {
        let host = self.lab.host();
        host.ip(&["-6", "neigh", "flush", "dev", HOST_DEV])
            .expect("flush");
        host.wait_ping(self.global6.into(), T)
            .expect("host → phone over IPv6 after the flood");
    }
}

/// CPU time (user + system) of a process, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&h| h > 0)?;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// A `VmXXX:` line of `/proc/PID/status`, in KiB.
fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// UDP datagrams read by sockets of `ns`, and those dropped for a full receive buffer
/// (`/proc/net/snmp` `Udp: InDatagrams`, `RcvbufErrors`).
fn udp_counters(ns: &Netns) -> (u64, u64) {
    let snmp = ns
        .run_in(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))
        .expect("enter the namespace")
        .expect("read /proc/net/snmp");
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        panic!("no Udp lines in /proc/net/snmp");
    };
    let get = |key: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    (get("InDatagrams"), get("RcvbufErrors"))
}

/// What one flood did, for the `FLOOD` line.
#[derive(Debug)]
struct FloodReport {
    kind: String,
    sent: u64,
    seconds: f64,
    rate: f64,
    /// Datagrams tapemu read / dropped at its full socket.
    read: u64,
    dropped: u64,
    cpu: Duration,
    /// tapemu's peak RSS before the flood, and at its end.
    rss_before_kib: u64,
    peak_rss_kib: u64,
    /// JSON lines on tapemu's stdout before the flood, and printed since.
    lines_before: usize,
    json_lines: usize,
}

impl FloodReport {
    fn cpu_per_frame_ns(&self) -> f64 {
        self.cpu.as_nanos() as f64 / self.read.max(1) as f64
    }

    fn print(&self, label: &str) {
        // Straight to the stderr fd: libtest captures eprintln!, and these are the figures.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "FLOOD {label}: sent {} frames in {:.1} s ({:.0}/s); tapemu read {} ({} dropped at \
             its socket), {:.0} ns CPU per frame read; peak RSS {} KiB ({} before); {} JSON lines",
            self.sent,
            self.seconds,
            self.rate,
            self.read,
            self.dropped,
            self.cpu_per_frame_ns(),
            self.peak_rss_kib,
            self.rss_before_kib,
            self.json_lines,
        );
    }
}

/// Floods `target` with `kind` frames and watches it; `extra` are more framegen
/// arguments. Asserts the process lives and the RSS bound holds throughout.
fn flood(target: &Target, kind: &str, extra: &[&str]) -> FloodReport {
    let frames = env_or("TAPEMU_FLOOD_FRAMES", FLOOD_FRAMES).to_string();
    let seconds_limit: f64 = env_or("TAPEMU_FLOOD_SECONDS", FLOOD_SECONDS);
    let seconds = seconds_limit.to_string();
    let pid = target.pid();
    let phone = target.lab.phone();
    let lines_before = target.json_lines();
    let (read_before, dropped_before) = udp_counters(phone);
    let cpu_before = cpu_time(pid).expect("tapemu's CPU time");
    let rss_before_kib = vm_kib(pid, "VmHWM:").expect("tapemu's VmHWM");
    let address = target.address.to_string();
    let link_local = target.link_local.to_string();
    let mut argv = vec![
        FRAMEGEN,
        "--iface",
        "vxlan0",
        "--kind",
        kind,
        "--count",
        &frames,
        "--seconds",
        &seconds,
        "--target-mac",
        &target.mac,
        "--target-ip",
        &address,
        "--target-ip6",
        &link_local,
    ];
    argv.extend_from_slice(extra);
    let generator = target.lab.lan().spawn("framegen", &argv).expect("framegen");
    let mut peak_rss_kib = 0;
    let mut watch = |what: &str| {
        assert!(
            target.tapemu.is_running(),
            "tapemu died {what} the {kind} flood: {:?}\n{}",
            target.tapemu.try_status(),
            target.tapemu.stderr()
        );
        if let Some(hwm) = vm_kib(pid, "VmHWM:") {
            peak_rss_kib = peak_rss_kib.max(hwm);
        }
        assert!(
            peak_rss_kib <= PEAK_RSS_BOUND_KIB,
            "tapemu's peak RSS reached {peak_rss_kib} KiB {what} the {kind} flood (bound {PEAK_RSS_BOUND_KIB} KiB)"
        );
    };
    // Bounded by the generator's own time limit, plus its start and exit.
    let bound = Duration::from_secs_f64(seconds_limit) + Duration::from_secs(15);
    let started = Instant::now();
    while generator.is_running() {
        assert!(started.elapsed() < bound, "framegen ran past {bound:?}");
        watch("during");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = generator.try_status().expect("framegen exited");
    assert!(
        status.success(),
        "framegen: {status}: {}",
        generator.stderr()
    );
    // tapemu reads what is still in its socket; wait until it has (bounded).
    let mut last = udp_counters(phone).0;
    let settle_until = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        watch("after");
        let now = udp_counters(phone).0;
        if now == last || Instant::now() > settle_until {
            break;
        }
        last = now;
    }
    let (read_after, dropped_after) = udp_counters(phone);
    let cpu = cpu_time(pid).expect("tapemu's CPU time") - cpu_before;
    let summary: Value = generator
        .stdout()
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("framegen printed no summary: {}", generator.stdout()));
    FloodReport {
        kind: kind.to_string(),
        sent: summary["sent"].as_u64().unwrap_or(0),
        seconds: summary["seconds"].as_f64().unwrap_or(0.0),
        rate: summary["rate"].as_f64().unwrap_or(0.0),
        read: read_after - read_before,
        dropped: dropped_after - dropped_before,
        cpu,
        rss_before_kib,
        peak_rss_kib,
        lines_before,
        json_lines: target.json_lines() - lines_before,
    }
}

/// The checks every flood ends with; the figures are printed first, as `label`, so a
/// failing flood still reports them.
fn check_after(target: &Target, report: &mut FloodReport, ipv6: bool, label: &str) {
    let refresh = |report: &mut FloodReport| {
        if let Some(hwm) = vm_kib(target.pid(), "VmHWM:") {
            report.peak_rss_kib = report.peak_rss_kib.max(hwm);
        }
        // Events queued during the flood may still be printed after it: count until now.
        report.json_lines = target.json_lines() - report.lines_before;
    };
    refresh(report);
    report.print(label);
    assert!(
        report.sent > 0 && report.read > 0,
        "the {} flood reached tapemu: {report:?}",
        report.kind
    );
    target.still_answers_arp();
    if ipv6 {
        target.still_answers_ndp();
    }
    assert!(target.tapemu.is_running(), "tapemu lives after the flood");
    refresh(report);
    let out = target.tapemu.stdout();
    let last: Vec<&str> = out.lines().rev().take(3).collect();
    assert!(
        report.json_lines < MAX_EVENT_LINES,
        "an event storm: {} JSON lines from the start of the {} flood to the end of the \
         checks after it; the last ones:\n{}",
        report.json_lines,
        report.kind,
        last.join("\n")
    );
    assert!(
        report.peak_rss_kib <= PEAK_RSS_BOUND_KIB,
        "peak RSS {} KiB after the {} flood (bound {PEAK_RSS_BOUND_KIB} KiB)",
        report.peak_rss_kib,
        report.kind
    );
}

fn run_flood(test: &str, mac: &str, kind: &str, ipv6: bool) {
    let Some(bin) = prerequisites(test) else {
        return;
    };
    let _serial = FLOODS.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::start(&bin, mac);
    let mut report = flood(&target, kind, &[]);
    check_after(&target, &mut report, ipv6, kind);
}

/// ARP requests for our address and replies to our MAC from spoofed senders: every
/// request is answered and creates a STALE entry, so the table fills to its cap and
/// evicts. First from 16 senders (a 16-entry table), then from 16384 (framegen's pool)
/// (the full, evicting 1024-entry table): the CPU per frame must not grow with the table.
#[test]
fn flood_arp_spoofed_senders() {
    let Some(bin) = prerequisites("flood_arp_spoofed_senders") else {
        return;
    };
    let _serial = FLOODS.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::start(&bin, "02:00:00:00:f1:01");
    let mut small = flood(&target, "arp", &["--senders", "16", "--seed", "2"]);
    check_after(&target, &mut small, false, "arp, 16 senders");
    let mut full = flood(&target, "arp", &[]);
    check_after(&target, &mut full, false, "arp, 16384 senders");
    let ratio = full.cpu_per_frame_ns() / small.cpu_per_frame_ns();
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "FLOOD arp: CPU per frame, full table / 16-entry table = {ratio:.2}"
    );
    assert!(
        ratio < MAX_CPU_RATIO_FULL_VS_SMALL_TABLE,
        "CPU per ARP frame grew {ratio:.2}× from a 16-entry to a full table"
    );
}

/// NS for our link-local address from random sources (each answered, each a STALE
/// entry) and unsolicited NA for random targets (ignored: no entry exists).
#[test]
fn flood_ndp_ns_and_unsolicited_na() {
    run_flood(
        "flood_ndp_ns_and_unsolicited_na",
        "02:00:00:00:f1:02",
        "nd",
        true,
    );
}

/// Router advertisements from 64 routers and the LAN's real one (spoofed), with 256
/// prefixes and router lifetimes that come and go, so the default router itself keeps
/// changing: the router, prefix and address lists are capped, and the consumer must not
/// see an event per advertisement.
#[test]
fn flood_router_advertisements() {
    let Some(bin) = prerequisites("flood_router_advertisements") else {
        return;
    };
    let _serial = FLOODS.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::start(&bin, "02:00:00:00:f1:03");
    let lan = target.lab.lan();
    let router_mac = lan.mac_of(LAN_BRIDGE).expect("the router's MAC");
    let router_ll = lan
        .addrs_of(LAN_BRIDGE)
        .expect("the router's addresses")
        .into_iter()
        .find_map(|a| match a.addr {
            IpAddr::V6(v6) if a.scope == "link" => Some(v6.to_string()),
            _ => None,
        })
        .expect("the router's link-local address");
    let mut report = flood(
        &target,
        "ra",
        &["--ra-router", &router_ll, "--ra-router-mac", &router_mac],
    );
    check_after(&target, &mut report, true, "ra");
}

/// DHCPOFFER/DHCPACK look-alikes with random xids while bound: all dropped, the lease
/// untouched.
#[test]
fn flood_dhcp_offer_ack_lookalikes() {
    let Some(bin) = prerequisites("flood_dhcp_offer_ack_lookalikes") else {
        return;
    };
    let _serial = FLOODS.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::start(&bin, "02:00:00:00:f1:04");
    let mut report = flood(&target, "dhcp", &[]);
    check_after(&target, &mut report, false, "dhcp");
    let out = target.tapemu.stdout();
    let leases = out
        .lines()
        .filter(|l| l.contains("\"event\":\"lease\"") || l.contains("\"event\":\"changed\""))
        .count();
    assert_eq!(leases, 1, "the look-alikes changed the lease:\n{out}");
}

/// Random bytes behind our MAC or broadcast, with IPv4, ARP, IPv6 or random EtherTypes.
#[test]
fn flood_random_garbage() {
    run_flood("flood_random_garbage", "02:00:00:00:f1:05", "garbage", true);
}
