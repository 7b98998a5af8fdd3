//! The component model, after Vector's sources and sinks but much smaller: a typed
//! configuration section builds a running task. Building registers the component's series and
//! readiness; the task runs until the collector stops. Components never see each other, so one
//! is added without touching another: implement [`Component`] for its config and list it in
//! [`crate::run`].

use std::sync::Arc;

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use fleetwatch_client::Client;
use fleetwatch_telemetry::exposition::Readiness;
use fleetwatch_telemetry::page::Section;

use crate::error::Error;

/// A running component: done when the collector stops it.
pub type Task = BoxFuture<'static, ()>;

/// What a component is built with.
#[derive(Debug)]
pub struct Build<'a> {
    /// The budgeted client for the cluster's API server.
    pub client: &'a Client,
    /// Where the component registers its series (before `/metrics` is served).
    pub registry: &'a mut Registry,
    /// Where a component with very many series adds the section that writes them.
    pub sections: &'a mut Vec<Arc<dyn Section>>,
    /// Where the component registers its readiness, for `/readyz`.
    pub readiness: &'a Readiness,
    /// Turns true when the collector stops.
    pub stop: watch::Receiver<bool>,
}

/// A configuration section that builds a running task.
pub trait Component {
    /// The component's name, in logs and `/readyz`.
    fn name(&self) -> &'static str;

    /// Registers the component's series and readiness and returns its task.
    fn build(&self, build: &mut Build<'_>) -> Result<Task, Error>;
}

/// Completes when `stop` turns true or its sender is gone (holding no lock on it, so that a
/// task awaiting it in a `select!` stays `Send`).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
