//! The sink's own series, `fleetwatch_remote_write_*`, and the [`Stats`] read from them.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::queue::Counted;

/// How one request attempt ended: the `outcome` of `fleetwatch_remote_write_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// 2xx.
    Success,
    /// 4xx other than 429 (and 1xx/3xx): not retried.
    Rejected,
    /// 5xx: retried.
    ServerError,
    /// 429: retried, after `Retry-After` if given.
    Throttled,
    /// No answer within the timeout: retried.
    Timeout,
    /// Connecting or the connection failed: retried.
    ConnectionError,
    /// Abandoned at the shutdown deadline.
    Aborted,
}

impl RequestOutcome {
    /// Every outcome, in label order.
    pub const ALL: [RequestOutcome; 7] = [
        RequestOutcome::Success,
        RequestOutcome::Rejected,
        RequestOutcome::ServerError,
        RequestOutcome::Throttled,
        RequestOutcome::Timeout,
        RequestOutcome::ConnectionError,
        RequestOutcome::Aborted,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Success => "success",
            RequestOutcome::Rejected => "rejected",
            RequestOutcome::ServerError => "server_error",
            RequestOutcome::Throttled => "throttled",
            RequestOutcome::Timeout => "timeout",
            RequestOutcome::ConnectionError => "connection_error",
            RequestOutcome::Aborted => "aborted",
        }
    }
}

type Labels = Vec<(String, String)>;

fn outcome(value: &str) -> Labels {
    vec![("outcome".to_owned(), value.to_owned())]
}

/// The sink's metrics, registered once; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    sent: Counter,
    dropped: Counter,
    rejected: Counter,
    queue: Gauge,
    requests: Family<Labels, Counter>,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let samples = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        for outcome_label in RequestOutcome::ALL {
            // Every outcome from the start, at zero: rate() sees the first increase.
            let _ = requests.get_or_create(&outcome(outcome_label.as_str()));
        }
        // One statement each: `get_or_create` holds the family's lock until its statement ends.
        let sent = samples.get_or_create(&outcome("sent")).clone();
        let dropped = samples.get_or_create(&outcome("dropped")).clone();
        let rejected = samples.get_or_create(&outcome("rejected")).clone();
        let metrics = Metrics {
            sent,
            dropped,
            rejected,
            queue: Gauge::default(),
            requests,
            // 5 ms … ~41 s: past the default 10 s timeout.
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            last_success: Gauge::default(),
        };
        registry.register(
            "fleetwatch_remote_write_samples",
            "Samples leaving the remote-write queue, by outcome: sent (accepted by the receiver), \
             dropped (queue full, or left at shutdown) or rejected (refused with a 4xx)",
            samples,
        );
        registry.register(
            "fleetwatch_remote_write_queue_samples",
            "Samples in the remote-write queue, those being sent included",
            metrics.queue.clone(),
        );
        registry.register(
            "fleetwatch_remote_write_requests",
            "Remote-write request attempts, by outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "fleetwatch_remote_write_request_duration_seconds",
            "Duration of remote-write request attempts, whatever their outcome",
            metrics.duration.clone(),
        );
        registry.register(
            "fleetwatch_remote_write_last_success_timestamp_seconds",
            "When a remote-write request last succeeded (Unix time; 0 if never)",
            metrics.last_success.clone(),
        );
        metrics
    }

    /// Adds what the queue counted and sets the queue gauge.
    pub fn count(&self, counted: Counted, queued: usize) {
        self.sent.inc_by(counted.sent);
        self.dropped.inc_by(counted.dropped);
        self.rejected.inc_by(counted.rejected);
        self.queue.set(i64::try_from(queued).unwrap_or(i64::MAX));
    }

    pub fn request(&self, outcome_value: RequestOutcome, seconds: f64) {
        self.requests
            .get_or_create(&outcome(outcome_value.as_str()))
            .inc();
        self.duration.observe(seconds);
        if outcome_value == RequestOutcome::Success {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_success.set(now);
        }
    }

    pub fn stats(&self, pushed: u64, queued: usize) -> Stats {
        let requests = |o: RequestOutcome| self.requests.get_or_create(&outcome(o.as_str())).get();
        Stats {
            pushed,
            sent: self.sent.get(),
            dropped: self.dropped.get(),
            rejected: self.rejected.get(),
            queued: queued as u64,
            requests: RequestCounts {
                success: requests(RequestOutcome::Success),
                rejected: requests(RequestOutcome::Rejected),
                server_error: requests(RequestOutcome::ServerError),
                throttled: requests(RequestOutcome::Throttled),
                timeout: requests(RequestOutcome::Timeout),
                connection_error: requests(RequestOutcome::ConnectionError),
                aborted: requests(RequestOutcome::Aborted),
            },
        }
    }
}

/// A snapshot of the sink's counters (the same numbers as its metrics).
///
/// `pushed = sent + dropped + rejected + queued`, except while a request is under way whose
/// samples partly overflowed out of the queue: those are settled (as sent, or dropped) when it
/// ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples pushed (series without samples not counted).
    pub pushed: u64,
    /// Samples the receiver accepted.
    pub sent: u64,
    /// Samples dropped: the oldest when the queue was full, what was left at shutdown, and
    /// what was pushed after it.
    pub dropped: u64,
    /// Samples in requests the receiver refused with a 4xx.
    pub rejected: u64,
    /// Samples queued now, those being sent included.
    pub queued: u64,
    /// Request attempts by outcome.
    pub requests: RequestCounts,
}

/// Request attempts by outcome (see [`RequestOutcome`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// 2xx.
    pub success: u64,
    /// 4xx other than 429: not retried.
    pub rejected: u64,
    /// 5xx.
    pub server_error: u64,
    /// 429.
    pub throttled: u64,
    /// No answer within the timeout.
    pub timeout: u64,
    /// Connecting or the connection failed.
    pub connection_error: u64,
    /// Abandoned at the shutdown deadline.
    pub aborted: u64,
}
