//! The configuration check: the Java API's entry (`RawConfig::parse`, which ends in
//! `Config::validate`) on arbitrary fields, and `Config::validate` on a core
//! configuration built field by field. A configuration that passes is one the host
//! starts with: `Tap::new` and its first timers must not panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tapemu::Tap;
use tapemu_fuzz::parsers::ConfigInput;
use tapemu_jni::config::RawConfig;

fuzz_target!(|input: ConfigInput| {
    let raw = RawConfig {
        mac: input.mac.clone(),
        address: input.address.clone(),
        prefix_len: input.prefix_len,
        gateway: input.gateway.clone(),
        hostname: input.hostname.clone(),
        mtu: input.mtu,
        ipv6: input.ipv6,
        link: input.link.clone(),
    };
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
