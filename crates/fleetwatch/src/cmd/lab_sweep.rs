//! `fleetwatch lab sweep`: every pattern at every cluster size in a lab of its own, as a CSV and
//! a plot.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use fleetwatch_control_plane::{ControlPlane, LabOptions, binaries};
use fleetwatch_load_lab::sweep::{self, Progress, SweepSpec};
use fleetwatch_load_lab::sweep_file::{self, SweepWriter};
use fleetwatch_load_lab::{LoadReport, Pattern, plot};

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Directory for the sweep's own lab (started here, stopped and removed at the end).
    #[arg(long, default_value_os_t = binaries::cache_dir().join("sweep-lab"))]
    dir: PathBuf,
    #[command(flatten)]
    release: super::lab::ReleaseArg,
    /// Where to write sweep.csv (one row per run), sweep.svg and sweep.png.
    #[arg(long, default_value = "sweep")]
    out: PathBuf,
    /// Cluster sizes in nodes, comma-separated; the lab grows from the smallest to the largest.
    #[arg(long, value_delimiter = ',', default_values_t = [50, 100, 200, 500, 1000])]
    sizes: Vec<usize>,
    /// Synthetic Running pods per node.
    #[arg(long, default_value_t = 30)]
    pods_per_node: usize,
    /// Patterns run at each size, comma-separated, in this order (idle is the baseline that
    /// `lab calibrate` subtracts; keep it).
    #[arg(long, value_delimiter = ',', default_values_t = Pattern::ALL)]
    pattern: Vec<Pattern>,
    #[command(flatten)]
    settings: super::lab_load::SettingsArgs,
    #[command(flatten)]
    inflight: super::lab::InflightArgs,
    /// Create requests in flight at once while growing the lab.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
}

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// A CSV written by `lab sweep`.
    #[arg(long)]
    sweep: PathBuf,
    /// Where to write sweep.svg and sweep.png (default: beside the CSV).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn plot(args: &PlotArgs) -> anyhow::Result<()> {
    let reports = sweep_file::read(&args.sweep)?;
    let out = args
        .out
        .clone()
        .or_else(|| args.sweep.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    draw(&out, &reports)
}

/// Writes `out`/sweep.svg and `out`/sweep.png.
fn draw(out: &Path, reports: &[LoadReport]) -> anyhow::Result<()> {
    let (svg, png) = (out.join("sweep.svg"), out.join("sweep.png"));
    plot::write_plots(reports, &svg, &png)?;
    tracing::info!(svg = %svg.display(), png = %png.display(), "plot written");
    Ok(())
}

pub async fn run(args: SweepArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let spec = SweepSpec {
        sizes: args.sizes.clone(),
        pods_per_node: args.pods_per_node,
        patterns: args.pattern.clone(),
        settings: args.settings.settings(),
        populate_concurrency: args.concurrency.into(),
    };
    let csv = SweepWriter::create(&args.out.join("sweep.csv"))?;
    let mut options = LabOptions::new(&args.dir);
    options.release = args.release.release;
    options.max_requests_inflight = args.inflight.limits();
    let plane = ControlPlane::start(options)
        .await
        .context("starting the sweep's control plane")?;
    let started = Instant::now();
    // The lab's processes are this command's children: stop them however the sweep ends.
    let swept = tokio::select! {
        swept = measure(&plane, &spec, &csv) => swept,
        signal = interrupted() => Err(anyhow::anyhow!(
            "{signal}: sweep stopped; the runs measured so far are in {}",
            csv.path().display()
        )),
    };
    let stopped = plane.stop().await;
    let reports = swept?;
    stopped.context("stopping the sweep's control plane")?;
    tracing::info!(
        runs = reports.len(),
        elapsed_s = started.elapsed().as_secs(),
        "sweep done"
    );
    tracing::info!(csv = %csv.path().display(), "rows written");
    draw(&args.out, &reports)?;
    print!("{}", super::lab_load::table(&reports));
    Ok(())
}

/// Waits for SIGINT or SIGTERM and names it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "interrupted",
        _ = terminate.recv() => "terminated",
    }
}

/// Runs the sweep with a progress bar over the runs, appending each run to `csv`.
async fn measure(
    plane: &ControlPlane,
    spec: &SweepSpec,
    csv: &SweepWriter,
) -> anyhow::Result<Vec<LoadReport>> {
    let bar = super::lab::progress_bar(0, "")?;
    let on_progress = |progress: Progress<'_>| match progress {
        Progress::Growing { nodes, done, total } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("growing the lab to {nodes} nodes"));
        }
        Progress::Running {
            pattern,
            nodes,
            run,
            runs,
        } => {
            bar.set_length(runs as u64);
            bar.set_position(run as u64 - 1);
            bar.set_message(format!("run {run}/{runs}: {pattern} at {nodes} nodes"));
        }
        Progress::Measured(report) => bar.suspend(|| {
            tracing::info!(
                pattern = report.pattern,
                nodes = report.nodes,
                cpu_s = format!("{:.2}", report.apiserver_cpu_seconds),
                p99_ms = report.probe_p99_ms.map(|v| format!("{v:.1}")),
                "measured"
            );
            if let Err(e) = csv.append(report) {
                tracing::error!("{e}");
            }
        }),
    };
    let reports = sweep::sweep(plane, spec, &on_progress).await;
    bar.finish_and_clear();
    Ok(reports?)
}
