//! The process's budget: the hard [`Ceiling`] and the [`Metrics`], shared by every
//! [`Client`](crate::Client) in the process.
//!
//! What is process-wide and what is per connection:
//!
//! - **Process-wide** (a [`Budget`]): the hard ceiling on requests and response bytes per minute,
//!   because it is a promise about what one process may cost the control plane, however many
//!   clients it makes and however many API server replicas they talk to; and the metrics, one
//!   set of `fleetwatch_client_*` families, so that two clients never register clashing ones.
//! - **Per connection** (each [`Client::connect`](crate::Client::connect)): the token bucket, the
//!   adaptive concurrency limit and the retry backoff. They shape the load on one API server and
//!   follow its congestion (its latency, its 429s): replicas have their own APF queues, and one
//!   overloaded replica must not throttle the requests to a healthy one. The ceiling bounds
//!   their sum.
//!
//! The process's budget is created once, by the first client that connects, with the ceiling its
//! settings ask for. A later client whose settings ask for a different ceiling gets
//! [`Error::Settings`] rather than a ceiling it did not ask for: taking the lower one would let
//! whichever client connected last lower everyone's, and ignoring it would hand a client more
//! than it was configured for.

use std::sync::{Arc, OnceLock};

use crate::ceiling::{Ceiling, Limits};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::settings::Settings;

/// A ceiling and a metric set: the process's, or (in the load lab only) an emulated process's.
/// Cheap to clone; clones share both.
#[derive(Debug, Clone)]
pub struct Budget {
    ceiling: Arc<Ceiling>,
    metrics: Metrics,
}

static PROCESS: OnceLock<Budget> = OnceLock::new();

impl Budget {
    /// The process's budget, created on first use with the ceiling `settings` ask for.
    pub(crate) fn of_process(settings: &Settings) -> Result<Budget> {
        let limits = settings.validated()?.limits();
        Ok(PROCESS.get_or_init(|| Budget::new(limits)).clone())
    }

    /// **Load lab only.** A budget of its own — its own hard ceiling and metrics — for one
    /// *emulated* process: the load lab runs thousands of emulated agents in one process, each
    /// of which would be a process of its own in a real fleet, with a ceiling of its own. Pass it
    /// to [`Client::connect_with_budget`](crate::Client::connect_with_budget).
    ///
    /// Anything else gets a second hard ceiling this way, which is exactly what the ceiling
    /// exists to prevent: components use [`Client::connect`](crate::Client::connect), which
    /// shares the process's budget.
    pub fn separate_for_emulated_process(settings: &Settings) -> Result<Budget> {
        Ok(Budget::new(settings.validated()?.limits()))
    }

    fn new(limits: Limits) -> Budget {
        let metrics = Metrics::default();
        Budget {
            ceiling: Arc::new(Ceiling::new(limits, metrics.clone())),
            metrics,
        }
    }

    /// `Ok` if validated `settings` ask for this budget's ceiling.
    pub(crate) fn admits(&self, settings: &Settings) -> Result<()> {
        let (asked, ceiling) = (settings.limits(), self.ceiling.limits());
        if asked == ceiling {
            return Ok(());
        }
        Err(Error::Settings(format!(
            "requests_per_minute = {}, response_bytes_per_minute = {}: this process's ceiling \
             is already {} requests and {} response bytes per minute, set by its first client; \
             the ceiling is the process's, so every client in it must ask for the same",
            asked.requests_per_minute,
            asked.response_bytes_per_minute,
            ceiling.requests_per_minute,
            ceiling.response_bytes_per_minute,
        )))
    }

    pub fn ceiling(&self) -> &Arc<Ceiling> {
        &self.ceiling
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_budget_is_one_and_refuses_a_different_ceiling() {
        let settings = Settings::new("unit");
        let first = Budget::of_process(&settings).expect("the process budget");
        let second = Budget::of_process(&settings).expect("the same budget");
        assert!(Arc::ptr_eq(first.ceiling(), second.ceiling()));
        let mut asks_for_more = settings.clone();
        asks_for_more.requests_per_minute = u32::MAX;
        let applied = asks_for_more.validated().expect("valid");
        assert!(
            first.admits(&applied).is_ok(),
            "more than the hard maximum is the maximum"
        );

        let mut lower = settings;
        lower.requests_per_minute = 600;
        let error = first
            .admits(&lower.validated().expect("valid"))
            .expect_err("a different ceiling");
        let text = error.to_string();
        assert!(
            text.contains("requests_per_minute = 600") && text.contains("already 1200"),
            "{text}"
        );
        let separate = Budget::separate_for_emulated_process(&lower).expect("a lab budget");
        assert!(!Arc::ptr_eq(first.ceiling(), separate.ceiling()));
        assert_eq!(separate.ceiling().limits().requests_per_minute, 600);
    }
}
