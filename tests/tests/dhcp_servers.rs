//! End-to-end against DHCP servers other than dnsmasq: ISC Kea (`kea-dhcp4`) and the ISC
//! DHCP server (`dhcpd`), each in place of the lab's dnsmasq on `br0`, with `tapemu run`
//! over the kernel vxlan link.
//!
//! For each server: a lease from its pool (router, DNS, MTU as configured), the LAN host
//! finds us by ARP, a renewal at the T1 the server sends (5 s), a restart that asks for the
//! same address from the lease file (INIT-REBOOT) and gets it, and DHCPRELEASE on SIGINT,
//! all as the server logs them. Kea also restarts with another pool, so that the
//! INIT-REBOOT request is refused (DHCPNAK) and the client discovers an address in the new
//! pool.
//!
//! Kea also serves from another subnet through a relay (dnsmasq in relay mode on the LAN's
//! router, giaddr 192.0.2.1), as DHCP is run in most managed networks: the server
//! identifier is then off-link, so renewals go unicast through the router and not through
//! the relay; with that path cut, the client rebinds at T2 by broadcast, which the relay
//! carries.
//!
//! BusyBox's `udhcpd`, as small routers and gateways run it, sends no T1 or T2: the client
//! takes RFC 2131's defaults (half and seven eighths of a 60 s lease) and renews at 30 s.
//!
//! Needs root, `ip netns`, `kea-dhcp4`, `dhcpd` and `udhcpd`; without them a test prints SKIP and
//! passes, except under `CI=true`. IPv6 is off: dnsmasq, the lab's router advertiser, is
//! stopped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tapemu_tests::lab::*;
use tapemu_tests::sut::*;

const T: Duration = Duration::from_secs(20);
/// The T1 both servers are told to send: a renewal comes within the test's time.
const RENEW_SECONDS: u64 = 5;

/// A running DHCP server in the lab's `lan` namespace and where it logs.
struct Server {
    proc: Proc,
    log: PathBuf,
}

impl Server {
    fn wait_log(&self, needle: &str) -> String {
        self.proc
            .wait_file_line(&self.log, needle, T)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Where and how Kea listens.
struct KeaSite<'a> {
    /// The namespace it runs in (its files go to its directory).
    ns: &'a Netns,
    /// The interface it serves.
    interface: &'a str,
    /// `raw` for clients on the link, `udp` for a server reached through a relay.
    socket: &'a str,
    /// T2, seconds.
    rebind_seconds: u64,
}

/// `kea-dhcp4` at `site`, pool `first`–`last` of 192.0.2.0/24, its files named by `stem`.
fn spawn_kea(site: &KeaSite, kea: &Path, stem: &str, first: u8, last: u8) -> Server {
    let dir = site.ns.dir();
    let (interface, socket, rebind) = (site.interface, site.socket, site.rebind_seconds);
    let log = dir.join(format!("{stem}.log"));
    let config = format!(
        r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{interface}" ], "dhcp-socket-type": "{socket}" }},
  "lease-database": {{ "type": "memfile", "persist": true, "lfc-interval": 0,
                      "name": "{leases}" }},
  "valid-lifetime": 120, "renew-timer": {RENEW_SECONDS}, "rebind-timer": {rebind},
  "authoritative": true,
  "subnet4": [ {{ "id": 1, "subnet": "192.0.2.0/24",
    "pools": [ {{ "pool": "192.0.2.{first} - 192.0.2.{last}" }} ],
    "option-data": [ {{ "name": "routers", "data": "{LAN_ROUTER}" }},
                     {{ "name": "domain-name-servers", "data": "{LAN_DNS}" }},
                     {{ "name": "domain-name", "data": "{LAN_DOMAIN}" }},
                     {{ "name": "interface-mtu", "data": "1500" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "severity": "INFO",
                  "output_options": [ {{ "output": "{log}" }} ] }} ]
}} }}"#,
        leases = dir.join(format!("{stem}.leases.csv")).display(),
        log = log.display(),
    );
    let config_path = dir.join(format!("{stem}.json"));
    std::fs::write(&config_path, config).expect("write kea config");
    // Kea's pid and lock files go to the test's own directory, not /run.
    let pid_dir = format!("KEA_PIDFILE_DIR={}", dir.display());
    let lock_dir = format!("KEA_LOCKFILE_DIR={}", dir.display());
    let kea = kea.to_string_lossy();
    let config_arg = config_path.to_string_lossy();
    let proc = site
        .ns
        .spawn(stem, &["env", &pid_dir, &lock_dir, &kea, "-c", &config_arg])
        .expect("spawn kea-dhcp4");
    let server = Server { proc, log };
    server.wait_log("DHCP4_STARTED");
    server
}

