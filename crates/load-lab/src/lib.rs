//! The load lab: what each telemetry design costs a real API server.
//!
//! [`run`] drives a lab control plane (from `fleetwatch-control-plane`) with one emulated agent
//! per node of a [`Pattern`] — tokio tasks in this process, each with its own connection and
//! identity — for a bounded time, while [`measure`] samples what the API server and etcd pay (CPU
//! from `/proc`, cross-checked with `process_cpu_seconds_total`; peak RSS; bytes written; 429s)
//! and a probe client times single-object GETs, which is what everyone else sees. A run reports
//! its start-up (until every agent has synced) apart from its steady state. [`sweep`] runs every
//! pattern at growing cluster sizes in one lab, [`sweep_file`] is its CSV, [`plot`] draws it.
//!
//! Owns: the emulated client patterns, the measurement of a run, the sweep and its CSV format.
//!
//! Must not: target anything but a loopback control plane it was handed ([`ensure_loopback`] is
//! checked before every run), run unbounded (every run stops by itself: [`MAX_DURATION`],
//! [`MAX_AGENTS`]), or report a part that failed as zeros. The `naive-*` patterns reproduce the
//! incident and deliberately bypass the budgeted client: that code lives here and nowhere else;
//! everything else goes through `fleetwatch-client`, each emulated agent with the budget of the
//! separate process it stands for. The `fleetwatch` pattern is not emulated: it runs the real
//! collector (`fleetwatch_collector::run`) in this process.

mod agents;
mod error;
pub mod measure;
pub mod plot;
pub mod sweep;
pub mod sweep_file;

use std::time::Duration;

use serde::Serialize;

use fleetwatch_control_plane::ControlPlane;

pub use agents::Pattern;
pub use error::{LabError, Result};
pub use measure::LoadReport;

/// No run's steady state lasts longer than this; its start-up is bounded by the run's duration
/// too, so a run ends within twice this.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Bounds of a naive agent's LIST interval: more often than this is a flood the lab cannot
/// measure, less often than the maximum never lists within a run.
pub const LIST_INTERVAL: (Duration, Duration) = (Duration::from_millis(100), MAX_DURATION);
/// Bounds of the probe's GET interval.
pub const PROBE_INTERVAL: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(60));
/// No run creates and deletes more pods per second than this.
pub const MAX_CHURN_PER_SECOND: f64 = 200.0;
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

impl LoadSettings {
    /// Checks every setting against its bounds: the error names the field and what is expected.
    pub fn validate(&self) -> Result<()> {
        let bounded = |field, value, (min, max)| {
            check_duration(value, min, max).map_err(|reason| LabError::invalid(field, reason))
        };
        bounded(
            "duration",
            self.duration,
            (Duration::from_secs(1), MAX_DURATION),
        )?;
        bounded("list_interval", self.list_interval, LIST_INTERVAL)?;
        bounded("probe_interval", self.probe_interval, PROBE_INTERVAL)?;
        check_churn(self.churn_per_second)
            .map_err(|reason| LabError::invalid("churn_per_second", reason))?;
        Ok(())
    }
}

/// `value` if it is within `[min, max]`, else what is expected.
pub fn check_duration(value: Duration, min: Duration, max: Duration) -> Result<Duration, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value:?} is out of range; expected {min:?} to {max:?}"
        ))
    }
}

/// `per_second` if it is a number of pods per second the lab can churn, else what is expected.
pub fn check_churn(per_second: f64) -> Result<f64, String> {
    if (0.0..=MAX_CHURN_PER_SECOND).contains(&per_second) {
        Ok(per_second)
    } else {
        Err(format!(
            "{per_second} is not a churn rate; expected pods per second from 0 to \
             {MAX_CHURN_PER_SECOND}"
        ))
    }
}

/// The load lab drives only a control plane on loopback: a [`ControlPlane`] is one this process
/// started or `lab up` recorded, and its API server must listen on a loopback address.
pub fn ensure_loopback(url: &str) -> Result<()> {
    let host = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once(':').map(|(host, _)| host))
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'));
    match host.and_then(|h| h.parse::<std::net::IpAddr>().ok()) {
        Some(ip) if ip.is_loopback() => Ok(()),
        _ => Err(LabError::NotLoopback {
            url: url.to_owned(),
        }),
    }
}

