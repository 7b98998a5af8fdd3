//! The one place the client's tower stack is assembled. Read top to bottom, this is the path of
//! every request from a component to the API server:
//!
//! 1. [`user_agent`]: `User-Agent: fleetwatch-<component>/<version>`.
//! 2. [`classify`]: verb, resource, watch or not, and the caller's priority, attached once for
//!    the layers below.
//! 3. [`RetryLayer`]: 429/503 and connections that could not be made are retried after
//!    `Retry-After` or the jittered backoff. It sits above every limit so that each retry pays
//!    for a token and ceiling budget again, and so that no slot is held while it sleeps.
//! 4. [`TokenBucketLayer`]: QPS and burst, per connection.
//! 5. [`CeilingLayer`]: the hard per-process ceiling, shared by every client in the process.
//!    Requests wait for it or are shed here, above the concurrency limit: a request asleep at
//!    the ceiling holds no slot, and a shed never reaches the concurrency limit as a failure.
//! 6. [`ConcurrencyLayer`]: the adaptive (AIMD) limit on non-watch requests in flight, per
//!    connection; it sees only requests that are going to the wire.
//! 7. [`AccountingLayer`]: counts exactly what is sent and received.
//!
//! Both places where a request can wait for budget (4 and 5) serve waiters by priority, so a
//! `Critical` request (a lease renewal, a rollout abort) never waits behind `Normal` ones.
//!
//! Below is kube's own HTTP stack (base URI, authentication, TLS, connection pool), with its
//! built-in retry turned off.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use kube::client::Body;
use tower::{BoxError, Service, ServiceBuilder};

use crate::accounting::AccountingLayer;
use crate::body::{Meter, Metered};
use crate::budget::Budget;
use crate::ceiling::CeilingLayer;
use crate::concurrency::{Aimd, ConcurrencyLayer};
use crate::error::{Error, Result};
use crate::metrics::ServerLabels;
use crate::priority::Priority;
use crate::retry::RetryLayer;
use crate::settings::Settings;
use crate::token_bucket::TokenBucketLayer;
use crate::{classify, user_agent};

/// A response body as the stack returns it: metered for the ceiling and for accounting.
pub type ResponseBody<B> = Metered<Metered<B, Meter>, Meter>;
/// The stack's response future.
pub type ResponseFuture<B> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, BoxError>> + Send>>;

/// The layers' state for one API server connection: its own token bucket, concurrency limit and
/// retry backoff, and the budget's (the process's) ceiling and metrics. Shared by every
/// priority's service.
#[derive(Debug, Clone)]
pub struct Stack {
    settings: Settings,
    user_agent: HeaderValue,
    retry: RetryLayer,
    token_bucket: TokenBucketLayer,
    ceiling: CeilingLayer,
    concurrency: ConcurrencyLayer,
    budget: Budget,
}

impl Stack {
    /// The state for a connection to `server` with `settings` (validated and clamped here),
    /// within `budget`, whose ceiling the settings must ask for.
    pub fn new(settings: &Settings, budget: &Budget, server: &str) -> Result<Self> {
        let settings = settings.validated()?;
        budget.admits(&settings)?;
        let metrics = budget.metrics();
        let user_agent = HeaderValue::from_str(&settings.user_agent())
            .map_err(|e| Error::Settings(format!("User-Agent: {e}")))?;
        let limit = metrics
            .concurrency_limit
            .get_or_create_owned(&ServerLabels {
                server: server.to_owned(),
            });
        Ok(Stack {
            user_agent,
            retry: RetryLayer::new(settings.backoff, metrics.clone()),
            token_bucket: TokenBucketLayer::new(settings.qps, settings.burst),
            ceiling: CeilingLayer::new(budget.ceiling().clone(), settings.ceiling_wait),
            concurrency: ConcurrencyLayer::new(Aimd::new(settings.concurrency, limit).into()),
            budget: budget.clone(),
            settings,
        })
    }

    /// The settings as applied.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The stack for requests of `priority`, around `wire` (kube's HTTP service, or anything
    /// else that answers requests, for tests and benchmarks).
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
            .layer(user_agent::layer(self.user_agent.clone()))
            .layer(classify::layer(priority))
            .layer(self.retry.clone())
            .layer(self.token_bucket.clone())
            .layer(self.ceiling.clone())
            .layer(self.concurrency.clone())
            .layer(AccountingLayer::new(self.budget.metrics().clone()))
            .service(wire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use http::StatusCode;
    use tokio::time::Instant;
    use tower::ServiceExt;

    use super::*;
    use crate::ceiling::BURST_SECONDS;
    use crate::settings::Concurrency;
    use crate::testing::metrics_text;

    type Seen = Arc<Mutex<Vec<(Duration, Priority)>>>;

    /// A wire answering `200 {}` at once, noting when each request reached it and its priority.
    fn noting_wire(
        seen: &Seen,
    ) -> impl Service<Request<Body>, Response = Response<String>, Error = BoxError, Future: Send>
    + Clone
    + Send
    + 'static {
        let (seen, start) = (seen.clone(), Instant::now());
        tower::service_fn(move |request: Request<Body>| {
            let priority = request
                .extensions()
                .get::<crate::request_info::RequestInfo>()
                .map(|i| i.priority);
            let seen = seen.clone();
            async move {
                let priority = priority.expect("classified");
                seen.lock().expect("lock").push((start.elapsed(), priority));
                Ok::<_, BoxError>(Response::new(String::from("{}")))
            }
        })
    }

