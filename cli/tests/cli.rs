//! The `tapemu` binary's argument handling and failures, without privileges.

use std::process::Command;

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
        &["frobnicate"],
    ] {
        let (code, _, err) = tapemu(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("tapemu: "), "{args:?}: {err}");
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
