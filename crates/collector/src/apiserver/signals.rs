//! Which of the API server's own series the collector keeps, and what it derives from each: the
//! one table to edit to add an SLI.
//!
//! Each [`Signal`] reads one family of a kube-apiserver `/metrics` page, keeps a few of its labels
//! (summing over the rest, which bounds cardinality: never per pod or per client) and derives a
//! rate, quantiles or the last value over the sliding window. Names were checked against a real
//! v1.37.2 page from the lab (`crates/collector/tests/apiserver.rs` fails if one disappears).

/// What is derived from a signal's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derive {
    /// Per-second increase of a counter over the window (resets counted as restarts from zero).
    Rate,
    /// Per-second increase of a histogram's `_sum` (e.g. seconds of execution per second).
    RateOfSum,
    /// p50, p90 and p99 of a histogram's observations within the window.
    Quantiles,
    /// The gauge's latest value.
    Last,
}

/// How replicas combine into the cluster's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Each replica serves its own share (requests, in-flight, CPU): add them.
    Sum,
    /// Every replica sees the same thing (etcd's size, stored objects): take the largest.
    Max,
}

/// Whether to leave a sample out, given its label lookup.
pub type Skip = fn(&dyn Fn(&str) -> Option<String>) -> bool;

/// One derived series family.
#[derive(Debug)]
pub struct Signal {
    /// The exported family, without the `fleetwatch_collector_apiserver_` prefix.
    pub name: &'static str,
    pub help: &'static str,
    /// The API server's family it is derived from.
    pub source: &'static str,
    /// The source labels kept, in this order; the others are summed over.
    pub by: &'static [&'static str],
    pub derive: Derive,
    pub combine: Combine,
    /// Samples to leave out (e.g. long-running requests, whose latency is their lifetime).
    pub skip: Option<Skip>,
}

/// The prefix of every exported family.
pub const PREFIX: &str = "fleetwatch_collector_apiserver_";

/// Watches and CONNECTs last as long as the client wants: their duration is not latency.
fn long_running(label: &dyn Fn(&str) -> Option<String>) -> bool {
    matches!(label("verb").as_deref(), Some("WATCH" | "CONNECT"))
}

fn not_a_watch(label: &dyn Fn(&str) -> Option<String>) -> bool {
    label("verb").as_deref() != Some("WATCH")
}

const fn signal(
    name: &'static str,
    help: &'static str,
    source: &'static str,
    by: &'static [&'static str],
    derive: Derive,
    combine: Combine,
) -> Signal {
    Signal {
        name,
        help,
        source,
        by,
        derive,
        combine,
        skip: None,
    }
}

use Combine::{Max, Sum};
use Derive::{Last, Quantiles, Rate, RateOfSum};

