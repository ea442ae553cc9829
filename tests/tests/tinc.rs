//! End-to-end against a real tinc 1.0 VPN in switch mode (`Mode = switch`: a virtual
//! Ethernet switch between the nodes), another layer-2 VPN tapemu exists for.
//!
//! `lan` runs the node `lan`, its TAP a port of `br0` beside dnsmasq and the LAN host.
//! `phone` runs the node `phone`, which connects to it over the underlay; its TAP is a
//! port of a phone switch, and tapemu's `tap://` link is the other port: every frame
//! between tapemu and the LAN crosses tinc's encrypted tunnel. Each node's RSA keys are
//! made here (`tincd -K`) and its host file, with the public key, copied to the other.
//!
//! Checked, as through OpenVPN (`tests/src/sut.rs`, `through_layer2_vpn`): the lease
//! equals dnsmasq's, with its router; ARP and ping both ways; TCP each way, counted on
//! tinc's TAP; SLAAC and an IPv6 ping; DHCPRELEASE on SIGINT.
//!
//! Needs root, `ip netns` and `tincd`; without them the test prints SKIP and passes,
//! except under `CI=true`.

use std::path::Path;
use std::time::Duration;

use tapemu_tests::lab::*;
use tapemu_tests::sut::*;

const T: Duration = Duration::from_secs(20);
const MAC: &str = "02:00:00:00:71:0c";
/// tinc's TAP in `lan` (a port of `br0`) and in `phone` (a port of [`PHONE_SWITCH`]).
const LAN_TAP: &str = "tincs0";
const PHONE_TAP: &str = "tincc0";
const PHONE_SWITCH: &str = "brtinc";

/// Writes the configuration of node `name` into `dir` (its `tinc.conf`, and its own host
/// file with `host` lines) and generates its keys, which append the public key to that
/// host file.
fn make_node(tincd: &Path, dir: &Path, name: &str, conf: &str, host: &str) {
    std::fs::create_dir_all(dir.join("hosts")).expect("tinc dir");
    std::fs::write(dir.join("tinc.conf"), format!("Name = {name}\n{conf}")).expect("tinc.conf");
    std::fs::write(dir.join("hosts").join(name), host).expect("host file");
    let out = std::process::Command::new(tincd)
        .arg("-c")
        .arg(dir)
        .arg("-K2048")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tincd -K");
    assert!(
        out.status.success(),
        "tincd -K: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts node `dir` in `ns` in the foreground, then makes its TAP `dev` a port of
/// `bridge` once tinc has created it.
fn start_node(ns: &Netns, tincd: &str, dir: &Path, dev: &str, bridge: &str) -> Proc {
    let (dir, pid) = (
        dir.to_string_lossy().into_owned(),
        format!("--pidfile={}", dir.join("tinc.pid").display()),
    );
    let node = ns
        .spawn("tincd", &[tincd, "-c", &dir, "-D", "-d1", &pid])
        .expect("spawn tincd");
    ns.wait_link(dev, T).expect("tinc's TAP");
    add_bridge_port(ns, dev, bridge).expect("tinc's TAP into the bridge");
    node
}

#[test]
fn tinc_switch_mode() {
    let test = "tinc_switch_mode";
    if !require_root(test) {
        return;
    }
    let (Some(bin), Some(tincd)) = (require_bin(test, "tapemu"), require_program(test, "tincd"))
    else {
        return;
    };
    // The vxlan lab: nothing but the underlay joins `phone` to `lan`, so tinc is the only
    // layer-2 path.
    let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
    let (lan, phone) = (lab.lan(), lab.phone());
    let (lan_dir, phone_dir) = (lan.dir().join("tinc"), phone.dir().join("tinc"));
    make_node(
        &tincd,
        &lan_dir,
        "lan",
        &format!(
            "Mode = switch\nInterface = {LAN_TAP}\nAddressFamily = ipv4\n\
             BindToAddress = {UNDERLAY_LAN}\n"
        ),
        &format!("Address = {UNDERLAY_LAN}\nPort = 655\n"),
    );
    make_node(
        &tincd,
        &phone_dir,
        "phone",
        &format!("Mode = switch\nInterface = {PHONE_TAP}\nAddressFamily = ipv4\nConnectTo = lan\n"),
        "",
    );
    for (from, to, name) in [
        (&lan_dir, &phone_dir, "lan"),
        (&phone_dir, &lan_dir, "phone"),
    ] {
        std::fs::copy(from.join("hosts").join(name), to.join("hosts").join(name))
            .expect("exchange host files");
    }

    let tincd = tincd.to_string_lossy();
    let lan_node = start_node(lan, &tincd, &lan_dir, LAN_TAP, LAN_BRIDGE);
    add_switch(phone, PHONE_SWITCH).expect("phone switch");
    let phone_node = start_node(phone, &tincd, &phone_dir, PHONE_TAP, PHONE_SWITCH);
    phone_node
        .wait_stderr_line("Connection with lan", T)
        .unwrap_or_else(|e| panic!("tinc connected: {e}\nlan node: {}", lan_node.stderr()));

    let lease = through_layer2_vpn(&lab, &bin, PHONE_SWITCH, PHONE_TAP, MAC, T);
    assert_eq!(lease["gateway"], LAN_ROUTER.to_string(), "{lease}");
}
