//! Link URLs: parsing never panics, and a URL that parses prints as one that parses to
//! the same link (Display and FromStr round-trip).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapemu::driver::LinkSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = url.parse::<LinkSpec>() else {
        return;
    };
    let shown = spec.to_string();
    let again = match shown.parse::<LinkSpec>() {
        Ok(again) => again,
        Err(e) => panic!("{url:?} parsed, but its display {shown:?} does not: {e}"),
    };
    assert_eq!(
        again.to_string(),
        shown,
        "{url:?}: display is not stable across a round trip"
    );
});
