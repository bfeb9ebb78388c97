//! vegeta's results as `throng report` reads them: its binary (gob) files and its CSV, told apart
//! by their first bytes, converted and read frame by frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = throng_results::vegeta::read_gob(data);
    let _ = throng_results::vegeta::csv::read(data);
    let Ok(mut reader) = throng_results::encode::read_any(std::io::Cursor::new(data.to_vec()))
    else {
        return;
    };
    for _ in 0..100_000 {
        match reader.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
