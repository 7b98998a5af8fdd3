//! The kubelet source: `/metrics/resource` and `/stats/summary` of the node's own kubelet, and
//! nothing else of it.
//!
//! Owns: the one HTTP client of the agent (`client`: GET of those two paths of one URL, TLS
//! always verified, a bearer token read again before each poll, a deadline and a size cap per
//! response), what the two answers become on the page ([`resource`], [`summary`]), and the
//! sources' health under `kubelet_resource` and `kubelet_summary`.
//!
//! Must not: talk to the API server, or ask the kubelet for anything that needs more than
//! `get` on `nodes/metrics` and `nodes/stats` (see [`crate::access`]). In particular never
//! `/pods` or `/spec` (`nodes/proxy`, which also grants exec into every pod): the pod `uid`
//! label is what joins these series with the collector's `kube_pod_labels` and
//! `kube_pod_owner`. Never log or report the token.
//!
//! # Series
//! From `/metrics/resource` ([`resource::FAMILIES`]), under the kubelet's own names and labels,
//! plus `node`: `node_cpu_usage_seconds_total`, `node_memory_working_set_bytes`,
//! `node_swap_usage_bytes`; `container_cpu_usage_seconds_total`,
//! `container_memory_working_set_bytes`, `container_swap_usage_bytes`,
//! `container_start_time_seconds` (`container`, `namespace`, `pod`);
//! `pod_cpu_usage_seconds_total`, `pod_memory_working_set_bytes`, `pod_swap_usage_bytes`
//! (`namespace`, `pod`); `resource_scrape_error` and `scrape_error` (the latter is deprecated
//! and hidden by default since 1.29; kept for kubelets that still show it). Any other family on
//! the page is ignored, so the page's cardinality is bounded by the allowlist. The kubelet's
//! sample timestamps are dropped: the page is served at the agent's scrape time.
//!
//! From `/stats/summary` ([`summary`]), each with `node`:
//! - `fleetwatch_agent_node_fs_{available,capacity,used}_bytes`,
//!   `fleetwatch_agent_node_fs_inodes_free`, `fleetwatch_agent_node_fs_inodes` (the kubelet's
//!   nodefs, what its `nodefs.*` eviction signals read);
//! - `fleetwatch_agent_node_imagefs_…`, the same five for the runtime's image filesystem;
//! - `fleetwatch_agent_node_rlimit_max_pids`, `fleetwatch_agent_node_rlimit_processes` (the
//!   `pid.available` eviction signal is their difference);
//! - with `namespace`, `pod`, `uid`: `fleetwatch_agent_pod_network_{receive,transmit}_bytes_total`
//!   (the pod's default interface, as the kubelet reports it inline),
//!   `fleetwatch_agent_pod_ephemeral_storage_used_bytes`;
//! - with `volume` too (and `persistentvolumeclaim` for a PVC's volume):
//!   `fleetwatch_agent_pod_volume_{used,capacity,available}_bytes`;
//! - with `container` instead: `fleetwatch_agent_container_{rootfs,logs}_used_bytes`.
//!
//! A field the kubelet leaves out leaves its series out; fields not read are ignored. The node's
//! network interfaces are not re-exposed: on a busy node they are one veth per pod, and the
//! host source reads the node's interfaces itself.
//!
//! Beside them: `fleetwatch_agent_kubelet_unexpected_samples_total`, samples of allowlisted
//! families dropped because their labels are not the ones expected (a newer kubelet?), and the
//! health series of [`crate::health`].
//!
//! # Failures
//! A failed request is `fleetwatch_agent_source_up{source="kubelet_…"} 0`, one count of
//! `fleetwatch_agent_source_errors_total` under a fixed reason, and a rate-limited warning;
//! each endpoint fails on its own, so the other one is still served. Reasons: `token` (the
//! token file cannot be read; nothing is sent), `connect`, `tls` (the kubelet's certificate
//! does not verify against `--kubelet-ca`), `request` (the connection failed mid-request),
//! `timeout` (no whole answer within the timeout, connection and body included),
//! `unauthorized` (401), `forbidden` (403), `status` (any other non-200), `body` (the body
//! could not be read to its end), `too_large` (larger than `max_body_bytes`; reading stops
//! there), `parse` (a rejected line, JSON that does not fit the Summary API, or a page with none
//! of the resource families), `too_many_samples` (more than [`MAX_SAMPLES`]), `wrong_node` (the
//! summary is another node's: `--kubelet` points at the wrong kubelet).
//!
//! After a failure the endpoint's last good snapshot is still served, and dropped once
//! [`STALE_POLLS`] polls in a row have failed (about 90 s at the default 30 s interval):
//! dropping it at once would make every pod's series stale in Prometheus for one timeout,
//! serving it forever would show a dead kubelet's last values as live. `up` says it failed,
//! and `fleetwatch_agent_source_last_success_timestamp_seconds` how old the data is.
//!
//! # URL
//! `https` always, verified against `--kubelet-ca` (the kubelet's serving certificates must
//! chain to it; there is no way to skip verification). Plain `http` is accepted only for a
//! loopback address (127.0.0.0/8, `::1`: a kubelet's read-only port, or a test) and then
//! without a token, which is never sent in clear text, even to loopback: any local process
//! could be listening there.

