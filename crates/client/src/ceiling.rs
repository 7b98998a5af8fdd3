//! The hard ceiling: a per-process cap on requests per minute and response bytes per minute that
//! no setting lifts (settings can only lower it). At the ceiling, a request waits or is shed by
//! its [`Priority`]; the component is told through [`Ceiling::hits`] so it can shed its own work;
//! a warning is logged at most once a minute; `fleetwatch_client_ceiling_hits_total` counts every
//! hit.
//!
//! The ceiling is a token bucket refilled at the per-minute budget spread over the minute, holding
//! at most five seconds' worth, so a burst cannot spend the minute's budget in a second.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::accounting::{CeilingLabels, Metrics};
use crate::body::{Meter, Metered};
use crate::bucket::Bucket;
use crate::classify::RequestInfo;
use crate::error::Error;

/// No process sends more requests per minute than this, whatever its settings.
pub const HARD_REQUESTS_PER_MINUTE: u32 = 1_200;
/// No process takes in more response bytes per minute than this, whatever its settings.
pub const HARD_RESPONSE_BYTES_PER_MINUTE: u64 = 512 * 1024 * 1024;
/// The bucket holds this much of the per-minute budget.
const BURST_SECONDS: f64 = 5.0;
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How a request fares at the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Waits as long as it takes (leader-election renewals, aborting a rollout).
    Critical,
    /// Waits up to [`Settings::ceiling_wait`](crate::Settings::ceiling_wait), then is shed.
    #[default]
    Normal,
    /// Shed as soon as it would have to wait.
    Background,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Background => "background",
        }
    }
}

/// The ceiling's shared state.
#[derive(Debug)]
pub struct Ceiling {
    requests: Bucket,
    bytes: Arc<Bucket>,
    normal_wait: Duration,
    metrics: Metrics,
    hits: watch::Sender<u64>,
    last_warning: Mutex<Option<Instant>>,
}

impl Ceiling {
    /// `requests_per_minute` and `bytes_per_minute` are clamped to the hard maxima here too, so
    /// no caller can build a ceiling above them.
    pub fn new(
        requests_per_minute: u32,
        bytes_per_minute: u64,
        normal_wait: Duration,
        metrics: Metrics,
    ) -> Self {
        let per_second = |per_minute: f64| per_minute / 60.0;
        let requests = per_second(f64::from(requests_per_minute.min(HARD_REQUESTS_PER_MINUTE)));
        #[allow(clippy::cast_precision_loss)] // bytes per minute: precision to 1 in 2^52 is plenty
        let bytes = per_second(bytes_per_minute.min(HARD_RESPONSE_BYTES_PER_MINUTE) as f64);
        Ceiling {
            requests: Bucket::new(requests, (requests * BURST_SECONDS).max(1.0)),
            bytes: Arc::new(Bucket::new(bytes, bytes * BURST_SECONDS)),
            normal_wait,
            metrics,
            hits: watch::channel(0).0,
            last_warning: Mutex::new(None),
        }
    }

    /// The number of ceiling hits so far; `changed()` wakes a component when the ceiling is hit,
    /// so it can degrade its own work.
    pub fn hits(&self) -> watch::Receiver<u64> {
        self.hits.subscribe()
    }

    /// Admits a request of `priority`: `Ok(wait)` to send it after `wait`, `Err` to shed it.
    fn admit(&self, priority: Priority) -> Result<Duration, Error> {
        let max_wait = match priority {
            Priority::Critical => Duration::MAX,
            Priority::Normal => self.normal_wait,
            Priority::Background => Duration::ZERO,
        };
        let debt = self.bytes.debt_wait();
        let admitted = if debt > max_wait {
            Err(debt)
        } else {
            self.requests
                .reserve(1.0, max_wait.saturating_sub(debt))
                .map(|wait| wait.max(debt))
        };
        match admitted {
            Ok(Duration::ZERO) => Ok(Duration::ZERO),
            Ok(wait) => {
                self.hit(priority, "wait", wait);
                Ok(wait)
            }
            Err(wait) => {
                self.hit(priority, "shed", wait);
                Err(Error::Shed {
                    priority,
                    wait_secs: wait.as_secs_f64(),
                })
            }
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
                "the client's hard ceiling was reached: requests are delayed or shed; \
                 shed work rather than retry harder (logged at most once a minute)"
            );
        }
    }
}

#[derive(Debug, Clone)]
pub struct CeilingLayer {
    ceiling: Arc<Ceiling>,
}

impl CeilingLayer {
    pub fn new(ceiling: Arc<Ceiling>) -> Self {
        CeilingLayer { ceiling }
    }
}

impl<S> Layer<S> for CeilingLayer {
    type Service = CeilingService<S>;
    fn layer(&self, inner: S) -> CeilingService<S> {
        CeilingService {
            inner,
            ceiling: self.ceiling.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CeilingService<S> {
    inner: S,
    ceiling: Arc<Ceiling>,
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
        let ceiling = self.ceiling.clone();
        Box::pin(async move {
            let priority = request
                .extensions()
                .get::<RequestInfo>()
                .map_or(Priority::Normal, |i| i.priority);
            let wait = ceiling.admit(priority)?;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let response = inner.oneshot(request).await?;
            let bytes = ceiling.bytes.clone();
            #[allow(clippy::cast_precision_loss)] // frame sizes are far below 2^52
            let charge: Meter = Box::new(move |n| bytes.charge(n as f64));
            Ok(response.map(|body| Metered::new(body, charge)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sheds_by_priority() {
        let ceiling = Ceiling::new(60, u64::MAX, Duration::from_secs(2), Metrics::default());
        let mut hits = ceiling.hits();
        // One request a second, five in the bucket.
        for _ in 0..5 {
            assert_eq!(
                ceiling.admit(Priority::Background).ok(),
                Some(Duration::ZERO)
            );
        }
        assert!(ceiling.admit(Priority::Background).is_err());
        assert!(hits.has_changed().expect("sender alive"));
        assert_eq!(
            ceiling.admit(Priority::Normal).ok(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            ceiling.admit(Priority::Normal).ok(),
            Some(Duration::from_secs(2))
        );
        assert!(ceiling.admit(Priority::Normal).is_err());
        assert_eq!(
            ceiling.admit(Priority::Critical).ok(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(*hits.borrow_and_update(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn response_bytes_over_budget_hold_back_the_next_request() {
        // 60 MiB a minute: 1 MiB/s, 5 MiB in the bucket.
        let ceiling = Ceiling::new(1_200, 60 << 20, Duration::from_secs(10), Metrics::default());
        assert_eq!(ceiling.admit(Priority::Normal).ok(), Some(Duration::ZERO));
        ceiling.bytes.charge(f64::from(8 << 20));
        assert_eq!(
            ceiling.admit(Priority::Normal).ok(),
            Some(Duration::from_secs(3))
        );
        assert!(ceiling.admit(Priority::Background).is_err());
    }
}
