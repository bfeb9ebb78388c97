//! Log lines as HAProxy writes them, or as JSON.

use super::Entry;
use crate::config::{LogFormat, Mode};
use std::fmt::Write;
use std::time::Duration;
use throng_net::calendar::{self, MONTHS};

pub fn line(out: &mut String, e: &Entry, format: LogFormat) {
    match format {
        LogFormat::Haproxy => haproxy(out, e),
        LogFormat::Json => json(out, e),
    }
}

/// `<134>Nov 24 17:30:01 throng[1234]: `: facility local0, level info, as HAProxy sends.
pub fn syslog_prefix(out: &mut String, e: &Entry, pid: u32) {
    let (_, month, day, hour, minute, second, _) = calendar::utc(e.accepted);
    let _ = write!(
        out,
        "<134>{} {day:>2} {hour:02}:{minute:02}:{second:02} throng[{pid}]: ",
        MONTHS[month as usize - 1]
    );
}

fn millis(t: Option<Duration>) -> i64 {
    t.map_or(-1, |d| d.as_millis() as i64)
}

/// HAProxy's `httplog`:
/// `ip:port [date] frontend backend/server Tq/Tw/Tc/Tr/Tt status bytes - - TTCC
/// actconn/feconn/beconn/srv_conn/retries srv_queue/backend_queue "request"`;
/// `tcplog` has Tw/Tc/Tt, no status, two termination characters and no request.
fn haproxy(out: &mut String, e: &Entry) {
    let (year, month, day, hour, minute, second, ms) = calendar::utc(e.accepted);
    let _ = write!(
        out,
        "{} [{day:02}/{}/{year}:{hour:02}:{minute:02}:{second:02}.{ms:03}] {}{} {}/{} ",
        e.client,
        MONTHS[month as usize - 1],
        word(&e.frontend),
        if e.tls { "~" } else { "" },
        word(e.backend.as_deref().unwrap_or(&e.frontend)),
        word(e.server.as_deref().unwrap_or("<NOSRV>")),
    );
    let termination = std::str::from_utf8(&e.termination).unwrap_or("--");
    match e.mode {
        Mode::Http => {
            let _ = write!(
                out,
                "{}/{}/{}/{}/{} {} {} - - {termination}-- ",
                millis(e.t_request),
                millis(e.t_queue),
                millis(e.t_connect),
                millis(e.t_response),
                e.t_total.as_millis(),
                e.status.map_or(-1, i32::from),
                e.bytes_to_client,
            );
        }
        Mode::Tcp | Mode::Mqtt => {
            let _ = write!(
                out,
                "{}/{}/{} {} {termination} ",
                millis(e.t_queue),
                millis(e.t_connect),
                e.t_total.as_millis(),
                e.bytes_to_client,
            );
        }
    }
    let _ = write!(
        out,
        "{}/{}/{}/{}/{} {}/{}",
        e.actconn, e.feconn, e.beconn, e.srv_conn, e.retries, e.srv_queue, e.backend_queue
    );
    if e.mode == Mode::Http {
        let _ = write!(out, " \"{}\"", e.request.escape_default());
    }
    // HAProxy's captured fields: {client id|user name|version|keep-alive}.
    if let Some(m) = &e.mqtt {
        let _ = write!(
            out,
            " {{{}|{}|{}|{}}}",
            captured(&m.client_id),
            captured(m.username.as_deref().unwrap_or("")),
            m.version,
            m.keep_alive
        );
    }
}

/// A name in a line of space-separated fields (a frontend, backend or server, as the file or a
/// runtime command spelled it): control characters, quotes, backslashes and spaces escaped, so
/// that it stays one field and the line stays one line.
fn word(text: &str) -> String {
    text.escape_default().to_string().replace(' ', "\\x20")
}

/// A field a client chose, inside HAProxy's `{a|b}` captures: escaped as [`word`], and the
/// capture's own delimiters as HAProxy writes them (`#7C`, `#7B`, `#7D`), so that no client id
/// makes a field of its own.
fn captured(text: &str) -> String {
    word(text)
        .replace('|', "#7C")
        .replace('{', "#7B")
        .replace('}', "#7D")
}

