//! Cost accounting: every request that reaches the wire is counted by verb, resource and status
//! code, with its response bytes (watch streams included, as they arrive), its latency to the
//! response headers and the number in flight, in the process's [`Metrics`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::body::{Meter, Metered};
use crate::metrics::{CodeLabels, Metrics, RequestLabels};
use crate::request_info::RequestInfo;

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
