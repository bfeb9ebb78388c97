//! The admin listener: Prometheus metrics at `/metrics`.

use crate::server::Shared;
use std::sync::Arc;
use throng_net::admin::{Page, Route};

/// The admin listener's answers.
pub(crate) fn route(shared: Arc<Shared>) -> Route {
    Arc::new(move |path: &str| page(path, &shared))
}

fn page(path: &str, shared: &Shared) -> Page {
    match path {
        "/metrics" => {
            let backlog = shared
                .pacer
                .as_ref()
                .map(|pacer| pacer.backlog(tokio::time::Instant::now()));
            Page {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: shared.metrics.render(backlog),
            }
        }
        "/" => Page::text(200, "throng pong: metrics at /metrics\n"),
        _ => Page::text(404, "not found: try /metrics\n"),
    }
}
