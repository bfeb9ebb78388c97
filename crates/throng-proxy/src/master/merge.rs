//! The master's metrics: the workers' merged (a server is up only where every process sees it
//! up, "over budget" holds when any process is, the rest adds up), and drawn as tables.

use crate::metrics::escape;
use std::collections::HashMap;
use std::fmt::Write;
use throng_net::prometheus::{Merged, Value};

/// How the samples of one metric combine across processes.
pub fn combine(name: &str, a: Value, b: Value) -> Value {
    match name {
        "throng_proxy_server_up" | "throng_proxy_backend_servers_up" => Value::min(a, b),
        "throng_proxy_over_memory_budget"
        | "throng_proxy_server_admin_state"
        | "throng_proxy_server_weight"
        | "throng_proxy_backend_queue_max"
        | "throng_proxy_generation"
        | "throng_proxy_generation_age_seconds" => Value::max(a, b),
        _ => Value::sum(a, b),
    }
}

/// A merged sample as a whole number (0 when missing).
pub fn int(merged: &Merged, key: &str) -> u64 {
    merged.get(key).map_or(0, |v| v.as_f64() as u64)
}

/// The labelled samples as tables, one per kind of thing (frontend, backend, server): a row
/// per item, a column per metric.
pub fn tables_html(merged: &Merged) -> String {
    let mut kinds: Vec<Table> = Vec::new();
    for (key, value) in merged.samples() {
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
        rows[row].1.insert(column, value);
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

/// One kind of thing (frontend, backend, server): its columns in order, and its rows in order,
/// each an item with its values by column.
type Table = (String, Vec<String>, Vec<(String, HashMap<String, Value>)>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_up_where_all_see_them_up_and_tables_show_the_sums() {
        let one = "throng_proxy_server_up{backend=\"b\",server=\"s1\"} 1\nthrong_proxy_frontend_responses_total{frontend=\"f\",code=\"2xx\"} 10\n";
        let two = "throng_proxy_server_up{backend=\"b\",server=\"s1\"} 0\nthrong_proxy_frontend_responses_total{frontend=\"f\",code=\"2xx\"} 5\n";
        let mut merged = Merged::new(combine);
        merged.add(one);
        merged.add(two);
        assert_eq!(
            int(
                &merged,
                "throng_proxy_server_up{backend=\"b\",server=\"s1\"}"
            ),
            0
        );
        let tables = tables_html(&merged);
        assert!(tables.contains("<h2>frontends</h2>"), "{tables}");
        assert!(tables.contains("<th>responses 2xx</th>"), "{tables}");
        assert!(tables.contains("<td>15</td>"), "{tables}");
        assert!(tables.contains("<h2>servers</h2>"), "{tables}");
    }
}
