//! The `tapemu` command line: runs the emulated Ethernet host between a Linux TUN and a
//! link, configures the TUN from the lease, or just obtains a lease.

mod capture;
mod identity;
mod lease_file;
mod netconf;
mod output;
mod route_watch;
mod throttle;

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tapemu::driver::{
    Driver, DriverConfig, DriverEvent, DriverHandle, LinkFaults, LinkSpec, TunOffload,
};
use tapemu::{Config, DhcpConfig, Ipv4Interface, Ipv4Mode, Ipv6Info, Ipv6Mode, MacAddr};
use tapemu::{DhcpEvent, Event, Ipv4Event, Ipv6Event};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use crate::capture::Capture;
use crate::netconf::NetConf;
use crate::output::Output;
use crate::throttle::Throttle;

/// What the driver reports, as the CLI receives it.
type Events = tapemu::driver::DriverEvents;

/// Least time between two rewrites of the TUN's IPv6 configuration: a flood of router
/// advertisements is applied once a second, the latest state winning.
const IPV6_REWRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Emulates a TAP (Ethernet) device on top of a TUN (IP) device: ARP, NDP and DHCP in
/// user space, Ethernet frames over UDP, TCP, VXLAN or a local TAP.
#[derive(Debug, Parser)]
#[command(name = "tapemu", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a TUN, get a lease, configure the TUN and run until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Obtain a lease over the link with no TUN at all, print it and exit.
    Lease(LeaseArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// The link: udp://HOST:PORT[?bind=ADDR:PORT], tcp://HOST:PORT[?len=2|4],
    /// vxlan://HOST:PORT?vni=N, tap://NAME.
    #[arg(long, value_name = "URL", value_parser = parse_link)]
    link: String,
    /// Our MAC address (default for `run`: stable for this host and TUN name, from
    /// /etc/machine-id; for `lease`: random).
    #[arg(long, value_name = "MAC")]
    mac: Option<MacAddr>,
    /// How long data sent on a tcp:// link may stay unacknowledged before the
    /// connection is made again (TCP_USER_TIMEOUT); a URL's ?user_timeout_ms= wins.
    #[arg(long, value_name = "MS", default_value_t = tapemu::driver::TCP_USER_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    tcp_user_timeout: u64,
    /// Host name sent to the DHCP server.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Print one JSON object per line per event.
    #[arg(long)]
    json: bool,
    /// Write every frame crossing the link, both directions, to this pcap file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Inject faults on the link, e.g. drop=0.3,dup=0.05,reorder=0.01,corrupt=0.001,
    /// delay=20ms,seed=7[,dir=in|out] (rates from 0 to 1).
    #[arg(long, value_name = "SPEC")]
    link_faults: Option<LinkFaults>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Name of the TUN device to create.
    #[arg(long, value_name = "NAME", default_value = "tapemu0")]
    tun: String,
    /// A static address instead of DHCP.
    #[arg(long = "static", value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    static_addr: Option<(Ipv4Addr, u8)>,
    /// Default gateway of the static address.
    #[arg(long, value_name = "IP", requires = "static_addr")]
    gateway: Option<Ipv4Addr>,
    /// Largest IP packet on the link (the TUN MTU; a smaller DHCP MTU wins).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(576..=9000))]
    mtu: Option<u16>,
    /// Do not configure the TUN (address, routes, MTU, up): only report.
    #[arg(long)]
    no_configure: bool,
    /// Do not install default routes (IPv4 and IPv6).
    #[arg(long)]
    no_default_route: bool,
    /// No IPv6 (no link-local address, router discovery or SLAAC).
    #[arg(long)]
    no_ipv6: bool,
    /// Where the lease is kept between runs, to ask for the same address again on the
    /// next start (default: $TAPEMU_STATE_DIR or /var/lib/tapemu, then TUN.lease).
    #[arg(long, value_name = "PATH", conflicts_with = "no_lease_file")]
    lease_file: Option<PathBuf>,
    /// Keep no lease file: every start discovers anew.
    #[arg(long)]
    no_lease_file: bool,
    /// On SIGINT/SIGTERM stop without releasing the lease (no DHCPRELEASE), so the
    /// next start gets the same address.
    #[arg(long)]
    no_release: bool,
    /// Do not watch the route to the link's peer (by default a change of its device,
    /// gateway or source address reopens the link and re-announces the host).
    #[arg(long)]
    no_route_watch: bool,
    /// Open a plain TUN, one packet per read and write (as on Android), instead of one
    /// with segmentation offloads (TSO/USO and coalesced writes).
    #[arg(long)]
    no_offload: bool,
}

