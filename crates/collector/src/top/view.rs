//! Two readings of the page → the numbers of `top`'s four tables, before any formatting.
//!
//! The collector's own SLI series are already rates and percentiles over its window, so they
//! are shown as the newer reading has them; only the audit receiver's raw counters are turned
//! into rates here, from the difference between the two readings.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::page::{AUDIT_DURATION, AUDIT_REQUESTS, Reading, Series};
use crate::apiserver::encode::CLUSTER;
use crate::apiserver::window::quantile;

/// The mandatory priority level that APF does not limit.
const EXEMPT: &str = "exempt";

/// A replica's (or the cluster's) health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its `/metrics`, `/readyz` and `/livez` answered at the collector's last scrape.
    Up,
    /// `/metrics` answered, `/readyz` or `/livez` did not.
    Unready,
    /// `/metrics` did not answer.
    Down,
    /// The cluster: how many replicas are up, of how many.
    Cluster { up: usize, of: usize },
}

/// One row of the replica table.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaRow {
    pub replica: String,
    pub state: State,
    pub requests_per_second: Option<f64>,
    pub ratio_5xx: Option<f64>,
    pub ratio_429: Option<f64>,
    /// p99 of single-object GETs (`scope="resource"`, the SLO's single-object calls).
    pub get_p99: Option<f64>,
    /// p99 of namespaced and of cluster-wide LISTs.
    pub list_namespace_p99: Option<f64>,
    pub list_cluster_p99: Option<f64>,
    pub inflight: Option<f64>,
    pub cpu_cores: Option<f64>,
    pub rss_bytes: Option<f64>,
    /// Restarts the collector has seen since it started.
    pub restarts: Option<f64>,
}

/// One row of the APF table: a priority level, or the levels folded past the top N.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelRow {
    pub level: String,
    pub seats_in_use: f64,
    pub seat_limit: Option<f64>,
    pub queued: f64,
    /// p99 of the queue wait; for a folded row, the largest of the folded levels'.
    pub wait_p99: Option<f64>,
    pub rejections_per_second: f64,
}

impl LevelRow {
    /// Seats in use over the limit; `None` without a limit, and for `exempt`, which APF does
    /// not limit (its nominal limit would read as 100% with one request in flight).
    pub fn saturation(&self) -> Option<f64> {
        if self.level == EXEMPT {
            return None;
        }
        self.seat_limit
            .filter(|l| *l > 0.0)
            .map(|l| self.seats_in_use / l)
    }
}

/// One row of the flow-schema table.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub flow_schema: String,
    pub priority_level: String,
    pub execution_seconds_per_second: f64,
    pub dispatched_per_second: f64,
    pub estimated_seats_per_second: f64,
}

/// One row of the audit table: one client (user and user agent).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow {
    pub user: String,
    pub user_agent: String,
    pub requests_per_second: f64,
    /// API-server seconds spent on the client's requests per second (`None` without the
    /// duration histogram).
    pub busy_seconds_per_second: Option<f64>,
    pub p99: Option<f64>,
    pub ratio_4xx: Option<f64>,
    pub ratio_5xx: Option<f64>,
    /// The client's most frequent verb and resource, with its share of the client's requests.
    pub top_call: Option<(String, String, f64)>,
}

/// The audit table, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Audit {
    /// The collector exports no audit family: its webhook receiver is not set up.
    NotConfigured,
    /// Clients by cost, the top N then the rest folded into one row (boxed: a folded row is
    /// large beside the other variant).
    Clients(Box<Folded<ClientRow>>),
}

/// Rows past the top N, folded into one.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded<T> {
    pub rows: Vec<T>,
    pub other: Option<(usize, T)>,
}