fn json(out: &mut String, e: &Entry) {
    let (year, month, day, hour, minute, second, ms) = calendar::utc(e.accepted);
    let value = serde_json::json!({
        "client": e.client.to_string(),
        "accepted": format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{ms:03}Z"),
        "mode": e.mode.name(),
        "frontend": &*e.frontend,
        "tls": e.tls,
        "backend": e.backend.as_deref(),
        "server": e.server.as_deref(),
        "tq_ms": e.t_request.map(|d| d.as_millis() as u64),
        "tw_ms": e.t_queue.map(|d| d.as_millis() as u64),
        "tc_ms": e.t_connect.map(|d| d.as_millis() as u64),
        "tr_ms": e.t_response.map(|d| d.as_millis() as u64),
        "tt_ms": e.t_total.as_millis() as u64,
        "status": e.status,
        "bytes_to_client": e.bytes_to_client,
        "bytes_from_client": e.bytes_from_client,
        "termination": std::str::from_utf8(&e.termination).unwrap_or("--"),
        "actconn": e.actconn,
        "feconn": e.feconn,
        "beconn": e.beconn,
        "srv_conn": e.srv_conn,
        "retries": e.retries,
        "srv_queue": e.srv_queue,
        "backend_queue": e.backend_queue,
        "request": if e.mode == Mode::Http { Some(&e.request) } else { None },
        "mqtt": e.mqtt.as_ref().map(|m| serde_json::json!({
            "client_id": m.client_id,
            "username": m.username,
            "version": m.version,
            "keep_alive": m.keep_alive,
        })),
    });
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(mode: Mode) -> Entry {
        Entry {
            mode,
            client: "127.0.0.1:40712".parse().unwrap(),
            accepted: UNIX_EPOCH + Duration::from_millis(1_795_958_401_123),
            frontend: "web".into(),
            tls: true,
            backend: Some("pong".into()),
            server: Some("pong1".into()),
            backend_index: Some(0),
            server_index: Some(0),
            t_request: Some(Duration::from_millis(3)),
            t_queue: Some(Duration::ZERO),
            t_connect: Some(Duration::from_millis(1)),
            t_response: Some(Duration::from_millis(20)),
            t_total: Duration::from_millis(25),
            status: Some(200),
            bytes_to_client: 145,
            bytes_from_client: 80,
            termination: *b"--",
            mqtt: None,
            actconn: 1,
            feconn: 1,
            beconn: 1,
            srv_conn: 1,
            retries: 0,
            srv_queue: 0,
            backend_queue: 0,
            request: "GET / HTTP/1.1".into(),
        }
    }

    #[test]
    fn http_lines_read_as_haproxy_writes_them() {
        let mut out = String::new();
        haproxy(&mut out, &entry(Mode::Http));
        assert_eq!(
            out,
            "127.0.0.1:40712 [29/Nov/2026:13:20:01.123] web~ pong/pong1 3/0/1/20/25 200 145 - - ---- 1/1/1/1/0 0/0 \"GET / HTTP/1.1\""
        );
    }

    #[test]
    fn tcp_lines_and_steps_never_reached() {
        let mut e = entry(Mode::Tcp);
        e.tls = false;
        e.server = None;
        e.t_connect = None;
        e.termination = *b"SC";
        let mut out = String::new();
        haproxy(&mut out, &e);
        assert_eq!(
            out,
            "127.0.0.1:40712 [29/Nov/2026:13:20:01.123] web pong/<NOSRV> 0/-1/25 145 SC 1/1/1/1/0 0/0"
        );
    }

    /// What a client or an operator's command can put in a line stays inside its field: CR,
    /// LF, quotes, backslashes, spaces and the captures' delimiters are escaped.
    #[test]
    fn hostile_text_stays_in_its_field() {
        let mut e = entry(Mode::Http);
        e.request = "GET /\r\n127.0.0.1 \"forged\\ HTTP/1.1".into();
        e.server = Some("a b\nc".into());
        let mut out = String::new();
        haproxy(&mut out, &e);
        assert!(!out.contains('\n') && !out.contains('\r'), "{out}");
        assert!(out.contains(" pong/a\\x20b\\nc "), "{out}");
        assert!(
            out.ends_with(" \"GET /\\r\\n127.0.0.1 \\\"forged\\\\ HTTP/1.1\""),
            "{out}"
        );

        let mut e = entry(Mode::Mqtt);
        e.mqtt = Some(Box::new(crate::log::MqttConnect {
            client_id: "id|x}{\n".into(),
            username: Some("u\"s".into()),
            version: "3.1.1",
            keep_alive: 60,
        }));
        let mut out = String::new();
        haproxy(&mut out, &e);
        assert!(out.ends_with(" {id#7Cx#7D#7B\\n|u\\\"s|3.1.1|60}"), "{out}");
    }

    #[test]
    fn json_lines_parse() {
        let mut out = String::new();
        json(&mut out, &entry(Mode::Http));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["termination"], "--");
        assert_eq!(v["tr_ms"], 20);
        assert_eq!(v["server"], "pong1");
    }
}