/// ISC `dhcpd` on `br0`, pool .100–.200, logging to its stderr (`-d`).
fn spawn_dhcpd(lab: &Lab, dhcpd: &Path, dir: &Path) -> Server {
    let config = format!(
        "authoritative;\n\
         default-lease-time 120;\n\
         max-lease-time 120;\n\
         option dhcp-renewal-time {RENEW_SECONDS};\n\
         option dhcp-rebinding-time 90;\n\
         subnet 192.0.2.0 netmask 255.255.255.0 {{\n\
         \x20 range 192.0.2.100 192.0.2.200;\n\
         \x20 option routers {LAN_ROUTER};\n\
         \x20 option domain-name-servers {LAN_DNS};\n\
         \x20 option domain-name \"{LAN_DOMAIN}\";\n\
         \x20 option interface-mtu 1500;\n\
         }}\n"
    );
    let (conf, leases, pid) = (
        dir.join("dhcpd.conf"),
        dir.join("dhcpd.leases"),
        dir.join("dhcpd.pid"),
    );
    std::fs::write(&conf, config).expect("write dhcpd.conf");
    std::fs::write(&leases, "").expect("create dhcpd.leases");
    let (dhcpd, conf, leases, pid) = (
        dhcpd.to_string_lossy(),
        conf.to_string_lossy(),
        leases.to_string_lossy(),
        pid.to_string_lossy(),
    );
    #[rustfmt::skip]
    let proc = lab
        .lan()
        .spawn("dhcpd", &[
            &dhcpd, "-f", "-d", "-4", "-cf", &conf, "-lf", &leases, "-pf", &pid, LAN_BRIDGE,
        ])
        .expect("spawn dhcpd");
    let log = proc.stderr_path().to_path_buf();
    let server = Server { proc, log };
    server.wait_log("Server starting service");
    server
}

/// The lab with its dnsmasq stopped, tapemu's binary, and the server program `program`;
/// `None` when the test skips.
fn setup(test: &str, program: &str) -> Option<(Lab, PathBuf, PathBuf)> {
    if !require_root(test) {
        return None;
    }
    let bin = require_bin(test, "tapemu")?;
    let server = require_program(test, program)?;
    let lab = Lab::builder(LabLink::Vxlan).build().expect("lab");
    lab.dnsmasq().stop();
    Some((lab, bin, server))
}

/// `tapemu run` with `mac`, keeping its lease in `lease_file`, without IPv6.
fn spawn_tapemu(lab: &Lab, bin: &Path, mac: &str, lease_file: &Path) -> Proc {
    let (bin, url, lease_file) = (
        bin.to_string_lossy(),
        lab.link_url(),
        lease_file.to_string_lossy(),
    );
    #[rustfmt::skip]
    let argv = [
        &*bin, "run", "--link", &url, "--json", "--mac", mac, "--no-ipv6",
        "--lease-file", &lease_file,
    ];
    lab.phone().spawn("tapemu", &argv).expect("spawn tapemu")
}

/// The `lease` event, after checking the options every server here is given.
fn checked_lease(tapemu: &Proc) -> Value {
    let lease = json_event_where(tapemu, "a lease", T, |v| v["event"] == "lease");
    assert_eq!(lease["gateway"], LAN_ROUTER.to_string(), "{lease}");
    assert_eq!(lease["dns"], serde_json::json!([LAN_DNS.to_string()]));
    assert_eq!(lease["domain"], LAN_DOMAIN, "{lease}");
    assert_eq!(lease["mtu"], 1500, "{lease}");
    lease
}

