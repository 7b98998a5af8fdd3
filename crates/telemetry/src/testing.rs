//! Test support: the real Prometheus (Debian bookworm's 2.42 build) on loopback, and
//! `promtool check metrics`. For tests only — nothing in a fleetwatch binary uses this module.
//!
//! The binaries come from `scripts/prometheus`, which unpacks Debian's package into
//! `${FLEETWATCH_CACHE:-$HOME/.cache/fleetwatch}/bin/prometheus-2.42/`. Nothing here skips a
//! test when they are missing: every entry point fails with "Prometheus not found at …: run
//! scripts/prometheus".
//!
//! ```no_run
//! # async fn example() -> Result<(), fleetwatch_telemetry::testing::Error> {
//! use fleetwatch_telemetry::testing::{Options, Prometheus, ScrapeTarget};
//!
//! let prometheus = Prometheus::start(Options {
//!     scrape_targets: vec![ScrapeTarget::new("agent", "127.0.0.1:9100")],
//!     ..Options::default()
//! })
//! .await?;
//! prometheus.wait_for_healthy_targets(std::time::Duration::from_secs(30)).await?;
//! let up = prometheus.query("up{job=\"agent\"}").await?;
//! assert_eq!(up[0].1, 1.0);
//! # Ok(()) }
//! ```
//!
//! Each [`Prometheus`] has its own free loopback port, temporary storage, config and log, and
//! receives remote-write (`--web.enable-remote-write-receiver`) at
//! [`remote_write_url`](Prometheus::remote_write_url). It is killed when dropped; and since it
//! is also killed when the *thread* that started it exits (so a test binary killed mid-run
//! leaves no Prometheus behind), start it from the thread that uses it — a `#[tokio::test]`'s
//! body — not into a static shared by several tests.
//!
//! Its HTTP client talks only to the loopback Prometheus it started.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The link `scripts/prometheus` maintains, under `$FLEETWATCH_CACHE/bin`.
pub const PROMETHEUS_LINK: &str = "prometheus-2.42";
/// How long [`Prometheus::start`] waits for `/-/ready` by default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Each HTTP request to Prometheus gives up after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A graceful stop (SIGTERM) that takes longer than this becomes a SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// API answers beyond this are refused.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// What went wrong with the test Prometheus. Its `Debug` is its message, so that a test's
/// `.expect(..)` says what to do ("run scripts/prometheus") rather than printing a struct.
#[derive(thiserror::Error)]
pub enum Error {
    /// The binaries are not in the cache.
    #[error("Prometheus not found at {}: run scripts/prometheus", path.display())]
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Prometheus exited before it was ready.
    #[error("Prometheus exited before it was ready ({status}); its log:\n{log}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// Prometheus did not answer `/-/ready` in time.
    #[error("Prometheus at {url} was not ready after {waited:?}; its log:\n{log}")]
    NotReady {
        /// Its base URL.
        url: String,
        /// How long was waited.
        waited: Duration,
        /// The end of its log.
        log: String,
    },
    /// An HTTP request to Prometheus failed or timed out.
    #[error("GET {url}: {detail}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// Prometheus answered with an error (a bad PromQL expression, say).
    #[error("Prometheus refused {what}: {detail}")]
    Api {
        /// The request, e.g. the query.
        what: String,
        /// Its `errorType: error`, or the HTTP status and body.
        detail: String,
    },
    /// The answer was not the JSON expected.
    #[error("unexpected answer to {what}: {detail}")]
    Decode {
        /// The request.
        what: String,
        /// What did not fit.
        detail: String,
    },
    /// Waiting for targets to be scraped healthily took too long.
    #[error("targets not healthy after {waited:?}: {targets:?}")]
    TargetsNotHealthy {
        /// How long was waited.
        waited: Duration,
        /// The targets as last seen.
        targets: Vec<Target>,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The directory holding the cached `prometheus` and `promtool`.
pub fn prometheus_dir() -> PathBuf {
    let cache = std::env::var_os("FLEETWATCH_CACHE")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/fleetwatch")
        });
    cache.join("bin").join(PROMETHEUS_LINK)
}

/// The path of a cached binary (`prometheus` or `promtool`), or [`Error::NotFound`].
pub fn binary(name: &str) -> Result<PathBuf, Error> {
    let path = prometheus_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NotFound { path })
    }
}

