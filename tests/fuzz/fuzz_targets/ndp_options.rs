//! The NDP option parser on its own: options behind the fixed fields of each NDP message,
//! with a valid checksum, and the DNSSL name decoder on the raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapemu_fuzz::parsers::check_ndp_options;

fuzz_target!(|data: &[u8]| {
    check_ndp_options(data);
});
