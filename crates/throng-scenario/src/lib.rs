//! `throng scenario`: the story's whole experiment on one machine in one command. It starts
//! `throng pong` on several ports, `throng proxy` with TLS in front (or uses an external proxy),
//! `throng monitor` watching both, runs attack phases one after another through the proxy, then
//! stops everything and writes a folder: the phases' results, the monitor's samples, the proxy's
//! logs, report.txt and report.html, and a summary.
//!
//! - [`config`]: the scenario file (and the embedded default).
//! - [`run`]: the processes and the phases.

pub mod config;
pub mod run;
