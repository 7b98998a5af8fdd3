//! A run: the fleet, the rollout engine driving it, the responders, and what is recorded.
//!
//! Fixed time steps (1 s by default). Every cluster advances one step at a time; the rollout
//! engine ticks every [`ENGINE_TICK_SECONDS`], series are sampled every [`SAMPLE_SECONDS`].
//! No clock, no I/O: the caller drives [`Simulation::advance`] and reads the result.

use fleetwatch_rollout::{
    Action, Engine, Event, HaltReason, Phase, Plan, Policy, Reading, Resources, Target,
};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::{
    apiserver::{Counters, Flow},
    calibration::Calibration,
    cluster::{Cluster, Env},
    error::Result,
    fleet::{ApiServerSpec, Change, Fleet, LARGE_CLUSTER_NODES, SizeClass},
    rng,
    scenario::{Guard, Protections},
};

/// The rollout engine decides this often, seconds.
pub const ENGINE_TICK_SECONDS: f64 = 10.0;
/// Series are sampled this often, seconds.
pub const SAMPLE_SECONDS: f64 = 60.0;
/// Customer impact starts when this fraction of the fleet's nodes have failing services.
pub const IMPACT_FRACTION: f64 = 0.001;

/// The people on call when there is no guard: they notice customer impact and roll back by hand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Responders {
    /// Fraction of the fleet's nodes failing before they notice.
    pub notice_fraction: f64,
    /// Seconds from noticing to ordering the rollback everywhere.
    pub response_seconds: f64,
    /// A locked-out cluster (removal impossible, control plane down) is recovered by hand
    /// (scale down, block, restart API servers) after a uniform time in this range, seconds.
    pub manual_recovery_seconds: (f64, f64),
}

impl Default for Responders {
    fn default() -> Self {
        Self {
            notice_fraction: 0.01,
            response_seconds: 900.0,
            manual_recovery_seconds: (3600.0, 4.0 * 3600.0),
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub guard: Guard,
    pub fleet: Fleet,
    pub change: Change,
    pub policy: Policy,
    pub protections: Protections,
    pub responders: Responders,
    pub calibration: Calibration,
    pub seed: u64,
    pub horizon_seconds: f64,
    pub step_seconds: f64,
}

/// A line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    pub minute: f64,
    pub text: String,
}

/// Time series sampled every [`SAMPLE_SECONDS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    pub minutes: Vec<f64>,
    /// Mean over the clusters of each size class (small, medium, large).
    pub get_p99_seconds: [Vec<f64>; 3],
    pub cpu_utilization: [Vec<f64>; 3],
    pub clusters_down: Vec<u32>,
    pub failing_node_fraction: Vec<f64>,
    pub exposed_node_fraction: Vec<f64>,
    /// The wave being applied or baked, if any.
    pub wave: Vec<Option<usize>>,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub guard: Guard,
    pub clusters: usize,
    pub large_clusters: usize,
    pub clusters_control_plane_down_peak: u32,
    pub large_clusters_control_plane_down_peak: u32,
    pub minutes_until_alert: Option<f64>,
    pub minutes_until_customer_impact: Option<f64>,
    /// Minutes until the first control plane went down.
    pub minutes_until_first_control_plane_down: Option<f64>,
    /// Median, over large clusters that went down, of minutes from receiving the change to down.
    pub large_minutes_from_change_to_down_median: Option<f64>,
    pub rollout_halted: bool,
    pub halted_at_wave: Option<usize>,
    pub halt_reason: Option<String>,
    pub fleet_nodes_exposed_fraction: f64,
    pub outage_cluster_minutes: f64,
    pub peak_failing_node_fraction: f64,
    pub staging_control_plane_ever_down: bool,
    pub api_server_restarts: u32,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    pub summary: RunSummary,
    pub timeline: Vec<TimelineEvent>,
    pub series: Series,
    pub plan: Plan,
}

