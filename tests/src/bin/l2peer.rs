//! `l2peer`: a test peer that bridges one L2 framing to a kernel TAP device.
//!
//! ```text
//! l2peer --tap NAME --udp LISTEN_ADDR [--master BR]
//!     one Ethernet frame per datagram; frames from the TAP go to the last peer seen
//! l2peer --tap NAME --tcp LISTEN_ADDR --len 2|4 [--master BR]
//!     big-endian length prefix, then the frame; one connection at a time: a new
//!     connection replaces the current one (a client that roamed reconnects from a new
//!     address before the old connection times out), and between connections frames
//!     read from the TAP are discarded
//! --connect   dial ADDR instead of listening (UDP: send to ADDR from the start;
//!             TCP: connect once and exit when the connection ends)
//! ```
//!
//! Prints `ready` on stdout once the TAP exists and the socket listens (or is connected),
//! then `peer ADDR` / `connected ADDR` / `disconnected ADDR` lines as peers come and go.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use tapemu_tests::tap::TapDevice;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest frame accepted from either side (jumbo frames included).
const MAX_FRAME: usize = 65535;

#[derive(Parser, Debug)]
#[command(about = "Bridge a UDP or length-prefixed TCP L2 framing to a kernel TAP device")]
struct Args {
    /// TAP device to create (or attach to).
    #[arg(long)]
    tap: String,
    /// Exchange one frame per UDP datagram on this address.
    #[arg(long, conflicts_with = "tcp", required_unless_present = "tcp")]
    udp: Option<SocketAddr>,
    /// Exchange length-prefixed frames over TCP on this address.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Length prefix size in bytes for --tcp.
    #[arg(long, value_enum, default_value = "2")]
    len: PrefixLen,
    /// Dial the address instead of listening on it.
    #[arg(long)]
    connect: bool,
    /// Enslave the TAP to this bridge (IPv6 off on it) and set it up.
    #[arg(long)]
    master: Option<String>,
    /// Set the TAP up (implied by --master).
    #[arg(long)]
    up: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PrefixLen {
    #[value(name = "2")]
    Two,
    #[value(name = "4")]
    Four,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("l2peer: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("l2peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    // Stdout is a file or pipe in tests: flush every line so waiters see it at once.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The TAP fd, driven by tokio's reactor.
struct AsyncTap(AsyncFd<TapDevice>);

impl AsyncTap {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.async_io(Interest::READABLE, |t| t.recv(buf)).await
    }

    async fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self.0.async_io(Interest::WRITABLE, |t| t.send(frame)).await {
            Ok(_) => Ok(()),
            // A malformed frame is dropped by the kernel; the peer keeps running.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                eprintln!("l2peer: TAP rejected a {}-byte frame: {e}", frame.len());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

async fn run(args: Args) -> io::Result<()> {
    let dev = TapDevice::open(&args.tap, true)?;
    if args.master.is_some() {
        disable_ipv6(dev.name());
    }
    if args.master.is_some() || args.up {
        dev.set_up(args.master.as_deref())?;
    }
    // SAFETY: TapDevice owns its fd (a File) for its whole life and always returns that
    // same fd from as_raw_fd; the AsyncFd owns the TapDevice.
    let fd = unsafe { AsyncFd::register(dev) }.map_err(io::Error::from)?;
    let tap = AsyncTap(fd);
    match (args.udp, args.tcp) {
        (Some(addr), _) => run_udp(&tap, addr, args.connect).await,
        (None, Some(addr)) => {
            let len = match args.len {
                PrefixLen::Two => 2,
                PrefixLen::Four => 4,
            };
            let codec = || {
                LengthDelimitedCodec::builder()
                    .length_field_length(len)
                    .max_frame_length(MAX_FRAME)
                    .new_codec()
            };
            if args.connect {
                let stream = TcpStream::connect(addr).await?;
                say("ready");
                say(&format!("connected {addr}"));
                serve_tcp(&tap, Framed::new(stream, codec()), None).await;
                say(&format!("disconnected {addr}"));
                Ok(())
            } else {
                let listener = TcpListener::bind(addr).await?;
                say("ready");
                let mut next = None;
                loop {
                    let (stream, peer) = match next.take() {
                        Some(accepted) => accepted,
                        None => accept_draining(&listener, &tap).await?,
                    };
                    let _ = stream.set_nodelay(true);
                    say(&format!("connected {peer}"));
                    let framed = Framed::new(stream, codec());
                    next = serve_tcp(&tap, framed, Some(&listener)).await;
                    say(&format!("disconnected {peer}"));
                }
            }
        }
        (None, None) => Err(io::Error::other("one of --udp or --tcp is required")),
    }
}

/// Bridge ports carry other hosts' traffic; they have no addresses of their own.
fn disable_ipv6(dev: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
    if let Err(e) = std::fs::write(&path, "1") {
        eprintln!("l2peer: {path}: {e}");
    }
}

async fn run_udp(tap: &AsyncTap, addr: SocketAddr, connect: bool) -> io::Result<()> {
    let (sock, mut peer) = if connect {
        let any: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        (UdpSocket::bind(any).await?, Some(addr))
    } else {
        (UdpSocket::bind(addr).await?, None)
    };
    say("ready");
    let mut from_tap = vec![0u8; MAX_FRAME];
    let mut from_net = vec![0u8; MAX_FRAME];
    loop {
        tokio::select! {
            r = tap.recv(&mut from_tap) => {
                let n = r?;
                if let Some(p) = peer {
                    if let Err(e) = sock.send_to(&from_tap[..n], p).await {
                        // E.g. ICMP port unreachable from a peer that went away.
                        eprintln!("l2peer: send to {p}: {e}");
                    }
                }
            }
            r = sock.recv_from(&mut from_net) => {
                let (n, src) = match r {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("l2peer: recv: {e}");
                        continue;
                    }
                };
                if peer != Some(src) {
                    peer = Some(src);
                    say(&format!("peer {src}"));
                }
                if n >= 14 {
                    tap.send(&from_net[..n]).await?;
                }
            }
        }
    }
}

/// Waits for the next connection, reading and discarding TAP frames meanwhile so that the
/// next peer does not get a burst of stale ones.
async fn accept_draining(
    listener: &TcpListener,
    tap: &AsyncTap,
) -> io::Result<(TcpStream, SocketAddr)> {
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        tokio::select! {
            r = listener.accept() => return r,
            r = tap.recv(&mut buf) => { r?; }
        }
    }
}

/// Moves frames until the connection ends or breaks; TAP errors end it too. With a
/// `listener`, a new connection replaces this one and is returned: a client that
/// roamed to another network connects again from a new address while its old
/// connection still looks alive here, as OpenVPN and SoftEther servers take it.
async fn serve_tcp(
    tap: &AsyncTap,
    mut framed: Framed<TcpStream, LengthDelimitedCodec>,
    listener: Option<&TcpListener>,
) -> Option<(TcpStream, SocketAddr)> {
    let mut from_tap = vec![0u8; MAX_FRAME];
    loop {
        let accept = async {
            match listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = accept => match r {
                Ok(accepted) => return Some(accepted),
                Err(e) => eprintln!("l2peer: accept: {e}"),
            },
            r = tap.recv(&mut from_tap) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => {
                        eprintln!("l2peer: TAP read: {e}");
                        return None;
                    }
                };
                let frame = bytes_of(&from_tap[..n]);
                if let Err(e) = framed.send(frame).await {
                    eprintln!("l2peer: TCP send: {e}");
                    return None;
                }
            }
            r = framed.next() => match r {
                None => return None,
                Some(Err(e)) => {
                    eprintln!("l2peer: TCP receive: {e}");
                    return None;
                }
                Some(Ok(frame)) => {
                    if frame.len() >= 14 {
                        if let Err(e) = tap.send(&frame).await {
                            eprintln!("l2peer: TAP write: {e}");
                            return None;
                        }
                    }
                }
            }
        }
    }
}

fn bytes_of(frame: &[u8]) -> tokio_util::bytes::Bytes {
    tokio_util::bytes::Bytes::copy_from_slice(frame)
}
