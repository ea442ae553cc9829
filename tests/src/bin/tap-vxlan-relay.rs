//! `tap-vxlan-relay`: the simplest user-space relay between a kernel TAP device and a
//! VXLAN UDP socket (RFC 7348), the baseline that tapemu's throughput is compared with.
//!
//! ```text
//! tap-vxlan-relay --tap NAME --remote IP:PORT --vni N [--local ADDR] [--up] [--master BR]
//! ```
//!
//! TAP → UDP: read a frame into a buffer after 8 bytes of headroom, write the VXLAN header
//! (flags 0x08, VNI) into the headroom, send to `--remote`. UDP → TAP: receive a datagram
//! from anyone, check the I flag and the VNI, write the rest to the TAP. Two blocking
//! threads, no parsing beyond the VXLAN header. Prints `ready` once both ends are open.

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::thread;

use clap::Parser;
use tapemu_tests::tap::TapDevice;

const VXLAN_HEADER: usize = 8;
/// The "I" flag: the VNI field is valid.
const FLAG_VNI_VALID: u8 = 0x08;
const BUF: usize = 65536;

#[derive(Parser, Debug)]
#[command(about = "Relay frames between a kernel TAP device and a VXLAN UDP socket")]
struct Args {
    /// TAP device to create (or attach to).
    #[arg(long)]
    tap: String,
    /// Where to send encapsulated frames (the VTEP, e.g. 198.51.100.1:4789).
    #[arg(long)]
    remote: SocketAddr,
    /// VXLAN network identifier (24 bits).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..(1 << 24)))]
    vni: u32,
    /// Local UDP address to receive on.
    #[arg(long, default_value = "0.0.0.0:4789")]
    local: SocketAddr,
    /// Set the TAP up.
    #[arg(long)]
    up: bool,
    /// Enslave the TAP to this bridge and set it up.
    #[arg(long)]
    master: Option<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tap-vxlan-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn header(vni: u32) -> [u8; VXLAN_HEADER] {
    let v = vni.to_be_bytes();
    [FLAG_VNI_VALID, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The frame inside a VXLAN datagram for `vni`, or `None` if the header does not fit.
fn decapsulate(datagram: &[u8], vni: u32) -> Option<&[u8]> {
    let (h, frame) = datagram.split_at_checked(VXLAN_HEADER)?;
    let got = u32::from_be_bytes([0, h[4], h[5], h[6]]);
    (h[0] & FLAG_VNI_VALID != 0 && got == vni && frame.len() >= 14).then_some(frame)
}

fn run(args: Args) -> io::Result<()> {
    let tap = TapDevice::open(&args.tap, false)?;
    if args.master.is_some() || args.up {
        tap.set_up(args.master.as_deref())?;
    }
    let sock = UdpSocket::bind(args.local)?;
    let tap_rx = tap.try_clone()?;
    let sock_tx = sock.try_clone()?;
    let (remote, vni) = (args.remote, args.vni);
    println!("ready");
    io::stdout().flush()?;

    let egress =
        thread::Builder::new()
            .name("tap-to-udp".into())
            .spawn(move || -> io::Result<()> {
                let mut buf = vec![0u8; BUF];
                buf[..VXLAN_HEADER].copy_from_slice(&header(vni));
                loop {
                    let n = tap_rx.recv(&mut buf[VXLAN_HEADER..])?;
                    if let Err(e) = sock_tx.send_to(&buf[..VXLAN_HEADER + n], remote) {
                        // ICMP errors from an absent VTEP surface here; keep going.
                        eprintln!("tap-vxlan-relay: send to {remote}: {e}");
                    }
                }
            })?;

    let mut buf = vec![0u8; BUF];
    let mut dropped: u64 = 0;
    loop {
        let (n, _) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        match decapsulate(&buf[..n], vni) {
            Some(frame) => {
                if let Err(e) = tap.send(frame) {
                    eprintln!("tap-vxlan-relay: TAP write of {} bytes: {e}", frame.len());
                }
            }
            None => {
                dropped += 1;
                if dropped.is_power_of_two() {
                    eprintln!("tap-vxlan-relay: {dropped} datagrams dropped (bad header or VNI)");
                }
            }
        }
        if egress.is_finished() {
            return match egress.join() {
                Ok(r) => r,
                Err(_) => Err(io::Error::other("the TAP reader thread panicked")),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut d = header(42).to_vec();
        assert_eq!(d, [0x08, 0, 0, 0, 0, 0, 42, 0]);
        d.extend_from_slice(&[0xab; 14]);
        assert_eq!(decapsulate(&d, 42), Some(&[0xab; 14][..]));
        assert_eq!(decapsulate(&d, 43), None);
        d[0] = 0;
        assert_eq!(decapsulate(&d, 42), None);
        assert_eq!(decapsulate(&[0x08, 0, 0], 42), None);
    }
}
