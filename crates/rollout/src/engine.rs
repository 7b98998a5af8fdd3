//! The rollout state machine. The caller owns the clock: it calls [`Engine::tick`] with the
//! current time, as often as it likes; the engine applies waves, checks gates and projections
//! through the [`Backend`], and reports what it did as [`Event`]s.
//!
//! The caller also owns persistence: it saves the serialized [`Engine`] and, after a crash, reads
//! it back through [`Engine::resume`], which refuses a state whose parts disagree.

use serde::{Deserialize, Serialize};

use crate::{
    cluster::{ClusterId, Observation},
    gate::Breach,
    plan::{Plan, PlanError, Policy, Step, Target, plan},
    projection::{Fits, Projection, ProjectionPolicy, Sample},
};

/// The clusters as the engine acts on them: the simulator's fleet or the real executor's.
pub trait Backend {
    /// Raise the change's node fraction on `step.cluster` to `step.node_fraction`.
    fn apply(&mut self, step: &Step);
    /// Remove the change from `cluster` entirely.
    fn roll_back(&mut self, cluster: ClusterId);
    /// The cluster's current signals.
    fn observe(&self, cluster: ClusterId) -> Observation;
}

/// Why the engine halted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HaltReason {
    /// An admitted cluster breached a control-plane SLO during bake.
    Slo { cluster: ClusterId, breach: Breach },
    /// Too many of an admitted cluster's nodes have failing services.
    ServiceHealth {
        cluster: ClusterId,
        failing_fraction: f64,
        limit: f64,
    },
    /// The change would overload a cluster it has not fully reached yet.
    ProjectedOverload(Projection),
}

impl HaltReason {
    /// The cluster whose signals or projection caused the halt.
    fn cluster(&self) -> ClusterId {
        match self {
            HaltReason::Slo { cluster, .. } | HaltReason::ServiceHealth { cluster, .. } => *cluster,
            HaltReason::ProjectedOverload(p) => p.cluster,
        }
    }
}

/// Where a rollout is. The real executor persists this with the engine to resume after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    NotStarted,
    Baking {
        wave: usize,
        started_at: f64,
    },
    Completed {
        at: f64,
    },
    Halted {
        wave: usize,
        at: f64,
        reason: HaltReason,
    },
}

/// What the engine did during a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    WaveStarted {
        wave: usize,
        at: f64,
        steps: Vec<Step>,
    },
    WavePassed {
        wave: usize,
        at: f64,
    },
    Completed {
        at: f64,
    },
    Halted {
        wave: usize,
        at: f64,
        reason: HaltReason,
    },
    RolledBack {
        at: f64,
        clusters: Vec<ClusterId>,
    },
}

/// A rollout in progress: plan, policy and state. Serializable so an executor can persist it.
///
/// Every `Engine`, new or resumed, holds these invariants, and [`Engine::tick`] keeps them, so
/// the engine never indexes out of bounds:
/// - wave `i` of the plan has index `i`, a finite bake ≥ 0, and steps that raise target clusters
///   to node fractions in (0, 1];
/// - `admitted` and `restarts_at_wave_start` hold one entry per target;
/// - the phase's wave is in the plan, and a halt blames a target that, in the halted wave, had
///   the change (a gate or service-health halt) or had not yet got it everywhere (a projection);
/// - `admitted` is what the plan's waves up to the phase gave each cluster.
///
/// Deserializing checks them (it goes through [`Engine::resume`]), so a saved engine whose parts
/// disagree is refused rather than read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SavedEngine")]
pub struct Engine {
    targets: Vec<Target>,
    plan: Plan,
    policy: Policy,
    phase: Phase,
    /// Node fraction applied so far, per cluster.
    admitted: Vec<f64>,
    /// Each cluster's restart count when the current wave started.
    restarts_at_wave_start: Vec<u32>,
}

/// One target as the engine tracks it.
struct Tracked<'a> {
    id: ClusterId,
    target: &'a Target,
    admitted: f64,
    restarts_at_wave_start: u32,
}

impl Engine {
    /// A rollout of the change to `targets` under `policy`, in the waves [`plan()`] gives them —
    /// planned here so that the plan cannot name clusters the targets do not have.
    ///
    /// # Errors
    /// [`PlanError`] when [`plan()`] refuses the targets or the policy.
    pub fn new(targets: Vec<Target>, policy: Policy) -> Result<Self, PlanError> {
        let plan = plan(&targets, &policy)?;
        let n = targets.len();
        Ok(Self {
            targets,
            plan,
            policy,
            phase: Phase::NotStarted,
            admitted: vec![0.0; n],
            restarts_at_wave_start: vec![0; n],
        })
    }

