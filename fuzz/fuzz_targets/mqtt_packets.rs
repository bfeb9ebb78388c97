//! MQTT packets as the generator reads a broker's and the proxy reads a client's CONNECT: the
//! input read packet by packet in each version, within a size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_mqtt::Version;

fuzz_target!(|data: &[u8]| {
    for version in [Version::V311, Version::V5] {
        let mut rest = data;
        while let Ok(Some((_, used))) = throng_mqtt::read::packet(rest, version, 4096) {
            assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
    }
});
