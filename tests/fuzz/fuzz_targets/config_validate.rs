//! The configuration check: the Java API's entry (`RawConfig::parse`, which ends in
//! `Config::validate` and reads a remembered lease's JSON) on arbitrary fields, and
//! `Config::validate` on a core configuration built field by field. A configuration that
//! passes is one the host starts with: `Tap::new` and its first timers must not panic.
#![no_main]
// `RawConfig` is filled in field by field on purpose (see below).
#![allow(clippy::field_reassign_with_default)]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tapemu::Tap;
use tapemu_fuzz::parsers::ConfigInput;
use tapemu_jni::config::RawConfig;

fuzz_target!(|input: ConfigInput| {
    // Field by field, so that a field added to `RawConfig` later keeps its default here
    // rather than breaking this crate's build (it is outside the workspace).
    let mut raw = RawConfig::default();
    raw.mac = input.mac.clone();
    raw.address = input.address.clone();
    raw.prefix_len = input.prefix_len;
    raw.gateway = input.gateway.clone();
    raw.hostname = input.hostname.clone();
    raw.mtu = input.mtu;
    raw.ipv6 = input.ipv6;
    raw.link = input.link.clone();
    raw.remembered_lease = input.remembered_lease.clone();
    raw.socket_pair = input.socket_pair;
    let mut configs = Vec::new();
    if let Ok(parsed) = raw.parse() {
        assert_eq!(parsed.tap.validate(), Ok(()), "{raw:?}");
        configs.push(parsed.core_config());
    }
    let core = input.core.config();
    if core.validate().is_ok() {
        configs.push(core);
    }
    let now = Instant::now();
    for config in configs {
        let mut tap = Tap::new(config, now);
        let later = now + Duration::from_secs(5);
        tap.handle_timeout(later);
        while tap.poll_transmit().is_some() {}
    }
});
