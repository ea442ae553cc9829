//! Link frames and clock steps into a host with a static address, then a DHCP client, then
//! an IPv6-only host; the invariants are checked after every step (see the crate docs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapemu_fuzz::{run, Script};

fuzz_target!(|data: &[u8]| {
    run(&Script::decode(data, false));
});
