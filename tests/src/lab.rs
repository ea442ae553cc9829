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

// ---------------------------------------------------------------------------------------
// Commands

/// What a finished command printed, and how it exited.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl CmdOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

fn display_argv(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\'']) {
                format!("{a:?}")
            } else {
                (*a).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn kill_group(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions. The group id is the pid of a
        // child we spawned with process_group(0) and have not reaped yet.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Runs `cmd` to completion with a bound on its run time; kills its process group on
/// timeout.
fn run_command(
    ns: &str,
    mut cmd: Command,
    display: &str,
    timeout: Duration,
) -> Result<CmdOutput, LabError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
        ns: ns.to_string(),
        cmd: display.to_string(),
        source,
    })?;
    let out_reader = child.stdout.take().map(spawn_reader);
    let err_reader = child.stderr.take().map(spawn_reader);
    let waited = try_wait_for(
        timeout,
        &format!("`{display}` in {ns} to exit"),
        || match child.try_wait() {
            Ok(Some(status)) => Some(Ok(status)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        },
    );
    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(io_err(format!("waiting for `{display}` in {ns}"))(e)),
        Err(timeout_err) => {
            kill_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
            return Err(timeout_err);
        }
    };
    let join = |r: Option<thread::JoinHandle<Vec<u8>>>| {
        r.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(CmdOutput {
        status,
        stdout: join(out_reader),
        stderr: join(err_reader),
    })
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

// ---------------------------------------------------------------------------------------
// Network namespaces

static NS_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Serialises `ip netns add/del` within this process: the first `ip netns add` sets up the
/// shared mount of /run/netns, and concurrent first calls race on it.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

const NETNS_DIR: &str = "/run/netns";

/// The name prefix of every namespace this process creates: `tpm-<pid>-`.
pub fn this_process_prefix() -> String {
    format!("tpm-{}-", std::process::id())
}

/// Namespaces (from /run/netns) whose names start with this process's prefix.
pub fn namespaces_of_this_process() -> Vec<String> {
    let prefix = this_process_prefix();
    let mut names: Vec<String> = fs::read_dir(NETNS_DIR)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A network namespace owned by this test: deleted on `Drop`.
///
/// Each has a scratch directory ([`Netns::dir`]) for the files of the processes spawned in
/// it; it is removed when the namespace and every [`Proc`] spawned in it are gone, unless
/// `TAPEMU_LAB_KEEP=1` is set.
#[derive(Debug)]
pub struct Netns {
    name: String,
    role: String,
    dir: Arc<ScratchDir>,
}

/// A scratch directory, removed on drop unless `TAPEMU_LAB_KEEP=1`.
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    fn new(ns_name: &str) -> Result<ScratchDir, LabError> {
        let path = tempfile::Builder::new()
            .prefix(&format!("{ns_name}."))
            .tempdir()
            .map_err(io_err("creating a scratch directory"))?
            .keep();
        let keep = std::env::var("TAPEMU_LAB_KEEP").is_ok_and(|v| v == "1");
        if keep {
            eprintln!("lab: keeping {} (TAPEMU_LAB_KEEP=1)", path.display());
        }
        Ok(ScratchDir { path, keep })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

impl Netns {
    /// Creates `tpm-<pid>-<counter>-<role>` with its loopback up.
    pub fn new(role: &str) -> Result<Netns, LabError> {
        if role.is_empty() || !role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(LabError::Setup(format!(
                "namespace role {role:?} must be non-empty [A-Za-z0-9_]"
            )));
        }
        let mut last_err = None;
        // A stale namespace from an earlier process with the same pid makes `add` fail:
        // skip that name rather than touch it.
        for _ in 0..16 {
            let n = NS_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}{n}-{role}", this_process_prefix());
            let out = {
                let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "add", &name]);
                run_command(
                    "the root namespace",
                    cmd,
                    &format!("ip netns add {name}"),
                    COMMAND_TIMEOUT,
                )?
            };
            if !out.success() {
                let err = LabError::Command {
                    ns: "the root namespace".into(),
                    cmd: format!("ip netns add {name}"),
                    status: out.status,
                    stdout: out.stdout,
                    stderr: out.stderr.clone(),
                };
                if out.stderr.contains("exists") {
                    last_err = Some(err);
                    continue;
                }
                return Err(err);
            }
            let dir = ScratchDir::new(&name)?;
            let ns = Netns {
                name,
                role: role.to_string(),
                dir: Arc::new(dir),
            };
            ns.ip(&["link", "set", "lo", "up"])?;
            return Ok(ns);
        }
        Err(last_err.unwrap_or_else(|| LabError::Setup("could not name a namespace".into())))
    }

    /// The namespace name (`tpm-<pid>-<counter>-<role>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role given to [`Netns::new`].
    pub fn role(&self) -> &str {
        &self.role
    }

    /// This namespace's scratch directory.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// A `Command` that runs `program` inside this namespace (`ip netns exec`), with
    /// `TAPEMU_STATE_DIR` set to [`Netns::dir`] (where `tapemu run` keeps its lease).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        // tapemu keeps its lease files here, not in the machine's /var/lib/tapemu:
        // labs running side by side never see each other's leases.
        cmd.env("TAPEMU_STATE_DIR", self.dir());
        cmd
    }

    /// Runs `argv` in this namespace with the default bound ([`COMMAND_TIMEOUT`]); returns
    /// its output whatever its exit status. Errors only if it cannot start or times out.
    pub fn run(&self, argv: &[&str]) -> Result<CmdOutput, LabError> {
        self.run_timeout(argv, COMMAND_TIMEOUT)
    }

    /// [`Netns::run`] with an explicit bound.
    pub fn run_timeout(&self, argv: &[&str], timeout: Duration) -> Result<CmdOutput, LabError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| LabError::Setup("empty command line".into()))?;
        let mut cmd = self.command(program);
        cmd.args(args);
        run_command(&self.name, cmd, &display_argv(argv), timeout)
    }

    /// Runs `argv` in this namespace and returns its stdout; a non-zero exit is an error
    /// carrying the command line, the status and stderr.
    pub fn run_ok(&self, argv: &[&str]) -> Result<String, LabError> {
        let out = self.run(argv)?;
        self.check(argv, out)
    }

    fn check(&self, argv: &[&str], out: CmdOutput) -> Result<String, LabError> {
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(LabError::Command {
                ns: self.name.clone(),
                cmd: display_argv(argv),
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }

    /// Runs `ip -n NAME ARGS...` (no extra process per namespace) and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, LabError> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        let shown = format!("ip {}", display_argv(args));
        let out = run_command(&self.name, cmd, &shown, COMMAND_TIMEOUT)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(LabError::Command {
                ns: self.name.clone(),
                cmd: shown,
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }

    /// Writes a sysctl of this namespace, e.g. `("net/ipv6/conf/br0/disable_ipv6", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_string();
        self.run_in(move || fs::write(&path, value).map_err(io_err(format!("writing {path}"))))?
    }

    /// Spawns a long-running `argv` in this namespace, in its own process group.
    ///
    /// Stdout and stderr go to files in [`Netns::dir`] (see [`Proc::stdout`]). The process
    /// group is killed when the returned [`Proc`] is dropped.
    pub fn spawn(&self, label: &str, argv: &[&str]) -> Result<Proc, LabError> {
        static PROC_COUNTER: AtomicU64 = AtomicU64::new(0);
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| LabError::Setup("empty command line".into()))?;
        let n = PROC_COUNTER.fetch_add(1, Ordering::Relaxed);
        let stdout_path = self.dir().join(format!("{label}.{n}.stdout"));
        let stderr_path = self.dir().join(format!("{label}.{n}.stderr"));
        let create =
            |p: &Path| fs::File::create(p).map_err(io_err(format!("creating {}", p.display())));
        let mut cmd = self.command(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(create(&stdout_path)?)
            .stderr(create(&stderr_path)?)
            .process_group(0);
        let cmdline = display_argv(argv);
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            ns: self.name.clone(),
            cmd: cmdline.clone(),
            source,
        })?;
        Ok(Proc {
            label: label.to_string(),
            ns: self.name.clone(),
            cmdline,
            child: Mutex::new(child),
            stdout_path,
            stderr_path,
            _dir: Arc::clone(&self.dir),
        })
    }

    /// Runs `f` on a fresh thread that has entered this namespace, and returns its result.
    /// Sockets created inside `f` belong to this namespace for their whole life, whatever
    /// thread or runtime uses them afterwards (e.g. `tokio::net::UdpSocket::from_std`).
    pub fn run_in<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> Result<T, LabError> {
        let path = self.netns_path();
        thread::scope(|s| {
            let handle = s.spawn(move || -> Result<T, LabError> {
                enter_netns(&path)?;
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Spawns a detached thread inside this namespace (for a server that must run while the
    /// test does something else).
    pub fn spawn_thread<T, F>(&self, f: F) -> thread::JoinHandle<Result<T, LabError>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = self.netns_path();
        thread::spawn(move || {
            enter_netns(&path)?;
            Ok(f())
        })
    }

    fn netns_path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Connects a TCP socket from inside this namespace.
    pub fn tcp_connect(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, LabError> {
        self.run_in(|| TcpStream::connect_timeout(&addr, timeout))?
            .map_err(io_err(format!("connecting to {addr} from {}", self.name)))
    }

    /// Binds a TCP listener inside this namespace.
    pub fn tcp_listen(&self, addr: SocketAddr) -> Result<TcpListener, LabError> {
        self.run_in(|| TcpListener::bind(addr))?
            .map_err(io_err(format!("binding TCP {addr} in {}", self.name)))
    }

    /// Binds a UDP socket inside this namespace.
    pub fn udp_bind(&self, addr: SocketAddr) -> Result<UdpSocket, LabError> {
        self.run_in(|| UdpSocket::bind(addr))?
            .map_err(io_err(format!("binding UDP {addr} in {}", self.name)))
    }

    /// Waits until a TCP connection to `addr` from this namespace succeeds (the probe
    /// connection is closed at once).
    pub fn wait_tcp_port(&self, addr: SocketAddr, timeout: Duration) -> Result<(), LabError> {
        let what = format!("TCP {addr} to accept connections from {}", self.name);
        let deadline = Instant::now() + timeout;
        self.run_in(|| {
            try_wait_for(timeout, &what, || {
                let left = deadline.saturating_duration_since(Instant::now());
                let attempt = left
                    .min(Duration::from_millis(500))
                    .max(Duration::from_millis(1));
                TcpStream::connect_timeout(&addr, attempt).ok().map(drop)
            })
        })?
    }

    /// Whether the network device `dev` exists in this namespace.
    pub fn has_link(&self, dev: &str) -> bool {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name, "link", "show", "dev", dev]);
        matches!(run_command(&self.name, cmd, "ip link show", COMMAND_TIMEOUT), Ok(o) if o.success())
    }

    /// Waits until the network device `dev` exists in this namespace.
    pub fn wait_link(&self, dev: &str, timeout: Duration) -> Result<(), LabError> {
        try_wait_for(
            timeout,
            &format!("device {dev} to appear in {}", self.name),
            || self.has_link(dev).then_some(()),
        )
    }

    /// The MAC address of `dev`, lower case `aa:bb:cc:dd:ee:ff`.
    pub fn mac_of(&self, dev: &str) -> Result<String, LabError> {
        let json = self.ip(&["-j", "link", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| LabError::Setup(format!("parsing `ip -j link show {dev}`: {e}")))?;
        v.get(0)
            .and_then(|l| l.get("address"))
            .and_then(|a| a.as_str())
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| LabError::Setup(format!("{dev} in {} has no MAC address", self.name)))
    }

    /// The addresses on `dev` (all families and scopes), from `ip -j addr`.
    pub fn addrs_of(&self, dev: &str) -> Result<Vec<IfAddr>, LabError> {
        let json = self.ip(&["-j", "addr", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| LabError::Setup(format!("parsing `ip -j addr show {dev}`: {e}")))?;
        let infos = v
            .get(0)
            .and_then(|l| l.get("addr_info"))
            .and_then(|a| a.as_array())
            .cloned()
            .unwrap_or_default();
        Ok(infos
            .iter()
            .filter_map(|i| {
                let addr: IpAddr = i.get("local")?.as_str()?.parse().ok()?;
                let prefix_len = u8::try_from(i.get("prefixlen")?.as_u64()?).ok()?;
                let scope = i
                    .get("scope")
                    .and_then(|s| s.as_str())
                    .unwrap_or("")
                    .to_string();
                let tentative = i
                    .get("tentative")
                    .and_then(|t| t.as_bool())
                    .unwrap_or(false);
                Some(IfAddr {
                    addr,
                    prefix_len,
                    scope,
                    tentative,
                })
            })
            .collect())
    }

    /// Waits for a global, non-tentative IPv6 address in `prefix`/64 on `dev` (SLAAC).
    pub fn wait_ipv6_in(
        &self,
        dev: &str,
        prefix: Ipv6Addr,
        timeout: Duration,
    ) -> Result<Ipv6Addr, LabError> {
        let p = prefix.segments();
        try_wait_for(
            timeout,
            &format!("a {prefix}/64 address on {dev} in {}", self.name),
            || {
                self.addrs_of(dev)
                    .ok()?
                    .into_iter()
                    .find_map(|a| match a.addr {
                        IpAddr::V6(v6) if !a.tentative && v6.segments()[..4] == p[..4] => Some(v6),
                        _ => None,
                    })
            },
        )
    }

    /// Sends `count` pings (0.2 s apart, 2 s reply timeout) to `addr`. Succeeds if at least
    /// one reply came back; the report says how many.
    pub fn ping(&self, addr: IpAddr, count: u32) -> Result<PingReport, LabError> {
        let count = count.max(1);
        let deadline = count / 5 + 3;
        let (c, w) = (count.to_string(), deadline.to_string());
        let a = addr.to_string();
        let argv = [
            "ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "2", "-w", &w, &a,
        ];
        let out = self.run_timeout(&argv, Duration::from_secs(u64::from(deadline) + 10))?;
        let report = PingReport::parse(&out.stdout);
        match report {
            Some(r) if r.received > 0 => Ok(r),
            _ => Err(LabError::Command {
                ns: self.name.clone(),
                cmd: display_argv(&argv),
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
            }),
        }
    }

    /// Pings `addr` once per attempt until a reply comes back, at most `timeout`.
    pub fn wait_ping(&self, addr: IpAddr, timeout: Duration) -> Result<(), LabError> {
        let a = addr.to_string();
        try_wait_for(
            timeout,
            &format!("{a} to answer ping from {}", self.name),
            || {
                self.run_timeout(
                    &["ping", "-n", "-q", "-c", "1", "-W", "1", &a],
                    Duration::from_secs(5),
                )
                .ok()
                .filter(CmdOutput::success)
                .map(drop)
            },
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "del", &self.name]);
        match run_command("the root namespace", cmd, "ip netns del", COMMAND_TIMEOUT) {
            Ok(o) if o.success() => {}
            Ok(o) => eprintln!(
                "lab: ip netns del {} failed: {}",
                self.name,
                o.stderr.trim()
            ),
            Err(e) => eprintln!("lab: ip netns del {} failed: {e}", self.name),
        }
    }
}

fn enter_netns(path: &Path) -> Result<(), LabError> {
    let f = fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    // SAFETY: setns with a valid namespace fd only changes the calling thread's network
    // namespace; it has no memory-safety preconditions.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io_err(format!("setns({})", path.display()))(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// One address of an interface, from `ip -j addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `global`, `link`, `host`, ...
    pub scope: String,
    /// IPv6 duplicate address detection has not finished.
    pub tentative: bool,
}

/// The summary line of a ping run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingReport {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

impl PingReport {
    fn parse(stdout: &str) -> Option<PingReport> {
        let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
        let mut nums = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<u32>().ok());
        Some(PingReport {
            transmitted: nums.next()?,
            received: nums.next()?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// A long-running process spawned in a namespace with [`Netns::spawn`].
///
/// On `Drop` its process group gets SIGTERM, then SIGKILL after 3 s. If the thread is
/// panicking (a failing test), the tails of its stdout and stderr are printed first, so the
/// test output shows what the process said.
#[derive(Debug)]
pub struct Proc {
    label: String,
    ns: String,
    cmdline: String,
    child: Mutex<Child>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _dir: Arc<ScratchDir>,
}

impl Proc {
    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.lock().id()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Path of the file its stdout goes to.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// Path of the file its stderr goes to.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// Everything it has written to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// Everything it has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Its exit status, if it has exited.
    pub fn try_status(&self) -> Option<ExitStatus> {
        self.lock().try_wait().ok().flatten()
    }

    /// Whether it is still running.
    pub fn is_running(&self) -> bool {
        self.try_status().is_none()
    }

    /// Waits until its stdout has a line containing `needle`; fails early, with its stderr,
    /// if it exits first.
    pub fn wait_stdout_line(&self, needle: &str, timeout: Duration) -> Result<String, LabError> {
        self.wait_line(&self.stdout_path, "stdout", needle, timeout)
    }

    /// Waits until its stderr has a line containing `needle`; fails early if it exits.
    pub fn wait_stderr_line(&self, needle: &str, timeout: Duration) -> Result<String, LabError> {
        self.wait_line(&self.stderr_path, "stderr", needle, timeout)
    }

    /// Waits until a file it writes (e.g. a log file) has a line containing `needle`;
    /// fails early if it exits.
    pub fn wait_file_line(
        &self,
        path: &Path,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, LabError> {
        self.wait_line(path, &path.display().to_string(), needle, timeout)
    }

    fn wait_line(
        &self,
        path: &Path,
        stream: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, LabError> {
        let what = format!(
            "{} to print a line containing {needle:?} on {stream}",
            self.label
        );
        let r = try_wait_for(timeout, &what, || {
            if let Some(line) = find_line(path, needle) {
                return Some(Ok(line));
            }
            self.try_status().map(Err)
        })?;
        r.or_else(|status| {
            // It may have printed the line just before exiting.
            find_line(path, needle).ok_or_else(|| LabError::Exited {
                label: self.label.clone(),
                ns: self.ns.clone(),
                what,
                status,
                stderr: tail_lines(self.stderr().trim(), 10),
            })
        })
    }

    /// Sends `signal` to its process group.
    pub fn signal(&self, signal: libc::c_int) {
        let mut child = self.lock();
        // Never signal a reaped child: its pid may belong to someone else by now.
        if let Ok(None) = child.try_wait() {
            kill_group(child.id(), signal);
        }
    }

    /// Waits for it to exit on its own, at most `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, LabError> {
        try_wait_for(timeout, &format!("{} to exit", self.label), || {
            self.try_status()
        })
    }

    /// Stops it: SIGTERM to the process group, SIGKILL after 3 s; returns the exit status.
    pub fn stop(&self) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        if let Ok(s) = self.wait_exit(Duration::from_secs(3)) {
            return Some(s);
        }
        self.signal(libc::SIGKILL);
        self.lock().wait().ok()
    }

    fn dump_on_panic(&self) {
        if !thread::panicking() {
            return;
        }
        eprintln!("---- {} in {}: `{}`", self.label, self.ns, self.cmdline);
        for (name, path) in [("stdout", &self.stdout_path), ("stderr", &self.stderr_path)] {
            let text = read_lossy(path);
            if !text.trim().is_empty() {
                eprintln!(
                    "-- {name} (last 30 lines):\n{}",
                    tail_lines(text.trim_end(), 30)
                );
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let status = self.stop();
        self.dump_on_panic();
        if thread::panicking() {
            if let Some(s) = status {
                let how = s
                    .signal()
                    .map(|n| format!("signal {n}"))
                    .unwrap_or_else(|| s.to_string());
                eprintln!("-- {} ended: {how}", self.label);
            }
        }
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The standard lab

/// How the phone reaches the LAN in a [`Lab`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabLink {
    /// Kernel `vxlan0` (VNI 42, 198.51.100.1 ↔ 198.51.100.2, port 4789) in `br0`.
    Vxlan,
    /// `phone` has a bridge `brp` with a veth into `br0`; the system under test creates a
    /// TAP in `phone` and [`Lab::enslave_to_phone_bridge`] adds it to `brp`.
    Tap,
    /// `l2peer --udp 198.51.100.1:7000` in `lan`, its TAP in `br0`.
    Udp,
    /// `l2peer --tcp 198.51.100.1:7001 --len 2` in `lan`, its TAP in `br0`.
    Tcp2,
    /// `l2peer --tcp 198.51.100.1:7001 --len 4` in `lan`, its TAP in `br0`.
    Tcp4,
}

impl LabLink {
    /// The short name also used by `scripts/lab.sh` (`vxlan`, `tap`, `udp`, `tcp2`, `tcp4`).
    pub fn name(self) -> &'static str {
        match self {
            LabLink::Vxlan => "vxlan",
            LabLink::Tap => "tap",
            LabLink::Udp => "udp",
            LabLink::Tcp2 => "tcp2",
            LabLink::Tcp4 => "tcp4",
        }
    }
}

/// One line of dnsmasq's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Expiry, seconds since the epoch.
    pub expires: u64,
    /// Client MAC, lower case.
    pub mac: String,
    /// Leased address.
    pub ip: Ipv4Addr,
    /// Host name the client sent, if any.
    pub hostname: Option<String>,
    /// Client identifier, if any.
    pub client_id: Option<String>,
}

/// Builds a [`Lab`]; see [`Lab::builder`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    link: LabLink,
    lease_time: Duration,
    mtu: u16,
    ping_check: bool,
    dnsmasq_args: Vec<String>,
    l2peer: Option<PathBuf>,
}

impl LabBuilder {
    /// DHCP lease time (default 1 h). dnsmasq's minimum is 2 minutes; 120 s gives T1 at
    /// 60 s, short enough for a test to see a real renewal.
    pub fn lease_time(mut self, lease_time: Duration) -> Self {
        self.lease_time = lease_time;
        self
    }

    /// The interface MTU handed out by DHCP (option 26, default 1500).
    pub fn mtu(mut self, mtu: u16) -> Self {
        self.mtu = mtu;
        self
    }

    /// Whether dnsmasq pings an address before offering it, as a deployed dnsmasq does
    /// (default off: the check delays every first OFFER by ~3 s). Turn it on to test that
    /// a client with no address yet stays silent to the probe (ARP for the offered address).
    pub fn dhcp_ping_check(mut self, on: bool) -> Self {
        self.ping_check = on;
        self
    }

    /// An extra dnsmasq argument, e.g. `--dhcp-host=02:00:00:00:00:01,192.0.2.150`.
    pub fn dnsmasq_arg(mut self, arg: impl Into<String>) -> Self {
        self.dnsmasq_args.push(arg.into());
        self
    }

    /// Path of the `l2peer` binary (needed by the udp/tcp links). Integration tests of this
    /// crate pass `env!("CARGO_BIN_EXE_l2peer")`; otherwise `$TAPEMU_L2PEER` or a binary
    /// next to the test executable is used.
    pub fn l2peer_bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.l2peer = Some(path.into());
        self
    }

    /// Creates the namespaces and links and starts dnsmasq (and `l2peer`), waiting until
    /// they are ready. On error everything created so far is torn down.
    pub fn build(self) -> Result<Lab, LabError> {
        if self.lease_time < Duration::from_secs(120) {
            return Err(LabError::Setup(format!(
                "lease time {:?} is below dnsmasq's 2-minute minimum",
                self.lease_time
            )));
        }
        let l2peer_bin = match self.link {
            LabLink::Udp | LabLink::Tcp2 | LabLink::Tcp4 => Some(self.find_l2peer()?),
            LabLink::Vxlan | LabLink::Tap => None,
        };

        let lan = Netns::new("lan")?;
        let host = Netns::new("host")?;
        let phone = Netns::new("phone")?;

        // lan: the bridge, the router's addresses, the off-link server. No forwarding.
        // DAD is off in lan only, so the router is ready at once; hosts keep it.
        lan.sysctl("net/ipv6/conf/all/accept_dad", "0")?;
        lan.sysctl("net/ipv6/conf/default/accept_dad", "0")?;
        // Multicast snooping off: a bridge that learned a group from one MLD report stops
        // flooding it, which makes IPv6 tests depend on MLD timing.
        lan.ip(&[
            "link",
            "add",
            LAN_BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        lan.ip(&[
            "addr",
            "add",
            &format!("{LAN_ROUTER}/{LAN_PREFIX_LEN}"),
            "dev",
            LAN_BRIDGE,
        ])?;
        lan.ip(&[
            "addr",
            "add",
            &format!("{LAN_ROUTER6}/64"),
            "dev",
            LAN_BRIDGE,
            "nodad",
        ])?;
        lan.ip(&["link", "set", LAN_BRIDGE, "up"])?;
        lan.ip(&["addr", "add", &format!("{OFFLINK_SERVER}/32"), "dev", "lo"])?;
        lan.ip(&[
            "addr",
            "add",
            &format!("{OFFLINK_SERVER6}/128"),
            "dev",
            "lo",
        ])?;

        // host: a veth into br0.
        lan.ip(&[
            "link",
            "add",
            "vhost",
            "type",
            "veth",
            "peer",
            "name",
            HOST_DEV,
            "netns",
            host.name(),
        ])?;
        add_bridge_port(&lan, "vhost", LAN_BRIDGE)?;
        host.ip(&[
            "addr",
            "add",
            &format!("{LAN_HOST}/{LAN_PREFIX_LEN}"),
            "dev",
            HOST_DEV,
        ])?;
        host.ip(&["link", "set", HOST_DEV, "up"])?;
        host.ip(&["route", "add", "default", "via", &LAN_ROUTER.to_string()])?;

        // phone: the underlay.
        let mtu = UNDERLAY_MTU.to_string();
        lan.ip(&[
            "link",
            "add",
            UNDERLAY_DEV,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY_DEV,
            "netns",
            phone.name(),
        ])?;
        lan.ip(&[
            "addr",
            "add",
            &format!("{UNDERLAY_LAN}/24"),
            "dev",
            UNDERLAY_DEV,
        ])?;
        lan.ip(&["link", "set", UNDERLAY_DEV, "up"])?;
        phone.ip(&["link", "set", UNDERLAY_DEV, "mtu", &mtu])?;
        phone.ip(&[
            "addr",
            "add",
            &format!("{UNDERLAY_PHONE}/24"),
            "dev",
            UNDERLAY_DEV,
        ])?;
        phone.ip(&["link", "set", UNDERLAY_DEV, "up"])?;
        // veth passes CHECKSUM_PARTIAL packets on unfinished, so a VXLAN datagram that
        // kernel vxlan0 encapsulated would reach a user-space receiver in phone (tapemu, the
        // relay) with the inner TCP/UDP checksum not yet computed, and the phone's kernel
        // would drop it after the TUN/TAP write. With TX checksum offload off on the
        // underlay, checksums are final before they cross it, as on a real wire.
        for ns in [&lan, &phone] {
            ns.run_ok(&["ethtool", "-K", UNDERLAY_DEV, "tx", "off"])
                .map_err(|e| {
                    LabError::Setup(format!(
                        "turning off checksum offload on the underlay (is ethtool installed?): {e}"
                    ))
                })?;
        }

        match self.link {
            LabLink::Vxlan => {
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
                    "remote",
                    &UNDERLAY_PHONE.to_string(),
                    "dstport",
                    &VXLAN_PORT.to_string(),
                    "dev",
                    UNDERLAY_DEV,
                ])?;
                lan.ip(&["link", "set", "vxlan0", "mtu", "1500"])?;
                add_bridge_port(&lan, "vxlan0", LAN_BRIDGE)?;
            }
            LabLink::Tap => {
                phone.ip(&[
                    "link",
                    "add",
                    PHONE_BRIDGE,
                    "type",
                    "bridge",
                    "forward_delay",
                    "0",
                    "mcast_snooping",
                    "0",
                ])?;
                // The phone's bridge is a switch, not an interface of the phone.
                phone.sysctl(&format!("net/ipv6/conf/{PHONE_BRIDGE}/disable_ipv6"), "1")?;
                // Nor does it answer ARP: with the phone's weak host model it would claim
                // the system under test's address with the bridge's own MAC.
                phone.ip(&["link", "set", PHONE_BRIDGE, "arp", "off"])?;
                phone.ip(&["link", "set", PHONE_BRIDGE, "up"])?;
                lan.ip(&[
                    "link",
                    "add",
                    "vphone",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "lanp",
                    "netns",
                    phone.name(),
                ])?;
                add_bridge_port(&lan, "vphone", LAN_BRIDGE)?;
                add_bridge_port(&phone, "lanp", PHONE_BRIDGE)?;
            }
            LabLink::Udp | LabLink::Tcp2 | LabLink::Tcp4 => {}
        }

        let dnsmasq = self.start_dnsmasq(&lan)?;
        let dnsmasq_options = self.dnsmasq_options(&lan);

        let l2peer = match (self.link, l2peer_bin) {
            (LabLink::Udp | LabLink::Tcp2 | LabLink::Tcp4, Some(bin)) => {
                let bin = bin.to_string_lossy().into_owned();
                let (mode, port, len) = match self.link {
                    LabLink::Udp => ("--udp", L2PEER_UDP_PORT, None),
                    LabLink::Tcp2 => ("--tcp", L2PEER_TCP_PORT, Some("2")),
                    _ => ("--tcp", L2PEER_TCP_PORT, Some("4")),
                };
                let listen = SocketAddr::from((UNDERLAY_LAN, port)).to_string();
                let mut argv = vec![
                    bin.as_str(),
                    "--tap",
                    L2PEER_TAP,
                    mode,
                    &listen,
                    "--master",
                    LAN_BRIDGE,
                ];
                if let Some(len) = len {
                    argv.extend(["--len", len]);
                }
                let p = lan.spawn("l2peer", &argv)?;
                p.wait_stdout_line("ready", SETUP_TIMEOUT)?;
                Some(p)
            }
            _ => None,
        };

        Ok(Lab {
            l2peer,
            dnsmasq,
            dnsmasq_options,
            link: self.link,
            lease_time: self.lease_time,
            phone,
            host,
            lan,
        })
    }

    fn find_l2peer(&self) -> Result<PathBuf, LabError> {
        if let Some(p) = &self.l2peer {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os("TAPEMU_L2PEER") {
            return Ok(PathBuf::from(p));
        }
        find_bin("l2peer").ok_or_else(|| {
            LabError::Setup(
                "l2peer binary not found: build it (`cargo build -p tapemu-tests --bins`), set \
                 TAPEMU_L2PEER, or pass LabBuilder::l2peer_bin(env!(\"CARGO_BIN_EXE_l2peer\"))"
                    .into(),
            )
        })
    }

    /// The lab's DHCP server settings: the standard pool and options, this builder's
    /// lease time, MTU, ping check and extra arguments, files in `lan`'s directory.
    fn dnsmasq_options(&self, lan: &Netns) -> DnsmasqOptions {
        DnsmasqOptions {
            lease_time: self.lease_time,
            mtu: self.mtu,
            ping_check: self.ping_check,
            extra_args: self.dnsmasq_args.clone(),
            ..DnsmasqOptions::standard(lan.dir())
        }
    }

    fn start_dnsmasq(&self, lan: &Netns) -> Result<Proc, LabError> {
        spawn_dnsmasq(lan, &self.dnsmasq_options(lan))
    }
}

/// Makes `dev` in `ns` a port of `bridge` and brings it up.
pub fn add_bridge_port(ns: &Netns, dev: &str, bridge: &str) -> Result<(), LabError> {
    // A bridge port is not an interface of its own: no link-local address, no RS/DAD noise.
    ns.sysctl(&format!("net/ipv6/conf/{dev}/disable_ipv6"), "1")?;
    ns.ip(&["link", "set", dev, "master", bridge, "up"])?;
    Ok(())
}

/// Finds a binary of this workspace built into the same target directory as the running
/// test executable (`target/<profile>/NAME`, the test being in `target/<profile>/deps/`).
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    for _ in 0..2 {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = dir.parent()?;
    }
    None
}

/// The standard three-namespace lab (see the module docs). Dropping it kills dnsmasq and
/// `l2peer` and deletes the namespaces.
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: processes first, then namespaces.
    l2peer: Option<Proc>,
    dnsmasq: Proc,
    dnsmasq_options: DnsmasqOptions,
    link: LabLink,
    lease_time: Duration,
    phone: Netns,
    host: Netns,
    lan: Netns,
}

impl Lab {
    /// A builder for a lab with the given link variant.
    pub fn builder(link: LabLink) -> LabBuilder {
        LabBuilder {
            link,
            lease_time: Duration::from_secs(3600),
            mtu: 1500,
            ping_check: false,
            dnsmasq_args: Vec::new(),
            l2peer: None,
        }
    }

    /// The LAN namespace (bridge, router, DHCP server, link server).
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// The LAN host namespace.
    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// The phone namespace, where the system under test runs.
    pub fn phone(&self) -> &Netns {
        &self.phone
    }

    /// The link variant.
    pub fn link(&self) -> LabLink {
        self.link
    }

    /// The DHCP lease time dnsmasq hands out.
    pub fn lease_time(&self) -> Duration {
        self.lease_time
    }

    /// The link URL for tapemu in `phone`: `vxlan://198.51.100.1:4789?vni=42`,
    /// `udp://198.51.100.1:7000`, `tcp://198.51.100.1:7001?len=2|4` or `tap://tap0`.
    pub fn link_url(&self) -> String {
        match self.link {
            LabLink::Vxlan => format!("vxlan://{UNDERLAY_LAN}:{VXLAN_PORT}?vni={VXLAN_VNI}"),
            LabLink::Tap => format!("tap://{DEFAULT_PHONE_TAP}"),
            LabLink::Udp => format!("udp://{UNDERLAY_LAN}:{L2PEER_UDP_PORT}"),
            LabLink::Tcp2 => format!("tcp://{UNDERLAY_LAN}:{L2PEER_TCP_PORT}?len=2"),
            LabLink::Tcp4 => format!("tcp://{UNDERLAY_LAN}:{L2PEER_TCP_PORT}?len=4"),
        }
    }

    /// [`LabLink::Tap`] only: waits until `dev` exists in `phone`, then adds it to the
    /// phone bridge (IPv6 off on it, as on any bridge port) and sets it up.
    pub fn enslave_to_phone_bridge(&self, dev: &str, timeout: Duration) -> Result<(), LabError> {
        if self.link != LabLink::Tap {
            return Err(LabError::Setup(format!(
                "enslave_to_phone_bridge needs the tap link, this lab has {}",
                self.link.name()
            )));
        }
        self.phone.wait_link(dev, timeout)?;
        add_bridge_port(&self.phone, dev, PHONE_BRIDGE)
    }

    /// The dnsmasq process.
    pub fn dnsmasq(&self) -> &Proc {
        &self.dnsmasq
    }

    /// The `l2peer` process (udp/tcp links only).
    pub fn l2peer(&self) -> Option<&Proc> {
        self.l2peer.as_ref()
    }

    /// Path of dnsmasq's log (`--log-dhcp` output).
    pub fn dnsmasq_log_path(&self) -> PathBuf {
        self.lan.dir().join("dnsmasq.log")
    }

    /// dnsmasq's log so far.
    pub fn dnsmasq_log(&self) -> String {
        read_lossy(&self.dnsmasq_log_path())
    }

    /// Waits until dnsmasq logs a line containing `needle` (e.g. `"DHCPACK(br0)"`).
    pub fn wait_dnsmasq_log(&self, needle: &str, timeout: Duration) -> Result<String, LabError> {
        self.dnsmasq
            .wait_file_line(&self.dnsmasq_log_path(), needle, timeout)
    }

    /// Path of dnsmasq's lease file.
    pub fn lease_file_path(&self) -> PathBuf {
        self.lan.dir().join("dnsmasq.leases")
    }

    /// The current leases (dnsmasq rewrites the file on every change).
    pub fn leases(&self) -> Vec<Lease> {
        read_lossy(&self.lease_file_path())
            .lines()
            .filter_map(parse_lease_line)
            .collect()
    }

    /// The address leased to `mac` (any case, `:`-separated), if any.
    pub fn lease_for_mac(&self, mac: &str) -> Option<Ipv4Addr> {
        let mac = mac.to_ascii_lowercase();
        self.leases()
            .into_iter()
            .find(|l| l.mac == mac)
            .map(|l| l.ip)
    }

    /// Waits until `mac` holds a lease, and returns the address.
    pub fn wait_lease_for_mac(&self, mac: &str, timeout: Duration) -> Result<Ipv4Addr, LabError> {
        try_wait_for(timeout, &format!("a DHCP lease for {mac}"), || {
            self.lease_for_mac(mac)
        })
    }

    /// Pings `addr` from the LAN host (3 pings; at least one reply must come back).
    pub fn ping_from_host(&self, addr: impl Into<IpAddr>) -> Result<PingReport, LabError> {
        self.host.ping(addr.into(), 3)
    }

    /// Pings `addr` from the phone (3 pings; at least one reply must come back).
    pub fn ping_from_phone(&self, addr: impl Into<IpAddr>) -> Result<PingReport, LabError> {
        self.phone.ping(addr.into(), 3)
    }

    /// The host's SLAAC address in [`LAN_PREFIX6`], once it has one.
    pub fn host_ipv6(&self, timeout: Duration) -> Result<Ipv6Addr, LabError> {
        self.host.wait_ipv6_in(HOST_DEV, LAN_PREFIX6, timeout)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.dnsmasq_log();
            eprintln!(
                "---- dnsmasq log (last 40 lines):\n{}",
                tail_lines(log.trim_end(), 40)
            );
            let leases = read_lossy(&self.lease_file_path());
            eprintln!("---- dnsmasq leases:\n{}", leases.trim_end());
        }
    }
}

fn parse_lease_line(line: &str) -> Option<Lease> {
    let mut f = line.split_whitespace();
    let expires = f.next()?.parse().ok()?;
    let mac = f.next()?.to_ascii_lowercase();
    let ip = f.next()?.parse().ok()?;
    let opt = |s: Option<&str>| s.filter(|s| *s != "*").map(str::to_string);
    Some(Lease {
        expires,
        mac,
        ip,
        hostname: opt(f.next()),
        client_id: opt(f.next()),
    })
}

// ---------------------------------------------------------------------------------------
// More DHCP servers and LAN hosts

/// How a dnsmasq DHCP server is started by [`spawn_dnsmasq`]. [`DnsmasqOptions::standard`]
/// is the lab's own server; [`Lab::dnsmasq_options`] is the running lab's, to restart it
/// changed (another pool, another lease time) or to start a second server elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqOptions {
    /// The interface it serves (and binds).
    pub interface: String,
    /// First and last address of the pool.
    pub pool: (Ipv4Addr, Ipv4Addr),
    /// Lease time (dnsmasq's minimum is 2 minutes).
    pub lease_time: Duration,
    /// The router handed out (option 3).
    pub router: Ipv4Addr,
    /// The interface MTU handed out (option 26).
    pub mtu: u16,
    /// Ping an address before offering it.
    pub ping_check: bool,
    /// `--dhcp-authoritative`: NAK requests for addresses it does not know.
    pub authoritative: bool,
    /// Send router advertisements for [`LAN_PREFIX6`].
    pub router_advertisements: bool,
    /// More arguments, appended last.
    pub extra_args: Vec<String>,
    /// Where its log (`<stem>.log`), lease file (`<stem>.leases`) and pid file go.
    pub dir: PathBuf,
    /// The file name stem of those files.
    pub stem: String,
}

impl DnsmasqOptions {
    /// The lab's standard server: `br0`, the pool [`DHCP_POOL_FIRST`]–[`DHCP_POOL_LAST`],
    /// 1 h leases, router [`LAN_ROUTER`], MTU 1500, no ping check, authoritative, router
    /// advertisements, files `dnsmasq.*` in `dir`.
    pub fn standard(dir: &Path) -> DnsmasqOptions {
        DnsmasqOptions {
            interface: LAN_BRIDGE.to_string(),
            pool: (DHCP_POOL_FIRST, DHCP_POOL_LAST),
            lease_time: Duration::from_secs(3600),
            router: LAN_ROUTER,
            mtu: 1500,
            ping_check: false,
            authoritative: true,
            router_advertisements: true,
            extra_args: Vec::new(),
            dir: dir.to_path_buf(),
            stem: "dnsmasq".to_string(),
        }
    }

    /// Path of its `--log-dhcp` log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.stem))
    }

    /// Path of its lease file.
    pub fn lease_file_path(&self) -> PathBuf {
        self.dir.join(format!("{}.leases", self.stem))
    }

    fn argv(&self) -> Vec<String> {
        let (first, last) = self.pool;
        let path = |ext: &str| {
            self.dir
                .join(format!("{}.{ext}", self.stem))
                .to_string_lossy()
                .into_owned()
        };
        let mut args: Vec<String> = vec![
            "dnsmasq".into(),
            "-k".into(),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--port=0".into(),
            "--user=root".into(),
            format!("--interface={}", self.interface),
            "--bind-interfaces".into(),
            format!(
                "--dhcp-range={first},{last},255.255.255.0,{}s",
                self.lease_time.as_secs()
            ),
            format!("--dhcp-option=option:router,{}", self.router),
            format!("--dhcp-option=option:dns-server,{LAN_DNS}"),
            format!("--dhcp-option=option:domain-name,{LAN_DOMAIN}"),
            format!("--dhcp-option=option:domain-search,{LAN_DOMAIN}"),
            format!("--dhcp-option=option:mtu,{}", self.mtu),
        ];
        if self.authoritative {
            args.push("--dhcp-authoritative".into());
        }
        args.extend([
            "--log-dhcp".into(),
            format!("--log-facility={}", path("log")),
            format!("--pid-file={}", path("pid")),
            format!("--dhcp-leasefile={}", path("leases")),
        ]);
        if self.router_advertisements {
            args.extend([
                "--enable-ra".into(),
                format!("--dhcp-range={LAN_PREFIX6},ra-only"),
            ]);
        }
        if !self.ping_check {
            args.push("--no-ping".into());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// Starts dnsmasq in `ns` as `options` say and waits until its DHCP socket is bound (a
/// new "DHCP, IP range" line in its log: the log is appended to, so a restarted server
/// can keep its predecessor's log and lease file).
pub fn spawn_dnsmasq(ns: &Netns, options: &DnsmasqOptions) -> Result<Proc, LabError> {
    let log = options.log_path();
    let ready = "DHCP, IP range";
    let count_ready = || {
        read_lossy(&log)
            .lines()
            .filter(|l| l.contains(ready))
            .count()
    };
    let before = count_ready();
    let args = options.argv();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = ns.spawn(&options.stem, &argv)?;
    let what = format!("{} to log {ready:?}", options.stem);
    try_wait_for(SETUP_TIMEOUT, &what, || {
        if count_ready() > before {
            return Some(Ok(()));
        }
        proc.try_status().map(|status| {
            Err(LabError::Exited {
                label: options.stem.clone(),
                ns: ns.name().to_string(),
                what: what.clone(),
                status,
                stderr: tail_lines(proc.stderr().trim(), 10),
            })
        })
    })??;
    Ok(proc)
}

impl Lab {
    /// The settings the lab's dnsmasq was started with (see [`DnsmasqOptions`]).
    pub fn dnsmasq_options(&self) -> &DnsmasqOptions {
        &self.dnsmasq_options
    }

    /// A new namespace `role` on the LAN: a veth `eth0` with `addr`/24 whose peer is a
    /// port of `br0`. It is deleted when the returned [`Netns`] is dropped (before the lab,
    /// if declared after it).
    pub fn add_lan_host(&self, role: &str, addr: Ipv4Addr) -> Result<Netns, LabError> {
        let ns = Netns::new(role)?;
        // The bridge side's name must be unique in `lan` and at most 15 bytes.
        static PORT_COUNTER: AtomicU64 = AtomicU64::new(0);
        let port = format!("vl{}", PORT_COUNTER.fetch_add(1, Ordering::Relaxed));
        self.lan.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            HOST_DEV,
            "netns",
            ns.name(),
        ])?;
        add_bridge_port(&self.lan, &port, LAN_BRIDGE)?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{addr}/{LAN_PREFIX_LEN}"),
            "dev",
            HOST_DEV,
        ])?;
        ns.ip(&["link", "set", HOST_DEV, "up"])?;
        Ok(ns)
    }
}

