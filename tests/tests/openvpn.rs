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

    // No check of the lease's gateway: OpenVPN's client takes the router option out (see
    // the module documentation).
    through_layer2_vpn(&lab, &bin, PHONE_VPN_BRIDGE, CLIENT_TAP, MAC, T);
}
