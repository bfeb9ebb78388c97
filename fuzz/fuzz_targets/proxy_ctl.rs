//! A runtime command line as the admin listener reads it from `POST /ctl`: never a panic, and
//! a command read back from its own words is the same command (so what the log says was asked
//! is what was done).
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_proxy::ctl::command::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(command) = parse(line) {
        let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(parse(&words), Ok(command));
    }
});
