//! End-to-end through a TUN with segmentation offloads (the CLI's default) and through
//! a plain one (`--no-offload`, the Android path): bulk TCP each way with every byte
//! checked, and UDP datagrams of every size up to the MTU and beyond (IP fragments),
//! each checked as it comes back.
//!
//! Needs root, `ip netns` and the `tapemu` binary, like `e2e.rs`; without them each
//! test prints SKIP and passes, except under `CI=true`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use tapemu_tests::lab::*;

const T: Duration = Duration::from_secs(20);

/// Root, namespaces and the `tapemu` binary, or `None` after printing why the test
/// skips.
fn prerequisites(test: &str) -> Option<std::path::PathBuf> {
    if !require_root(test) {
        return None;
    }
    require_bin(test, "tapemu")
}

/// A vxlan lab with `tapemu run` in the phone namespace, once it holds a lease and its
/// TUN has the address; returns the lab, the process and the address.
fn start(bin: &Path, mac: &str, extra: &[&str]) -> (Lab, Proc, Ipv4Addr) {
    let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
    let bin = bin.to_string_lossy();
    let url = lab.link_url();
    let mut argv = vec![&*bin, "run", "--link", &url, "--json", "--mac", mac];
    argv.extend_from_slice(extra);
    let tapemu = lab.phone().spawn("tapemu", &argv).expect("spawn tapemu");
    let address = lab.wait_lease_for_mac(mac, T).expect("lease");
    wait_until(T, "the leased address on the TUN", || {
        lab.phone()
            .addrs_of("tapemu0")
            .is_ok_and(|a| a.iter().any(|a| a.addr == IpAddr::V4(address)))
    });
    lab.host()
        .wait_ping(address.into(), T)
        .expect("host → phone");
    (lab, tapemu, address)
}

/// Checks from the CLI's log that the TUN has offloads (`true`) or is plain.
fn check_offload(tapemu: &Proc, on: bool) {
    let line = tapemu
        .wait_stderr_line("offloads", T)
        .expect("the TUN's offloads logged");
    assert_eq!(!line.contains("offloads None"), on, "{line}");
}

fn stop(tapemu: &Proc) {
    tapemu.signal(libc::SIGTERM);
    let status = tapemu.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", tapemu.stderr());
}

#[test]
fn e2e_offload_tcp_100mb_each_way() {
    let Some(bin) = prerequisites("e2e_offload_tcp_100mb_each_way") else {
        return;
    };
    let (lab, tapemu, address) = start(&bin, "02:00:00:00:0f:01", &[]);
    check_offload(&tapemu, true);
    let bytes = 100 * 1024 * 1024;
    let long = Duration::from_secs(120);
    for (from, to, dest) in [
        (lab.phone(), lab.host(), SocketAddr::from((LAN_HOST, 5501))),
        (lab.host(), lab.phone(), SocketAddr::from((address, 5502))),
    ] {
        // The receiver checks every byte against the sender's pattern.
        let report = tcp_transfer(from, to, dest, bytes, Flow::ClientToServer, long)
            .unwrap_or_else(|e| panic!("TCP {} → {}: {e}", from.role(), to.role()));
        assert_eq!(report.bytes, bytes);
    }
    stop(&tapemu);
}

/// Datagram sizes: every size up to what one 1,500-byte packet holds, then sizes that
/// the kernel sends as IP fragments.
fn datagram_sizes() -> impl Iterator<Item = usize> {
    (1..=1472).chain([1473, 1480, 1500, 2000, 2952, 2953, 4000, 8972, 16000, 65507])
}

/// The content of the datagram of `len` bytes: its length and a pattern.
fn datagram(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ len.wrapping_mul(7)) as u8)
        .collect()
}

/// Sends each datagram from the phone to an echo on the host and checks that what
/// comes back is the same, size by size (resending on a loss).
fn udp_sizes(extra: &[&str], offload: bool) {
    let Some(bin) = prerequisites("e2e_offload_udp_sizes") else {
        return;
    };
    let (lab, tapemu, _address) = start(&bin, "02:00:00:00:0f:02", extra);
    check_offload(&tapemu, offload);
    let echo = lab
        .host()
        .udp_bind(SocketAddr::from((LAN_HOST, 5601)))
        .expect("echo socket");
    echo.set_read_timeout(Some(T)).expect("timeout");
    let echo_thread = std::thread::spawn(move || {
        let mut buf = vec![0; 65536];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            if n == 4 && &buf[..4] == b"stop" {
                break;
            }
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let phone: UdpSocket = lab
        .phone()
        .udp_bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .expect("phone socket");
    phone
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let dest = SocketAddr::from((LAN_HOST, 5601));
    let mut buf = vec![0; 65536];
    for len in datagram_sizes() {
        let sent = datagram(len);
        let mut ok = false;
        for _attempt in 0..5 {
            phone.send_to(&sent, dest).expect("send");
            match phone.recv_from(&mut buf) {
                Ok((n, _)) => {
                    assert_eq!(&buf[..n], &sent[..], "datagram of {len} bytes changed");
                    ok = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(e) => panic!("receive {len}: {e}"),
            }
        }
        assert!(ok, "no echo of a datagram of {len} bytes");
    }
    phone.send_to(b"stop", dest).expect("stop the echo");
    echo_thread.join().expect("echo thread");
    stop(&tapemu);
}

#[test]
fn e2e_offload_udp_sizes() {
    udp_sizes(&[], true);
}

#[test]
fn e2e_offload_udp_sizes_plain_tun() {
    udp_sizes(&["--no-offload"], false);
}
