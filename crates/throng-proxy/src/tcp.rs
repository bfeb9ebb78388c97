//! TCP mode: the client's bytes to a server and back, for MQTT or any protocol, with TLS
//! terminated in front or not. One log line per connection, HAProxy's `tcplog`.

use crate::dispatch;
use crate::relay;
use crate::session::Session;
use crate::stream::ClientStream;
use tokio::io::AsyncWriteExt;

pub async fn serve(session: Session, mut client: ClientStream) {
    let proxy = session.proxy();
    let _busy = crate::session::Busy::new(&session.worker);
    let started = session.accepted_at;
    let mut entry = session.entry(session.accepted);
    let Some(backend) = session.frontend().default_backend else {
        return;
    };
    session.note_backend(&mut entry, backend);
    let mut connected = match dispatch::connect(
        proxy,
        &session.worker.servers,
        backend,
        crate::balance::Affinity::of(session.peer.ip()),
        false,
    )
    .await
    {
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
    if session
        .send_proxy_header(&mut connected, &client)
        .await
        .is_err()
    {
        entry.termination = *b"SC";
        session.log(entry, started);
        return;
    }
    let timeouts = &proxy.config.backends[backend].timeouts;
    let idle = timeouts
        .tunnel
        .unwrap_or(session.frontend().timeouts.client.min(timeouts.server));
    let tunnel = relay::run(&mut client, &mut connected.stream, idle).await;
    entry.bytes_to_client = tunnel.to_client;
    entry.bytes_from_client = tunnel.to_server;
    entry.termination = tunnel.ending.termination();
    session.count_bytes(&connected, tunnel.to_server, tunnel.to_client);
    session.count_tls_refusal(&client);
    drop(connected);
    session.log(entry, started);
}
