//! Retry layer for requests the server certainly did not process: 429 Too Many Requests and 503
//! Service Unavailable (the server is overloaded), and connections that could not be made (the
//! request never left). A `Retry-After` (in seconds) is honoured as given (plus up to 10%
//! jitter, never less); without one the wait is the connection's jittered exponential backoff,
//! which grows with consecutive failures of any request on that connection and resets after two
//! quiet minutes. Like the token bucket and the concurrency limit it is per API server
//! connection: one replica's overload says nothing about another's. A TLS failure is never
//! retried: it is a configuration problem that waiting does not fix.
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

use crate::backoff::{Backoff, BackoffSettings};
use crate::failure::{self, Failure};
use crate::metrics::{Metrics, RetryLabels};

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
        // Every overload answer counts towards the connection's backoff, told when to retry or
        // not.
        let backoff = self.next_backoff();
        Some(match retry_after(response) {
            Some(after) => self.count(
                "retry_after",
                after.mul_f64(1.0 + 0.1 * HasherRng::new().next_f64()),
            ),
            None => self.count("backoff", backoff),
        })
    }

    /// The connection's backoff's next delay, counted as a retry for `reason`.
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

/// The `Retry-After` of `response` in seconds, capped at [`MAX_RETRY_AFTER`]; `None` if absent or
/// not a number of seconds (an HTTP date is not worth a clock comparison: the backoff applies).
fn retry_after<B>(response: &Response<B>) -> Option<Duration> {
    response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Whether the connection for the request could not be made (refused, or timed out connecting):
/// the request was never sent, so sending it again is safe whatever its method. A failed TLS
/// handshake is not this: see [`Failure::Tls`].
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    failure::of(error) == Failure::Connect
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::settings::MIN_BACKOFF;
    use crate::testing::{closed_port, https_wire, metrics_text, not_tls_server};

    fn layer() -> (RetryLayer, Metrics) {
        let metrics = Metrics::default();
        let settings = BackoffSettings {
            initial: MIN_BACKOFF,
            max: MIN_BACKOFF * 4,
            ..BackoffSettings::default()
        };
        (RetryLayer::new(settings, metrics.clone()), metrics)
    }

    fn response(status: u16, retry_after: Option<&str>) -> Response<()> {
        let mut response = Response::builder().status(status);
        if let Some(value) = retry_after {
            response = response.header(http::header::RETRY_AFTER, value);
        }
        response.body(()).expect("response")
    }

    fn get() -> Request<Body> {
        Request::get("/version")
            .body(Body::from(Vec::new()))
            .expect("request")
    }

    #[test]
    fn only_overload_answers_are_retried() {
        let (layer, _) = layer();
        for status in [200, 201, 400, 401, 403, 404, 409, 410, 422, 500, 502, 504] {
            assert_eq!(layer.delay(&response(status, Some("1"))), None, "{status}");
        }
        for status in [429, 503] {
            assert!(layer.delay(&response(status, None)).is_some(), "{status}");
        }
    }

    #[test]
    fn retry_after_is_honoured_in_seconds_plus_at_most_a_tenth_and_capped() {
        let (layer, metrics) = layer();
        for (header, secs) in [("3", 3), (" 7 ", 7), ("600", MAX_RETRY_AFTER.as_secs())] {
            let at_least = Duration::from_secs(secs);
            let delay = layer.delay(&response(429, Some(header))).expect("retried");
            assert!(
                at_least <= delay && delay <= at_least.mul_f64(1.1),
                "Retry-After {header:?}: waited {delay:?}"
            );
        }
        // Not a number of seconds: the backoff decides.
        for header in ["Wed, 21 Oct 2015 07:28:00 GMT", "-1", "soon", ""] {
            let delay = layer.delay(&response(503, Some(header))).expect("retried");
            assert!(
                delay <= MIN_BACKOFF * 4,
                "Retry-After {header:?}: waited {delay:?}"
            );
        }
        let text = metrics_text(&metrics);
        for (reason, n) in [("retry_after", 3), ("backoff", 4)] {
            let line = format!("fleetwatch_client_retries_total{{reason=\"{reason}\"}} {n}");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }

    #[tokio::test]
    async fn a_connection_that_could_not_be_made_is_retried_a_failed_tls_handshake_is_not() {
        let (url, accepted) = not_tls_server().await;
        let (tls, metrics) = layer();
        let result = tls.layer(https_wire(&url)).oneshot(get()).await;
        assert!(result.is_err(), "a server that does not speak TLS");
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            1,
            "the TLS failure was retried"
        );
        assert!(!metrics_text(&metrics).contains("fleetwatch_client_retries_total{"));

        let (refused, metrics) = layer();
        let url = format!("https://127.0.0.1:{}", closed_port());
        let result = refused.layer(https_wire(&url)).oneshot(get()).await;
        assert!(result.is_err(), "nothing listens");
        let line =
            format!("fleetwatch_client_retries_total{{reason=\"connect\"}} {MAX_CONNECT_RETRIES}");
        let text = metrics_text(&metrics);
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
}
