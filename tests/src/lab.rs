//! A network-namespace lab for end-to-end tests.
//!
//! The standard topology ([`Lab`]):
//!
//! ```text
//!  ns host                     ns lan                                   ns phone
//!  eth0 192.0.2.10/24 ─veth─ vhost ┐                                    (system under test)
//!  default via 192.0.2.1           br0 192.0.2.1/24, 2001:db8:1::1/64
//!                                  │   dnsmasq: DHCP .100-.200, RA
//!                                  ├ link port (vxlan0 | vphone | l2p0)
//!  lo 203.0.113.1, 2001:db8:ff::1 (off-link server, reached via the router)
//!                                  up0 198.51.100.1/24 ─────veth───── up0 198.51.100.2/24
//! ```
//!
//! The link between the LAN and the phone is picked by [`LabLink`]. Every namespace is
//! named `tpm-<pid>-<counter>-<role>`, so tests running in parallel (threads of one test
//! binary, or other people's test runs) never collide, and everything is torn down on
//! `Drop`: processes are killed first, then the namespaces are deleted, which destroys
//! every interface in them. Nothing here ever deletes a namespace it did not create.
//!
//! An end-to-end test reads like this (the `tapemu` arguments are illustrative):
//!
//! ```no_run
//! use std::time::Duration;
//! use tapemu_tests::lab::*;
//!
//! # fn main() -> Result<(), LabError> {
//! if !require_root("dhcp_over_vxlan") {
//!     return Ok(());
//! }
//! let Some(tapemu) = require_bin("dhcp_over_vxlan", "tapemu") else { return Ok(()) };
//! let lab = Lab::builder(LabLink::Vxlan)
//!     .lease_time(Duration::from_secs(120))
//!     .build()?;
//! let tapemu = tapemu.to_string_lossy().into_owned();
//! let sut = lab
//!     .phone()
//!     .spawn("tapemu", &[&tapemu, "--link", &lab.link_url(), "--tun", "tun0"])?;
//! sut.wait_stdout_line("lease", Duration::from_secs(15))?;
//! let ack = lab.wait_dnsmasq_log("DHCPACK(br0)", Duration::from_secs(15))?;
//! let mac = ack.split_whitespace().last().unwrap_or_default();
//! let addr = lab.wait_lease_for_mac(mac, Duration::from_secs(5))?;
//! lab.ping_from_host(addr)?;
//! tcp_transfer(lab.phone(), lab.host(), (LAN_HOST, 5001).into(), 1 << 20,
//!              Flow::ClientToServer, Duration::from_secs(10))?;
//! # Ok(())
//! # }
//! ```
//!
//! Only documentation address ranges are used (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32), and only inside the namespaces.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

mod netns;
mod process;
mod servers;
mod standard;
mod traffic;

pub use netns::*;
pub use process::*;
pub use servers::*;
pub use standard::*;
pub use traffic::*;

