//! The writer thread: takes finished records from the attack threads, writes them with the
//! per-second intervals, and flushes after each batch so that the output is readable while the
//! attack runs (`throng attack | throng report`, or a report of a file still being written).

use crate::engine::Live;
use std::io::{BufWriter, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use throng_results::report::Summary;
use throng_results::stream::{latency_histogram, IntervalLog, Progress, HISTOGRAM_MAX_NS};
use throng_results::{End, Meta, Record, Writer};

/// Batches waiting for the writer; when it falls behind, the attack threads wait (bounded memory).
const QUEUE: usize = 256;

pub(crate) enum Batch {
    Records(Vec<Record>),
    End(End),
}

/// What the writer hands back: the run's summary when one was asked for (thresholds to judge).
pub(crate) type Written = std::io::Result<Option<Summary>>;

pub(crate) fn start(
    output: Box<dyn Write + Send>,
    meta: Meta,
    live: Arc<Live>,
    tell_progress: bool,
    summarize: bool,
) -> std::io::Result<(SyncSender<Batch>, JoinHandle<Written>)> {
    let writer = Writer::new(BufWriter::with_capacity(64 * 1024, output), &meta)?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let summary = summarize.then(|| {
        let mut summary = Summary::new(None);
        summary.add_run(&meta);
        summary
    });
    let handle = std::thread::Builder::new()
        .name("attack-writer".into())
        .spawn(move || write_all(writer, rx, meta, live, tell_progress, summary))?;
    Ok((tx, handle))
}

fn write_all<W: Write>(
    mut writer: Writer<W>,
    batches: Receiver<Batch>,
    meta: Meta,
    live: Arc<Live>,
    tell_progress: bool,
    mut summary: Option<Summary>,
) -> Written {
    let start_unix_ns = meta.start_unix_ns;
    writer.flush()?;
    let mut intervals = IntervalLog::default();
    let mut all = latency_histogram();
    loop {
        match batches.recv_timeout(Duration::from_millis(500)) {
            Ok(Batch::Records(records)) => {
                for record in &records {
                    writer.record(record)?;
                    intervals.add(start_unix_ns, record);
                    all.saturating_record(record.latency.clamp(1, HISTOGRAM_MAX_NS));
                    if let Some(summary) = summary.as_mut() {
                        summary.add(&meta, record);
                    }
                }
                live.p99_ns
                    .store(all.value_at_quantile(0.99), Ordering::Relaxed);
            }
            Ok(Batch::End(end)) => {
                for interval in intervals.take_all() {
                    writer.interval(&interval)?;
                }
                writer.end(&end)?;
                if let Some(summary) = summary.as_mut() {
                    summary.add_end(&end);
                }
                writer.flush()?;
                return Ok(summary);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                writer.flush()?;
                return Ok(summary);
            }
        }
        // Seconds that ended over a second ago are complete: records arrive within ~100 ms.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for interval in intervals.take_before(now.saturating_sub(1)) {
            writer.interval(&interval)?;
        }
        if tell_progress {
            writer.progress(&Progress {
                sent: live.sent.load(Ordering::Relaxed),
                in_flight: live.in_flight.load(Ordering::Relaxed),
                open_connections: live.open_connections.load(Ordering::Relaxed),
            })?;
        }
        writer.flush()?;
    }
}
