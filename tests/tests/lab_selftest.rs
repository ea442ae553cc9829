//! Tests of the namespace lab itself, using only kernel parts and the test peers: the
//! kernel's vxlan device and dhclient stand in for tapemu in `phone`.
//!
//! Run as root: `cargo test -p tapemu-tests --test lab_selftest`. Without root (or
//! without `ip netns`) each test prints `SKIP` and passes, except under `CI=true`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use tapemu_tests::lab::*;

const L2PEER: &str = env!("CARGO_BIN_EXE_l2peer");
const RELAY: &str = env!("CARGO_BIN_EXE_tap-vxlan-relay");
const T: Duration = Duration::from_secs(10);

/// Static address for the kernel peer in `phone` when dhclient is not installed.
const KERNEL_PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// Puts the kernel's own VXLAN endpoint in `phone`: the reference for tapemu's vxlan link.
fn kernel_vxlan_in_phone(lab: &Lab, dev: &str) {
    let p = lab.phone();
    p.ip(&[
        "link",
        "add",
        dev,
        "type",
        "vxlan",
        "id",
        &VXLAN_VNI.to_string(),
        "local",
        &UNDERLAY_PHONE.to_string(),
        "remote",
        &UNDERLAY_LAN.to_string(),
        "dstport",
        &VXLAN_PORT.to_string(),
        "dev",
        UNDERLAY_DEV,
    ])
    .expect("create vxlan in phone");
    p.ip(&["link", "set", dev, "mtu", "1500", "up"])
        .expect("vxlan up");
}

fn dhclient_path() -> Option<&'static str> {
    ["/usr/sbin/dhclient", "/sbin/dhclient"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Runs ISC dhclient in the foreground on `dev` with a private config, lease file and
/// script (the stock script would rewrite the machine's /etc/resolv.conf). The script
/// applies the address and default route and appends one `reason=... ip=...` line per
/// event to `events` in the namespace's directory.
fn start_dhclient(ns: &Netns, dhclient: &str, dev: &str) -> Proc {
    let dir = ns.dir();
    let script = dir.join("dhclient-script");
    let events = dir.join("events");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             echo \"reason=$reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers \
             mtu=$new_interface_mtu domain=$new_domain_name lease=$new_dhcp_lease_time\" >> {events}\n\
             case \"$reason\" in BOUND|RENEW|REBIND|REBOOT)\n\
               ip addr replace \"$new_ip_address/$new_subnet_mask\" dev \"$interface\"\n\
               [ -n \"$new_routers\" ] && ip route replace default via ${{new_routers%% *}} dev \"$interface\"\n\
             esac\nexit 0\n",
            events = events.display()
        ),
    )
    .expect("write dhclient script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod dhclient script");
    let conf = dir.join("dhclient.conf");
    std::fs::write(
        &conf,
        "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, \
         domain-search, interface-mtu;\n",
    )
    .expect("write dhclient.conf");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let (conf, script, leases, pid) = (
        s(&conf),
        s(&script),
        s(&dir.join("dhclient.leases")),
        s(&dir.join("dhclient.pid")),
    );
    ns.spawn(
        "dhclient",
        &[
            dhclient, "-d", "-v", "-4", "-cf", &conf, "-sf", &script, "-lf", &leases, "-pf", &pid,
            dev,
        ],
    )
    .expect("spawn dhclient")
}

