//! The Prometheus remote-write 1.0 sink: samples pushed in, protobuf-and-snappy requests out,
//! through a bounded queue that drops the oldest samples — and counts them — when the receiver
//! cannot keep up.
//!
//! # Start here
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, Instant};
//! use fleetwatch_telemetry::remote_write::{Config, RemoteWrite, Sample, TimeSeries};
//!
//! let mut registry = prometheus_client::registry::Registry::default();
//! let config = Config::new("http://prometheus:9090/api/v1/write");
//! let (sink, task) = RemoteWrite::start(config, &mut registry)?;
//! tokio::spawn(task);
//!
//! // Never blocks; when the queue is full the oldest samples make room.
//! sink.push(vec![TimeSeries::new(
//!     "fleetwatch_agent_dns_served_stale",
//!     [("node", "n-1"), ("name", "kubernetes.default")],
//!     vec![Sample::new(1.0, 1_700_000_000_000)],
//! )]);
//!
//! // On SIGTERM: send what is queued for a while, then stop (what is left counts as dropped).
//! let stats = sink.shutdown(Instant::now() + Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - **Protocol 1.0**: a `prometheus.WriteRequest` ([`proto`]), snappy *block* compressed,
//!   POSTed with `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
//!   `X-Prometheus-Remote-Write-Version: 0.1.0` and `User-Agent: fleetwatch/<version>`. Labels
//!   are sorted by name when pushed; `__name__` is a label like any other.
//! - **Bounded**: the queue holds at most [`Config::capacity`] samples, the request being sent
//!   included; a push past that drops the oldest samples at once (memory is the queue plus the
//!   one request body being sent). Samples that overflow out of the request under way count as
//!   sent if it succeeds and as dropped if it fails, so the counters are exact.
//! - **Retries**: one request at a time, of up to [`Config::max_samples_per_request`] samples.
//!   5xx and 429 are retried with exponential backoff and jitter ([`Config::min_backoff`] …
//!   [`Config::max_backoff`]), a 429's or 5xx's `Retry-After` seconds honoured up to the max;
//!   connection errors and timeouts ([`Config::timeout`], so a receiver that never answers
//!   cannot stall the sink) likewise. Any other 4xx is final: its samples count as
//!   `rejected`, with one rate-limited warning. Retrying resends from the front of the queue,
//!   so a retried request may carry fewer old samples (overflow) and more new ones.
//! - **Shutdown**: [`RemoteWrite::shutdown`] sends until the queue is empty or the deadline,
//!   then stops; a request still under way is abandoned and everything left counts as
//!   dropped. Dropping every handle stops the sink the same way at once.
//!
//! # Metrics
//!
//! Registered in the registry given to [`RemoteWrite::start`] (one sink per registry: give a
//! second sink `registry.sub_registry_with_label(...)`), and readable as [`Stats`]:
//!
//! - `fleetwatch_remote_write_samples_total{outcome="sent"|"dropped"|"rejected"}`
//! - `fleetwatch_remote_write_queue_samples`
//! - `fleetwatch_remote_write_requests_total{outcome=...}`: `success`, `rejected`,
//!   `server_error`, `throttled`, `timeout`, `connection_error`, `aborted` ([`RequestOutcome`])
//! - `fleetwatch_remote_write_request_duration_seconds` (histogram, every attempt)
//! - `fleetwatch_remote_write_last_success_timestamp_seconds`
//!
//! Must not: block a caller of [`push`](RemoteWrite::push), grow past its capacity, retry a
//! request the receiver refused, or send anywhere but the one configured URL.

mod client;
mod config;
mod metrics;
pub mod proto;
mod pusher;
mod queue;
mod retry;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::sync::{Notify, watch};

pub use client::{PROTOCOL_VERSION, USER_AGENT_VALUE};
pub use config::{
    Config, ConfigError, DEFAULT_CAPACITY, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_SAMPLES_PER_REQUEST,
    DEFAULT_MIN_BACKOFF, DEFAULT_TIMEOUT,
};
pub use metrics::{RequestCounts, RequestOutcome, Stats};
pub use proto::{Label, Sample, TimeSeries, WriteRequest};
pub use pusher::PagePusher;

use client::{Attempt, Client};
use metrics::Metrics;
use queue::{Ending, Queue};
use retry::{Backoff, Verdict};

/// The same kind of warning is logged at most this often (with how many were suppressed).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// A handle to a running sink: push samples, read its stats, flush it, shut it down. Cheap to
/// clone; when the last clone is dropped the sink stops (dropping what is queued).
#[derive(Debug, Clone)]
pub struct RemoteWrite {
    handle: Arc<Handle>,
}

/// Dropped with the last [`RemoteWrite`] clone: tells the task to stop.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the task: samples pushed, or shutdown asked for.
    wake: Notify,
    /// Wakes flush and shutdown: a request ended, or the sink stopped.
    progress: Notify,
    /// When to give up sending: set by shutdown.
    deadline: watch::Sender<Option<tokio::time::Instant>>,
    metrics: Metrics,
    max_samples_per_request: usize,
    min_backoff: Duration,
    max_backoff: Duration,
}

