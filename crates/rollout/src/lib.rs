//! Guarded phased rollout policy engine: wave planner, control-plane SLO gates, load projection.
//!
//! Owns: the decisions of a rollout — which clusters get the change, at which node fraction, in
//! which order, how long each wave bakes, when to pause, and when to halt and roll back — and the
//! check that a saved rollout's parts still agree before it resumes.
//! Must not: do I/O, read clocks or sleep. It is sans-I/O, in the style of `quinn-proto`: the
//! caller reads the clusters and gives it the time and what it read; it returns the [`Action`]s
//! to carry out. So the fleet simulator and the real `fleetwatch rollout` executor use it
//! unchanged. Nor does it store anything: the caller persists the serialized [`Engine`] (which
//! holds the actions not yet confirmed) before carrying them out — the contract is in
//! [`engine`]'s doc.
//!
//! Start with [`Engine::new`] (the [`Target`] clusters with their capacity, and a [`Policy`]; it
//! plans the waves with [`plan()`], which also previews a [`Plan`] on its own). Then loop: read
//! every target as a [`Reading`], call [`Engine::tick`], persist, carry out the returned actions
//! and [`Engine::confirm`] each. To resume after a crash, deserialize the saved engine as a
//! [`SavedEngine`] and pass it to [`Engine::resume`], which refuses a state whose targets, plan,
//! phase, per-cluster state, windows and pending actions disagree with a [`ResumeError`] saying
//! what disagrees, then carry out [`Engine::pending`] again. Deserializing an [`Engine`] directly
//! runs the same checks, so an invalid engine cannot be read back at all.
//!
//! - [`cluster`]: what the other modules share — [`ClusterId`], the [`Observation`] and
//!   [`Reading`] the caller reports, the [`Resource`]s a change can exhaust; it imports nothing
//!   from the crate;
//! - [`mod@plan`]: scale-stratified waves — staging first, then the *largest* clusters at a small node
//!   fraction, wave sizes growing geometrically; bake ≥ the longest declared cache TTL + a margin,
//!   and ≥ the settle time + the measurement window;
//! - [`gate`]: absolute control-plane SLOs (GET/LIST p99, 429 ratio, API server restarts) checked
//!   during bake — absolute because a shared API server degrades canary and baseline alike;
//! - [`window`]: the change's demand in one cluster over a window that covers its period, from
//!   the counters of what it *asked* (mean CPU; peak memory and seats);
//! - [`projection`]: that demand per admitted node, projected to every remaining cluster's full
//!   size for every resource (linear and quadratic fits, the worse wins) and compared with its
//!   headroom;
//! - [`engine`]: the state machine — actions, confirmations, pauses on unreachable clusters and
//!   gaps; a halt rolls back every admitted wave;
//! - [`saved`]: resuming a persisted engine, and what may disagree in one.
//!
//! Modules import only downwards, so none imports another that imports it: `saved` uses
//! `engine`; `engine` uses `plan`, `gate`, `window`, `projection` and `cluster`; `plan` uses
//! `gate`, `projection` and `cluster`; `gate`, `window` and `projection` use `cluster`. This file
//! only declares the modules and re-exports from them.

pub mod cluster;
pub mod engine;
pub mod gate;
pub mod plan;
pub mod projection;
pub mod saved;
#[cfg(test)]
mod toy;
pub mod window;

pub use cluster::{ClusterId, Observation, Reading, Resource, Resources};
pub use engine::{Action, Engine, Event, HaltReason, Phase, Tick};
pub use gate::{Breach, SloGates};
pub use plan::{
    BakePolicy, DEFAULT_MAX_READING_GAP_SECONDS, DeclaredCache, Plan, PlanError, Policy, Step,
    Target, Wave, WaveStyle, plan,
};
pub use projection::{Fit, Projection, ProjectionPolicy};
pub use saved::{ResumeError, SavedEngine};
pub use window::Window;
