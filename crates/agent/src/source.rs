//! The model every source follows (the collector's component model, without an API client): a
//! typed configuration builds a running task. Building registers the source's series, sections
//! and readiness; the task polls until the agent stops. Sources never see each other.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use rand::Rng as _;
use tokio::sync::watch;

use fleetwatch_telemetry::exposition::Readiness;
use fleetwatch_telemetry::page::Section;

use crate::error::Error;
use crate::health::Health;

/// A running source: done when the agent stops it.
pub type Task = BoxFuture<'static, ()>;

/// What a source is built with.
#[derive(Debug)]
pub struct Build<'a> {
    /// The node the agent runs on (a `node` label where a series needs one).
    pub node: &'a str,
    /// Where the source registers series it keeps in `prometheus_client` types.
    pub registry: &'a mut Registry,
    /// Where the source adds the sections that write its latest snapshot
    /// ([`crate::snapshot::Latest`]).
    pub sections: &'a mut Vec<Arc<dyn Section>>,
    /// Where the source registers its readiness, for `/readyz`.
    pub readiness: &'a Readiness,
    /// Every source's `up`, error and duration series.
    pub health: &'a Health,
    /// Turns true when the agent stops.
    pub stop: watch::Receiver<bool>,
}

/// A configuration section that builds a running task.
pub trait Source {
    /// The source's name, in logs and `/readyz`.
    fn name(&self) -> &'static str;

    /// Registers the source's series and readiness and returns its task.
    fn build(&self, build: &mut Build<'_>) -> Result<Task, Error>;
}

/// Calls `poll` every `interval` (±10 %, so agents started together drift apart), the first
/// time after a random pause of up to `min(interval, 5 s)`, until `stop` turns true. A poll
/// under way when `stop` turns true is abandoned.
pub async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut poll: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let first = interval.min(Duration::from_secs(5));
    let mut pause = first.mul_f64(rand::rng().random_range(0.0..1.0));
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(pause) => {}
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = poll() => {}
        }
        pause = interval.mul_f64(rand::rng().random_range(0.9..1.1));
    }
}

/// Completes when `stop` turns true or its sender is gone, holding no lock on it (so that a
/// task awaiting it in a `select!` stays `Send`).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
