use std::net::Ipv6Addr;

use proptest::prelude::*;

use super::*;

fn parse_ok(url: &str) -> LinkSpec {
    url.parse()
        .unwrap_or_else(|e| panic!("{url} did not parse: {e}"))
}

#[test]
fn fd_urls() {
    let s = parse_ok("fd://3");
    assert!(matches!(&s, LinkSpec::Fd(fd) if fd.number() == 3));
    assert_eq!(s.to_string(), "fd://3");
    assert_eq!(s, parse_ok("fd://03"));
    for bad in [
        "fd://",
        "fd://-1",
        "fd://x",
        "fd://3:1",
        "fd://3?len=2",
        "fd://99999999999",
    ] {
        assert!(bad.parse::<LinkSpec>().is_err(), "{bad}");
    }
}

#[test]
fn parses_urls() {
    let s = parse_ok("udp://192.0.2.1:5000");
    assert!(
        matches!(&s, LinkSpec::Udp { remote, bind: None } if remote.to_string() == "192.0.2.1:5000")
    );
    let s = parse_ok("udp://192.0.2.1:5000?bind=6000");
    assert_eq!(s.to_string(), "udp://192.0.2.1:5000?bind=0.0.0.0:6000");
    let s = parse_ok("tcp://host.example:7000?len=4");
    assert!(matches!(
        &s,
        LinkSpec::Tcp {
            len: LengthPrefix::U32,
            remote: Remote::Name { host, port: 7000 },
            user_timeout: None,
        } if host == "host.example"
    ));
    let s = parse_ok("tcp://[2001:db8::1]:7000");
    assert!(matches!(
        s,
        LinkSpec::Tcp {
            len: LengthPrefix::U16,
            remote: Remote::Addr(_),
            user_timeout: None,
        }
    ));
    assert_eq!(s.to_string(), "tcp://[2001:db8::1]:7000?len=2");
    let s = parse_ok("vxlan://198.51.100.1?vni=42");
    assert_eq!(s.to_string(), "vxlan://198.51.100.1:4789?vni=42");
    let s = parse_ok("vxlan://fe80::1?vni=7&bind=[::]:4789");
    assert_eq!(s.to_string(), "vxlan://[fe80::1]:4789?vni=7&bind=[::]:4789");
    let s = parse_ok("vxlan://[fe80::1%3]?vni=7");
    assert_eq!(s.to_string(), "vxlan://[fe80::1%3]:4789?vni=7");
    let s = parse_ok("tcp://192.0.2.1:7000?user_timeout_ms=2500");
    assert!(matches!(
        s,
        LinkSpec::Tcp { user_timeout: Some(t), .. } if t == std::time::Duration::from_millis(2500)
    ));
    assert_eq!(
        s.to_string(),
        "tcp://192.0.2.1:7000?len=2&user_timeout_ms=2500"
    );
    let s = parse_ok("tap://tap0");
    assert_eq!(s.to_string(), "tap://tap0");
    for bad in [
        "192.0.2.1:5000",
        "udp://192.0.2.1",
        "tcp://h:1?len=3",
        "tcp://h:1?user_timeout_ms=-1",
        "tcp://h:1?user_timeout_ms=4294967296",
        "vxlan://h:1",
        "vxlan://h:1?vni=16777216",
        "vxlan://h:1?vni=+1",
        "tap://",
        "tap://a:b",
        "tap://..",
        "ftp://h:1",
        "udp://h:1?x=1",
        "udp://h:1?bind=1&bind=2",
        "udp://h:+1",
        "udp://:1",
        "udp://h:",
        "udp://2001:db8::1:5000:x",
        "udp://h@x:1",
    ] {
        assert!(bad.parse::<LinkSpec>().is_err(), "{bad} parsed");
    }
}

/// A bracketed IPv6 host must close and hold an address; what follows `]` is a port.
#[test]
fn malformed_hosts_are_refused_with_a_reason() {
    for (bad, reason) in [
        ("vxlan://[::1?vni=1", "unclosed '['"),
        ("udp://[::1:5000", "unclosed '['"),
        ("udp://[::1]5000", "after ']'"),
        ("udp://[::1]:", "invalid port"),
        ("udp://[not-v6]:5000", "invalid IPv6 address"),
        ("udp://[fe80::1%eth0]:5000", "invalid IPv6 address"),
        ("vxlan://host:99999?vni=1", "invalid port"),
        ("udp://a b:1", "invalid host"),
        ("tcp://[::1]]:1", "after ']'"),
    ] {
        let e = bad.parse::<LinkSpec>().expect_err(bad);
        assert!(e.reason.contains(reason), "{bad}: {}", e.reason);
        assert_eq!(e.url, bad);
    }
}

