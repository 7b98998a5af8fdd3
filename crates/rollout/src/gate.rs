//! Absolute control-plane SLO gates, evaluated during bake.
//!
//! Absolute, not canary-vs-baseline: the API server is shared, so a change that overloads it
//! degrades the canary's and the baseline's requests alike and a comparison sees nothing.

use serde::{Deserialize, Serialize};

use crate::cluster::Observation;

/// Thresholds a cluster's control plane must stay within while a wave bakes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloGates {
    /// Single-object (GET) request latency p99, seconds (SIG Scalability SLO: 1 s).
    pub get_p99_seconds: f64,
    /// LIST request latency p99, seconds (SIG Scalability SLO for cluster-scope LIST: 30 s).
    pub list_p99_seconds: f64,
    /// Fraction of requests the API server rejected with 429 (APF shedding load).
    pub max_429_ratio: f64,
    /// API server restarts tolerated since the wave started (OOM kills, crashes).
    pub max_restarts: u32,
}

impl Default for SloGates {
    fn default() -> Self {
        Self {
            get_p99_seconds: 1.0,
            list_p99_seconds: 30.0,
            max_429_ratio: 0.01,
            max_restarts: 0,
        }
    }
}

/// Which SLO a cluster breached, with the observed and allowed values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "slo", rename_all = "kebab-case")]
pub enum Breach {
    GetP99 {
        observed_seconds: f64,
        limit_seconds: f64,
    },
    ListP99 {
        observed_seconds: f64,
        limit_seconds: f64,
    },
    Rejections {
        observed_ratio: f64,
        limit_ratio: f64,
    },
    Restarts {
        observed: u32,
        limit: u32,
    },
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Breach::GetP99 {
                observed_seconds,
                limit_seconds,
            } => {
                write!(f, "GET p99 {observed_seconds:.2}s > {limit_seconds}s")
            }
            Breach::ListP99 {
                observed_seconds,
                limit_seconds,
            } => {
                write!(f, "LIST p99 {observed_seconds:.1}s > {limit_seconds}s")
            }
            Breach::Rejections {
                observed_ratio,
                limit_ratio,
            } => {
                write!(
                    f,
                    "429 ratio {:.1}% > {:.1}%",
                    observed_ratio * 100.0,
                    limit_ratio * 100.0
                )
            }
            Breach::Restarts { observed, limit } => {
                write!(f, "{observed} API server restart(s) > {limit}")
            }
        }
    }
}

impl SloGates {
    /// The first SLO `obs` breaches, if any. `restarts` counts restarts since the wave started.
    #[must_use]
    pub fn check(&self, obs: &Observation, restarts: u32) -> Option<Breach> {
        if obs.get_p99_seconds > self.get_p99_seconds {
            return Some(Breach::GetP99 {
                observed_seconds: obs.get_p99_seconds,
                limit_seconds: self.get_p99_seconds,
            });
        }
        if obs.list_p99_seconds > self.list_p99_seconds {
            return Some(Breach::ListP99 {
                observed_seconds: obs.list_p99_seconds,
                limit_seconds: self.list_p99_seconds,
            });
        }
        if obs.ratio_429 > self.max_429_ratio {
            return Some(Breach::Rejections {
                observed_ratio: obs.ratio_429,
                limit_ratio: self.max_429_ratio,
            });
        }
        if restarts > self.max_restarts {
            return Some(Breach::Restarts {
                observed: restarts,
                limit: self.max_restarts,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slo_trips_alone() {
        let gates = SloGates::default();
        let ok = Observation::default();
        assert_eq!(gates.check(&ok, 0), None);
        let slow = Observation {
            get_p99_seconds: 1.5,
            ..ok
        };
        assert!(matches!(gates.check(&slow, 0), Some(Breach::GetP99 { .. })));
        let slow_list = Observation {
            list_p99_seconds: 31.0,
            ..ok
        };
        assert!(matches!(
            gates.check(&slow_list, 0),
            Some(Breach::ListP99 { .. })
        ));
        let shed = Observation {
            ratio_429: 0.02,
            ..ok
        };
        assert!(matches!(
            gates.check(&shed, 0),
            Some(Breach::Rejections { .. })
        ));
        assert!(matches!(gates.check(&ok, 1), Some(Breach::Restarts { .. })));
    }
}