    fn get() -> Request<Body> {
        Request::get("/api/v1/namespaces/a/pods/p")
            .body(Body::from(Vec::new()))
            .expect("request")
    }

    /// Settings with a ceiling of one request a second ([`BURST_SECONDS`] of it in the bucket)
    /// and a token bucket that never gets in the way.
    fn one_per_second() -> (Settings, usize) {
        let mut settings = Settings::new("unit");
        settings.requests_per_minute = 60;
        settings.qps = 1_000.0;
        settings.burst = 1_000;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 5.0
        (settings, BURST_SECONDS as usize)
    }

    fn stack(settings: &Settings) -> Stack {
        let budget = Budget::separate_for_emulated_process(settings).expect("budget");
        Stack::new(settings, &budget, "https://unit.invalid").expect("stack")
    }

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
        let stack = stack(&Settings::new("unit"));
        let response = stack
            .service(Priority::Normal, wire)
            .oneshot(get())
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

        let text = metrics_text(stack.budget().metrics());
        for code in ["429", "200"] {
            let line = format!(
                "fleetwatch_client_requests_total{{verb=\"get\",resource=\"pods\",code=\"{code}\"}} 1"
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }

    /// With a single concurrency slot, Normal requests asleep at the ceiling would hold it (if
    /// the ceiling sat below the concurrency limit) or hold the next tokens (if waiters reserved
    /// them in arrival order): either way a Critical request would reach the wire after all of
    /// them. It must reach it with the next token.
    #[tokio::test(start_paused = true)]
    async fn a_critical_request_is_not_delayed_by_normal_ones_waiting_at_the_ceiling() {
        let (mut settings, burst) = one_per_second();
        settings.concurrency = Concurrency {
            initial: 1,
            min: 1,
            max: 1,
        };
        let stack = stack(&settings);
        let seen = Seen::default();
        let wire = noting_wire(&seen);
        for _ in 0..burst {
            stack
                .service(Priority::Normal, wire.clone())
                .oneshot(get())
                .await
                .expect("the bucket's requests pass at once");
        }
        let send = |priority| {
            let service = stack.service(priority, wire.clone());
            tokio::spawn(service.oneshot(get()))
        };
        let waiting: Vec<_> = (0..4).map(|_| send(Priority::Normal)).collect();
        tokio::task::yield_now().await;
        let critical = send(Priority::Critical);
        for task in waiting.into_iter().chain([critical]) {
            task.await
                .expect("task")
                .expect("every request passes in time");
        }
        let seen = seen.lock().expect("lock").clone();
        let secs = Duration::from_secs;
        let after_the_burst: Vec<_> = seen[burst..].to_vec();
        assert_eq!(
            after_the_burst,
            [
                (secs(1), Priority::Critical),
                (secs(2), Priority::Normal),
                (secs(3), Priority::Normal),
                (secs(4), Priority::Normal),
                (secs(5), Priority::Normal),
            ]
        );
    }

    /// A shed at the ceiling is the client's own decision, not the server's congestion: the
    /// concurrency limit must not halve for it (it would if the ceiling's `Error::Shed` came up
    /// through the concurrency layer as a failed request).
    #[tokio::test(start_paused = true)]
    async fn sheds_and_waits_at_the_ceiling_leave_the_concurrency_limit_alone() {
        let (mut settings, burst) = one_per_second();
        settings.ceiling_wait = Duration::from_secs(2);
        settings.concurrency = Concurrency {
            initial: 4,
            min: 1,
            max: 4,
        };
        let stack = stack(&settings);
        let seen = Seen::default();
        let wire = noting_wire(&seen);
        let send = |priority| {
            let service = stack.service(priority, wire.clone());
            tokio::spawn(service.oneshot(get()))
        };
        let mut tasks: Vec<_> = (0..burst + 10)
            .map(|_| send(Priority::Background))
            .collect();
        tokio::task::yield_now().await;
        tasks.extend((0..3).map(|_| send(Priority::Normal)));
        let mut shed = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => {}
                Err(e) if matches!(e.downcast_ref::<Error>(), Some(Error::Shed { .. })) => {
                    shed += 1
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(
            shed,
            10 + 1,
            "ten background requests and the third normal one"
        );
        assert_eq!(seen.lock().expect("lock").len(), burst + 2);
        let text = metrics_text(stack.budget().metrics());
        let line = "fleetwatch_client_concurrency_limit{server=\"https://unit.invalid\"} 4.0";
        assert!(
            text.contains(line),
            "the limit moved: {line} missing from\n{text}"
        );
    }
}
