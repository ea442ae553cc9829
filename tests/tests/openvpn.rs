//! End-to-end against a real OpenVPN: the `tapemu` binary joins a LAN through an OpenVPN
//! 2.x server in bridged `dev tap` mode (`--server-bridge` without a pool: addresses come
//! from the DHCP server on the server's LAN), the layer-2 VPN tapemu exists for.
//!
//! `lan` runs the OpenVPN server, its TAP a port of `br0` beside dnsmasq and the LAN
//! host. `phone` runs the OpenVPN client (`--client`, TLS with certificates made here by
//! `openssl`) on a TAP that is a port of a phone bridge, and tapemu's `tap://` link is the
//! other port: every frame between tapemu and the LAN crosses OpenVPN's encrypted UDP
//! tunnel over the underlay, the only path between the two namespaces' LANs.
//!
//! Checked: the lease equals dnsmasq's, the LAN host ARPs for us and pings us, we ping it,
//! a TCP transfer each way, SLAAC from the router's RA and a ping over IPv6, the OpenVPN
//! client's TAP counted the transfers, and SIGINT sends DHCPRELEASE.
//!
//! OpenVPN's client removes the router option from DHCP replies it carries when the
//! server pushes `route-gateway dhcp` (as `--server-bridge` does) and keeps the router for
//! routes it is pushed, so the lease has no gateway: routes beyond the LAN come from the
//! VPN's configuration, not from the LAN's DHCP server.
//!
//! Needs root, `ip netns`, `openvpn` and `openssl`; without them the test prints SKIP and
//! passes, except under `CI=true`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tapemu_tests::lab::*;
use tapemu_tests::sut::*;

const T: Duration = Duration::from_secs(20);
const MAC: &str = "02:00:00:00:0e:01";
/// OpenVPN's TAP in `lan` (a port of `br0`) and in `phone` (a port of [`PHONE_VPN_BRIDGE`]).
const SERVER_TAP: &str = "ovs0";
const CLIENT_TAP: &str = "ovc0";
const PHONE_VPN_BRIDGE: &str = "brvpn";
const OPENVPN_PORT: &str = "1194";

