//! `throng report` and `throng encode`: reading results files, any number of them, merged.

use clap::Args;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use throng_results::encode::{self, Format};
use throng_results::mqtt::summary::Summary as MqttSummary;
use throng_results::report::{Buckets, Summary};
use throng_results::Frame;

/// Report on results: vegeta's layout and more, over any number of files merged exactly. Files
/// are throng's results, or JSON lines (throng's or vegeta's `encode --to json`).
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files [default: stdin]
    files: Vec<PathBuf>,

    /// More results files, comma-separated (vegeta's spelling: -inputs="a.bin,b.bin")
    #[arg(long, value_delimiter = ',', value_name = "FILES")]
    inputs: Vec<PathBuf>,

    /// text, json, or hist[0,10ms,50ms,...] (latency buckets)
    #[arg(long = "type", default_value = "text")]
    kind: String,

    /// Write the report here [default: stdout]
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// vegeta's histogram buckets, "[0,10ms,50ms]": the same as --type 'hist[0,10ms,50ms]'
    #[arg(long, value_name = "BUCKETS")]
    buckets: Option<String>,

    /// vegeta's periodic report (not built: the attack's live line shows progress)
    #[arg(long, hide = true)]
    every: Option<String>,

    /// A condition the run must meet, k6's threshold: p99<50ms, success>=99.9%,
    /// errors.timeout==0, rate>=990 (repeatable); each is said met or broken with its figure,
    /// and a broken one makes the exit status 1
    #[arg(long, value_name = "CONDITION")]
    threshold: Vec<String>,
}

/// Convert results to JSON lines or CSV (vegeta's field names), or JSON lines back to results.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Input files: results, or JSON lines with --to throng [default: stdin]
    files: Vec<PathBuf>,

    /// json, csv, or throng (the binary results format, from JSON lines)
    #[arg(long, default_value = "json")]
    to: String,

    /// Write here [default: stdout]
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn report(args: ReportArgs) -> ExitCode {
    match run_report(args) {
        Ok(Judged::Met) => ExitCode::SUCCESS,
        Ok(Judged::Broken) => ExitCode::from(1),
        Err(message) => {
            eprintln!("throng report: {message}");
            ExitCode::from(2)
        }
    }
}

/// How a report's thresholds came out (all met when there are none).
enum Judged {
    Met,
    Broken,
}

pub fn encode(args: EncodeArgs) -> ExitCode {
    finish("encode", run_encode(args))
}

