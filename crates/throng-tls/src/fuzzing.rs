//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): a peer on keys made from
//! fixed secrets seals whatever records the fuzzer asks for, and the record layer opens them. The
//! fuzzer reaches what an attacker with a session reaches: post-handshake messages split and
//! coalesced any way, alerts, empty records, key updates, and raw bytes after them; and a
//! server's handshake, for what any client can send before it has keys.

use crate::records::keys::Keys;
use crate::records::secrets::Secret;
use crate::records::Records;
use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
use rustls::client::ClientConnectionData;
use rustls::server::ServerConnectionData;
use throng_net::buffers::Buffer;

/// Seals each `(inner type, content)` of `records` from one side, appends `raw` unsealed, and
/// has the other side open it all, in pieces of `piece` bytes (at least 1). `suite` picks one of
/// the three AEADs, and its high bit the direction: clear, a client's records opened by a server
/// (the proxy's clients); set, a server's opened by a client (the proxy's servers, attack's
/// targets), NewSessionTickets among them. Errors are expected; a panic, a hang or unbounded
/// memory is the bug.
pub fn open_sealed(suite: u8, records: &[(u8, &[u8])], raw: &[u8], piece: usize) {
    let (algorithm, hash) = match (suite & 0x7f) % 3 {
        0 => (&AES_128_GCM, 32),
        1 => (&AES_256_GCM, 48),
        _ => (&CHACHA20_POLY1305, 32),
    };
    let client_secret: Vec<u8> = (0..hash as u8).collect();
    let server_secret: Vec<u8> = (100..100 + hash as u8).collect();
    let keys =
        |secret: &[u8]| Secret::new(secret).and_then(|s| Keys::from_secret(algorithm, s, 0).ok());
    let (Some(ctx), Some(crx), Some(stx), Some(srx)) = (
        keys(&client_secret),
        keys(&server_secret),
        keys(&server_secret),
        keys(&client_secret),
    ) else {
        return;
    };
    let mut client: Records<ClientConnectionData> = Records::from_keys(ctx, crx);
    let mut server: Records<ServerConnectionData> = Records::from_keys(stx, srx);
    if suite & 0x80 == 0 {
        exchange(&mut client, &mut server, records, raw, piece);
    } else {
        exchange(&mut server, &mut client, records, raw, piece);
    }
}

/// `from` seals `records`, `raw` follows, and `to` opens the lot in pieces of `piece` bytes.
fn exchange<A: crate::records::Tickets, B: crate::records::Tickets>(
    from: &mut Records<A>,
    to: &mut Records<B>,
    records: &[(u8, &[u8])],
    raw: &[u8],
    piece: usize,
) {
    let mut wire = Vec::new();
    for (kind, content) in records {
        let mut out = Buffer::take();
        if from.seal_record(*kind, content, &mut out).is_ok() {
            wire.extend_from_slice(out.filled());
        }
    }
    wire.extend_from_slice(raw);
    let mut incoming = Buffer::take();
    let mut outgoing = None;
    for part in wire.chunks(piece.max(1)) {
        let spare = incoming.spare();
        let take = part.len().min(spare.len());
        spare[..take].copy_from_slice(&part[..take]);
        incoming.end += take;
        if to.open(&mut incoming, &mut outgoing, |_| {}).is_err() {
            return;
        }
        outgoing = None;
    }
}

/// Hands `wire` to a server's handshake (rustls's, through throng's stream) in pieces of
/// `piece` bytes (at least 1), a fresh connection of one configuration each time.
pub fn handshake(wire: &[u8], piece: usize) {
    use std::sync::{Arc, OnceLock};
    static CONFIG: OnceLock<Option<Arc<rustls::ServerConfig>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let (cert, key) = crate::config::self_signed(&["localhost"]).ok()?;
        let certs = crate::config::parse_certs(cert.as_bytes()).ok()?;
        let key = crate::config::parse_key(key.as_bytes()).ok()?;
        let config = crate::config::server_config(certs, key, &[b"http/1.1"], &[]).ok()?;
        let mut config = (*config).clone();
        crate::records::secrets::prepare_server(&mut config);
        Some(Arc::new(config))
    });
    if let Some(config) = config {
        crate::stream::fuzz_handshake(Arc::clone(config), wire, piece);
    }
}
