//! The `tapemu` command line: runs the emulated Ethernet host between a Linux TUN and a
//! link, configures the TUN from the lease, or just obtains a lease.

mod netconf;
mod output;

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use tapemu::driver::{
    Direction, Driver, DriverConfig, DriverEvent, DriverEvents, DriverHandle, FrameHook, LinkSpec,
};
use tapemu::{Config, DhcpConfig, Ipv4Interface, Ipv4Mode, Ipv6Mode, MacAddr};
use tokio::signal::unix::{signal, SignalKind};

use crate::netconf::NetConf;
use crate::output::Output;
use tapemu::{DhcpEvent, Event, Ipv4Event, Ipv6Event};

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
    /// Our MAC address (default: random, locally administered).
    #[arg(long, value_name = "MAC")]
    mac: Option<MacAddr>,
    /// Host name sent to the DHCP server.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Print one JSON object per line per event.
    #[arg(long)]
    json: bool,
    /// Write every frame crossing the link, both directions, to this pcap file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
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
            eprintln!("tapemu: {line} (see tapemu --help)");
            return ExitCode::from(2);
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
            Cmd::Run(args) => run(args).await,
            Cmd::Lease(args) => lease(args).await,
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

type Pcap = Arc<Mutex<Option<pcap_file::pcap::PcapWriter<io::BufWriter<std::fs::File>>>>>;

fn open_pcap(path: &PathBuf) -> Result<(Pcap, FrameHook), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("pcap {}: {e}", path.display()))?;
    let writer = pcap_file::pcap::PcapWriter::new(io::BufWriter::new(file))
        .map_err(|e| format!("pcap {}: {e}", path.display()))?;
    let pcap: Pcap = Arc::new(Mutex::new(Some(writer)));
    let shared = pcap.clone();
    let hook: FrameHook = Box::new(move |_dir: Direction, frame: &[u8]| {
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        if let Some(w) = shared.lock().ok().as_mut().and_then(|w| w.as_mut()) {
            let _ = w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, len, frame));
        }
    });
    Ok((pcap, hook))
}

fn flush_pcap(pcap: Option<&Pcap>) {
    if let Some(pcap) = pcap {
        if let Some(w) = pcap.lock().ok().and_then(|mut w| w.take()) {
            use std::io::Write;
            let _ = w.into_writer().flush();
        }
    }
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

fn dhcp_mode(common: &Common) -> Ipv4Mode {
    Ipv4Mode::Dhcp(DhcpConfig {
        hostname: common.hostname.clone(),
        ..DhcpConfig::default()
    })
}

async fn start(
    common: &Common,
    tap: Config,
    link: LinkSpec,
    tun: Option<std::os::fd::OwnedFd>,
) -> Result<(DriverHandle, DriverEvents, Option<Pcap>), String> {
    let (pcap, frame_hook) = match &common.pcap {
        Some(path) => {
            let (pcap, hook) = open_pcap(path)?;
            (Some(pcap), Some(hook))
        }
        None => (None, None),
    };
    let config = DriverConfig {
        tap,
        frame_hook,
        ..DriverConfig::default()
    };
    let (handle, events) = Driver::start(config, link, tun)
        .await
        .map_err(|e| e.to_string())?;
    Ok((handle, events, pcap))
}

fn open_tun(name: &str) -> Result<(std::os::fd::OwnedFd, String), String> {
    tapemu::driver::open_tun(name).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "cannot create TUN device {name}: permission denied; run as root (or with CAP_NET_ADMIN)"
        ),
        io::ErrorKind::NotFound => format!(
            "cannot create TUN device {name}: /dev/net/tun does not exist; load the tun module (modprobe tun)"
        ),
        _ => format!("cannot create TUN device {name}: {e}"),
    })
}

async fn run(args: RunArgs) -> Result<(), String> {
    let common = &args.common;
    let (fd, dev) = open_tun(&args.tun)?;
    let mut conf = match args.no_configure {
        true => None,
        false => Some(NetConf::new(&dev, !args.no_default_route, args.mtu).await?),
    };
    let ipv4 = match args.static_addr {
        Some((addr, len)) => Ipv4Mode::Static(Ipv4Interface::new(addr, len, args.gateway)),
        None => dhcp_mode(common),
    };
    let mtu = args.mtu.unwrap_or(1500);
    let tap = tap_config(common, ipv4, !args.no_ipv6, mtu);
    let link = common.link.clone();
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let (handle, mut events, pcap) = start(common, tap, link_spec(common)?, Some(fd)).await?;
    let out = Output::new(common.json);
    out.started(&dev, &link);
    let is_static = args.static_addr.is_some();
    let mut failure = None;
    loop {
        let event = tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            e = events.recv() => e,
        };
        let Some(event) = event else { break };
        if let DriverEvent::Stopped { error } = &event {
            failure = error.as_ref().map(ToString::to_string);
            break;
        }
        out.event(&event);
        if let Some(conf) = conf.as_mut() {
            if let Err(e) = apply(conf, &event, is_static).await {
                tracing::error!("configuring {dev}: {e}");
            }
        }
    }
    // Orderly end: take the TUN back, release the lease, undo the configuration.
    let tun = handle.detach_tun().await.ok().flatten();
    handle.stop().await;
    while let Ok(event) = events.try_recv() {
        if !matches!(event, DriverEvent::Stopped { .. }) {
            out.event(&event);
        }
    }
    if let Some(conf) = conf.as_mut() {
        conf.remove_all().await;
    }
    drop(tun);
    flush_pcap(pcap.as_ref());
    out.stopped();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
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

async fn apply(conf: &mut NetConf, event: &DriverEvent, is_static: bool) -> Result<(), String> {
    let DriverEvent::Tap(event) = event else {
        return Ok(());
    };
    match event {
        Event::Ipv4(Ipv4Event::Up(iface)) if is_static => {
            conf.apply_ipv4(iface.address, iface.prefix_len, &iface.routes, None)
                .await
        }
        Event::Dhcp(DhcpEvent::LeaseAcquired(lease))
        | Event::Dhcp(DhcpEvent::LeaseRenewed(lease)) => conf.apply_lease(lease).await,
        Event::Dhcp(DhcpEvent::LeaseChanged { new, .. }) => conf.apply_lease(new).await,
        Event::Dhcp(DhcpEvent::LeaseLost { .. }) => {
            conf.remove_ipv4().await;
            Ok(())
        }
        Event::Ipv6(Ipv6Event::Changed(info)) => conf.apply_ipv6(info).await,
        _ => Ok(()),
    }
}

async fn lease(args: LeaseArgs) -> Result<(), String> {
    let common = &args.common;
    let tap = tap_config(common, dhcp_mode(common), false, 1500);
    let link = link_spec(common)?;
    let (handle, mut events, pcap) = start(common, tap, link, None).await?;
    let out = Output::new(common.json);
    let deadline = tokio::time::sleep(Duration::from_secs(args.timeout));
    tokio::pin!(deadline);
    let result = loop {
        let event = tokio::select! {
            () = &mut deadline => break Err(format!("no lease within {} s over {}", args.timeout, common.link)),
            e = events.recv() => e,
        };
        match event {
            None => break Err("the driver ended".to_owned()),
            Some(DriverEvent::Stopped { error }) => {
                break Err(error.map_or_else(|| "the driver ended".to_owned(), |e| e.to_string()))
            }
            Some(DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseAcquired(lease)))) => {
                out.lease(&lease);
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
    flush_pcap(pcap.as_ref());
    result
}
