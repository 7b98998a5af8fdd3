//! Token-bucket layer: at most `qps` requests per second on average, `burst` at once
//! (client-go's 5/10 by default), per API server connection. Watch starts take a token too, as in
//! client-go: a relist storm made of watches is still a storm. Every priority waits here as long
//! as it takes, most urgent first (see `gate.rs`): a `Critical` request never waits
//! behind `Normal` ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::bucket::Bucket;
use crate::gate::Gate;
use crate::priority::Priority;
use crate::request_info::RequestInfo;

#[derive(Debug, Clone)]
pub struct TokenBucketLayer {
    gate: Arc<Gate>,
}

impl TokenBucketLayer {
    pub fn new(qps: f64, burst: u32) -> Self {
        TokenBucketLayer {
            gate: Arc::new(Gate::new(Bucket::new(qps, f64::from(burst)))),
        }
    }
}

impl<S> Layer<S> for TokenBucketLayer {
    type Service = TokenBucket<S>;
    fn layer(&self, inner: S) -> TokenBucket<S> {
        TokenBucket {
            inner,
            gate: self.gate.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenBucket<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B> Service<Request<B>> for TokenBucket<S>
where
    S: Service<Request<B>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let gate = self.gate.clone();
        let priority = request
            .extensions()
            .get::<RequestInfo>()
            .map_or(Priority::Normal, |i| i.priority);
        Box::pin(async move {
            gate.pass(priority).await;
            inner.oneshot(request).await
        })
    }
}
