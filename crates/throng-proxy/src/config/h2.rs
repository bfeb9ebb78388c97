//! A frontend's `[frontends.NAME.h2]` table: the limits each HTTP/2 client connection is held
//! to (`throng_h2::server::Limits`), every key optional, every value checked against what
//! RFC 9113 allows and what the downgrade to HTTP/1.1 can carry.

use super::build::parse_size;
use super::file;
use super::locate::KeyPath;
use super::Mode;
use crate::http::LIMITS;
use throng_h2::server::Limits;

type Failure = (KeyPath, String);

/// The largest window and stream count RFC 9113 lets a SETTINGS value say (2^31 - 1).
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// Fields the downgrade adds to a request's own: `host` and `transfer-encoding`.
const ADDED_FIELDS: usize = 2;

pub(super) fn limits(
    section: Option<&file::H2>,
    mode: Mode,
    at: &KeyPath,
) -> Result<Limits, Failure> {
    let mut limits = Limits::default();
    // A request with more fields would be refused by the HTTP/1 codec after the downgrade; the
    // HTTP/2 codec answers it 431 itself, with the HPACK table kept in step.
    let max_fields = LIMITS.max_headers - ADDED_FIELDS;
    limits.max_fields = limits.max_fields.min(max_fields);
    let Some(h2) = section else {
        return Ok(limits);
    };
    if mode != Mode::Http {
        return Err((
            at.clone(),
            "HTTP/2 is served by mode = \"http\" frontends only".into(),
        ));
    }
    let count = |value: Option<u64>, key: &str, low: u64, high: u64, default: u64| match value {
        None => Ok(default),
        Some(n) if (low..=high).contains(&n) => Ok(n),
        Some(_) => Err((at.key(key), format!("must be {low} to {high}"))),
    };
    let size = |value: Option<&str>, key: &str, low: u64, high: u64, default: u64| match value {
        None => Ok(default),
        Some(text) => match parse_size(text) {
            Ok(n) if (low..=high).contains(&n) => Ok(n),
            Ok(_) => Err((at.key(key), format!("must be {low} to {high} bytes"))),
            Err(e) => Err((at.key(key), e)),
        },
    };
    let d = limits;
    limits.max_concurrent_streams = count(
        h2.max_concurrent_streams,
        "max_concurrent_streams",
        1,
        MAX_WINDOW,
        d.max_concurrent_streams.into(),
    )? as u32;
    // A stream's window is at least what a client may send before it has our SETTINGS.
    limits.initial_window_size = size(
        h2.stream_window.as_deref(),
        "stream_window",
        65_535,
        MAX_WINDOW,
        d.initial_window_size.into(),
    )? as u32;
    limits.connection_window = size(
        h2.connection_window.as_deref(),
        "connection_window",
        65_535,
        MAX_WINDOW,
        d.connection_window.into(),
    )? as u32;
    if limits.connection_window < limits.initial_window_size {
        return Err((
            at.key("connection_window"),
            "must be at least stream_window: one slow stream would stop the others".into(),
        ));
    }
    // Past what the downgrade's HTTP/1.1 head may hold, a request would be refused there.
    let head = LIMITS.max_head_bytes as u64;
    limits.max_header_list_size = size(
        h2.max_header_list_size.as_deref(),
        "max_header_list_size",
        1024,
        head,
        d.max_header_list_size.into(),
    )? as u32;
    limits.max_fields = count(
        h2.max_header_fields,
        "max_header_fields",
        1,
        max_fields as u64,
        d.max_fields as u64,
    )? as usize;
    limits.max_header_block = size(
        h2.max_header_block.as_deref(),
        "max_header_block",
        1024,
        1024 * 1024,
        d.max_header_block as u64,
    )? as usize;
    limits.max_continuations = count(
        h2.max_continuations,
        "max_continuations",
        1,
        10_000,
        d.max_continuations.into(),
    )? as u32;
    let floods = &mut limits.per_second;
    let rate = |value: Option<u64>, key: &str, default: u32| {
        count(value, key, 1, 1_000_000, default.into()).map(|n| n as u32)
    };
    floods.resets = rate(
        h2.resets_per_second,
        "resets_per_second",
        d.per_second.resets,
    )?;
    floods.settings = rate(
        h2.settings_per_second,
        "settings_per_second",
        d.per_second.settings,
    )?;
    floods.pings = rate(h2.pings_per_second, "pings_per_second", d.per_second.pings)?;
    floods.ignored = rate(
        h2.ignored_frames_per_second,
        "ignored_frames_per_second",
        d.per_second.ignored,
    )?;
    floods.window_updates = rate(
        h2.window_updates_per_second,
        "window_updates_per_second",
        d.per_second.window_updates,
    )?;
    floods.empty_data = rate(
        h2.empty_data_per_second,
        "empty_data_per_second",
        d.per_second.empty_data,
    )?;
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(h2: &str, mode: &str) -> Result<throng_h2::server::Limits, String> {
        let text = format!(
            "[frontends.web]\nbind = [\"127.0.0.1:8080\"]\n{mode}default_backend = \"app\"\n\n\
             [frontends.web.h2]\n{h2}\n\n\
             [backends.app]\nservers = [{{ name = \"s\", address = \"127.0.0.1:9000\" }}]\n"
        );
        crate::config::parse(&text, "h2.toml", Path::new("."))
            .map(|c| c.frontends[0].h2)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_key_sets_its_limit_and_the_rest_keep_their_defaults() {
        let limits = parse(
            "max_concurrent_streams = 250\nstream_window = \"256KiB\"\n\
             connection_window = \"4MiB\"\npings_per_second = 10",
            "",
        )
        .unwrap();
        assert_eq!(limits.max_concurrent_streams, 250);
        assert_eq!(limits.initial_window_size, 256 * 1024);
        assert_eq!(limits.connection_window, 4 * 1024 * 1024);
        assert_eq!(limits.per_second.pings, 10);
        let defaults = throng_h2::server::Limits::default();
        assert_eq!(limits.per_second.resets, defaults.per_second.resets);
        assert_eq!(limits.max_header_list_size, defaults.max_header_list_size);
        // Within what the downgrade's HTTP/1.1 head may carry, host and framing added.
        assert_eq!(limits.max_fields, 98);
    }

    #[test]
    fn a_bad_value_names_its_file_line_and_key() {
        let said = parse("max_concurrent_streams = 0", "").unwrap_err();
        assert!(
            said.contains("h2.toml:6: frontends.web.h2.max_concurrent_streams: must be 1 to"),
            "{said}"
        );
        let said = parse("stream_window = \"1KiB\"", "").unwrap_err();
        assert!(
            said.contains("frontends.web.h2.stream_window: must be 65535 to"),
            "{said}"
        );
        let said = parse(
            "stream_window = \"1MiB\"\nconnection_window = \"512KiB\"",
            "",
        )
        .unwrap_err();
        assert!(
            said.contains("h2.toml:7: frontends.web.h2.connection_window: must be at least"),
            "{said}"
        );
        let said = parse("max_header_list_size = \"64KiB\"", "").unwrap_err();
        assert!(said.contains("must be 1024 to 16384 bytes"), "{said}");
        let said = parse("max_header_fields = 200", "").unwrap_err();
        assert!(
            said.contains("max_header_fields: must be 1 to 98"),
            "{said}"
        );
        let said = parse("pings = 5", "").unwrap_err();
        assert!(
            said.contains("h2.toml:6") && said.contains("pings"),
            "{said}"
        );
        let said = parse("max_concurrent_streams = 10", "mode = \"tcp\"\n").unwrap_err();
        assert!(
            said.contains("frontends.web.h2: HTTP/2 is served by mode = \"http\""),
            "{said}"
        );
    }
}
