//! The standard lab ([`Lab`]): the LAN, the host and the phone, linked as [`LabLink`] says.

use super::*;

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
        add_bridge(&lan, LAN_BRIDGE)?;
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
                add_switch(&phone, PHONE_BRIDGE)?;
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

/// Adds the bridge `name` in `ns`, forwarding at once (no forward delay) and flooding
/// multicast (no snooping: a bridge that learned a group from one MLD report stops
/// flooding it, which would make IPv6 tests depend on MLD timing). Left down.
pub fn add_bridge(ns: &Netns, name: &str) -> Result<(), LabError> {
    #[rustfmt::skip]
    ns.ip(&["link", "add", name, "type", "bridge", "forward_delay", "0", "mcast_snooping", "0"])?;
    Ok(())
}

/// Adds the bridge `name` in `ns` as a switch, not an interface of the namespace: no
/// IPv6 on it, and no ARP (with the weak host model it would answer for an address of the
/// system under test with the bridge's own MAC). Brought up.
pub fn add_switch(ns: &Netns, name: &str) -> Result<(), LabError> {
    add_bridge(ns, name)?;
    ns.sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1")?;
    ns.ip(&["link", "set", name, "arp", "off", "up"])?;
    Ok(())
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
    pub(super) dnsmasq_options: DnsmasqOptions,
    link: LabLink,
    lease_time: Duration,
    phone: Netns,
    host: Netns,
    pub(super) lan: Netns,
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

pub(super) fn parse_lease_line(line: &str) -> Option<Lease> {
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
