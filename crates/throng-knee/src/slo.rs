//! What a step must meet: a latency percentile under a limit, and a share of successes.

use std::time::Duration;
use throng_net::duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// The percentile that is held to `limit`: 50, 90, 95, 99 or 100 (`max`).
    pub percentile: Percentile,
    pub limit: Duration,
    /// The least share of successful requests, 0..=1.
    pub success: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percentile {
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl Percentile {
    /// The key of this percentile in a report's `latencies`.
    pub fn key(self) -> &'static str {
        match self {
            Percentile::P50 => "50th",
            Percentile::P90 => "90th",
            Percentile::P95 => "95th",
            Percentile::P99 => "99th",
            Percentile::Max => "max",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
            Percentile::Max => "max",
        }
    }
}

/// Reads `p99=200ms` (p50, p90, p95, p99 or max).
pub fn parse_latency(text: &str) -> Result<(Percentile, Duration), String> {
    let (which, limit) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected PERCENTILE=DURATION, such as p99=200ms"))?;
    let percentile = match which.trim().to_ascii_lowercase().as_str() {
        "p50" => Percentile::P50,
        "p90" => Percentile::P90,
        "p95" => Percentile::P95,
        "p99" => Percentile::P99,
        "max" | "p100" => Percentile::Max,
        other => return Err(format!("`{other}`: use p50, p90, p95, p99 or max")),
    };
    let limit = duration::parse(limit.trim()).map_err(|e| format!("`{text}`: {e}"))?;
    if limit.is_zero() {
        return Err(format!("`{text}`: the limit must be more than zero"));
    }
    Ok((percentile, limit))
}

/// Reads `99.9%` or `0.999` as a share.
pub fn parse_share(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let value = match trimmed.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => trimmed.parse::<f64>(),
    }
    .map_err(|_| format!("`{text}`: expected a share such as 99.9% or 0.999"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("`{text}`: a share is between 0% and 100%"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_as_people_write_them() {
        assert_eq!(
            parse_latency("p99=200ms"),
            Ok((Percentile::P99, Duration::from_millis(200)))
        );
        assert_eq!(parse_latency("max=1s").unwrap().0, Percentile::Max);
        assert!(parse_latency("p98=1s").is_err());
        assert!(parse_latency("p99").is_err());
        assert!((parse_share("99.9%").unwrap() - 0.999).abs() < 1e-12);
        assert_eq!(parse_share("0.5").unwrap(), 0.5);
        assert!(parse_share("120%").is_err());
    }
}
