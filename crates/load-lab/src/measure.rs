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
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::LoadSpec;
use crate::agents::{Identities, Outcome};
use crate::error::{LabError, Result};
use fleetwatch_control_plane::ControlPlane;
use fleetwatch_control_plane::populate::node_name;

/// Counters read before and after a run.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// When the process counters were read.
    pub(crate) at: Instant,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    apiserver_written: u64,
    metrics_cpu: f64,
    throttled: f64,
    pod_lists: f64,
    pods_listed: f64,
    pods_listed_from_etcd: f64,
    pod_list_seconds: f64,
    watch_events: f64,
    /// APF's estimated seats, summed and counted, in the priority level the agents and the
    /// probe land in (`global-default`).
    seats_sum: f64,
    seats_count: f64,
}

impl Snapshot {
    pub(crate) async fn take(plane: &ControlPlane) -> Result<Self> {
        let apiserver = pid_of(plane, "kube-apiserver")?;
        let etcd = pid_of(plane, "etcd")?;
        // The process counters first, at one instant: under load the scrape below can take
        // seconds, which must not blur where a window starts or ends.
        let (apiserver_cpu, etcd_cpu) = (cpu_seconds(apiserver)?, cpu_seconds(etcd)?);
        let apiserver_written = written_bytes(apiserver)?;
        let at = Instant::now();
        let admin = plane.admin_client().await?;
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| LabError::Metrics(e.to_string()))?;
        let metrics = Metrics::parse(&admin.request_text(request).await?)?;
        let sum = |name: &str, labels: &[(&str, &str)]| metrics.sum(name, labels);
        let lists = PodLists::of(&metrics);
        Ok(Snapshot {
            at,
            apiserver_cpu,
            etcd_cpu,
            apiserver_written,
            metrics_cpu: sum("process_cpu_seconds_total", &[]),
            throttled: sum("apiserver_request_total", &[("code", "429")]),
            pod_lists: lists.lists,
            pods_listed: lists.listed,
            pods_listed_from_etcd: lists.listed_from_etcd,
            pod_list_seconds: sum(
                "apiserver_request_duration_seconds_sum",
                &[("resource", "pods"), ("verb", "LIST")],
            ),
            watch_events: sum("apiserver_watch_events_total", &[]),
            seats_sum: sum(
                "apiserver_flowcontrol_work_estimated_seats_sum",
                AGENT_LEVEL,
            ),
            seats_count: sum(
                "apiserver_flowcontrol_work_estimated_seats_count",
                AGENT_LEVEL,
            ),
        })
    }
}

const PODS: &[(&str, &str)] = &[("resource", "pods")];

/// Pod LISTs served, the pods they returned, and of those the ones read from etcd.
#[derive(Debug, PartialEq)]
struct PodLists {
    lists: f64,
    listed: f64,
    listed_from_etcd: f64,
}

impl PodLists {
    /// Today's API server (v1.37.2) counts every LIST in `apiserver_storage_list_*`, labelled
    /// `storage="etcd"` or `"cache"`. Older ones (v1.30.14) count only etcd's there, without the
    /// label, and the watch cache's in `apiserver_cache_list_*{resource_prefix="/pods"}`.
    fn of(metrics: &Metrics) -> PodLists {
        const LISTS: &str = "apiserver_storage_list_total";
        const RETURNED: &str = "apiserver_storage_list_returned_objects_total";
        if metrics.has_label(LISTS, "storage") {
            return PodLists {
                lists: metrics.sum(LISTS, PODS),
                listed: metrics.sum(RETURNED, PODS),
                listed_from_etcd: metrics
                    .sum(RETURNED, &[("resource", "pods"), ("storage", "etcd")]),
            };
        }
        const CACHE: &[(&str, &str)] = &[("resource_prefix", "/pods")];
        let from_etcd = metrics.sum(RETURNED, PODS);
        PodLists {
            lists: metrics.sum(LISTS, PODS) + metrics.sum("apiserver_cache_list_total", CACHE),
            listed: from_etcd + metrics.sum("apiserver_cache_list_returned_objects_total", CACHE),
            listed_from_etcd: from_etcd,
        }
    }
}
const AGENT_LEVEL: &[(&str, &str)] = &[("priority_level", "global-default")];

pub(crate) fn pid_of(plane: &ControlPlane, name: &'static str) -> Result<u32> {
    plane.pid(name).ok_or(LabError::NoProcess(name))
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

/// One scrape of Prometheus text.
#[derive(Debug)]
pub struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    /// Parses an API server's `/metrics` page. A page that does not parse, or that has no
    /// `process_cpu_seconds_total` sample (so it is not an API server's metrics page), is an
    /// error: its sums would read as zeros, which a report would show as measured.
    pub fn parse(text: &str) -> Result<Self> {
        const REQUIRED: &str = "process_cpu_seconds_total";
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .map_err(|e| LabError::Metrics(format!("does not parse: {e}")))?;
        if !scrape.samples.iter().any(|s| s.metric == REQUIRED) {
            let first = text.lines().next().unwrap_or_default();
            let first: String = first.chars().take(80).collect();
            return Err(LabError::Metrics(format!(
                "no {REQUIRED} sample in {} bytes (first line: {first:?}): not an API server's \
                 metrics page",
                text.len()
            )));
        }
        Ok(Metrics(scrape))
    }

    /// Whether some sample of `name` has the label `label`.
    fn has_label(&self, name: &str, label: &str) -> bool {
        self.0
            .samples
            .iter()
            .any(|s| s.metric == name && s.labels.get(label).is_some())
    }

    /// The sum of all samples of counter or gauge `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }
}

