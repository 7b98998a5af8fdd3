//! The rollout state machine, sans I/O: the caller reads the clusters, calls [`Engine::tick`]
//! with the time and what it read, carries out the [`Action`]s the engine returns, and tells the
//! engine with [`Engine::confirm`] when each is done.
//!
//! # The caller's contract (crash safety)
//! 1. Read every target, in [`ClusterId`] order: a [`Reading::Observed`] with its signals, or
//!    [`Reading::Unreachable`] when it could not read the cluster at all.
//! 2. `let tick = engine.tick(now, &readings)`. `now` is seconds on any clock, non-decreasing.
//! 3. **Persist the engine before carrying out any action.** The serialized engine holds the new
//!    state *and* every action not yet confirmed ([`Engine::pending`]), so one atomic write keeps
//!    both. Its numbers must read back exactly (with `serde_json`, its `float_roundtrip`
//!    feature), or the resumed engine measures from slightly different totals.
//! 4. Carry out each pending action; after each succeeds, `engine.confirm(&action, now)` and
//!    persist again. An action that fails stays pending: retry it.
//! 5. After a crash (kill -9 at any point), read the engine back ([`crate::SavedEngine`] →
//!    [`Engine::resume`]) and carry out [`Engine::pending`] again before ticking.
//!
//! Actions are idempotent — [`Action::Apply`] *sets* a cluster's node fraction (the executor
//! admits a deterministic set of nodes), [`Action::RollBack`] removes the change, and doing
//! either twice is doing it once — so replaying pending actions applies no step twice in effect.
//! No gate is skipped: a wave's bake starts only when its last step is confirmed, and time the
//! engine did not observe does not count towards a bake (below).
//!
//! # What the engine does not guess
//! - An unreachable cluster pauses the rollout: while any target is [`Reading::Unreachable`] no
//!   wave starts or passes, the bake clock stops, and [`Event::Paused`] says which clusters;
//!   [`Event::Unpaused`] when all answer again. The unreachable cluster's measurement window
//!   restarts when it is back. Evidence still counts: a breach or a projected overload seen on the
//!   clusters that did answer halts.
//! - Readings further apart than [`BakePolicy::max_reading_gap_seconds`](crate::BakePolicy)
//!   (the executor was down) are a gap ([`Event::Gap`]): it does not count towards the bake and
//!   every measurement window restarts.
//! - A wave passes only once every admitted cluster has a full window of readings
//!   ([`crate::window`]); a projected overload halts as soon as it is certain.

use serde::{Deserialize, Serialize};

use crate::{
    cluster::{ClusterId, Observation, Reading, Resources},
    gate::Breach,
    plan::{Plan, PlanError, Policy, Step, Target, plan},
    projection::{Candidate, Measured, Projection, ProjectionPolicy, worst_overload},
    window::Window,
};

/// What the caller must carry out. Idempotent: carrying one out twice is carrying it out once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Set the change's node fraction on `step.cluster` to `step.node_fraction`.
    Apply(Step),
    /// Remove the change from the cluster entirely.
    RollBack { cluster: ClusterId },
}

/// What a tick decided: the actions to carry out (also held as [`Engine::pending`] until
/// confirmed) and what happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tick {
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
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
    pub(crate) fn cluster(&self) -> ClusterId {
        match self {
            HaltReason::Slo { cluster, .. } | HaltReason::ServiceHealth { cluster, .. } => *cluster,
            HaltReason::ProjectedOverload(p) => p.cluster,
        }
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    NotStarted,
    /// The wave's steps are pending: the bake starts when the last is confirmed.
    Applying {
        wave: usize,
    },
    /// `started_at` moves later by every interval the engine did not observe, so
    /// `now - started_at` is the observed bake time.
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

/// What happened during a tick.
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
    /// Rollback of these clusters is ordered (as pending [`Action::RollBack`]s).
    RollingBack {
        at: f64,
        clusters: Vec<ClusterId>,
    },
    /// These clusters could not be read: the rollout neither advances nor bakes until they can.
    Paused {
        at: f64,
        unreachable: Vec<ClusterId>,
    },
    /// Every cluster can be read again.
    Unpaused {
        at: f64,
    },
    /// No reading between `from` and `at`, longer than the policy allows: not counted as bake,
    /// and every measurement window restarts.
    Gap {
        from: f64,
        at: f64,
    },
}