/// The `lease` event's address, from a server that sends T1 = [`RENEW_SECONDS`].
fn leased_address(tapemu: &Proc) -> Ipv4Addr {
    let lease = checked_lease(tapemu);
    assert_eq!(lease["t1_seconds"], RENEW_SECONDS, "{lease}");
    address_of(&lease)
}

fn address_of(event: &Value) -> Ipv4Addr {
    event["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {event}"))
}

/// Stops `tapemu` with SIGINT (which releases the lease) and waits for it to exit cleanly.
fn stop(tapemu: &Proc) {
    tapemu.signal(libc::SIGINT);
    let status = tapemu.wait_exit(T).expect("tapemu exits");
    assert!(status.success(), "{status}: {}", tapemu.stderr());
}

/// Stops `tapemu` without a release (as a crash or a reboot would), keeping its lease file.
fn kill(tapemu: &Proc) {
    tapemu.signal(libc::SIGKILL);
    let _ = tapemu.wait_exit(T);
}

/// Kea on the LAN itself.
fn kea_on_lan(lab: &Lab) -> KeaSite<'_> {
    KeaSite {
        ns: lab.lan(),
        interface: LAN_BRIDGE,
        socket: "raw",
        rebind_seconds: 90,
    }
}

/// How many lines of the file at `path` contain `needle` so far (0 if it cannot be read).
fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// How many `event` lines `tapemu` has printed so far.
fn count_events(tapemu: &Proc, event: &str) -> usize {
    count_lines(tapemu.stdout_path(), &format!("\"event\":\"{event}\""))
}

/// A lease (which `server` logs as `granted` says), the LAN host finding us, a renewal,
/// then a kill and a restart that gets the same address back from the lease file
/// (INIT-REBOOT). Returns the restarted `tapemu` and the address.
fn lease_renew_reboot(
    lab: &Lab,
    bin: &Path,
    server: &Server,
    mac: &str,
    lease_file: &Path,
    granted: impl Fn(Ipv4Addr) -> String,
) -> (Proc, Ipv4Addr) {
    let tapemu = spawn_tapemu(lab, bin, mac, lease_file);
    let address = leased_address(&tapemu);
    server.wait_log(&granted(address));
    host_finds_phone(lab, address, mac, T);
    let renewed = json_event_where(&tapemu, "a renewal", T, |v| v["event"] == "renewed");
    assert_eq!(address_of(&renewed), address);

    // Back after a crash: INIT-REBOOT for the address in the lease file.
    kill(&tapemu);
    let tapemu = spawn_tapemu(lab, bin, mac, lease_file);
    assert_eq!(leased_address(&tapemu), address);
    (tapemu, address)
}

#[test]
fn kea() {
    let Some((lab, bin, kea)) = setup("dhcp_servers_kea", "kea-dhcp4") else {
        return;
    };
    let mac = "02:00:00:00:4e:a1";
    let lease_file = lab.phone().dir().join("tapemu.lease");

    let server = spawn_kea(&kea_on_lan(&lab), &kea, "kea", 100, 200);
    let (tapemu, address) = lease_renew_reboot(&lab, &bin, &server, mac, &lease_file, |a| {
        format!("lease {a} has been allocated")
    });
    server.wait_log(&format!("INIT-REBOOT state and requests address {address}"));

    // The server comes back serving another pool: it refuses the old address, and the
    // client discovers one in the new pool.
    kill(&tapemu);
    server.proc.stop();
    let server = spawn_kea(&kea_on_lan(&lab), &kea, "kea-new-pool", 150, 160);
    let tapemu = spawn_tapemu(&lab, &bin, mac, &lease_file);
    let moved = leased_address(&tapemu);
    assert!(
        (150..=160).contains(&moved.octets()[3]),
        "{moved} is not in the new pool"
    );
    server.wait_log("DHCP4_INIT_REBOOT");
    host_finds_phone(&lab, moved, mac, T);

    stop(&tapemu);
    server.wait_log(&format!("address {moved} was released properly"));
}