    /// The engine a [`SavedEngine`] describes, once its targets, plan, phase and per-cluster
    /// state are found to agree.
    ///
    /// # Errors
    /// [`ResumeError`] naming the first disagreement found.
    pub fn resume(saved: SavedEngine) -> Result<Self, ResumeError> {
        saved.check()?;
        let SavedEngine {
            targets,
            plan,
            policy,
            phase,
            admitted,
            restarts_at_wave_start,
        } = saved;
        Ok(Self {
            targets,
            plan,
            policy,
            phase,
            admitted,
            restarts_at_wave_start,
        })
    }

    #[must_use]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    #[must_use]
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether the engine has nothing left to do.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Completed { .. } | Phase::Halted { .. })
    }

    /// Advances the rollout to time `now` (seconds, any epoch, non-decreasing between calls).
    pub fn tick(&mut self, now: f64, backend: &mut impl Backend) -> Vec<Event> {
        let mut events = Vec::new();
        match self.phase.clone() {
            Phase::NotStarted => self.start_wave(0, now, backend, &mut events),
            Phase::Baking { wave, started_at } => {
                // In bounds: resume checks the phase's wave, and start_wave bakes only waves
                // that exist.
                let bake_seconds = self.plan.waves[wave].bake_seconds;
                if let Some(reason) = self.check(now - started_at, backend) {
                    self.halt(wave, now, reason, backend, &mut events);
                } else if now - started_at >= bake_seconds {
                    events.push(Event::WavePassed { wave, at: now });
                    self.start_wave(wave + 1, now, backend, &mut events);
                }
            }
            Phase::Completed { .. } | Phase::Halted { .. } => {}
        }
        events
    }

    fn start_wave(
        &mut self,
        wave: usize,
        now: f64,
        backend: &mut impl Backend,
        events: &mut Vec<Event>,
    ) {
        let Some(w) = self.plan.waves.get(wave) else {
            self.phase = Phase::Completed { at: now };
            events.push(Event::Completed { at: now });
            return;
        };
        for (i, r) in self.restarts_at_wave_start.iter_mut().enumerate() {
            *r = backend.observe(ClusterId(i)).restarts;
        }
        for step in &w.steps {
            backend.apply(step);
        }
        admit(&mut self.admitted, &w.steps);
        events.push(Event::WaveStarted {
            wave,
            at: now,
            steps: w.steps.clone(),
        });
        self.phase = Phase::Baking {
            wave,
            started_at: now,
        };
    }

    /// Every target, zipped with its per-cluster state (one entry each, by the invariants).
    fn tracked(&self) -> impl Iterator<Item = Tracked<'_>> {
        self.targets
            .iter()
            .zip(&self.admitted)
            .zip(&self.restarts_at_wave_start)
            .enumerate()
            .map(
                |(i, ((target, &admitted), &restarts_at_wave_start))| Tracked {
                    id: ClusterId(i),
                    target,
                    admitted,
                    restarts_at_wave_start,
                },
            )
    }

    /// The targets that have the change on some of their nodes.
    fn admitted(&self) -> impl Iterator<Item = Tracked<'_>> {
        self.tracked().filter(|c| c.admitted > 0.0)
    }

    /// Gates and projection; the first reason to halt, if any.
    fn check(&self, since_wave_start: f64, backend: &impl Backend) -> Option<HaltReason> {
        if let Some(reason) = self.check_signals(backend) {
            return Some(reason);
        }
        let projection = self.policy.projection.as_ref()?;
        if since_wave_start < projection.settle_seconds {
            return None;
        }
        self.worst_overload(projection, backend)
            .map(HaltReason::ProjectedOverload)
    }

    /// The first admitted cluster breaching an SLO gate or the service-health limit.
    fn check_signals(&self, backend: &impl Backend) -> Option<HaltReason> {
        for cluster in self.admitted() {
            let obs = backend.observe(cluster.id);
            if let Some(gates) = &self.policy.gates {
                let restarts = obs.restarts.saturating_sub(cluster.restarts_at_wave_start);
                if let Some(breach) = gates.check(&obs, restarts) {
                    return Some(HaltReason::Slo {
                        cluster: cluster.id,
                        breach,
                    });
                }
            }
            if let Some(limit) = self.policy.max_failing_node_fraction
                && obs.failing_node_fraction > limit
            {
                return Some(HaltReason::ServiceHealth {
                    cluster: cluster.id,
                    failing_fraction: obs.failing_node_fraction,
                    limit,
                });
            }
        }
        None
    }

    /// Of the clusters not fully reached, the one the change would overload the most, projected
    /// from what the admitted clusters measure.
    fn worst_overload(
        &self,
        projection: &ProjectionPolicy,
        backend: &impl Backend,
    ) -> Option<Projection> {
        let samples: Vec<Sample> = self
            .admitted()
            .map(|c| {
                let obs = backend.observe(c.id);
                Sample {
                    cluster_nodes: c.target.nodes,
                    admitted_nodes: obs.admitted_nodes,
                    cost_cores: obs.change_cost_cores,
                }
            })
            .collect();
        let fits = Fits::new(&samples)?;
        let mut worst: Option<(f64, Projection)> = None;
        for cluster in self.tracked().filter(|c| c.admitted < 1.0) {
            let (projected_cores, fit) = fits.project(cluster.target.nodes);
            let headroom_cores = cluster.target.capacity_cores * projection.max_utilization
                - backend.observe(cluster.id).other_cores;
            let ratio = projected_cores / headroom_cores.max(f64::MIN_POSITIVE);
            if projected_cores > headroom_cores && worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
                worst = Some((
                    ratio,
                    Projection {
                        cluster: cluster.id,
                        projected_cores,
                        headroom_cores,
                        fit,
                    },
                ));
            }
        }
        worst.map(|(_, p)| p)
    }

    fn halt(
        &mut self,
        wave: usize,
        now: f64,
        reason: HaltReason,
        backend: &mut impl Backend,
        events: &mut Vec<Event>,
    ) {
        events.push(Event::Halted {
            wave,
            at: now,
            reason: reason.clone(),
        });
        let clusters: Vec<ClusterId> = self.admitted().map(|c| c.id).collect();
        for &c in &clusters {
            backend.roll_back(c);
        }
        for fraction in &mut self.admitted {
            *fraction = 0.0;
        }
        events.push(Event::RolledBack { at: now, clusters });
        self.phase = Phase::Halted {
            wave,
            at: now,
            reason,
        };
    }
}