// ---------------------------------------------------------------------------------------
// Traffic

/// Which way the bytes go in [`tcp_transfer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The connecting side sends.
    ClientToServer,
    /// The listening side sends.
    ServerToClient,
}

/// The result of a verified [`tcp_transfer`].
#[derive(Debug, Clone, Copy)]
pub struct TransferReport {
    /// Bytes received and verified.
    pub bytes: u64,
    /// From accepting the connection to the receiver seeing end of stream.
    pub elapsed: Duration,
}

/// Byte `i` of the transfer pattern: a keyed hash of the 8-byte word index, so a dropped,
/// duplicated or reordered segment shows up at once, at its offset.
fn pattern_fill(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        let mut z = (pos / 8).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        *b = z.to_le_bytes()[(pos % 8) as usize];
    }
}

fn send_pattern(s: &mut TcpStream, bytes: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        pattern_fill(sent, &mut buf[..n]);
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    s.shutdown(Shutdown::Write)?;
    // Wait for the receiver to close after checking everything.
    let mut sink = [0u8; 64];
    while s.read(&mut sink)? > 0 {}
    Ok(())
}

fn receive_pattern(s: &mut TcpStream, expected: u64) -> Result<u64, LabError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = s
            .read(&mut buf)
            .map_err(io_err(format!("receiving after {got} bytes")))?;
        if n == 0 {
            break;
        }
        if got + n as u64 > expected {
            return Err(LabError::Corrupt(format!(
                "more than the {expected} bytes sent arrived"
            )));
        }
        pattern_fill(got, &mut want[..n]);
        if let Some(i) = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b) {
            return Err(LabError::Corrupt(format!(
                "first wrong byte at offset {}",
                got + i as u64
            )));
        }
        got += n as u64;
    }
    if got != expected {
        return Err(LabError::Corrupt(format!(
            "{got} of {expected} bytes arrived"
        )));
    }
    s.shutdown(Shutdown::Both)
        .map_err(io_err("closing after the transfer"))?;
    Ok(got)
}