/// The LAN router and DHCP server, on `br0` in the `lan` namespace.
pub const LAN_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The LAN host, `eth0` in the `host` namespace.
pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Prefix length of the LAN (192.0.2.0/24).
pub const LAN_PREFIX_LEN: u8 = 24;
/// First address of the DHCP pool.
pub const DHCP_POOL_FIRST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// Last address of the DHCP pool.
pub const DHCP_POOL_LAST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
/// The DNS server the DHCP server hands out (nothing answers there).
pub const LAN_DNS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// The domain name and search domain the DHCP server hands out.
pub const LAN_DOMAIN: &str = "lab.example";
/// The LAN router's IPv6 address; it advertises [`LAN_PREFIX6`]/64 for SLAAC.
pub const LAN_ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The IPv6 prefix (/64) advertised on the LAN.
pub const LAN_PREFIX6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
/// An address beyond the router (on `lo` in `lan`): reaching it exercises the
/// off-link path (next hop = the router's MAC) without any forwarding.
pub const OFFLINK_SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// IPv6 counterpart of [`OFFLINK_SERVER`].
pub const OFFLINK_SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
/// The `lan` end of the underlay veth (`up0`); the link servers listen here.
pub const UNDERLAY_LAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The `phone` end of the underlay veth (`up0`).
pub const UNDERLAY_PHONE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// MTU of the underlay veth: big enough that a 1500-byte LAN frame plus VXLAN/UDP/IP
/// encapsulation (50 bytes) fits, so the LAN itself keeps a 1500 MTU everywhere.
pub const UNDERLAY_MTU: u32 = 1600;
/// Name of the underlay veth on both ends.
pub const UNDERLAY_DEV: &str = "up0";
/// Name of the LAN bridge in `lan`.
pub const LAN_BRIDGE: &str = "br0";
/// Name of the host's interface.
pub const HOST_DEV: &str = "eth0";
/// Name of the bridge in `phone` (the [`LabLink::Tap`] variant only).
pub const PHONE_BRIDGE: &str = "brp";
/// The TAP name used by [`Lab::link_url`] for the [`LabLink::Tap`] variant.
pub const DEFAULT_PHONE_TAP: &str = "tap0";
/// VXLAN network identifier of the [`LabLink::Vxlan`] variant.
pub const VXLAN_VNI: u32 = 42;
/// VXLAN UDP port (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// Port `l2peer` listens on in the [`LabLink::Udp`] variant.
pub const L2PEER_UDP_PORT: u16 = 7000;
/// Port `l2peer` listens on in the [`LabLink::Tcp2`] / [`LabLink::Tcp4`] variants.
pub const L2PEER_TCP_PORT: u16 = 7001;
/// Name of `l2peer`'s TAP device (a port of `br0`).
pub const L2PEER_TAP: &str = "l2p0";

