//! A results file (`throng attack --output`, `throng mqtt --output`), read frame by frame as
//! `throng report` does; an MQTT run's frames also go through the report's merging and text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_results::stream::{Frame, Reader};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data) else {
        return;
    };
    if let Ok(Some(Frame::Meta(meta))) = reader.next_frame() {
        if meta.mqtt.is_some() {
            let mut summary = throng_results::mqtt::summary::Summary::default();
            if summary.add_stream("fuzz", *meta, reader).is_ok() {
                let _ = summary.text();
            }
            return;
        }
    }
    for _ in 0..100_000 {
        match reader.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