/// Runs `promtool check metrics` on `text` (a Prometheus text-format page): `Ok` if it passes,
/// else `Err` with promtool's output (parse errors and lint problems alike). A missing promtool
/// is an `Err` too, saying to run scripts/prometheus.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let promtool = binary("promtool").map_err(|e| e.to_string())?;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", promtool.display()))?;
    let stdin = child.stdin.take();
    let input = text.to_owned();
    // Written from another thread: a large page would fill the pipe while promtool's output
    // waits to be read.
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // promtool may stop reading at the first error: a broken pipe is its answer.
            let _ = stdin.write_all(input.as_bytes());
        }
    });
    let output = child
        .wait_with_output()
        .map_err(|e| format!("running {}: {e}", promtool.display()))?;
    let _ = writer.join();
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// One scrape job of the test Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// The job name (the `job` label).
    pub job: String,
    /// `host:port` to scrape.
    pub address: String,
    /// The scrape interval (the scrape timeout is the same).
    pub interval: Duration,
    /// The path scraped.
    pub metrics_path: String,
}

impl ScrapeTarget {
    /// Scrapes `address`'s `/metrics` every second as job `job`.
    pub fn new(job: impl Into<String>, address: impl Into<String>) -> ScrapeTarget {
        ScrapeTarget {
            job: job.into(),
            address: address.into(),
            interval: Duration::from_secs(1),
            metrics_path: "/metrics".into(),
        }
    }

    /// The same, scraped every `interval`.
    pub fn every(mut self, interval: Duration) -> ScrapeTarget {
        self.interval = interval;
        self
    }
}

/// How to start the test Prometheus.
#[derive(Debug, Clone)]
pub struct Options {
    /// The jobs it scrapes (none: it only receives remote-write).
    pub scrape_targets: Vec<ScrapeTarget>,
    /// How long to wait for `/-/ready` ([`DEFAULT_READY_TIMEOUT`]).
    pub ready_timeout: Duration,
    /// More command-line flags, e.g. `--log.level=debug`.
    pub extra_args: Vec<String>,
    /// Rule files it loads (`rule_files:`), evaluated every second.
    pub rule_files: Vec<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scrape_targets: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            extra_args: Vec::new(),
            rule_files: Vec::new(),
        }
    }
}

/// A scrape target as Prometheus reports it (`/api/v1/targets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scrape pool (the job name).
    pub job: String,
    /// The URL scraped.
    pub scrape_url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// The last scrape's error; empty if none.
    pub last_error: String,
    /// The target's labels (`job`, `instance`, …).
    pub labels: BTreeMap<String, String>,
}