mod client;
pub mod resource;
pub mod summary;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use http::Uri;
use prometheus_client::metrics::counter::Counter;

use crate::error::Error;
use crate::health::Target;
use crate::snapshot::{Family, Latest};
use crate::source::{self, Build, Source, Task};

use self::client::{Client, Token};

/// At most this many samples are taken from one answer; more is an error (`too_many_samples`).
/// A node of 110 pods is about 1,500 from each endpoint: this is room for any real node, and a
/// bound on what a broken or hostile kubelet can put on the page.
pub const MAX_SAMPLES: usize = 50_000;

/// The last good snapshot of an endpoint is dropped at this many failed polls in a row.
pub const STALE_POLLS: u32 = 3;

/// Where the kubelet is and how it is read.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletConfig {
    /// The kubelet's base URL, e.g. `https://10.0.0.7:10250`.
    pub url: String,
    /// A bearer token file, read again before each poll (projected tokens rotate).
    pub token_file: Option<PathBuf>,
    /// PEM certificates the kubelet's serving certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// How often both endpoints are polled.
    pub interval: Duration,
    /// Per request, connection and body included.
    pub timeout: Duration,
    /// The most bytes of one response body read; a larger one is an error.
    pub max_body_bytes: usize,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            url: "https://127.0.0.1:10250".to_owned(),
            token_file: None,
            ca_file: None,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The largest `max_body_bytes` accepted: a body is held whole while it is parsed.
pub const MAX_BODY_LIMIT: usize = 256 * 1024 * 1024;

impl KubeletConfig {
    /// Checks the settings, naming the one that is wrong. Reads the token and CA files once
    /// (the token is not kept).
    pub fn validate(&self) -> Result<(), Error> {
        let uri = self.uri()?;
        let https = uri.scheme_str() == Some("https");
        match (&self.ca_file, https) {
            (Some(ca), _) => {
                client::load_ca(ca).map_err(|e| Error::config("--kubelet-ca", e))?;
            }
            (None, true) => {
                return Err(Error::config(
                    "--kubelet-ca",
                    "is required for an https --kubelet: the CA that signed the kubelet's \
                     serving certificate (verification cannot be turned off)",
                ));
            }
            (None, false) => {}
        }
        if let Some(file) = &self.token_file {
            if !https {
                return Err(Error::config(
                    "--kubelet-token-file",
                    "a token is only sent over https, never to an http --kubelet",
                ));
            }
            Token::read(file).map_err(|e| Error::config("--kubelet-token-file", e.message))?;
        }
        if self.interval.is_zero() {
            return Err(Error::config("--interval", "must be more than 0 s"));
        }
        if self.timeout.is_zero() || self.timeout >= self.interval {
            return Err(Error::config(
                "--interval",
                format!(
                    "must be longer than the kubelet timeout ({:?}), which must be more than 0",
                    self.timeout
                ),
            ));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_BODY_LIMIT {
            return Err(Error::config(
                "kubelet max_body_bytes",
                format!("must be between 1 and {MAX_BODY_LIMIT}"),
            ));
        }
        Ok(())
    }

    /// The URL, checked: `https`, or `http` to a loopback address; no path, query or user.
    fn uri(&self) -> Result<Uri, Error> {
        let field = "--kubelet";
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| Error::config(field, format!("{:?} is not a URL: {e}", self.url)))?;
        let Some(authority) = uri.authority() else {
            return Err(Error::config(field, "must be https://HOST:PORT"));
        };
        if authority.as_str().contains('@') {
            return Err(Error::config(field, "must not hold a user or password"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(Error::config(
                field,
                "must be the kubelet's base URL (https://HOST:PORT), without a path or query",
            ));
        }
        match uri.scheme_str() {
            Some("https") => Ok(uri),
            Some("http") if is_loopback(authority.host()) => Ok(uri),
            Some("http") => Err(Error::config(
                field,
                "must be https (http only to a loopback address, 127.0.0.0/8 or [::1])",
            )),
            _ => Err(Error::config(field, "must be an https URL")),
        }
    }

    /// Registers the source's sections, series and readiness, and returns it ready to poll:
    /// what [`Source::build`]'s task runs every interval, and what tests run one poll at a time.
    pub fn start(&self, build: &mut Build<'_>) -> Result<Kubelet, Error> {
        self.validate()?;
        let uri = self.uri()?;
        let client = Client::new(self, &uri)?;
        let unexpected = Counter::default();
        build.registry.register(
            "fleetwatch_agent_kubelet_unexpected_samples",
            "Samples of allowlisted /metrics/resource families dropped because their labels \
             were not the ones expected",
            unexpected.clone(),
        );
        let mut state = |endpoint: Endpoint| {
            let latest = Latest::default();
            build.sections.push(Arc::new(latest.clone()));
            let source = endpoint.source();
            State {
                endpoint,
                latest,
                target: build
                    .health
                    .target(source, build.readiness.component(source)),
                failures: AtomicU32::new(0),
            }
        };
        let resource = state(Endpoint::Resource);
        let summary = state(Endpoint::Summary);
        Ok(Kubelet(Arc::new(Inner {
            client,
            token_file: self.token_file.clone(),
            node: build.node.to_owned(),
            resource,
            summary,
            unexpected,
        })))
    }
}

/// Whether `host` (as a URL has it: IPv6 in brackets) is a loopback address. Names do not
/// count: what they resolve to is not known here.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Source for KubeletConfig {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    fn build(&self, build: &mut Build<'_>) -> Result<Task, Error> {
        let kubelet = self.start(build)?;
        let (interval, stop) = (self.interval, build.stop.clone());
        Ok(Box::pin(source::every(interval, stop, move || {
            let kubelet = kubelet.clone();
            async move {
                kubelet.poll().await;
            }
        })))
    }
}

