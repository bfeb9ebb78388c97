//! What a request asks of pong: the `sleep` and `times` headers, and how to frame the answer.

use throng_http1::{BodyLength, RequestHead, Version};

/// The longest `sleep` that is honoured as given; anything longer is cut by the connection's
/// timeout anyway, and this keeps deadline arithmetic far from overflow.
const MAX_SLEEP_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PongRequest {
    /// Bounds of each random wait, in milliseconds: `sleep: MAX` waits 0..=MAX (the story's
    /// pong), `sleep: MIN-MAX` waits MIN..=MAX (a hold of a known length). 0: answer at once.
    pub sleep_min_ms: u64,
    pub sleep_ms: u64,
    /// How many more `pong`s after the first.
    pub times: u64,
    pub keep_alive: bool,
    /// HTTP/1.0 has no chunked encoding: the body then ends when the connection closes.
    pub http10: bool,
    /// A `HEAD` request gets the response head only.
    pub head_only: bool,
    pub expect_continue: bool,
    pub body: BodyLength,
}

/// Reads what the request asks for, or says why it cannot (the text goes into a 400 body).
pub(crate) fn interpret(head: &RequestHead<'_, '_>) -> Result<PongRequest, String> {
    let (sleep_min_ms, sleep_ms, times) = asked(head.header("sleep"), head.header("times"))?;
    Ok(PongRequest {
        sleep_min_ms,
        sleep_ms,
        times,
        keep_alive: head.keep_alive,
        http10: head.version == Version::Http10,
        head_only: head.method == "HEAD",
        expect_continue: head.expect_continue,
        body: head.body,
    })
}

/// What the `sleep` and `times` fields ask, whichever protocol carried them: the least and
/// most milliseconds to wait before each `pong`, and how many more `pong`s after the first.
pub(crate) fn asked(sleep: Option<&[u8]>, times: Option<&[u8]>) -> Result<(u64, u64, u64), String> {
    let (min, max) = sleep_range(sleep)?;
    Ok((min, max, count_field(times, "times")?.unwrap_or(0)))
}

/// `sleep: MAX` or `sleep: MIN-MAX`.
fn sleep_range(raw: Option<&[u8]>) -> Result<(u64, u64), String> {
    let Some(raw) = raw else {
        return Ok((0, 0));
    };
    let value = raw.trim_ascii();
    let number = |text: &[u8]| -> Option<u64> {
        let text = std::str::from_utf8(text.trim_ascii()).ok()?;
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    let range = match value.iter().position(|&b| b == b'-') {
        Some(at) => number(&value[..at]).zip(number(&value[at + 1..])),
        None => number(value).map(|max| (0, max)),
    };
    match range {
        Some((min, max)) if min <= max => Ok((min.min(MAX_SLEEP_MS), max.min(MAX_SLEEP_MS))),
        _ => {
            let shown = String::from_utf8_lossy(&value[..value.len().min(64)]);
            Err(format!(
                "invalid `sleep` header: expected MAX or MIN-MAX milliseconds, got \"{shown}\"\n"
            ))
        }
    }
}

fn count_field(raw: Option<&[u8]>, name: &str) -> Result<Option<u64>, String> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let value = raw.trim_ascii();
    let parsed = if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
    } else {
        None
    };
    parsed.map(Some).ok_or_else(|| {
        let shown = String::from_utf8_lossy(&value[..value.len().min(64)]);
        format!("invalid `{name}` header: expected a non-negative integer, got \"{shown}\"\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_http1::{header_slots, parse_request, Limits};

    fn interpret_text(text: &[u8]) -> Result<PongRequest, String> {
        let mut slots = header_slots();
        let head = parse_request(text, &mut slots, &Limits::default())
            .unwrap()
            .unwrap();
        interpret(&head)
    }

    #[test]
    fn reads_sleep_and_times() {
        let request = interpret_text(b"GET / HTTP/1.1\r\nsleep: 250\r\ntimes: 3\r\n\r\n").unwrap();
        assert_eq!((request.sleep_ms, request.times), (250, 3));
        let held = interpret_text(b"GET / HTTP/1.1\r\nsleep: 100-250\r\n\r\n").unwrap();
        assert_eq!((held.sleep_min_ms, held.sleep_ms), (100, 250));
        for bad in ["250-100", "-5", "1-", "1-2-3"] {
            let text = format!("GET / HTTP/1.1\r\nsleep: {bad}\r\n\r\n");
            assert!(interpret_text(text.as_bytes()).is_err(), "{bad}");
        }
        assert!(request.keep_alive && !request.http10 && !request.head_only);
        let plain = interpret_text(b"POST /x HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi").unwrap();
        assert_eq!(
            (plain.sleep_ms, plain.times, plain.body),
            (0, 0, BodyLength::Fixed(2))
        );
        assert!(plain.http10 && !plain.keep_alive);
    }

    #[test]
    fn refuses_what_is_not_a_non_negative_integer() {
        for bad in ["abc", "-1", "1.5", "", "99999999999999999999999"] {
            let text = format!("GET / HTTP/1.1\r\nsleep: {bad}\r\n\r\n");
            let reason = interpret_text(text.as_bytes()).unwrap_err();
            assert!(reason.contains("`sleep`"), "{reason}");
        }
        let reason = interpret_text(b"GET / HTTP/1.1\r\ntimes: x\r\n\r\n").unwrap_err();
        assert!(
            reason.contains("`times`") && reason.contains("\"x\""),
            "{reason}"
        );
    }

    #[test]
    fn an_enormous_sleep_is_capped_not_overflowed() {
        let request =
            interpret_text(b"GET / HTTP/1.1\r\nsleep: 18446744073709551615\r\n\r\n").unwrap();
        assert_eq!(request.sleep_ms, MAX_SLEEP_MS);
    }
}