/// Records each step's node fraction as its cluster's. Every step names a target (plans from
/// [`plan()`] do, and resume checks saved ones), so `get_mut` skips nothing; it only keeps a broken
/// invariant from becoming a panic.
fn admit(fractions: &mut [f64], steps: &[Step]) {
    for step in steps {
        if let Some(fraction) = fractions.get_mut(step.cluster.0) {
            *fraction = step.node_fraction;
        }
    }
}

/// A persisted [`Engine`] as read back, not yet checked. Deserialize one and hand it to
/// [`Engine::resume`] to learn, as a [`ResumeError`], what in it disagrees; deserializing an
/// [`Engine`] directly runs the same checks but can only report them as the format's error.
#[derive(Debug, Deserialize)]
// A field this version does not know is state it would silently drop on resume.
#[serde(deny_unknown_fields)]
pub struct SavedEngine {
    targets: Vec<Target>,
    plan: Plan,
    policy: Policy,
    phase: Phase,
    admitted: Vec<f64>,
    restarts_at_wave_start: Vec<u32>,
}

impl TryFrom<SavedEngine> for Engine {
    type Error = ResumeError;

    fn try_from(saved: SavedEngine) -> Result<Self, ResumeError> {
        Engine::resume(saved)
    }
}

/// What disagrees in a [`SavedEngine`] that [`Engine::resume`] refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResumeError {
    #[error("{len} admitted node fractions for {targets} targets")]
    AdmittedCount { len: usize, targets: usize },
    #[error("{len} restart counts for {targets} targets")]
    RestartCount { len: usize, targets: usize },
    #[error("wave {position} of the plan says it is wave {index}")]
    WaveIndex { position: usize, index: usize },
    #[error("wave {wave} bakes for {seconds} s; a bake must be finite and not negative")]
    BakeSeconds { wave: usize, seconds: f64 },
    #[error("wave {wave} has a step for cluster {}, but there are {targets} targets", .cluster.0)]
    UnknownStepCluster {
        wave: usize,
        cluster: ClusterId,
        targets: usize,
    },
    #[error(
        "wave {wave} raises cluster {} to node fraction {node_fraction}, outside (0, 1]",
        .cluster.0
    )]
    StepFraction {
        wave: usize,
        cluster: ClusterId,
        node_fraction: f64,
    },
    #[error("the phase is at wave {wave}, but the plan has {waves} waves")]
    PhaseWave { wave: usize, waves: usize },
    #[error("the halt blames cluster {}, but there are {targets} targets", .cluster.0)]
    UnknownHaltCluster { cluster: ClusterId, targets: usize },
    #[error(
        "the halt in wave {wave} blames the signals of cluster {}, which did not have the change",
        .cluster.0
    )]
    HaltOnUnadmitted { wave: usize, cluster: ClusterId },
    #[error(
        "the halt in wave {wave} projects an overload of cluster {}, which had the change on \
         every node",
        .cluster.0
    )]
    OverloadOfReached { wave: usize, cluster: ClusterId },
    #[error(
        "cluster {} is at node fraction {recorded}, but the plan and the phase give it \
         {expected}",
        .cluster.0
    )]
    Admitted {
        cluster: ClusterId,
        recorded: f64,
        expected: f64,
    },
}

