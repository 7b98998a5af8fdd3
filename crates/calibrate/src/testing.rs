//! Test support: the runs a sweep would measure on a synthetic API server with known costs, and
//! the CSV text of runs, so that the tests read them the way the CLI does.

use std::path::Path;

use fleetwatch_sim::rng;

use crate::inputs::{Pattern, Run, Sweep};

/// The costs a synthetic API server charges.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Truth {
    pub per_list: f64,
    pub per_object_from_cache: f64,
    pub per_object_from_etcd: f64,
    pub per_watch_event: f64,
    pub bytes_per_object_listed: f64,
    pub bytes_per_cached_object: f64,
    pub objects_per_seat: f64,
    pub max_seats: f64,
}

impl Default for Truth {
    fn default() -> Self {
        Truth {
            per_list: 2e-3,
            per_object_from_cache: 4e-6,
            per_object_from_etcd: 15e-6,
            per_watch_event: 8e-6,
            bytes_per_object_listed: 30_000.0,
            bytes_per_cached_object: 6_000.0,
            objects_per_seat: 100.0,
            max_seats: 10.0,
        }
    }
}

/// How the synthetic sweep runs.
#[derive(Debug, Clone)]
pub(crate) struct SweepSpec {
    pub sizes: Vec<usize>,
    pub pods_per_node: usize,
    /// Whether the node-scoped LISTs read etcd (else every LIST is served from the cache).
    pub node_lists_from_etcd: bool,
    /// Relative noise on CPU and RSS, uniform in ±noise.
    pub noise: f64,
    pub seed: u64,
}

impl Default for SweepSpec {
    fn default() -> Self {
        SweepSpec {
            sizes: vec![50, 100, 200, 500, 1000],
            pods_per_node: 30,
            node_lists_from_etcd: false,
            noise: 0.0,
            seed: 1,
        }
    }
}

impl SweepSpec {
    /// How many runs the fits over non-idle runs see.
    pub fn agent_runs(&self) -> usize {
        self.sizes.len() * (Pattern::ALL.len() - 1)
    }
}

/// The rows a sweep would measure on an API server that charges `t`: every pattern at every
/// size, in that order.
pub(crate) fn synthetic(t: &Truth, spec: &SweepSpec) -> Vec<Run> {
    let mut rng = rng::stream(spec.seed, 0);
    let mut jitter = move || 1.0 + rng::uniform(&mut rng, -spec.noise, spec.noise);
    let seconds = 60.0;
    let mut rows = Vec::new();
    for &nodes in &spec.sizes {
        let ppn = spec.pods_per_node;
        let pods = nodes * ppn;
        let (n, p) = (nodes as f64, pods as f64);
        let probe = 10.0 * seconds;
        let churn_events = 2.0 * seconds * 3.0;
        let background_cpu = 0.002 * n * seconds / 60.0 + probe * 1e-3;
        let idle_rss = 3e8 + t.bytes_per_cached_object * (p + n);
        for pattern in Pattern::ALL {
            // (lists, objects per list, from etcd, watch events) the agents cause.
            let events_per_pod = 0.01 * seconds;
            let (lists, per_list, etcd, events) = match pattern {
                Pattern::Idle => (0.0, 0.0, false, 0.0),
                Pattern::NaiveList => (n * seconds / 10.0, p, false, 0.0),
                Pattern::NaiveListNode => (
                    n * seconds / 10.0,
                    ppn as f64,
                    spec.node_lists_from_etcd,
                    0.0,
                ),
                Pattern::WatchAll => (n, p, false, n * p * events_per_pod),
                Pattern::WatchNode => (n, ppn as f64, false, p * events_per_pod),
                Pattern::Fleetwatch => (1.0, p, false, p * events_per_pod),
            };
            let listed = lists * per_list;
            let from_etcd = if etcd { listed } else { 0.0 };
            // A node's LIST from etcd reads every pod of the cluster (a real API server's cost).
            let read_from_etcd = if pattern == Pattern::NaiveListNode {
                from_etcd * n
            } else {
                from_etcd
            };
            let list_seconds = lists * (0.001 + per_list * 2e-6);
            let in_flight = list_seconds / seconds;
            let cpu = background_cpu
                + t.per_list * lists
                + t.per_object_from_cache * (listed - from_etcd)
                + t.per_object_from_etcd * read_from_etcd
                + t.per_watch_event * (events + churn_events);
            let rss = idle_rss + t.bytes_per_object_listed * in_flight * per_list;
            let seats_per_list = if pattern == Pattern::NaiveList {
                (per_list / t.objects_per_seat)
                    .ceil()
                    .clamp(1.0, t.max_seats)
            } else {
                t.max_seats
            };
            rows.push(Run {
                pattern,
                nodes,
                pods,
                seconds,
                apiserver_cpu_seconds: cpu * jitter(),
                apiserver_peak_rss_bytes: (rss * jitter()).round() as u64,
                pod_lists: lists.round() as u64,
                pods_listed: listed.round() as u64,
                pods_listed_from_etcd: from_etcd.round() as u64,
                pod_list_seconds: list_seconds,
                watch_events_sent: (events + churn_events).round() as u64,
                agent_level_seats: probe + lists * seats_per_list,
                agent_level_requests: (probe + lists).round() as u64,
                throttled_429: 0,
            });
        }
    }
    rows
}

/// One noiseless synthetic run of `pattern` at `nodes` nodes.
pub(crate) fn run(pattern: Pattern, nodes: usize) -> Run {
    let spec = SweepSpec {
        sizes: vec![nodes],
        ..SweepSpec::default()
    };
    let mut runs = synthetic(&Truth::default(), &spec);
    runs.retain(|r| r.pattern == pattern);
    runs.remove(0)
}

/// `runs` as a CSV with these columns, in this order: the columns a [`Run`] is read from hold
/// its fields, any other column holds `x`.
pub(crate) fn csv_text(columns: &[&str], runs: &[Run]) -> String {
    let mut text = columns.join(",") + "\n";
    for run in runs {
        let fields: Vec<String> = columns.iter().map(|c| field(run, c)).collect();
        text += &fields.join(",");
        text.push('\n');
    }
    text
}

fn field(run: &Run, column: &str) -> String {
    match column {
        "pattern" => run.pattern.to_string(),
        "nodes" => run.nodes.to_string(),
        "pods" => run.pods.to_string(),
        "seconds" => run.seconds.to_string(),
        "apiserver_cpu_seconds" => run.apiserver_cpu_seconds.to_string(),
        "apiserver_peak_rss_bytes" => run.apiserver_peak_rss_bytes.to_string(),
        "pod_lists" => run.pod_lists.to_string(),
        "pods_listed" => run.pods_listed.to_string(),
        "pods_listed_from_etcd" => run.pods_listed_from_etcd.to_string(),
        "pod_list_seconds" => run.pod_list_seconds.to_string(),
        "watch_events_sent" => run.watch_events_sent.to_string(),
        "agent_level_seats" => run.agent_level_seats.to_string(),
        "agent_level_requests" => run.agent_level_requests.to_string(),
        "throttled_429" => run.throttled_429.to_string(),
        _ => "x".to_owned(),
    }
}

/// `runs` read back through their CSV, as the CLI reads a sweep.
pub(crate) fn sweep(runs: &[Run]) -> Sweep {
    let text = csv_text(&Run::COLUMNS, runs);
    Sweep::parse(Path::new("synthetic.csv"), text.as_bytes()).expect("synthetic runs are valid")
}
