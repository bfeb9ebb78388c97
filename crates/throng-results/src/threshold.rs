//! Thresholds: conditions a run must meet, k6's idea in throng's words (`p99<50ms`,
//! `success>=99.9%`, `errors.timeout==0`). Each is judged on the same figures the report prints,
//! said as met or broken with the figure, and a broken one makes the command exit 1, so that a
//! run can gate a release.
//!
//! ```text
//!   threshold := metric op value
//!   metric    := p50 | p90 | p99.9 ... (latency quantiles) | mean | min | max
//!              | success | requests | rate | errors | errors.CLASS | status.CODE
//!   op        := < | <= | > | >= | == | !=
//!   value     := a duration for latencies (50ms, 1.5s, 800us), a percentage or a ratio for
//!                success (99.9% or 0.999), a number for the rest
//! ```

use crate::record::ErrorClass;
use std::fmt;

/// One condition, as the user wrote it and as it is judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub text: String,
    pub metric: Metric,
    op: Op,
    /// Nanoseconds for latencies, a ratio for success, a count or a rate for the rest.
    value: f64,
}

/// What a threshold looks at.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// A latency quantile (0.99 for `p99`), from each request's due time.
    Quantile(f64),
    Mean,
    Min,
    Max,
    /// Successes over requests (vegeta's: status 200-399 and no error).
    Success,
    Requests,
    /// The achieved rate of sends, per second.
    Rate,
    /// Errors of every class, or of one.
    Errors(Option<ErrorClass>),
    /// Responses with this status.
    Status(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Less,
    AtMost,
    More,
    AtLeast,
    Equal,
    NotEqual,
}

/// The figures a threshold is judged on, taken from a summary.
pub struct Figures<'a> {
    pub quantile: &'a dyn Fn(f64) -> u64,
    pub mean: u64,
    pub min: u64,
    pub max: u64,
    pub requests: u64,
    pub successes: u64,
    pub rate: f64,
    pub errors: &'a dyn Fn(Option<ErrorClass>) -> u64,
    pub status: &'a dyn Fn(u16) -> u64,
}

/// How one threshold came out.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub text: String,
    pub met: bool,
    /// The figure it was judged on, as the report writes it.
    pub figure: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = if self.met { "met" } else { "BROKEN" };
        write!(f, "{}: {word} ({})", self.text, self.figure)
    }
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let written = text.trim();
        let ops = [
            ("<=", Op::AtMost),
            (">=", Op::AtLeast),
            ("==", Op::Equal),
            ("!=", Op::NotEqual),
            ("<", Op::Less),
            (">", Op::More),
        ];
        let Some((at, symbol, op)) = ops
            .iter()
            .filter_map(|(symbol, op)| written.find(symbol).map(|at| (at, *symbol, *op)))
            .min_by_key(|(at, symbol, _)| (*at, std::cmp::Reverse(symbol.len())))
        else {
            return Err(format!(
                "`{written}`: no comparison (use <, <=, >, >=, == or !=, as in p99<50ms)"
            ));
        };
        let name = written[..at].trim();
        let value = written[at + symbol.len()..].trim();
        let metric = Metric::parse(name).map_err(|e| format!("`{written}`: {e}"))?;
        let value = metric
            .value(value)
            .map_err(|e| format!("`{written}`: {e}"))?;
        Ok(Threshold {
            text: written.to_string(),
            metric,
            op,
            value,
        })
    }

    /// Judges the threshold on `figures`.
    pub fn judge(&self, figures: &Figures<'_>) -> Verdict {
        let (actual, figure) = self.metric.figure(figures);
        let met = match self.op {
            Op::Less => actual < self.value,
            Op::AtMost => actual <= self.value,
            Op::More => actual > self.value,
            Op::AtLeast => actual >= self.value,
            Op::Equal => actual == self.value,
            Op::NotEqual => actual != self.value,
        };
        Verdict {
            text: self.text.clone(),
            met,
            figure,
        }
    }
}

