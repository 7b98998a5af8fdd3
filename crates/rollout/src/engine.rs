//! The rollout state machine. The caller owns the clock: it calls [`Engine::tick`] with the
//! current time, as often as it likes; the engine applies waves, checks gates and projections
//! through the [`Backend`], and reports what it did as [`Event`]s.

use serde::{Deserialize, Serialize};

use crate::{
    ClusterId,
    gate::Breach,
    plan::{Plan, Policy, Step, Target},
    projection::{Fits, Projection, Sample},
};

/// A cluster's control-plane signals as the backend sees them now (smoothed over its own window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub get_p99_seconds: f64,
    pub list_p99_seconds: f64,
    /// Fraction of API requests rejected with 429.
    pub ratio_429: f64,
    /// API server restarts since the cluster was first observed (monotonic).
    pub restarts: u32,
    /// CPU cores the change's requests cost the API servers (attributed by its flow schema).
    pub change_cost_cores: f64,
    /// Nodes currently running the change.
    pub admitted_nodes: f64,
    /// CPU cores the API servers spend on everything but the change.
    pub other_cores: f64,
    /// Fraction of the cluster's nodes whose services are failing.
    pub failing_node_fraction: f64,
}

/// Where a rollout is. The real executor persists this with the engine to resume after a crash.
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

/// The engine's state.
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

impl Engine {
    /// A rollout of `plan` (made by [`crate::plan`] from the same `targets` and `policy`).
    #[must_use]
    pub fn new(targets: Vec<Target>, plan: Plan, policy: Policy) -> Self {
        let n = targets.len();
        Self {
            targets,
            plan,
            policy,
            phase: Phase::NotStarted,
            admitted: vec![0.0; n],
            restarts_at_wave_start: vec![0; n],
        }
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
                if let Some(reason) = self.check(now - started_at, backend) {
                    self.halt(wave, now, reason, backend, &mut events);
                } else if now - started_at >= self.plan.waves[wave].bake_seconds {
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
            self.admitted[step.cluster.0] = step.node_fraction;
        }
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

    /// Gates and projection; the first reason to halt, if any.
    fn check(&self, since_wave_start: f64, backend: &impl Backend) -> Option<HaltReason> {
        let admitted = || {
            (0..self.targets.len())
                .filter(|&i| self.admitted[i] > 0.0)
                .map(ClusterId)
        };
        for cluster in admitted() {
            let obs = backend.observe(cluster);
            if let Some(gates) = &self.policy.gates {
                let restarts = obs
                    .restarts
                    .saturating_sub(self.restarts_at_wave_start[cluster.0]);
                if let Some(breach) = gates.check(&obs, restarts) {
                    return Some(HaltReason::Slo { cluster, breach });
                }
            }
            if let Some(limit) = self.policy.max_failing_node_fraction
                && obs.failing_node_fraction > limit
            {
                return Some(HaltReason::ServiceHealth {
                    cluster,
                    failing_fraction: obs.failing_node_fraction,
                    limit,
                });
            }
        }
        let projection = self.policy.projection.as_ref()?;
        if since_wave_start < projection.settle_seconds {
            return None;
        }
        let samples: Vec<Sample> = admitted()
            .map(|c| {
                let obs = backend.observe(c);
                Sample {
                    cluster_nodes: self.targets[c.0].nodes,
                    admitted_nodes: obs.admitted_nodes,
                    cost_cores: obs.change_cost_cores,
                }
            })
            .collect();
        let fits = Fits::new(&samples)?;
        // Of the clusters not fully reached, the one the change would overload the most.
        let mut worst: Option<(f64, Projection)> = None;
        for (i, target) in self
            .targets
            .iter()
            .enumerate()
            .filter(|(i, _)| self.admitted[*i] < 1.0)
        {
            let (projected_cores, fit) = fits.project(target.nodes);
            let headroom_cores = target.capacity_cores * projection.max_utilization
                - backend.observe(ClusterId(i)).other_cores;
            let ratio = projected_cores / headroom_cores.max(f64::MIN_POSITIVE);
            if projected_cores > headroom_cores && worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
                worst = Some((
                    ratio,
                    Projection {
                        cluster: ClusterId(i),
                        projected_cores,
                        headroom_cores,
                        fit,
                    },
                ));
            }
        }
        worst.map(|(_, p)| HaltReason::ProjectedOverload(p))
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
        let clusters: Vec<ClusterId> = (0..self.targets.len())
            .filter(|&i| self.admitted[i] > 0.0)
            .map(ClusterId)
            .collect();
        for &c in &clusters {
            backend.roll_back(c);
            self.admitted[c.0] = 0.0;
        }
        events.push(Event::RolledBack { at: now, clusters });
        self.phase = Phase::Halted {
            wave,
            at: now,
            reason,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BakePolicy, DeclaredCache, ProjectionPolicy, SloGates, WaveStyle, plan};

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

    fn setup(per_node_per_size: f64, slow: Option<ClusterId>) -> (Engine, Toy) {
        let sizes = vec![40, 5000, 3000, 800, 200, 100];
        let targets: Vec<Target> = sizes
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
        let plan = plan(&targets, &policy).expect("valid");
        let toy = Toy {
            sizes,
            fraction: vec![0.0; 6],
            per_node_per_size,
            applied: vec![],
            rolled_back: vec![],
            slow,
        };
        (Engine::new(targets, plan, policy), toy)
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
}