/// A probe GET that takes longer than this counts as an error.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

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
        // The probe is "everyone else": an ordinary unbudgeted client, as a kubectl would be.
        #[allow(clippy::disallowed_types)]
        let probe = Api::<Node>::all(kube::Client::try_from(
            fleetwatch_control_plane::plane::kubeconfig::config_from(&identities.probe).await?,
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
                match tokio::time::timeout(PROBE_TIMEOUT, probe.get_opt(&target)).await {
                    Ok(Ok(_)) => samples.probe_ms.push(started.elapsed().as_secs_f64() * 1e3),
                    _ => samples.probe_errors += 1,
                }
                samples.peak_rss = samples.peak_rss.max(rss_bytes(apiserver).unwrap_or(0));
            }
        });
        Ok(Sampler { stop, task })
    }

    /// Stops the sampler; a sampler that panicked fails the run.
    pub(crate) async fn stop(self) -> Result<Samples> {
        self.stop.notify_one();
        self.task
            .await
            .map_err(LabError::task("the probe and RSS sampler"))
    }
}

/// What one run cost; the row of `lab load`'s table and of `lab sweep`'s CSV.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadReport {
    pub pattern: String,
    pub nodes: usize,
    pub pods: usize,
    pub agents: usize,
    /// The whole run: start-up, then the steady part of the run's set duration.
    pub seconds: f64,
    /// Start-up: from starting the agents until every one had its first complete view of the
    /// pods (`startup_synced`), or until the run's set duration passed if some never did; and
    /// the API-server CPU seconds in that time (included in `apiserver_cpu_seconds`).
    pub startup_seconds: f64,
    pub startup_synced: bool,
    pub startup_apiserver_cpu_seconds: f64,
    /// kube-apiserver CPU seconds during the whole run, from `/proc`.
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
    /// Pod LISTs the API server served (`apiserver_storage_list_total`; streaming lists that
    /// open a watch are not LISTs) and the pods they returned, and of those from etcd.
    pub pod_lists: u64,
    pub pods_listed: u64,
    pub pods_listed_from_etcd: u64,
    /// Seconds pod LISTs spent in the API server, summed: divided by `seconds`, the mean
    /// number of pod LISTs in flight.
    pub pod_list_seconds: f64,
    /// Watch events the API server sent to watchers, all resources (initial events included).
    pub watch_events_sent: u64,
    /// APF's estimated seats in the agents' priority level (`global-default`): their sum and
    /// how many requests they were for.
    pub agent_level_seats: f64,
    pub agent_level_requests: u64,
    pub probe_p50_ms: Option<f64>,
    pub probe_p99_ms: Option<f64>,
    pub probe_samples: usize,
    pub probe_errors: u64,
    /// Requests the agents made (lists for informers) and how many failed.
    pub agent_requests: u64,
    pub agent_errors: u64,
    /// The API server's release (`v1.37.2`); sweeps written before this column ran v1.37.2.
    #[serde(default = "default_kubernetes_version")]
    pub kubernetes_version: String,
    /// The probe's latencies, for `--out`.
    #[serde(skip, default)]
    pub probe_ms: Vec<f64>,
}

/// The agents' start-up: until every agent had synced (or the run's duration passed).
#[derive(Debug)]
pub(crate) struct Startup {
    pub synced: bool,
    pub snapshot: Snapshot,
}

/// Everything a run measured, for [`LoadReport::new`].
fn default_kubernetes_version() -> String {
    fleetwatch_control_plane::KUBERNETES_VERSION.to_owned()
}

pub(crate) struct Run<'a> {
    pub kubernetes_version: String,
    pub agents: usize,
    pub before: &'a Snapshot,
    pub startup: &'a Startup,
    pub after: &'a Snapshot,
    pub samples: &'a Samples,
    pub outcome: &'a Outcome,
}

