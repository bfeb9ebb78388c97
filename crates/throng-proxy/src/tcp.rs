//! TCP mode: the client's bytes to a server and back, for any protocol, with TLS terminated in
//! front or not. One log line per connection, HAProxy's `tcplog`. MQTT mode reads the CONNECT
//! first and then tunnels the same way ([`tunnel`]).

use crate::balance::Affinity;
use crate::dispatch;
use crate::log::Entry;
use crate::relay;
use crate::session::Session;
use crate::stream::ClientStream;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

pub async fn serve(session: Session, client: ClientStream) {
    let entry = session.entry(session.accepted);
    let Some(backend) = session.frontend().default_backend else {
        return;
    };
    let affinity = Affinity::of(session.peer.ip());
    tunnel(&session, client, entry, backend, affinity, Vec::new(), None).await;
}

/// Chooses a server of `backend` for `affinity`, connects, writes its `send_proxy` header and
/// then `head` (bytes the client sent that were read already), and relays both ways until
/// either side ends or nothing moves for the idle timeout (`timeout.tunnel`; else `idle`; else
/// the smaller of the client's and the server's). Logs the connection's line.
pub async fn tunnel(
    session: &Session,
    mut client: ClientStream,
    mut entry: Entry,
    backend: usize,
    affinity: Affinity,
    head: Vec<u8>,
    idle: Option<Duration>,
) {
    let proxy = session.proxy();
    let started: Instant = session.accepted_at;
    session.note_backend(&mut entry, backend);
    let origin = client
        .local_addr()
        .ok()
        .map(|destination| dispatch::Origin {
            client: session.peer,
            destination,
        });
    // Boxed: connecting lives for a moment, the tunnel for hours.
    let connecting = Box::pin(dispatch::connect(
        proxy,
        &session.worker.servers,
        backend,
        affinity,
        false,
        origin,
    ));
    let mut connected = match connecting.await {
        Ok(connected) => connected,
        Err(error) => {
            session.note_dispatch_failure(&mut entry, backend, error);
            let _ = client.shutdown().await;
            session.log(entry, started);
            return;
        }
    };
    session.note_server(&mut entry, backend, connected.slot.server);
    entry.t_queue = Some(connected.queued);
    entry.t_connect = Some(connected.connecting);
    entry.retries = connected.retries;
    if connected.stream.write_all(&head).await.is_err() {
        entry.termination = *b"SC";
        session.log(entry, started);
        return;
    }
    let head_len = head.len() as u64;
    drop(head);
    let timeouts = &proxy.config.backends[backend].timeouts;
    let idle = timeouts
        .tunnel
        .or(idle)
        .unwrap_or_else(|| session.frontend().timeouts.client.min(timeouts.server));
    let tunnel = relay::run(&mut client, &mut connected.stream, idle).await;
    entry.bytes_to_client = tunnel.to_client;
    entry.bytes_from_client = head_len + tunnel.to_server;
    entry.termination = tunnel.ending.termination();
    session.count_bytes(&connected, head_len + tunnel.to_server, tunnel.to_client);
    session.count_tls_refusal(&client);
    drop(connected);
    session.log(entry, started);
}