/// One of the two endpoints read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/metrics/resource`, Prometheus text.
    Resource,
    /// `/stats/summary`, the Summary API's JSON.
    Summary,
}

impl Endpoint {
    /// The path requested.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Resource => "/metrics/resource",
            Endpoint::Summary => "/stats/summary",
        }
    }

    /// The source's name in the health series and `/readyz`.
    pub fn source(self) -> &'static str {
        match self {
            Endpoint::Resource => "kubelet_resource",
            Endpoint::Summary => "kubelet_summary",
        }
    }

    /// The subresource of `nodes` the kubelet authorizes the path as (verb `get`).
    pub fn subresource(self) -> &'static str {
        match self {
            Endpoint::Resource => "nodes/metrics",
            Endpoint::Summary => "nodes/stats",
        }
    }

    /// The `Accept` header: text 0.0.4 (not protobuf or OpenMetrics), or JSON.
    fn accept(self) -> &'static str {
        match self {
            Endpoint::Resource => "text/plain;version=0.0.4",
            Endpoint::Summary => "application/json",
        }
    }
}

/// Why one endpoint's poll failed: a fixed `reason` for the errors series and a message for
/// the log, which never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A short fixed word (see the [module doc](self)).
    pub reason: &'static str,
    /// What happened, for the rate-limited warning.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

/// What one poll of both endpoints did: how many samples each served, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    pub resource: Result<usize, Failure>,
    pub summary: Result<usize, Failure>,
}

/// The kubelet source, started: each [`Kubelet::poll`] reads both endpoints into their
/// sections. Clones share everything.
#[derive(Debug, Clone)]
pub struct Kubelet(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    client: Client,
    token_file: Option<PathBuf>,
    node: String,
    resource: State,
    summary: State,
    unexpected: Counter,
}

/// One endpoint's section and health.
#[derive(Debug)]
struct State {
    endpoint: Endpoint,
    latest: Latest,
    target: Target,
    /// Failed polls since the last good one.
    failures: AtomicU32,
}

impl Kubelet {
    /// Reads both endpoints at once, replacing each one's section with what it served, or
    /// counting its failure. The token file is read once for both.
    pub async fn poll(&self) -> Polled {
        let inner = &*self.0;
        let started = Instant::now();
        let token = match inner.token_file.as_deref().map(Token::read).transpose() {
            Ok(token) => token,
            Err(failure) => {
                let took = started.elapsed();
                return Polled {
                    resource: Err(inner.failed(&inner.resource, failure.clone(), took)),
                    summary: Err(inner.failed(&inner.summary, failure, took)),
                };
            }
        };
        let (resource, summary) = tokio::join!(
            inner.poll(&inner.resource, token.as_ref()),
            inner.poll(&inner.summary, token.as_ref()),
        );
        Polled { resource, summary }
    }

    /// The URL polled.
    pub fn url(&self) -> &str {
        self.0.client.url()
    }
}

impl Inner {
    async fn poll(&self, state: &State, token: Option<&Token>) -> Result<usize, Failure> {
        let started = Instant::now();
        let families = self.read(state, token).await.map_err(|mut failure| {
            if let Some(token) = token {
                failure.message = token.redact(&failure.message);
            }
            failure
        });
        let took = started.elapsed();
        match families {
            Ok(families) => {
                let samples = families.iter().map(|f| f.samples.len()).sum();
                state.latest.replace(families);
                state.failures.store(0, Ordering::Relaxed);
                state.target.succeeded(took);
                Ok(samples)
            }
            Err(failure) => Err(self.failed(state, failure, took)),
        }
    }