/// Sends `bytes` of a position-dependent pattern over one TCP connection from `client` to
/// a listener in `server` on `server_addr` (or the other way, per `flow`), and checks that
/// every byte arrived intact and in order. Everything is bounded by `timeout`.
pub fn tcp_transfer(
    client: &Netns,
    server: &Netns,
    server_addr: SocketAddr,
    bytes: u64,
    flow: Flow,
    timeout: Duration,
) -> Result<TransferReport, LabError> {
    let deadline = Instant::now() + timeout;
    let listener = server.tcp_listen(server_addr)?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("making the listener non-blocking"))?;
    let set_timeouts = |s: &TcpStream| -> Result<(), LabError> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        s.set_nonblocking(false).map_err(io_err("socket mode"))?;
        s.set_read_timeout(Some(left))
            .map_err(io_err("socket timeout"))?;
        s.set_write_timeout(Some(left))
            .map_err(io_err("socket timeout"))
    };

    thread::scope(|scope| {
        let server_side = scope.spawn(|| -> Result<TransferReport, LabError> {
            let (mut s, _) = try_wait_for(
                timeout,
                &format!("a connection on {server_addr}"),
                || match listener.accept() {
                    Ok(c) => Some(Ok(c)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    Err(e) => Some(Err(e)),
                },
            )?
            .map_err(io_err(format!("accepting on {server_addr}")))?;
            set_timeouts(&s)?;
            let start = Instant::now();
            let got = match flow {
                Flow::ClientToServer => receive_pattern(&mut s, bytes)?,
                Flow::ServerToClient => {
                    send_pattern(&mut s, bytes).map_err(io_err("sending from the server"))?;
                    bytes
                }
            };
            Ok(TransferReport {
                bytes: got,
                elapsed: start.elapsed(),
            })
        });
        let client_side = || -> Result<u64, LabError> {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut s = client.tcp_connect(server_addr, left.max(Duration::from_millis(1)))?;
            set_timeouts(&s)?;
            match flow {
                Flow::ClientToServer => {
                    send_pattern(&mut s, bytes).map_err(io_err("sending from the client"))?;
                    Ok(bytes)
                }
                Flow::ServerToClient => receive_pattern(&mut s, bytes),
            }
        };
        let client_result = client_side();
        let server_result = match server_side.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        };
        // Report the client's error first: a failed connect also times the server out.
        client_result?;
        server_result
    })
}