/// The synthetic nodes and pods in the lab (one metadata-only list of each, by the admin).
#[allow(clippy::disallowed_methods)] // one count before a run, not polling
pub async fn cluster_size(plane: &ControlPlane) -> Result<(usize, usize)> {
    use fleetwatch_control_plane::populate::SYNTHETIC_LABEL;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, ListParams};
    let admin = plane.admin_client().await?;
    let synthetic = ListParams::default().labels(&format!("{SYNTHETIC_LABEL}=true"));
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
    run_once(plane, spec).await.map_err(|seen| {
        // A connection refused says less than what refused it: a process that is gone.
        match plane.processes().into_iter().find(|p| !p.is_running()) {
            Some(dead) => LabError::ProcessDied {
                process: dead.name,
                pid: dead.pid,
                pattern: spec.pattern.to_string(),
                nodes: spec.nodes,
                seen: Box::new(seen),
            },
            None => seen,
        }
    })
}

async fn run_once(plane: &ControlPlane, spec: &LoadSpec) -> Result<LoadReport> {
    ensure_loopback(&plane.apiserver_url())?;
    spec.settings.validate()?;
    if spec.agents > MAX_AGENTS {
        return Err(LabError::invalid(
            "agents",
            format!("{}; expected at most {MAX_AGENTS}", spec.agents),
        ));
    }
    let (duration, agents) = (spec.settings.duration, spec.agents);
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
    let churned = churn.stop().await;
    let samples = sampler.stop().await;
    let after = measure::Snapshot::take(plane).await;
    // Any failed part fails the run: a report of zeros would read as a measurement.
    let ((startup, outcome), (), samples, after) = (driven?, churned?, samples?, after?);
    let run = measure::Run {
        kubernetes_version: plane.kubernetes_version(),
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
    Ok((startup, running.stop().await?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_driven() {
        for url in [
            "https://127.0.0.1:6443",
            "https://127.0.0.2:1",
            "https://[::1]:6443/",
        ] {
            assert!(ensure_loopback(url).is_ok(), "{url}");
        }
        for url in [
            "https://10.0.0.1:6443",
            "https://kubernetes.default.svc:443",
            "https://localhost.example.com:6443",
            "http://127.0.0.1:6443",
            "https://[2001:db8::1]:6443",
            "",
        ] {
            assert!(
                matches!(ensure_loopback(url), Err(LabError::NotLoopback { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn settings_out_of_range_name_the_field() {
        let good = LoadSettings {
            duration: Duration::from_secs(30),
            list_interval: Duration::from_secs(10),
            churn_per_second: 5.0,
            probe_interval: Duration::from_millis(100),
        };
        assert!(good.validate().is_ok());
        type Tweak = fn(&mut LoadSettings);
        let cases: [(&str, Tweak); 9] = [
            ("list_interval", |s| s.list_interval = Duration::ZERO),
            ("duration", |s| s.duration = Duration::MAX),
            ("duration", |s| s.duration = Duration::ZERO),
            ("probe_interval", |s| s.probe_interval = Duration::ZERO),
            ("churn_per_second", |s| s.churn_per_second = f64::NAN),
            ("churn_per_second", |s| s.churn_per_second = f64::INFINITY),
            ("churn_per_second", |s| s.churn_per_second = 1e10),
            ("churn_per_second", |s| s.churn_per_second = -1.0),
            ("churn_per_second", |s| s.churn_per_second = -0.0 - 1e-9),
        ];
        for (expected, tweak) in cases {
            let mut settings = good.clone();
            tweak(&mut settings);
            match settings.validate() {
                Err(LabError::Invalid { field, reason }) => {
                    assert_eq!(field, expected, "{reason}");
                    assert!(reason.contains("expected"), "{reason}");
                }
                other => panic!("{settings:?}: {other:?}"),
            }
        }
    }
}
