//! Retry layer for requests the server certainly did not process: 429 Too Many Requests and 503
//! Service Unavailable (the server is overloaded), and connections that could not be made (the
//! request never left). A `Retry-After` (in seconds) is honoured as given (plus up to 10%
//! jitter, never less); without one the wait is the shared jittered exponential backoff, which
//! grows with consecutive failures anywhere in the process and resets after two quiet minutes.
//! Other errors go back to the caller: informers back off on their own, and a write that failed
//! in transit must not be sent twice blindly.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use tower::util::rng::{HasherRng, Rng};
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::accounting::{Metrics, RetryLabels};
use crate::backoff::{Backoff, BackoffSettings};

/// Retries per request before the 429/503 is handed to the caller.
pub const MAX_RETRIES: u32 = 10;
/// Of those, retries after a failed connection: enough to outlast a restart or a hung server
/// (each attempt may take kube's 30 s connect timeout), few enough that a wrong address is
/// reported within seconds.
pub const MAX_CONNECT_RETRIES: u32 = 3;
/// A `Retry-After` longer than this is capped (a misbehaving server must not park us for days).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct RetryLayer {
    backoff: Arc<Mutex<Backoff>>,
    metrics: Metrics,
}

impl RetryLayer {
    pub fn new(settings: BackoffSettings, metrics: Metrics) -> Self {
        RetryLayer {
            backoff: Arc::new(Mutex::new(Backoff::new(settings))),
            metrics,
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    layer: RetryLayer,
}

impl RetryLayer {
    /// How long to wait before retrying `response`, or `None` if it is not to be retried.
    fn delay<B>(&self, response: &Response<B>) -> Option<Duration> {
        let status = response.status();
        if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        // Every overload answer counts towards the shared backoff, told when to retry or not.
        let backoff = self.next_backoff();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
        Some(match retry_after {
            Some(after) => self.count(
                "retry_after",
                after.mul_f64(1.0 + 0.1 * HasherRng::new().next_f64()),
            ),
            None => self.count("backoff", backoff),
        })
    }

    /// The shared backoff's next delay, counted as a retry for `reason`.
    fn backoff(&self, reason: &'static str) -> Duration {
        let delay = self.next_backoff();
        self.count(reason, delay)
    }

    fn next_backoff(&self) -> Duration {
        self.backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_delay()
    }

    fn count(&self, reason: &'static str, delay: Duration) -> Duration {
        let labels = RetryLabels { reason };
        self.metrics.retries.get_or_create(&labels).inc();
        self.metrics
            .retry_delay
            .get_or_create(&labels)
            .observe(delay.as_secs_f64());
        delay
    }
}

impl<S, B> Service<Request<Body>> for Retry<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let layer = self.layer.clone();
        Box::pin(async move {
            let mut request = request;
            let (mut retries, mut connect_retries) = (0, 0);
            loop {
                // A streaming request body cannot be replayed: such a request is sent once.
                let replay = (retries < MAX_RETRIES).then(|| copy(&request)).flatten();
                let result = inner.clone().oneshot(request).await;
                let Some(next) = replay else {
                    return result;
                };
                let delay = match &result {
                    Ok(response) => layer.delay(response),
                    Err(error)
                        if connect_retries < MAX_CONNECT_RETRIES
                            && never_connected(error.as_ref()) =>
                    {
                        connect_retries += 1;
                        Some(layer.backoff("connect"))
                    }
                    Err(_) => None,
                };
                let Some(delay) = delay else {
                    return result;
                };
                drop(result);
                tokio::time::sleep(delay).await;
                request = next;
                retries += 1;
            }
        })
    }
}

/// Whether the connection for the request could not be made (refused, or timed out connecting):
/// the request was never sent, so sending it again is safe whatever its method. A TLS failure
/// (an I/O error of kind `InvalidData` below the connect error) is a configuration problem that
/// waiting will not fix, and is not retried.
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut connect = false;
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect = http.is_connect();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            return false;
        }
        current = e.source();
    }
    connect
}

fn copy(request: &Request<Body>) -> Option<Request<Body>> {
    let mut copy = Request::new(request.body().try_clone()?);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}
