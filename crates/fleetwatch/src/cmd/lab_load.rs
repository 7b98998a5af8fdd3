//! `fleetwatch lab load`: run emulated agents of one or more patterns against a running lab and
//! print what the API server paid, side by side.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use fleetwatch_control_plane::ControlPlane;
use fleetwatch_load_lab::{self as load, LoadReport, LoadSettings, LoadSpec, Pattern};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Lab directory of a control plane started with `fleetwatch lab up --nodes N`.
    #[arg(long, env = "FLEETWATCH_LAB_DIR", default_value_os_t = super::lab::default_dir())]
    dir: PathBuf,
    /// Patterns to run one after another, comma-separated: idle (no agents: the baseline every
    /// other row includes), naive-list, naive-list-node, watch-all, watch-node, fleetwatch.
    #[arg(long, value_delimiter = ',', default_values_t = Pattern::ALL)]
    pattern: Vec<Pattern>,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Output: a text table or JSON (one object per pattern).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also write raw samples (probe latencies per pattern, CSV) and the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// How each run goes; shared by `lab load` and `lab sweep`.
#[derive(Debug, clap::Args)]
pub struct SettingsArgs {
    /// How long each run's steady state lasts (1s to 600s), after the agents' start-up, which
    /// may take as long again; the load stops by itself.
    #[arg(long, default_value = "30s", value_parser = run_duration)]
    max_duration: Duration,
    /// How often each naive-* agent LISTs pods (100ms to 600s).
    #[arg(long, default_value = "10s", value_parser = list_interval)]
    list_interval: Duration,
    /// Pods created and deleted per second during each run (0 for none, at most 200). Without
    /// churn a watch costs nothing after its first list, which hides what watchers cost per
    /// event.
    #[arg(long, default_value_t = 5.0, value_parser = churn)]
    churn: f64,
    /// How often the probe GETs one node (10ms to 60s).
    #[arg(long, default_value = "100ms", value_parser = probe_interval)]
    probe_interval: Duration,
}

impl SettingsArgs {
    pub fn settings(&self) -> LoadSettings {
        LoadSettings {
            duration: self.max_duration,
            list_interval: self.list_interval,
            churn_per_second: self.churn,
            probe_interval: self.probe_interval,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `500ms`, `30s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || format!("`{text}` is not a duration; expected e.g. 500ms, 30s or 2m");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let value: u64 = number.parse().map_err(|_| expected())?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => value
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long a duration")),
        _ => Err(expected()),
    }
}

fn bounded(text: &str, (min, max): (Duration, Duration)) -> Result<Duration, String> {
    load::check_duration(parse_duration(text)?, min, max)
}

fn run_duration(text: &str) -> Result<Duration, String> {
    bounded(text, (Duration::from_secs(1), load::MAX_DURATION))
}

fn list_interval(text: &str) -> Result<Duration, String> {
    bounded(text, load::LIST_INTERVAL)
}

fn probe_interval(text: &str) -> Result<Duration, String> {
    bounded(text, load::PROBE_INTERVAL)
}

fn churn(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of pods per second"))?;
    load::check_churn(value)
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let plane = ControlPlane::attach(&args.dir).context("attaching to the lab")?;
    let (nodes, pods) = load::cluster_size(&plane).await?;
    anyhow::ensure!(
        nodes > 0,
        "the lab has no synthetic nodes; start it with `fleetwatch lab up --nodes N`"
    );
    let mut reports = Vec::new();
    for pattern in &args.pattern {
        load::quiesce(&plane).await?;
        let spec = LoadSpec {
            pattern: *pattern,
            agents: nodes,
            nodes,
            pods,
            settings: args.settings.settings(),
        };
        tracing::info!(%pattern, nodes, pods, seconds = spec.settings.duration.as_secs(), "running load");
        reports.push(
            load::run(&plane, &spec)
                .await
                .with_context(|| format!("running {pattern}"))?,
        );
    }
    if let Some(out) = &args.out {
        write_samples(out, &reports)?;
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Text => print!("{}", table(&reports)),
    }
    Ok(())
}

pub fn table(reports: &[LoadReport]) -> String {
    let mut text = format!(
        "{:<16} {:>6} {:>7} {:>9} {:>9} {:>11} {:>12} {:>8} {:>8} {:>9} {:>6} {:>8} {:>8}\n",
        "pattern",
        "nodes",
        "pods",
        "cpu_s",
        "startup_s",
        "startup_cpu",
        "steady_cores",
        "rss_MiB",
        "etcd_s",
        "MiB_out",
        "429s",
        "p50_ms",
        "p99_ms"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for r in reports {
        // A start-up that never finished is marked: its agents were still listing at the end.
        let unsynced = if r.startup_synced { "" } else { "*" };
        text += &format!(
            "{:<16} {:>6} {:>7} {:>9.2} {:>9} {:>11.2} {:>12.3} {:>8.0} {:>8.2} {:>9.1} {:>6} {:>8} {:>8}\n",
            r.pattern,
            r.nodes,
            r.pods,
            r.apiserver_cpu_seconds,
            format!("{:.1}{unsynced}", r.startup_seconds),
            r.startup_apiserver_cpu_seconds,
            r.steady_cores(),
            r.apiserver_peak_rss_bytes as f64 / 1048576.0,
            r.etcd_cpu_seconds,
            r.apiserver_bytes_written as f64 / 1048576.0,
            r.throttled_429,
            ms(r.probe_p50_ms),
            ms(r.probe_p99_ms),
        );
    }
    if reports.iter().any(|r| !r.startup_synced) {
        text +=
            "* some agents had not synced when the start-up limit (the run's duration) passed\n";
    }
    text
}

fn write_samples(out: &std::path::Path, reports: &[LoadReport]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for r in reports {
        let path = out.join(format!("probe-{}.csv", r.pattern));
        let csv: String = std::iter::once("latency_ms\n".to_owned())
            .chain(r.probe_ms.iter().map(|v| format!("{v:.3}\n")))
            .collect();
        std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let path = out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(reports)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
