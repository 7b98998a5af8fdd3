//! Per-cluster control-plane telemetry collector (one per cluster, leader-elected).
//!
//! Owns: reading API-server metrics and object state through the budgeted client and exporting
//! them. Must not: construct its own `kube::Client` or poll with LIST.
//!
//! Layout: [`component`] is the model every source follows (a typed config that builds a
//! running task); [`apiserver`] scrapes every API server replica and derives the SLIs;
//! [`objects`] keeps object state from informers in kube-state-metrics' names; [`config`] reads
//! the configuration file; [`leader`] elects the replica that runs them; [`audit`] receives the
//! API server's audit webhook (on every replica); [`remote_write`] pushes the page; [`top`]
//! reads a collector's page for `fleetwatch top`; [`run`] puts them behind one `/metrics`;
//! [`access`] is the RBAC it needs to do so.

pub mod access;
pub mod apiserver;
pub mod audit;
pub mod component;
pub mod config;
mod error;
pub mod leader;
pub mod objects;
pub mod remote_write;
pub mod top;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwatch_client::Client;
use fleetwatch_telemetry::exposition::{self, Exposition, Readiness, Scoped, ServerMetrics};
use fleetwatch_telemetry::page::Section;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::component::{Build, Component, Task, stopped};
pub use crate::config::CollectorConfig;
pub use crate::error::Error;
use crate::leader::LeaderMetrics;

/// How long sources have to stop after the collector is told to (or stops leading).
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Sources start after a random pause up to this long, so that collectors restarted together
/// (a rollout, a node drain) do not all open their watches at once.
pub const MAX_START_JITTER: Duration = Duration::from_secs(5);
/// On shutdown, releasing the Lease and flushing remote-write each get this long.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a term could not start (no client), the next attempt waits this long.
const TERM_RETRY: Duration = Duration::from_secs(5);