impl LoadReport {
    pub(crate) fn new(spec: &LoadSpec, run: &Run<'_>) -> Self {
        let (before, after, samples) = (run.before, run.after, run.samples);
        let seconds = after.at.duration_since(before.at).as_secs_f64();
        let cpu = after.apiserver_cpu - before.apiserver_cpu;
        let mut sorted = samples.probe_ms.clone();
        sorted.sort_by(f64::total_cmp);
        LoadReport {
            kubernetes_version: run.kubernetes_version.clone(),
            pattern: spec.pattern.to_string(),
            nodes: spec.nodes,
            pods: spec.pods,
            agents: run.agents,
            seconds,
            startup_seconds: run
                .startup
                .snapshot
                .at
                .duration_since(before.at)
                .as_secs_f64(),
            startup_synced: run.startup.synced,
            startup_apiserver_cpu_seconds: run.startup.snapshot.apiserver_cpu
                - before.apiserver_cpu,
            apiserver_cpu_seconds: cpu,
            apiserver_cpu_seconds_reported: after.metrics_cpu - before.metrics_cpu,
            apiserver_cpu_ms_per_node_second: cpu * 1e3
                / (spec.nodes.max(1) as f64 * seconds.max(1e-9)),
            apiserver_peak_rss_bytes: samples.peak_rss,
            etcd_cpu_seconds: after.etcd_cpu - before.etcd_cpu,
            apiserver_bytes_written: after
                .apiserver_written
                .saturating_sub(before.apiserver_written),
            throttled_429: count(after.throttled - before.throttled),
            pod_lists: count(after.pod_lists - before.pod_lists),
            pods_listed: count(after.pods_listed - before.pods_listed),
            pods_listed_from_etcd: count(
                after.pods_listed_from_etcd - before.pods_listed_from_etcd,
            ),
            pod_list_seconds: (after.pod_list_seconds - before.pod_list_seconds).max(0.0),
            watch_events_sent: count(after.watch_events - before.watch_events),
            agent_level_seats: (after.seats_sum - before.seats_sum).max(0.0),
            agent_level_requests: count(after.seats_count - before.seats_count),
            probe_p50_ms: percentile(&sorted, 0.50),
            probe_p99_ms: percentile(&sorted, 0.99),
            probe_samples: sorted.len(),
            probe_errors: samples.probe_errors,
            agent_requests: run.outcome.requests,
            agent_errors: run.outcome.errors,
            probe_ms: samples.probe_ms.clone(),
        }
    }

    /// API-server CPU cores after start-up: what the pattern costs for as long as it runs.
    pub fn steady_cores(&self) -> f64 {
        let seconds = self.seconds - self.startup_seconds;
        (self.apiserver_cpu_seconds - self.startup_apiserver_cpu_seconds) / seconds.max(1e-9)
    }
}

/// A counter's increase as a count (never negative: a restarted server resets its counters).
fn count(increase: f64) -> u64 {
    increase.max(0.0).round() as u64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_is_not_metrics_is_an_error_not_zeros() {
        for page in [
            "",
            "<html><body>502 Bad Gateway</body></html>",
            "garbage {{{\n",
        ] {
            let parsed = Metrics::parse(page);
            assert!(
                matches!(parsed, Err(LabError::Metrics(_))),
                "{page:?}: {parsed:?}"
            );
        }
        let page = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n\
                    apiserver_request_total{code=\"429\",verb=\"LIST\"} 3\n\
                    apiserver_request_total{code=\"200\",verb=\"LIST\"} 4\n";
        let metrics = Metrics::parse(page).expect("a metrics page");
        assert!((metrics.sum("process_cpu_seconds_total", &[]) - 12.5).abs() < 1e-12);
        assert!((metrics.sum("apiserver_request_total", &[("code", "429")]) - 3.0).abs() < 1e-12);
    }

    /// Pod LISTs as v1.37.2 and v1.30.14 count them (lines from each one's page, as the lab's
    /// API servers serve them).
    #[test]
    fn pod_lists_are_counted_on_both_releases() {
        let cpu = "process_cpu_seconds_total 1\n";
        let today = format!(
            "{cpu}apiserver_storage_list_total{{group=\"\",index=\"\",resource=\"pods\",storage=\"etcd\"}} 2\n\
             apiserver_storage_list_total{{group=\"\",index=\"\",resource=\"pods\",storage=\"cache\"}} 5\n\
             apiserver_storage_list_returned_objects_total{{group=\"\",resource=\"pods\",storage=\"etcd\"}} 200\n\
             apiserver_storage_list_returned_objects_total{{group=\"\",resource=\"pods\",storage=\"cache\"}} 500\n\
             apiserver_cache_list_total{{index=\"\",resource_prefix=\"/pods\"}} 5\n\
             apiserver_cache_list_returned_objects_total{{resource_prefix=\"/pods\"}} 500\n"
        );
        let incident_era = format!(
            "{cpu}apiserver_storage_list_total{{resource=\"pods\"}} 2\n\
             apiserver_storage_list_total{{resource=\"nodes\"}} 9\n\
             apiserver_storage_list_returned_objects_total{{resource=\"pods\"}} 200\n\
             apiserver_cache_list_total{{index=\"\",resource_prefix=\"/pods\"}} 5\n\
             apiserver_cache_list_total{{index=\"\",resource_prefix=\"/minions\"}} 7\n\
             apiserver_cache_list_returned_objects_total{{resource_prefix=\"/pods\"}} 500\n"
        );
        for page in [today, incident_era] {
            let metrics = Metrics::parse(&page).expect("a metrics page");
            assert_eq!(
                PodLists::of(&metrics),
                PodLists {
                    lists: 7.0,
                    listed: 700.0,
                    listed_from_etcd: 200.0
                },
                "{page}"
            );
        }
    }
}
