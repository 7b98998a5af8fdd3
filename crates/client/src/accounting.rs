//! Cost accounting: every request that reaches the wire is counted by verb, resource and status
//! code, with its response bytes (watch streams included, as they arrive), its latency to the
//! response headers and the number in flight. [`Metrics`] also holds the other layers' metrics,
//! so that everything the client exports is defined here, under `fleetwatch_client_`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::body::{Meter, Metered};
use crate::classify::RequestInfo;

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
pub struct InformerLabels {
    pub resource: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the client exports. Cheap to clone (the metrics are shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub requests: Family<CodeLabels, Counter>,
    pub response_bytes: Family<RequestLabels, Counter>,
    pub duration: HistogramFamily<RequestLabels>,
    pub in_flight: Family<RequestLabels, Gauge>,
    pub ceiling_hits: Family<CeilingLabels, Counter>,
    pub retries: Family<RetryLabels, Counter>,
    pub retry_delay: HistogramFamily<RetryLabels>,
    pub concurrency_limit: Gauge<f64, AtomicU64>,
    pub informer_lists: Family<InformerLabels, Counter>,
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
            concurrency_limit: Gauge::default(),
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
            "The adaptive concurrency limit for non-watch requests",
            self.concurrency_limit.clone(),
        );
        r.register(
            "informer_lists",
            "Initial lists and relists made by informers",
            self.informer_lists.clone(),
        );
        r.register(
            "informer_objects",
            "Objects held in informer stores",
            self.informer_objects.clone(),
        );
    }
}

/// Counts what reaches the wire.
#[derive(Debug, Clone)]
pub struct AccountingLayer {
    metrics: Metrics,
}

impl AccountingLayer {
    pub fn new(metrics: Metrics) -> Self {
        AccountingLayer { metrics }
    }
}

impl<S> Layer<S> for AccountingLayer {
    type Service = Accounting<S>;
    fn layer(&self, inner: S) -> Accounting<S> {
        Accounting {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Accounting<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqB, B> Service<Request<ReqB>> for Accounting<S>
where
    S: Service<Request<ReqB>, Response = Response<B>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    ReqB: Send + 'static,
{
    type Response = Response<Metered<B, Meter>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let inner = self.inner.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let (verb, resource) = request
                .extensions()
                .get::<RequestInfo>()
                .map_or(("unknown", String::new()), |i| {
                    (i.verb, i.resource.to_string())
                });
            let labels = RequestLabels { verb, resource };
            let in_flight = metrics.in_flight.get_or_create_owned(&labels);
            in_flight.inc();
            let started = Instant::now();
            let result = inner.oneshot(request).await;
            in_flight.dec();
            metrics
                .duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            let code = result
                .as_ref()
                .map_or_else(|_| "error".to_owned(), |r| r.status().as_u16().to_string());
            metrics
                .requests
                .get_or_create(&CodeLabels {
                    verb: labels.verb,
                    resource: labels.resource.clone(),
                    code,
                })
                .inc();
            let bytes = metrics.response_bytes.get_or_create_owned(&labels);
            let on_data: Meter = Box::new(move |n| {
                bytes.inc_by(n as u64);
            });
            result.map(|response| response.map(|body| Metered::new(body, on_data)))
        })
    }
}
