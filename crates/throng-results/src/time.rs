//! Timestamps and durations as people and Go programs write them.

use throng_net::calendar::{civil_from_days, days_from_civil};

/// RFC 3339 in UTC with nanoseconds, as Go's `time.Time` marshals: `2026-11-24T14:20:14.123456789Z`.
pub fn rfc3339(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let nanos = unix_ns % 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads what [`rfc3339`] writes (UTC, `Z`), back to nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.split(':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (
        clock_parts.next()??,
        clock_parts.next()??,
        clock_parts.next()??,
    );
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000_000) + nanos)
}

/// A duration as Go's `time.Duration.String` writes it (vegeta's reports use it): `1.234567ms`,
/// `10.5s`, `1m30s`.
pub fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let trimmed = |value: u64, unit_ns: u64, unit: &str| {
        let whole = value / unit_ns;
        let fraction = value % unit_ns;
        let digits = unit_ns.ilog10() as usize;
        if fraction == 0 {
            format!("{whole}{unit}")
        } else {
            let fraction = format!("{fraction:0digits$}");
            format!("{whole}.{}{unit}", fraction.trim_end_matches('0'))
        }
    };
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => trimmed(ns, 1_000, "µs"),
        1_000_000..=999_999_999 => trimmed(ns, 1_000_000, "ms"),
        _ => {
            let secs = ns / 1_000_000_000;
            let (hours, minutes) = (secs / 3600, secs % 3600 / 60);
            let seconds = trimmed(ns % 60_000_000_000, 1_000_000_000, "s");
            match (hours, minutes) {
                (0, 0) => seconds,
                (0, m) => format!("{m}m{seconds}"),
                (h, m) => format!("{h}h{m}m{seconds}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let ns = 1_795_962_014_123_456_789;
        assert_eq!(rfc3339(ns), "2026-11-29T14:20:14.123456789Z");
        assert_eq!(parse_rfc3339(&rfc3339(ns)), Some(ns));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2000-02-29T23:59:59.5Z"),
            Some(951_868_799_500_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn durations_as_go_writes_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(850), "850ns");
        assert_eq!(go_duration(1_234_567), "1.234567ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(20_000), "20µs");
    }
}
