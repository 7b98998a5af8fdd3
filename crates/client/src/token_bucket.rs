//! Token-bucket layer: at most `qps` requests per second on average, `burst` at once
//! (client-go's 5/10 by default). Watch starts take a token too, as in client-go: a relist storm
//! made of watches is still a storm.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::bucket::Bucket;

#[derive(Debug, Clone)]
pub struct TokenBucketLayer {
    bucket: Arc<Bucket>,
}

impl TokenBucketLayer {
    pub fn new(qps: f64, burst: u32) -> Self {
        TokenBucketLayer {
            bucket: Arc::new(Bucket::new(qps, f64::from(burst))),
        }
    }
}

impl<S> Layer<S> for TokenBucketLayer {
    type Service = TokenBucket<S>;
    fn layer(&self, inner: S) -> TokenBucket<S> {
        TokenBucket {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenBucket<S> {
    inner: S,
    bucket: Arc<Bucket>,
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
        // Reserve now, in call order, so waiters are served first come first served.
        let wait = self
            .bucket
            .reserve(1.0, Duration::MAX)
            .unwrap_or(Duration::ZERO);
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            inner.oneshot(request).await
        })
    }
}
