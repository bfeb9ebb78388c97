//! Any number of MQTT results streams read into one report: their seconds merged exactly, their
//! totals added, and, when they are parts of one run, checked to belong together, with each
//! part's own figures beside the merged ones.

use super::plan::Plan;
use super::report;
use super::stats::Stats;
use crate::parts::{self, Input, Parts};
use crate::stream::{Frame, Meta, Reader};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;

#[derive(Debug, Default)]
pub struct Summary {
    plan: Option<Plan>,
    /// Every input's seconds and totals.
    stats: Stats,
    per_part: BTreeMap<u32, Stats>,
    inputs: Vec<Input>,
    truncated_inputs: usize,
}

impl Summary {
    /// Reads a whole MQTT stream called `name`; its meta frame came first (`meta`). A cut tail
    /// is counted, not an error.
    pub fn add_stream<R: Read>(
        &mut self,
        name: &str,
        meta: Meta,
        mut reader: Reader<R>,
    ) -> Result<(), String> {
        let plan = meta
            .mqtt
            .clone()
            .ok_or_else(|| format!("{name}: HTTP results; report them apart from MQTT runs"))?;
        if self.plan.is_none() {
            self.plan = Some(plan);
        }
        let mut own = Stats::default();
        let mut complete = false;
        let mut last_second = 0;
        while let Some(frame) = reader.next_frame().map_err(|e| format!("{name}: {e}"))? {
            match frame {
                Frame::MqttSecond(second) => {
                    last_second = last_second.max(second.unix_second);
                    own.merge(&second.stats);
                }
                Frame::MqttTotals(totals) => totals.add_to(&mut own),
                Frame::Meta(_) => return Err(format!("{name}: a second meta frame")),
                Frame::Record(_) | Frame::Interval(_) => {
                    return Err(format!("{name}: HTTP records in an MQTT run"))
                }
                // Written after every totals frame: the run ended in order.
                Frame::End(_) => complete = true,
                Frame::Progress(_) => {}
            }
        }
        if reader.truncated() {
            self.truncated_inputs += 1;
        }
        self.stats.merge(&own);
        if meta.part_of > 0 {
            self.per_part
                .entry(meta.part_index)
                .or_default()
                .merge(&own);
        }
        let last_ns = last_second
            .saturating_add(1)
            .saturating_mul(1_000_000_000)
            .saturating_sub(meta.start_unix_ns);
        self.inputs.push(Input {
            name: name.to_string(),
            meta,
            complete,
            last_ns,
        });
        Ok(())
    }

    /// [`Summary::add_stream`] for a stream whose meta frame is still to read.
    pub fn add_reader<R: Read>(&mut self, name: &str, mut reader: Reader<R>) -> Result<(), String> {
        match reader.next_frame().map_err(|e| format!("{name}: {e}"))? {
            Some(Frame::Meta(meta)) => self.add_stream(name, *meta, reader),
            _ => Err(format!("{name}: no run in it")),
        }
    }

    pub fn check_parts(&self) -> Result<Parts, String> {
        parts::check(&self.inputs)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn plan(&self) -> Plan {
        self.plan.clone().unwrap_or_default()
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.truncated_inputs > 0 {
            warnings.push(format!(
                "{} input(s) ended in the middle of a frame (a killed run, or one still \
                 writing): read up to the last whole second.",
                self.truncated_inputs
            ));
        }
        if let Ok(parts) = self.check_parts() {
            warnings.extend(parts.warnings);
        }
        let incomplete = self.inputs.iter().filter(|i| !i.complete).count();
        if incomplete > 0 && self.plan().role == super::Role::Pub {
            warnings.push(format!(
                "{incomplete} input(s) have no totals (the run did not end in order): loss is \
                 counted only for the publishers whose totals were read."
            ));
        }
        warnings
    }

    pub fn text(&self) -> String {
        let mut out = report::text(&self.plan(), &self.stats);
        if self.per_part.len() > 1 {
            out += "Parts         [part, host, connected, errors, published, received, e2e p99]\n";
            for (index, stats) in &self.per_part {
                let host = self
                    .inputs
                    .iter()
                    .find(|i| i.meta.part_of > 0 && i.meta.part_index == *index)
                    .map_or("?", |i| i.meta.host.as_str());
                let errors: u64 = stats.errors.values().map(|(n, _)| n).sum();
                let p99 = if stats.e2e.is_empty() {
                    "-".to_string()
                } else {
                    format!(
                        "{:?}",
                        std::time::Duration::from_nanos(stats.e2e.value_at_quantile(0.99))
                    )
                };
                out += &format!(
                    "  {index} {host}: {}, {errors}, {}, {}, {p99}\n",
                    stats.connected, stats.published, stats.received
                );
            }
        }
        for warning in self.warnings() {
            out += &format!("Warning: {warning}\n");
        }
        out
    }

    pub fn json(&self) -> Value {
        let mut value = report::json(&self.plan(), &self.stats);
        let parts: Vec<Value> = self
            .per_part
            .iter()
            .map(|(index, stats)| {
                json!({
                    "part": index,
                    "connected": stats.connected,
                    "published": stats.published,
                    "received": stats.received,
                    "errors": stats.errors.values().map(|(n, _)| n).sum::<u64>(),
                    "e2e_p99": (!stats.e2e.is_empty()).then(|| stats.e2e.value_at_quantile(0.99)),
                })
            })
            .collect();
        if let Some(object) = value.as_object_mut() {
            object.insert("parts".into(), Value::from(parts));
            object.insert("warnings".into(), Value::from(self.warnings()));
        }
        value
    }
}
