//! The API-server source: every replica of the cluster's API server, scraped directly, and the
//! SLIs derived from what they say about themselves.
//!
//! Replicas come from the `kubernetes` EndpointSlice in `default` (one watch, not a poll), or the
//! configured server while the slice lists none, or the configured list of replicas. Every interval (jittered) each replica's
//! `/metrics`, `/readyz?verbose` and `/livez?verbose` are read through the budgeted client —
//! one process-wide ceiling covers every replica — each with a timeout and a size limit. A page
//! is parsed strictly: a bad line is counted and logged (rate-limited), the rest still counts.
//! [`signals`] says what is kept; [`window`] derives rates and quantiles over the sliding
//! window; [`encode`] exports them per replica and for the cluster.
//!
//! Must not: read anything but those three endpoints, or keep more than the window.

pub mod discovery;
pub mod encode;
pub mod scrape;
pub mod signals;
pub mod window;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleetwatch_client::Client;
use fleetwatch_telemetry::limited_log::LimitedLog;
use serde::Deserialize;
use tokio::sync::watch;

use self::discovery::Discovery;
use self::scrape::{Endpoint, Replica};

/// The API-server source's settings (`apiserver:` in the collector's config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiServerConfig {
    /// Time between scrapes of each replica.
    #[serde(rename = "interval_seconds", with = "crate::config::seconds")]
    pub interval: Duration,
    /// Time allowed for each request.
    #[serde(rename = "timeout_seconds", with = "crate::config::seconds")]
    pub timeout: Duration,
    /// The largest `/metrics` page read; a longer one is an error and is not parsed.
    pub max_page_bytes: usize,
    /// The sliding window the SLIs are derived over.
    #[serde(rename = "window_seconds", with = "crate::config::seconds")]
    pub window: Duration,
    /// The replicas' URLs (`https://host:port`), in place of the `kubernetes` EndpointSlice:
    /// for when the slice lists addresses this collector cannot reach (an API server behind a
    /// load balancer whose replicas advertise internal addresses, the lab's loopback replicas).
    pub replicas: Vec<String>,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            // A 5,000-node API server's page is a few MB; 32 MiB leaves room and bounds memory.
            max_page_bytes: 32 << 20,
            window: Duration::from_secs(300),
            replicas: Vec::new(),
        }
    }
}

impl ApiServerConfig {
    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) {
            return Err("apiserver.interval_seconds: must be at least 1 second".into());
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err(
                "apiserver.timeout_seconds: must be above 0 and at most the interval".into(),
            );
        }
        if self.window < self.interval * 2 {
            return Err("apiserver.window_seconds: must span at least two intervals".into());
        }
        if self.max_page_bytes < 1024 {
            return Err("apiserver.max_page_bytes: must be at least 1024".into());
        }
        if let Some(bad) = self.replicas.iter().find(|r| !r.starts_with("https://")) {
            return Err(format!(
                "apiserver.replicas: {bad:?} is not an https:// URL (https://host:port)"
            ));
        }
        Ok(())
    }
}

/// The replicas' state, shared by the scrape loop and the encoder.
#[derive(Debug, Default)]
pub struct State {
    pub replicas: BTreeMap<String, Replica>,
}

/// The running source: its state is read by [`encode`] on each `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct ApiServers {
    state: Arc<Mutex<State>>,
}

impl ApiServers {
    /// The source's state, for its encoder.
    pub fn new() -> ApiServers {
        ApiServers {
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scrapes every replica each interval until `stop` turns true. `ready` is called once
    /// every known replica has been scraped once.
    pub async fn run(
        &self,
        client: Client,
        config: ApiServerConfig,
        mut stop: watch::Receiver<bool>,
        ready: impl Fn(),
    ) {
        let listed = !config.replicas.is_empty();
        let discovery = match (!listed).then(|| Discovery::start(&client)) {
            None => None,
            Some(Ok(discovery)) => Some(discovery),
            Some(Err(error)) => {
                tracing::warn!(%error, "cannot watch the kubernetes EndpointSlice; scraping the configured server only");
                None
            }
        };
        let log = LimitedLog::new(Duration::from_secs(60));
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        let mut announced = false;
        loop {
            let servers = match &discovery {
                _ if listed => config.replicas.clone(),
                Some(discovery) => discovery.servers(client.server()),
                None => vec![client.server().to_owned()],
            };
            let listed_or_configured =
                |server: &String| servers.contains(server) || server == client.server();
            clients.retain(|server, _| servers.contains(server));
            self.state()
                .replicas
                .retain(|server, _| listed_or_configured(server));
            let config_ref = &config;
            let scrapes = servers.iter().map(|server| {
                let client = client.clone();
                let config = config_ref;
                let cached = clients.get(server).cloned();
                async move {
                    let replica = match cached {
                        Some(replica) => Ok(replica),
                        None if server == client.server() => Ok(client.clone()),
                        None => match tokio::time::timeout(config.timeout, client.replica(server))
                            .await
                        {
                            Ok(replica) => replica,
                            Err(_) => Err(fleetwatch_client::Error::Request {
                                server: server.clone(),
                                verb: "connect",
                                resource: "replica".into(),
                                reason: format!("no answer within {:?}", config.timeout),
                            }),
                        },
                    };
                    (server.clone(), replica)
                }
            });
            for (server, replica) in futures::future::join_all(scrapes).await {
                match replica {
                    Ok(replica) => {
                        clients.insert(server, replica);
                    }
                    Err(error) => {
                        log.warn(
                            &server,
                            format!("cannot connect to replica {server}: {error}"),
                        );
                        let mut state = self.state();
                        let entry = state
                            .replicas
                            .entry(server)
                            .or_insert_with(|| Replica::new(config.window));
                        entry.failed(Endpoint::Metrics, "connect");
                    }
                }
            }
            if clients.is_empty() {
                // The listed replicas are out of reach (a collector outside the cluster network,
                // or an API server advertising an address it does not serve on): the configured
                // server still answers for one of them.
                log.warn(client.server(), format!(
                    "no replica listed in the kubernetes EndpointSlice ({}) answers; scraping {}",
                    servers.join(", "),
                    client.server()
                ));
                clients.insert(client.server().to_owned(), client.clone());
            }
            let config = &config;
            let pages = clients.iter().map(|(server, replica)| async move {
                (server.clone(), scrape::read(replica, config).await)
            });
            for (server, pages) in futures::future::join_all(pages).await {
                let mut state = self.state();
                let replica = state
                    .replicas
                    .entry(server.clone())
                    .or_insert_with(|| Replica::new(config.window));
                replica.record(&server, pages, &log);
            }
            if !announced && !clients.is_empty() {
                ready();
                announced = true;
            }
            let pause = jittered(config.interval);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }
}

impl Default for ApiServers {
    fn default() -> Self {
        ApiServers::new()
    }
}

/// `interval` ± 10 %, so that many collectors started together do not scrape in step.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.9..1.1))
}

impl crate::component::Component for ApiServerConfig {
    fn name(&self) -> &'static str {
        "apiserver"
    }

    fn build(
        &self,
        build: &mut crate::component::Build<'_>,
    ) -> Result<crate::component::Task, crate::Error> {
        let source = ApiServers::new();
        build.registry.register_collector(Box::new(source.clone()));
        let ready = build.readiness.component(self.name());
        let (client, config, stop) = (build.client.clone(), self.clone(), build.stop.clone());
        Ok(Box::pin(async move {
            source.run(client, config, stop, || ready.set(true)).await;
        }))
    }
}