#[derive(Debug)]
struct State {
    queue: Queue,
    pushed: u64,
    stopped: bool,
    /// Warnings about refused series pushed.
    refused_log: RateLimited,
}

/// The sink's sending loop, returned by [`RemoteWrite::start`]: spawn it (`tokio::spawn(task)`).
/// It ends when the sink is shut down or every handle is dropped.
pub struct Task {
    inner: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("remote_write::Task")
    }
}

impl Future for Task {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

/// A [`RemoteWrite::flush`] that reached its deadline first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("remote-write flush: {queued} samples still queued at the deadline")]
pub struct FlushTimedOut {
    /// Samples still queued (they stay queued: the sink goes on).
    pub queued: u64,
}

impl RemoteWrite {
    /// Validates `config`, registers the sink's metrics in `registry`, and returns the handle
    /// and the task that sends (spawn it on a Tokio runtime).
    pub fn start(
        config: Config,
        registry: &mut Registry,
    ) -> Result<(RemoteWrite, Task), ConfigError> {
        let uri = config.validate()?;
        let client = Client::new(&config, uri)?;
        let metrics = Metrics::register(registry);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue::new(config.capacity),
                pushed: 0,
                stopped: false,
                refused_log: RateLimited::default(),
            }),
            wake: Notify::new(),
            progress: Notify::new(),
            deadline: watch::Sender::new(None),
            metrics,
            max_samples_per_request: config.max_samples_per_request,
            min_backoff: config.min_backoff,
            max_backoff: config.max_backoff,
        });
        let task = Task {
            inner: Box::pin(run(shared.clone(), client)),
        };
        let handle = Arc::new(Handle { shared });
        Ok((RemoteWrite { handle }, task))
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Queues `batch` (labels sorted by name here; series without samples ignored). Never
    /// blocks: past the capacity the oldest samples are dropped and counted. A series the
    /// receiver would refuse ([`TimeSeries::problem`]) is not queued — it would take the whole
    /// request down with it — and its samples count as rejected. After shutdown every sample
    /// pushed counts as dropped.
    pub fn push(&self, mut batch: Vec<TimeSeries>) {
        let shared = self.shared();
        let samples: u64 = batch.iter().map(|s| s.samples.len() as u64).sum();
        if samples == 0 {
            return;
        }
        let mut refused = queue::Counted::default();
        let mut problem = None;
        batch.retain_mut(|series| {
            series.sort_labels();
            let found = series.problem();
            if let Some(found) = found {
                refused.rejected += series.samples.len() as u64;
                problem.get_or_insert(found);
            }
            found.is_none()
        });
        let mut state = shared.lock();
        state.pushed += samples;
        if let Some(problem) = problem
            && let Some(suppressed) = state.refused_log.ready()
        {
            tracing::warn!(
                problem,
                suppressed,
                "remote-write: a series the receiver would refuse was pushed; \
                 its samples count as rejected"
            );
        }
        if state.stopped {
            let dropped = queue::Counted {
                dropped: samples - refused.rejected,
                ..refused
            };
            shared.metrics.count(dropped, state.queue.len());
            return;
        }
        let mut counted = state.queue.push(batch);
        counted.rejected += refused.rejected;
        shared.metrics.count(counted, state.queue.len());
        drop(state);
        shared.wake.notify_one();
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let state = shared.lock();
        shared.metrics.stats(state.pushed, state.queue.len())
    }

    /// Waits until everything queued (pushes made meanwhile included) has been sent or
    /// rejected, or the sink has stopped; or the deadline passes, leaving the rest queued.
    pub async fn flush(&self, deadline: Instant) -> Result<(), FlushTimedOut> {
        let drained =
            |state: &State| state.stopped || (state.queue.is_empty() && !state.queue.in_flight());
        if self.shared().wait(deadline.into(), drained).await {
            Ok(())
        } else {
            Err(FlushTimedOut {
                queued: self.stats().queued,
            })
        }
    }

    /// Stops the sink: sends what is queued until the queue is empty or `deadline`, then
    /// abandons any request under way and counts what is left as dropped. Returns by the
    /// deadline (a handle's clones see the sink stopped). The stats at the end.
    pub async fn shutdown(self, deadline: Instant) -> Stats {
        let shared = self.shared();
        let deadline = tokio::time::Instant::from_std(deadline);
        shared.deadline.send_modify(|current| {
            *current = Some(current.map_or(deadline, |d| d.min(deadline)));
        });
        shared.wake.notify_one();
        shared.wait(deadline, |state| state.stopped).await;
        // Whether the task noticed the deadline or not (or was never spawned), stop now.
        shared.stop();
        self.stats()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The last handle: nobody can push or shut down any more, so stop now.
        self.shared
            .deadline
            .send_modify(|d| *d = Some(tokio::time::Instant::now()));
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that holds the lock: a panic elsewhere
        // leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the sink (once): everything left is dropped and counted.
    fn stop(&self) {
        let mut state = self.lock();
        if !state.stopped {
            state.stopped = true;
            let counted = state.queue.drop_all();
            self.metrics.count(counted, state.queue.len());
        }
        drop(state);
        self.progress.notify_waiters();
    }

    /// Waits until `done` holds (checked after each request) or `deadline`; says whether it
    /// held.
    async fn wait(&self, deadline: tokio::time::Instant, done: impl Fn(&State) -> bool) -> bool {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change right after it is not missed.
            notified.as_mut().enable();
            if done(&self.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.lock());
            }
        }
    }
}

