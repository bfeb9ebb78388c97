//! A run's figures as JSON and as text, with loss counted against what was really sent.

use super::plan::{Plan, Role};
use super::stats::Stats;
use crate::stream::Histogram;
use serde_json::{json, Map, Value};
use throng_mqtt::topic;

/// Messages each subscriber should have received and did not, duplicates and reorderings. With
/// the publishers in this run, expected is what each publisher whose topic the subscriber's
/// filter matches really sent; with publishers elsewhere (`sub` alone), it is every number up
/// to the highest that arrived (so a lost tail is not seen). `unique` counts, with publishers
/// in the run, the expected messages that arrived.
pub struct Delivery {
    pub expected: u64,
    pub unique: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
}

/// Subscriber and publisher pairs matched at most; past it (only a crafted file has that
/// many), loss is counted from the gaps in what arrived.
const MAX_PAIRS: u64 = 50_000_000;

pub fn delivery(plan: &Plan, stats: &Stats) -> Delivery {
    let mut delivery = Delivery {
        expected: 0,
        unique: 0,
        lost: 0,
        duplicates: 0,
        reordered: 0,
    };
    for track in stats.tracks.values() {
        delivery.unique = delivery.unique.saturating_add(track.unique);
        delivery.duplicates = delivery.duplicates.saturating_add(track.duplicates);
        delivery.reordered = delivery.reordered.saturating_add(track.reordered);
    }
    // Each subscriber's filter against each publisher's topic: bounded, since the figures may
    // come from a file (a crafted one could name billions of each).
    let pairs =
        (stats.subscribers.len() as u64).saturating_mul(stats.sent_by_publisher.len() as u64);
    if plan.role == Role::Pub && pairs <= MAX_PAIRS {
        let topics: Vec<(u32, u64, String)> = stats
            .sent_by_publisher
            .iter()
            .map(|(&publisher, &sent)| {
                (
                    publisher,
                    sent,
                    Plan::topic_of(&plan.topic, u64::from(publisher)),
                )
            })
            .collect();
        // Per subscriber and publisher, so that one pair's extra messages never hide
        // another's loss, and a publisher or subscriber whose figures were not read (a
        // missing part) counts neither way.
        let (mut expected, mut matched, mut lost) = (0u64, 0u64, 0u64);
        for &subscriber in &stats.subscribers {
            let filter = Plan::topic_of(&plan.sub_topic, u64::from(subscriber));
            for (publisher, sent, topic) in &topics {
                if topic::matches(&filter, topic) {
                    let got = stats
                        .tracks
                        .get(&(subscriber, *publisher))
                        .map_or(0, |t| t.unique);
                    expected = expected.saturating_add(*sent);
                    matched = matched.saturating_add(got.min(*sent));
                    lost = lost.saturating_add(sent.saturating_sub(got));
                }
            }
        }
        delivery.expected = expected;
        delivery.unique = matched;
        delivery.lost = lost;
    } else {
        delivery.lost = stats
            .tracks
            .values()
            .fold(0u64, |sum, t| sum.saturating_add(t.gaps()));
        delivery.expected = delivery.unique.saturating_add(delivery.lost);
    }
    delivery
}

fn percentiles(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return Value::Null;
    }
    json!({
        "count": histogram.len(),
        "min": histogram.min(),
        "mean": histogram.mean() as u64,
        "50th": histogram.value_at_quantile(0.50),
        "90th": histogram.value_at_quantile(0.90),
        "95th": histogram.value_at_quantile(0.95),
        "99th": histogram.value_at_quantile(0.99),
        "max": histogram.max(),
    })
}

