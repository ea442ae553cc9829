//! TUN packets mixed with link frames and clock steps, into the same three hosts as
//! `link_frames`, with the same invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapemu_fuzz::{run, Script};

fuzz_target!(|data: &[u8]| {
    run(&Script::decode(data, true));
});
