//! End-to-end through a TUN with segmentation offloads (the CLI's default) and through
//! a plain one (`--no-offload`, the Android path): 100 MB of TCP each way, a hash of
//! the bytes sent compared with one of the bytes received; UDP datagrams of every size
//! up to the MTU and beyond (IP fragments), each checked as it comes back.
//!
//! Needs root, `ip netns` and the `tapemu` binary, like `e2e.rs`; without them each
//! test prints SKIP and passes, except under `CI=true`.

use std::io::{Read, Write};
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

/// The counters tapemu logs on its way out: super-segments split (from the TUN) and
/// coalesced (to the TUN).
fn super_segments(tapemu: &Proc) -> (u64, u64) {
    let stderr = tapemu.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("super-segments split"))
        .unwrap_or_else(|| panic!("no counters logged: {stderr}"));
    let number = |after: &str| -> u64 {
        let rest = &line[line.find(after).expect(after) + after.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("a count")
    };
    (number("split "), number("coalesced "))
}

#[test]
fn e2e_offload_tcp_100mb_each_way() {
    let Some(bin) = prerequisites("e2e_offload_tcp_100mb_each_way") else {
        return;
    };
    let (lab, tapemu, address) = start(&bin, "02:00:00:00:0f:01", &[]);
    check_offload(&tapemu, true);
    let bytes = 100 * 1024 * 1024;
    for (seed, from, to, dest) in [
        (
            1,
            lab.phone(),
            lab.host(),
            SocketAddr::from((LAN_HOST, 5501)),
        ),
        (
            2,
            lab.host(),
            lab.phone(),
            SocketAddr::from((address, 5502)),
        ),
    ] {
        let (sent, received) = checksummed_transfer(from, to, dest, bytes, seed);
        assert_eq!(received.0, bytes, "{} → {}: bytes", from.role(), to.role());
        assert_eq!(sent, received, "{} → {}: checksum", from.role(), to.role());
    }
    stop(&tapemu);
    // The data went through the offload path both ways.
    let (split, coalesced) = super_segments(&tapemu);
    assert!(
        split > 0 && coalesced > 0,
        "split {split}, coalesced {coalesced}"
    );
}

/// Bytes and a hash of them, in the order they went or came.
type Digest = (u64, u64);

/// The generator of the bytes sent: xorshift64*, so no run of the stream repeats.
struct Stream(u64);

impl Stream {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// FNV-1a over 64 bits, fed in whatever pieces the socket hands out.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Sends `bytes` generated from `seed` over one TCP connection from `from` to a listener
/// in `to` at `dest`; returns what the sender and the receiver each counted and hashed.
/// Bounded: every socket operation times out.
fn checksummed_transfer(
    from: &Netns,
    to: &Netns,
    dest: SocketAddr,
    bytes: u64,
    seed: u64,
) -> (Digest, Digest) {
    let long = Duration::from_secs(120);
    let listener = to.tcp_listen(dest).expect("listen");
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(T)).expect("timeout");
        let (mut n, mut hash, mut buf) = (0u64, Fnv::new(), vec![0; 1 << 16]);
        loop {
            let got = s.read(&mut buf).expect("receive");
            if got == 0 {
                break;
            }
            hash.add(&buf[..got]);
            n += got as u64;
        }
        (n, hash.0)
    });
    let mut s = from.tcp_connect(dest, T).expect("connect");
    s.set_write_timeout(Some(long)).expect("timeout");
    let (mut stream, mut hash, mut buf) = (Stream(seed), Fnv::new(), vec![0; 1 << 16]);
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        s.write_all(&buf[..n]).expect("send");
        hash.add(&buf[..n]);
        sent += n as u64;
    }
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let received = receiver.join().expect("receiver");
    ((sent, hash.0), received)
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
    // One send of 10 × 1000 + 300 bytes with UDP GSO: through a TUN with USO it is one
    // super-datagram that tapemu splits; each datagram comes back on its own.
    set_udp_segment(&phone, 1000);
    let burst = datagram(10_300);
    phone.send_to(&burst, dest).expect("GSO send");
    for (i, want) in burst.chunks(1000).enumerate() {
        let (n, _) = phone.recv_from(&mut buf).expect("echo of a GSO datagram");
        assert_eq!(&buf[..n], want, "GSO datagram {i}");
    }
    set_udp_segment(&phone, 0);
    phone.send_to(b"stop", dest).expect("stop the echo");
    echo_thread.join().expect("echo thread");
    stop(&tapemu);
    // With USO the GSO send above was read as one super-datagram.
    let (split, _) = super_segments(&tapemu);
    assert_eq!(split > 0, offload, "super-segments split: {split}");
}

/// Sets `UDP_SEGMENT` on `socket`: each send is cut into datagrams of `size` bytes (0:
/// off).
fn set_udp_segment(socket: &UdpSocket, size: u16) {
    use std::os::fd::AsRawFd;
    const UDP_SEGMENT: libc::c_int = 103;
    let value = libc::c_int::from(size);
    // SAFETY: setsockopt reads one c_int from a valid pointer, on an open socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
}

#[test]
fn e2e_offload_udp_sizes() {
    udp_sizes(&[], true);
}

#[test]
fn e2e_offload_udp_sizes_plain_tun() {
    udp_sizes(&["--no-offload"], false);
}
