//! `fleetwatch replay`: the 2024-12-11 incident in the fleet simulator, unguarded and guarded.

use fleetwatch_sim::{Guard, replay, scenario::DEC_2024_PRODUCTION_CLUSTERS};

use super::sim::{KubeVersion, Output};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  fleetwatch replay\n  fleetwatch replay --kube-version 1.37\n  \
                        fleetwatch replay --guard off --report dec-2024.html\n  \
                        fleetwatch replay --format json --seed 7"
)]
pub struct Args {
    /// Scenario to replay. `dec-2024`: a staging cluster and 250 production clusters (20 to
    /// 5,000 nodes); a per-node telemetry agent that LISTs every pod from etcd every 30 s; DNS
    /// records usable 20 minutes after the control plane stops answering.
    #[arg(long, value_enum, default_value_t = Scenario::Dec2024)]
    scenario: Scenario,
    /// `off`: the incident's rollout (staging, then all production in two batches eight minutes
    /// apart, watching service health only; rollback needs a working control plane). `on`:
    /// fleetwatch's guarded rollout (largest clusters first at 1% of their nodes, bake ≥ DNS
    /// lifetime + 5 min, control-plane SLO gates, load projection, the change in a bounded APF
    /// lane, break-glass rollback). `both`: side by side.
    #[arg(long, value_enum, default_value_t = GuardChoice::Both)]
    guard: GuardChoice,
    /// Seed of the random generator (cluster sizes and order, restart jitter, manual recovery
    /// times). The same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    // Default: 1.30, the API server of the incident's era; 1.37 replays the same rollout on
    // today's.
    #[command(flatten)]
    kube_version: KubeVersion,
    #[command(flatten)]
    output: Output,
}

/// The Kubernetes minor of the incident's fleet (December 2024), whose built-in calibration
/// `replay` uses unless told otherwise.
const INCIDENT_ERA: &str = "1.30";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Scenario {
    /// The 2024-12-11 outage.
    #[value(name = "dec-2024")]
    Dec2024,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GuardChoice {
    Off,
    On,
    Both,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Scenario::Dec2024 = args.scenario;
    let guards: &[Guard] = match args.guard {
        GuardChoice::Off => &[Guard::Off],
        GuardChoice::On => &[Guard::On],
        GuardChoice::Both => &[Guard::Off, Guard::On],
    };
    let calibration = args.output.calibration(&args.kube_version, INCIDENT_ERA)?;
    let specs = guards
        .iter()
        .map(|&g| {
            replay(
                g,
                args.seed,
                DEC_2024_PRODUCTION_CLUSTERS,
                calibration.clone(),
            )
        })
        .collect();
    args.output.run_and_report(
        "fleetwatch replay: 2024-12-11 (a per-node agent whose API cost grows with cluster size)",
        "dec-2024",
        args.seed,
        specs,
    )
}
