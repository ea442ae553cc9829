//! The `tapemu` binary's argument handling and failures, without privileges.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

fn tapemu(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tapemu"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run tapemu");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_are_one_line_and_exit_2() {
    for args in [
        &["run"][..],
        &["run", "--link", "ftp://192.0.2.1:1"],
        &["run", "--link", "vxlan://192.0.2.1:4789"],
        &[
            "run",
            "--link",
            "udp://192.0.2.1:1",
            "--static",
            "192.0.2.5",
        ],
        &[
            "run",
            "--link",
            "udp://192.0.2.1:1",
            "--gateway",
            "192.0.2.1",
        ],
        &["run", "--link", "udp://192.0.2.1:1", "--mac", "zz"],
        &["lease", "--link", "tcp://192.0.2.1:1?len=3"],
        &[
            "run",
            "--link",
            "tcp://192.0.2.1:1",
            "--tcp-user-timeout",
            "5",
        ],
        &[
            "run",
            "--link",
            "tcp://192.0.2.1:1",
            "--tcp-user-timeout",
            "soon",
        ],
        &[
            "run",
            "--link",
            "udp://192.0.2.1:1",
            "--lease-file",
            "/tmp/x.lease",
            "--no-lease-file",
        ],
        &["lease", "--link", "udp://192.0.2.1:1", "--no-release"],
        &["frobnicate"],
    ] {
        let (code, _, err) = tapemu(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("tapemu: "), "{args:?}: {err}");
    }
}

/// The MAC is checked by the core's `Config::validate`, as the Java API checks it: a
/// multicast or all-zero MAC is a usage error, before anything is opened.
#[test]
fn a_multicast_or_zero_mac_is_a_usage_error() {
    for (mac, says) in [
        (
            "01:00:5e:00:00:01",
            "MAC address 01:00:5e:00:00:01 is multicast",
        ),
        ("ff:ff:ff:ff:ff:ff", "is multicast"),
        ("00:00:00:00:00:00", "MAC address is all zeros"),
    ] {
        // `lease` first: were the check missing, it would give up after a second
        // instead of creating a TUN as `run` would.
        for command in [&["lease", "--timeout", "1"][..], &["run"]] {
            let mut args = command.to_vec();
            args.extend(["--link", "udp://127.0.0.1:9", "--mac", mac]);
            let (code, out, err) = tapemu(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.starts_with("tapemu: ") && err.contains(says),
                "{args:?}: {err}"
            );
            assert!(out.is_empty(), "{args:?}: {out}");
        }
    }
}

