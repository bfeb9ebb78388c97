//! A line chart as inline SVG: a time axis in seconds from the start, a value axis (linear or
//! logarithmic) with its unit, a legend, a title. No script: it opens anywhere, offline.

use std::fmt::Write;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 36.0;

pub struct Series {
    pub name: String,
    pub colour: &'static str,
    /// (seconds from the start, value)
    pub points: Vec<(f64, f64)>,
    /// Draw dots rather than a line (a scatter).
    pub dots: bool,
}

pub const COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// An SVG chart of `series`; `log` for a logarithmic value axis.
pub fn svg(title: &str, unit: &str, series: &[Series], log: bool) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let mut out = String::new();
    let _ = write!(out, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\"><text x=\"{LEFT}\" y=\"16\" font-size=\"14\" font-weight=\"bold\">{}</text>", escape(title));
    if all.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{LEFT}\" y=\"{}\">no data</text></svg>",
            HEIGHT / 2.0
        );
        return out;
    }
    let t_max = all.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1.0);
    let transform = |v: f64| if log { v.max(1e-3).log10() } else { v };
    let mut lo = all
        .iter()
        .map(|p| transform(p.1))
        .fold(f64::INFINITY, f64::min);
    let mut hi = all
        .iter()
        .map(|p| transform(p.1))
        .fold(f64::NEG_INFINITY, f64::max);
    if !log {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let x = |t: f64| LEFT + t / t_max * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| HEIGHT - BOTTOM - (transform(v) - lo) / (hi - lo) * (HEIGHT - TOP - BOTTOM);
    // Value ticks: five, labelled in the unit.
    for i in 0..=4 {
        let level = lo + (hi - lo) * i as f64 / 4.0;
        let value = if log { 10f64.powf(level) } else { level };
        let py = y(value);
        let _ = write!(out, "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>", WIDTH - RIGHT, LEFT - 4.0, py + 4.0, number(value), escape(unit));
    }
    for i in 0..=5 {
        let t = t_max * i as f64 / 5.0;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0} s</text>",
            x(t),
            HEIGHT - BOTTOM + 14.0,
            t
        );
    }
    for (i, s) in series.iter().enumerate() {
        if s.dots {
            for (t, v) in &s.points {
                let _ = write!(out, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"{}\" fill-opacity=\"0.5\"/>", x(*t), y(*v), s.colour);
            }
        } else {
            let points: Vec<String> = s
                .points
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect();
            let _ = write!(
                out,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                s.colour,
                points.join(" ")
            );
        }
        // The legend on its own line under the title.
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"32\" fill=\"{}\">■ {}</text>",
            LEFT + 130.0 * i as f64,
            s.colour,
            escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

pub fn number(value: f64) -> String {
    let a = value.abs();
    if a >= 1e9 {
        format!("{:.1}G", value / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{value:.0}")
    } else if a >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
