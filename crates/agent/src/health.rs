//! Every source's health, in one set of families keyed by `source`: whether its last poll
//! worked, its errors by reason, when it last worked, how long polls take and how many bytes it
//! read. A failing source is one rate-limited warning per minute and these series — never a
//! crash, never a log line per poll.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetwatch_telemetry::exposition::Ready;
use fleetwatch_telemetry::limited_log::LimitedLog;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The same source's warnings are logged at most this often (with how many were suppressed).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    source: &'static str,
    reason: &'static str,
}

/// The health families, registered once; [`Health::target`] hands each source its handle.
#[derive(Debug, Clone)]
pub struct Health {
    up: Family<SourceLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
    last_success: Family<SourceLabels, Gauge>,
    duration: Family<SourceLabels, Histogram>,
    read_bytes: Family<SourceLabels, Counter>,
    log: Arc<LimitedLog>,
}

impl Health {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Health {
        let health = Health {
            up: Family::default(),
            errors: Family::default(),
            last_success: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0])
            }),
            read_bytes: Family::default(),
            log: Arc::new(LimitedLog::new(LOG_EVERY)),
        };
        registry.register(
            "fleetwatch_agent_source_up",
            "Whether the source's last poll succeeded (1) or failed (0)",
            health.up.clone(),
        );
        registry.register(
            "fleetwatch_agent_source_errors",
            "Failed polls by source and reason",
            health.errors.clone(),
        );
        registry.register(
            "fleetwatch_agent_source_last_success_timestamp_seconds",
            "When the source's last successful poll ended (Unix time)",
            health.last_success.clone(),
        );
        registry.register(
            "fleetwatch_agent_source_poll_duration_seconds",
            "How long each poll took, successful or not",
            health.duration.clone(),
        );
        registry.register(
            "fleetwatch_agent_source_read_bytes",
            "Bytes the source read (response bodies, files)",
            health.read_bytes.clone(),
        );
        health
    }

    /// The handle a source reports through, under `source` (e.g. `kubelet_resource`). `ready`
    /// is set once the first poll has ended, whatever its outcome: `/readyz` says the agent has
    /// tried every source, and `up` says which work.
    pub fn target(&self, source: &'static str, ready: Ready) -> Target {
        let labels = SourceLabels { source };
        // Present from the start, so that "never succeeded" is a 0, not a missing series.
        self.up.get_or_create(&labels).set(0);
        let _ = self.read_bytes.get_or_create(&labels);
        Target {
            health: self.clone(),
            source,
            ready,
        }
    }
}

/// One source's health handle.
#[derive(Debug, Clone)]
pub struct Target {
    health: Health,
    source: &'static str,
    ready: Ready,
}

impl Target {
    /// The source's name in the series.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// A poll succeeded after `took`.
    pub fn succeeded(&self, took: Duration) {
        let labels = self.labels();
        self.health.up.get_or_create(&labels).set(1);
        self.health
            .last_success
            .get_or_create(&labels)
            .set(i64::try_from(unix_seconds()).unwrap_or(i64::MAX));
        self.ended(took);
    }

    /// A poll failed after `took`: `reason` is a short fixed word for the series (`timeout`,
    /// `status`, `parse`, …), `message` the rate-limited warning (it must hold no secret).
    pub fn failed(&self, reason: &'static str, took: Duration, message: impl Display) {
        self.health.up.get_or_create(&self.labels()).set(0);
        self.health
            .errors
            .get_or_create(&ErrorLabels {
                source: self.source,
                reason,
            })
            .inc();
        self.health.log.warn(self.source, message);
        self.ended(took);
    }

    /// Counts `bytes` read.
    pub fn read(&self, bytes: u64) {
        self.health
            .read_bytes
            .get_or_create(&self.labels())
            .inc_by(bytes);
    }

    fn ended(&self, took: Duration) {
        self.health
            .duration
            .get_or_create(&self.labels())
            .observe(took.as_secs_f64());
        self.ready.set(true);
    }

    fn labels(&self) -> SourceLabels {
        SourceLabels {
            source: self.source,
        }
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