/// A run in progress.
#[derive(Debug)]
pub struct Simulation {
    spec: RunSpec,
    clusters: Vec<Cluster>,
    engine: Engine,
    rng: ChaCha8Rng,
    step: usize,
    steps: usize,
    total_nodes: f64,
    timeline: Vec<TimelineEvent>,
    series: Series,
    // Tracking.
    current_wave: Option<usize>,
    received_at: Vec<Option<f64>>,
    first_down_at: Vec<Option<f64>>,
    peak_down: u32,
    /// Minutes at which the peaks were first reached.
    peak_down_at: f64,
    peak_failing_at: f64,
    peak_large_down: u32,
    peak_failing: f64,
    peak_exposed: f64,
    first_alert: Option<f64>,
    first_impact: Option<f64>,
    first_down: Option<f64>,
    respond_at: Option<f64>,
    manual_recoveries: Vec<(f64, usize)>,
    any_down_before: bool,
}

impl Simulation {
    /// Plans the rollout and sets up the fleet in its steady state.
    ///
    /// # Errors
    /// [`crate::SimError::Plan`] if the rollout engine refuses the fleet or policy.
    pub fn new(spec: RunSpec) -> Result<Self> {
        let targets: Vec<Target> = spec
            .fleet
            .clusters
            .iter()
            .map(|c| Target {
                name: c.name.clone(),
                nodes: c.nodes,
                staging: c.staging,
                capacity: capacity(&c.api, &spec.calibration),
            })
            .collect();
        let engine = Engine::new(targets, spec.policy.clone())?;
        let env = env(&spec);
        let clusters: Vec<Cluster> = spec
            .fleet
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| Cluster::new(c.clone(), &env, rng::stream(spec.seed, i as u64)))
            .collect();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let steps = (spec.horizon_seconds / spec.step_seconds).ceil() as usize;
        let n = clusters.len();
        Ok(Self {
            rng: rng::stream(spec.seed, u64::MAX - 1),
            total_nodes: spec.fleet.total_nodes(),
            spec,
            clusters,
            engine,
            step: 0,
            steps,
            timeline: Vec::new(),
            series: Series::default(),
            current_wave: None,
            received_at: vec![None; n],
            first_down_at: vec![None; n],
            peak_down: 0,
            peak_down_at: 0.0,
            peak_failing_at: 0.0,
            peak_large_down: 0,
            peak_failing: 0.0,
            peak_exposed: 0.0,
            first_alert: None,
            first_impact: None,
            first_down: None,
            respond_at: None,
            manual_recoveries: Vec::new(),
            any_down_before: false,
        })
    }

    /// Steps done and steps in the run.
    #[must_use]
    pub fn progress(&self) -> (usize, usize) {
        (self.step, self.steps)
    }

    #[must_use]
    pub fn is_done(&self) -> bool {
        self.step >= self.steps
    }

    /// Advances up to `steps` steps (fewer at the end of the run).
    pub fn advance(&mut self, steps: usize) {
        for _ in 0..steps.min(self.steps - self.step) {
            self.step_once();
        }
    }

    /// Request accounting summed over the fleet for one flow: counters and in flight.
    #[must_use]
    pub fn requests(&self, flow: Flow) -> (Counters, f64) {
        self.clusters
            .iter()
            .fold((Counters::default(), 0.0), |(acc, fl), c| {
                let (k, f) = c.requests(flow);
                (
                    Counters {
                        issued: acc.issued + k.issued,
                        served: acc.served + k.served,
                        rejected: acc.rejected + k.rejected,
                        failed: acc.failed + k.failed,
                    },
                    fl + f,
                )
            })
    }

    fn minute(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let seconds = self.step as f64 * self.spec.step_seconds;
        seconds / 60.0
    }

    fn log(&mut self, text: String) {
        let minute = self.minute();
        self.timeline.push(TimelineEvent { minute, text });
    }

    fn describe(&self, c: usize) -> String {
        let spec = &self.clusters[c].spec;
        format!("{} ({} nodes)", spec.name, spec.nodes)
    }

    fn step_once(&mut self) {
        let dt = self.spec.step_seconds;
        #[allow(clippy::cast_precision_loss)]
        let now = self.step as f64 * dt;
        let minute = now / 60.0;

        // Steps per period; a small positive count.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let every = |seconds: f64| (seconds / dt).round().max(1.0) as usize;
        if self.step.is_multiple_of(every(ENGINE_TICK_SECONDS)) && !self.engine.is_finished() {
            self.tick_engine(now);
        }
        self.respond(now);

        let env = env(&self.spec);
        let mut down = 0;
        let mut large_down = 0;
        let mut failing = 0.0;
        let mut exposed = 0.0;
        let mut alerts = Vec::new();
        let mut newly_down = Vec::new();
        let mut class_p99 = [0.0; 3];
        let mut class_cpu = [0.0; 3];
        let mut class_n = [0.0; 3];
        let sample = self.step.is_multiple_of(every(SAMPLE_SECONDS));
        for (i, c) in self.clusters.iter_mut().enumerate() {
            let s = c.step(self.step, &env);
            if s.down {
                down += 1;
                if c.spec.nodes >= LARGE_CLUSTER_NODES {
                    large_down += 1;
                }
                if self.first_down_at[i].is_none() {
                    self.first_down_at[i] = Some(now);
                    newly_down.push(i);
                }
            }
            if s.agents > 0.0 && self.received_at[i].is_none() {
                self.received_at[i] = Some(now);
            }
            if s.alert_fired {
                alerts.push(i);
            }
            failing += s.failing_nodes;
            exposed += s.agents;
            if sample {
                let k = SizeClass::ALL
                    .iter()
                    .position(|&k| k == SizeClass::of(c.spec.nodes))
                    .unwrap_or(0);
                class_p99[k] += s.get_p99_seconds;
                class_cpu[k] += s.cpu_utilization;
                class_n[k] += 1.0;
            }
        }
        self.step += 1;

        if let Some(&i) = alerts.first()
            && self.first_alert.is_none()
        {
            self.first_alert = Some(minute);
            self.log(format!(
                "first control-plane SLO alert: {}",
                self.describe(i)
            ));
        }
        if let Some(&i) = newly_down.first()
            && self.first_down.is_none()
        {
            self.first_down = Some(minute);
            self.log(format!("first control plane down: {}", self.describe(i)));
        }
        if down > 0 {
            self.any_down_before = true;
        } else if self.any_down_before {
            self.any_down_before = false;
            self.log("every control plane is back up".into());
        }
        if down > self.peak_down {
            self.peak_down = down;
            self.peak_down_at = minute;
        }
        self.peak_large_down = self.peak_large_down.max(large_down);
        let failing_fraction = failing / self.total_nodes;
        let exposed_fraction = exposed / self.total_nodes;
        self.peak_exposed = self.peak_exposed.max(exposed_fraction);
        if failing_fraction > self.peak_failing {
            self.peak_failing = failing_fraction;
            self.peak_failing_at = minute;
        }
        if failing_fraction >= IMPACT_FRACTION && self.first_impact.is_none() {
            self.first_impact = Some(minute);
            self.log(format!(
                "customer impact: {:.1}% of the fleet's nodes have failing services (DNS records expired)",
                failing_fraction * 100.0
            ));
        }
        if failing_fraction >= self.spec.responders.notice_fraction && self.respond_at.is_none() {
            self.respond_at = Some(now + self.spec.responders.response_seconds);
            self.log(format!(
                "responders paged: {:.1}% of nodes failing",
                failing_fraction * 100.0
            ));
        }
        if sample {
            let s = &mut self.series;
            s.minutes.push(minute);
            for k in 0..3 {
                let n = class_n[k];
                s.get_p99_seconds[k].push(if n > 0.0 { class_p99[k] / n } else { 0.0 });
                s.cpu_utilization[k].push(if n > 0.0 { class_cpu[k] / n } else { 0.0 });
            }
            s.clusters_down.push(down);
            s.failing_node_fraction.push(failing_fraction);
            s.exposed_node_fraction.push(exposed_fraction);
            s.wave.push(self.current_wave);
        }
    }

    /// The simulator's side of the engine's sans-I/O boundary: every cluster answers (the
    /// simulator sees them all), and every action is carried out and confirmed at once.
    fn tick_engine(&mut self, now: f64) {
        let readings: Vec<Reading> = self
            .clusters
            .iter()
            .map(|c| Reading::Observed(c.observe()))
            .collect();
        let tick = self.engine.tick(now, &readings);
        for e in &tick.events {
            self.record(e);
        }
        for action in &tick.actions {
            match *action {
                Action::Apply(step) => self.clusters[step.cluster.0].apply(step.node_fraction),
                Action::RollBack { cluster } => {
                    self.clusters[cluster.0].roll_back(self.spec.protections.break_glass);
                }
            }
            self.engine.confirm(action, now);
        }
    }

    /// The responders' rollback and manual recoveries (without break-glass, clusters whose control
    /// plane is down are locked out until recovered by hand).
    fn respond(&mut self, now: f64) {
        if let Some(at) = self.respond_at
            && now >= at
        {
            self.respond_at = Some(f64::INFINITY);
            let mut locked = 0;
            for i in 0..self.clusters.len() {
                if self.clusters[i].agents() > 0.0 {
                    self.clusters[i].roll_back(self.spec.protections.break_glass);
                    if self.clusters[i].locked_out() {
                        locked += 1;
                        let (lo, hi) = self.spec.responders.manual_recovery_seconds;
                        self.manual_recoveries
                            .push((now + rng::uniform(&mut self.rng, lo, hi), i));
                    }
                }
            }
            self.log(format!(
                "responders roll the change back everywhere; {locked} cluster(s) locked out (removal needs their API servers)"
            ));
        }
        let due: Vec<usize> = self
            .manual_recoveries
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|&(_, i)| i)
            .collect();
        if !due.is_empty() {
            self.manual_recoveries.retain(|(t, _)| *t > now);
            for &i in &due {
                if self.clusters[i].agents() > 0.0 {
                    self.clusters[i].recover_manually();
                }
            }
            if self.manual_recoveries.is_empty() {
                self.log("last locked-out cluster recovered by hand".into());
            }
        }
    }

    fn record(&mut self, event: &Event) {
        match event {
            Event::WaveStarted { wave, steps, .. } => {
                self.current_wave = Some(*wave);
                let nodes: f64 = steps
                    .iter()
                    .map(|s| {
                        (s.node_fraction * f64::from(self.clusters[s.cluster.0].spec.nodes)).ceil()
                    })
                    .sum();
                let largest = steps
                    .iter()
                    .map(|s| self.clusters[s.cluster.0].spec.nodes)
                    .max()
                    .unwrap_or(0);
                let max_fraction = steps.iter().map(|s| s.node_fraction).fold(0.0, f64::max);
                self.log(format!(
                    "wave {wave} starts: {} cluster(s), up to {:.0}% of their nodes, {nodes:.0} nodes; largest cluster {largest} nodes",
                    steps.len(),
                    max_fraction * 100.0
                ));
            }
            Event::WavePassed { wave, .. } => self.log(format!("wave {wave} passed its bake")),
            Event::Completed { .. } => {
                self.current_wave = None;
                self.log("rollout complete: every cluster has the change".into());
            }
            Event::Halted { wave, reason, .. } => {
                self.current_wave = None;
                let text = self.halt_text(reason);
                self.log(format!("rollout halted in wave {wave}: {text}"));
            }
            Event::Paused { unreachable, .. } => {
                self.log(format!(
                    "rollout paused: {} cluster(s) unreachable",
                    unreachable.len()
                ));
            }
            Event::Unpaused { .. } => self.log("rollout unpaused: every cluster answers".into()),
            Event::Gap { from, at } => self.log(format!(
                "no readings for {:.0} s: not counted as bake",
                at - from
            )),
            Event::RollingBack { clusters, .. } => {
                let via = if self.spec.protections.break_glass {
                    " through the break-glass lane"
                } else {
                    ""
                };
                self.log(format!(
                    "rollback ordered for {} admitted cluster(s){via}",
                    clusters.len()
                ));
            }
        }
    }

    fn halt_text(&self, reason: &HaltReason) -> String {
        match reason {
            HaltReason::Slo { cluster, breach } => {
                format!("{} breached {breach}", self.describe(cluster.0))
            }
            HaltReason::ServiceHealth {
                cluster,
                failing_fraction,
                ..
            } => {
                format!(
                    "{} has {:.1}% of nodes failing",
                    self.describe(cluster.0),
                    failing_fraction * 100.0
                )
            }
            HaltReason::ProjectedOverload(p) => {
                format!("at full size {}: {p}", self.describe(p.cluster.0))
            }
        }
    }

    /// The summary, timeline and series. Call when [`Simulation::is_done`].
    #[must_use]
    pub fn finish(self) -> RunResult {
        let (rollout_halted, halted_at_wave, halt_reason) = match self.engine.phase() {
            Phase::Halted { wave, reason, .. } => (true, Some(*wave), Some(self.halt_text(reason))),
            _ => (false, None, None),
        };
        let mut to_down: Vec<f64> = self
            .clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.spec.nodes >= LARGE_CLUSTER_NODES)
            .filter_map(|(i, _)| Some((self.first_down_at[i]? - self.received_at[i]?) / 60.0))
            .collect();
        to_down.sort_by(f64::total_cmp);
        let summary = RunSummary {
            guard: self.spec.guard,
            clusters: self.clusters.len(),
            large_clusters: self
                .clusters
                .iter()
                .filter(|c| c.spec.nodes >= LARGE_CLUSTER_NODES)
                .count(),
            clusters_control_plane_down_peak: self.peak_down,
            large_clusters_control_plane_down_peak: self.peak_large_down,
            minutes_until_alert: self.first_alert,
            minutes_until_customer_impact: self.first_impact,
            minutes_until_first_control_plane_down: self.first_down,
            large_minutes_from_change_to_down_median: to_down.get(to_down.len() / 2).copied(),
            rollout_halted,
            halted_at_wave,
            halt_reason,
            fleet_nodes_exposed_fraction: self.peak_exposed,
            outage_cluster_minutes: self.clusters.iter().map(Cluster::down_seconds).sum::<f64>()
                / 60.0,
            peak_failing_node_fraction: self.peak_failing,
            staging_control_plane_ever_down: self
                .clusters
                .iter()
                .enumerate()
                .any(|(i, c)| c.spec.staging && self.first_down_at[i].is_some()),
            api_server_restarts: self.clusters.iter().map(Cluster::restarts).sum(),
        };
        let mut timeline = self.timeline;
        if summary.clusters_control_plane_down_peak > 0 {
            timeline.push(TimelineEvent {
                minute: self.peak_down_at,
                text: format!(
                    "peak: {} control planes down ({} of {} large clusters)",
                    summary.clusters_control_plane_down_peak,
                    summary.large_clusters_control_plane_down_peak,
                    summary.large_clusters
                ),
            });
        }
        if summary.peak_failing_node_fraction >= IMPACT_FRACTION {
            timeline.push(TimelineEvent {
                minute: self.peak_failing_at,
                text: format!(
                    "peak customer impact: {:.1}% of the fleet's nodes have failing services",
                    summary.peak_failing_node_fraction * 100.0
                ),
            });
        }
        // Stable: events of the same minute keep their order.
        timeline.sort_by(|a, b| a.minute.total_cmp(&b.minute));
        RunResult {
            summary,
            timeline,
            series: self.series,
            plan: self.engine.plan().clone(),
        }
    }
}

/// What a control plane can give the change, as the rollout engine's capacity hints: its CPU and
/// memory, and the seats of the `workload` level, where the change runs once its quarantine lane
/// is gone.
fn capacity(api: &ApiServerSpec, cal: &Calibration) -> Resources {
    let replicas = f64::from(api.replicas);
    Resources {
        cpu_cores: api.total_cores(),
        memory_bytes: replicas * api.memory_bytes_per_replica,
        seats: replicas * cal.apf.seats_per_replica * cal.apf.workload_share,
    }
}

fn env(spec: &RunSpec) -> Env<'_> {
    Env {
        cal: &spec.calibration,
        dns: &spec.fleet.dns,
        pattern: spec.change.pattern,
        quarantine: spec.protections.quarantine,
        dt: spec.step_seconds,
    }
}

/// Runs to the end in one go (tests, benchmarks). The CLI uses [`Simulation::advance`] to show
/// progress.
///
/// # Errors
/// As [`Simulation::new`].
pub fn run(spec: RunSpec) -> Result<RunResult> {
    let mut sim = Simulation::new(spec)?;
    while !sim.is_done() {
        sim.advance(3600);
    }
    Ok(sim.finish())
}
