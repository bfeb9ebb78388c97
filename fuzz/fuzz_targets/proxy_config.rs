//! A `throng proxy` configuration file: parsed and checked, never started.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = throng_proxy::config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent"));
});
