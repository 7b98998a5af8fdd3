//! The guarded rollout executor: carries the rollout engine's decisions out on real clusters.
//!
//! Owns: reading a change (a directory of manifests) and refusing one it cannot roll out safely;
//! admitting a wave (node labels `rollout.fleetwatch.dev/<change>=<wave>` and the node affinity
//! that keeps the change's DaemonSet on admitted nodes, since a DaemonSet has no partition or
//! pause of its own); the quarantine lane that routes the change's API traffic to a priority
//! level of its own; and the run's journal, written so a crash never leaves half a state.
//! Must not: decide anything about the rollout — which clusters, fractions, bakes, halts — which
//! is `fleetwatch-rollout`'s engine, shared with the simulator; nor talk to an API server but
//! through the budgeted client (`fleetwatch-client`).
//!
//! - [`change`]: the manifests, validated, in apply order, with file, line and column errors;
//! - [`admission`]: which nodes a node fraction admits (stable, so a resumed run picks the same)
//!   and the DaemonSet's admission affinity;
//! - [`quarantine`]: the change's own FlowSchema and priority level;
//! - [`cluster`]: one cluster through the budgeted client — dry run, lane, admission, rollback;
//! - [`fleet`]: the fleet file (the simulator's format, plus how to reach each cluster);
//! - [`journal`]: atomic, durable writes of the run's state.
//!
//! `cluster` uses `admission`, `change` and `quarantine`; `quarantine` and `fleet` take a type
//! each from `change`; the rest are leaves. Still to come (issue 13): the loop that carries the
//! engine's actions out and observes the clusters, and the `fleetwatch rollout` commands.

pub mod admission;
pub mod change;
pub mod cluster;
pub mod fleet;
pub mod journal;
pub mod quarantine;
