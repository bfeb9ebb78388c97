//! vegeta's flags that throng has no use for, or has not built: each is accepted with a note on
//! stderr, or refused with a message that says why and what to use instead, never the parser's
//! bare "unexpected argument". `docs/vegeta.md` tables every vegeta flag and what throng does
//! with it.

use clap::{ArgAction, Args};

/// `vegeta attack`'s flags that throng does not take as they are (hidden from `--help`).
#[derive(Debug, Default, Args)]
pub struct AttackFlags {
    #[arg(long, hide = true)]
    chunked: bool,
    #[arg(long = "connect-to", hide = true)]
    connect_to: Vec<String>,
    #[arg(long = "dns-ttl", hide = true, allow_hyphen_values = true)]
    dns_ttl: Option<String>,
    #[arg(long, hide = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    lazy: bool,
    #[arg(long = "max-body", hide = true, allow_hyphen_values = true)]
    max_body: Option<String>,
    #[arg(long = "prometheus-addr", hide = true)]
    prometheus_addr: Option<String>,
    #[arg(long = "proxy-header", hide = true)]
    proxy_header: Vec<String>,
    #[arg(long, hide = true, allow_hyphen_values = true)]
    redirects: Option<i64>,
    #[arg(long, hide = true)]
    resolvers: Option<String>,
    #[arg(long = "session-tickets", hide = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    session_tickets: bool,
    #[arg(long = "unix-socket", hide = true)]
    unix_socket: Option<String>,
}

impl AttackFlags {
    /// Notes for the flags accepted without effect, or the message for one throng refuses.
    pub fn check(&self) -> Result<Vec<String>, String> {
        let refuse = |flag: &str, why: &str| Err(format!("-{flag}: {why}"));
        if self.chunked {
            return refuse(
                "chunked",
                "not built yet: bodies are sent with Content-Length",
            );
        }
        if !self.connect_to.is_empty() {
            return refuse(
                "connect-to",
                "not built yet: put the address to connect to in the target's URL, and the name in a Host header",
            );
        }
        if self.prometheus_addr.is_some() {
            return refuse(
                "prometheus-addr",
                "not built: the live line (stderr) and `throng report` over the results file, written as it goes, show the same counts",
            );
        }
        if !self.proxy_header.is_empty() {
            return refuse("proxy-header", "CONNECT proxies are not built yet");
        }
        if self.resolvers.is_some() {
            return refuse(
                "resolvers",
                "not built: names are resolved once at start by the system's resolver",
            );
        }
        if self.unix_socket.is_some() {
            return refuse("unix-socket", "not built yet: TCP (and TLS over it) only");
        }
        let mut notes = Vec::new();
        if self.dns_ttl.is_some() {
            notes.push("-dns-ttl: accepted, no effect: names are resolved once at start");
        }
        if self.lazy {
            notes.push("-lazy: accepted, no effect: targets are read whole at start (the schedule needs their count)");
        }
        if self.max_body.is_some() {
            notes.push("-max-body: accepted, no effect: throng records no response bodies (bytes in are counted)");
        }
        if self.redirects.is_some() {
            notes.push("-redirects: accepted, no effect: redirects are not followed; a 3xx is recorded as it came");
        }
        if self.session_tickets {
            notes.push("-session-tickets: accepted: throng resumes TLS sessions by default (--no-resume for full handshakes)");
        }
        Ok(notes.into_iter().map(String::from).collect())
    }
}
