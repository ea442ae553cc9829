//! The DHCP option walker on its own: the options area (and, with overload, `sname` and
//! `file`) of a reply behind a fixed header; what it keeps stays within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapemu_fuzz::parsers::check_dhcp_options;

fuzz_target!(|data: &[u8]| {
    check_dhcp_options(data);
});
