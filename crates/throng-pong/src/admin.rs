//! The admin listener: Prometheus metrics at `/metrics`. One request per connection; small,
//! bounded, and off the path of the served connections.

use crate::server::Shared;
use std::sync::Arc;
use std::time::Duration;
use throng_net::http1::{self, write, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

const LIMITS: Limits = Limits {
    max_head_bytes: 8 * 1024,
    max_headers: 64,
};
const DEADLINE: Duration = Duration::from_secs(5);

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, Arc::clone(&shared)));
            }
            Err(e) => {
                warn!("admin accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, shared: Arc<Shared>) {
    match tokio::time::timeout(DEADLINE, exchange(&mut stream, &shared)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!("admin connection: {e}"),
        Err(_) => debug!("admin connection: no request within {DEADLINE:?}"),
    }
}

async fn exchange(stream: &mut TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let response = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let mut slots = http1::header_slots();
        match http1::parse_request(&buf, &mut slots, &LIMITS) {
            Ok(None) => continue,
            Ok(Some(head)) => break route(head.method, head.target, shared),
            Err(error) => break respond(error.status(), &format!("{}\n", error.reason()), ""),
        }
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

fn route(method: &str, target: &str, shared: &Shared) -> Vec<u8> {
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let backlog = shared
                .pacer
                .as_ref()
                .map(|pacer| pacer.backlog(tokio::time::Instant::now()));
            let mut response = respond(
                200,
                &shared.metrics.render(backlog),
                "text/plain; version=0.0.4; charset=utf-8",
            );
            if method == "HEAD" {
                let head_len = response
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(response.len(), |at| at + 4);
                response.truncate(head_len);
            }
            response
        }
        ("GET" | "HEAD", "/") => respond(200, "throng pong: metrics at /metrics\n", ""),
        ("GET" | "HEAD", _) => respond(404, "not found: try /metrics\n", ""),
        _ => respond(405, "only GET and HEAD\n", ""),
    }
}

fn respond(status: u16, body: &str, content_type: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 200);
    if content_type.is_empty() {
        write::text_response(&mut out, status, body, false);
    } else {
        let length = body.len().to_string();
        write::response_head(
            &mut out,
            status,
            &[
                ("content-type", content_type.as_bytes()),
                ("content-length", length.as_bytes()),
                ("connection", b"close"),
            ],
        );
        out.extend_from_slice(body.as_bytes());
    }
    out
}
