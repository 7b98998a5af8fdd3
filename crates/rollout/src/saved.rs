//! Resuming a persisted [`Engine`]: the saved state as read back ([`SavedEngine`]), the check
//! that its parts agree, and what disagrees ([`ResumeError`]).

use serde::Deserialize;

use crate::{
    cluster::ClusterId,
    engine::{Action, Engine, HaltReason, Phase, admit},
    plan::{Plan, Policy, Step, Target},
    window::Window,
};

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
    pending: Vec<Action>,
    windows: Vec<Option<Window>>,
    last_tick_at: Option<f64>,
    unreachable: Vec<ClusterId>,
}

impl Engine {
    /// The engine a [`SavedEngine`] describes, once its targets, plan, phase, per-cluster state
    /// and pending actions are found to agree.
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
            pending,
            windows,
            last_tick_at,
            unreachable,
        } = saved;
        Ok(Self {
            targets,
            plan,
            policy,
            phase,
            admitted,
            restarts_at_wave_start,
            pending,
            windows,
            last_tick_at,
            unreachable,
        })
    }
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
    #[error("{len} measurement windows for {targets} targets")]
    WindowCount { len: usize, targets: usize },
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
    #[error("pending action {action:?} is not one the phase can be waiting for")]
    UnexpectedPending { action: Action },
    #[error("wave {wave} is being applied, but none of its steps is pending")]
    NothingPending { wave: usize },
    #[error("cluster {} has a measurement window {why}", .cluster.0)]
    InvalidWindow {
        cluster: ClusterId,
        why: &'static str,
    },
    #[error("the last tick's time {at} is not a finite number")]
    LastTick { at: f64 },
    #[error(
        "the unreachable clusters {clusters:?} are not distinct targets in order (there are \
         {targets})"
    )]
    Unreachable {
        clusters: Vec<ClusterId>,
        targets: usize,
    },
}

