//! Guarded phased rollout policy engine: wave planner, control-plane SLO gates, load projection.
//!
//! Owns: the decisions of a rollout — which clusters get the change, at which node fraction, in
//! which order, how long each wave bakes, and when to halt and roll back — and the check that a
//! saved rollout's parts still agree before it resumes.
//! Must not: do I/O, read clocks or sleep. A [`Backend`] gives it the clusters and the caller gives
//! it the time, so the fleet simulator and the real `fleetwatch rollout` executor use it unchanged.
//! Nor does it store anything: the caller persists the serialized [`Engine`] and reads it back.
//!
//! Start with [`Engine::new`] (the [`Target`] clusters and a [`Policy`]; it plans the waves with
//! [`plan()`], which also previews a [`Plan`] on its own), then call [`Engine::tick`] with the
//! current time and a [`Backend`]. To resume after a crash, deserialize the saved engine as a
//! [`SavedEngine`] and pass it to [`Engine::resume`], which refuses a state whose targets, plan,
//! phase and per-cluster state disagree with a [`ResumeError`] saying what disagrees.
//! Deserializing an [`Engine`] directly runs the same checks, so an invalid engine cannot be read
//! back at all.
//!
//! - [`cluster`]: what the other modules share — [`ClusterId`] and the [`Observation`] a backend
//!   reports; it imports nothing from the crate;
//! - [`mod@plan`]: scale-stratified waves — staging first, then the *largest* clusters at a small node
//!   fraction, wave sizes growing geometrically; bake ≥ the longest declared cache TTL + a margin;
//! - [`gate`]: absolute control-plane SLOs (GET/LIST p99, 429 ratio, API server restarts) checked
//!   during bake — absolute because a shared API server degrades canary and baseline alike;
//! - [`projection`]: the change's measured API cost per admitted node, projected to every remaining
//!   cluster's full size (linear and quadratic fits, the worse wins) and compared with capacity;
//! - [`engine`]: the state machine and its resume check; a halt rolls back every admitted wave.
//!
//! Modules import only downwards, so none imports another that imports it: `engine` uses `plan`,
//! `gate`, `projection` and `cluster`; `plan` uses `gate`, `projection` and `cluster`; `gate` and
//! `projection` use `cluster`. This file only declares the modules and re-exports from them.

pub mod cluster;
pub mod engine;
pub mod gate;
pub mod plan;
pub mod projection;

pub use cluster::{ClusterId, Observation};
pub use engine::{Backend, Engine, Event, HaltReason, Phase, ResumeError, SavedEngine};
pub use gate::{Breach, SloGates};
pub use plan::{
    BakePolicy, DeclaredCache, Plan, PlanError, Policy, Step, Target, Wave, WaveStyle, plan,
};
pub use projection::{Fit, Projection, ProjectionPolicy};
