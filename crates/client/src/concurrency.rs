//! Adaptive concurrency layer (AIMD) for non-watch requests: the limit grows by one per window of
//! successful requests (additive increase) and halves on a 429, a 5xx or a request that failed
//! without a response — a timeout or a dropped connection (multiplicative decrease, at most once
//! per observed latency so one burst of rejections counts once). Watches are long-running and
//! pass straight through.
//!
//! The limit is per API server connection: it follows that server's congestion (its latency and
//! its 429s), and one overloaded replica must not throttle requests to a healthy one. It sits
//! below the token bucket and the hard ceiling, so a request holds a slot only while it is on
//! the wire — never while it waits for budget — and what those layers shed never reaches it: a
//! shed is neither a success nor an overload.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::request_info::RequestInfo;
use crate::settings::Concurrency;

/// Where the limit is exported (`fleetwatch_client_concurrency_limit{server=…}`).
pub type LimitGauge = Gauge<f64, AtomicU64>;

/// The limit and the requests holding a slot.
#[derive(Debug)]
pub struct Aimd {
    bounds: Concurrency,
    state: Mutex<State>,
    released: Notify,
    gauge: LimitGauge,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: u32,
    last_decrease: Option<Instant>,
}

impl Aimd {
    pub fn new(bounds: Concurrency, gauge: LimitGauge) -> Self {
        gauge.set(f64::from(bounds.initial));
        Aimd {
            bounds,
            state: Mutex::new(State {
                limit: f64::from(bounds.initial),
                in_flight: 0,
                last_decrease: None,
            }),
            released: Notify::new(),
            gauge,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> f64 {
        self.state().limit
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Updates are single assignments; a panic elsewhere leaves them consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut state = self.state();
                if f64::from(state.in_flight) < state.limit.floor() {
                    state.in_flight += 1;
                    return Slot {
                        aimd: self.clone(),
                        started: Instant::now(),
                    };
                }
            }
            released.await;
        }
    }

    fn record(&self, overloaded: bool, latency: Duration) {
        let mut state = self.state();
        let max = f64::from(self.bounds.max);
        let min = f64::from(self.bounds.min);
        if overloaded {
            let now = Instant::now();
            if state
                .last_decrease
                .is_none_or(|t| now.duration_since(t) >= latency.max(Duration::from_millis(100)))
            {
                state.limit = (state.limit / 2.0).max(min);
                state.last_decrease = Some(now);
            }
        } else {
            state.limit = (state.limit + 1.0 / state.limit).min(max);
        }
        self.gauge.set(state.limit);
    }
}

/// A slot in the limit; released on drop.
struct Slot {
    aimd: Arc<Aimd>,
    started: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.aimd.state().in_flight -= 1;
        self.aimd.released.notify_one();
    }
}

#[derive(Debug, Clone)]
pub struct ConcurrencyLayer {
    aimd: Arc<Aimd>,
}

impl ConcurrencyLayer {
    pub fn new(aimd: Arc<Aimd>) -> Self {
        ConcurrencyLayer { aimd }
    }
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = AdaptiveConcurrency<S>;
    fn layer(&self, inner: S) -> AdaptiveConcurrency<S> {
        AdaptiveConcurrency {
            inner,
            aimd: self.aimd.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdaptiveConcurrency<S> {
    inner: S,
    aimd: Arc<Aimd>,
}

impl<S, ReqB, B> Service<Request<ReqB>> for AdaptiveConcurrency<S>
where
    S: Service<Request<ReqB>, Response = Response<B>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    ReqB: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let inner = self.inner.clone();
        let aimd = self.aimd.clone();
        let watch = request
            .extensions()
            .get::<RequestInfo>()
            .is_some_and(RequestInfo::is_watch);
        Box::pin(async move {
            if watch {
                return inner.oneshot(request).await;
            }
            let slot = aimd.acquire().await;
            let result = inner.oneshot(request).await;
            let overloaded = match &result {
                Ok(response) => {
                    let status = response.status();
                    status.as_u16() == 429 || status.is_server_error()
                }
                Err(_) => true,
            };
            aimd.record(overloaded, slot.started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn additive_increase_multiplicative_decrease() {
        let bounds = Concurrency {
            initial: 8,
            min: 1,
            max: 10,
        };
        let aimd = Arc::new(Aimd::new(bounds, LimitGauge::default()));
        aimd.record(true, Duration::from_millis(10));
        assert!((aimd.limit() - 4.0).abs() < 1e-9);
        // A second rejection in the same window is the same congestion event.
        aimd.record(true, Duration::from_millis(10));
        assert!((aimd.limit() - 4.0).abs() < 1e-9);
        tokio::time::advance(Duration::from_secs(1)).await;
        aimd.record(true, Duration::from_millis(10));
        assert!((aimd.limit() - 2.0).abs() < 1e-9);
        for _ in 0..200 {
            aimd.record(false, Duration::from_millis(10));
        }
        assert!((aimd.limit() - 10.0).abs() < 1e-9);
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(1)).await;
            aimd.record(true, Duration::from_millis(10));
        }
        assert!((aimd.limit() - 1.0).abs() < 1e-9);
        // Slots are capped by the limit.
        let slot = aimd.acquire().await;
        let second = tokio::time::timeout(Duration::from_secs(1), aimd.acquire()).await;
        assert!(
            second.is_err(),
            "a second slot is granted over a limit of 1"
        );
        drop(slot);
        let _third = aimd.acquire().await;
    }
}