pub fn json(plan: &Plan, stats: &Stats) -> Value {
    let delivery = delivery(plan, stats);
    let codes = |map: &std::collections::BTreeMap<u8, u64>| -> Value {
        map.iter()
            .map(|(code, n)| (code.to_string(), json!(n)))
            .collect::<Map<_, _>>()
            .into()
    };
    let errors: Map<String, Value> = stats
        .errors
        .iter()
        .map(|(class, (n, example))| (class.to_string(), json!({"count": n, "example": example})))
        .collect();
    json!({
        "role": plan.role.name(),
        "version": plan.version,
        "qos": plan.qos,
        "tls": plan.tls,
        "connections": {
            "clients": plan.connections(),
            "attempted": stats.connect_attempts,
            "connected": stats.connected,
            "disconnected": stats.disconnected,
            "reconnects": stats.reconnects,
            "connack_codes": codes(&stats.connack_codes),
            "connect": percentiles(&stats.connect_time),
            "tcp": percentiles(&stats.tcp_time),
            "tls": percentiles(&stats.tls_time),
        },
        "pings": {
            "sent": stats.pings_sent,
            "answered": stats.pings_answered,
            "rtt": percentiles(&stats.ping_time),
        },
        "publish": {
            "offered_rate": if plan.role == Role::Pub { plan.publish_rate } else { 0.0 },
            "due": stats.published_due,
            "sent": stats.published,
            "acked": stats.acked,
            "delayed_by_window": stats.delayed_by_window,
            "lag": percentiles(&stats.lag),
            "ack_latency": percentiles(&stats.ack_time),
            "ack_latency_from_send": percentiles(&stats.ack_time_from_send),
        },
        "receive": {
            "received": stats.received,
            "foreign": stats.received_foreign,
            "expected": delivery.expected,
            "unique": delivery.unique,
            "lost": delivery.lost,
            "duplicates": delivery.duplicates,
            "reordered": delivery.reordered,
            "e2e": percentiles(&stats.e2e),
            "e2e_from_send": percentiles(&stats.e2e_from_send),
        },
        "errors": errors,
        "server_disconnects": codes(&stats.server_disconnects),
    })
}

pub fn text(plan: &Plan, stats: &Stats) -> String {
    let report = json(plan, stats);
    let ms = |v: &Value, key: &str| -> String {
        match v.get(key).and_then(Value::as_u64) {
            Some(ns) => format_ns(ns),
            None => "-".into(),
        }
    };
    let line = |v: &Value| -> String {
        if v.is_null() {
            return "-".into();
        }
        ["min", "mean", "50th", "90th", "99th", "max"]
            .iter()
            .map(|k| ms(v, k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let c = &report["connections"];
    let p = &report["publish"];
    let r = &report["receive"];
    let mut out = String::new();
    out += &format!(
        "Connections   [clients, attempted, connected, reconnects]   {}, {}, {}, {}\n",
        c["clients"], c["attempted"], c["connected"], c["reconnects"]
    );
    out += &format!(
        "CONNACK codes [code:count]                                {}\n",
        code_list(&c["connack_codes"])
    );
    out += &format!(
        "Connect       [min, mean, 50, 90, 99, max]                {}\n",
        line(&c["connect"])
    );
    if plan.tls {
        out += &format!(
            "TLS           [min, mean, 50, 90, 99, max]                {}\n",
            line(&c["tls"])
        );
    }
    out += &format!(
        "Pings         [sent, answered]                           {}, {}\n",
        report["pings"]["sent"], report["pings"]["answered"]
    );
    out += &format!(
        "Ping RTT      [min, mean, 50, 90, 99, max]                {}\n",
        line(&report["pings"]["rtt"])
    );
    if plan.role == Role::Pub {
        out += &format!(
            "Published     [rate, due, sent, acked, delayed]           {}/s, {}, {}, {}, {}\n",
            p["offered_rate"], p["due"], p["sent"], p["acked"], p["delayed_by_window"]
        );
        out += &format!(
            "Lag           [min, mean, 50, 90, 99, max]                {}\n",
            line(&p["lag"])
        );
        if plan.qos > 0 {
            out += &format!(
                "Ack latency   [min, mean, 50, 90, 99, max]                {}\n",
                line(&p["ack_latency"])
            );
        }
    }
    if plan.role == Role::Sub || plan.subscribers > 0 {
        out += &format!(
            "Received      [received, expected, lost, dup, reordered]  {}, {}, {}, {}, {}\n",
            r["received"], r["expected"], r["lost"], r["duplicates"], r["reordered"]
        );
        out += &format!(
            "End to end    [min, mean, 50, 90, 99, max]                {}\n",
            line(&r["e2e"])
        );
        out += &format!(
            "  from send   [min, mean, 50, 90, 99, max]                {}\n",
            line(&r["e2e_from_send"])
        );
    }
    out += "Error Set:\n";
    for (class, error) in report["errors"].as_object().into_iter().flatten() {
        out += &format!(
            "{class} ({}): {}\n",
            error["count"],
            error["example"].as_str().unwrap_or_default()
        );
    }
    if plan.role == Role::Pub || plan.role == Role::Sub {
        out += "Latencies run from the intended send (coordinated omission corrected); \"from send\" from the actual one.\n";
    }
    out
}

fn code_list(codes: &Value) -> String {
    codes
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(code, n)| format!("{code}:{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn format_ns(ns: u64) -> String {
    let d = std::time::Duration::from_nanos(ns);
    format!("{d:?}")
}