fn finish(command: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("throng {command}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_report(mut args: ReportArgs) -> Result<Judged, String> {
    args.files.append(&mut args.inputs);
    let thresholds = throng_results::threshold::parse_all(&args.threshold)
        .map_err(|e| format!("--threshold {e}"))?;
    if args.every.is_some() {
        return Err(
            "-every: periodic reports are not built; the attack's live line (stderr) shows the run as it goes, and a report can be run on the results file while it is written".into(),
        );
    }
    if let Some(buckets) = args.buckets.take() {
        args.kind = format!("hist{buckets}");
    }
    let buckets = if args.kind.starts_with("hist") {
        Some(Buckets::parse(&args.kind)?)
    } else {
        None
    };
    if buckets.is_none() && args.kind != "text" && args.kind != "json" {
        return Err(format!("--type {}: use text, json or hist[...]", args.kind));
    }
    let mut summary = Summary::new(buckets);
    let mut mqtt = MqttSummary::default();
    let (mut http_inputs, mut mqtt_inputs) = (Vec::new(), Vec::new());
    for (name, input) in inputs(&args.files)? {
        let mut reader = encode::read_any(input).map_err(|e| format!("{name}: {e}"))?;
        let meta = match reader.next_frame().map_err(|e| format!("{name}: {e}"))? {
            Some(Frame::Meta(meta)) => Some(*meta),
            _ => None,
        };
        if meta.as_ref().is_some_and(|m| m.mqtt.is_some()) {
            mqtt.add_stream(&name, meta.unwrap_or_default(), reader)?;
            mqtt_inputs.push(name);
        } else {
            summary
                .add_rest_of_stream(&name, meta, reader)
                .map_err(|e| format!("{name}: {e}"))?;
            http_inputs.push(name);
        }
    }
    if !mqtt_inputs.is_empty() {
        if let Some(http) = http_inputs.first() {
            return Err(format!(
                "{http} holds HTTP results and {} an MQTT run: report them apart",
                mqtt_inputs[0]
            ));
        }
        mqtt.check_parts()?;
        if !thresholds.is_empty() {
            return Err("--threshold: MQTT runs have no thresholds yet (HTTP runs do)".into());
        }
        let text = match args.kind.as_str() {
            "text" => mqtt.text(),
            "json" => mqtt.json().to_string() + "\n",
            _ => return Err("--type hist: MQTT runs report text or json".into()),
        };
        return write_out(args.output.as_ref(), text.as_bytes()).map(|()| Judged::Met);
    }
    // Parts of different runs are never merged silently.
    summary.check_parts()?;
    let mut text = match args.kind.as_str() {
        "text" => summary.text(),
        "json" => summary.json().to_string() + "\n",
        _ => summary.histogram().unwrap_or_default(),
    };
    let verdicts = summary.judge(&thresholds);
    if !verdicts.is_empty() {
        let said = throng_results::threshold::describe(&verdicts);
        // In the text report, after it; beside JSON or a histogram, on stderr, so that what is
        // written stays what a program reads.
        match args.kind.as_str() {
            "text" => text = format!("{text}\n{said}"),
            _ => eprint!("{said}"),
        }
    }
    write_out(args.output.as_ref(), text.as_bytes())?;
    Ok(match verdicts.iter().all(|v| v.met) {
        true => Judged::Met,
        false => Judged::Broken,
    })
}

fn run_encode(args: EncodeArgs) -> Result<(), String> {
    let format = Format::parse(&args.to)?;
    let mut out: Vec<u8> = Vec::new();
    if format == Format::Throng {
        for (name, input) in inputs(&args.files)? {
            encode::to_stream(input, &mut out).map_err(|e| format!("{name}: {e}"))?;
        }
        if args.output.is_none() && std::io::stdout().is_terminal() {
            return Err("results are binary: pipe them or use --output FILE".into());
        }
    } else {
        let mut readers = Vec::new();
        for (name, input) in inputs(&args.files)? {
            readers.push(encode::read_any(input).map_err(|e| format!("{name}: {e}"))?);
        }
        let truncated = encode::records_to(readers, format, &mut out).map_err(|e| e.to_string())?;
        if truncated > 0 {
            eprintln!("throng encode: {truncated} input(s) ended in the middle of a record: encoded up to the last whole one");
        }
    }
    write_out(args.output.as_ref(), &out)
}

/// An input and the name errors call it by.
type NamedInput = (String, Box<dyn Read>);

/// The named files, or stdin when there are none.
fn inputs(files: &[PathBuf]) -> Result<Vec<NamedInput>, String> {
    if files.is_empty() {
        return Ok(vec![(
            "stdin".into(),
            Box::new(BufReader::new(std::io::stdin())),
        )]);
    }
    files
        .iter()
        .map(|path| {
            if path.as_os_str() == "-" {
                return Ok((
                    "stdin".to_string(),
                    Box::new(BufReader::new(std::io::stdin())) as Box<dyn Read>,
                ));
            }
            let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((
                path.display().to_string(),
                Box::new(BufReader::new(file)) as Box<dyn Read>,
            ))
        })
        .collect()
}

fn write_out(path: Option<&PathBuf>, bytes: &[u8]) -> Result<(), String> {
    match path {
        Some(path) => std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display())),
        None => match std::io::stdout().write_all(bytes) {
            // A reader that stopped early (`| head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            result => result.map_err(|e| format!("stdout: {e}")),
        },
    }
}