#[test]
fn other_invalid_configurations_are_usage_errors() {
    for args in [
        &[
            "lease",
            "--timeout",
            "1",
            "--link",
            "udp://127.0.0.1:9",
            "--hostname",
            "bad host",
        ][..],
        &[
            "run",
            "--link",
            "udp://127.0.0.1:9",
            "--static",
            "192.0.2.5/0",
        ],
        &[
            "run",
            "--link",
            "udp://127.0.0.1:9",
            "--static",
            "192.0.2.5/24",
            "--gateway",
            "198.51.100.1",
        ],
    ] {
        let (code, _, err) = tapemu(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn help_exits_0() {
    let (code, out, _) = tapemu(&["run", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--no-default-route"));
}

#[test]
fn a_link_that_fails_names_the_url_and_exits_1() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let (code, _, err) = tapemu(&["lease", "--link", "tcp://127.0.0.1:1", "--timeout", "5"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("link tcp://127.0.0.1:1?len=2: ") && err.to_lowercase().contains("refused"),
        "{err}"
    );
}

#[test]
fn no_lease_in_time_exits_1() {
    // A UDP link to a port nobody answers on: DHCP gets no reply.
    let (code, _, err) = tapemu(&["lease", "--link", "udp://127.0.0.1:9", "--timeout", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no lease within 1 s"), "{err}");
}

/// `tapemu lease --pcap F` against a UDP peer that never answers, stopped by `signal`
/// once the peer has seen a DHCPDISCOVER: F must be a complete capture holding it.
fn pcap_is_complete_after(signal: i32) {
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP peer");
    peer.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let port = peer.local_addr().expect("peer address").port();
    let pcap = std::env::temp_dir().join(format!(
        "tapemu-cli-test-{}-{signal}.pcap",
        std::process::id()
    ));
    let child = Command::new(env!("CARGO_BIN_EXE_tapemu"))
        .args(["lease", "--link", &format!("udp://127.0.0.1:{port}")])
        .arg("--pcap")
        .arg(&pcap)
        .args(["--timeout", "60"])
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tapemu");
    let mut buf = [0u8; 2048];
    let received = peer.recv_from(&mut buf);
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let out = child.wait_with_output().expect("tapemu ends");
    let (n, _) = received.expect("a DHCPDISCOVER within 20 s");
    let discover = buf[..n].to_vec();
    // A DHCPDISCOVER: IPv4, UDP to port 67, message type 1 after the magic cookie.
    assert_eq!(&discover[12..14], &[0x08, 0x00], "IPv4");
    assert_eq!(discover[23], 17, "UDP");
    assert_eq!(
        &discover[36..38],
        &67u16.to_be_bytes(),
        "to the DHCP server port"
    );
    assert!(
        discover
            .windows(7)
            .any(|w| w == [99, 130, 83, 99, 53, 1, 1]),
        "DHCPDISCOVER"
    );

    let file = std::fs::File::open(&pcap).expect("pcap file");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap header");
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        frames.push(packet.expect("a whole packet").data.into_owned());
    }
    let _ = std::fs::remove_file(&pcap);
    assert!(
        frames.contains(&discover),
        "the capture holds the DISCOVER the peer got ({} frames)",
        frames.len()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "ended in order: {err}");
    assert!(err.contains("interrupted"), "{err}");
}

#[test]
fn pcap_is_complete_after_sigterm() {
    pcap_is_complete_after(libc::SIGTERM);
}

#[test]
fn pcap_is_complete_after_sigint() {
    pcap_is_complete_after(libc::SIGINT);
}

/// A DHCP server's OFFER (2) or ACK (5) for `request`, a client frame from the link.
fn dhcp_reply(request: &[u8]) -> Option<Vec<u8>> {
    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
    use dhcproto::{Decodable, Decoder, Encodable};
    let packet = etherparse::SlicedPacket::from_ethernet(request).ok()?;
    let Some(etherparse::TransportSlice::Udp(udp)) = packet.transport else {
        return None;
    };
    if udp.destination_port() != 67 {
        return None;
    }
    let query = Message::decode(&mut Decoder::new(udp.payload())).ok()?;
    let kind = match query.opts().msg_type()? {
        MessageType::Discover => MessageType::Offer,
        MessageType::Request => MessageType::Ack,
        _ => return None,
    };
    let server = [192, 0, 2, 1];
    let mut reply = Message::new_with_id(
        query.xid(),
        [0; 4].into(),
        [192, 0, 2, 123].into(),
        [0; 4].into(),
        [0; 4].into(),
        &query.chaddr()[..6],
    );
    reply.set_opcode(Opcode::BootReply);
    for option in [
        DhcpOption::MessageType(kind),
        DhcpOption::ServerIdentifier(server.into()),
        DhcpOption::AddressLeaseTime(3600),
        DhcpOption::SubnetMask([255, 255, 255, 0].into()),
        DhcpOption::Router(vec![server.into()]),
        DhcpOption::DomainNameServer(vec![[192, 0, 2, 53].into()]),
        DhcpOption::DomainName("lab.example".into()),
        DhcpOption::InterfaceMtu(1400),
        DhcpOption::BroadcastAddr([192, 0, 2, 255].into()),
    ] {
        reply.opts_mut().insert(option);
    }
    let payload = reply.to_vec().ok()?;
    let client: [u8; 6] = request[6..12].try_into().ok()?;
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0x5e, 0x10, 0, 0xfe], client)
        .ipv4(server, [255; 4], 64)
        .udp(67, 68)
        .write(&mut frame, &payload)
        .ok()?;
    Some(frame)
}

/// `tapemu lease --json` prints the lease as the core presents it, the object the
/// README shows and the Java API reads: all routes, the capped MTU, the search list
/// falling back to the domain.
#[test]
fn lease_json_is_the_presented_lease() {
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP peer");
    server
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let port = server.local_addr().expect("server address").port();
    let child = Command::new(env!("CARGO_BIN_EXE_tapemu"))
        .args(["lease", "--json", "--timeout", "20"])
        .args(["--link", &format!("udp://127.0.0.1:{port}")])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tapemu");
    let mut buf = [0u8; 2048];
    let mut acked = false;
    while !acked {
        let (n, from) = server.recv_from(&mut buf).expect("DHCP within 20 s");
        if let Some(reply) = dhcp_reply(&buf[..n]) {
            server.send_to(&reply, from).expect("send the reply");
            acked = reply.windows(3).any(|w| w == [53, 1, 5]);
        }
    }
    let out = child.wait_with_output().expect("tapemu ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(r#"{"event":"lease","address":"192.0.2.123","prefix":24,"#),
        "{stdout}"
    );
    let lease: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(
        lease,
        serde_json::json!({
            "event": "lease", "address": "192.0.2.123", "prefix": 24, "gateway": "192.0.2.1",
            "dns": ["192.0.2.53"], "domain": "lab.example", "search": ["lab.example"],
            "mtu": 1400,
            "routes": [
                {"destination": "192.0.2.0/24", "gateway": null},
                {"destination": "0.0.0.0/0", "gateway": "192.0.2.1"},
            ],
            "lease_seconds": 3600, "t1_seconds": 1800, "t2_seconds": 3150,
            "broadcast": "192.0.2.255", "server": "192.0.2.1",
        })
    );
}

/// Without root (or CAP_NET_ADMIN) the TUN cannot be created: say so plainly. As root,
/// runs tapemu as `nobody` through setpriv to see it.
#[test]
fn no_privileges_is_said_plainly() {
    let bin = env!("CARGO_BIN_EXE_tapemu");
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc_getuid() } == 0;
    let out = if root {
        let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            println!("SKIP no_privileges_is_said_plainly: setpriv (util-linux) not found");
            return;
        };
        Command::new(setpriv)
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .args([
                bin,
                "run",
                "--link",
                "udp://127.0.0.1:9",
                "--tun",
                "tpmtest0",
            ])
            .env("RUST_LOG", "off")
            .output()
            .expect("setpriv")
    } else {
        Command::new(bin)
            .args(["run", "--link", "udp://127.0.0.1:9", "--tun", "tpmtest0"])
            .env("RUST_LOG", "off")
            .output()
            .expect("tapemu")
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("run as root") || err.contains("/dev/net/tun does not exist"),
        "{err}"
    );
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

#[test]
fn a_bad_link_faults_spec_is_one_line_and_exit_2() {
    for (spec, says) in [
        ("drop=1.5", "drop: `1.5` is not a rate from 0 to 1"),
        ("loss=0.1", "unknown fault `loss`"),
        ("delay=soon", "delay: `soon`"),
        ("", "empty fault spec"),
    ] {
        for command in ["run", "lease"] {
            let args = [
                command,
                "--link",
                "udp://127.0.0.1:9",
                "--link-faults",
                spec,
            ];
            let (code, out, err) = tapemu(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.starts_with("tapemu: ") && err.contains(says),
                "{args:?}: {err}"
            );
            assert!(out.is_empty(), "{args:?}: {out}");
        }
    }
}

/// `--link-faults dup=1,dir=out`: every frame the emulated host sends reaches the peer
/// twice, back to back.
#[test]
fn link_faults_apply_to_the_link() {
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP peer");
    server
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let port = server.local_addr().expect("server address").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapemu"))
        .args(["lease", "--timeout", "20", "--link-faults", "dup=1,dir=out"])
        .args(["--link", &format!("udp://127.0.0.1:{port}")])
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tapemu");
    let mut first = [0u8; 2048];
    let mut second = [0u8; 2048];
    let (n1, _) = server.recv_from(&mut first).expect("a frame within 20 s");
    let (n2, _) = server.recv_from(&mut second).expect("its copy");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first[..n1], second[..n2], "the copy follows the frame");
}
