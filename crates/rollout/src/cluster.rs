//! What every other module says about a cluster: which one it is and what its control plane shows.
//!
//! A leaf: it imports nothing from the crate, so the planner, the gates, the projection and the
//! engine can all depend on it without depending on one another.

use serde::{Deserialize, Serialize};

/// Index of a cluster in the target list handed to [`crate::plan()`] and [`crate::Engine::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub usize);

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