impl SavedEngine {
    /// The [`Engine`] invariants, each check relying on the ones before it.
    fn check(&self) -> Result<(), ResumeError> {
        self.check_counts()?;
        self.check_plan()?;
        self.check_phase()?;
        self.check_admitted()
    }

    fn check_counts(&self) -> Result<(), ResumeError> {
        let targets = self.targets.len();
        if self.admitted.len() != targets {
            return Err(ResumeError::AdmittedCount {
                len: self.admitted.len(),
                targets,
            });
        }
        if self.restarts_at_wave_start.len() != targets {
            return Err(ResumeError::RestartCount {
                len: self.restarts_at_wave_start.len(),
                targets,
            });
        }
        Ok(())
    }

    fn check_plan(&self) -> Result<(), ResumeError> {
        for (position, wave) in self.plan.waves.iter().enumerate() {
            if wave.index != position {
                return Err(ResumeError::WaveIndex {
                    position,
                    index: wave.index,
                });
            }
            if !(wave.bake_seconds.is_finite() && wave.bake_seconds >= 0.0) {
                return Err(ResumeError::BakeSeconds {
                    wave: position,
                    seconds: wave.bake_seconds,
                });
            }
            for step in &wave.steps {
                self.check_step(position, step)?;
            }
        }
        Ok(())
    }

    fn check_step(&self, wave: usize, step: &Step) -> Result<(), ResumeError> {
        if step.cluster.0 >= self.targets.len() {
            return Err(ResumeError::UnknownStepCluster {
                wave,
                cluster: step.cluster,
                targets: self.targets.len(),
            });
        }
        // Zero or less would leave a cluster the plan names unadmitted; above 1 is not a fraction.
        if !(step.node_fraction > 0.0 && step.node_fraction <= 1.0) {
            return Err(ResumeError::StepFraction {
                wave,
                cluster: step.cluster,
                node_fraction: step.node_fraction,
            });
        }
        Ok(())
    }

    fn check_phase(&self) -> Result<(), ResumeError> {
        let (wave, reason) = match &self.phase {
            Phase::NotStarted | Phase::Completed { .. } => return Ok(()),
            Phase::Baking { wave, .. } => (*wave, None),
            Phase::Halted { wave, reason, .. } => (*wave, Some(reason)),
        };
        if wave >= self.plan.waves.len() {
            return Err(ResumeError::PhaseWave {
                wave,
                waves: self.plan.waves.len(),
            });
        }
        reason.map_or(Ok(()), |reason| self.check_halt(wave, reason))
    }

    /// A halt in `wave` blames a cluster the engine was checking then: an admitted one for its
    /// signals, one not fully reached for a projected overload.
    fn check_halt(&self, wave: usize, reason: &HaltReason) -> Result<(), ResumeError> {
        let cluster = reason.cluster();
        let fraction = self
            .fractions_after(wave + 1)
            .get(cluster.0)
            .copied()
            .ok_or(ResumeError::UnknownHaltCluster {
                cluster,
                targets: self.targets.len(),
            })?;
        match reason {
            HaltReason::ProjectedOverload(_) if fraction >= 1.0 => {
                Err(ResumeError::OverloadOfReached { wave, cluster })
            }
            HaltReason::Slo { .. } | HaltReason::ServiceHealth { .. } if fraction <= 0.0 => {
                Err(ResumeError::HaltOnUnadmitted { wave, cluster })
            }
            _ => Ok(()),
        }
    }

