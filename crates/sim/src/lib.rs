//! Deterministic discrete-event simulator of Kubernetes fleets and the 2024-12-11 incident replay.
//!
//! Owns: the fleet model (API servers with APF seats and queues, CPU, memory, OOM and restart,
//! etcd; per-node agents of the load lab's client patterns; node-local DNS caches and the data
//! plane's dependency on the control plane; alerting; customer impact), the scenarios, and the
//! run summaries and reports. It drives the rollout engine of `fleetwatch-rollout` unchanged,
//! through that crate's sans-I/O boundary: it hands the engine every cluster's reading and
//! carries out the actions the engine returns.
//! Must not: do I/O, read clocks or use unseeded randomness — the CLI is the shell that reads
//! files, shows progress and writes reports. Must not allocate per node: nodes are counts by
//! state, so memory does not depend on the fleet's node count.
//!
//! Start with [`replay`] (the built-in scenario) or [`RunSpec`] + [`run`] (any fleet, change and
//! policy; [`input`] parses the YAML files of `fleetwatch sim`). Costs come from a versioned
//! [`Calibration`].
//!
//! Model modules, bottom up: [`apiserver`] (one cluster's replicas), [`dns`], [`agents`] (what
//! each client pattern asks of the API server), [`cluster`] (the three together), [`run`] (the
//! fleet, the rollout engine, the responders).

pub mod agents;
pub mod apiserver;
pub mod calibration;
pub mod cluster;
pub mod dns;
pub mod error;
pub mod fleet;
pub mod input;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;

pub use calibration::Calibration;
pub use error::{Result, SimError};
pub use fleet::{Change, ClusterSpec, DnsSpec, Fleet, Pattern, Timing};
pub use report::{JsonReport, html_report, text_report};
pub use run::{RunResult, RunSpec, RunSummary, Simulation, run};
pub use scenario::{Guard, Protections};

/// Six virtual hours: the default horizon of a run.
pub const DEFAULT_HORIZON_SECONDS: f64 = 6.0 * 3600.0;
/// One-second steps by default.
pub const DEFAULT_STEP_SECONDS: f64 = 1.0;

/// The run spec of the built-in 2024-12-11 scenario with `production` production clusters
/// (the full scenario has [`scenario::DEC_2024_PRODUCTION_CLUSTERS`]).
#[must_use]
pub fn replay(guard: Guard, seed: u64, production: usize, calibration: Calibration) -> RunSpec {
    let fleet = scenario::dec_2024_fleet(seed, production);
    let (policy, protections) = scenario::guard_policy(guard, &fleet.dns);
    RunSpec {
        guard,
        fleet,
        change: scenario::dec_2024_change(),
        policy,
        protections,
        responders: run::Responders::default(),
        calibration,
        seed,
        horizon_seconds: DEFAULT_HORIZON_SECONDS,
        step_seconds: DEFAULT_STEP_SECONDS,
    }
}
