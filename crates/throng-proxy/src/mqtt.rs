//! MQTT mode: the client's CONNECT is read and checked before any server is chosen (within
//! `mqtt_max_connect` bytes and `timeout.mqtt-connect`); its client id picks the server
//! (`balance = "client-id"`) and its fields go in the log line; then the bytes are relayed as in
//! TCP mode, the CONNECT first. Anything that is not an MQTT CONNECT is closed, counted
//! (`frontend_mqtt_refusals_total`) and logged with termination `PR`; a CONNECT that does not
//! arrive in time is logged `cR`, a client that leaves before it `CR`.

use crate::balance::Affinity;
use crate::log::MqttConnect;
use crate::session::Session;
use crate::stream::ClientStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use throng_mqtt::read::{self, Packet, ReadError};
use throng_mqtt::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a connection ended before a server was chosen.
enum Refusal {
    /// Not MQTT, or a CONNECT that breaks the specification or the size limit: `PR`.
    Bad(String),
    /// The client closed (or reset) the connection first: `CR`.
    Gone,
}

pub async fn serve(session: Session, mut client: ClientStream) {
    let started = session.accepted_at;
    let mut entry = session.entry(session.accepted);
    let frontend = session.frontend();
    let Some(backend) = frontend.default_backend else {
        return;
    };
    let mut head = Vec::new();
    // Boxed: the CONNECT's reading (with its read buffer) lives for a moment, the tunnel for
    // hours; inline, every held connection would keep room for it.
    let read = Box::pin(tokio::time::timeout(
        frontend.timeouts.mqtt_connect,
        read_connect(&mut client, &mut head, frontend.mqtt_max_connect),
    ))
    .await;
    let (connect, affinity) = match read {
        Ok(Ok((connect, client_id))) => {
            let affinity = Affinity::with_client_id(session.peer.ip(), &client_id);
            (connect, affinity)
        }
        Ok(Err(refusal)) => {
            entry.termination = match &refusal {
                Refusal::Bad(why) => {
                    session.frontend_state().mqtt_refusals.fetch_add(1, Relaxed);
                    tracing::debug!("{}: {} refused: {why}", frontend.name, session.peer);
                    *b"PR"
                }
                Refusal::Gone => *b"CR",
            };
            entry.bytes_from_client = head.len() as u64;
            let _ = client.shutdown().await;
            session.log(entry, started);
            return;
        }
        Err(_) => {
            session.frontend_state().mqtt_refusals.fetch_add(1, Relaxed);
            tracing::debug!(
                "{}: {} sent no whole CONNECT within {:?}",
                frontend.name,
                session.peer,
                frontend.timeouts.mqtt_connect
            );
            entry.termination = *b"cR";
            entry.bytes_from_client = head.len() as u64;
            let _ = client.shutdown().await;
            session.log(entry, started);
            return;
        }
    };
    // A broker gives a client 1.5 keep-alives without a packet (MQTT §3.1.2.10): the tunnel's
    // idle timeout, unless the configuration sets the client's; never past `mqtt-max-idle`,
    // which the operator chose and a client cannot.
    let ceiling = frontend.timeouts.mqtt_max_idle;
    let idle = (!frontend.timeouts.client_given && connect.keep_alive > 0).then(|| {
        let asked = Duration::from_millis(u64::from(connect.keep_alive) * 1500);
        if asked > ceiling {
            tracing::debug!(
                "{}: {} asked for a keep-alive of {} s: idle for at most {:?} (timeout mqtt-max-idle)",
                frontend.name,
                session.peer,
                connect.keep_alive,
                ceiling
            );
        }
        asked.min(ceiling)
    });
    entry.mqtt = Some(Box::new(connect));
    crate::tcp::tunnel(&session, client, entry, backend, affinity, head, idle).await;
}

/// Reads until `head` holds a whole first packet, which must be a valid CONNECT; returns its
/// fields for the log and its client id. `head` keeps every byte read (the CONNECT, and
/// anything the client sent after it), to be sent on to the server.
async fn read_connect(
    client: &mut ClientStream,
    head: &mut Vec<u8>,
    max: usize,
) -> Result<(MqttConnect, String), Refusal> {
    let mut chunk = [0u8; 2048];
    loop {
        match read::packet(head, Version::V311, max) {
            Ok(Some((Packet::Connect(connect), _))) => {
                return Ok((MqttConnect::of(&connect), connect.client_id.to_string()))
            }
            Ok(Some(_)) => {
                return Err(Refusal::Bad("the first packet is not CONNECT".into()));
            }
            Ok(None) => {}
            Err(ReadError::TooLarge(length, limit)) => {
                return Err(Refusal::Bad(format!(
                    "a CONNECT of {length} bytes, over mqtt_max_connect ({limit})"
                )))
            }
            Err(error) => return Err(Refusal::Bad(error.to_string())),
        }
        // The first byte alone tells HTTP, TLS and most else from MQTT: refuse at once.
        if head
            .first()
            .is_some_and(|b| b >> 4 != throng_mqtt::kind::CONNECT)
        {
            return Err(Refusal::Bad(
                "not MQTT (the first packet is not CONNECT)".into(),
            ));
        }
        let n = match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Refusal::Gone),
            Ok(n) => n,
        };
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