/// Everything one screen shows.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub url: String,
    pub read_at: SystemTime,
    /// Seconds between the two readings (the audit rates' interval).
    pub seconds: f64,
    pub lines: usize,
    pub bad_lines: usize,
    pub first_bad: Option<String>,
    /// Replicas by name, then the cluster row.
    pub replicas: Vec<ReplicaRow>,
    /// Priority levels, most saturated first.
    pub levels: Folded<LevelRow>,
    /// Flow schemas, most execution time first.
    pub flows: Folded<FlowRow>,
    pub audit: Audit,
}

/// Builds the view from the previous and the current reading, keeping `top` rows per table.
pub fn build(url: &str, previous: &Reading, current: &Reading, top: usize) -> View {
    View {
        url: url.to_owned(),
        read_at: current.wall,
        seconds: current.at.duration_since(previous.at).as_secs_f64(),
        lines: current.lines,
        bad_lines: current.bad_lines,
        first_bad: current.first_bad.clone(),
        replicas: replicas(current),
        levels: fold(levels(current), top, fold_levels),
        flows: fold(flows(current), top, fold_flows),
        audit: audit(previous, current, top),
    }
}

/// A family's series of one replica (or of the cluster).
fn of_replica<'a>(
    reading: &'a Reading,
    family: &'a str,
    replica: &'a str,
) -> impl Iterator<Item = &'a Series> + 'a {
    reading
        .family(family)
        .filter(move |s| s.label("replica") == replica)
}

fn sum_of(reading: &Reading, family: &str, replica: &str) -> Option<f64> {
    let mut series = of_replica(reading, family, replica).peekable();
    series.peek()?;
    Some(series.map(|s| s.value).sum())
}

fn replicas(reading: &Reading) -> Vec<ReplicaRow> {
    // Every replica the collector knows of: in `up` (answering or not) and in the SLI series.
    let names: BTreeSet<&str> = reading
        .series
        .iter()
        .map(|s| s.label("replica"))
        .filter(|r| !r.is_empty() && *r != CLUSTER)
        .collect();
    let mut rows: Vec<ReplicaRow> = names
        .iter()
        .map(|name| row_of(reading, name, replica_state(reading, name)))
        .collect();
    let up = rows.iter().filter(|r| r.state != State::Down).count();
    let mut cluster = row_of(reading, CLUSTER, State::Cluster { up, of: rows.len() });
    // The collector exports restarts per replica only: the cluster's are their sum.
    cluster.restarts = rows.iter().filter_map(|r| r.restarts).reduce(|a, b| a + b);
    rows.push(cluster);
    rows
}

fn replica_state(reading: &Reading, replica: &str) -> State {
    let up = |endpoint: &str| {
        reading
            .family("up")
            .find(|s| s.label("replica") == replica && s.label("endpoint") == endpoint)
            .map(|s| s.value >= 1.0)
    };
    match (up("metrics"), up("readyz"), up("livez")) {
        (Some(true), Some(false), _) | (Some(true), _, Some(false)) => State::Unready,
        (Some(true), _, _) => State::Up,
        _ => State::Down,
    }
}

fn row_of(reading: &Reading, replica: &str, state: State) -> ReplicaRow {
    let rates: Vec<&Series> = of_replica(reading, "requests_per_second", replica).collect();
    let total: f64 = rates.iter().map(|s| s.value).sum();
    let ratio = |wanted: fn(&str) -> bool| {
        (!rates.is_empty() && total > 0.0).then(|| {
            let part: f64 = rates
                .iter()
                .filter(|s| wanted(s.label("code")))
                .map(|s| s.value)
                .sum();
            part / total
        })
    };
    ReplicaRow {
        replica: replica.to_owned(),
        state,
        requests_per_second: (!rates.is_empty()).then_some(total),
        ratio_5xx: ratio(|code| code.starts_with('5')),
        ratio_429: ratio(|code| code == "429"),
        get_p99: p99(reading, replica, "GET", "resource"),
        list_namespace_p99: p99(reading, replica, "LIST", "namespace"),
        list_cluster_p99: p99(reading, replica, "LIST", "cluster"),
        inflight: sum_of(reading, "inflight_requests", replica),
        cpu_cores: sum_of(reading, "cpu_cores", replica),
        rss_bytes: sum_of(reading, "resident_memory_bytes", replica),
        restarts: sum_of(reading, "restarts_total", replica),
    }
}

