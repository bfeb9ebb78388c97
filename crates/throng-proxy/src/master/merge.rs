//! One `/metrics` and one stats page for all worker processes: their Prometheus texts merged
//! sample by sample. Counters and most gauges add up; a server is up only where every process
//! sees it up, and "over budget" holds when any process is.

use std::collections::HashMap;
use std::fmt::Write;

/// How the samples of one metric combine across processes.
fn combine(name: &str, a: u64, b: u64) -> u64 {
    match name {
        "throng_proxy_server_up" | "throng_proxy_backend_servers_up" => a.min(b),
        "throng_proxy_over_memory_budget" | "throng_proxy_backend_queue_max" => a.max(b),
        _ => a.saturating_add(b),
    }
}

enum Line {
    Comment(String),
    Sample { key: String, value: u64 },
}

/// Merged Prometheus text: the first text's families and samples, in its order, with every
/// other text's samples combined into them (and any sample the first lacks added at the end).
#[derive(Default)]
pub struct Merged {
    lines: Vec<Line>,
    index: HashMap<String, usize>,
}

impl Merged {
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
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            match self.index.get(key) {
                Some(&at) => {
                    if let Line::Sample { value: sum, .. } = &mut self.lines[at] {
                        *sum = combine(metric_name(key), *sum, value);
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
    pub fn get(&self, key: &str) -> Option<u64> {
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
                    let _ = write!(out, "{key} {value}");
                }
            }
            out.push('\n');
        }
        out
    }

    /// The labelled samples as tables, one per kind of thing (frontend, backend, server): a row
    /// per item, a column per metric.
    pub fn tables_html(&self) -> String {
        let mut kinds: Vec<Table> = Vec::new();
        for line in &self.lines {
            let Line::Sample { key, value } = line else {
                continue;
            };
            let Some((name, labels)) = key.split_once('{') else {
                continue;
            };
            let labels = labels.trim_end_matches('}');
            let mut item = Vec::new();
            let mut code = None;
            for label in labels.split(',') {
                match label.split_once('=') {
                    Some(("code", v)) => code = Some(v.trim_matches('"').to_string()),
                    Some((k, v)) => item.push(format!("{k} {}", v.trim_matches('"'))),
                    None => {}
                }
            }
            let Some(kind) = item.last().and_then(|l| l.split(' ').next()) else {
                continue;
            };
            let kind = kind.to_string();
            let short = name
                .trim_start_matches("throng_proxy_")
                .trim_start_matches(&format!("{kind}_"))
                .trim_end_matches("_total");
            let column = match code {
                Some(code) => format!("{short} {code}"),
                None => short.to_string(),
            };
            let item = item.join(", ");
            let at = match kinds.iter().position(|(k, ..)| *k == kind) {
                Some(at) => at,
                None => {
                    kinds.push((kind, Vec::new(), Vec::new()));
                    kinds.len() - 1
                }
            };
            let (_, columns, rows) = &mut kinds[at];
            if !columns.contains(&column) {
                columns.push(column.clone());
            }
            let row = match rows.iter().position(|(i, _)| *i == item) {
                Some(row) => row,
                None => {
                    rows.push((item, HashMap::new()));
                    rows.len() - 1
                }
            };
            rows[row].1.insert(column, *value);
        }
        let mut html = String::new();
        for (kind, columns, rows) in kinds {
            let _ = write!(html, "<h2>{kind}s</h2><table><tr><th>{kind}</th>");
            for column in &columns {
                let _ = write!(html, "<th>{}</th>", escape(column));
            }
            html.push_str("</tr>");
            for (item, values) in rows {
                let _ = write!(html, "<tr><td>{}</td>", escape(&item));
                for column in &columns {
                    match values.get(column) {
                        Some(v) => {
                            let _ = write!(html, "<td>{v}</td>");
                        }
                        None => html.push_str("<td></td>"),
                    }
                }
                html.push_str("</tr>");
            }
            html.push_str("</table>");
        }
        html
    }
}

/// One kind of thing (frontend, backend, server): its columns in order, and its rows in order,
/// each an item with its values by column.
type Table = (String, Vec<String>, Vec<(String, HashMap<String, u64>)>);

fn metric_name(key: &str) -> &str {
    key.split_once('{').map_or(key, |(name, _)| name)
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_add_up_and_servers_are_up_where_all_see_them_up() {
        let one = "# HELP throng_proxy_connections c\n# TYPE throng_proxy_connections gauge\nthrong_proxy_connections 3\nthrong_proxy_server_up{backend=\"b\",server=\"s1\"} 1\nthrong_proxy_frontend_responses_total{frontend=\"f\",code=\"2xx\"} 10\n";
        let two = "# HELP throng_proxy_connections c\n# TYPE throng_proxy_connections gauge\nthrong_proxy_connections 4\nthrong_proxy_server_up{backend=\"b\",server=\"s1\"} 0\nthrong_proxy_frontend_responses_total{frontend=\"f\",code=\"2xx\"} 5\n";
        let mut merged = Merged::default();
        merged.add(one);
        merged.add(two);
        assert_eq!(merged.get("throng_proxy_connections"), Some(7));
        assert_eq!(
            merged.get("throng_proxy_server_up{backend=\"b\",server=\"s1\"}"),
            Some(0)
        );
        let text = merged.text();
        assert_eq!(text.matches("# HELP throng_proxy_connections").count(), 1);
        assert!(
            text.contains("throng_proxy_frontend_responses_total{frontend=\"f\",code=\"2xx\"} 15")
        );
        let tables = merged.tables_html();
        assert!(tables.contains("<h2>frontends</h2>"), "{tables}");
        assert!(tables.contains("<th>responses 2xx</th>"), "{tables}");
        assert!(tables.contains("<td>15</td>"), "{tables}");
    }
}
