//! Guarded phased rollout policy engine: wave planner, control-plane SLO gates, load projection.
//!
//! Owns: the decisions of a rollout — which clusters get the change, at which node fraction, in
//! which order, how long each wave bakes, and when to halt and roll back.
//! Must not: do I/O, read clocks or sleep. A [`Backend`] gives it the clusters and the caller gives
//! it the time, so the fleet simulator and the real `fleetwatch rollout` executor use it unchanged.
//!
//! Start with [`plan()`] (a [`Policy`] and the [`Target`] clusters → a [`Plan`] of waves), then drive
//! an [`Engine`] by calling [`Engine::tick`] with the current time and a [`Backend`]:
//!
//! - [`mod@plan`]: scale-stratified waves — staging first, then the *largest* clusters at a small node
//!   fraction, wave sizes growing geometrically; bake ≥ the longest declared cache TTL + a margin;
//! - [`gate`]: absolute control-plane SLOs (GET/LIST p99, 429 ratio, API server restarts) checked
//!   during bake — absolute because a shared API server degrades canary and baseline alike;
//! - [`projection`]: the change's measured API cost per admitted node, projected to every remaining
//!   cluster's full size (linear and quadratic fits, the worse wins) and compared with capacity;
//! - [`engine`]: the state machine; a halt rolls back every admitted wave.

pub mod engine;
pub mod gate;
pub mod plan;
pub mod projection;

pub use engine::{Backend, Engine, Event, HaltReason, Observation, Phase};
pub use gate::{Breach, SloGates};
pub use plan::{
    BakePolicy, DeclaredCache, Plan, PlanError, Policy, Step, Target, Wave, WaveStyle, plan,
};
pub use projection::{Fit, Projection, ProjectionPolicy};

/// Index of a cluster in the target list handed to [`plan`] and [`Engine::new`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ClusterId(pub usize);