/// Runs the collector: serves `/metrics` on `listener`, campaigns for leadership, runs its
/// sources while it leads, and pushes to remote-write if configured, until `shutdown`
/// completes. Then it stops the sources, releases the Lease, flushes remote-write and returns.
pub async fn run(
    config: CollectorConfig,
    client: Client,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate().map_err(|message| Error::Config {
        at: "the collector's configuration".to_owned(),
        message,
    })?;
    let mut registry = Registry::default();
    client.register_metrics(&mut registry);
    let metrics = ServerMetrics::register(&mut registry);
    let leader_metrics = LeaderMetrics::register(&mut registry);
    let sink = config.remote_write.start(&mut registry)?;
    let readiness = Readiness::default();
    let (stop_tx, stop) = watch::channel(false);
    // The audit receiver makes no API requests and the API server's webhook may reach any
    // replica: it runs on every one, leader or not.
    let mut sections = Vec::new();
    let audit = config.audit.build(&mut Build {
        client: &client,
        registry: &mut registry,
        sections: &mut sections,
        readiness: &readiness,
        stop: stop.clone(),
    })?;
    let audit = tokio::spawn(audit);
    let exposition = Exposition {
        registry: Arc::new(registry),
        sections,
        readiness,
        metrics,
        scoped: Scoped::default(),
    };
    let exposition::Serving {
        address,
        task: server,
    } = exposition::spawn(listener, exposition.clone(), stop.clone());
    let pushing = sink.clone().map(|sink| {
        let (exposition, stop) = (exposition.clone(), stop.clone());
        tokio::spawn(async move { sink.run(exposition, stop).await })
    });
    let terms = Terms {
        config: &config,
        client: &client,
        scoped: exposition.scoped.clone(),
        metrics: leader_metrics,
    };
    let stopping = async {
        shutdown.await;
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
    };
    let elected = async {
        // Collectors restarted together (a rollout, a node drain) campaign and open their
        // watches spread over a few seconds.
        let jitter = MAX_START_JITTER.mul_f64(rand::random_range(0.0..1.0));
        let mut stop = stop.clone();
        tokio::select! {
            () = stopped(&mut stop) => return Ok(()),
            () = tokio::time::sleep(jitter) => {}
        }
        let candidacy = config.leader_election.campaign(&client)?;
        // The term under way ends by itself once `stop` turns true.
        terms.run(candidacy.leading(), stop).await;
        candidacy.release(RELEASE_TIMEOUT).await;
        Ok::<(), Error>(())
    };
    tokio::pin!(elected);
    let elected = tokio::select! {
        // Before `stop`, the campaign ends only if it failed (or its task died).
        ended = &mut elected => ended.and_then(|()| Err(Error::Component {
            component: "leader_election",
            reason: "the campaign ended before the collector was stopped".into(),
        })),
        () = stopping => elected.await,
    };
    if let Err(error) = elected {
        let _ = stop_tx.send(true);
        return Err(error);
    }
    if tokio::time::timeout(STOP_GRACE, audit).await.is_err() {
        tracing::warn!("the audit receiver did not stop within {STOP_GRACE:?}");
    }
    if let Some(pushing) = pushing {
        let _ = pushing.await;
    }
    if let Some(sink) = sink {
        sink.finish(&exposition, Instant::now() + RELEASE_TIMEOUT)
            .await;
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

/// The collector's terms as leader: each builds the sources afresh (their own client, so their
/// watches end with the term) and serves their series and readiness while it lasts.
struct Terms<'a> {
    config: &'a CollectorConfig,
    client: &'a Client,
    scoped: Scoped,
    metrics: LeaderMetrics,
}

impl Terms<'_> {
    /// Runs a term each time `leading` turns true, until `stop` turns true (the term under way
    /// is stopped within [`STOP_GRACE`]). Returns at once if already stopped.
    async fn run(&self, mut leading: watch::Receiver<bool>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            tokio::select! {
                () = stopped(&mut stop) => return,
                led = leading.wait_for(|leading| *leading) => if led.is_err() { return },
            }
            self.metrics.set(true);
            let term = self.term(&mut leading, &mut stop).await;
            self.metrics.set(*leading.borrow() && !*stop.borrow());
            if let Err(error) = term {
                tracing::warn!(%error, "the sources could not start; trying again");
                tokio::select! {
                    () = stopped(&mut stop) => return,
                    () = tokio::time::sleep(TERM_RETRY) => {}
                }
            }
        }
    }

    /// One term: from building the sources until leadership is lost or the collector stops.
    async fn term(
        &self,
        leading: &mut watch::Receiver<bool>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let client = self.client.separate().await.map_err(|e| Error::Component {
            component: "sources",
            reason: e.to_string(),
        })?;
        let (end_tx, end) = watch::channel(false);
        let (registry, sections, readiness, tasks) = build(self.config, &client, end)?;
        self.scoped.set(registry, sections, readiness);
        tracing::info!("leading: sources started");
        let running: Vec<_> = tasks
            .into_iter()
            .map(|(name, task)| {
                tokio::spawn(async move {
                    task.await;
                    tracing::debug!(component = name, "stopped");
                })
            })
            .collect();
        tokio::select! {
            () = stopped(stop) => {}
            _ = leading.wait_for(|leading| !*leading) => tracing::info!("no longer leading"),
        }
        let _ = end_tx.send(true);
        if tokio::time::timeout(STOP_GRACE, futures::future::join_all(running))
            .await
            .is_err()
        {
            tracing::warn!("sources did not stop within {STOP_GRACE:?}");
        }
        self.scoped.clear();
        Ok(())
    }
}

type Built = (
    Registry,
    Vec<Arc<dyn Section>>,
    Readiness,
    Vec<(&'static str, Task)>,
);

/// Builds every source with `client`, their series and readiness in a registry of their own.
fn build(
    config: &CollectorConfig,
    client: &Client,
    stop: watch::Receiver<bool>,
) -> Result<Built, Error> {
    let mut registry = Registry::default();
    let mut sections = Vec::new();
    let readiness = Readiness::default();
    let components: Vec<&dyn Component> = vec![&config.apiserver, &config.objects];
    let mut tasks = Vec::new();
    for component in components {
        let mut build = Build {
            client,
            registry: &mut registry,
            sections: &mut sections,
            readiness: &readiness,
            stop: stop.clone(),
        };
        tasks.push((component.name(), component.build(&mut build)?));
    }
    Ok((registry, sections, readiness, tasks))
}