    /// One endpoint's answer, as families.
    async fn read(&self, state: &State, token: Option<&Token>) -> Result<Vec<Family>, Failure> {
        let body = self
            .client
            .get(state.endpoint, token, &state.target)
            .await?;
        match state.endpoint {
            Endpoint::Resource => {
                let page = fleetwatch_telemetry::text::parse_bytes(&body);
                let filtered = resource::filter(&page, &self.node)?;
                self.unexpected.inc_by(filtered.unexpected);
                Ok(filtered.families)
            }
            Endpoint::Summary => summary::families(&body, &self.node),
        }
    }

    /// Counts `failure` and drops the endpoint's snapshot if it has failed [`STALE_POLLS`]
    /// times in a row. The message names the URL and path.
    fn failed(&self, state: &State, failure: Failure, took: Duration) -> Failure {
        let failure = Failure {
            message: format!(
                "{}{}: {}",
                self.client.url(),
                state.endpoint.path(),
                failure.message
            ),
            ..failure
        };
        state.target.failed(failure.reason, took, &failure);
        if state.failures.fetch_add(1, Ordering::Relaxed) + 1 >= STALE_POLLS {
            state.latest.replace(Vec::new());
        }
        failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> KubeletConfig {
        KubeletConfig {
            url: url.to_owned(),
            ..KubeletConfig::default()
        }
    }

    fn field(config: &KubeletConfig) -> String {
        match config.validate() {
            Err(Error::Config { field, message }) => format!("{field}: {message}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn http_is_only_for_loopback_and_never_with_a_token() {
        assert_eq!(field(&config("http://127.0.0.1:10255")), "Ok(())");
        assert_eq!(field(&config("http://[::1]:10255")), "Ok(())");
        assert_eq!(field(&config("http://127.3.0.1:10255/")), "Ok(())");
        for url in ["http://10.0.0.7:10255", "http://localhost:10255", "ftp://x"] {
            assert!(
                field(&config(url)).starts_with("--kubelet: must be"),
                "{url}"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("token");
        std::fs::write(&token, "secret\n").expect("write");
        let with_token = KubeletConfig {
            token_file: Some(token),
            ..config("http://127.0.0.1:10255")
        };
        assert!(field(&with_token).starts_with("--kubelet-token-file: a token is only sent"));
    }

    #[test]
    fn the_url_is_a_base_url() {
        for url in [
            "https://10.0.0.7:10250/metrics",
            "https://10.0.0.7:10250/?x=1",
            "https://user:pw@10.0.0.7:10250",
            "10.0.0.7:10250",
            "not a url",
        ] {
            assert!(field(&config(url)).starts_with("--kubelet: "), "{url}");
        }
    }

    #[test]
    fn https_needs_a_readable_ca_and_token() {
        assert!(field(&config("https://10.0.0.7:10250")).starts_with("--kubelet-ca: is required"));
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = KubeletConfig {
            ca_file: Some(dir.path().join("missing.crt")),
            ..config("https://10.0.0.7:10250")
        };
        assert!(
            field(&missing).starts_with("--kubelet-ca: "),
            "{}",
            field(&missing)
        );
        let not_pem = dir.path().join("ca.crt");
        std::fs::write(&not_pem, "not a certificate").expect("write");
        let not_pem = KubeletConfig {
            ca_file: Some(not_pem),
            ..config("https://10.0.0.7:10250")
        };
        assert!(
            field(&not_pem).contains("no PEM certificate"),
            "{}",
            field(&not_pem)
        );
        let ca = dir.path().join("real-ca.crt");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        std::fs::write(&ca, cert.pem()).expect("write");
        let no_token = KubeletConfig {
            token_file: Some(dir.path().join("token")),
            ca_file: Some(ca.clone()),
            ..config("https://10.0.0.7:10250")
        };
        let message = field(&no_token);
        assert!(
            message.starts_with("--kubelet-token-file: the token file "),
            "{message}"
        );
        std::fs::write(dir.path().join("token"), "t").expect("write");
        assert_eq!(field(&no_token), "Ok(())");
    }

    #[test]
    fn the_timeout_is_shorter_than_the_interval() {
        let mut config = config("http://127.0.0.1:10255");
        config.timeout = config.interval;
        assert!(field(&config).starts_with("--interval: must be longer"));
        config.timeout = Duration::ZERO;
        assert!(field(&config).starts_with("--interval: "));
        config.timeout = Duration::from_secs(1);
        config.max_body_bytes = 0;
        assert!(field(&config).starts_with("kubelet max_body_bytes: "));
    }
}