fn p99(reading: &Reading, replica: &str, verb: &str, scope: &str) -> Option<f64> {
    of_replica(reading, "request_duration_seconds", replica)
        .find(|s| {
            s.label("verb") == verb && s.label("scope") == scope && s.label("percentile") == "99"
        })
        .map(|s| s.value)
}

/// Per label value of `by`, the sum of a family's cluster-wide series.
fn cluster_sums(reading: &Reading, family: &str, by: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut sums = BTreeMap::new();
    for series in of_replica(reading, family, CLUSTER) {
        let key = by.iter().map(|l| series.label(l).to_owned()).collect();
        *sums.entry(key).or_insert(0.0) += series.value;
    }
    sums
}

fn levels(reading: &Reading) -> Vec<LevelRow> {
    let by = ["priority_level"];
    let in_use = cluster_sums(reading, "flowcontrol_executing_seats", &by);
    let limit = cluster_sums(reading, "flowcontrol_seat_limit", &by);
    let queued = cluster_sums(reading, "flowcontrol_queued_requests", &by);
    let rejected = cluster_sums(reading, "flowcontrol_rejections_per_second", &by);
    let wait: BTreeMap<Vec<String>, f64> =
        of_replica(reading, "flowcontrol_wait_duration_seconds", CLUSTER)
            .filter(|s| s.label("percentile") == "99")
            .map(|s| (vec![s.label("priority_level").to_owned()], s.value))
            .collect();
    let keys: BTreeSet<&Vec<String>> = [&in_use, &limit, &queued, &rejected, &wait]
        .into_iter()
        .flat_map(BTreeMap::keys)
        .collect();
    let mut rows: Vec<LevelRow> = keys
        .into_iter()
        .map(|key| LevelRow {
            level: key[0].clone(),
            seats_in_use: in_use.get(key).copied().unwrap_or(0.0),
            seat_limit: limit.get(key).copied(),
            queued: queued.get(key).copied().unwrap_or(0.0),
            wait_p99: wait.get(key).copied(),
            rejections_per_second: rejected.get(key).copied().unwrap_or(0.0),
        })
        .collect();
    rows.sort_by(|a, b| {
        let saturation = |r: &LevelRow| r.saturation().unwrap_or(f64::NEG_INFINITY);
        saturation(b)
            .total_cmp(&saturation(a))
            .then(b.rejections_per_second.total_cmp(&a.rejections_per_second))
            .then(b.queued.total_cmp(&a.queued))
            .then_with(|| a.level.cmp(&b.level))
    });
    rows
}

fn flows(reading: &Reading) -> Vec<FlowRow> {
    let by = ["flow_schema", "priority_level"];
    let executing = cluster_sums(reading, "flowcontrol_execution_seconds_per_second", &by);
    let dispatched = cluster_sums(reading, "flowcontrol_dispatched_per_second", &by);
    let seats = cluster_sums(reading, "flowcontrol_estimated_seats_per_second", &by);
    let keys: BTreeSet<&Vec<String>> = [&executing, &dispatched, &seats]
        .into_iter()
        .flat_map(BTreeMap::keys)
        .collect();
    let mut rows: Vec<FlowRow> = keys
        .into_iter()
        .map(|key| FlowRow {
            flow_schema: key[0].clone(),
            priority_level: key[1].clone(),
            execution_seconds_per_second: executing.get(key).copied().unwrap_or(0.0),
            dispatched_per_second: dispatched.get(key).copied().unwrap_or(0.0),
            estimated_seats_per_second: seats.get(key).copied().unwrap_or(0.0),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.execution_seconds_per_second
            .total_cmp(&a.execution_seconds_per_second)
            .then(b.dispatched_per_second.total_cmp(&a.dispatched_per_second))
            .then_with(|| a.flow_schema.cmp(&b.flow_schema))
    });
    rows
}