/// Summary of an iperf3 run.
#[derive(Debug, Clone)]
pub struct IperfReport {
    /// Received throughput, bits per second.
    pub bits_per_second: f64,
    /// Bytes received.
    pub bytes: u64,
    /// TCP retransmissions (TCP runs only).
    pub retransmits: Option<u64>,
    /// The full `iperf3 -J` output of the client.
    pub json: serde_json::Value,
}

/// Runs one iperf3 test: a one-off server (`-s -1`) bound to `server_addr` in `server`, the
/// client in `client` for `seconds` with `extra_args` (e.g. `["-R"]`, `["-u", "-b", "100M"]`).
pub fn iperf3(
    client: &Netns,
    server: &Netns,
    server_addr: IpAddr,
    seconds: u32,
    extra_args: &[&str],
) -> Result<IperfReport, LabError> {
    let addr = server_addr.to_string();
    let srv = server.spawn(
        "iperf3-server",
        &[
            "iperf3",
            "-s",
            "-1",
            "-B",
            &addr,
            "-p",
            "5201",
            "--forceflush",
        ],
    )?;
    srv.wait_stdout_line("Server listening", SETUP_TIMEOUT)?;
    let secs = seconds.max(1).to_string();
    let mut argv = vec!["iperf3", "-c", &addr, "-p", "5201", "-t", &secs, "-J"];
    argv.extend_from_slice(extra_args);
    let out = client.run_timeout(&argv, Duration::from_secs(u64::from(seconds) + 30))?;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| {
        LabError::Setup(format!(
            "iperf3 printed no JSON ({e}): {}",
            tail_for_error(&out.stderr, &out.stdout)
        ))
    })?;
    if let Some(err) = json.get("error").and_then(|e| e.as_str()) {
        return Err(LabError::Setup(format!("iperf3: {err}")));
    }
    let end = json.get("end");
    let sum = end
        .and_then(|e| e.get("sum_received"))
        .or_else(|| end.and_then(|e| e.get("sum")))
        .ok_or_else(|| LabError::Setup("iperf3 JSON has no end.sum_received / end.sum".into()))?;
    let bits_per_second = sum
        .get("bits_per_second")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let bytes = sum.get("bytes").and_then(|v| v.as_u64()).unwrap_or(0);
    let retransmits = end
        .and_then(|e| e.get("sum_sent"))
        .and_then(|s| s.get("retransmits"))
        .and_then(|v| v.as_u64());
    drop(srv);
    Ok(IperfReport {
        bits_per_second,
        bytes,
        retransmits,
        json,
    })
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