/// Default bound for setup steps (a device appearing, a daemon becoming ready).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound for a one-shot command run with [`Netns::run`].
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything that can go wrong in the lab, each with enough context to act on.
///
/// `Debug` prints the same readable message as `Display`, so `.expect()` in a test shows it.
#[derive(thiserror::Error)]
pub enum LabError {
    /// A program could not be started at all (missing binary, bad path).
    #[error("could not start `{cmd}` in {ns}: {source}")]
    Spawn {
        /// The namespace (or "the root namespace").
        ns: String,
        /// The command line.
        cmd: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{cmd}` in {ns} failed ({status}): {}", tail_for_error(.stderr, .stdout))]
    Command {
        /// The namespace.
        ns: String,
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stdout.
        stdout: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Something awaited did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound that expired.
        after: Duration,
    },
    /// A spawned process exited while something was still expected of it.
    #[error("{label} in {ns} exited ({status}) while waiting for {what}; stderr: {stderr}")]
    Exited {
        /// The process label.
        label: String,
        /// The namespace.
        ns: String,
        /// What was awaited.
        what: String,
        /// Its exit status.
        status: ExitStatus,
        /// The tail of its stderr.
        stderr: String,
    },
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Data did not arrive intact.
    #[error("data corrupted: {0}")]
    Corrupt(String),
    /// Anything else (bad configuration, unexpected output).
    #[error("{0}")]
    Setup(String),
}

impl std::fmt::Debug for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn tail_for_error(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    tail_lines(text.trim(), 10)
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Io { context, source }
}

// ---------------------------------------------------------------------------------------
// Skipping

/// Returns whether network-namespace tests can run here (root, `ip netns`, `/dev/net/tun`).
///
/// If they cannot, prints one line `SKIP <test_name>: <reason>` and returns false — unless
/// the environment variable `CI` is `true`, in which case it panics: CI must never skip
/// silently. Call it first in every namespace test: `if !require_root("x") { return; }`.
pub fn require_root(test_name: &str) -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(probe_lab_support);
    match probe {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test_name}: network-namespace test cannot run under CI=true: {reason}");
            }
            // Straight to the stderr fd, not eprintln!: libtest captures the macros, and a
            // skip must be visible in a passing run.
            let _ = writeln!(io::stderr(), "SKIP {test_name}: {reason}");
            false
        }
    }
}

/// Finds the workspace binary `name` (see [`find_bin`]; `$TAPEMU_BIN_<NAME>` overrides,
/// upper case, `-` as `_`). If it is missing, prints `SKIP <test_name>: ...` and returns
/// `None`, or panics under `CI=true`, like [`require_root`].
///
/// Binaries of other packages (the `tapemu` CLI) are not built by
/// `cargo test -p tapemu-tests`: build them first (`cargo build -p tapemu-cli`).
pub fn require_bin(test_name: &str, name: &str) -> Option<PathBuf> {
    let var = format!("TAPEMU_BIN_{}", name.to_ascii_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = find_bin(name) {
        return Some(p);
    }
    let reason = format!(
        "binary {name:?} not found next to the test executable (build it first, or set {var})"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test_name}: {reason}");
    }
    let _ = writeln!(io::stderr(), "SKIP {test_name}: {reason}");
    None
}

/// Finds the system program `name` (in `PATH`, `/usr/sbin` or `/sbin`). If it is
/// missing, prints `SKIP <test_name>: ...` and returns `None`, or panics under `CI=true`,
/// like [`require_root`].
pub fn require_program(test_name: &str, name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_some() {
        return found;
    }
    let reason = format!("program {name:?} is not installed");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test_name}: {reason}");
    }
    let _ = writeln!(io::stderr(), "SKIP {test_name}: {reason}");
    None
}

fn probe_lab_support() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun does not exist".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(format!("`ip -V` failed ({})", o.status)),
        Err(e) => return Err(format!("the `ip` command (iproute2) is not usable: {e}")),
    }
    let ns = Netns::new("probe").map_err(|e| format!("`ip netns` is not usable: {e}"))?;
    drop(ns);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Waiting

/// Polls `f` until it returns `Some`, at most `timeout`; the interval starts at 2 ms and
/// grows to 50 ms. The error names `what`.
pub fn try_wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, LabError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut interval = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(LabError::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// Like [`try_wait_for`], but panics with a message naming `what` on timeout.
pub fn wait_for<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    match try_wait_for(timeout, what, f) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Polls `cond` until it is true, at most `timeout`; panics naming `what` on timeout.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || cond().then_some(()));
}

/// Waits until the file at `path` has a line containing `needle` and returns that line.
/// A missing file counts as empty.
pub fn wait_for_line(path: &Path, needle: &str, timeout: Duration) -> Result<String, LabError> {
    try_wait_for(
        timeout,
        &format!("a line containing {needle:?} in {}", path.display()),
        || find_line(path, needle),
    )
}

fn find_line(path: &Path, needle: &str) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find(|l| l.contains(needle))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dnsmasq_lease_lines() {
        let l = parse_lease_line("1795375637 86:2D:7a:c3:a5:e7 192.0.2.163 * 01:86:2d:7a:c3:a5:e7")
            .expect("valid line");
        assert_eq!(l.mac, "86:2d:7a:c3:a5:e7");
        assert_eq!(l.ip, Ipv4Addr::new(192, 0, 2, 163));
        assert_eq!(l.hostname, None);
        assert_eq!(l.client_id.as_deref(), Some("01:86:2d:7a:c3:a5:e7"));
        assert!(parse_lease_line("duid 00:01").is_none());
    }

    #[test]
    fn parses_ping_summary() {
        let out = "--- 192.0.2.1 ping statistics ---\n3 packets transmitted, 2 received, 33% packet loss, time 402ms\n";
        assert_eq!(
            PingReport::parse(out),
            Some(PingReport {
                transmitted: 3,
                received: 2
            })
        );
    }

    #[test]
    fn pattern_is_position_dependent_and_chunking_independent() {
        let mut whole = vec![0u8; 100];
        pattern_fill(0, &mut whole);
        let mut parts = vec![0u8; 100];
        pattern_fill(0, &mut parts[..37]);
        pattern_fill(37, &mut parts[37..]);
        assert_eq!(whole, parts);
        assert_ne!(whole[..8], whole[8..16]);
    }

    #[test]
    fn wait_for_reports_what_timed_out() {
        let e = try_wait_for(Duration::from_millis(20), "the moon", || None::<()>)
            .expect_err("must time out");
        assert!(e.to_string().contains("the moon"), "{e}");
    }
}
