//! TCP mode: the client's bytes to a server and back, for MQTT or any protocol, with TLS
//! terminated in front or not. One log line per connection, HAProxy's `tcplog`.

use crate::dispatch::{self, DispatchError, NoSlot};
use crate::relay;
use crate::session::Session;
use crate::stream::ClientStream;
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::AsyncWriteExt;
use tracing::debug;

pub async fn serve(session: Session, mut client: ClientStream) {
    let proxy = session.proxy();
    let _busy = crate::session::Busy::new(&session.worker);
    let started = session.accepted_at;
    let mut entry = session.entry(session.accepted);
    let Some(backend) = session.frontend().default_backend else {
        return;
    };
    entry.backend = Some(proxy.config.backends[backend].name.clone());
    let mut connected = match dispatch::connect(
        proxy,
        &session.worker.servers,
        backend,
        session.peer.ip(),
        false,
    )
    .await
    {
        Ok(connected) => connected,
        Err(error) => {
            let state = &proxy.backends[backend];
            match error {
                DispatchError::NoSlot(NoSlot::NoneUp, waited) => {
                    entry.t_queue = Some(waited);
                    entry.termination = *b"SC";
                    state.no_server.fetch_add(1, Relaxed);
                }
                DispatchError::NoSlot(NoSlot::QueueTimeout, waited) => {
                    entry.t_queue = Some(waited);
                    entry.termination = *b"sQ";
                    state.queue_timeouts.fetch_add(1, Relaxed);
                }
                DispatchError::Connect {
                    server,
                    error,
                    queued,
                    retries,
                } => {
                    debug!("{}: {error}", session.server_name(backend, server));
                    entry.t_queue = Some(queued);
                    entry.retries = retries;
                    entry.server = Some(session.server_name(backend, server));
                    entry.termination = if matches!(error, dispatch::ConnectError::Timeout) {
                        *b"sC"
                    } else {
                        *b"SC"
                    };
                }
            }
            let _ = client.shutdown().await;
            session.log(entry, started);
            return;
        }
    };
    entry.server = Some(session.server_name(backend, connected.slot.server));
    entry.t_queue = Some(connected.queued);
    entry.t_connect = Some(connected.connecting);
    entry.retries = connected.retries;
    let timeouts = &proxy.config.backends[backend].timeouts;
    let idle = timeouts
        .tunnel
        .unwrap_or(session.frontend().timeouts.client.min(timeouts.server));
    let tunnel = relay::run(&mut client, &mut connected.stream, idle).await;
    entry.bytes_to_client = tunnel.to_client;
    entry.bytes_from_client = tunnel.to_server;
    entry.termination = tunnel.ending.termination();
    session.count_bytes(&connected, tunnel.to_server, tunnel.to_client);
    drop(connected);
    session.log(entry, started);
}
