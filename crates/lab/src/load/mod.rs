//! The load lab: what each telemetry design costs a real API server.
//!
//! [`run`] drives a lab control plane with one emulated agent per node of a [`Pattern`] — tokio
//! tasks in this process, each with its own connection and identity — for a bounded time, while
//! [`measure`] samples what the API server and etcd pay (CPU from `/proc`, cross-checked with
//! `process_cpu_seconds_total`; peak RSS; bytes written; 429s) and a probe client times
//! single-object GETs, which is what everyone else sees. A run reports its start-up (until every
//! agent has synced) apart from its steady state. [`sweep`] runs every pattern at growing cluster
//! sizes in one lab; [`plot`] draws the result.
//!
//! The `naive-*` patterns reproduce the incident and deliberately bypass the budgeted client:
//! that code lives here and nowhere else. Everything else goes through `fleetwatch-client`.
//! Load only ever targets the loopback control plane the lab started.

mod agents;
pub mod measure;
pub mod plot;
pub mod sweep;

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::plane::ControlPlane;

pub use agents::Pattern;
pub use measure::LoadReport;

/// No run's steady state lasts longer than this, whatever is asked; its start-up is bounded by
/// the run's duration too, so a run ends within twice this.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// No run emulates more agents than this.
pub const MAX_AGENTS: usize = 5_000;

/// One load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSpec {
    pub pattern: Pattern,
    /// Emulated per-node agents (one per synthetic node); the `fleetwatch` pattern runs one
    /// collector whatever this is.
    pub agents: usize,
    /// Nodes and pods in the cluster (for per-node figures and the agents' node names).
    pub nodes: usize,
    pub pods: usize,
    #[serde(flatten)]
    pub settings: LoadSettings,
}

/// How every run of a `lab load` or `lab sweep` goes, whatever its pattern and size.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSettings {
    /// How long the steady state runs (capped at [`MAX_DURATION`]); start-up may take as long
    /// again.
    pub duration: Duration,
    /// How often each `naive-*` agent lists (the incident's agents listed on a timer).
    pub list_interval: Duration,
    /// Pods created and deleted per second while the load runs (makes watch costs visible).
    pub churn_per_second: f64,
    /// How often the probe GETs one node.
    pub probe_interval: Duration,
}

/// The synthetic nodes and pods in the lab (one metadata-only list of each, by the admin).
pub async fn cluster_size(plane: &ControlPlane) -> Result<(usize, usize)> {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, ListParams};
    let admin = plane.admin_client().await?;
    let synthetic =
        ListParams::default().labels(&format!("{}=true", crate::populate::SYNTHETIC_LABEL));
    let nodes = Api::<Node>::all(admin.clone())
        .list_metadata(&synthetic)
        .await?
        .items
        .len();
    let pods = Api::<Pod>::all(admin)
        .list_metadata(&synthetic)
        .await?
        .items
        .len();
    Ok((nodes, pods))
}

/// Runs `spec` against `plane` and reports what the API server paid: from the agents' start
/// until all have synced (at most the run's duration; only watchers have anything to sync), then
/// for the run's duration in steady state.
pub async fn run(plane: &ControlPlane, spec: &LoadSpec) -> Result<LoadReport> {
    let duration = spec.settings.duration.min(MAX_DURATION);
    let agents = spec.agents.min(MAX_AGENTS);
    let identities = agents::Identities::prepare(plane).await?;
    // Every figure of the run covers the window from `before` to `after`.
    let before = measure::Snapshot::take(plane).await?;
    // Churn first: it ends by itself (after twice the duration) if what follows fails.
    let churn = agents::churn(
        plane,
        spec.nodes,
        spec.settings.churn_per_second,
        2 * duration,
    );
    let churn = churn.await?;
    let sampler = measure::Sampler::start(plane, spec.settings.probe_interval, &identities).await?;
    let driven = drive(plane, &identities, spec, agents, duration).await;
    churn.stop().await;
    let samples = sampler.stop().await;
    let after = measure::Snapshot::take(plane).await;
    let ((startup, outcome), after) = (driven?, after?);
    let run = measure::Run {
        agents,
        before: &before,
        startup: &startup,
        after: &after,
        samples: &samples,
        outcome: &outcome,
    };
    Ok(LoadReport::new(spec, &run))
}

/// Starts the agents, waits for them to sync, lets them run for `duration` and stops them.
async fn drive(
    plane: &ControlPlane,
    identities: &agents::Identities,
    spec: &LoadSpec,
    agents: usize,
    duration: Duration,
) -> Result<(measure::Startup, agents::Outcome)> {
    let mut running = agents::start(identities, spec.pattern, agents, spec).await?;
    let synced = running.synced(duration).await;
    let startup = measure::Startup {
        synced,
        snapshot: measure::Snapshot::take(plane).await?,
    };
    tokio::time::sleep(duration).await;
    Ok((startup, running.stop().await))
}

/// Waits until the API server is quiet again after a run (requests the last run left in flight
/// finish, Go's GC catches up), so one run's tail is not billed to the next: until its CPU over
/// a second is below [`QUIET_CORES`], for at most [`QUIET_WAIT`].
pub async fn quiesce(plane: &ControlPlane) -> Result<()> {
    let pid = measure::pid_of(plane, "kube-apiserver")?;
    let deadline = tokio::time::Instant::now() + QUIET_WAIT;
    let mut last = measure::cpu_seconds(pid)?;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = measure::cpu_seconds(pid)?;
        if now - last < QUIET_CORES {
            return Ok(());
        }
        last = now;
    }
    tracing::warn!(
        "the API server was still busy {}s after the run; the next run starts anyway",
        QUIET_WAIT.as_secs()
    );
    Ok(())
}

/// CPU cores below which the API server counts as quiet.
const QUIET_CORES: f64 = 0.2;
/// The longest [`quiesce`] waits.
const QUIET_WAIT: Duration = Duration::from_secs(30);