impl RunArgs {
    /// The lease file in use, if any.
    fn lease_path(&self) -> Option<PathBuf> {
        if self.no_lease_file || self.static_addr.is_some() {
            return None;
        }
        Some(
            self.lease_file
                .clone()
                .unwrap_or_else(|| lease_file::default_path(&self.tun)),
        )
    }
}

#[derive(Debug, Args)]
struct LeaseArgs {
    #[command(flatten)]
    common: Common,
    /// Release the lease (DHCPRELEASE) after printing it.
    #[arg(long)]
    release: bool,
    /// Give up after this many seconds without a lease.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected ADDR/PREFIX, e.g. 192.0.2.123/24"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
    let len = len
        .parse::<u8>()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("{len:?} is not a prefix length 0-32"))?;
    Ok((addr, len))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let text = e.render().to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            let line = line.strip_prefix("error: ").unwrap_or(line);
            return usage_error(line);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_target(false)
        .init();
    let config = match &cli.command {
        Cmd::Run(args) => run_config(args),
        Cmd::Lease(args) => lease_config(args),
    };
    if let Err(e) = config.validate() {
        return usage_error(&e.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tapemu: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Run(args) => run(args, config).await,
            Cmd::Lease(args) => lease(args, config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapemu: {e}");
            ExitCode::from(1)
        }
    }
}

/// Bad arguments: one line on stderr, exit 2.
fn usage_error(line: &str) -> ExitCode {
    eprintln!("tapemu: {line} (see tapemu --help)");
    ExitCode::from(2)
}

fn tap_config(common: &Common, ipv4: Ipv4Mode, ipv6: bool, mtu: u16) -> Config {
    Config {
        mac: common.mac,
        ipv4,
        ipv6: if ipv6 {
            Ipv6Mode::default()
        } else {
            Ipv6Mode::Disabled
        },
        mtu,
        rng_seed: rand::random(),
        ..Config::default()
    }
}

fn dhcp_mode(common: &Common, remembered_lease: Option<tapemu::Lease>) -> Ipv4Mode {
    Ipv4Mode::Dhcp(DhcpConfig {
        hostname: common.hostname.clone(),
        remembered_lease,
        ..DhcpConfig::default()
    })
}

/// The emulated host `tapemu run` starts.
fn run_config(args: &RunArgs) -> Config {
    let ipv4 = match args.static_addr {
        Some((addr, len)) => Ipv4Mode::Static(Ipv4Interface::new(addr, len, args.gateway)),
        None => dhcp_mode(
            &args.common,
            args.lease_path().and_then(|p| lease_file::load(&p)),
        ),
    };
    let mut config = tap_config(&args.common, ipv4, !args.no_ipv6, args.mtu.unwrap_or(1500));
    if config.mac.is_none() {
        config.mac = identity::default_mac(&args.tun);
    }
    config
}

/// The emulated host `tapemu lease` starts: DHCP only.
fn lease_config(args: &LeaseArgs) -> Config {
    tap_config(&args.common, dhcp_mode(&args.common, None), false, 1500)
}

/// SIGINT and SIGTERM, taken over before anything is started so that either ends a
/// command in order (lease released, TUN cleaned up, pcap complete).
fn stop_signals() -> Result<(Signal, Signal), String> {
    let sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    Ok((sigint, sigterm))
}

async fn start(
    common: &Common,
    tap: Config,
    link: LinkSpec,
    tun: Option<Tun>,
) -> Result<(DriverHandle, Events, Option<Capture>), String> {
    let (capture, frame_hook) = match &common.pcap {
        Some(path) => {
            let (capture, hook) = Capture::create(path)?;
            (Some(capture), Some(hook))
        }
        None => (None, None),
    };
    let config = DriverConfig {
        tap,
        frame_hook,
        link_faults: common.link_faults,
        tcp_user_timeout: Duration::from_millis(common.tcp_user_timeout),
        tun_vnet_hdr: tun.as_ref().is_some_and(|t| t.offload.vnet_hdr()),
        ..DriverConfig::default()
    };
    // On failure the capture is dropped here, which completes the file.
    let (handle, events) = Driver::start(config, link, tun.map(|t| t.fd))
        .await
        .map_err(|e| e.to_string())?;
    Ok((handle, events, capture))
}

