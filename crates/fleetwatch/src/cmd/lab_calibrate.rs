//! `fleetwatch lab calibrate`: fit the simulator's cost model to a sweep's measurements.
//!
//! A shell around [`fleetwatch_calibrate`]: reads the base calibration and the date, has the
//! crate read the sweep's CSV and fit it, prints the per-coefficient report and writes the
//! calibration file.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fleetwatch_calibrate::Sweep;
use fleetwatch_control_plane::KUBERNETES_VERSION;
use fleetwatch_sim::calibration::{Calibration, PLAUSIBLE_TOML};

const AFTER_HELP: &str = "Run with --help for what is fitted and how.";

const AFTER_LONG_HELP: &str = "\
What is fitted. Every cost is taken net of the idle run at the same cluster size, which
measures the background every run carries (probe GETs, pod churn, API-server housekeeping);
counters of runs of different lengths are compared as rates.

  api_server.cpu_seconds_per_list
  api_server.cpu_seconds_per_object_listed_from_cache
  api_server.cpu_seconds_per_object_listed_from_etcd
  api_server.cpu_seconds_per_watch_event
      Non-negative least squares over every non-idle run but naive-list-node (its LISTs
      read and filter every pod to return the node's own: the model charges by objects
      returned), each weighted by 1 / its CPU:
        cpu = per_list × pod_lists
            + from_cache × (pods_listed − pods_listed_from_etcd)
            + from_etcd × pods_listed_from_etcd
            + per_watch_event × watch_events_sent
  api_server.memory_bytes_per_object_listed
      The naive-list runs' net peak RSS against LISTs in flight (pod_list_seconds / seconds,
      Little's law) times objects per LIST, through the origin: an upper bound, a peak against
      a mean. Only naive-list: a sweep runs it right after idle, and later runs at the same size
      inherit its peak (Go keeps a freed heap resident for minutes).
  api_server.memory_bytes_per_cached_object
      Slope of the idle runs' peak RSS against pods + nodes (needs two or more sizes).
  apf.max_seats_per_request, apf.objects_per_list_seat
      APF seats per LIST of the naive-list runs (other requests in the agents' priority level
      take one seat each): the cap, when LISTs reach it; objects per seat, from LISTs below it.
  api_server.fraction_of_unversioned_lists_from_etcd
      Pods listed from etcd over pods listed, naive-list runs (their LISTs carry no
      resourceVersion): 1 where such a LIST is a quorum read from etcd, 0 where the watch
      cache serves it. A measured 0 is a value.

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
    /// comments are kept. Default: plausible values for every key, none measured
    /// (`crates/sim/src/calibration-plausible.toml`).
    #[arg(long, value_name = "FILE.toml")]
    base: Option<PathBuf>,
    /// Where to write the fitted calibration. Default: standard output.
    #[arg(long, value_name = "FILE.toml")]
    out: Option<PathBuf>,
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    let sweep = Sweep::read(&args.sweep)?;
    let base = match &args.base {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            // Checked here so that errors name the file; `fit` checks again.
            Calibration::parse(&path.display().to_string(), &text)?;
            text
        }
        None => PLAUSIBLE_TOML.to_owned(),
    };
    // Sweeps written before the CSV named its release ran the then only one, the default.
    let version = sweep.kubernetes_version().unwrap_or(KUBERNETES_VERSION);
    let source = fleetwatch_calibrate::source(&sweep, version, unix_seconds());
    let fitted = fleetwatch_calibrate::fit(&sweep, &base, &source)
        .with_context(|| format!("fitting {}", args.sweep.display()))?;
    let report = fitted.report();
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

/// Seconds since the Unix epoch for the calibration's date: `SOURCE_DATE_EPOCH` if set (for
/// reproducible files), else the clock.
fn unix_seconds() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        })
}
