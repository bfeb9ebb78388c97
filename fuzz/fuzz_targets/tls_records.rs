//! TLS 1.3 records past the handshake: the fuzzer chooses the suite and the direction (the
//! suite byte's high bit: a client's records to a server, or a server's to a client), a list of
//! records a peer seals (inner type and content: post-handshake messages split or coalesced,
//! alerts, empty records, key updates, tickets), raw bytes after them, and the pieces they
//! arrive in.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [suite, piece, count, rest @ ..] = data else {
        return;
    };
    let mut records = Vec::new();
    let mut at = rest;
    for _ in 0..*count % 48 {
        let [kind, len_high, len_low, tail @ ..] = at else {
            break;
        };
        let len = (usize::from(*len_high) << 8 | usize::from(*len_low)) % 17_000;
        let len = len.min(tail.len());
        let kind = match kind % 5 {
            0 => 22, // handshake
            1 => 21, // alert
            2 => 23, // application data
            3 => 0,  // none (padding only)
            _ => *kind,
        };
        records.push((kind, &tail[..len]));
        at = &tail[len..];
    }
    throng_tls::fuzzing::open_sealed(*suite, &records, at, usize::from(*piece) * 64 + 1);
});
