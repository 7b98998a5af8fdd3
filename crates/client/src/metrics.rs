//! Every metric the client exports, under `fleetwatch_client_`, in one place. One [`Metrics`] per
//! process (it belongs to the process's [`Budget`](crate::Budget)), so that two clients in a
//! process add to the same families instead of registering clashing ones; what is per API server
//! connection carries a `server` label.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: &'static str,
    pub resource: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub verb: &'static str,
    pub resource: String,
    /// HTTP status code, or `error` when no response came back.
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CeilingLabels {
    pub priority: &'static str,
    /// `wait` (delayed until the ceiling allowed it) or `shed` (refused).
    pub action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// `retry_after` (the server said when), `backoff` (a 429/503 without `Retry-After`) or
    /// `connect` (no connection could be made).
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    /// The API server's URL: token bucket and concurrency limit are per connection.
    pub server: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InformerLabels {
    pub resource: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabels {
    pub resource: String,
    /// `initial`, or why the informer listed again: `gone` (410), `list_incomplete` (the list
    /// before failed or ended early), `other`.
    pub reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the client exports. Cheap to clone (clones share the metrics).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub requests: Family<CodeLabels, Counter>,
    pub response_bytes: Family<RequestLabels, Counter>,
    pub duration: HistogramFamily<RequestLabels>,
    pub in_flight: Family<RequestLabels, Gauge>,
    pub ceiling_hits: Family<CeilingLabels, Counter>,
    pub retries: Family<RetryLabels, Counter>,
    pub retry_delay: HistogramFamily<RetryLabels>,
    pub concurrency_limit: Family<ServerLabels, Gauge<f64, AtomicU64>>,
    pub informer_lists: Family<ListLabels, Counter>,
    pub informer_objects: Family<InformerLabels, Gauge<i64, AtomicI64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            response_bytes: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            in_flight: Family::default(),
            ceiling_hits: Family::default(),
            retries: Family::default(),
            retry_delay: Family::new_with_constructor(|| {
                Histogram::new([0.1, 0.25, 0.5, 0.99, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0])
            }),
            concurrency_limit: Family::default(),
            informer_lists: Family::default(),
            informer_objects: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under `fleetwatch_client_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("fleetwatch_client");
        r.register(
            "requests",
            "Requests sent to the API server by verb, resource and status code",
            self.requests.clone(),
        );
        r.register(
            "response_bytes",
            "Response bytes received from the API server, watch streams included",
            self.response_bytes.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Latency from sending a request to its response headers",
            self.duration.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests sent and waiting for response headers",
            self.in_flight.clone(),
        );
        r.register(
            "ceiling_hits",
            "Requests delayed or shed by the hard per-process ceiling",
            self.ceiling_hits.clone(),
        );
        r.register(
            "retries",
            "Retries after 429 or 503 responses and failed connections",
            self.retries.clone(),
        );
        r.register(
            "retry_delay_seconds",
            "How long a request waited before its retry",
            self.retry_delay.clone(),
        );
        r.register(
            "concurrency_limit",
            "The adaptive concurrency limit for non-watch requests, per API server connection",
            self.concurrency_limit.clone(),
        );
        r.register(
            "informer_lists",
            "Lists made by informers: the initial one, and relists by reason",
            self.informer_lists.clone(),
        );
        r.register(
            "informer_objects",
            "Objects held in informer stores",
            self.informer_objects.clone(),
        );
    }
}