/// The real Prometheus, running on loopback until stopped or dropped.
#[derive(Debug)]
pub struct Prometheus {
    binary: PathBuf,
    args: Vec<String>,
    /// The config, `data/` and `prometheus.log`; removed on drop.
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    http: Client<HttpConnector, Empty<Bytes>>,
    ready_timeout: Duration,
    /// How many scrape targets it was configured with.
    expected_targets: usize,
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port with empty temporary storage and `options`'
    /// scrape jobs, and waits until it is ready.
    pub async fn start(options: Options) -> Result<Prometheus, Error> {
        let binary = binary("prometheus")?;
        let dir = tempfile::Builder::new()
            .prefix("fleetwatch-prometheus-")
            .tempdir()
            .map_err(io("creating a temporary directory for Prometheus"))?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            config_yaml(&options.scrape_targets, &options.rule_files),
        )
        .map_err(io(format!("writing {}", config.display())))?;
        let port = free_port()?;
        let mut args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".to_owned(),
            // Samples up to an hour old, as the remote-write tests push, are in range anyway;
            // keep retention short so nothing compacts surprisingly.
            "--storage.tsdb.retention.time=1d".to_owned(),
        ];
        args.extend(options.extra_args);
        let mut prometheus = Prometheus {
            binary,
            args,
            dir,
            port,
            child: None,
            http: Client::builder(TokioExecutor::new()).build_http(),
            ready_timeout: options.ready_timeout,
            expected_targets: options.scrape_targets.len(),
        };
        prometheus.spawn_and_wait().await?;
        Ok(prometheus)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its listen address.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its remote-write receiver, `http://127.0.0.1:<port>/api/v1/write`.
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// Its storage directory (kept across [`restart`](Self::restart)).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Its log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Evaluates an instant `promql` query now: each result's labels and value. A scalar is one
    /// result without labels. Range vectors are refused (use an instant expression such as
    /// `count_over_time(x[1h])`).
    pub async fn query(&self, promql: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>, Error> {
        let what = format!("query {promql:?}");
        let data = self
            .api(
                &format!("/api/v1/query?query={}", percent_encode(promql)),
                &what,
            )
            .await?;
        let decode = |detail: String| Error::Decode {
            what: what.clone(),
            detail,
        };
        let result = data.get("result");
        match data.get("resultType").and_then(Value::as_str) {
            Some("vector") => result
                .and_then(Value::as_array)
                .ok_or_else(|| decode("no result array".into()))?
                .iter()
                .map(|sample| {
                    let labels = string_map(sample.get("metric"));
                    let value = sample_value(sample.get("value")).map_err(&decode)?;
                    Ok((labels, value))
                })
                .collect(),
            Some("scalar") => Ok(vec![(
                BTreeMap::new(),
                sample_value(result).map_err(&decode)?,
            )]),
            other => Err(decode(format!(
                "result type {other:?}: only instant vectors and scalars are supported"
            ))),
        }
    }

    /// The value of the one series `promql` selects, once Prometheus has one that `accept`s;
    /// panics (for tests) with what it found if none does within `timeout`.
    pub async fn wait_for_series(
        &self,
        promql: &str,
        accept: fn(f64) -> bool,
        timeout: Duration,
    ) -> f64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self.query(promql).await;
            if let Ok([(_, value)]) = found.as_deref()
                && accept(*value)
            {
                return *value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{promql}: {found:?} after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The active scrape targets.
    pub async fn targets(&self) -> Result<Vec<Target>, Error> {
        let what = "targets".to_owned();
        let data = self.api("/api/v1/targets?state=active", &what).await?;
        let targets = data
            .get("activeTargets")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Decode {
                what: what.clone(),
                detail: "no activeTargets array".into(),
            })?;
        let text = |t: &Value, key: &str| {
            t.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(targets
            .iter()
            .map(|t| Target {
                job: text(t, "scrapePool"),
                scrape_url: text(t, "scrapeUrl"),
                health: text(t, "health"),
                last_error: text(t, "lastError"),
                labels: string_map(t.get("labels")),
            })
            .collect())
    }

    /// Waits until every configured target has been discovered (that takes Prometheus a few
    /// seconds) and scraped, is `up`, and its last scrape had no error (malformed samples
    /// included: Prometheus reports those as the scrape's error); returns them.
    pub async fn wait_for_healthy_targets(&self, timeout: Duration) -> Result<Vec<Target>, Error> {
        let started = Instant::now();
        loop {
            let targets = self.targets().await?;
            let healthy = targets.len() == self.expected_targets
                && targets
                    .iter()
                    .all(|t| t.health == "up" && t.last_error.is_empty());
            if healthy {
                return Ok(targets);
            }
            if started.elapsed() >= timeout {
                return Err(Error::TargetsNotHealthy {
                    waited: started.elapsed(),
                    targets,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops Prometheus (if running) and starts it again on the same port and storage, then
    /// waits until it is ready.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        self.spawn_and_wait().await
    }

    /// Stops Prometheus, gracefully (SIGTERM, then SIGKILL after 10 s), keeping its storage for
    /// a [`restart`](Self::restart). Blocks until it has exited. A no-op if it is not running.
    pub fn stop(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Ok(());
        }
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) with a valid signal has no memory effects; the pid is our own
            // child, not yet reaped (try_wait above), so it cannot name another process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if started.elapsed() < STOP_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    return child
                        .wait()
                        .map(drop)
                        .map_err(io("waiting for Prometheus to exit"));
                }
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn spawn_and_wait(&mut self) -> Result<(), Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("opening Prometheus's log"))?;
        let stderr = log.try_clone().map_err(io("opening Prometheus's log"))?;
        let mut command = Command::new(&self.binary);
        command
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        kill_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(io(format!("starting {}", self.binary.display())))?;
        self.child = Some(child);
        let started = Instant::now();
        let ready_url = format!("{}/-/ready", self.url());
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Error::Exited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if let Ok((StatusCode::OK, _)) = self.get(&ready_url).await {
                return Ok(());
            }
            if started.elapsed() >= self.ready_timeout {
                let error = Error::NotReady {
                    url: self.url(),
                    waited: started.elapsed(),
                    log: self.log_tail(),
                };
                let _ = self.stop();
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, url: &str) -> Result<(StatusCode, Bytes), Error> {
        let http_error = |detail: String| Error::Http {
            url: url.to_owned(),
            detail,
        };
        let request = Request::get(url)
            .body(Empty::new())
            .map_err(|e| http_error(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| http_error(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await
                .map_err(|e| http_error(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| http_error(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }

    /// GETs an API path and returns its `data`, or the API's error.
    async fn api(&self, path_and_query: &str, what: &str) -> Result<Value, Error> {
        let (status, body) = self.get(&format!("{}{path_and_query}", self.url())).await?;
        let json: Value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            what: what.to_owned(),
            detail: format!(
                "HTTP {status}, not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            ),
        })?;
        if json.get("status").and_then(Value::as_str) != Some("success") {
            let field = |key| json.get(key).and_then(Value::as_str).unwrap_or_default();
            return Err(Error::Api {
                what: what.to_owned(),
                detail: format!("HTTP {status}, {}: {}", field("errorType"), field("error")),
            });
        }
        json.get("data").cloned().ok_or_else(|| Error::Decode {
            what: what.to_owned(),
            detail: "no data".into(),
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Has the child killed when the thread that spawned it exits, so that a test process that is
/// killed (and so runs no `Drop`) leaves no Prometheus behind.
fn kill_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2), which
    // is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A loopback port free now (the OS's choice).
fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("finding a free loopback port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free loopback port"))?
        .port())
}

/// The configuration file: global defaults plus one job per target.
fn config_yaml(targets: &[ScrapeTarget], rule_files: &[PathBuf]) -> String {
    let mut yaml = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
    let rule_files: Vec<String> = rule_files
        .iter()
        .map(|file| json_string(&file.to_string_lossy()))
        .collect();
    yaml.push_str(&format!("rule_files: [{}]\n", rule_files.join(", ")));
    yaml.push_str("scrape_configs:");
    if targets.is_empty() {
        yaml.push_str(" []\n");
        return yaml;
    }
    yaml.push('\n');
    for target in targets {
        let interval = format!("{}ms", target.interval.as_millis().max(1));
        yaml.push_str(&format!(
            "  - job_name: {job}\n    scrape_interval: {interval}\n    \
             scrape_timeout: {interval}\n    metrics_path: {path}\n    \
             static_configs:\n      - targets: [{address}]\n",
            job = json_string(&target.job),
            path = json_string(&target.metrics_path),
            address = json_string(&target.address),
        ));
    }
    yaml
}

/// A YAML scalar for any string (JSON strings are YAML).
fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|object| {
            object
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// `[<unix time>, "<value>"]` → the value (`NaN`, `+Inf` and `-Inf` included).
fn sample_value(value: Option<&Value>) -> Result<f64, String> {
    let text = value
        .and_then(Value::as_array)
        .and_then(|pair| pair.get(1))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a sample is not [time, \"value\"]: {value:?}"))?;
    text.parse()
        .map_err(|e| format!("sample value {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_each_job_with_its_interval() {
        let yaml = config_yaml(
            &[ScrapeTarget::new("agent", "127.0.0.1:9100").every(Duration::from_millis(500))],
            &[PathBuf::from("/rules/a.yaml")],
        );
        assert!(yaml.contains("rule_files: [\"/rules/a.yaml\"]\n"));
        assert!(yaml.contains("  - job_name: \"agent\"\n    scrape_interval: 500ms\n"));
        assert!(yaml.contains("targets: [\"127.0.0.1:9100\"]"));
        assert!(config_yaml(&[], &[]).ends_with("scrape_configs: []\n"));
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode("up{job=\"a b\"}"),
            "up%7Bjob%3D%22a%20b%22%7D"
        );
    }

    #[test]
    fn special_values_parse() {
        let value = |s: &str| sample_value(Some(&serde_json::json!([1.0, s])));
        assert_eq!(value("+Inf"), Ok(f64::INFINITY));
        assert_eq!(value("-Inf"), Ok(f64::NEG_INFINITY));
        assert!(value("NaN").is_ok_and(f64::is_nan));
        assert_eq!(value("0.25"), Ok(0.25));
    }
}