impl Metric {
    fn parse(name: &str) -> Result<Metric, String> {
        let lower = name.to_ascii_lowercase();
        let metric = match lower.as_str() {
            "mean" => Metric::Mean,
            "min" => Metric::Min,
            "max" => Metric::Max,
            "success" => Metric::Success,
            "requests" => Metric::Requests,
            "rate" => Metric::Rate,
            "errors" => Metric::Errors(None),
            _ => {
                if let Some(class) = lower.strip_prefix("errors.") {
                    let class = ErrorClass::from_name(class).ok_or_else(|| {
                        let names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.name()).collect();
                        format!(
                            "no error class `{class}` (the classes: {})",
                            names.join(", ")
                        )
                    })?;
                    Metric::Errors(Some(class))
                } else if let Some(code) = lower.strip_prefix("status.") {
                    let code: u16 = code
                        .parse()
                        .ok()
                        .filter(|c| (100..1000).contains(c))
                        .ok_or_else(|| format!("`{code}` is not a status code"))?;
                    Metric::Status(code)
                } else if let Some(percent) = lower.strip_prefix('p') {
                    let percent: f64 = percent
                        .parse()
                        .ok()
                        .filter(|p| *p > 0.0 && *p <= 100.0)
                        .ok_or_else(|| {
                            format!("`{name}`: a percentile is p1 to p100 (p99, p99.9)")
                        })?;
                    Metric::Quantile(percent / 100.0)
                } else {
                    return Err(format!(
                        "unknown metric `{name}` (use p50, p99, p99.9, mean, min, max, success, requests, rate, errors, errors.CLASS or status.CODE)"
                    ));
                }
            }
        };
        Ok(metric)
    }

    /// The value a threshold compares with, in the metric's unit.
    fn value(&self, text: &str) -> Result<f64, String> {
        match self {
            Metric::Quantile(_) | Metric::Mean | Metric::Min | Metric::Max => {
                let duration = throng_net::duration::parse(text)
                    .map_err(|e| format!("a latency is a duration (50ms, 1.5s): {e}"))?;
                Ok(duration.as_nanos() as f64)
            }
            Metric::Success => {
                let (number, scale) = match text.strip_suffix('%') {
                    Some(number) => (number, 100.0),
                    None => (text, 1.0),
                };
                let ratio = number
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .map(|n| n / scale)
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        format!("`{text}`: success is a percentage (99.9%) or a ratio (0.999)")
                    })?;
                Ok(ratio)
            }
            _ => text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("`{text}` is not a number")),
        }
    }

    /// The figure judged, and how the report writes it.
    fn figure(&self, f: &Figures<'_>) -> (f64, String) {
        let latency = |ns: u64| (ns as f64, crate::time::go_duration(ns));
        match self {
            Metric::Quantile(q) => {
                let (value, text) = latency((f.quantile)(*q));
                (value, format!("p{} {text}", q * 100.0))
            }
            Metric::Mean => latency(f.mean),
            Metric::Min => latency(f.min),
            Metric::Max => latency(f.max),
            Metric::Success => {
                let ratio = match f.requests {
                    0 => 0.0,
                    n => f.successes as f64 / n as f64,
                };
                (ratio, format!("success {:.3}%", ratio * 100.0))
            }
            Metric::Requests => (f.requests as f64, format!("{} requests", f.requests)),
            Metric::Rate => (f.rate, format!("{:.2} requests/s", f.rate)),
            Metric::Errors(class) => {
                let n = (f.errors)(*class);
                let what = class.map_or("errors".to_string(), |c| format!("{} errors", c.name()));
                (n as f64, format!("{n} {what}"))
            }
            Metric::Status(code) => {
                let n = (f.status)(*code);
                (n as f64, format!("{n} responses {code}"))
            }
        }
    }
}

/// Parses every threshold, or says which one is wrong.
pub fn parse_all(texts: &[String]) -> Result<Vec<Threshold>, String> {
    texts.iter().map(|t| Threshold::parse(t)).collect()
}

/// The line for a set of verdicts: what a report or an attack prints at its end.
pub fn describe(verdicts: &[Verdict]) -> String {
    let broken = verdicts.iter().filter(|v| !v.met).count();
    let mut out = match broken {
        0 => format!("Thresholds: all {} met\n", verdicts.len()),
        n => format!("Thresholds: {n} of {} BROKEN\n", verdicts.len()),
    };
    for verdict in verdicts {
        out += &format!("  {verdict}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures_and_judge(text: &str) -> Verdict {
        let quantile = |q: f64| (q * 100.0) as u64 * 1_000_000; // p99: 99 ms
        let errors = |class: Option<ErrorClass>| match class {
            None => 3,
            Some(ErrorClass::Timeout) => 2,
            Some(_) => 0,
        };
        let status = |code: u16| if code == 200 { 997 } else { 0 };
        let figures = Figures {
            quantile: &quantile,
            mean: 5_000_000,
            min: 100_000,
            max: 120_000_000,
            requests: 1000,
            successes: 997,
            rate: 100.0,
            errors: &errors,
            status: &status,
        };
        Threshold::parse(text).unwrap().judge(&figures)
    }

    #[test]
    fn thresholds_are_judged_on_the_reports_figures() {
        for (text, met) in [
            ("p99<100ms", true),
            ("p99 < 99ms", false),
            ("p99<=99ms", true),
            ("p99.9<1s", true),
            ("max<100ms", false),
            ("mean<=5ms", true),
            ("success>=99.7%", true),
            ("success>=0.998", false),
            ("errors==3", true),
            ("errors.timeout==0", false),
            ("errors.connection-refused==0", true),
            ("status.200>=997", true),
            ("requests>1000", false),
            ("rate>=99.5", true),
            ("errors!=0", true),
        ] {
            assert_eq!(figures_and_judge(text).met, met, "{text}");
        }
        let verdict = figures_and_judge("p99<50ms");
        assert_eq!(verdict.to_string(), "p99<50ms: BROKEN (p99 99ms)");
    }

    #[test]
    fn a_bad_threshold_says_what_is_wrong() {
        for (text, says) in [
            ("p99 50ms", "no comparison"),
            ("latency<50ms", "unknown metric `latency`"),
            ("p99<fast", "a latency is a duration"),
            ("success>=120%", "success is a percentage"),
            ("errors.slow==0", "no error class `slow`"),
            ("status.20x==0", "`20x` is not a status code"),
            ("p0<1s", "a percentile is p1 to p100"),
        ] {
            let error = Threshold::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
            assert!(error.contains(text), "{text}: names the threshold: {error}");
        }
    }
}
