//! `throng scenario`: the story's whole experiment on one machine in one command. It starts
//! `throng pong` on several ports, `throng proxy` (or HAProxy) with TLS in front, or uses an
//! external proxy, `throng monitor` watching them, runs attack phases through the proxy (one
//! after another, or at set times alongside), then stops everything and writes a folder: the
//! phases' results, the monitor's samples, the proxy's logs, report.txt and report.html, and a
//! summary.
//!
//! - [`config`]: the scenario file (and the embedded default).
//! - [`run`]: a run from start to end.
//! - [`start`]: the processes started (pong, throng proxy or HAProxy, the monitor).
//! - [`phases`]: the attack phases, in turn or at set times alongside.
//! - [`summary`]: report.txt, report.html and the summary's figures.

pub mod config;
pub mod phases;
pub mod run;
pub mod start;
pub mod summary;