/// Keeps the first `top` rows (already sorted) and folds the rest into one.
fn fold<T>(mut rows: Vec<T>, top: usize, combine: fn(Vec<T>) -> T) -> Folded<T> {
    if rows.len() <= top {
        return Folded { rows, other: None };
    }
    let rest = rows.split_off(top);
    let count = rest.len();
    Folded {
        rows,
        other: Some((count, combine(rest))),
    }
}

fn fold_levels(rest: Vec<LevelRow>) -> LevelRow {
    let limits: Vec<f64> = rest.iter().filter_map(|r| r.seat_limit).collect();
    LevelRow {
        level: "other".to_owned(),
        seats_in_use: rest.iter().map(|r| r.seats_in_use).sum(),
        seat_limit: (!limits.is_empty()).then(|| limits.iter().sum()),
        queued: rest.iter().map(|r| r.queued).sum(),
        // Percentiles do not add up: the worst of the folded levels is what matters.
        wait_p99: rest.iter().filter_map(|r| r.wait_p99).reduce(f64::max),
        rejections_per_second: rest.iter().map(|r| r.rejections_per_second).sum(),
    }
}

fn fold_flows(rest: Vec<FlowRow>) -> FlowRow {
    FlowRow {
        flow_schema: "other".to_owned(),
        priority_level: String::new(),
        execution_seconds_per_second: rest.iter().map(|r| r.execution_seconds_per_second).sum(),
        dispatched_per_second: rest.iter().map(|r| r.dispatched_per_second).sum(),
        estimated_seats_per_second: rest.iter().map(|r| r.estimated_seats_per_second).sum(),
    }
}

/// A counter's increase between two readings, counting a reset (a smaller value) as a restart
/// from zero, as Prometheus' `rate()` does; a series new in `current` started from zero.
fn increase(previous: Option<f64>, current: f64) -> f64 {
    match previous {
        Some(before) if current >= before => current - before,
        _ => current,
    }
}

/// Increases of every sample named `name` between the readings, keyed by their labels.
fn increases<'a>(
    previous: &'a Reading,
    current: &'a Reading,
    name: &'a str,
) -> Vec<(&'a Series, f64)> {
    let before: BTreeMap<&BTreeMap<String, String>, f64> =
        previous.named(name).map(|s| (&s.labels, s.value)).collect();
    current
        .named(name)
        .map(|s| (s, increase(before.get(&s.labels).copied(), s.value)))
        .collect()
}

/// What two readings say about one client.
#[derive(Debug, Default)]
struct ClientTally {
    requests: f64,
    by_class: BTreeMap<String, f64>,
    by_call: BTreeMap<(String, String), f64>,
    seconds: Option<f64>,
    /// Increase of each cumulative bucket, by upper bound.
    buckets: BTreeMap<u64, (f64, f64)>,
}

type ClientKey = (String, String);

fn client_key(series: &Series) -> ClientKey {
    (
        series.label("user").to_owned(),
        series.label("user_agent").to_owned(),
    )
}

fn audit(previous: &Reading, current: &Reading, top: usize) -> Audit {
    if !previous.has_audit && !current.has_audit {
        return Audit::NotConfigured;
    }
    let seconds = current.at.duration_since(previous.at).as_secs_f64();
    let mut clients: BTreeMap<ClientKey, ClientTally> = BTreeMap::new();
    tally_requests(previous, current, &mut clients);
    tally_durations(previous, current, &mut clients);
    let mut rows: Vec<ClientRow> = clients
        .into_iter()
        .map(|(key, tally)| client_row(key, &tally, seconds))
        .collect();
    rows.sort_by(|a, b| {
        let busy = |r: &ClientRow| r.busy_seconds_per_second.unwrap_or(0.0);
        busy(b)
            .total_cmp(&busy(a))
            .then(b.requests_per_second.total_cmp(&a.requests_per_second))
            .then_with(|| (&a.user, &a.user_agent).cmp(&(&b.user, &b.user_agent)))
    });
    Audit::Clients(Box::new(fold(rows, top, fold_clients)))
}

