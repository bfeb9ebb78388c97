//! One run over many processes or machines: the flags that tell a process its part (`--part`,
//! or its launcher's environment) and the shared start (`--start-at`), as `throng attack` and
//! `throng mqtt` take them.

use clap::Args;

#[derive(Debug, Args)]
pub struct PartArgs {
    /// This process's share of a run split over machines: part I of N (0-based). Without it,
    /// from the launcher: Slurm's SLURM_PROCID/SLURM_NTASKS, or with --parts N Kubernetes'
    /// JOB_COMPLETION_INDEX or Nomad's NOMAD_ALLOC_INDEX (pdsh: `-R exec ... --part %n/N`)
    #[arg(long, value_name = "I/N", value_parser = parse_part)]
    pub part: Option<(usize, usize)>,

    /// How many parts the run has, when the launcher gives only the index (Kubernetes, Nomad)
    #[arg(long, value_name = "N", conflicts_with = "part")]
    pub parts: Option<usize>,

    /// When the schedule starts, the same for every part: RFC 3339 (2026-11-30T15:00:00Z) or
    /// Unix seconds; each part prepares, waits until then, and records how late it really was
    #[arg(long = "start-at", value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<u64>,

    /// The name of the machine in the results (each part's host in `throng report`) [default:
    /// its host name]; give one per network namespace, which share their host's
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,

    /// Set by --procs in each process it starts: the shared schedule's start (Unix ns)
    #[arg(long, value_name = "NS", hide = true, requires = "part")]
    pub start_unix_ns: Option<u64>,
}

impl PartArgs {
    /// The part the launcher's environment gives, when `--part` does not (explicit flags win).
    pub fn resolve(&self) -> Result<Option<(usize, usize)>, String> {
        match self.part {
            Some(part) => Ok(Some(part)),
            None => part_from_launcher(self.parts, |name| std::env::var(name).ok()),
        }
    }

    /// The shared start; without one (a process started by hand), now.
    pub fn shared_start(&self) -> u64 {
        self.start_unix_ns.or(self.start_at).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
    }
}

/// `--start-at`: RFC 3339 or Unix seconds (with a fraction), as Unix nanoseconds.
pub(crate) fn parse_start_at(text: &str) -> Result<u64, String> {
    if let Some(ns) = throng_results::time::parse_rfc3339(text) {
        return Ok(ns);
    }
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds < 1e11 => Ok((seconds * 1e9) as u64),
        _ => Err(format!(
            "`{text}`: expected RFC 3339 (2026-11-30T15:00:00Z) or Unix seconds (a launcher computes it once, say `$(($(date +%s) + 10))`)"
        )),
    }
}

/// This process's part from its launcher's environment, when `--part` is not given: Slurm's
/// rank and task count; Kubernetes' or Nomad's index with `--parts N`. `Ok(None)`: not a part.
pub(crate) fn part_from_launcher(
    parts: Option<usize>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<(usize, usize)>, String> {
    let number = |name: &str| -> Result<Option<usize>, String> {
        env(name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{name}={v}: not a number"))
            })
            .transpose()
    };
    let index = match (number("SLURM_PROCID")?, number("SLURM_NTASKS")?) {
        (Some(index), Some(of)) if parts.is_none() => return checked_part(index, of, "Slurm"),
        _ => number("JOB_COMPLETION_INDEX")?.or(number("NOMAD_ALLOC_INDEX")?),
    };
    match (index, parts) {
        (Some(index), Some(of)) => checked_part(index, of, "--parts"),
        (None, Some(of)) => Err(format!(
            "--parts {of}: this process cannot tell which part it is: give --part I/{of}, or start it from a launcher that says (JOB_COMPLETION_INDEX in a Kubernetes Indexed Job, NOMAD_ALLOC_INDEX, SLURM_PROCID; with pdsh, `-R exec` and --part %n/{of})"
        )),
        (_, None) => Ok(None),
    }
}

fn checked_part(index: usize, of: usize, from: &str) -> Result<Option<(usize, usize)>, String> {
    if of == 0 || index >= of {
        return Err(format!(
            "part {index} of {of} (from {from}): the index must be below the count"
        ));
    }
    Ok(Some((index, of)))
}

pub(crate) fn parse_part(text: &str) -> Result<(usize, usize), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((index, of)) if index < of => Ok((index, of)),
        _ => Err(format!("`{text}`: expected I/N with I < N")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_knows_its_place_from_its_launcher() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let slurm = env(&[("SLURM_PROCID", "3"), ("SLURM_NTASKS", "8")]);
        assert_eq!(part_from_launcher(None, slurm), Ok(Some((3, 8))));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(part_from_launcher(Some(4), k8s), Ok(Some((2, 4))));
        let nomad = env(&[("NOMAD_ALLOC_INDEX", "0")]);
        assert_eq!(part_from_launcher(Some(2), nomad), Ok(Some((0, 2))));
        assert_eq!(part_from_launcher(None, env(&[])), Ok(None), "not a part");
        assert_eq!(
            part_from_launcher(None, env(&[("JOB_COMPLETION_INDEX", "1")])),
            Ok(None),
            "an index without a count is not enough"
        );
        let lost = part_from_launcher(Some(4), env(&[])).unwrap_err();
        assert!(
            lost.contains("--part I/4") && lost.contains("JOB_COMPLETION_INDEX"),
            "{lost}"
        );
        let beyond = part_from_launcher(Some(2), env(&[("JOB_COMPLETION_INDEX", "2")]));
        assert!(beyond.unwrap_err().contains("below the count"));
        assert_eq!(
            parse_start_at("2026-11-30T15:00:00Z"),
            Ok(1_796_050_800_000_000_000)
        );
        assert_eq!(
            parse_start_at("1796050800.5"),
            Ok(1_796_050_800_500_000_000)
        );
        assert!(parse_start_at("soon").is_err());
    }
}
