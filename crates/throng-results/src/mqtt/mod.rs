//! MQTT runs in the results stream (`throng mqtt --output`): what a run was asked to do, what it
//! measured second by second, and how a report merges any number of runs, parts or processes.
//!
//! - [`plan`]: the run's shape (role, QoS, topics, rates), carried in the stream's meta frame.
//! - [`stats`]: the figures one thread, process or second gathers, merged exactly.
//! - [`frames`]: a second of figures and a run's totals as stream frames.
//! - [`report`]: the figures as text and JSON, with loss counted against what was really sent.
//! - [`summary`]: reading MQTT streams into one report (parts checked as for HTTP).

pub mod frames;
pub mod plan;
pub mod report;
pub mod stats;
pub mod summary;

pub use frames::{Second, Totals};
pub use plan::{Plan, Role};
pub use stats::Stats;
