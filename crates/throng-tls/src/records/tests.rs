//! The record layer against itself, record by record: a client and a server on keys made from
//! known secrets (no handshake), so that a test can seal exactly the records a hostile peer
//! would, for each of the three TLS 1.3 suites.
//! The same behaviour against rustls's own record layer and OpenSSL is tested in `stream.rs`
//! and the proxy's tests.

use super::keys::Keys;
use super::*;
use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
use rustls::client::ClientConnectionData;
use rustls::crypto::aws_lc_rs::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::server::ServerConnectionData;
use secrets::Secret;

/// The three TLS 1.3 suites, with the AEAD and hash length each uses.
fn suites() -> [(
    SupportedCipherSuite,
    &'static aws_lc_rs::aead::Algorithm,
    usize,
); 3] {
    [
        (TLS13_AES_128_GCM_SHA256, &AES_128_GCM, 32),
        (TLS13_AES_256_GCM_SHA384, &AES_256_GCM, 48),
        (TLS13_CHACHA20_POLY1305_SHA256, &CHACHA20_POLY1305, 32),
    ]
}

type Suite = (
    SupportedCipherSuite,
    &'static aws_lc_rs::aead::Algorithm,
    usize,
);

/// A client and a server of `suite`, on keys from fixed secrets.
fn pair(
    (_, algorithm, hash): Suite,
) -> (Records<ClientConnectionData>, Records<ServerConnectionData>) {
    let client_secret: Vec<u8> = (0..hash as u8).collect();
    let server_secret: Vec<u8> = (100..100 + hash as u8).collect();
    let keys =
        |secret: &[u8]| Keys::from_secret(algorithm, Secret::new(secret).unwrap(), 0).unwrap();
    (
        Records::from_keys(keys(&client_secret), keys(&server_secret)),
        Records::from_keys(keys(&server_secret), keys(&client_secret)),
    )
}

/// Opens everything in `wire` on `to`: the data delivered, or the error, and what `to` sent.
fn open_all<D: Tickets>(
    to: &mut Records<D>,
    wire: &mut Option<Buffer>,
) -> (io::Result<Vec<u8>>, Option<Buffer>) {
    let mut incoming = wire.take().unwrap_or_else(Buffer::take);
    let mut outgoing = None;
    let mut data = Vec::new();
    let result = to
        .open(&mut incoming, &mut outgoing, |d| data.extend_from_slice(d))
        .map(|_| data);
    (result, outgoing)
}

fn seal_raw<D: Tickets>(
    from: &mut Records<D>,
    kind: u8,
    content: &[u8],
    wire: &mut Option<Buffer>,
) {
    let out = wire.get_or_insert_with(Buffer::take);
    from.seal_record(kind, content, out).unwrap();
}

/// The alert a refusal sealed for the peer, opened by the peer: its description.
fn alert_in(peer: &mut Records<ClientConnectionData>, sent: Option<Buffer>) -> String {
    let mut sent = sent;
    match open_all(peer, &mut sent).0 {
        Err(e) => e.to_string(),
        Ok(data) => format!("no alert, data {data:?}"),
    }
}

#[test]
fn every_suite_carries_data_and_key_updates_both_ways() {
    for suite in suites() {
        let (mut client, mut server) = pair(suite);
        let name = format!("{:?}", suite.0.suite());
        // A maximum-size record, then a small one.
        let big = vec![7u8; MAX_PLAINTEXT];
        let mut wire = None;
        assert_eq!(
            client.seal(&big, &mut wire).unwrap(),
            MAX_PLAINTEXT,
            "{name}"
        );
        let (got, _) = open_all(&mut server, &mut wire);
        assert_eq!(got.unwrap(), big, "{name}");
        // The client asks for a key update, split over two records; the server follows and
        // answers with its own, which the client follows.
        let mut wire = None;
        seal_raw(&mut client, HANDSHAKE, &[KEY_UPDATE, 0, 0], &mut wire);
        seal_raw(&mut client, HANDSHAKE, &[1, 1], &mut wire);
        client.tx = client.tx.next().unwrap();
        client.seal(b"after", &mut wire).unwrap();
        let (got, mut answer) = open_all(&mut server, &mut wire);
        assert_eq!(got.unwrap(), b"after", "{name}");
        server.seal(b"reply", &mut answer).unwrap();
        let (got, _) = open_all(&mut client, &mut answer);
        assert_eq!(got.unwrap(), b"reply", "{name}");
    }
}

#[test]
fn a_record_stuffed_with_key_updates_is_refused() {
    for suite in suites() {
        let (mut client, mut server) = pair(suite);
        let stuffed = [KEY_UPDATE, 0, 0, 1, 0].repeat(3000);
        let mut wire = None;
        seal_raw(&mut client, HANDSHAKE, &stuffed, &mut wire);
        let (got, alert) = open_all(&mut server, &mut wire);
        let error = got.unwrap_err().to_string();
        assert!(error.contains("does not end its record"), "{error}");
        // The peer is told why, under the key it sends with.
        assert!(alert_in(&mut client, alert).contains("alert 10"));
    }
}

