//! `fleetwatch lab calibrate`: fit the simulator's cost model to a sweep's measurements.
//!
//! A shell around [`fleetwatch_sim::fit`]: reads the sweep's CSV (rows of
//! [`LoadReport`]), fits, prints the per-coefficient report and writes the calibration file.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fleetwatch_lab::KUBERNETES_VERSION;
use fleetwatch_lab::load::LoadReport;
use fleetwatch_sim::calibration::{Calibration, DEFAULT_TOML};
use fleetwatch_sim::fit::{self, Fitted, Measurement, Outcome};

const AFTER_HELP: &str = "Run with --help for what is fitted and how.";

const AFTER_LONG_HELP: &str = "\
What is fitted. Every cost is taken net of the idle run at the same cluster size, which
measures the background every run carries (probe GETs, pod churn, API-server housekeeping);
counters of runs of different lengths are compared as rates.

  api_server.cpu_seconds_per_list
  api_server.cpu_seconds_per_object_listed_from_cache
  api_server.cpu_seconds_per_object_listed_from_etcd
  api_server.cpu_seconds_per_watch_event
      Non-negative least squares over every non-idle run, each weighted by 1 / its CPU:
        cpu = per_list × pod_lists
            + from_cache × (pods_listed − pods_listed_from_etcd)
            + from_etcd × pods_listed_from_etcd
            + per_watch_event × watch_events_sent
  api_server.memory_bytes_per_object_listed
      Net peak RSS against LISTs in flight (pod_list_seconds / seconds, Little's law) times
      objects per LIST, through the origin: an upper bound, a peak against a mean.
  api_server.memory_bytes_per_cached_object
      Slope of the idle runs' peak RSS against pods + nodes (needs two or more sizes).
  apf.max_seats_per_request, apf.objects_per_list_seat
      APF seats per LIST of the naive-list runs (other requests in the agents' priority level
      take one seat each): the cap, when LISTs reach it; objects per seat, from LISTs below it.

A coefficient the sweep cannot identify keeps the base value and is reported as not measured,
with the reason: e.g. pods listed from etcd are 0 in every run when the API server serves
every LIST from its watch cache. Every other key keeps the base value. Each fitted key gets a
`# measured: VALUE ±N% rms residual (R runs)` comment; the rest of the base file, comments
included, is kept. `source` records the sweep file, the Kubernetes version, the cluster sizes
and the date (SOURCE_DATE_EPOCH overrides today).

The report goes to standard output with --out, to standard error without.

Example:
  fleetwatch lab calibrate --sweep sweep.csv --out calibration.toml
  fleetwatch replay --calibration calibration.toml";

#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP, after_long_help = AFTER_LONG_HELP)]
pub struct CalibrateArgs {
    /// The CSV `fleetwatch lab sweep` wrote: one row per run (pattern × cluster size), with an
    /// idle row at every size.
    #[arg(long, value_name = "FILE.csv")]
    sweep: PathBuf,
    /// Calibration to start from: what the sweep cannot measure keeps its values, and its
    /// comments are kept. Default: the simulator's built-in calibration.
    #[arg(long, value_name = "FILE.toml")]
    base: Option<PathBuf>,
    /// Where to write the fitted calibration. Default: standard output.
    #[arg(long, value_name = "FILE.toml")]
    out: Option<PathBuf>,
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    let reports = super::lab_sweep::read(&args.sweep)?;
    let base = match &args.base {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            // Checked here so that errors name the file; `fit` checks again.
            Calibration::parse(&path.display().to_string(), &text)?;
            text
        }
        None => DEFAULT_TOML.to_owned(),
    };
    let measurements: Vec<Measurement> = reports.iter().map(measurement).collect();
    let source = source(&args.sweep, &reports, &today());
    let fitted = fit::fit(&measurements, &base, &source)
        .with_context(|| format!("fitting {}", args.sweep.display()))?;
    let report = table(&fitted);
    match &args.out {
        Some(out) => {
            std::fs::write(out, &fitted.toml)
                .with_context(|| format!("writing {}", out.display()))?;
            print!("{report}");
            tracing::info!(out = %out.display(), "calibration written");
        }
        None => {
            eprint!("{report}");
            print!("{}", fitted.toml);
        }
    }
    Ok(())
}

fn measurement(r: &LoadReport) -> Measurement {
    Measurement {
        pattern: r.pattern.clone(),
        nodes: r.nodes,
        pods: r.pods,
        seconds: r.seconds,
        apiserver_cpu_seconds: r.apiserver_cpu_seconds,
        apiserver_peak_rss_bytes: r.apiserver_peak_rss_bytes,
        pod_lists: r.pod_lists,
        pods_listed: r.pods_listed,
        pods_listed_from_etcd: r.pods_listed_from_etcd,
        pod_list_seconds: r.pod_list_seconds,
        watch_events_sent: r.watch_events_sent,
        agent_level_seats: r.agent_level_seats,
        agent_level_requests: r.agent_level_requests,
        throttled_429: r.throttled_429,
    }
}

/// "measured by `fleetwatch lab calibrate` from sweep.csv (kube-apiserver v1.37.2, nodes
/// 50–1000, 30 pods per node) on 2026-01-02".
fn source(path: &Path, reports: &[LoadReport], date: &str) -> String {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let range = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        match (values.first(), values.last()) {
            (Some(lo), Some(hi)) if lo < hi => format!("{lo}–{hi}"),
            (Some(v), _) => format!("{v}"),
            _ => "?".to_owned(),
        }
    };
    let mut nodes: Vec<f64> = reports.iter().map(|r| r.nodes as f64).collect();
    let mut per_node: Vec<f64> = reports
        .iter()
        .filter(|r| r.nodes > 0)
        .map(|r| (r.pods as f64 / r.nodes as f64 * 10.0).round() / 10.0)
        .collect();
    format!(
        "measured by `fleetwatch lab calibrate` from {name} (kube-apiserver {KUBERNETES_VERSION}, \
         nodes {}, {} pods per node) on {date}",
        range(&mut nodes),
        range(&mut per_node)
    )
}

/// Today's UTC date, `YYYY-MM-DD`; `SOURCE_DATE_EPOCH` (seconds) overrides the clock, for
/// reproducible files.
fn today() -> String {
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`):
/// a date crate for one date would be more code to trust than these lines.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The per-coefficient report, one line each.
fn table(fitted: &Fitted) -> String {
    let width = fitted
        .coefficients
        .iter()
        .map(|c| c.key.len())
        .max()
        .unwrap_or(0);
    let mut text = format!(
        "{:<width$}  {:>9}  {:>9}  {:>4}  fit\n",
        "coefficient", "base", "fitted", "runs"
    );
    for c in &fitted.coefficients {
        let (value, fit) = match &c.outcome {
            Outcome::Measured { value, quality } => {
                let mut fit = format!("±{}% rms", fit::percent(quality.relative_rms));
                if let Some(r2) = quality.r_squared {
                    fit += &format!(", R² {r2:.4}");
                }
                if let Some(se) = quality.relative_standard_error {
                    fit += &format!(", std. error ±{}%", fit::percent(se));
                }
                if let Some(note) = quality.note {
                    fit += &format!("; {note}");
                }
                (fit::sci(*value), fit)
            }
            Outcome::NotMeasured { reason } => {
                ("(base)".to_owned(), format!("not measured: {reason}"))
            }
        };
        text += &format!(
            "{:<width$}  {:>9}  {:>9}  {:>4}  {fit}\n",
            c.key,
            fit::sci(c.base),
            value,
            c.runs
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_from_days_matches_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_433), (2025, 12, 11));
    }
}