#[test]
fn isc_dhcpd() {
    let Some((lab, bin, dhcpd)) = setup("dhcp_servers_isc_dhcpd", "dhcpd") else {
        return;
    };
    let dir = lab.lan().dir().to_path_buf();
    let mac = "02:00:00:00:4e:a2";
    let lease_file = lab.phone().dir().join("tapemu.lease");

    let server = spawn_dhcpd(&lab, &dhcpd, &dir);
    let (tapemu, address) = lease_renew_reboot(&lab, &bin, &server, mac, &lease_file, |a| {
        format!("DHCPACK on {a} to {mac}")
    });

    stop(&tapemu);
    server.wait_log(&format!("DHCPRELEASE of {address} from {mac}"));
    // Three requests for the address, each acknowledged: the first lease, the renewal
    // and the INIT-REBOOT.
    let acks = count_lines(&server.log, &format!("DHCPACK on {address} to {mac}"));
    assert!(acks >= 3, "{acks} DHCPACKs:\n{}", server.proc.stderr());
}

/// The server's address, on a subnet of its own behind the LAN's router.
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 130);
/// The router's address on the server's subnet.
const ROUTER_TO_SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 129);

#[test]
fn kea_behind_a_relay() {
    let test = "dhcp_servers_kea_behind_a_relay";
    let Some((lab, bin, kea)) = setup(test, "kea-dhcp4") else {
        return;
    };
    let Some(dnsmasq) = require_program(test, "dnsmasq") else {
        return;
    };
    let lan = lab.lan();
    // The server's subnet: a namespace behind `lan`, which routes for this test.
    let srv = Netns::new("dhcpsrv").expect("server namespace");
    #[rustfmt::skip]
    lan.ip(&["link", "add", "vsrv", "type", "veth", "peer", "name", "eth0", "netns", srv.name()])
        .expect("veth to the server");
    lan.ip(&[
        "addr",
        "add",
        &format!("{ROUTER_TO_SERVER}/25"),
        "dev",
        "vsrv",
    ])
    .expect("router address");
    lan.ip(&["link", "set", "vsrv", "up"]).expect("vsrv up");
    srv.ip(&["addr", "add", &format!("{SERVER}/25"), "dev", "eth0"])
        .expect("server address");
    srv.ip(&["link", "set", "eth0", "up"]).expect("eth0 up");
    let via = ROUTER_TO_SERVER.to_string();
    srv.ip(&["route", "add", "default", "via", &via])
        .expect("server's route");
    lan.sysctl("net/ipv4/ip_forward", "1").expect("forwarding");

    let site = KeaSite {
        ns: &srv,
        interface: "eth0",
        socket: "udp",
        rebind_seconds: 10,
    };
    let server = spawn_kea(&site, &kea, "kea", 100, 200);
    let relay_log = lan.dir().join("relay.log");
    let (dnsmasq, relay_arg, log_arg) = (
        dnsmasq.to_string_lossy(),
        format!("--dhcp-relay={LAN_ROUTER},{SERVER}"),
        format!("--log-facility={}", relay_log.display()),
    );
    #[rustfmt::skip]
    let relay = lan
        .spawn("relay", &[
            &dnsmasq, "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
            "--interface", LAN_BRIDGE, &relay_arg, "--log-dhcp", &log_arg,
        ])
        .expect("spawn the relay");
    relay
        .wait_file_line(&relay_log, "DHCP relay from", T)
        .expect("relay up");
    let relayed = || count_lines(&relay_log, "DHCP relay at");

    let mac = "02:00:00:00:4e:a3";
    let tapemu = spawn_tapemu(&lab, &bin, mac, &lab.phone().dir().join("tapemu.lease"));
    let lease = json_event_where(&tapemu, "a lease", T, |v| v["event"] == "lease");
    assert_eq!(lease["server"], SERVER.to_string(), "{lease}");
    assert_eq!(lease["gateway"], LAN_ROUTER.to_string(), "{lease}");
    let address = address_of(&lease);
    host_finds_phone(&lab, address, mac, T);
    let through_relay = relayed();
    assert!(
        through_relay >= 2,
        "DISCOVER and REQUEST went through the relay"
    );

    // T1: the renewal goes unicast to the off-link server, through the router.
    json_event_where(&tapemu, "a renewal", T, |v| v["event"] == "renewed");
    server.wait_log(&format!("lease {address} has been allocated"));
    assert_eq!(relayed(), through_relay, "a renewal is not relayed");

    // Cut the routed path from the LAN to the server (the relay's own packets still go):
    // renewals fail, and at T2 the client rebinds by broadcast, through the relay.
    let to = format!("{SERVER}/32");
    #[rustfmt::skip]
    lan.ip(&["rule", "add", "iif", LAN_BRIDGE, "to", &to, "prohibit", "priority", "100"])
        .expect("cut the path");
    let renewals = count_events(&tapemu, "renewed");
    wait_until(T, "a rebinding through the relay", || {
        relayed() > through_relay && count_events(&tapemu, "renewed") > renewals
    });
    let rebound: Value = tapemu
        .stdout()
        .lines()
        .rfind(|l| l.contains("\"event\":\"renewed\""))
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("the rebound lease");
    assert_eq!(address_of(&rebound), address);

    #[rustfmt::skip]
    lan.ip(&["rule", "del", "iif", LAN_BRIDGE, "to", &to, "prohibit", "priority", "100"])
        .expect("restore the path");
    stop(&tapemu);
    server.wait_log(&format!("address {address} was released properly"));
}