/// A rollout in progress: plan, policy, state and the actions not yet confirmed. Serializable so
/// an executor can persist it.
///
/// Every `Engine`, new or resumed, holds these invariants, and [`Engine::tick`] and
/// [`Engine::confirm`] keep them, so the engine never indexes out of bounds:
/// - wave `i` of the plan has index `i`, a finite bake ≥ 0, and steps that raise target clusters
///   to node fractions in (0, 1];
/// - `admitted`, `restarts_at_wave_start` and `windows` hold one entry per target;
/// - the phase's wave is in the plan, and a halt blames a target that, in the halted wave, had
///   the change (a gate or service-health halt) or had not yet got it everywhere (a projection);
/// - `admitted` is what the plan's waves up to the phase gave each cluster;
/// - `pending` holds steps of the wave being applied (at least one while applying) or, after a
///   halt, rollbacks of clusters that wave had admitted, and nothing otherwise;
/// - windows are open only while baking, on admitted clusters, with finite, ordered times;
/// - `unreachable` names targets, in order, once each.
///
/// Deserializing checks them (it goes through [`Engine::resume`]), so a saved engine whose parts
/// disagree is refused rather than read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "crate::saved::SavedEngine")]
pub struct Engine {
    pub(crate) targets: Vec<Target>,
    pub(crate) plan: Plan,
    pub(crate) policy: Policy,
    pub(crate) phase: Phase,
    /// Node fraction the engine has ordered so far, per cluster.
    pub(crate) admitted: Vec<f64>,
    /// Each cluster's restart count when the current wave started.
    pub(crate) restarts_at_wave_start: Vec<u32>,
    /// Actions returned and not yet confirmed, in the order they were returned.
    pub(crate) pending: Vec<Action>,
    /// Per cluster, the change's demand measured this wave.
    pub(crate) windows: Vec<Option<Window>>,
    /// When the engine last had a tick.
    pub(crate) last_tick_at: Option<f64>,
    /// The clusters unreachable at the last tick.
    pub(crate) unreachable: Vec<ClusterId>,
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
            pending: Vec::new(),
            windows: vec![None; n],
            last_tick_at: None,
            unreachable: Vec::new(),
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

    /// Actions returned by a tick and not yet confirmed: after a crash, carry these out again.
    #[must_use]
    pub fn pending(&self) -> &[Action] {
        &self.pending
    }

