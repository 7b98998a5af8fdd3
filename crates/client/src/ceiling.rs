//! The hard ceiling: a per-process cap on requests per minute and response bytes per minute that
//! no setting lifts (settings can only lower it). There is one [`Ceiling`] per process, in the
//! process's [`Budget`](crate::Budget), shared by every client in it.
//!
//! At the ceiling, a request waits or is shed by its [`Priority`]: `Critical` waits as long as it
//! takes, `Normal` up to the client's [`Settings::ceiling_wait`](crate::Settings::ceiling_wait),
//! `Background` not at all. Waiting requests are served most urgent first (see
//! `gate.rs`), so a `Critical` request never waits behind `Normal` ones. The component
//! is told through [`Ceiling::hits`] so it can shed its own work; a warning is logged at most once
//! a minute; `fleetwatch_client_ceiling_hits_total` counts every hit.
//!
//! The requests are a token bucket refilled at the per-minute budget spread over the minute,
//! holding [`BURST_SECONDS`] of it, so a burst cannot spend the minute's budget in a second.
//! Response bytes are charged as they arrive; while they are over budget, no request is let in.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::body::{Meter, Metered};
use crate::bucket::Bucket;
use crate::error::Error;
use crate::gate::{Entry, Gate};
use crate::metrics::{CeilingLabels, Metrics};
use crate::priority::Priority;
use crate::request_info::RequestInfo;

/// No process sends more requests per minute than this, whatever its settings.
pub const HARD_REQUESTS_PER_MINUTE: u32 = 1_200;
/// No process takes in more response bytes per minute than this, whatever its settings.
pub const HARD_RESPONSE_BYTES_PER_MINUTE: u64 = 512 * 1024 * 1024;
/// The ceiling's buckets hold this many seconds of the per-minute budget: at most
/// `rate × (BURST_SECONDS + t)` requests pass in any `t` seconds.
pub const BURST_SECONDS: f64 = 5.0;
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What a ceiling allows per minute (after clamping to the hard maxima).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: u32,
    pub response_bytes_per_minute: u64,
}

/// The ceiling's shared state: one per process.
#[derive(Debug)]
pub struct Ceiling {
    limits: Limits,
    requests: Gate,
    bytes: Arc<Bucket>,
    metrics: Metrics,
    hits: watch::Sender<u64>,
    last_warning: Mutex<Option<Instant>>,
}

impl Ceiling {
    /// `limits` are clamped to the hard maxima here too, so no caller can build a ceiling above
    /// them.
    pub(crate) fn new(limits: Limits, metrics: Metrics) -> Self {
        let limits = Limits {
            requests_per_minute: limits.requests_per_minute.min(HARD_REQUESTS_PER_MINUTE),
            response_bytes_per_minute: limits
                .response_bytes_per_minute
                .min(HARD_RESPONSE_BYTES_PER_MINUTE),
        };
        let per_second = |per_minute: f64| per_minute / 60.0;
        let requests = per_second(f64::from(limits.requests_per_minute));
        #[allow(clippy::cast_precision_loss)] // bytes per minute: precision to 1 in 2^52 is plenty
        let bytes = per_second(limits.response_bytes_per_minute as f64);
        let bytes = Arc::new(Bucket::new(bytes, bytes * BURST_SECONDS));
        Ceiling {
            limits,
            requests: Gate::new(Bucket::new(requests, (requests * BURST_SECONDS).max(1.0)))
                .held_back_by(bytes.clone()),
            bytes,
            metrics,
            hits: watch::channel(0).0,
            last_warning: Mutex::new(None),
        }
    }

    /// What this ceiling allows.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The number of ceiling hits so far; `changed()` wakes a component when the ceiling is hit,
    /// so it can degrade its own work.
    pub fn hits(&self) -> watch::Receiver<u64> {
        self.hits.subscribe()
    }

    /// Lets a request of `priority` through, after waiting if it must; `Normal` requests wait
    /// at most `normal_wait`. `Err` if it is shed.
    async fn admit(&self, priority: Priority, normal_wait: Duration) -> Result<(), Error> {
        let max_wait = match priority {
            Priority::Critical => Duration::MAX,
            Priority::Normal => normal_wait,
            Priority::Background => Duration::ZERO,
        };
        let waiter = match self.requests.enter(priority, max_wait) {
            Ok(Entry::Now) => return Ok(()),
            Ok(Entry::Queued(waiter)) => waiter,
            Err(wait) => return Err(self.shed(priority, wait)),
        };
        self.hit(priority, "wait", waiter.estimate());
        waiter
            .wait()
            .await
            .map_err(|_| self.shed(priority, max_wait))
    }

    fn shed(&self, priority: Priority, wait: Duration) -> Error {
        self.hit(priority, "shed", wait);
        Error::Shed {
            priority,
            wait_secs: wait.as_secs_f64(),
        }
    }

