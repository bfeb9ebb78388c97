//! Targets as `throng attack` reads them: vegeta's HTTP format and its JSON lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = throng_attack::targets::parse_http(text, std::path::Path::new("/nonexistent"));
    let _ = throng_attack::targets::parse_json(text);
});
