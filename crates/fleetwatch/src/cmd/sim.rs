//! `fleetwatch sim`: the fleet simulator on a user's own fleet, change and policy (YAML files;
//! see `examples/`). Also the shared shell of `fleetwatch replay`: run with a progress bar, then
//! print text or JSON and write the HTML report.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fleetwatch_sim::{
    Calibration, Guard, JsonReport, RunResult, RunSpec, Simulation, html_report, input,
    run::Responders, scenario, text_report,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  fleetwatch sim --fleet examples/fleet.yaml \
                        --change examples/change-naive-list.yaml --policy examples/policy-guarded.yaml")]
pub struct Args {
    /// Fleet description (YAML): clusters with their node counts, optional control-plane sizes
    /// and DNS cache lifetimes. See examples/fleet.yaml.
    #[arg(long, value_name = "FILE")]
    fleet: PathBuf,
    /// The change to roll out (YAML): a per-node agent and its API client pattern (naive-list,
    /// watch-all, watch-node, fleetwatch). See examples/change-*.yaml.
    #[arg(long, value_name = "FILE")]
    change: PathBuf,
    /// Rollout policy (YAML): `guard: on` or `off` plus optional overrides. Without it, both
    /// guards run side by side with their defaults. See examples/policy-*.yaml.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Virtual hours to simulate after the rollout starts.
    #[arg(long, default_value_t = 6.0, value_name = "HOURS")]
    hours: f64,
    /// Seed of the random generator (restart jitter, manual recovery times). The same seed and
    /// inputs give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    kube_version: KubeVersion,
    #[command(flatten)]
    output: Output,
}

/// Output options shared with `fleetwatch replay`.
#[derive(Debug, clap::Args)]
pub struct Output {
    /// `text`: timelines and a side-by-side summary for people; `json`: one JSON document on
    /// stdout for programs.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also write a self-contained HTML report (plots over time, summary table; no network
    /// needed to view) to this file.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Cost-model calibration (TOML, format_version = 1) instead of a built-in one, e.g. one
    /// measured by the load lab (`fleetwatch lab calibrate`).
    #[arg(long, value_name = "FILE.toml", conflicts_with = "kube_version")]
    calibration: Option<PathBuf>,
}

/// Which built-in calibration: the Kubernetes minor whose API server it was measured on.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeVersion {
    /// Use the built-in calibration measured on this Kubernetes minor's API server: 1.37
    /// (today's: LISTs served from the watch cache and streamed) or 1.30 (the incident's era:
    /// LISTs without resourceVersion read etcd and are built whole in memory). Default: 1.30
    /// for `replay`, 1.37 for `sim`.
    #[arg(long = "kube-version", value_name = "MINOR")]
    pub kube_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

impl Output {
    /// The calibration to use: the `--calibration` file, else the built-in one for
    /// `--kube-version`, else `default_minor`'s.
    pub fn calibration(
        &self,
        version: &KubeVersion,
        default_minor: &str,
    ) -> anyhow::Result<Calibration> {
        match &self.calibration {
            None => {
                let minor = version.kube_version.as_deref().unwrap_or(default_minor);
                Ok(Calibration::built_in(minor)?)
            }
            Some(path) => Ok(Calibration::parse(
                &path.display().to_string(),
                &read(path)?,
            )?),
        }
    }

    /// Runs the simulations (in parallel, one thread each) with a progress bar on stderr, then
    /// prints and writes the results.
    pub fn run_and_report(
        &self,
        title: &str,
        scenario: &str,
        seed: u64,
        specs: Vec<RunSpec>,
    ) -> anyhow::Result<()> {
        let calibration = specs
            .first()
            .map(|s| s.calibration.clone())
            .unwrap_or_default();
        let provenance = calibration.provenance();
        let sims = specs
            .into_iter()
            .map(Simulation::new)
            .collect::<Result<Vec<_>, _>>()?;
        let total: usize = sims.iter().map(|s| s.progress().1).sum();
        // Hidden automatically when stderr is not a terminal.
        let bar = ProgressBar::new(total as u64).with_message("simulating");
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {percent}% ({eta} left)")
                .expect("static template")
                .progress_chars("=> "),
        );
        let results: Vec<RunResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = sims
                .into_iter()
                .map(|mut sim| {
                    let bar = bar.clone();
                    scope.spawn(move || {
                        const CHUNK: usize = 600;
                        while !sim.is_done() {
                            sim.advance(CHUNK);
                            bar.inc(CHUNK as u64);
                        }
                        sim.finish()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a simulation thread panicked"))
                .collect()
        });
        bar.finish_and_clear();
        match self.format {
            Format::Text => print!("{}\n{provenance}", text_report(title, &results)),
            Format::Json => {
                let report = JsonReport::new(scenario, seed, &calibration, &results);
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
        if let Some(path) = &self.report {
            std::fs::write(path, html_report(title, &results, &provenance))
                .with_context(|| format!("writing the HTML report {}", path.display()))?;
            if self.format == Format::Text {
                println!("\nHTML report written to {}", path.display());
            }
        }
        Ok(())
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.hours.is_finite() && args.hours > 0.0 && args.hours <= 24.0 * 7.0,
        "--hours must be between 0 and 168"
    );
    // `sim` plans rollouts onto today's clusters: the newest built-in calibration.
    let today = fleetwatch_sim::calibration::BUILT_IN[0].0;
    let calibration = args.output.calibration(&args.kube_version, today)?;
    let fleet_name = args.fleet.display().to_string();
    let fleet = input::parse_fleet(&fleet_name, &read(&args.fleet)?)?;
    let change = input::parse_change(&args.change.display().to_string(), &read(&args.change)?)?;
    let policies = match &args.policy {
        Some(path) => {
            let p = input::parse_policy(&path.display().to_string(), &read(path)?, &fleet.dns)?;
            vec![(p.guard, p.policy, p.protections)]
        }
        None => [Guard::Off, Guard::On]
            .into_iter()
            .map(|g| {
                let (policy, protections) = scenario::guard_policy(g, &fleet.dns);
                (g, policy, protections)
            })
            .collect(),
    };
    let specs = policies
        .into_iter()
        .map(|(guard, policy, protections)| RunSpec {
            guard,
            fleet: fleet.clone(),
            change: change.clone(),
            policy,
            protections,
            responders: Responders::default(),
            calibration: calibration.clone(),
            seed: args.seed,
            horizon_seconds: args.hours * 3600.0,
            step_seconds: fleetwatch_sim::DEFAULT_STEP_SECONDS,
        })
        .collect();
    let title = format!(
        "fleetwatch sim: {} on {} ({} clusters)",
        change.name,
        fleet_name,
        fleet.clusters.len()
    );
    args.output
        .run_and_report(&title, &fleet_name, args.seed, specs)
}