#[test]
fn busybox_udhcpd() {
    let Some((lab, bin, udhcpd)) = setup("dhcp_servers_busybox_udhcpd", "udhcpd") else {
        return;
    };
    let dir = lab.lan().dir();
    let conf = dir.join("udhcpd.conf");
    let leases = dir.join("udhcpd.leases");
    std::fs::write(&leases, "").expect("create udhcpd.leases");
    let config = format!(
        "start 192.0.2.100\nend 192.0.2.200\ninterface {LAN_BRIDGE}\n\
         lease_file {leases}\npidfile {pid}\n\
         opt subnet 255.255.255.0\nopt router {LAN_ROUTER}\nopt dns {LAN_DNS}\n\
         opt domain {LAN_DOMAIN}\nopt mtu 1500\nopt lease 60\n",
        leases = leases.display(),
        pid = dir.join("udhcpd.pid").display(),
    );
    std::fs::write(&conf, config).expect("write udhcpd.conf");
    let (udhcpd, conf) = (udhcpd.to_string_lossy(), conf.to_string_lossy());
    let proc = lab
        .lan()
        .spawn("udhcpd", &[&udhcpd, "-f", &conf])
        .expect("spawn udhcpd");
    let log = proc.stderr_path().to_path_buf();
    let server = Server { proc, log };
    server.wait_log("started");

    let mac = "02:00:00:00:4e:a4";
    let tapemu = spawn_tapemu(&lab, &bin, mac, &lab.phone().dir().join("tapemu.lease"));
    let lease = checked_lease(&tapemu);
    assert_eq!(lease["lease_seconds"], 60, "{lease}");
    assert_eq!(lease["t1_seconds"], 30, "{lease}");
    assert_eq!(lease["t2_seconds"], 52, "{lease}");
    let address = address_of(&lease);
    server.wait_log(&format!("sending ACK to {address}"));
    host_finds_phone(&lab, address, mac, T);

    let renewed = json_event_where(&tapemu, "a renewal at T1", Duration::from_secs(45), |v| {
        v["event"] == "renewed"
    });
    assert_eq!(address_of(&renewed), address);
    let acks = count_lines(&server.log, &format!("sending ACK to {address}"));
    assert!(acks >= 2, "{acks} ACKs:\n{}", server.proc.stderr());
    stop(&tapemu);
}
