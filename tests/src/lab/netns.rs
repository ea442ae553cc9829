//! Running commands in network namespaces, and the namespaces themselves ([`Netns`]).

use super::*;

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

pub(super) fn kill_group(pid: u32, signal: libc::c_int) {
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
pub(super) struct ScratchDir {
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
    pub(super) fn parse(stdout: &str) -> Option<PingReport> {
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
