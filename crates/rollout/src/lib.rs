//! Guarded phased rollout policy engine: wave planner, control-plane SLO gates, load projection.
//!
//! Owns: the decisions of a rollout. Must not: do I/O — a backend trait gives it the clusters,
//! so the simulator and the real executor use it unchanged.
//!
//! Status: being built (see the simulator issue).
