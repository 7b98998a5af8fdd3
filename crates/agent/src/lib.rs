//! Per-node agent: node and pod telemetry from the local kubelet and the host's `/proc` and
//! `/sys`, and a DNS probe that sees a node's cache serving stale answers.
//!
//! Must not: talk to the Kubernetes API server, ever (rule 1 of the design: a per-node
//! component's cost would grow with the cluster). It has no dependency that could —
//! `crates/fleetwatch/tests/architecture.rs` checks the dependency graph — and its one HTTP
//! client is the kubelet source's, pointed at one node-local URL.
//!
//! Layout: [`source`] is the model every source follows (a typed config that builds a polling
//! task); [`kubelet`], [`host`] and [`dns`] are the sources; [`snapshot`] serves each source's
//! latest poll; [`health`] is every source's `up`/errors series; [`access`] is the RBAC the
//! agent needs; [`run`] puts them behind one `/metrics`, with optional remote-write, through
//! `fleetwatch-telemetry`.

pub mod access;
pub mod dns;
mod error;
pub mod health;
pub mod host;
pub mod kubelet;
pub mod snapshot;
pub mod source;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwatch_telemetry::exposition::{self, Exposition, Readiness, Scoped, ServerMetrics};
use fleetwatch_telemetry::remote_write::{self, PagePusher, RemoteWrite};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::error::Error;
use crate::health::Health;
use crate::source::{Build, Source};

/// Where `/metrics` is served unless configured.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9471);
/// How long sources have to stop after the agent is told to.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// On shutdown, flushing remote-write gets this long.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node the agent runs on.
    pub node_name: String,
    /// The kubelet source, or none (`--no-kubelet`: a node whose kubelet is not to be read).
    pub kubelet: Option<kubelet::KubeletConfig>,
    pub host: host::HostConfig,
    pub dns: dns::DnsConfig,
    /// Pushing the page to a remote-write receiver, and how often.
    pub remote_write: Option<(remote_write::Config, Duration)>,
}

impl AgentConfig {
    /// Checks every setting, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if self.node_name.trim().is_empty() {
            return Err(Error::config(
                "--node-name",
                "must be the node's name (in a pod: the downward API's spec.nodeName)",
            ));
        }
        if let Some(kubelet) = &self.kubelet {
            kubelet.validate()?;
        }
        self.host.validate()?;
        self.dns.validate()?;
        if let Some((config, interval)) = &self.remote_write {
            config
                .validate()
                .map_err(|e| Error::config("--remote-write", e))?;
            if *interval < Duration::from_secs(1) {
                return Err(Error::config(
                    "--remote-write-interval",
                    "must be at least 1 s",
                ));
            }
        }
        Ok(())
    }
}

/// Builds every configured source and spawns its task.
fn start_sources(
    config: &AgentConfig,
    build: &mut Build<'_>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
    let mut sources: Vec<&dyn Source> = vec![&config.host, &config.dns];
    if let Some(kubelet) = &config.kubelet {
        sources.push(kubelet);
    }
    sources
        .into_iter()
        .map(|source| Ok(tokio::spawn(source.build(build)?)))
        .collect()
}

/// Runs the agent: serves `/metrics`, `/healthz` and `/readyz` on `listener`, polls its sources
/// and pushes to remote-write if configured, until `shutdown` completes. Then it stops the
/// sources, flushes remote-write and returns.
pub async fn run(
    config: AgentConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    let mut registry = Registry::default();
    let metrics = ServerMetrics::register(&mut registry);
    let health = Health::register(&mut registry);
    let pusher = match &config.remote_write {
        Some((sink, interval)) => {
            let (sink, task) = RemoteWrite::start(sink.clone(), &mut registry)
                .map_err(|e| Error::config("--remote-write", e))?;
            tokio::spawn(task);
            Some(PagePusher::new(sink, *interval))
        }
        None => None,
    };
    let readiness = Readiness::default();
    let (stop_tx, stop) = watch::channel(false);
    let mut sections = Vec::new();
    let tasks = start_sources(
        &config,
        &mut Build {
            node: &config.node_name,
            registry: &mut registry,
            sections: &mut sections,
            readiness: &readiness,
            health: &health,
            stop: stop.clone(),
        },
    )?;
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
    let pushing = pusher.clone().map(|pusher| {
        let (exposition, stop) = (exposition.clone(), stop.clone());
        tokio::spawn(async move { pusher.run(exposition, stop).await })
    });
    shutdown.await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(STOP_GRACE, futures::future::join_all(tasks))
        .await
        .is_err()
    {
        tracing::warn!("sources did not stop within {STOP_GRACE:?}");
    }
    if let Some(pushing) = pushing {
        let _ = pushing.await;
    }
    if let Some(pusher) = pusher {
        pusher
            .finish(&exposition, Instant::now() + FLUSH_TIMEOUT)
            .await;
    }
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(Error::Serve { address, source }),
        Err(join) => Err(Error::Serve {
            address,
            source: std::io::Error::other(join.to_string()),
        }),
    }
}