impl SavedEngine {
    /// The [`Engine`] invariants, each check relying on the ones before it.
    fn check(&self) -> Result<(), ResumeError> {
        self.check_counts()?;
        self.check_plan()?;
        self.check_phase()?;
        self.check_admitted()?;
        self.check_pending()?;
        self.check_windows()?;
        self.check_reachability()
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
        if self.windows.len() != targets {
            return Err(ResumeError::WindowCount {
                len: self.windows.len(),
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
            Phase::Applying { wave } | Phase::Baking { wave, .. } => (*wave, None),
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
            Phase::Applying { wave } | Phase::Baking { wave, .. } => wave + 1,
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

    /// Pending actions are what the phase waits for: steps of the wave being applied (one at
    /// least), or rollbacks of clusters the halted wave had admitted; nothing otherwise.
    fn check_pending(&self) -> Result<(), ResumeError> {
        if let Phase::Applying { wave } = self.phase
            && self.pending.is_empty()
        {
            return Err(ResumeError::NothingPending { wave });
        }
        match self.pending.iter().find(|a| !self.may_be_pending(a)) {
            Some(&action) => Err(ResumeError::UnexpectedPending { action }),
            None => Ok(()),
        }
    }

    fn may_be_pending(&self, action: &Action) -> bool {
        match (&self.phase, action) {
            // In bounds: check_phase checked the phase's wave.
            (Phase::Applying { wave }, Action::Apply(step)) => {
                self.plan.waves[*wave].steps.contains(step)
            }
            (Phase::Halted { wave, .. }, Action::RollBack { cluster }) => self
                .fractions_after(wave + 1)
                .get(cluster.0)
                .is_some_and(|&f| f > 0.0),
            _ => false,
        }
    }

    /// Windows are open only while baking, on admitted clusters, with finite, ordered times and
    /// finite amounts.
    fn check_windows(&self) -> Result<(), ResumeError> {
        let baking = matches!(self.phase, Phase::Baking { .. });
        for (i, (window, &admitted)) in self.windows.iter().zip(&self.admitted).enumerate() {
            let Some(w) = window else { continue };
            let why = if !baking {
                Some("while no wave is baking")
            } else if admitted <= 0.0 {
                Some("but does not have the change")
            } else if !(w.opened_at.is_finite()
                && w.last_at.is_finite()
                && w.opened_at <= w.last_at)
            {
                Some("whose times are not finite and in order")
            } else if ![w.opened_total, w.last_total, w.peak]
                .iter()
                .all(crate::cluster::Resources::is_finite)
            {
                Some("with an amount that is not a finite number")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ResumeError::InvalidWindow {
                    cluster: ClusterId(i),
                    why,
                });
            }
        }
        Ok(())
    }

    fn check_reachability(&self) -> Result<(), ResumeError> {
        if let Some(at) = self.last_tick_at.filter(|at| !at.is_finite()) {
            return Err(ResumeError::LastTick { at });
        }
        let targets = self.targets.len();
        let in_order = self.unreachable.windows(2).all(|p| p[0] < p[1]);
        let known = self.unreachable.iter().all(|c| c.0 < targets);
        if in_order && known {
            Ok(())
        } else {
            Err(ResumeError::Unreachable {
                clusters: self.unreachable.clone(),
                targets,
            })
        }
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
        cluster::Resources,
        toy::{Change, Toy, drive, setup},
    };

    #[test]
    fn a_persisted_engine_resumes_where_it_stopped() {
        let (mut engine, mut toy) = setup(Change::CHEAP, None, 1200.0);
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
    fn scenario(which: usize) -> (Change, Option<ClusterId>) {
        [
            (Change::CHEAP, None),
            (Change::size_dependent(1e-5), None),
            (Change::CHEAP, Some(ClusterId(1))),
        ][which]
    }

    /// The engine and backend of scenario `which` after ticking until `until`.
    fn saved(which: usize, until: f64) -> (Engine, Toy) {
        let (change, slow) = scenario(which);
        let (mut engine, mut toy) = setup(change, slow, 1200.0);
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

    /// Wave 1's steps returned and not yet confirmed.
    fn applying_json() -> Value {
        let (mut engine, mut toy) = saved(0, 1500.0);
        toy.advance(1500.0);
        engine.tick(1500.0, &toy.readings(1500.0));
        assert_eq!(engine.phase(), &Phase::Applying { wave: 1 });
        serde_json::to_value(engine).expect("serializes")
    }

    /// Halted on a projected overload, rollbacks not yet confirmed.
    fn halting_json() -> Value {
        let (mut engine, mut toy) = saved(1, 2130.0);
        toy.advance(2130.0);
        engine.tick(2130.0, &toy.readings(2130.0));
        assert!(!engine.pending().is_empty(), "{:?}", engine.phase());
        serde_json::to_value(engine).expect("serializes")
    }

    fn window_json() -> Value {
        serde_json::to_value(Window::open(1600.0, Resources::default())).expect("serializes")
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
        let measuring = saved_json(0, 1000.0);
        let applying = applying_json();
        let halting = halting_json();
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
                "a window is open on a cluster without the change",
                measuring.clone(),
                |j| set(j, "/windows/2", window_json()),
                E::InvalidWindow {
                    cluster: c(2),
                    why: "but does not have the change",
                },
            ),
            (
                "a window closes before it opens",
                measuring.clone(),
                |j| set(j, "/windows/0/opened_at", json!(1e9)),
                E::InvalidWindow {
                    cluster: c(0),
                    why: "whose times are not finite and in order",
                },
            ),
            (
                "windows for unknown clusters",
                measuring.clone(),
                |j| list(j, "/windows").push(Value::Null),
                E::WindowCount { len: 7, targets: 6 },
            ),
            (
                "a window is open while no wave bakes",
                applying.clone(),
                |j| set(j, "/windows/1", window_json()),
                E::InvalidWindow {
                    cluster: c(1),
                    why: "while no wave is baking",
                },
            ),
            (
                "a wave is being applied with nothing pending",
                applying.clone(),
                |j| list(j, "/pending").clear(),
                E::NothingPending { wave: 1 },
            ),
            (
                "a pending step is not the applied wave's",
                applying,
                |j| set(j, "/pending/0/node_fraction", json!(0.5)),
                E::UnexpectedPending {
                    action: Action::Apply(Step {
                        cluster: c(1),
                        node_fraction: 0.5,
                    }),
                },
            ),
            (
                "a pending rollback of a cluster the halted wave never admitted",
                halting,
                |j| set(j, "/pending/0/cluster", json!(3)),
                E::UnexpectedPending {
                    action: Action::RollBack { cluster: c(3) },
                },
            ),
            (
                "an unreachable cluster beyond the targets",
                measuring,
                |j| list(j, "/unreachable").push(json!(6)),
                E::Unreachable {
                    clusters: vec![c(6)],
                    targets: 6,
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
            let (change, slow) = scenario(which);
            let mut toy = Toy::new(sizes, change, slow);
            drive(&mut engine, &mut toy, until, until + 1e6);
            prop_assert!(engine.is_finished());
            // Ticking keeps the invariants: the finished engine resumes too.
            let json = serde_json::to_value(&engine).expect("serializes");
            prop_assert_eq!(resume_json(json).err(), None);
        }
    }
}
