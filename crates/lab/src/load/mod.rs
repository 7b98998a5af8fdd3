//! The load lab: what each telemetry design costs a real API server.
//!
//! [`run`] drives a lab control plane with one emulated agent per node of a [`Pattern`] — tokio
//! tasks in this process, each with its own connection and identity — for a bounded time, while
//! [`measure`] samples what the API server and etcd pay (CPU from `/proc`, cross-checked with
//! `process_cpu_seconds_total`; peak RSS; bytes written; 429s) and a probe client times
//! single-object GETs, which is what everyone else sees.
//!
//! The `naive-*` patterns reproduce the incident and deliberately bypass the budgeted client:
//! that code lives here and nowhere else. Everything else goes through `fleetwatch-client`.
//! Load only ever targets the loopback control plane the lab started.

mod agents;
pub mod measure;
pub mod plot;

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::plane::ControlPlane;

pub use agents::Pattern;
pub use measure::LoadReport;

/// No run lasts longer than this, whatever is asked.
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
    /// How long the load runs (capped at [`MAX_DURATION`]).
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

/// Runs `spec` against `plane` and reports what the API server paid.
pub async fn run(plane: &ControlPlane, spec: &LoadSpec) -> Result<LoadReport> {
    let duration = spec.duration.min(MAX_DURATION);
    let agents = spec.agents.min(MAX_AGENTS);
    let identities = agents::Identities::prepare(plane).await?;
    let before = measure::Snapshot::take(plane).await?;
    let sampler = measure::Sampler::start(plane, spec.probe_interval, &identities).await?;
    let churn = agents::churn(plane, spec.nodes, spec.churn_per_second, duration).await?;
    let outcome = agents::drive(&identities, spec.pattern, agents, spec, duration).await;
    churn.stop().await;
    let samples = sampler.stop().await;
    let after = measure::Snapshot::take(plane).await?;
    let outcome = outcome?;
    Ok(LoadReport::new(
        spec, agents, duration, &before, &after, &samples, &outcome,
    ))
}