fn ipv4_on(ns: &Netns, dev: &str) -> Option<Ipv4Addr> {
    ns.addrs_of(dev)
        .ok()?
        .into_iter()
        .find_map(|a| match a.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}

#[test]
fn vxlan_lab_with_kernel_peer_leases_and_pings_both_ways() {
    if !require_root("vxlan_lab_with_kernel_peer_leases_and_pings_both_ways") {
        return;
    }
    let lab = Lab::builder(LabLink::Vxlan)
        .lease_time(Duration::from_secs(120))
        .build()
        .expect("build lab");
    assert_eq!(lab.link_url(), "vxlan://198.51.100.1:4789?vni=42");
    kernel_vxlan_in_phone(&lab, "vx0");
    let phone = lab.phone();
    let mac = phone.mac_of("vx0").expect("vx0 MAC");

    let _dhclient;
    let addr = if let Some(dhclient) = dhclient_path() {
        _dhclient = start_dhclient(phone, dhclient, "vx0");
        let leased = lab
            .wait_lease_for_mac(&mac, Duration::from_secs(30))
            .expect("dnsmasq leases an address to the kernel vxlan peer");
        assert!(
            (DHCP_POOL_FIRST..=DHCP_POOL_LAST).contains(&leased),
            "{leased} outside the pool"
        );
        let events = phone.dir().join("events");
        let bound = wait_for_line(&events, "reason=BOUND", T).expect("dhclient reports BOUND");
        assert!(bound.contains(&format!("ip={leased} ")), "{bound}");
        assert!(bound.contains("routers=192.0.2.1 "), "{bound}");
        assert!(bound.contains("mtu=1500 "), "{bound}");
        assert!(bound.contains("domain=lab.example "), "{bound}");
        assert!(bound.contains("lease=120"), "{bound}");
        wait_for(T, "the leased address on vx0", || {
            (ipv4_on(phone, "vx0") == Some(leased)).then_some(())
        });
        let ack = lab
            .wait_dnsmasq_log("DHCPACK(br0)", T)
            .expect("dnsmasq logs the ACK");
        assert!(ack.contains(&mac), "{ack}");
        leased
    } else {
        eprintln!("dhclient not installed: addressing the kernel peer statically");
        phone
            .ip(&["addr", "add", &format!("{KERNEL_PEER}/24"), "dev", "vx0"])
            .expect("static address");
        KERNEL_PEER
    };

    let r = lab.ping_from_host(addr).expect("host pings the phone");
    assert_eq!(r.received, r.transmitted, "{r:?}");
    lab.ping_from_phone(LAN_HOST).expect("phone pings the host");
    lab.ping_from_phone(LAN_ROUTER)
        .expect("phone pings the router");
    if dhclient_path().is_some() {
        // Default route from the DHCP router option: the off-link server via the router.
        lab.ping_from_phone(OFFLINK_SERVER)
            .expect("phone pings the off-link server");
    }

    // IPv6 from dnsmasq's RA: SLAAC on both sides.
    let host6 = lab.host_ipv6(T).expect("host SLAAC address");
    let phone6 = phone
        .wait_ipv6_in("vx0", LAN_PREFIX6, T)
        .expect("phone SLAAC address");
    lab.ping_from_phone(host6)
        .expect("phone pings the host over IPv6");
    lab.ping_from_host(phone6)
        .expect("host pings the phone over IPv6");
    lab.ping_from_phone(OFFLINK_SERVER6)
        .expect("phone pings the off-link server over IPv6 (RA default route)");

    // TCP both ways, bytes checked.
    let mib = 1 << 20;
    let up = tcp_transfer(
        phone,
        lab.host(),
        sock(LAN_HOST, 5001),
        mib,
        Flow::ClientToServer,
        T,
    )
    .expect("phone -> host transfer");
    assert_eq!(up.bytes, mib);
    let down = tcp_transfer(
        lab.host(),
        phone,
        sock(addr, 5002),
        mib,
        Flow::ClientToServer,
        T,
    )
    .expect("host -> phone transfer");
    assert_eq!(down.bytes, mib);
    tcp_transfer(
        phone,
        lab.host(),
        sock(LAN_HOST, 5003),
        mib,
        Flow::ServerToClient,
        T,
    )
    .expect("host -> phone over a phone-initiated connection");
}

/// A real renewal needs T1 = 60 s with the shortest lease dnsmasq allows, so this one is
/// opt-in: `cargo test -p tapemu-tests --test lab_selftest -- --ignored`.
#[test]
#[ignore = "takes ~65 s: waits for a real DHCP renewal at T1"]
fn short_lease_is_renewed_by_the_kernel_peer() {
    if !require_root("short_lease_is_renewed_by_the_kernel_peer") {
        return;
    }
    let Some(dhclient) = dhclient_path() else {
        eprintln!("SKIP short_lease_is_renewed_by_the_kernel_peer: dhclient not installed");
        return;
    };
    let lab = Lab::builder(LabLink::Vxlan)
        .lease_time(Duration::from_secs(120))
        .dhcp_ping_check(true)
        .build()
        .expect("build lab");
    kernel_vxlan_in_phone(&lab, "vx0");
    let _dhclient = start_dhclient(lab.phone(), dhclient, "vx0");
    let mac = lab.phone().mac_of("vx0").expect("MAC");
    let leased = lab
        .wait_lease_for_mac(&mac, Duration::from_secs(30))
        .expect("lease");
    let first = lab
        .leases()
        .into_iter()
        .find(|l| l.mac == mac)
        .expect("lease line");
    wait_for_line(
        &lab.phone().dir().join("events"),
        "reason=RENEW",
        Duration::from_secs(90),
    )
    .expect("dhclient renews at T1");
    let renewed = wait_for(T, "the lease expiry to move forward", || {
        lab.leases()
            .into_iter()
            .find(|l| l.mac == mac && l.expires > first.expires)
    });
    assert_eq!(renewed.ip, leased);
    let log = lab.dnsmasq_log();
    assert!(log.matches("DHCPACK(br0)").count() >= 2, "{log}");
}

#[test]
fn tap_link_enslaves_a_device_that_appears_later() {
    if !require_root("tap_link_enslaves_a_device_that_appears_later") {
        return;
    }
    let lab = Lab::builder(LabLink::Tap).build().expect("build lab");
    assert_eq!(lab.link_url(), "tap://tap0");
    std::thread::scope(|s| {
        // Start waiting before the device exists, as a test does right after starting tapemu.
        let waiter = s.spawn(|| lab.enslave_to_phone_bridge(DEFAULT_PHONE_TAP, T));
        // A veth stands in for tapemu's TAP: its other end is the phone's "interface".
        lab.phone()
            .ip(&[
                "link",
                "add",
                DEFAULT_PHONE_TAP,
                "type",
                "veth",
                "peer",
                "name",
                "sut0",
            ])
            .expect("veth in phone");
        waiter.join().expect("waiter thread").expect("enslave tap0");
    });
    let phone = lab.phone();
    let master = phone
        .ip(&["-o", "link", "show", DEFAULT_PHONE_TAP])
        .expect("link show");
    assert!(
        master.contains(&format!("master {PHONE_BRIDGE}")),
        "{master}"
    );
    phone
        .ip(&["addr", "add", &format!("{KERNEL_PEER}/24"), "dev", "sut0"])
        .expect("address");
    phone.ip(&["link", "set", "sut0", "up"]).expect("up");
    lab.ping_from_phone(LAN_HOST)
        .expect("phone pings the host through brp and br0");
    lab.ping_from_host(KERNEL_PEER)
        .expect("host pings the phone");
    let e = Lab::builder(LabLink::Vxlan)
        .build()
        .expect("build lab")
        .enslave_to_phone_bridge("x", T)
        .expect_err("vxlan lab has no phone bridge");
    assert!(e.to_string().contains("tap link"), "{e}");
}

fn arp_request(src_mac: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// The sender MAC of an ARP reply from `ip` to `to_mac`, if `frame` is one.
fn arp_reply_from(frame: &[u8], ip: Ipv4Addr, to_mac: [u8; 6]) -> Option<String> {
    let ok = frame.len() >= 42
        && frame[..6] == to_mac
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 2]
        && frame[28..32] == ip.octets();
    ok.then(|| {
        frame[22..28]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

const PROBE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x51];
const PROBE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 51);

#[test]
fn udp_link_speaks_one_frame_per_datagram() {
    if !require_root("udp_link_speaks_one_frame_per_datagram") {
        return;
    }
    let lab = Lab::builder(LabLink::Udp)
        .l2peer_bin(L2PEER)
        .build()
        .expect("build lab");
    assert_eq!(lab.link_url(), "udp://198.51.100.1:7000");
    let br0_mac = lab.lan().mac_of(LAN_BRIDGE).expect("br0 MAC");
    let sock = lab
        .phone()
        .udp_bind(sock(UNDERLAY_PHONE, 0))
        .expect("udp socket in phone");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let server = SocketAddr::from((UNDERLAY_LAN, L2PEER_UDP_PORT));
    let request = arp_request(PROBE_MAC, PROBE_IP, LAN_ROUTER);
    let got = wait_for(T, "an ARP reply from the router over UDP", || {
        sock.send_to(&request, server).ok()?;
        let mut buf = [0u8; 2048];
        // Skip unrelated LAN frames (RAs, the host's NDP) until the reply or a timeout.
        for _ in 0..32 {
            let n = sock.recv(&mut buf).ok()?;
            if let Some(mac) = arp_reply_from(&buf[..n], LAN_ROUTER, PROBE_MAC) {
                return Some(mac);
            }
        }
        None
    });
    assert_eq!(got, br0_mac);
    lab.l2peer()
        .expect("l2peer")
        .wait_stdout_line("peer 198.51.100.2:", T)
        .expect("l2peer reports the peer");

    // An independent implementation of the same framing: socat's TAP <-> UDP.
    let socat = lab
        .phone()
        .spawn(
            "socat",
            &[
                "socat",
                "TUN:192.0.2.52/24,tun-type=tap,iff-no-pi,iff-up,tun-name=sx0",
                &format!("UDP:{server}"),
            ],
        )
        .expect("socat");
    lab.phone().wait_link("sx0", T).expect("socat's TAP");
    lab.phone()
        .wait_ping(IpAddr::V4(LAN_HOST), T)
        .expect("phone (socat TAP) pings the host via l2peer");
    lab.ping_from_host(Ipv4Addr::new(192, 0, 2, 52))
        .expect("host pings socat's TAP");
    drop(socat);
}

fn tcp_link_prefix(link: LabLink, len: usize) {
    let lab = Lab::builder(link)
        .l2peer_bin(L2PEER)
        .build()
        .expect("build lab");
    let br0_mac = lab.lan().mac_of(LAN_BRIDGE).expect("br0 MAC");
    let server = SocketAddr::from((UNDERLAY_LAN, L2PEER_TCP_PORT));
    let mut s: TcpStream = lab
        .phone()
        .tcp_connect(server, T)
        .expect("connect to l2peer");
    lab.l2peer()
        .expect("l2peer")
        .wait_stdout_line("connected 198.51.100.2:", T)
        .expect("l2peer accepted");
    s.set_read_timeout(Some(T)).expect("timeout");
    let frame = arp_request(PROBE_MAC, PROBE_IP, LAN_ROUTER);
    let prefix = (frame.len() as u32).to_be_bytes();
    let mut msg = prefix[4 - len..].to_vec();
    msg.extend_from_slice(&frame);
    s.write_all(&msg).expect("send framed ARP request");
    let got = wait_for(T, "an ARP reply from the router over TCP", || {
        let mut head = [0u8; 4];
        s.read_exact(&mut head[4 - len..]).ok()?;
        let n = u32::from_be_bytes(head) as usize;
        assert!((14..=65535).contains(&n), "bad length prefix {n}");
        let mut f = vec![0u8; n];
        s.read_exact(&mut f).ok()?;
        arp_reply_from(&f, LAN_ROUTER, PROBE_MAC)
    });
    assert_eq!(got, br0_mac);
    drop(s);
    lab.l2peer()
        .expect("l2peer")
        .wait_stdout_line("disconnected", T)
        .expect("l2peer notices the drop");

    // A second connection is accepted; l2peer --connect in phone carries real traffic.
    let len_arg = len.to_string();
    let server_arg = server.to_string();
    let client = lab
        .phone()
        .spawn(
            "l2peer-client",
            &[
                L2PEER,
                "--tap",
                "tp0",
                "--tcp",
                &server_arg,
                "--len",
                &len_arg,
                "--connect",
                "--up",
            ],
        )
        .expect("l2peer client");
    client
        .wait_stdout_line("connected", T)
        .expect("client connected");
    lab.phone()
        .ip(&["addr", "add", "192.0.2.52/24", "dev", "tp0"])
        .expect("address on tp0");
    lab.phone()
        .wait_ping(IpAddr::V4(LAN_HOST), T)
        .expect("phone pings the host over the TCP link");
    tcp_transfer(
        lab.host(),
        lab.phone(),
        sock(Ipv4Addr::new(192, 0, 2, 52), 5004),
        1 << 20,
        Flow::ClientToServer,
        T,
    )
    .expect("host -> phone over the TCP link");
}

#[test]
fn tcp2_link_uses_a_two_byte_prefix() {
    if !require_root("tcp2_link_uses_a_two_byte_prefix") {
        return;
    }
    tcp_link_prefix(LabLink::Tcp2, 2);
}

#[test]
fn tcp4_link_uses_a_four_byte_prefix() {
    if !require_root("tcp4_link_uses_a_four_byte_prefix") {
        return;
    }
    tcp_link_prefix(LabLink::Tcp4, 4);
}

#[test]
fn tap_vxlan_relay_talks_to_the_kernel_vxlan() {
    if !require_root("tap_vxlan_relay_talks_to_the_kernel_vxlan") {
        return;
    }
    let lab = Lab::builder(LabLink::Vxlan).build().expect("build lab");
    let remote = SocketAddr::from((UNDERLAY_LAN, VXLAN_PORT)).to_string();
    let local = SocketAddr::from((UNDERLAY_PHONE, VXLAN_PORT)).to_string();
    let relay = lab
        .phone()
        .spawn(
            "relay",
            &[
                RELAY, "--tap", "rly0", "--remote", &remote, "--vni", "42", "--local", &local,
                "--up",
            ],
        )
        .expect("relay");
    relay.wait_stdout_line("ready", T).expect("relay ready");
    lab.phone()
        .ip(&["addr", "add", &format!("{KERNEL_PEER}/24"), "dev", "rly0"])
        .expect("address on rly0");
    lab.phone()
        .wait_ping(IpAddr::V4(LAN_HOST), T)
        .expect("phone pings the host via the relay");
    let r = lab
        .ping_from_host(KERNEL_PEER)
        .expect("host pings the phone");
    assert_eq!(r.received, r.transmitted, "{r:?}");
    let n = 4 << 20;
    tcp_transfer(
        lab.phone(),
        lab.host(),
        sock(LAN_HOST, 5005),
        n,
        Flow::ClientToServer,
        T,
    )
    .expect("phone -> host");
    tcp_transfer(
        lab.phone(),
        lab.host(),
        sock(LAN_HOST, 5006),
        n,
        Flow::ServerToClient,
        T,
    )
    .expect("host -> phone");
    let perf = iperf3(lab.phone(), lab.host(), IpAddr::V4(LAN_HOST), 1, &[]).expect("iperf3");
    assert!(perf.bytes > 0, "{:?}", perf.json);
    eprintln!("relay iperf3 1 s: {:.0} Mbit/s", perf.bits_per_second / 1e6);
}

#[test]
fn teardown_kills_processes_and_deletes_namespaces() {
    if !require_root("teardown_kills_processes_and_deletes_namespaces") {
        return;
    }
    let lab = Lab::builder(LabLink::Udp)
        .l2peer_bin(L2PEER)
        .build()
        .expect("build lab");
    let names: Vec<String> = [lab.lan(), lab.host(), lab.phone()]
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    let prefix = this_process_prefix();
    for n in &names {
        assert!(n.starts_with(&prefix), "{n} lacks {prefix}");
        assert!(namespaces_of_this_process().contains(n), "{n} not listed");
    }
    let pids = [lab.dnsmasq().pid(), lab.l2peer().expect("l2peer").pid()];
    let dirs = [
        lab.lan().dir().to_path_buf(),
        lab.phone().dir().to_path_buf(),
    ];
    drop(lab);
    check_gone(&names, &pids, &dirs);

    // A test that panics half-way still cleans up.
    let mut seen = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::builder(LabLink::Vxlan).build().expect("build lab");
        seen.extend(
            [lab.lan(), lab.host(), lab.phone()]
                .iter()
                .map(|n| n.name().to_string()),
        );
        seen.push(lab.dnsmasq().pid().to_string());
        panic!("deliberate failure inside a lab");
    }));
    assert!(result.is_err());
    let pid: u32 = seen.pop().expect("pid").parse().expect("pid");
    check_gone(&seen, &[pid], &[]);
}

fn check_gone(names: &[String], pids: &[u32], dirs: &[std::path::PathBuf]) {
    let left = namespaces_of_this_process();
    for n in names {
        assert!(!left.contains(n), "namespace {n} left behind");
        assert!(
            !Path::new("/run/netns").join(n).exists(),
            "{n} still mounted"
        );
    }
    for pid in pids {
        // Reaped children have no /proc entry (the pid is not reused this quickly).
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still alive"
        );
    }
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