fn tally_requests(
    previous: &Reading,
    current: &Reading,
    clients: &mut BTreeMap<ClientKey, ClientTally>,
) {
    for (series, delta) in increases(previous, current, AUDIT_REQUESTS) {
        let tally = clients.entry(client_key(series)).or_default();
        tally.requests += delta;
        *tally
            .by_class
            .entry(series.label("code_class").to_owned())
            .or_insert(0.0) += delta;
        let call = (
            series.label("verb").to_owned(),
            series.label("resource").to_owned(),
        );
        *tally.by_call.entry(call).or_insert(0.0) += delta;
    }
}

fn tally_durations(
    previous: &Reading,
    current: &Reading,
    clients: &mut BTreeMap<ClientKey, ClientTally>,
) {
    let sum_name = format!("{AUDIT_DURATION}_sum");
    for (series, delta) in increases(previous, current, &sum_name) {
        let tally = clients.entry(client_key(series)).or_default();
        *tally.seconds.get_or_insert(0.0) += delta;
    }
    let bucket_name = format!("{AUDIT_DURATION}_bucket");
    for (series, delta) in increases(previous, current, &bucket_name) {
        let Some(le) = parse_le(series.label("le")) else {
            continue;
        };
        let tally = clients.entry(client_key(series)).or_default();
        // Keyed by the bound's bits (positive floats sort as their bits do) to add up the
        // same bucket of every verb and resource.
        tally.buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += delta;
    }
}

fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => le.parse().ok().filter(|v: &f64| *v >= 0.0),
    }
}

fn client_row((user, user_agent): ClientKey, tally: &ClientTally, seconds: f64) -> ClientRow {
    let per_second = |v: f64| if seconds > 0.0 { v / seconds } else { 0.0 };
    let ratio = |class: &str| {
        (tally.requests > 0.0)
            .then(|| tally.by_class.get(class).copied().unwrap_or(0.0) / tally.requests)
    };
    let top_call = tally
        .by_call
        .iter()
        .filter(|(_, n)| **n > 0.0)
        .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|((verb, resource), n)| (verb.clone(), resource.clone(), n / tally.requests));
    let buckets: Vec<(f64, f64)> = tally.buckets.values().copied().collect();
    ClientRow {
        user,
        user_agent,
        requests_per_second: per_second(tally.requests),
        busy_seconds_per_second: tally.seconds.map(per_second),
        p99: quantile(0.99, &buckets),
        ratio_4xx: ratio("4xx"),
        ratio_5xx: ratio("5xx"),
        top_call,
    }
}

fn fold_clients(rest: Vec<ClientRow>) -> ClientRow {
    let requests: f64 = rest.iter().map(|r| r.requests_per_second).sum();
    let weighted = |ratio: fn(&ClientRow) -> Option<f64>| {
        (requests > 0.0).then(|| {
            rest.iter()
                .map(|r| ratio(r).unwrap_or(0.0) * r.requests_per_second)
                .sum::<f64>()
                / requests
        })
    };
    ClientRow {
        user: "other".to_owned(),
        user_agent: String::new(),
        requests_per_second: requests,
        busy_seconds_per_second: rest
            .iter()
            .filter_map(|r| r.busy_seconds_per_second)
            .reduce(|a, b| a + b),
        p99: rest.iter().filter_map(|r| r.p99).reduce(f64::max),
        ratio_4xx: weighted(|r| r.ratio_4xx),
        ratio_5xx: weighted(|r| r.ratio_5xx),
        top_call: None,
    }
}
