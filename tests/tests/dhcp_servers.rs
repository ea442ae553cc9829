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
//! Needs root, `ip netns`, `kea-dhcp4` and `dhcpd`; without them a test prints SKIP and
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

/// `kea-dhcp4` on `br0`, pool `first`–`last`, its files in `dir` (named by `stem`).
fn spawn_kea(lab: &Lab, kea: &Path, dir: &Path, stem: &str, first: u8, last: u8) -> Server {
    let log = dir.join(format!("{stem}.log"));
    let config = format!(
        r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{LAN_BRIDGE}" ], "dhcp-socket-type": "raw" }},
  "lease-database": {{ "type": "memfile", "persist": true, "lfc-interval": 0,
                      "name": "{leases}" }},
  "valid-lifetime": 120, "renew-timer": {RENEW_SECONDS}, "rebind-timer": 90,
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
    let proc = lab
        .lan()
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

/// The `lease` event's address, after checking the options both servers are given.
fn leased_address(tapemu: &Proc) -> Ipv4Addr {
    let lease = json_event_where(tapemu, "a lease", T, |v| v["event"] == "lease");
    assert_eq!(lease["gateway"], LAN_ROUTER.to_string(), "{lease}");
    assert_eq!(lease["dns"], serde_json::json!([LAN_DNS.to_string()]));
    assert_eq!(lease["domain"], LAN_DOMAIN, "{lease}");
    assert_eq!(lease["mtu"], 1500, "{lease}");
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

#[test]
fn kea() {
    let Some((lab, bin, kea)) = setup("dhcp_servers_kea", "kea-dhcp4") else {
        return;
    };
    let dir = lab.lan().dir().to_path_buf();
    let mac = "02:00:00:00:4e:a1";
    let lease_file = lab.phone().dir().join("tapemu.lease");

    let server = spawn_kea(&lab, &kea, &dir, "kea", 100, 200);
    let tapemu = spawn_tapemu(&lab, &bin, mac, &lease_file);
    let address = leased_address(&tapemu);
    server.wait_log(&format!("lease {address} has been allocated"));
    host_finds_phone(&lab, address, mac, T);
    let renewed = json_event_where(&tapemu, "a renewal", T, |v| v["event"] == "renewed");
    assert_eq!(address_of(&renewed), address);

    // Back after a crash: INIT-REBOOT for the address in the lease file.
    kill(&tapemu);
    let tapemu = spawn_tapemu(&lab, &bin, mac, &lease_file);
    assert_eq!(leased_address(&tapemu), address);
    server.wait_log(&format!("INIT-REBOOT state and requests address {address}"));

    // The server comes back serving another pool: it refuses the old address, and the
    // client discovers one in the new pool.
    kill(&tapemu);
    server.proc.stop();
    let server = spawn_kea(&lab, &kea, &dir, "kea-new-pool", 150, 160);
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
    let tapemu = spawn_tapemu(&lab, &bin, mac, &lease_file);
    let address = leased_address(&tapemu);
    server.wait_log(&format!("DHCPACK on {address} to {mac}"));
    host_finds_phone(&lab, address, mac, T);
    let renewed = json_event_where(&tapemu, "a renewal", T, |v| v["event"] == "renewed");
    assert_eq!(address_of(&renewed), address);

    kill(&tapemu);
    let tapemu = spawn_tapemu(&lab, &bin, mac, &lease_file);
    assert_eq!(leased_address(&tapemu), address);

    stop(&tapemu);
    server.wait_log(&format!("DHCPRELEASE of {address} from {mac}"));
    // Three requests for the address, each acknowledged: the first lease, the renewal
    // and the INIT-REBOOT.
    let log = std::fs::read_to_string(&server.log).expect("dhcpd log");
    let acks = log
        .lines()
        .filter(|l| l.contains(&format!("DHCPACK on {address} to {mac}")))
        .count();
    assert!(acks >= 3, "{acks} DHCPACKs:\n{log}");
}
