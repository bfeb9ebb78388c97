//! Prometheus texts of several processes merged into one, sample by sample: what a master
//! serves for its workers (`throng proxy` with `global.processes`, `throng pong --procs`). How
//! the samples of a metric combine is the caller's (summed, the least, the most); the texts are
//! fetched from each worker's own admin listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// A label value as the text exposition format spells it: backslash, double quote and line
/// feed escaped (a name from a configuration or a runtime command may hold any of them).
pub fn label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// How long a worker has to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How two processes' samples of the metric `name` combine.
pub type Combine = fn(name: &str, a: Value, b: Value) -> Value;

/// A sample's value: counters and most gauges are whole numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }

    pub fn sum(a: Value, b: Value) -> Value {
        match (a, b) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.saturating_add(b)),
            _ => Value::Float(a.as_f64() + b.as_f64()),
        }
    }

    pub fn min(a: Value, b: Value) -> Value {
        if b.as_f64() < a.as_f64() {
            b
        } else {
            a
        }
    }

    pub fn max(a: Value, b: Value) -> Value {
        if b.as_f64() > a.as_f64() {
            b
        } else {
            a
        }
    }

    fn parse(text: &str) -> Option<Value> {
        match text.parse::<u64>() {
            Ok(v) => Some(Value::Int(v)),
            Err(_) => text.parse::<f64>().ok().map(Value::Float),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v:.6}"),
        }
    }
}

enum Line {
    Comment(String),
    Sample { key: String, value: Value },
}

/// Merged Prometheus text: the first text's families and samples, in its order, with every
/// other text's samples combined into them (and any sample the first lacks added at the end).
pub struct Merged {
    combine: Combine,
    lines: Vec<Line>,
    index: HashMap<String, usize>,
}

impl Merged {
    pub fn new(combine: Combine) -> Merged {
        Merged {
            combine,
            lines: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub fn add(&mut self, text: &str) {
        for line in text.lines() {
            if line.starts_with('#') {
                if !self.lines_have_comment(line) {
                    self.lines.push(Line::Comment(line.to_string()));
                }
                continue;
            }
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Some(value) = Value::parse(value) else {
                continue;
            };
            match self.index.get(key) {
                Some(&at) => {
                    if let Line::Sample { value: sum, .. } = &mut self.lines[at] {
                        *sum = (self.combine)(metric_name(key), *sum, value);
                    }
                }
                None => {
                    self.index.insert(key.to_string(), self.lines.len());
                    self.lines.push(Line::Sample {
                        key: key.to_string(),
                        value,
                    });
                }
            }
        }
    }

    fn lines_have_comment(&self, comment: &str) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l, Line::Comment(c) if c == comment))
    }

    /// A sample's merged value.
    pub fn get(&self, key: &str) -> Option<Value> {
        match self.lines.get(*self.index.get(key)?) {
            Some(Line::Sample { value, .. }) => Some(*value),
            _ => None,
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.lines.len() * 64);
        for line in &self.lines {
            match line {
                Line::Comment(text) => out.push_str(text),
                Line::Sample { key, value } => {
                    out.push_str(&format!("{key} {value}"));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Every sample, in order: its key (`name{labels}`) and merged value.
    pub fn samples(&self) -> impl Iterator<Item = (&str, Value)> {
        self.lines.iter().filter_map(|line| match line {
            Line::Sample { key, value } => Some((key.as_str(), *value)),
            Line::Comment(_) => None,
        })
    }
}

fn metric_name(key: &str) -> &str {
    key.split_once('{').map_or(key, |(name, _)| name)
}

/// Every address's `/metrics`, fetched at once and merged; with each text (`None` where it
/// did not answer in time).
pub fn gather(addrs: &[Option<SocketAddr>], combine: Combine) -> (Merged, Vec<Option<String>>) {
    let texts = fetch_all(addrs);
    let mut merged = Merged::new(combine);
    for text in texts.iter().flatten() {
        merged.add(text);
    }
    (merged, texts)
}

/// Each address's `/metrics` text, fetched at once; `None` where it did not answer in time.
pub fn fetch_all(addrs: &[Option<SocketAddr>]) -> Vec<Option<String>> {
    std::thread::scope(|scope| {
        let fetches: Vec<_> = addrs
            .iter()
            .map(|addr| scope.spawn(move || addr.and_then(fetch)))
            .collect();
        fetches
            .into_iter()
            .map(|f| f.join().ok().flatten())
            .collect()
    })
}

fn fetch(addr: SocketAddr) -> Option<String> {
    match crate::admin::request(addr, "GET", "/metrics", b"", None, FETCH_TIMEOUT) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(super::label_value("plain-name_1"), "plain-name_1");
    }

    use super::*;

    fn up_is_the_least(name: &str, a: Value, b: Value) -> Value {
        match name {
            "x_up" => Value::min(a, b),
            "x_delay_seconds" => Value::max(a, b),
            _ => Value::sum(a, b),
        }
    }

    #[test]
    fn samples_combine_as_the_caller_says() {
        let one = "# HELP x_connections c\n# TYPE x_connections gauge\nx_connections 3\nx_up{s=\"a\"} 1\nx_responses_total{f=\"f\",code=\"2xx\"} 10\nx_delay_seconds 0.250000\n";
        let two = "# HELP x_connections c\n# TYPE x_connections gauge\nx_connections 4\nx_up{s=\"a\"} 0\nx_responses_total{f=\"f\",code=\"2xx\"} 5\nx_delay_seconds 0.500000\n";
        let mut merged = Merged::new(up_is_the_least);
        merged.add(one);
        merged.add(two);
        assert_eq!(merged.get("x_connections"), Some(Value::Int(7)));
        assert_eq!(merged.get("x_up{s=\"a\"}"), Some(Value::Int(0)));
        assert_eq!(merged.get("x_delay_seconds"), Some(Value::Float(0.5)));
        let text = merged.text();
        assert_eq!(text.matches("# HELP x_connections").count(), 1);
        assert!(
            text.contains("x_responses_total{f=\"f\",code=\"2xx\"} 15\n"),
            "{text}"
        );
        assert!(text.contains("x_delay_seconds 0.500000\n"), "{text}");
        assert_eq!(merged.samples().count(), 4);
    }
}
