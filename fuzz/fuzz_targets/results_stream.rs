//! A results file (`throng attack --output`), read frame by frame as `throng report` does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = throng_results::stream::Reader::new(data) else {
        return;
    };
    for _ in 0..100_000 {
        match reader.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
