//! Per-cluster control-plane telemetry collector (one per cluster, leader-elected).
//!
//! Owns: reading API-server metrics and object state through the budgeted client and exporting
//! them. Must not: construct its own `kube::Client` or poll with LIST.
//!
//! Layout: [`component`] is the model every source follows (a typed config that builds a
//! running task); [`apiserver`] scrapes every API server replica and derives the SLIs;
//! [`objects`] keeps object state from informers in kube-state-metrics' names; [`config`] reads
//! the configuration file; [`run`] puts them behind one `/metrics`.

pub mod apiserver;
pub mod component;
pub mod config;
mod error;
pub mod objects;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fleetwatch_client::Client;
use fleetwatch_telemetry::exposition::{self, Exposition, Readiness, ServerMetrics};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::component::{Build, Component};
pub use crate::config::CollectorConfig;
pub use crate::error::Error;

/// How long sources have to stop after the collector is told to.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Sources start after a random pause up to this long, so that collectors restarted together
/// (a rollout, a node drain) do not all open their watches at once.
pub const MAX_START_JITTER: Duration = Duration::from_secs(5);

/// Runs the collector: builds its components, serves `/metrics` on `listener`, and runs until
/// `shutdown` completes.
pub async fn run(
    config: CollectorConfig,
    client: Client,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut registry = Registry::default();
    client.register_metrics(&mut registry);
    let metrics = ServerMetrics::register(&mut registry);
    let readiness = Readiness::default();
    let (stop_tx, stop) = watch::channel(false);
    let components: Vec<&dyn Component> = vec![&config.apiserver, &config.objects];
    let mut tasks = Vec::new();
    for component in components {
        let mut build = Build {
            client: &client,
            registry: &mut registry,
            readiness: &readiness,
            stop: stop.clone(),
        };
        tasks.push((component.name(), component.build(&mut build)?));
    }
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let exposition = Exposition {
        registry: Arc::new(registry),
        readiness,
        metrics,
    };
    let mut serve_stop = stop.clone();
    let server = tokio::spawn(exposition::serve(listener, exposition, async move {
        let _ = serve_stop.wait_for(|stop| *stop).await;
    }));
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let jitter = MAX_START_JITTER.mul_f64(rand::random_range(0.0..1.0));
    let started: Vec<_> = tasks
        .into_iter()
        .map(|(name, task)| {
            tokio::spawn(async move {
                tokio::time::sleep(jitter).await;
                tracing::info!(component = name, "started");
                task.await;
            })
        })
        .collect();
    shutdown.await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(STOP_GRACE, futures::future::join_all(started))
        .await
        .is_err()
    {
        tracing::warn!("components did not stop within {STOP_GRACE:?}");
    }
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(Error::Serve { address, source }),
        Err(join) => Err(Error::Component {
            component: "exposition",
            reason: join.to_string(),
        }),
    }
}
