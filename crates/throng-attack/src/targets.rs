//! Targets in vegeta's formats, used round-robin.
//!
//! The http format: a `METHOD URL` line, then optional `Header: value` lines, then an optional
//! `@path` line naming a body file; targets are separated by blank lines; `#` starts a comment.
//! The json format: one object per line, `{"method": "GET", "url": "...", "header": {"K": ["v"]},
//! "body": "<base64>"}`.

use crate::url::Url;
use serde::Deserialize;
use std::path::Path;

/// One request to send, fully decided before the attack starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The largest body read from a file for one target.
const MAX_BODY: u64 = 64 << 20;

/// Reads targets in the http format. Errors name the line.
pub fn parse_http(text: &str, base_dir: &Path) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    let mut current: Option<Target> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        let at = |message: String| format!("targets line {number}: {message}");
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            targets.extend(current.take());
            continue;
        }
        match &mut current {
            None => current = Some(request_line(line).map_err(at)?),
            Some(_) if looks_like_request_line(line) => {
                // A new `METHOD URL` without the blank line before it, which vegeta accepts too.
                targets.extend(current.take());
                current = Some(request_line(line).map_err(at)?);
            }
            Some(target) => {
                if let Some(path) = line.strip_prefix('@') {
                    target.body = read_body(&base_dir.join(path)).map_err(at)?;
                } else if let Some((name, value)) = line.split_once(':') {
                    let name = name.trim();
                    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(at(format!("`{name}` is not a header name")));
                    }
                    target
                        .headers
                        .push((name.to_string(), value.trim().to_string()));
                } else {
                    return Err(at(format!(
                        "expected `Header: value`, `@body-file` or a blank line, got `{line}`"
                    )));
                }
            }
        }
    }
    targets.extend(current);
    if targets.is_empty() {
        return Err("no targets: give at least one `METHOD URL` line".into());
    }
    Ok(targets)
}

#[derive(Deserialize)]
struct JsonTarget {
    method: String,
    url: String,
    #[serde(default)]
    header: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    body: Option<String>,
}

/// Reads targets in vegeta's json format, one object per line. Errors name the line.
pub fn parse_json(text: &str) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = |message: String| format!("targets line {}: {message}", index + 1);
        if line.trim().is_empty() {
            continue;
        }
        let json: JsonTarget = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let body = match json.body {
            Some(encoded) => {
                decode_base64(&encoded).ok_or_else(|| at("body is not base64".into()))?
            }
            None => Vec::new(),
        };
        let headers = json
            .header
            .into_iter()
            .flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v)))
            .collect();
        let url = Url::parse(&json.url).map_err(at)?;
        targets.push(Target {
            method: json.method,
            url,
            headers,
            body,
        });
    }
    if targets.is_empty() {
        return Err("no targets: give at least one JSON target line".into());
    }
    Ok(targets)
}

/// A target from its `METHOD URL` line, without headers or body yet.
fn request_line(line: &str) -> Result<Target, String> {
    let (method, url) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("expected `METHOD URL`, got `{line}`"))?;
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "`{method}` is not an HTTP method (expected `METHOD URL`)"
        ));
    }
    let url = Url::parse(url.trim())?;
    Ok(Target {
        method: method.to_string(),
        url,
        headers: Vec::new(),
        body: Vec::new(),
    })
}

fn looks_like_request_line(line: &str) -> bool {
    line.split_once(char::is_whitespace)
        .is_some_and(|(method, url)| {
            !method.is_empty()
                && method.bytes().all(|b| b.is_ascii_uppercase())
                && (url.trim_start().starts_with("http://")
                    || url.trim_start().starts_with("https://"))
        })
}

fn read_body(path: &Path) -> Result<Vec<u8>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("body file {}: {e}", path.display()))?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_BODY + 1), &mut body)
        .map_err(|e| format!("body file {}: {e}", path.display()))?;
    if body.len() as u64 > MAX_BODY {
        return Err(format!("body file {} is over 64 MiB", path.display()));
    }
    Ok(body)
}

/// Standard base64 (with or without padding), as Go's encoding/json writes []byte.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = buffer << 6 | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vegetas_http_format() {
        let dir = std::env::temp_dir().join(format!("throng-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("body.json"), b"{\"a\":1}").unwrap();
        let text = "# comment\nGET http://127.0.0.1:8282/ping\nsleep: 100\nX-Two: a:b\n\n\
                    POST http://127.0.0.1:8283/things\n@body.json\nDELETE http://127.0.0.1:8284/x\n";
        let targets = parse_http(text, &dir).unwrap();
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0].method, "GET");
        assert_eq!(
            targets[0].headers,
            vec![
                ("sleep".into(), "100".into()),
                ("X-Two".into(), "a:b".into())
            ]
        );
        assert_eq!(targets[1].body, b"{\"a\":1}");
        assert_eq!(targets[2].url.port, 8284);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let error = parse_http("GET http://a/\n\nget http://b/\n", Path::new(".")).unwrap_err();
        assert!(error.starts_with("targets line 3:"), "{error}");
        let error = parse_http("GET http://a/\n@missing-file\n", Path::new(".")).unwrap_err();
        assert!(error.starts_with("targets line 2: body file"), "{error}");
        let error = parse_http("GET\n", Path::new(".")).unwrap_err();
        assert!(
            error.contains("line 1") && error.contains("METHOD URL"),
            "{error}"
        );
        assert!(parse_http("\n# nothing\n", Path::new("."))
            .unwrap_err()
            .contains("no targets"));
    }

    #[test]
    fn reads_vegetas_json_format() {
        let text = r#"{"method":"POST","url":"http://127.0.0.1:1/a","header":{"Sleep":["5"]},"body":"aGVsbG8="}
{"method":"GET","url":"https://example.com"}"#;
        let targets = parse_json(text).unwrap();
        assert_eq!(targets[0].body, b"hello");
        assert_eq!(targets[0].headers, vec![("Sleep".into(), "5".into())]);
        assert!(targets[1].url.tls);
        let error = parse_json("{\"method\":\"GET\",\"url\":\"http://a/\"}\n{nope").unwrap_err();
        assert!(error.starts_with("targets line 2:"), "{error}");
    }
}