/// Stops the sink when the task ends, however it ends (returned, or dropped unfinished).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Completes at the shutdown deadline, once there is one (an earlier one may replace it).
async fn deadline_passed(deadline: &mut watch::Receiver<Option<tokio::time::Instant>>) {
    loop {
        let current = *deadline.borrow_and_update();
        let changed = match current {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => return,
                changed = deadline.changed() => changed,
            },
            None => deadline.changed().await,
        };
        if changed.is_err() {
            // No other deadline can come: the current one is final.
            match current {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
            return;
        }
    }
}

/// The sending loop.
async fn run(shared: Arc<Shared>, client: Client) {
    let _stop = StopOnDrop(shared.clone());
    let mut deadline = shared.deadline.subscribe();
    let mut backoff = Backoff::new(shared.min_backoff, shared.max_backoff);
    let mut rng = StdRng::from_os_rng();
    let mut logs = Logs::default();
    loop {
        // The next request, or the end.
        let request = loop {
            let wake = shared.wake.notified();
            {
                let mut state = shared.lock();
                if state.stopped {
                    return;
                }
                if let Some(request) = state.queue.begin(shared.max_samples_per_request) {
                    break request;
                }
                if deadline.borrow().is_some() {
                    return; // shutting down, and everything was sent
                }
            }
            // A push or a shutdown in between stored a permit: this returns at once.
            wake.await;
        };
        let body = match proto::encode_body(&WriteRequest {
            timeseries: request,
        }) {
            Ok(body) => body,
            Err(error) => {
                // Snappy refuses only inputs of gigabytes, which a request never is.
                tracing::error!(
                    %error,
                    "a remote-write request could not be compressed; dropping it"
                );
                end(&shared, Ending::Rejected);
                continue;
            }
        };
        let started = Instant::now();
        let attempt = tokio::select! {
            attempt = client.send(body) => attempt,
            () = deadline_passed(&mut deadline) => {
                let elapsed = started.elapsed().as_secs_f64();
                shared.metrics.request(RequestOutcome::Aborted, elapsed);
                // StopOnDrop counts the rest, this request included, as dropped.
                return;
            }
        };
        shared
            .metrics
            .request(attempt.outcome, started.elapsed().as_secs_f64());
        let ending = match attempt.verdict {
            Verdict::Sent => Ending::Sent,
            Verdict::Rejected => Ending::Rejected,
            Verdict::Retry => Ending::Failed,
        };
        end(&shared, ending);
        match attempt.verdict {
            Verdict::Sent => {
                if backoff_was_active(&mut logs) {
                    tracing::info!(
                        url = %client.uri(),
                        "remote-write receiver accepts requests again"
                    );
                }
                backoff.reset();
            }
            Verdict::Rejected => {
                // The receiver is up; only this request was bad.
                backoff.reset();
                if let Some(suppressed) = logs.rejected.ready() {
                    tracing::warn!(
                        url = %client.uri(), detail = %attempt.detail, suppressed,
                        "remote-write request rejected; its samples are not retried \
                         (counted as rejected)"
                    );
                }
            }
            Verdict::Retry => {
                let wait = next_wait(&attempt, &mut backoff, &mut rng);
                logs.failing = true;
                if let Some(suppressed) = logs.retried.ready() {
                    tracing::warn!(
                        url = %client.uri(), outcome = attempt.outcome.as_str(),
                        detail = %attempt.detail, retry_in = ?wait, suppressed,
                        "remote-write request failed; retrying"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = deadline_passed(&mut deadline) => return,
                }
            }
        }
    }
}

/// Ends the request under way and counts what it settled.
fn end(shared: &Shared, ending: Ending) {
    let mut state = shared.lock();
    let counted = state.queue.end(ending);
    shared.metrics.count(counted, state.queue.len());
    drop(state);
    shared.progress.notify_waiters();
}

fn next_wait(attempt: &Attempt, backoff: &mut Backoff, rng: &mut StdRng) -> Duration {
    let backoff = backoff.next(rng);
    attempt.retry_after.unwrap_or(backoff)
}

fn backoff_was_active(logs: &mut Logs) -> bool {
    std::mem::take(&mut logs.failing)
}

#[derive(Debug, Default)]
struct Logs {
    rejected: RateLimited,
    retried: RateLimited,
    /// Requests have been failing since the last success.
    failing: bool,
}

/// At most one log line per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// `Some(lines suppressed since the last one)` if a line may be logged now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}