    /// Whether the engine has nothing left to do: completed, or halted with every rollback
    /// confirmed.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Completed { .. } | Phase::Halted { .. })
            && self.pending.is_empty()
    }

    /// Records that `action` was carried out at `now`; returns whether it was pending (a replayed
    /// action confirmed twice is not). Confirming the last step of a wave starts its bake.
    pub fn confirm(&mut self, action: &Action, now: f64) -> bool {
        let Some(i) = self.pending.iter().position(|a| a == action) else {
            return false;
        };
        self.pending.remove(i);
        if let Phase::Applying { wave } = self.phase
            && self.pending.is_empty()
        {
            self.start_bake(wave, now);
        }
        true
    }

    /// Advances the rollout to time `now` given `readings`, one per target in [`ClusterId`]
    /// order (a missing one counts as [`Reading::Unreachable`]).
    pub fn tick(&mut self, now: f64, readings: &[Reading]) -> Tick {
        let mut tick = Tick::default();
        if matches!(self.phase, Phase::Completed { .. } | Phase::Halted { .. }) {
            return tick;
        }
        let observed = self.note_reachability(now, readings, &mut tick.events);
        if let Some(reason) = self.check_signals(readings) {
            self.halt(now, reason, &mut tick);
            return tick;
        }
        match self.phase {
            Phase::NotStarted if observed => self.start_wave(0, now, readings, &mut tick),
            Phase::Baking { wave, started_at } => {
                self.bake(wave, started_at, now, observed, readings, &mut tick);
            }
            _ => {}
        }
        tick
    }

    /// Compares `readings` with the last tick's: records the unreachable clusters and the time,
    /// reports pauses and gaps, and drops the measurement windows they interrupt. Returns whether
    /// the interval since the last tick was observed (every cluster read, no gap).
    fn note_reachability(
        &mut self,
        now: f64,
        readings: &[Reading],
        events: &mut Vec<Event>,
    ) -> bool {
        let unreachable: Vec<ClusterId> = (0..self.targets.len())
            .filter(|&i| readings.get(i).and_then(Reading::observation).is_none())
            .map(ClusterId)
            .collect();
        if unreachable != self.unreachable {
            events.push(if unreachable.is_empty() {
                Event::Unpaused { at: now }
            } else {
                Event::Paused {
                    at: now,
                    unreachable: unreachable.clone(),
                }
            });
        }
        let gap_from = self
            .last_tick_at
            .filter(|&last| now - last > self.policy.bake.max_reading_gap_seconds);
        if let Some(from) = gap_from {
            events.push(Event::Gap { from, at: now });
            self.windows.iter_mut().for_each(|w| *w = None);
        }
        for c in &unreachable {
            self.windows[c.0] = None;
        }
        let observed = unreachable.is_empty() && gap_from.is_none();
        if let (false, Some(last), Phase::Baking { started_at, .. }) =
            (observed, self.last_tick_at, &mut self.phase)
        {
            // Only the part of the interval since the bake started was bake time.
            *started_at += (now - last.max(*started_at)).max(0.0);
        }
        self.unreachable = unreachable;
        self.last_tick_at = Some(now);
        observed
    }

    /// A baking wave: measure, project, and pass once baked with full windows.
    fn bake(
        &mut self,
        wave: usize,
        started_at: f64,
        now: f64,
        observed: bool,
        readings: &[Reading],
        tick: &mut Tick,
    ) {
        let baked = now - started_at;
        let Some(projection) = self.policy.projection.clone() else {
            if observed && baked >= self.plan.waves[wave].bake_seconds {
                self.pass(wave, now, readings, tick);
            }
            return;
        };
        if baked < projection.settle_seconds {
            return;
        }
        self.measure(now, readings);
        if let Some(overload) = self.worst_overload(&projection, readings) {
            self.halt(now, HaltReason::ProjectedOverload(overload), tick);
            return;
        }
        // In bounds: resume checks the phase's wave, and start_wave bakes only waves that exist.
        let windows_full = self.admitted().all(|c| {
            self.windows[c.id.0]
                .as_ref()
                .is_some_and(|w| w.is_full(projection.window_seconds))
        });
        if observed && windows_full && baked >= self.plan.waves[wave].bake_seconds {
            self.pass(wave, now, readings, tick);
        }
    }

    fn pass(&mut self, wave: usize, now: f64, readings: &[Reading], tick: &mut Tick) {
        tick.events.push(Event::WavePassed { wave, at: now });
        self.start_wave(wave + 1, now, readings, tick);
    }

    /// Orders wave `wave`'s steps (or completes). Every cluster was read: starting a wave is
    /// never done on a guess.
    fn start_wave(&mut self, wave: usize, now: f64, readings: &[Reading], tick: &mut Tick) {
        // The fractions change: what was measured no longer describes the clusters.
        self.windows.iter_mut().for_each(|w| *w = None);
        let Some(w) = self.plan.waves.get(wave) else {
            self.phase = Phase::Completed { at: now };
            tick.events.push(Event::Completed { at: now });
            return;
        };
        for (i, r) in self.restarts_at_wave_start.iter_mut().enumerate() {
            *r = readings
                .get(i)
                .and_then(Reading::observation)
                .map_or(*r, |obs| obs.restarts);
        }
        let actions: Vec<Action> = w.steps.iter().copied().map(Action::Apply).collect();
        admit(&mut self.admitted, &w.steps);
        tick.events.push(Event::WaveStarted {
            wave,
            at: now,
            steps: w.steps.clone(),
        });
        self.phase = Phase::Applying { wave };
        self.pending.clone_from(&actions);
        tick.actions = actions;
        if self.pending.is_empty() {
            self.start_bake(wave, now);
        }
    }

    fn start_bake(&mut self, wave: usize, now: f64) {
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

    /// The first admitted cluster that answered and breaches an SLO gate or the service-health
    /// limit.
    fn check_signals(&self, readings: &[Reading]) -> Option<HaltReason> {
        self.admitted().find_map(|cluster| {
            let obs = readings.get(cluster.id.0)?.observation()?;
            self.breach(&cluster, obs)
        })
    }

    fn breach(&self, cluster: &Tracked<'_>, obs: &Observation) -> Option<HaltReason> {
        if let Some(gates) = &self.policy.gates {
            let restarts = obs.restarts.saturating_sub(cluster.restarts_at_wave_start);
            if let Some(breach) = gates.check(obs, restarts) {
                return Some(HaltReason::Slo {
                    cluster: cluster.id,
                    breach,
                });
            }
        }
        let limit = self.policy.max_failing_node_fraction?;
        (obs.failing_node_fraction > limit).then_some(HaltReason::ServiceHealth {
            cluster: cluster.id,
            failing_fraction: obs.failing_node_fraction,
            limit,
        })
    }

    /// Extends (or opens) the window of every admitted cluster that answered.
    fn measure(&mut self, now: f64, readings: &[Reading]) {
        let admitted: Vec<ClusterId> = self.admitted().map(|c| c.id).collect();
        for id in admitted {
            let Some(obs) = readings.get(id.0).and_then(Reading::observation) else {
                continue;
            };
            let total = obs.change_asked_total;
            let window = &mut self.windows[id.0];
            let extended = window
                .as_mut()
                .is_some_and(|w| w.record(now, total).is_ok());
            if !extended {
                *window = Some(Window::open(now, total));
            }
        }
    }

    /// Of the clusters not fully reached and read, the one the change would overload the most,
    /// projected from the windows of the admitted clusters.
    fn worst_overload(
        &self,
        projection: &ProjectionPolicy,
        readings: &[Reading],
    ) -> Option<Projection> {
        let measured: Vec<Measured> = self
            .admitted()
            .filter_map(|c| {
                let obs = readings.get(c.id.0)?.observation()?;
                let window = self.windows[c.id.0].as_ref().filter(|w| w.span() > 0.0)?;
                Some(Measured {
                    cluster_nodes: c.target.nodes,
                    admitted_nodes: obs.admitted_nodes,
                    demand: window.demand(projection.window_seconds),
                })
            })
            .collect();
        let candidates: Vec<Candidate> = self
            .tracked()
            .filter(|c| c.admitted < 1.0)
            .filter_map(|c| {
                let obs = readings.get(c.id.0)?.observation()?;
                Some(Candidate {
                    cluster: c.id,
                    nodes: c.target.nodes,
                    headroom: headroom(&c.target.capacity, projection.max_utilization, obs),
                })
            })
            .collect();
        worst_overload(&measured, &candidates)
    }

    fn halt(&mut self, now: f64, reason: HaltReason, tick: &mut Tick) {
        let wave = match self.phase {
            Phase::Applying { wave } | Phase::Baking { wave, .. } => wave,
            // Only the phases above check signals.
            _ => 0,
        };
        tick.events.push(Event::Halted {
            wave,
            at: now,
            reason: reason.clone(),
        });
        let clusters: Vec<ClusterId> = self.admitted().map(|c| c.id).collect();
        // Rollbacks supersede steps not yet carried out: the cluster ends without the change
        // either way.
        let actions: Vec<Action> = clusters
            .iter()
            .map(|&cluster| Action::RollBack { cluster })
            .collect();
        self.pending.clone_from(&actions);
        tick.actions = actions;
        self.admitted.iter_mut().for_each(|f| *f = 0.0);
        self.windows.iter_mut().for_each(|w| *w = None);
        tick.events.push(Event::RollingBack { at: now, clusters });
        self.phase = Phase::Halted {
            wave,
            at: now,
            reason,
        };
    }
}