/// Every signal the collector derives.
pub const SIGNALS: &[Signal] = &[
    signal(
        "requests_per_second",
        "Requests served per second, by verb and HTTP code, over the window",
        "apiserver_request_total",
        &["verb", "code"],
        Rate,
        Sum,
    ),
    Signal {
        skip: Some(long_running),
        ..signal(
            "request_duration_seconds",
            "Request latency quantiles by verb and scope over the window (WATCH and CONNECT left out)",
            "apiserver_request_duration_seconds",
            &["verb", "scope"],
            Quantiles,
            Sum,
        )
    },
    signal(
        "inflight_requests",
        "Requests being served, by kind (mutating or read-only)",
        "apiserver_current_inflight_requests",
        &["request_kind"],
        Last,
        Sum,
    ),
    signal(
        "flowcontrol_executing_seats",
        "APF seats in use, by priority level",
        "apiserver_flowcontrol_current_executing_seats",
        &["priority_level"],
        Last,
        Sum,
    ),
    signal(
        "flowcontrol_seat_limit",
        "APF seat limit, by priority level",
        "apiserver_flowcontrol_current_limit_seats",
        &["priority_level"],
        Last,
        Sum,
    ),
    signal(
        "flowcontrol_queued_requests",
        "Requests waiting in APF queues, by priority level",
        "apiserver_flowcontrol_current_inqueue_requests",
        &["priority_level"],
        Last,
        Sum,
    ),
    signal(
        "flowcontrol_wait_duration_seconds",
        "APF queue wait quantiles, by priority level, over the window",
        "apiserver_flowcontrol_request_wait_duration_seconds",
        &["priority_level"],
        Quantiles,
        Sum,
    ),
    signal(
        "flowcontrol_rejections_per_second",
        "Requests APF rejected per second, by priority level and reason, over the window",
        "apiserver_flowcontrol_rejected_requests_total",
        &["priority_level", "reason"],
        Rate,
        Sum,
    ),
    signal(
        "flowcontrol_dispatched_per_second",
        "Requests APF dispatched per second, by flow schema: who is sending the load",
        "apiserver_flowcontrol_dispatched_requests_total",
        &["priority_level", "flow_schema"],
        Rate,
        Sum,
    ),
    signal(
        "flowcontrol_execution_seconds_per_second",
        "Seconds of request execution per second, by flow schema: who the API server works for",
        "apiserver_flowcontrol_request_execution_seconds",
        &["priority_level", "flow_schema"],
        RateOfSum,
        Sum,
    ),
    signal(
        "flowcontrol_estimated_seats_per_second",
        "APF's estimated seats of dispatched requests per second, by flow schema (a LIST's \
         estimate grows with the objects it reads)",
        "apiserver_flowcontrol_work_estimated_seats",
        &["priority_level", "flow_schema"],
        RateOfSum,
        Sum,
    ),
    signal(
        "etcd_request_duration_seconds",
        "etcd request latency quantiles, by operation, over the window",
        "etcd_request_duration_seconds",
        &["operation"],
        Quantiles,
        Sum,
    ),
    signal(
        "storage_size_bytes",
        "Size of the etcd database",
        "apiserver_storage_size_bytes",
        &[],
        Last,
        Max,
    ),
    signal(
        "stored_objects",
        "Objects stored, by resource (apiserver_resource_objects, which replaced \
         apiserver_storage_objects)",
        "apiserver_resource_objects",
        &["group", "resource"],
        Last,
        Max,
    ),
    Signal {
        skip: Some(not_a_watch),
        ..signal(
            "watches",
            "Watches open, by resource (apiserver_registered_watchers is gone from 1.37's page)",
            "apiserver_longrunning_requests",
            &["group", "resource"],
            Last,
            Sum,
        )
    },
    signal(
        "watch_events_per_second",
        "Watch events sent per second, by kind, over the window",
        "apiserver_watch_events_total",
        &["group", "kind"],
        Rate,
        Sum,
    ),
    signal(
        "cache_list_returned_objects_per_second",
        "Objects returned by LISTs served from the watch cache per second, by resource",
        "apiserver_cache_list_returned_objects_total",
        &["resource_prefix"],
        Rate,
        Sum,
    ),
    signal(
        "storage_list_returned_objects_per_second",
        "Objects returned by LISTs served from etcd per second, by resource: what an agent that \
         LISTs without a resourceVersion lights up",
        "apiserver_storage_list_returned_objects_total",
        &["resource"],
        Rate,
        Sum,
    ),
    signal(
        "cpu_cores",
        "CPU used by the API server process, in cores, over the window",
        "process_cpu_seconds_total",
        &[],
        Rate,
        Sum,
    ),
    signal(
        "resident_memory_bytes",
        "Resident memory of the API server process",
        "process_resident_memory_bytes",
        &[],
        Last,
        Sum,
    ),
];

/// The family that tells a restart: a new start time is a new process.
pub const START_TIME: &str = "process_start_time_seconds";

/// The quantiles derived from histograms, with their `percentile` label.
pub const QUANTILES: [(f64, &str); 3] = [(0.5, "50"), (0.9, "90"), (0.99, "99")];
