//! The tipping-point graph: latency percentiles against the offered rate, both on log scales,
//! the knee marked and failed steps shown; one self-contained HTML page with inline SVG.

use crate::step::{Step, Verdict};
use crate::Knee;
use std::fmt::Write;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 50.0;
const TOP: f64 = 20.0;
const RIGHT: f64 = 20.0;

/// A line of the graph: name, colour, and the step's value in nanoseconds.
type Series = (&'static str, &'static str, fn(&Step) -> u64);

pub fn html(knee: &Knee, title: &str, slo: &str) -> String {
    // Each step with its number in the search's order; the lines follow the rate, through the
    // run that decided each rate (the last), so they never turn back on themselves.
    let numbered = numbered(&knee.steps);
    let mut deciding: Vec<(usize, &Step)> = Vec::new();
    for &(n, s) in &numbered {
        match deciding.iter_mut().find(|(m, _)| *m == n) {
            Some(slot) => *slot = (n, s),
            None => deciding.push((n, s)),
        }
    }
    deciding.sort_by(|a, b| a.1.offered.total_cmp(&b.1.offered));
    let steps: Vec<&Step> = deciding.iter().map(|(_, s)| *s).collect();
    let rates: Vec<f64> = steps.iter().map(|s| s.offered.max(1e-3)).collect();
    let latencies: Vec<f64> = steps
        .iter()
        .flat_map(|s| [s.p50, s.p90, s.p99, s.max])
        .map(|ns| (ns as f64 / 1e6).max(1e-3))
        .collect();
    let (x_lo, x_hi) = bounds(&rates);
    let (y_lo, y_hi) = bounds(&latencies);
    let x =
        |rate: f64| LEFT + (rate.max(1e-3).log10() - x_lo) / (x_hi - x_lo) * (WIDTH - LEFT - RIGHT);
    let y = |ms: f64| {
        HEIGHT - BOTTOM - (ms.max(1e-3).log10() - y_lo) / (y_hi - y_lo) * (HEIGHT - TOP - BOTTOM)
    };
    let mut svg = String::new();
    let _ = write!(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">");
    // Axes with decade ticks.
    for decade in (x_lo.floor() as i32)..=(x_hi.ceil() as i32) {
        let rate = 10f64.powi(decade);
        let px = x(rate);
        if (LEFT..=WIDTH - RIGHT).contains(&px) {
            let _ = write!(svg, "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", HEIGHT - BOTTOM, HEIGHT - BOTTOM + 16.0, label(rate));
        }
    }
    for decade in (y_lo.floor() as i32)..=(y_hi.ceil() as i32) {
        let ms = 10f64.powi(decade);
        let py = y(ms);
        if (TOP..=HEIGHT - BOTTOM).contains(&py) {
            let _ = write!(svg, "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>", WIDTH - RIGHT, LEFT - 6.0, py + 4.0, label(ms));
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">offered rate (requests/s)</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 12.0
    );
    // The knee.
    if let Some(rate) = knee.knee {
        let px = x(rate);
        // The label stays inside the chart: right of the line, or left of it near the edge.
        let (label_x, anchor) = if px > (LEFT + WIDTH - RIGHT) * 0.75 {
            (px - 6.0, "end")
        } else {
            (px + 6.0, "start")
        };
        let _ = write!(svg, "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#2a7\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/><text x=\"{:.1}\" y=\"{}\" fill=\"#2a7\" text-anchor=\"{anchor}\">knee {rate:.0}/s</text>", HEIGHT - BOTTOM, label_x, TOP + 14.0);
    }
    // One line per percentile, points coloured by verdict.
    let series: [Series; 4] = [
        ("p50", "#8ab", |s| s.p50),
        ("p90", "#58a", |s| s.p90),
        ("p99", "#235", |s| s.p99),
        ("max", "#b85", |s| s.max),
    ];
    for (i, (name, colour, get)) in series.iter().enumerate() {
        let points: Vec<String> = steps
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.offered), y(get(s) as f64 / 1e6)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for &(n, s) in &numbered {
            let fill = match s.verdict {
                Verdict::Pass => *colour,
                Verdict::Fail(_) => "#d33",
                Verdict::GeneratorBound(_) => "#999",
            };
            let (px, py) = (x(s.offered), y(get(s) as f64 / 1e6));
            let _ = write!(svg, "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3.5\" fill=\"{fill}\"><title>step {n}, {name} at {:.1}/s: {:.2} ms</title></circle>", s.offered, get(s) as f64 / 1e6);
            // The step's number beside its p99 point, once per rate.
            if *name == "p99" && s.attempt == 1 {
                let _ = write!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">{n}</text>",
                    px + 5.0,
                    py - 5.0
                );
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>",
            LEFT + 10.0 + 50.0 * i as f64,
            TOP + 14.0
        );
    }
    svg.push_str("</svg>");

    let mut rows = String::new();
    for &(n, s) in &numbered {
        let name = match s.attempt {
            1 => n.to_string(),
            run => format!("{n} (run {run})"),
        };
        let _ = write!(
            rows,
            "<tr class=\"{}\"><td>{name}</td>{}</tr>",
            class(&s.verdict),
            cells(s)
        );
    }
    for (name, step) in [("validation", &knee.validation), ("above", &knee.above)] {
        if let Some(s) = step {
            let _ = write!(
                rows,
                "<tr class=\"{}\"><td>{name}</td>{}</tr>",
                class(&s.verdict),
                cells(s)
            );
        }
    }
    let headline = match (knee.knee, &knee.generator_bound) {
        (_, Some(reason)) => format!("Stopped: {}", escape(reason)),
        (Some(rate), None) => format!(
            "Knee: <b>{rate:.1} requests/s</b>, the highest rate that met the SLO ({})",
            escape(slo)
        ),
        (None, None) => format!("No rate met the SLO ({})", escape(slo)),
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}tr.fail{{background:#fdd}}tr.bound{{background:#eee}}</style></head><body><h1>{title}</h1><p>{headline}</p>{svg}<p>Red points: steps that missed the SLO; grey: steps the generator could not deliver. Latency is measured from each request's intended send time.</p><table><tr><th>step</th><th>offered/s</th><th>achieved/s</th><th>requests</th><th>success</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th><th>verdict</th></tr>{rows}</table></body></html>\n",
        title = escape(title)
    )
}

/// Steps with their number in the search's order (a confirming run shares its rate's number).
fn numbered(steps: &[Step]) -> Vec<(usize, &Step)> {
    let mut n = 0;
    steps
        .iter()
        .map(|s| {
            if s.attempt <= 1 {
                n += 1;
            }
            (n, s)
        })
        .collect()
}

fn cells(s: &Step) -> String {
    let ms = |ns: u64| format!("{:.2}", ns as f64 / 1e6);
    let verdict = match &s.verdict {
        Verdict::Pass => "pass".to_string(),
        Verdict::Fail(r) => format!("fail: {}", escape(r)),
        Verdict::GeneratorBound(r) => format!("generator-bound: {}", escape(r)),
    };
    format!(
        "<td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{:.3}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{verdict}</td>",
        s.offered, s.achieved, s.requests, s.success * 100.0, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)
    )
}

fn class(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail(_) => "fail",
        Verdict::GeneratorBound(_) => "bound",
    }
}

/// log10 bounds with a little room, never empty.
fn bounds(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.log10() - 0.1, hi.log10() + 0.1);
    if hi - lo < 0.5 {
        (lo - 0.25, hi + 0.25)
    } else {
        (lo, hi)
    }
}

fn label(value: f64) -> String {
    if value >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