/// A CA, and a server and a client certificate it signed (P-256, valid two days), in `dir`.
fn make_certificates(openssl: &Path, dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new(openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=tapemu test CA"];
    ca.extend(key);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    run(&ca);
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let (key_file, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let subject = format!("/CN={name}");
        let mut req = vec!["req", "-subj", &subject, "-keyout", &key_file, "-out", &csr];
        req.extend(key);
        run(&req);
        std::fs::write(
            dir.join(&ext),
            format!("extendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyAgreement\n"),
        )
        .expect("write extensions");
        run(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }
}

/// Creates the persistent TAP `dev` in `ns` for OpenVPN and makes it a port of `bridge`.
fn vpn_tap(ns: &Netns, openvpn: &str, dev: &str, bridge: &str) {
    ns.run_ok(&[openvpn, "--mktun", "--dev", dev, "--dev-type", "tap"])
        .expect("openvpn --mktun");
    add_bridge_port(ns, dev, bridge).expect("OpenVPN's TAP into the bridge");
}

/// A counter of `dev` in `ns` (`rx_bytes`, `tx_bytes`).
fn counter(ns: &Netns, dev: &str, name: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/{name}");
    ns.run_ok(&["cat", &path])
        .expect("read counter")
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn openvpn_server_bridge() {
    let test = "openvpn_server_bridge";
    if !require_root(test) {
        return;
    }
    let (Some(bin), Some(openvpn), Some(openssl)) = (
        require_bin(test, "tapemu"),
        require_program(test, "openvpn"),
        require_program(test, "openssl"),
    ) else {
        return;
    };
    let openvpn = openvpn.to_string_lossy().into_owned();
    // The vxlan lab: nothing but the underlay joins `phone` to `lan` (its vxlan0 in br0
    // has no peer in `phone`), so OpenVPN is the only layer-2 path.
    let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
    let (lan, phone) = (lab.lan(), lab.phone());
    let certs = lan.dir().join("pki");
    std::fs::create_dir_all(&certs).expect("pki dir");
    make_certificates(&openssl, &certs);
    let file = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let (ca, server_crt, server_key, client_crt, client_key) = (
        file("ca.crt"),
        file("server.crt"),
        file("server.key"),
        file("client.crt"),
        file("client.key"),
    );

    vpn_tap(lan, &openvpn, SERVER_TAP, LAN_BRIDGE);
    let underlay_lan = UNDERLAY_LAN.to_string();
    #[rustfmt::skip]
    let server = lan
        .spawn("openvpn-server", &[
            &openvpn, "--server-bridge", "--dev", SERVER_TAP, "--dev-type", "tap",
            "--proto", "udp", "--local", &underlay_lan, "--port", OPENVPN_PORT,
            "--ca", &ca, "--cert", &server_crt, "--key", &server_key, "--dh", "none",
            "--verb", "3",
        ])
        .expect("spawn the OpenVPN server");
    server
        .wait_stdout_line("Initialization Sequence Completed", T)
        .expect("OpenVPN server up");

    add_switch(phone, PHONE_VPN_BRIDGE).expect("phone bridge");
    vpn_tap(phone, &openvpn, CLIENT_TAP, PHONE_VPN_BRIDGE);
    #[rustfmt::skip]
    let client = phone
        .spawn("openvpn-client", &[
            &openvpn, "--client", "--dev", CLIENT_TAP, "--dev-type", "tap",
            "--proto", "udp", "--remote", &underlay_lan, OPENVPN_PORT, "--nobind",
            "--ca", &ca, "--cert", &client_crt, "--key", &client_key,
            "--remote-cert-tls", "server", "--verb", "3",
        ])
        .expect("spawn the OpenVPN client");
    client
        .wait_stdout_line("Initialization Sequence Completed", T)
        .unwrap_or_else(|e| panic!("OpenVPN client up: {e}\nserver: {}", server.stdout()));

    let bin = bin.to_string_lossy();
    let tapemu = phone
        .spawn(
            "tapemu",
            &[&bin, "run", "--link", "tap://tap0", "--json", "--mac", MAC],
        )
        .expect("spawn tapemu");
    phone.wait_link("tap0", T).expect("tapemu's TAP");
    add_bridge_port(phone, "tap0", PHONE_VPN_BRIDGE).expect("tap0 into the phone bridge");

    let lease = json_event_where(&tapemu, "a lease", T, |v| v["event"] == "lease");
    let address: Ipv4Addr = lease["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {lease}"));
    assert_eq!(lab.wait_lease_for_mac(MAC, T).expect("lease file"), address);
    assert_eq!(lease["server"], LAN_ROUTER.to_string(), "{lease}");
    assert_eq!(lease["prefix"], 24, "{lease}");
    assert_eq!(lease["dns"], serde_json::json!([LAN_DNS.to_string()]));
    wait_until(T, "the leased address on the TUN", || {
        phone
            .addrs_of("tapemu0")
            .is_ok_and(|a| a.iter().any(|a| a.addr == IpAddr::V4(address)))
    });

    // The host has never seen us: it ARPs through OpenVPN and the emulator answers.
    host_finds_phone(&lab, address, MAC, T);

    let (rx0, tx0) = (
        counter(phone, CLIENT_TAP, "rx_bytes"),
        counter(phone, CLIENT_TAP, "tx_bytes"),
    );
    let mb = 4 * 1024 * 1024;
    tcp_each_way(&lab, address, mb, T);
    // The OpenVPN client's TAP is where the phone bridge hands frames to OpenVPN (its rx)
    // and takes them back (its tx): both transfers went through the tunnel.
    let (rx1, tx1) = (
        counter(phone, CLIENT_TAP, "rx_bytes"),
        counter(phone, CLIENT_TAP, "tx_bytes"),
    );
    assert!(
        rx1 - rx0 > mb && tx1 - tx0 > mb,
        "OpenVPN's TAP carried {} bytes out, {} in",
        rx1 - rx0,
        tx1 - tx0
    );

    // IPv6: the router's RA crosses the VPN like any multicast frame.
    let our6 = global_ipv6(&lab, &tapemu, T);
    lab.host()
        .wait_ping(our6.into(), T)
        .expect("host → phone over IPv6");

    tapemu.signal(libc::SIGINT);
    let status = tapemu.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", tapemu.stderr());
    lab.wait_dnsmasq_log(&format!("DHCPRELEASE(br0) {address}"), T)
        .expect("DHCPRELEASE through OpenVPN");
}