/// A TUN the CLI opened.
struct Tun {
    fd: std::os::fd::OwnedFd,
    /// The device's name.
    name: String,
    /// What the kernel turned on.
    offload: TunOffload,
}

/// Opens the TUN `name`, with offloads unless `offload` is false.
fn open_tun(name: &str, offload: bool) -> Result<Tun, String> {
    let opened = if offload {
        tapemu::driver::open_tun_offload(name)
    } else {
        tapemu::driver::open_tun(name).map(|(fd, name)| (fd, name, TunOffload::None))
    };
    let opened = opened.map(|(fd, name, offload)| Tun { fd, name, offload });
    opened.map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "cannot create TUN device {name}: permission denied; run as root (or with CAP_NET_ADMIN)"
        ),
        io::ErrorKind::NotFound => format!(
            "cannot create TUN device {name}: /dev/net/tun does not exist; load the tun module (modprobe tun)"
        ),
        _ => format!("cannot create TUN device {name}: {e}"),
    })
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

async fn run(args: RunArgs, tap: Config) -> Result<(), String> {
    let common = &args.common;
    let link_mtu = tap.mtu;
    let tun = open_tun(&args.tun, !args.no_offload)?;
    tracing::info!("TUN {}: offloads {:?}", tun.name, tun.offload);
    let dev = tun.name.clone();
    let mut conf = match args.no_configure {
        true => None,
        false => Some(NetConf::new(&dev, !args.no_default_route, link_mtu).await?),
    };
    let link = common.link.clone();
    let (mut sigint, mut sigterm) = stop_signals()?;
    let spec = link_spec(common)?;
    let peer = match args.no_route_watch {
        true => None,
        false => route_watch::peer_of(&spec).await,
    };
    let (handle, mut events, capture) = start(common, tap, spec, Some(tun)).await?;
    let out = Output::new(common.json, link_mtu);
    out.started(&dev, &link);
    let lease_path = args.lease_path();
    let (watch, mut paths) = match peer.map(|p| route_watch::spawn(p, dev.clone(), handle.clone()))
    {
        Some(Ok((task, paths))) => (Some(task), Some(paths)),
        Some(Err(e)) => {
            tracing::warn!("{e}; not watching the route to the link's peer");
            (None, None)
        }
        None => (None, None),
    };
    let is_static = args.static_addr.is_some();
    let mut ipv6: Throttle<Ipv6Info> = Throttle::new(IPV6_REWRITE_INTERVAL);
    let mut failure = None;
    loop {
        let event = tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            Some(path) = next_path(&mut paths) => {
                out.network_changed(&path);
                continue;
            }
            () = sleep_until(ipv6.deadline()) => {
                let info = ipv6.poll(Instant::now().into_std());
                if let (Some(conf), Some(info)) = (conf.as_mut(), info) {
                    apply_ipv6(conf, &info).await;
                }
                continue;
            }
            e = events.recv() => e,
        };
        let Some(event) = event else { break };
        if let DriverEvent::Stopped { error } = &event {
            failure = error.as_ref().map(ToString::to_string);
            break;
        }
        out.event(&event);
        keep_lease(lease_path.as_deref(), &event);
        let Some(conf) = conf.as_mut() else { continue };
        match &event {
            DriverEvent::Tap(Event::Ipv6(Ipv6Event::Changed(info))) => {
                if let Some(info) = ipv6.offer(Instant::now().into_std(), info.clone()) {
                    apply_ipv6(conf, &info).await;
                }
            }
            event => {
                if let Err(e) = apply(conf, event, is_static).await {
                    tracing::error!("configuring {dev}: {e}");
                }
            }
        }
    }
    // Orderly end: take the TUN back, release the lease (unless kept), undo the
    // configuration.
    if let Some(watch) = watch {
        watch.abort();
    }
    if let Ok(s) = handle.stats().await {
        tracing::info!(
            "TUN {dev}: super-segments split {}, coalesced {}; dropped: read {}, write {}",
            s.tun_super_segments_in,
            s.tun_super_segments_out,
            s.tun_dropped_in,
            s.tun_dropped_out
        );
    }
    let tun = handle.detach_tun().await.ok().flatten();
    handle.shutdown(!args.no_release).await;
    while let Ok(event) = events.try_recv() {
        if !matches!(event, DriverEvent::Stopped { .. }) {
            out.event(&event);
            keep_lease(lease_path.as_deref(), &event);
        }
    }
    if let Some(conf) = conf.as_mut() {
        conf.remove_all().await;
    }
    drop(tun);
    if let Some(capture) = capture {
        capture.finish();
    }
    out.stopped();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The next change of the route to the link's peer, or never without a route watch.
