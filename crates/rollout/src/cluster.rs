//! What every other module says about a cluster: which one it is, what its control plane shows,
//! and the resources a change can exhaust there.
//!
//! A leaf: it imports nothing from the crate, so the planner, the gates, the window, the
//! projection and the engine can all depend on it without depending on one another.

use serde::{Deserialize, Serialize};

/// Index of a cluster in the target list handed to [`crate::plan()`] and [`crate::Engine::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub usize);

/// An API server resource a change can exhaust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// CPU of the whole control plane, in cores.
    Cpu,
    /// Memory of the whole control plane, in bytes.
    Memory,
    /// APF concurrency seats of the priority level the change runs in once its quarantine lane
    /// is gone, summed over the replicas.
    Seats,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Seats];

    /// The unit an amount of this resource is given in.
    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Cpu => "cores",
            Resource::Memory => "bytes",
            Resource::Seats => "seats",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Cpu => "API server CPU",
            Resource::Memory => "API server memory",
            Resource::Seats => "APF seats",
        })
    }
}

/// An amount of each [`Resource`]: cores, bytes and seats — or, where a field says so, each of
/// them integrated over time (core-seconds, byte-seconds, seat-seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu_cores: f64,
    pub memory_bytes: f64,
    pub seats: f64,
}

impl Resources {
    #[must_use]
    pub fn get(&self, resource: Resource) -> f64 {
        match resource {
            Resource::Cpu => self.cpu_cores,
            Resource::Memory => self.memory_bytes,
            Resource::Seats => self.seats,
        }
    }

    /// `f` applied to each resource's amount (and `other`'s).
    #[must_use]
    pub fn zip(&self, other: &Resources, f: impl Fn(f64, f64) -> f64) -> Resources {
        Resources {
            cpu_cores: f(self.cpu_cores, other.cpu_cores),
            memory_bytes: f(self.memory_bytes, other.memory_bytes),
            seats: f(self.seats, other.seats),
        }
    }

    /// Whether every amount is a finite number (not NaN, not infinite).
    #[must_use]
    pub fn is_finite(&self) -> bool {
        Resource::ALL.iter().all(|&r| self.get(r).is_finite())
    }
}

/// A cluster's control-plane signals as the caller read them now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub get_p99_seconds: f64,
    pub list_p99_seconds: f64,
    /// Fraction of API requests rejected with 429.
    pub ratio_429: f64,
    /// API server restarts since the cluster was first observed (monotonic).
    pub restarts: u32,
    /// Nodes currently running the change.
    pub admitted_nodes: f64,
    /// Fraction of the cluster's nodes whose services are failing.
    pub failing_node_fraction: f64,
    /// What the change's requests (attributed by its flow schema) asked of the API servers, each
    /// resource integrated over time since an origin the caller keeps: core-seconds, byte-seconds
    /// of memory held while in flight, seat-seconds of APF seats. Requests APF rejected or queued
    /// count at their estimated cost (APF's estimated seats, the cost of the flow's served
    /// requests): what the change asked, not what its bounded lane let it do. Monotonic; a total
    /// that goes down is read as a counter reset.
    pub change_asked_total: Resources,
    /// What everything but the change uses now: API server cores and memory, and seats in the
    /// priority level the change runs in once the rollout is over.
    pub other_in_use: Resources,
}

/// What the caller could read of a cluster at a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    Observed(Observation),
    /// The caller could not read the cluster's signals at all (its network, its credentials).
    /// An API server that answers slowly or with errors is an [`Reading::Observed`] whose
    /// latency and rejections say so.
    Unreachable,
}

impl Reading {
    #[must_use]
    pub fn observation(&self) -> Option<&Observation> {
        match self {
            Reading::Observed(obs) => Some(obs),
            Reading::Unreachable => None,
        }
    }
}