/// The default port is written out once by `Display` and never added again.
#[test]
fn display_gives_back_the_same_link() {
    for url in [
        "vxlan://fe80::1?vni=1",
        "vxlan://host?vni=1",
        "vxlan://[::ffff:192.0.2.1]?vni=1",
        "udp://[::1]:9?bind=[fe80::2%4]:7",
        "tcp://h-1.example:1",
        "tap://br-lan.1",
    ] {
        let spec = parse_ok(url);
        let shown = spec.to_string();
        let again = parse_ok(&shown);
        assert_eq!(again, spec, "{url}");
        assert_eq!(again.to_string(), shown, "{url}");
    }
}

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("udp".to_owned()),
        Just("tcp".to_owned()),
        Just("vxlan".to_owned()),
        Just("tap".to_owned()),
        Just("fd".to_owned()),
        "[a-z]{0,5}",
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
        (any::<[u16; 8]>(), 0u32..5).prop_map(|(s, z)| format!("[{}%{z}]", Ipv6Addr::from(s))),
        any::<[u16; 8]>().prop_map(|s| Ipv6Addr::from(s).to_string()),
        Just("::1".to_owned()),
        "[a-z][a-z0-9_-]{0,10}(\\.[a-z0-9]{1,5}){0,2}",
        "[a-z]{1,6}[0-9]{0,3}",
        Just("[::1".to_owned()),
        (0u32..100).prop_map(|n| n.to_string()),
        "[\\[\\]:%0-9a-f.]{0,12}",
        ".{0,6}",
    ]
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<u16>().prop_map(|p| format!(":{p}")),
        any::<u16>().prop_map(|p| format!(":{p}")),
        "(:[0-9+-]{0,7})",
        ".{0,3}",
    ]
}

fn param() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..20_000_000).prop_map(|v| format!("vni={v}")),
        (0u32..20_000_000).prop_map(|v| format!("vni={v}")),
        "len=[0-9]",
        (0u64..5_000_000_000).prop_map(|v| format!("user_timeout_ms={v}")),
        any::<u16>().prop_map(|p| format!("bind={p}")),
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(o, p)| format!("bind={}:{p}", Ipv4Addr::from(o))),
        (any::<[u16; 8]>(), 0u32..3, any::<u16>())
            .prop_map(|(s, z, p)| format!("bind=[{}%{z}]:{p}", Ipv6Addr::from(s))),
        "[a-z]{1,4}=[a-z0-9]{0,3}",
        ".{0,4}",
    ]
}

fn url() -> impl Strategy<Value = String> {
    (
        scheme(),
        host(),
        port(),
        proptest::collection::vec(param(), 0..4),
        prop_oneof![Just(String::new()), ".{0,3}"],
    )
        .prop_map(|(scheme, host, port, params, junk)| {
            let mut url = format!("{scheme}://{host}{port}");
            if !params.is_empty() {
                url.push('?');
                url.push_str(&params.join("&"));
            }
            url + &junk
        })
}

fn check_round_trip(url: &str) -> Result<(), TestCaseError> {
    if let Ok(spec) = url.parse::<LinkSpec>() {
        let shown = spec.to_string();
        let again = shown
            .parse::<LinkSpec>()
            .map_err(|e| TestCaseError::fail(format!("{url} → {shown}: {e}")))?;
        prop_assert_eq!(&again, &spec, "{} → {}", url, shown);
        prop_assert_eq!(again.to_string(), shown);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn parse_display_parse_is_the_identity(url in url()) {
        check_round_trip(&url)?;
    }

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(url in ".{0,40}") {
        check_round_trip(&url)?;
    }
}

/// The generator reaches every scheme with accepted URLs (the property above is not
/// vacuous).
#[test]
fn the_generator_produces_accepted_urls_of_every_scheme() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = url();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4096 {
        let url = strategy.new_tree(&mut runner).expect("a value").current();
        if let Ok(spec) = url.parse::<LinkSpec>() {
            seen.insert(spec.to_string().split("://").next().map(str::to_owned));
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
}
