//! More DHCP servers and LAN hosts beside the standard lab's.

use super::*;

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