/// What a cluster has left of each resource: `max_utilization` of its capacity less what
/// everything else uses now.
fn headroom(capacity: &Resources, max_utilization: f64, obs: &Observation) -> Resources {
    capacity.zip(&obs.other_in_use, |cap, used| cap * max_utilization - used)
}

/// Records each step's node fraction as its cluster's. Every step names a target (plans from
/// [`plan()`] do, and resume checks saved ones), so `get_mut` skips nothing; it only keeps a broken
/// invariant from becoming a panic.
pub(crate) fn admit(fractions: &mut [f64], steps: &[Step]) {
    for step in steps {
        if let Some(fraction) = fractions.get_mut(step.cluster.0) {
            *fraction = step.node_fraction;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        cluster::Resource,
        plan::Step,
        toy::{Change, TICK, carry_out_pending, drive, setup},
    };

    /// The rollout of `change` driven to the end, with a `window_seconds` window.
    fn run(change: Change, window_seconds: f64) -> (Engine, crate::toy::Toy, Vec<Event>) {
        let (mut engine, mut toy) = setup(change, None, window_seconds);
        let events = drive(&mut engine, &mut toy, 0.0, 1e6);
        (engine, toy, events)
    }

    fn projected_overload(engine: &Engine) -> (usize, &Projection) {
        match engine.phase() {
            Phase::Halted {
                wave,
                reason: HaltReason::ProjectedOverload(p),
                ..
            } => (*wave, p),
            other => panic!("expected a projected overload, got {other:?}"),
        }
    }

    #[test]
    fn size_dependent_change_halts_at_the_first_production_wave_and_rolls_back() {
        // 1e-5 cores per node per node: 5000 nodes → 250 cores, far over 0.7 · 96.
        let (engine, toy, events) = run(Change::size_dependent(1e-5), 1200.0);
        let (wave, p) = projected_overload(&engine);
        assert_eq!(
            (wave, p.cluster, p.resource),
            (1, ClusterId(1), Resource::Cpu)
        );
        assert_eq!(toy.fraction, vec![0.0; 6]);
        assert_eq!(toy.rolled_back, vec![ClusterId(0), ClusterId(1)]);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::RollingBack { .. }))
        );
        // Certain before the window is full: at 3.7 times the headroom, once a quarter of the
        // window's worth is asked (wave 1 starts at 1500 s, settles at 1800 s).
        let Phase::Halted { at, .. } = engine.phase() else {
            unreachable!()
        };
        assert_eq!(*at, 2130.0);
    }

    #[test]
    fn cheap_change_completes_everywhere() {
        let (engine, toy, _) = run(Change::CHEAP, 1200.0);
        assert!(matches!(engine.phase(), Phase::Completed { .. }));
        assert_eq!(toy.fraction, vec![1.0; 6]);
        assert!(toy.rolled_back.is_empty());
    }

    #[test]
    fn slo_breach_during_bake_halts_and_rolls_back() {
        let (mut engine, mut toy) = setup(Change::CHEAP, Some(ClusterId(1)), 1200.0);
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

    /// An hourly call whose whole hour's cost comes at once, 8 seats per core-second.
    fn hourly_burst(flat: f64, per_size: f64) -> Change {
        Change {
            flat,
            per_size,
            seats_per_core: 8.0,
            period: Some(3600.0),
        }
    }

    #[test]
    fn an_hourly_burst_that_fills_the_seats_halts_the_first_production_wave() {
        // Mean CPU at 5000 nodes is 2.5 cores, but the burst asks 7200 seats of 990.
        let (engine, _, _) = run(hourly_burst(0.0, 1e-7), 3600.0);
        let (wave, p) = projected_overload(&engine);
        assert_eq!(
            (wave, p.cluster, p.resource),
            (1, ClusterId(1), Resource::Seats)
        );
    }

    #[test]
    fn a_cheap_hourly_burst_completes() {
        let (engine, _, _) = run(hourly_burst(1e-6, 0.0), 3600.0);
        assert!(
            matches!(engine.phase(), Phase::Completed { .. }),
            "{:?}",
            engine.phase()
        );
    }

    fn started_and_passed(events: &[Event]) -> Vec<(f64, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::WaveStarted { at, .. } => Some((*at, true)),
                Event::WavePassed { at, .. } => Some((*at, false)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_unreachable_cluster_pauses_the_bake_and_the_waves() {
        let (mut engine, mut toy) = setup(Change::CHEAP, None, 1200.0);
        // Cluster 3 (not yet admitted) is out of reach for ten minutes of wave 1's bake.
        toy.unreachable.push((ClusterId(3), 2000.0, 2600.0));
        let events = drive(&mut engine, &mut toy, 0.0, 1e6);
        assert!(events.contains(&Event::Paused {
            at: 2000.0,
            unreachable: vec![ClusterId(3)]
        }));
        assert!(events.contains(&Event::Unpaused { at: 2600.0 }));
        let waves = started_and_passed(&events);
        // Wave 1 started at 1500 and bakes 1500 s of observed time: the pause adds its 600 s.
        assert_eq!(waves[2], (1500.0, true));
        assert_eq!(waves[3], (3600.0, false));
        assert!(matches!(engine.phase(), Phase::Completed { .. }));
    }

    #[test]
    fn a_gap_in_the_readings_is_not_bake_time() {
        let (mut engine, mut toy) = setup(Change::CHEAP, None, 1200.0);
        drive(&mut engine, &mut toy, 0.0, 2000.0);
        // The executor was down from 1990 to 2600.
        let mut events = drive(&mut engine, &mut toy, 2600.0, 1e6);
        assert_eq!(
            events.remove(0),
            Event::Gap {
                from: 1990.0,
                at: 2600.0
            }
        );
        // 490 s baked before the gap; 1010 s more, and a fresh 1200 s window after the settle.
        let waves = started_and_passed(&events);
        assert_eq!(waves[0], (2600.0 + 1200.0, false));
    }

    proptest! {
        /// Whatever its period up to the window, and whether its calls are spread or
        /// synchronized, a change whose cost grows with cluster size is halted by the first
        /// production wave (a burst that would fill the seats at full size may already halt
        /// staging), and one whose cost is flat completes.
        #[test]
        fn periodic_changes_are_judged_by_their_cost_not_their_period(
            period in proptest::option::of(30.0f64..3600.0),
            window in 600.0f64..3600.0,
        ) {
            let period = period.map(|p| p.min(window));
            let bad = Change { period, ..Change::size_dependent(1e-5) };
            let (engine, _, _) = run(bad, window);
            prop_assert!(projected_overload(&engine).0 <= 1);
            let flat = Change { flat: 1e-5, period, ..Change::CHEAP };
            let (engine, _, events) = run(flat, window);
            let completed = matches!(engine.phase(), Phase::Completed { .. });
            prop_assert!(completed, "{:?}", engine.phase());
            // No wave passed before a settle time and a full window after it started.
            let waves = started_and_passed(&events);
            for pair in waves.windows(2) {
                if let [(started, true), (passed, false)] = pair {
                    prop_assert!(passed - started >= 300.0 + window);
                }
            }
        }

        /// Killed after a tick, with only some of its actions carried out (or confirmed), the
        /// resumed engine replays the rest and ends where an uninterrupted run ends, with the
        /// same steps in effect.
        #[test]
        fn replaying_pending_actions_after_a_crash_applies_no_step_twice_in_effect(
            crash_tick in 0usize..700,
            carried in 0usize..6,
            bad in any::<bool>(),
        ) {
            let change = if bad { Change::size_dependent(1e-5) } else { Change::CHEAP };
            let (mut reference, mut reference_toy) = setup(change, None, 1200.0);
            drive(&mut reference, &mut reference_toy, 0.0, 1e6);

            let (mut engine, mut toy) = setup(change, None, 1200.0);
            #[allow(clippy::cast_precision_loss)] // a small tick count
            let crash_at = crash_tick as f64 * TICK;
            drive(&mut engine, &mut toy, 0.0, crash_at);
            toy.advance(crash_at);
            engine.tick(crash_at, &toy.readings(crash_at));
            let saved = serde_json::to_string(&engine).expect("serializes");
            // Carried out, not confirmed: the crash came first.
            for action in engine.pending().iter().take(carried) {
                toy.carry_out(action);
            }
            let mut resumed: Engine = serde_json::from_str(&saved).expect("resumes");
            carry_out_pending(&mut resumed, &mut toy, crash_at);
            drive(&mut resumed, &mut toy, crash_at + TICK, 1e6);

            prop_assert_eq!(resumed.phase(), reference.phase());
            prop_assert_eq!(&toy.fraction, &reference_toy.fraction);
            // Replayed steps repeat ones already carried out; the first of each is its effect.
            let mut in_effect: Vec<Step> = Vec::new();
            for step in toy.applied {
                if !in_effect.contains(&step) {
                    in_effect.push(step);
                }
            }
            prop_assert_eq!(in_effect, reference_toy.applied);
        }
    }
}
