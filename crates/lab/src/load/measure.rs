//! What a run costs the API server and what everyone else sees meanwhile.
//!
//! CPU comes from `/proc/<pid>/stat` of the processes the lab started (cross-checked with the
//! API server's own `process_cpu_seconds_total`), bytes from `/proc/<pid>/io` (`wchar`: every
//! byte the API server wrote to its sockets, i.e. served), 429s from `apiserver_request_total`,
//! peak RSS from sampling `/proc/<pid>/status`, and latency from a probe that GETs one node.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use serde::Serialize;
use tokio::sync::Notify;

use crate::error::{LabError, Result};
use crate::load::LoadSpec;
use crate::load::agents::{Identities, Outcome};
use crate::plane::ControlPlane;
use crate::populate::node_name;

/// Counters read before and after a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    apiserver_cpu: f64,
    etcd_cpu: f64,
    apiserver_written: u64,
    metrics_cpu: f64,
    throttled: f64,
}

impl Snapshot {
    pub(crate) async fn take(plane: &ControlPlane) -> Result<Self> {
        let apiserver = pid_of(plane, "kube-apiserver")?;
        let etcd = pid_of(plane, "etcd")?;
        let admin = plane.admin_client().await?;
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| LabError::Client(e.to_string()))?;
        let metrics = admin.request_text(request).await?;
        Ok(Snapshot {
            apiserver_cpu: cpu_seconds(apiserver)?,
            etcd_cpu: cpu_seconds(etcd)?,
            apiserver_written: written_bytes(apiserver)?,
            metrics_cpu: metric_sum(&metrics, "process_cpu_seconds_total", None),
            throttled: metric_sum(&metrics, "apiserver_request_total", Some(("code", "429"))),
        })
    }
}

fn pid_of(plane: &ControlPlane, name: &str) -> Result<u32> {
    plane
        .pid(name)
        .ok_or_else(|| LabError::Client(format!("the lab has no {name} process")))
}

/// User + system CPU seconds of `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&path).map_err(LabError::io("reading process CPU", &path))?;
    // The command name (field 2) may hold spaces; fields after its closing paren are plain.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the paren.
    Ok((ticks(11) + ticks(12)) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn written_bytes(pid: u32) -> Result<u64> {
    proc_field(&format!("/proc/{pid}/io"), "wchar:").map(|v| v.unwrap_or(0))
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    proc_field(&format!("/proc/{pid}/status"), "VmRSS:").map(|kb| kb.unwrap_or(0) * 1024)
}

fn proc_field(path: &str, key: &str) -> Result<Option<u64>> {
    let text = std::fs::read_to_string(path)
        .map_err(LabError::io("reading process statistics", Path::new(path)))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok()))
}

/// The sum of all samples of counter or gauge `name` in Prometheus text, optionally only those
/// with one label value.
pub fn metric_sum(text: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else {
        return 0.0;
    };
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Samples taken throughout a run: the probe's latencies and the API server's peak RSS.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples {
    pub probe_ms: Vec<f64>,
    pub probe_errors: u64,
    pub peak_rss: u64,
}

pub(crate) struct Sampler {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<Samples>,
}

impl Sampler {
    pub(crate) async fn start(
        plane: &ControlPlane,
        probe_interval: Duration,
        identities: &Identities,
    ) -> Result<Self> {
        let apiserver = pid_of(plane, "kube-apiserver")?;
        let probe = Api::<Node>::all(kube::Client::try_from(
            crate::plane::config_from(&identities.probe).await?,
        )?);
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut ticks = tokio::time::interval(probe_interval.max(Duration::from_millis(10)));
            let target = node_name(0);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stopped.notified() => return samples,
                }
                let started = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), probe.get_opt(&target)).await {
                    Ok(Ok(_)) => samples.probe_ms.push(started.elapsed().as_secs_f64() * 1e3),
                    _ => samples.probe_errors += 1,
                }
                samples.peak_rss = samples.peak_rss.max(rss_bytes(apiserver).unwrap_or(0));
            }
        });
        Ok(Sampler { stop, task })
    }

    pub(crate) async fn stop(self) -> Samples {
        self.stop.notify_one();
        self.task.await.unwrap_or_default()
    }
}

/// What one run cost; the row of `lab load`'s table.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub pattern: String,
    pub nodes: usize,
    pub pods: usize,
    pub agents: usize,
    pub seconds: f64,
    /// kube-apiserver CPU seconds during the run, from `/proc`.
    pub apiserver_cpu_seconds: f64,
    /// The same from the API server's `process_cpu_seconds_total` (cross-check).
    pub apiserver_cpu_seconds_reported: f64,
    /// API-server CPU milliseconds per node per second of load.
    pub apiserver_cpu_ms_per_node_second: f64,
    pub apiserver_peak_rss_bytes: u64,
    pub etcd_cpu_seconds: f64,
    /// Bytes the API server wrote to its sockets (responses and watch events, TLS included).
    pub apiserver_bytes_written: u64,
    pub throttled_429: u64,
    pub probe_p50_ms: Option<f64>,
    pub probe_p99_ms: Option<f64>,
    pub probe_samples: usize,
    pub probe_errors: u64,
    /// Requests the agents made (lists for informers) and how many failed.
    pub agent_requests: u64,
    pub agent_errors: u64,
    /// The probe's latencies, for `--out`.
    #[serde(skip)]
    pub probe_ms: Vec<f64>,
}

impl LoadReport {
    pub(crate) fn new(
        spec: &LoadSpec,
        agents: usize,
        duration: Duration,
        before: &Snapshot,
        after: &Snapshot,
        samples: &Samples,
        outcome: &Outcome,
    ) -> Self {
        let seconds = duration.as_secs_f64();
        let cpu = after.apiserver_cpu - before.apiserver_cpu;
        let mut sorted = samples.probe_ms.clone();
        sorted.sort_by(f64::total_cmp);
        LoadReport {
            pattern: spec.pattern.to_string(),
            nodes: spec.nodes,
            pods: spec.pods,
            agents,
            seconds,
            apiserver_cpu_seconds: cpu,
            apiserver_cpu_seconds_reported: after.metrics_cpu - before.metrics_cpu,
            apiserver_cpu_ms_per_node_second: cpu * 1e3
                / (spec.nodes.max(1) as f64 * seconds.max(1e-9)),
            apiserver_peak_rss_bytes: samples.peak_rss,
            etcd_cpu_seconds: after.etcd_cpu - before.etcd_cpu,
            apiserver_bytes_written: after
                .apiserver_written
                .saturating_sub(before.apiserver_written),
            throttled_429: (after.throttled - before.throttled).max(0.0) as u64,
            probe_p50_ms: percentile(&sorted, 0.50),
            probe_p99_ms: percentile(&sorted, 0.99),
            probe_samples: sorted.len(),
            probe_errors: samples.probe_errors,
            agent_requests: outcome.requests,
            agent_errors: outcome.errors,
            probe_ms: samples.probe_ms.clone(),
        }
    }
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}