async fn next_path(
    paths: &mut Option<tokio::sync::mpsc::UnboundedReceiver<route_watch::Path>>,
) -> Option<route_watch::Path> {
    match paths {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Keeps the lease file in step with the lease: stored when acquired, renewed or
/// changed, removed when lost or released.
fn keep_lease(path: Option<&std::path::Path>, event: &DriverEvent) {
    let Some(path) = path else { return };
    let DriverEvent::Tap(Event::Dhcp(event)) = event else {
        return;
    };
    let lease = match event {
        DhcpEvent::LeaseAcquired(lease) | DhcpEvent::LeaseRenewed(lease) => lease,
        DhcpEvent::LeaseChanged { new, .. } => new,
        DhcpEvent::LeaseLost { .. } => return lease_file::remove(path),
        _ => return,
    };
    if let Err(e) = lease_file::store(path, lease) {
        tracing::warn!("lease file: {e}");
    }
}

/// Checks a link URL while parsing arguments, so a bad one is a usage error.
fn parse_link(url: &str) -> Result<String, String> {
    url.parse::<LinkSpec>()
        .map(|_| url.to_owned())
        .map_err(|e| e.reason)
}

fn link_spec(common: &Common) -> Result<LinkSpec, String> {
    common.link.parse::<LinkSpec>().map_err(|e| e.to_string())
}

async fn apply_ipv6(conf: &mut NetConf, info: &Ipv6Info) {
    if let Err(e) = conf.apply_ipv6(info).await {
        tracing::error!("configuring IPv6: {e}");
    }
}

/// Applies an IPv4 event to the TUN (IPv6 goes through the [`Throttle`]).
async fn apply(conf: &mut NetConf, event: &DriverEvent, is_static: bool) -> Result<(), String> {
    let DriverEvent::Tap(event) = event else {
        return Ok(());
    };
    match event {
        Event::Ipv4(Ipv4Event::Up(iface)) if is_static => {
            conf.apply_static(iface.address, iface.prefix_len, &iface.routes)
                .await
        }
        Event::Dhcp(DhcpEvent::LeaseAcquired(lease))
        | Event::Dhcp(DhcpEvent::LeaseRenewed(lease)) => conf.apply_lease(lease).await,
        Event::Dhcp(DhcpEvent::LeaseChanged { new, .. }) => conf.apply_lease(new).await,
        Event::Dhcp(DhcpEvent::LeaseLost { .. }) => {
            conf.remove_ipv4().await;
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn lease(args: LeaseArgs, tap: Config) -> Result<(), String> {
    let common = &args.common;
    let out = Output::new(common.json, tap.mtu);
    let link = link_spec(common)?;
    let (mut sigint, mut sigterm) = stop_signals()?;
    let (handle, mut events, capture) = start(common, tap, link, None).await?;
    let deadline = tokio::time::sleep(Duration::from_secs(args.timeout));
    tokio::pin!(deadline);
    let result = loop {
        let event = tokio::select! {
            () = &mut deadline => break Err(format!("no lease within {} s over {}", args.timeout, common.link)),
            _ = sigint.recv() => break Err("interrupted (SIGINT) before a lease".to_owned()),
            _ = sigterm.recv() => break Err("interrupted (SIGTERM) before a lease".to_owned()),
            e = events.recv() => e,
        };
        match event {
            None => break Err("the driver ended".to_owned()),
            Some(DriverEvent::Stopped { error }) => {
                break Err(error.map_or_else(|| "the driver ended".to_owned(), |e| e.to_string()))
            }
            Some(DriverEvent::Tap(event @ Event::Dhcp(DhcpEvent::LeaseAcquired(_)))) => {
                out.lease(&event);
                break Ok(());
            }
            Some(other) => {
                if !common.json {
                    tracing::debug!("{other:?}");
                }
            }
        }
    };
    handle.shutdown(args.release).await;
    if args.release && result.is_ok() {
        out.released();
    }
    if let Some(capture) = capture {
        capture.finish();
    }
    result
}