    /// `admitted` must be what the engine would have recorded on its way to the phase.
    fn check_admitted(&self) -> Result<(), ResumeError> {
        let applied = match self.phase {
            // A halt rolls every admitted cluster back.
            Phase::NotStarted | Phase::Halted { .. } => 0,
            Phase::Baking { wave, .. } => wave + 1,
            Phase::Completed { .. } => self.plan.waves.len(),
        };
        let expected = self.fractions_after(applied);
        for (i, (&recorded, &expected)) in self.admitted.iter().zip(&expected).enumerate() {
            // Exact: both are copies of the same step's fraction (or the 0 of no step at all).
            if recorded != expected {
                return Err(ResumeError::Admitted {
                    cluster: ClusterId(i),
                    recorded,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// Each target's node fraction once the plan's first `waves` waves are applied.
    fn fractions_after(&self, waves: usize) -> Vec<f64> {
        let mut fractions = vec![0.0; self.targets.len()];
        for wave in self.plan.waves.iter().take(waves) {
            admit(&mut fractions, &wave.steps);
        }
        fractions
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::{
        gate::SloGates,
        plan::{BakePolicy, DeclaredCache, WaveStyle},
        projection::ProjectionPolicy,
    };

    /// A toy backend: the change costs `k(N) = per_node_per_size · N` per admitted node.
    #[derive(Debug, Clone)]
    struct Toy {
        sizes: Vec<u32>,
        fraction: Vec<f64>,
        per_node_per_size: f64,
        applied: Vec<Step>,
        rolled_back: Vec<ClusterId>,
        /// This cluster's GET p99 breaches the SLO while it has the change.
        slow: Option<ClusterId>,
    }

    impl Toy {
        fn new(sizes: Vec<u32>, per_node_per_size: f64, slow: Option<ClusterId>) -> Self {
            Self {
                fraction: vec![0.0; sizes.len()],
                sizes,
                per_node_per_size,
                applied: vec![],
                rolled_back: vec![],
                slow,
            }
        }
    }

    impl Backend for Toy {
        fn apply(&mut self, step: &Step) {
            self.fraction[step.cluster.0] = step.node_fraction;
            self.applied.push(*step);
        }
        fn roll_back(&mut self, cluster: ClusterId) {
            self.fraction[cluster.0] = 0.0;
            self.rolled_back.push(cluster);
        }
        fn observe(&self, c: ClusterId) -> Observation {
            let n = f64::from(self.sizes[c.0]);
            let admitted_nodes = (self.fraction[c.0] * n).ceil();
            let slow = self.slow == Some(c) && admitted_nodes > 0.0;
            Observation {
                change_cost_cores: admitted_nodes * self.per_node_per_size * n,
                admitted_nodes,
                get_p99_seconds: if slow { 2.0 } else { 0.05 },
                ..Observation::default()
            }
        }
    }

    /// Cluster 0 is staging. With this policy the plan has 7 waves: staging; cluster 1 at 1%;
    /// cluster 1 at 4% and clusters 2–5 at 1%; then ×4 each wave up to 1.
    const SIZES: [u32; 6] = [40, 5000, 3000, 800, 200, 100];

    fn setup(per_node_per_size: f64, slow: Option<ClusterId>) -> (Engine, Toy) {
        let targets: Vec<Target> = SIZES
            .iter()
            .enumerate()
            .map(|(i, &nodes)| Target {
                name: format!("c{i}"),
                nodes,
                staging: i == 0,
                capacity_cores: 96.0,
            })
            .collect();
        let policy = Policy {
            waves: WaveStyle::Stratified {
                first_fraction: 0.01,
                first_clusters: 1,
                growth: 4.0,
            },
            bake: BakePolicy {
                caches: vec![DeclaredCache {
                    name: "dns".into(),
                    ttl_seconds: 1200.0,
                }],
                margin_seconds: 300.0,
                min_seconds: 0.0,
            },
            gates: Some(SloGates::default()),
            max_failing_node_fraction: Some(0.01),
            projection: Some(ProjectionPolicy::default()),
        };
        let engine = Engine::new(targets, policy).expect("valid");
        (engine, Toy::new(SIZES.to_vec(), per_node_per_size, slow))
    }

    /// Ticks every 10 s from `from` until the engine finishes or `until`.
    fn drive(engine: &mut Engine, toy: &mut Toy, from: f64, until: f64) -> Vec<Event> {
        let mut events = Vec::new();
        let mut now = from;
        while !engine.is_finished() && now < until {
            events.extend(engine.tick(now, toy));
            now += 10.0;
        }
        events
    }

    fn run(per_node_per_size: f64) -> (Engine, Toy, Vec<Event>) {
        let (mut engine, mut toy) = setup(per_node_per_size, None);
        let events = drive(&mut engine, &mut toy, 0.0, 1e6);
        (engine, toy, events)
    }

    #[test]
    fn size_dependent_change_halts_at_the_first_production_wave_and_rolls_back() {
        // 1e-5 cores per node per node: 5000 nodes → 250 cores, far over 0.7 · 96.
        let (engine, toy, events) = run(1e-5);
        let Phase::Halted {
            wave,
            reason: HaltReason::ProjectedOverload(p),
            ..
        } = engine.phase()
        else {
            panic!("expected a projected overload, got {:?}", engine.phase());
        };
        assert_eq!(*wave, 1);
        assert_eq!(p.cluster, ClusterId(1));
        assert_eq!(toy.fraction, vec![0.0; 6]);
        assert_eq!(toy.rolled_back, vec![ClusterId(0), ClusterId(1)]);
        assert!(events.iter().any(|e| matches!(e, Event::RolledBack { .. })));
    }

    #[test]
    fn cheap_change_completes_everywhere() {
        let (engine, toy, _) = run(1e-9);
        assert!(matches!(engine.phase(), Phase::Completed { .. }));
        assert_eq!(toy.fraction, vec![1.0; 6]);
        assert!(toy.rolled_back.is_empty());
    }

    #[test]
    fn slo_breach_during_bake_halts_and_rolls_back() {
        let (mut engine, mut toy) = setup(1e-9, Some(ClusterId(1)));
        drive(&mut engine, &mut toy, 0.0, 1e6);
        let Phase::Halted {
            wave,
            reason: HaltReason::Slo { cluster, breach },
            ..
        } = engine.phase()
        else {
            panic!("expected an SLO halt, got {:?}", engine.phase());
        };
        assert_eq!((*wave, *cluster), (1, ClusterId(1)));
        assert!(matches!(breach, Breach::GetP99 { .. }));
        assert_eq!(toy.fraction, vec![0.0; 6]);
    }

    #[test]
    fn a_persisted_engine_resumes_where_it_stopped() {
        let (mut engine, mut toy) = setup(1e-9, None);
        drive(&mut engine, &mut toy, 0.0, 4000.0);
        let saved = serde_json::to_string(&engine).expect("serializes");
        let mut restored: Engine = serde_json::from_str(&saved).expect("deserializes");
        assert_eq!(restored, engine);
        let mut toy2 = Toy {
            applied: vec![],
            ..toy.clone()
        };
        toy.applied.clear();
        let a = drive(&mut engine, &mut toy, 4000.0, 1e6);
        let b = drive(&mut restored, &mut toy2, 4000.0, 1e6);
        assert_eq!(a, b);
        assert_eq!(toy.applied, toy2.applied);
        assert!(matches!(restored.phase(), Phase::Completed { .. }));
    }

    /// The rollouts the resume tests save: a cheap change (completes), a size-dependent one
    /// (halts on a projected overload), a cheap one breaching the GET SLO on cluster 1.
    fn scenario(which: usize) -> (f64, Option<ClusterId>) {
        [(1e-9, None), (1e-5, None), (1e-9, Some(ClusterId(1)))][which]
    }

    /// The engine and backend of scenario `which` after ticking until `until`.
    fn saved(which: usize, until: f64) -> (Engine, Toy) {
        let (per_node_per_size, slow) = scenario(which);
        let (mut engine, mut toy) = setup(per_node_per_size, slow);
        drive(&mut engine, &mut toy, 0.0, until);
        (engine, toy)
    }

    fn saved_json(which: usize, until: f64) -> Value {
        serde_json::to_value(saved(which, until).0).expect("serializes")
    }

    fn resume_json(json: Value) -> Result<Engine, ResumeError> {
        Engine::resume(serde_json::from_value(json).expect("shaped like a saved engine"))
    }

    fn set(json: &mut Value, pointer: &str, value: Value) {
        *json.pointer_mut(pointer).expect(pointer) = value;
    }

    fn list<'a>(json: &'a mut Value, pointer: &str) -> &'a mut Vec<Value> {
        json.pointer_mut(pointer)
            .and_then(Value::as_array_mut)
            .expect(pointer)
    }

    type Disagreement = (&'static str, Value, fn(&mut Value), ResumeError);

    /// One saved engine per kind of disagreement, each with the error that must name it.
    fn disagreements() -> Vec<Disagreement> {
        use ResumeError as E;
        let not_started = saved_json(0, 0.0);
        let baking = saved_json(0, 2000.0);
        let completed = saved_json(0, 1e6);
        let overload = saved_json(1, 1e6);
        let slo = saved_json(2, 1e6);
        assert_eq!(not_started["phase"], json!({"phase": "not-started"}));
        assert_eq!(
            baking["phase"],
            json!({"phase": "baking", "wave": 1, "started_at": 1500.0})
        );
        assert_eq!(completed["phase"]["phase"], "completed");
        assert_eq!(overload["phase"]["reason"]["kind"], "projected-overload");
        assert_eq!(slo["phase"]["reason"]["kind"], "slo");
        let c = ClusterId;
        vec![
            (
                "a wave refers to a cluster beyond the targets",
                baking.clone(),
                |j| set(j, "/plan/waves/2/steps/0/cluster", json!(6)),
                E::UnknownStepCluster {
                    wave: 2,
                    cluster: c(6),
                    targets: 6,
                },
            ),
            (
                "a wave's index is not its place in the plan",
                baking.clone(),
                |j| set(j, "/plan/waves/3/index", json!(4)),
                E::WaveIndex {
                    position: 3,
                    index: 4,
                },
            ),
            (
                "a step raises a cluster beyond all its nodes",
                baking.clone(),
                |j| set(j, "/plan/waves/4/steps/0/node_fraction", json!(1.5)),
                E::StepFraction {
                    wave: 4,
                    cluster: c(1),
                    node_fraction: 1.5,
                },
            ),
            (
                "a step raises a cluster to no nodes",
                baking.clone(),
                |j| set(j, "/plan/waves/5/steps/1/node_fraction", json!(0.0)),
                E::StepFraction {
                    wave: 5,
                    cluster: c(2),
                    node_fraction: 0.0,
                },
            ),
            (
                "a wave bakes for negative time",
                baking.clone(),
                |j| set(j, "/plan/waves/0/bake_seconds", json!(-1.0)),
                E::BakeSeconds {
                    wave: 0,
                    seconds: -1.0,
                },
            ),
            (
                "the phase bakes a wave beyond the plan",
                baking.clone(),
                |j| set(j, "/phase/wave", json!(7)),
                E::PhaseWave { wave: 7, waves: 7 },
            ),
            (
                "admitted fractions for unknown clusters",
                baking.clone(),
                |j| list(j, "/admitted").push(json!(0.0)),
                E::AdmittedCount { len: 7, targets: 6 },
            ),
            (
                "a target is missing",
                baking.clone(),
                |j| drop(list(j, "/targets").pop()),
                E::AdmittedCount { len: 6, targets: 5 },
            ),
            (
                "restart counts for unknown clusters",
                baking.clone(),
                |j| list(j, "/restarts_at_wave_start").push(json!(0)),
                E::RestartCount { len: 7, targets: 6 },
            ),
            (
                "a cluster is admitted that no wave up to the phase reached",
                baking.clone(),
                |j| set(j, "/admitted/2", json!(0.01)),
                E::Admitted {
                    cluster: c(2),
                    recorded: 0.01,
                    expected: 0.0,
                },
            ),
            (
                "the phase is behind what was admitted",
                baking,
                |j| set(j, "/phase/wave", json!(0)),
                E::Admitted {
                    cluster: c(1),
                    recorded: 0.01,
                    expected: 0.0,
                },
            ),
            (
                "a rollout not started has admitted a cluster",
                not_started,
                |j| set(j, "/admitted/0", json!(1.0)),
                E::Admitted {
                    cluster: c(0),
                    recorded: 1.0,
                    expected: 0.0,
                },
            ),
            (
                "a completed rollout left a cluster short of its last step",
                completed,
                |j| set(j, "/admitted/3", json!(0.64)),
                E::Admitted {
                    cluster: c(3),
                    recorded: 0.64,
                    expected: 1.0,
                },
            ),
            (
                "the halt blames a cluster beyond the targets",
                overload.clone(),
                |j| set(j, "/phase/reason/cluster", json!(6)),
                E::UnknownHaltCluster {
                    cluster: c(6),
                    targets: 6,
                },
            ),
            (
                "the halt projects an overload of a cluster the change fully reached",
                overload.clone(),
                |j| set(j, "/phase/reason/cluster", json!(0)),
                E::OverloadOfReached {
                    wave: 1,
                    cluster: c(0),
                },
            ),
            (
                "the halted wave is beyond the plan",
                overload.clone(),
                |j| set(j, "/phase/wave", json!(9)),
                E::PhaseWave { wave: 9, waves: 7 },
            ),
            (
                "a halted rollout left a cluster admitted",
                overload,
                |j| set(j, "/admitted/1", json!(0.01)),
                E::Admitted {
                    cluster: c(1),
                    recorded: 0.01,
                    expected: 0.0,
                },
            ),
            (
                "an SLO halt blames a cluster without the change",
                slo,
                |j| set(j, "/phase/reason/cluster", json!(2)),
                E::HaltOnUnadmitted {
                    wave: 1,
                    cluster: c(2),
                },
            ),
        ]
    }

    #[test]
    fn a_saved_engine_whose_parts_disagree_is_refused_with_what_disagrees() {
        for (what, mut json, edit, expected) in disagreements() {
            assert!(resume_json(json.clone()).is_ok(), "{what}: before the edit");
            edit(&mut json);
            assert_eq!(
                resume_json(json.clone()).err(),
                Some(expected.clone()),
                "{what}"
            );
            // Deserializing an engine directly is refused for the same reason.
            let error = serde_json::from_value::<Engine>(json).expect_err(what);
            assert!(
                error.to_string().contains(&expected.to_string()),
                "{what}: {error}"
            );
        }
    }

    #[test]
    fn a_saved_engine_with_state_this_version_does_not_know_is_refused() {
        let mut json = saved_json(0, 2000.0);
        json["next_wave_hint"] = json!(2);
        let error = serde_json::from_value::<SavedEngine>(json).expect_err("unknown field");
        assert!(error.to_string().contains("next_wave_hint"), "{error}");
    }

    /// A change to one number, or to one list's length, somewhere in a saved engine's JSON.
    #[derive(Debug, Clone)]
    enum Edit {
        Set(prop::sample::Index, u64),
        Pop(prop::sample::Index),
        Grow(prop::sample::Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        // Small numbers land on valid and just-invalid indices alike; the rest overflow types.
        let value = prop_oneof![0u64..10, Just(u64::from(u32::MAX) + 1), Just(u64::MAX)];
        let at = any::<prop::sample::Index>();
        prop_oneof![
            (at.clone(), value).prop_map(|(at, v)| Edit::Set(at, v)),
            at.clone().prop_map(Edit::Pop),
            at.prop_map(Edit::Grow),
        ]
    }

    /// JSON pointers to every value in `json` that `pick` picks.
    fn pointers(json: &Value, pick: fn(&Value) -> bool) -> Vec<String> {
        fn walk(value: &Value, at: String, pick: fn(&Value) -> bool, out: &mut Vec<String>) {
            if pick(value) {
                out.push(at.clone());
            }
            match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, format!("{at}/{i}"), pick, out);
                    }
                }
                // The engine's field names hold no `/` or `~` to escape.
                Value::Object(fields) => {
                    for (name, item) in fields {
                        walk(item, format!("{at}/{name}"), pick, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(json, String::new(), pick, &mut out);
        out
    }

    fn apply(json: &mut Value, edit: &Edit) {
        match edit {
            Edit::Set(at, v) => {
                if let Some(number) = pick(json, Value::is_u64, at) {
                    *number = json!(v);
                }
            }
            Edit::Pop(at) => {
                if let Some(Value::Array(items)) = pick(json, Value::is_array, at) {
                    items.pop();
                }
            }
            Edit::Grow(at) => {
                if let Some(Value::Array(items)) = pick(json, Value::is_array, at) {
                    items.push(items.last().cloned().unwrap_or(json!(0)));
                }
            }
        }
    }

    /// The `at`-th value in `json` of the kind `kind` picks, if there are any.
    fn pick<'a>(
        json: &'a mut Value,
        kind: fn(&Value) -> bool,
        at: &prop::sample::Index,
    ) -> Option<&'a mut Value> {
        let found = pointers(json, kind);
        if found.is_empty() {
            return None;
        }
        json.pointer_mut(at.get(&found).as_str())
    }

    proptest! {
        // Most edits land on numbers and lists the engine never indexes by; more cases reach
        // the ones it does.
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn a_saved_engine_resumes_to_the_same_state_and_ticks_the_same(
            which in 0usize..3,
            until in 0.0f64..12_000.0,
        ) {
            let (mut engine, mut toy) = saved(which, until);
            let json = serde_json::to_string(&engine).expect("serializes");
            let mut resumed = Engine::resume(serde_json::from_str(&json).expect("deserializes"))
                .expect("a saved engine resumes");
            prop_assert_eq!(&resumed, &engine);
            prop_assert_eq!(&serde_json::from_str::<Engine>(&json).expect("reads"), &engine);
            let mut toy2 = toy.clone();
            let a = drive(&mut engine, &mut toy, until, 1e6);
            let b = drive(&mut resumed, &mut toy2, until, 1e6);
            prop_assert_eq!(a, b);
            prop_assert_eq!(&toy.applied, &toy2.applied);
            prop_assert_eq!(&toy.rolled_back, &toy2.rolled_back);
            prop_assert_eq!(&resumed, &engine);
            prop_assert!(resumed.is_finished());
        }

        #[test]
        fn edited_indices_never_panic_on_resume_or_tick(
            which in 0usize..3,
            until in 0.0f64..12_000.0,
            edits in proptest::collection::vec(edit(), 1..4),
        ) {
            let mut json = saved_json(which, until);
            for e in &edits {
                apply(&mut json, e);
            }
            let Ok(saved) = serde_json::from_value::<SavedEngine>(json) else {
                return Ok(());
            };
            let Ok(mut engine) = Engine::resume(saved) else {
                return Ok(());
            };
            // A backend of exactly the resumed targets panics if the engine asks about another.
            let sizes = engine.targets.iter().map(|t| t.nodes).collect();
            let (per_node_per_size, slow) = scenario(which);
            let mut toy = Toy::new(sizes, per_node_per_size, slow);
            drive(&mut engine, &mut toy, until, until + 1e6);
            prop_assert!(engine.is_finished());
            // Ticking keeps the invariants: the finished engine resumes too.
            let json = serde_json::to_value(&engine).expect("serializes");
            prop_assert_eq!(resume_json(json).err(), None);
        }
    }
}