    fn hit(&self, priority: Priority, action: &'static str, wait: Duration) {
        self.metrics
            .ceiling_hits
            .get_or_create(&CeilingLabels {
                priority: priority.as_str(),
                action,
            })
            .inc();
        self.hits.send_modify(|n| *n += 1);
        let now = Instant::now();
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            *last = Some(now);
            tracing::warn!(
                priority = priority.as_str(),
                action,
                wait_secs = wait.as_secs_f64(),
                hits = *self.hits.borrow(),
                "the process's hard ceiling was reached: requests are delayed or shed; \
                 shed work rather than retry harder (logged at most once a minute)"
            );
        }
    }
}

/// The ceiling as one client's layer: the process's [`Ceiling`], and how long this client's
/// `Normal` requests may wait at it.
#[derive(Debug, Clone)]
pub struct CeilingLayer {
    ceiling: Arc<Ceiling>,
    normal_wait: Duration,
}

impl CeilingLayer {
    pub fn new(ceiling: Arc<Ceiling>, normal_wait: Duration) -> Self {
        CeilingLayer {
            ceiling,
            normal_wait,
        }
    }
}

impl<S> Layer<S> for CeilingLayer {
    type Service = CeilingService<S>;
    fn layer(&self, inner: S) -> CeilingService<S> {
        CeilingService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CeilingService<S> {
    inner: S,
    layer: CeilingLayer,
}

impl<S, ReqB, B> Service<Request<ReqB>> for CeilingService<S>
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
        let CeilingLayer {
            ceiling,
            normal_wait,
        } = self.layer.clone();
        Box::pin(async move {
            let priority = request
                .extensions()
                .get::<RequestInfo>()
                .map_or(Priority::Normal, |i| i.priority);
            ceiling.admit(priority, normal_wait).await?;
            let response = inner.oneshot(request).await?;
            let bytes = ceiling.bytes.clone();
            #[allow(clippy::cast_precision_loss)] // frame sizes are far below 2^52
            let charge: Meter = Box::new(move |n| bytes.take(n as f64));
            Ok(response.map(|body| Metered::new(body, charge)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceiling(requests_per_minute: u32, response_bytes_per_minute: u64) -> Ceiling {
        let limits = Limits {
            requests_per_minute,
            response_bytes_per_minute,
        };
        Ceiling::new(limits, Metrics::default())
    }

    #[tokio::test(start_paused = true)]
    async fn sheds_by_priority_and_tells_the_component() {
        // One request a second, five in the bucket.
        let ceiling = Arc::new(ceiling(60, u64::MAX));
        let mut hits = ceiling.hits();
        let wait = Duration::from_secs(2);
        for _ in 0..5 {
            ceiling
                .admit(Priority::Background, wait)
                .await
                .expect("the bucket's five pass at once");
        }
        assert!(matches!(
            ceiling.admit(Priority::Background, wait).await,
            Err(Error::Shed {
                priority: Priority::Background,
                ..
            })
        ));
        assert!(hits.has_changed().expect("sender alive"));
        let start = Instant::now();
        let normal = |ceiling: Arc<Ceiling>| async move {
            ceiling
                .admit(Priority::Normal, wait)
                .await
                .map(|()| start.elapsed())
        };
        let (first, second) = tokio::join!(normal(ceiling.clone()), normal(ceiling.clone()));
        assert_eq!(first.ok(), Some(Duration::from_secs(1)));
        assert_eq!(second.ok(), Some(Duration::from_secs(2)));
        // Two seconds of queue ahead would be fine; three are not.
        let (_, _, third) = tokio::join!(
            normal(ceiling.clone()),
            normal(ceiling.clone()),
            normal(ceiling.clone())
        );
        assert!(
            matches!(third, Err(Error::Shed { wait_secs, .. }) if wait_secs == 3.0),
            "{third:?}"
        );
        let critical = Instant::now();
        ceiling
            .admit(Priority::Critical, wait)
            .await
            .expect("critical requests are never shed");
        assert_eq!(critical.elapsed(), Duration::from_secs(1));
        // Hits: one shed background, four waits, one shed normal, one critical wait.
        assert_eq!(*hits.borrow_and_update(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn response_bytes_over_budget_hold_back_the_next_request() {
        // 60 MiB a minute: 1 MiB/s, 5 MiB in the bucket.
        let ceiling = ceiling(1_200, 60 << 20);
        let wait = Duration::from_secs(10);
        ceiling
            .admit(Priority::Normal, wait)
            .await
            .expect("admitted");
        ceiling.bytes.take(f64::from(8 << 20));
        let start = Instant::now();
        ceiling
            .admit(Priority::Normal, wait)
            .await
            .expect("admitted");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        ceiling.bytes.take(f64::from(1 << 20));
        assert!(ceiling.admit(Priority::Background, wait).await.is_err());
    }
}
