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
    + 'static
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
