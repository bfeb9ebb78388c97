//! What any client can send a TLS server before it has keys: ClientHellos whole, split over
//! records and reads, interleaved with other records, with garbage after them, fed to a server's
//! handshake (rustls's, through throng's stream and its alert path) in pieces. A panic, a hang
//! or unbounded memory is the bug (the alert path once indexed into bytes rustls still held).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [piece, wire @ ..] = data else {
        return;
    };
    throng_tls::fuzzing::handshake(wire, usize::from(*piece) * 16 + 1);
});
