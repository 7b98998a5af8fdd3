//! The one place the client's tower stack is assembled. Read top to bottom, this is the path of
//! every request from a component to the API server:
//!
//! 1. [`UserAgentLayer`]: `User-Agent: fleetwatch-<component>/<version>`.
//! 2. [`ClassifyLayer`]: verb, resource, watch or not, and the caller's priority.
//! 3. [`RetryLayer`]: 429/503 are retried after `Retry-After` or the jittered backoff. It sits
//!    above the limits so that every retry pays for a token, a slot and ceiling budget again,
//!    and so that no slot is held while sleeping.
//! 4. [`TokenBucketLayer`]: QPS and burst.
//! 5. [`ConcurrencyLayer`]: the adaptive (AIMD) limit on non-watch requests in flight.
//! 6. [`CeilingLayer`]: the hard per-process ceiling, last before the wire, so nothing reaches the
//!    server without passing it, whatever the layers above did.
//! 7. [`AccountingLayer`]: counts exactly what is sent and received.
//!
//! Below is kube's own HTTP stack (base URI, authentication, TLS, connection pool), with its
//! built-in retry turned off.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use kube::client::Body;
use tower::{BoxError, Service, ServiceBuilder};

use crate::accounting::{AccountingLayer, Metrics};
use crate::body::{Meter, Metered};
use crate::ceiling::{Ceiling, CeilingLayer, Priority};
use crate::classify::ClassifyLayer;
use crate::concurrency::{Aimd, ConcurrencyLayer};
use crate::error::{Error, Result};
use crate::retry::RetryLayer;
use crate::settings::Settings;
use crate::token_bucket::TokenBucketLayer;
use crate::user_agent::UserAgentLayer;

/// A response body as the stack returns it: metered for the ceiling and for accounting.
pub type ResponseBody<B> = Metered<Metered<B, Meter>, Meter>;
/// The stack's response future.
pub type ResponseFuture<B> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, BoxError>> + Send>>;

/// The state the layers share across every priority and every clone of the client: one token
/// bucket, one concurrency limit, one ceiling and one set of metrics per process.
#[derive(Debug, Clone)]
pub struct Stack {
    user_agent: UserAgentLayer,
    retry: RetryLayer,
    token_bucket: TokenBucketLayer,
    concurrency: ConcurrencyLayer,
    ceiling: Arc<Ceiling>,
    metrics: Metrics,
}

impl Stack {
    /// The shared state for `settings` (validated and clamped here).
    pub fn new(settings: &Settings) -> Result<Self> {
        let settings = settings.validated()?;
        let metrics = Metrics::default();
        let user_agent = HeaderValue::from_str(&settings.user_agent())
            .map_err(|e| Error::Settings(format!("User-Agent: {e}")))?;
        Ok(Stack {
            user_agent: UserAgentLayer::new(user_agent),
            retry: RetryLayer::new(settings.backoff, metrics.clone()),
            token_bucket: TokenBucketLayer::new(settings.qps, settings.burst),
            concurrency: ConcurrencyLayer::new(Arc::new(Aimd::new(
                settings.concurrency,
                metrics.clone(),
            ))),
            ceiling: Arc::new(Ceiling::new(
                settings.requests_per_minute,
                settings.response_bytes_per_minute,
                settings.ceiling_wait,
                metrics.clone(),
            )),
            metrics,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn ceiling(&self) -> &Ceiling {
        &self.ceiling
    }

    /// The stack for requests of `priority`, around `wire` (kube's HTTP service, or anything
    /// else that answers requests, for benchmarks).
    pub fn service<S, B>(
        &self,
        priority: Priority,
        wire: S,
    ) -> impl Service<
        Request<Body>,
        Response = Response<ResponseBody<B>>,
        Error = BoxError,
        Future = ResponseFuture<B>,
    > + Clone
    + Send
    + use<S, B>
    where
        S: Service<Request<Body>, Response = Response<B>, Error = BoxError>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        B: http_body::Body<Data = Bytes> + Send + 'static,
    {
        ServiceBuilder::new()
            .layer(self.user_agent.clone())
            .layer(ClassifyLayer::new(priority))
            .layer(self.retry.clone())
            .layer(self.token_bucket.clone())
            .layer(self.concurrency.clone())
            .layer(CeilingLayer::new(self.ceiling.clone()))
            .layer(AccountingLayer::new(self.metrics.clone()))
            .service(wire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use http::StatusCode;
    use prometheus_client::registry::Registry;
    use tokio::time::Instant;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_request_is_identified_retried_after_a_429_and_counted() {
        let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let wire = {
            let seen = seen.clone();
            tower::service_fn(move |request: Request<Body>| {
                let seen = seen.clone();
                async move {
                    let agent = request.headers()[http::header::USER_AGENT]
                        .to_str()
                        .unwrap_or_default()
                        .to_owned();
                    let first = {
                        let mut seen = seen.lock().expect("lock");
                        seen.push((Instant::now(), agent));
                        seen.len() == 1
                    };
                    let response = if first {
                        Response::builder()
                            .status(StatusCode::TOO_MANY_REQUESTS)
                            .header(http::header::RETRY_AFTER, "2")
                            .body(String::new())
                    } else {
                        Response::builder().body(String::from("{}"))
                    };
                    Ok::<_, BoxError>(response.expect("response"))
                }
            })
        };
        let stack = Stack::new(&Settings::new("unit")).expect("stack");
        let request = Request::get("/api/v1/namespaces/a/pods/p")
            .body(Body::from(Vec::new()))
            .expect("request");
        let response = stack
            .service(Priority::Normal, wire)
            .oneshot(request)
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);

        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 2, "one retry");
        let agent = format!("fleetwatch-unit/{}", env!("CARGO_PKG_VERSION"));
        assert!(seen.iter().all(|(_, a)| *a == agent), "{seen:?}");
        assert!(
            seen[1].0 - seen[0].0 >= Duration::from_secs(2),
            "Retry-After ignored"
        );

        let mut registry = Registry::default();
        stack.metrics().register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for code in ["429", "200"] {
            let line = format!(
                "fleetwatch_client_requests_total{{verb=\"get\",resource=\"pods\",code=\"{code}\"}} 1"
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }
}