#[test]
fn more_than_32_empty_records_in_a_row_are_refused() {
    let (mut client, mut server) = pair(suites()[0]);
    let mut wire = None;
    for _ in 0..32 {
        seal_raw(&mut client, APPLICATION_DATA, b"", &mut wire);
    }
    client.seal(b"x", &mut wire).unwrap();
    for _ in 0..32 {
        seal_raw(&mut client, APPLICATION_DATA, b"", &mut wire);
    }
    let (got, _) = open_all(&mut server, &mut wire);
    assert_eq!(got.unwrap(), b"x", "32 in a row, data, 32 more: allowed");
    let mut wire = None;
    seal_raw(&mut client, APPLICATION_DATA, b"", &mut wire);
    let (got, alert) = open_all(&mut server, &mut wire);
    let error = got.unwrap_err().to_string();
    assert!(error.contains("empty records"), "{error}");
    assert!(alert_in(&mut client, alert).contains("alert 10"));
}

#[test]
fn empty_handshake_and_alert_records_are_refused() {
    for kind in [HANDSHAKE, ALERT] {
        let (mut client, mut server) = pair(suites()[1]);
        let mut wire = None;
        seal_raw(&mut client, kind, b"", &mut wire);
        let error = open_all(&mut server, &mut wire).0.unwrap_err().to_string();
        assert!(error.contains("empty handshake or alert"), "{error}");
    }
}

#[test]
fn more_than_4_warning_alerts_are_refused() {
    let (mut client, mut server) = pair(suites()[2]);
    let mut wire = None;
    for _ in 0..4 {
        seal_raw(&mut client, ALERT, &[1, USER_CANCELED], &mut wire);
    }
    client.seal(b"still here", &mut wire).unwrap();
    assert_eq!(open_all(&mut server, &mut wire).0.unwrap(), b"still here");
    let mut wire = None;
    seal_raw(&mut client, ALERT, &[1, USER_CANCELED], &mut wire);
    let error = open_all(&mut server, &mut wire).0.unwrap_err().to_string();
    assert!(error.contains("warning alerts"), "{error}");
}

#[test]
fn more_than_32_key_update_requests_without_data_are_refused() {
    let (mut client, mut server) = pair(suites()[0]);
    let request = |client: &mut Records<ClientConnectionData>, wire: &mut Option<Buffer>| {
        seal_raw(client, HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 1], wire);
        client.tx = client.tx.next().unwrap();
    };
    for _ in 0..32 {
        let mut wire = None;
        request(&mut client, &mut wire);
        let (got, mut answer) = open_all(&mut server, &mut wire);
        assert!(got.unwrap().is_empty());
        // Follow the server's own update, as a peer would.
        assert!(open_all(&mut client, &mut answer).0.is_ok());
    }
    let mut wire = None;
    request(&mut client, &mut wire);
    let error = open_all(&mut server, &mut wire).0.unwrap_err().to_string();
    assert!(error.contains("KeyUpdate requests"), "{error}");
}

#[test]
fn a_record_over_the_limits_is_refused_with_record_overflow() {
    let (mut client, mut server) = pair(suites()[0]);
    let mut wire = None;
    seal_raw(
        &mut client,
        APPLICATION_DATA,
        &vec![1u8; MAX_PLAINTEXT + 1],
        &mut wire,
    );
    let (got, alert) = open_all(&mut server, &mut wire);
    assert!(got.unwrap_err().to_string().contains("record_overflow"));
    assert!(alert_in(&mut client, alert).contains("alert 22"));
}

/// A client keeps rustls's remainder for session tickets only until the first data: a ticket
/// that comes later is ignored, not refused, and data goes on. A server never takes one.
#[test]
fn a_ticket_after_data_is_ignored_by_a_client_and_refused_by_a_server() {
    for suite in suites() {
        let (mut client, mut server) = pair(suite);
        let ticket = [NEW_SESSION_TICKET, 0, 0, 4, 1, 2, 3, 4];
        let mut wire = None;
        seal_raw(&mut server, APPLICATION_DATA, b"hello ", &mut wire);
        seal_raw(&mut server, HANDSHAKE, &ticket, &mut wire);
        seal_raw(&mut server, APPLICATION_DATA, b"world", &mut wire);
        let (opened, _) = open_all(&mut client, &mut wire);
        assert_eq!(opened.unwrap(), b"hello world");

        let mut wire = None;
        seal_raw(&mut client, HANDSHAKE, &ticket, &mut wire);
        let (opened, _) = open_all(&mut server, &mut wire);
        assert!(opened.is_err(), "a server took a NewSessionTicket");
    }
}
