//! One replica: reading its three endpoints, and what the collector remembers of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetwatch_client::Client;
use fleetwatch_telemetry::limited_log::LimitedLog;

use super::ApiServerConfig;
use super::signals::START_TIME;
use super::window::{Derived, Snapshot, Window};

/// The endpoints read from each replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    Metrics,
    Readyz,
    Livez,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [Endpoint::Metrics, Endpoint::Readyz, Endpoint::Livez];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Metrics => "metrics",
            Endpoint::Readyz => "readyz",
            Endpoint::Livez => "livez",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Metrics => "/metrics",
            Endpoint::Readyz => "/readyz?verbose",
            Endpoint::Livez => "/livez?verbose",
        }
    }
}

/// `/readyz` and `/livez` list a few dozen checks: anything much longer is not one.
const MAX_HEALTH_BYTES: usize = 256 << 10;

/// What one round of reads returned.
#[derive(Debug)]
pub struct Pages {
    pub at: Instant,
    pub metrics: Result<String, fleetwatch_client::Error>,
    pub readyz: Result<String, fleetwatch_client::Error>,
    pub livez: Result<String, fleetwatch_client::Error>,
    pub seconds: f64,
}

/// Reads the three endpoints of `replica` concurrently, each within the configured timeout.
pub async fn read(replica: &Client, config: &ApiServerConfig) -> Pages {
    let started = Instant::now();
    let get = |endpoint: Endpoint, limit: usize| async move {
        match tokio::time::timeout(
            config.timeout,
            replica.scrape_limited(endpoint.path(), limit),
        )
        .await
        {
            Ok(page) => page,
            Err(_) => Err(fleetwatch_client::Error::Request {
                server: replica.server().to_owned(),
                verb: "get",
                resource: endpoint.path().to_owned(),
                reason: format!("no answer within {:?}", config.timeout),
            }),
        }
    };
    let (metrics, readyz, livez) = tokio::join!(
        get(Endpoint::Metrics, config.max_page_bytes),
        get(Endpoint::Readyz, MAX_HEALTH_BYTES),
        get(Endpoint::Livez, MAX_HEALTH_BYTES),
    );
    Pages {
        at: started,
        metrics,
        readyz,
        livez,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// What the collector knows of one replica.
#[derive(Debug)]
pub struct Replica {
    window: Window,
    derived: Option<Derived>,
    /// Whether each endpoint answered 2xx at the last read.
    pub up: BTreeMap<Endpoint, bool>,
    /// Checks `/readyz` reported failing at the last read.
    pub failing_checks: Vec<String>,
    /// Failed reads by endpoint and reason.
    pub errors: BTreeMap<(Endpoint, &'static str), u64>,
    /// Lines of `/metrics` pages that did not parse.
    pub bad_lines: u64,
    /// Restarts seen (a new `process_start_time_seconds`).
    pub restarts: u64,
    start_time: Option<f64>,
    /// Size of the last `/metrics` page, and time the last round took.
    pub page_bytes: usize,
    pub scrape_seconds: f64,
}

impl Replica {
    pub fn new(window: Duration) -> Replica {
        Replica {
            window: Window::new(window),
            derived: None,
            up: Endpoint::ALL.iter().map(|e| (*e, false)).collect(),
            failing_checks: Vec::new(),
            errors: BTreeMap::new(),
            bad_lines: 0,
            restarts: 0,
            start_time: None,
            page_bytes: 0,
            scrape_seconds: 0.0,
        }
    }

    /// The SLIs over the window (none until two pages were read).
    pub fn derived(&self) -> Option<&Derived> {
        self.derived.as_ref()
    }

    /// Counts a failed read of `endpoint`.
    pub fn failed(&mut self, endpoint: Endpoint, reason: &'static str) {
        self.up.insert(endpoint, false);
        *self.errors.entry((endpoint, reason)).or_default() += 1;
    }

    /// Takes in one round of reads.
    pub fn record(&mut self, server: &str, pages: Pages, log: &LimitedLog) {
        self.scrape_seconds = pages.seconds;
        self.health(server, Endpoint::Readyz, &pages.readyz, log);
        self.health(server, Endpoint::Livez, &pages.livez, log);
        match pages.metrics {
            Ok(page) => {
                self.up.insert(Endpoint::Metrics, true);
                self.page_bytes = page.len();
                self.take_page(server, pages.at, &page, log);
            }
            Err(error) => {
                self.failed(Endpoint::Metrics, reason(&error));
                log.warn(server, format!("scraping {server}/metrics: {error}"));
            }
        }
    }

    fn health(
        &mut self,
        server: &str,
        endpoint: Endpoint,
        page: &Result<String, fleetwatch_client::Error>,
        log: &LimitedLog,
    ) {
        match page {
            Ok(_) => {
                self.up.insert(endpoint, true);
                if endpoint == Endpoint::Readyz {
                    self.failing_checks.clear();
                }
            }
            Err(error) => {
                self.failed(endpoint, reason(error));
                if endpoint == Endpoint::Readyz {
                    // A failing /readyz?verbose lists its checks in the error's message.
                    self.failing_checks = failing_checks(&error.to_string());
                }
                log.warn(server, format!("{server}/{}: {error}", endpoint.as_str()));
            }
        }
    }

    fn take_page(&mut self, server: &str, at: Instant, page: &str, log: &LimitedLog) {
        let parsed = fleetwatch_telemetry::text::parse(page);
        let errors = parsed.error_count();
        if errors > 0 {
            self.bad_lines += errors as u64;
            if let Some(first) = parsed.errors().first() {
                log.warn(
                    server,
                    format!("{server}/metrics: {errors} bad line(s), first: {first}"),
                );
            }
        }
        let start_time = parsed
            .samples()
            .find(|s| s.name == START_TIME)
            .map(|s| s.value);
        if let (Some(before), Some(now)) = (self.start_time, start_time)
            && now != before
        {
            self.restarts += 1;
        }
        if start_time.is_some() {
            self.start_time = start_time;
        }
        self.window.push(Snapshot::of(at, parsed.samples()));
        self.derived = self.window.derive();
    }
}

/// A short, fixed reason for an error's metric label (the message goes to the log).
fn reason(error: &fleetwatch_client::Error) -> &'static str {
    use fleetwatch_client::Error;
    match error {
        Error::TooLarge { .. } => "too_large",
        Error::Status { status, .. } if *status >= 500 => "server_error",
        Error::Status { .. } => "refused",
        Error::Shed { .. } => "shed",
        Error::Request { .. } => "unanswered",
        _ => "other",
    }
}

/// The `[-]name failed` lines of a `/readyz?verbose` answer.
fn failing_checks(message: &str) -> Vec<String> {
    message
        .split(['\n', ' '])
        .filter_map(|word| word.strip_prefix("[-]"))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_checks_are_read_from_a_verbose_answer() {
        let answer = "[+]ping ok\n[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: \
                      reason withheld\n[-]informer-sync failed: reason withheld\nreadyz check failed";
        assert_eq!(
            failing_checks(answer),
            ["poststarthook/rbac/bootstrap-roles", "informer-sync"]
        );
    }
}
