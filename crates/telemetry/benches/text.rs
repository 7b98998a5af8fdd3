//! Parsing a kube-apiserver-like `/metrics` page of about 5 MB: this crate's `text::parse`
//! (alone, and with every histogram grouped into series as the collector will) against the
//! `prometheus-parse` crate, side by side, with throughput.
//!
//! The page is generated: request-duration and SLI-duration histograms (24 buckets, the
//! API server's) by verb, resource and scope, response-size histograms, etcd request
//! histograms by operation and type, request counters by code, and a few gauges — label sets
//! and value formats as kube-apiserver writes them.
//!
//! `cargo bench -p fleetwatch-telemetry --bench text -- --warm-up-time 1 --measurement-time 5`

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use fleetwatch_telemetry::text;

const TARGET_BYTES: usize = 5 << 20;

const DURATION_BUCKETS: [&str; 24] = [
    "0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1", "1.25", "1.5", "2", "3", "4",
    "5", "6", "8", "10", "15", "20", "30", "45", "60", "+Inf",
];
const SIZE_BUCKETS: [&str; 9] = [
    "100", "1000", "10000", "100000", "1e+06", "1e+07", "1e+08", "1e+09", "+Inf",
];
const VERBS: [(&str, &str); 8] = [
    ("GET", "namespace"),
    ("LIST", "cluster"),
    ("LIST", "namespace"),
    ("WATCH", "namespace"),
    ("POST", "namespace"),
    ("PUT", "resource"),
    ("PATCH", "resource"),
    ("DELETE", "resource"),
];
const RESOURCES: [(&str, &str); 24] = [
    ("", "pods"),
    ("", "nodes"),
    ("", "services"),
    ("", "endpoints"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "events"),
    ("", "namespaces"),
    ("", "serviceaccounts"),
    ("", "persistentvolumeclaims"),
    ("", "persistentvolumes"),
    ("", "limitranges"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("coordination.k8s.io", "leases"),
    ("discovery.k8s.io", "endpointslices"),
    ("networking.k8s.io", "ingresses"),
    ("policy", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io", "roles"),
    ("storage.k8s.io", "storageclasses"),
];
const CODES: [&str; 6] = ["200", "201", "404", "409", "429", "500"];

/// A deterministic stand-in for random counts.
struct Counts(u64);

impl Counts {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

fn help_and_type(page: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(page, "# HELP {name} [STABLE] {help}");
    let _ = writeln!(page, "# TYPE {name} {kind}");
}

fn histogram(page: &mut String, counts: &mut Counts, name: &str, labels: &str, buckets: &[&str]) {
    let mut cumulative = 0;
    for le in buckets {
        cumulative += counts.next(5000);
        let _ = writeln!(page, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let sum = counts.next(10_000_000) as f64 / 997.0;
    let _ = writeln!(page, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(page, "{name}_count{{{labels}}} {cumulative}");
}

fn request_labels(
    component: usize,
    group: &str,
    resource: &str,
    scope: &str,
    verb: &str,
) -> String {
    format!(
        "component=\"apiserver-{component}\",dry_run=\"\",group=\"{group}\",resource=\"{resource}\",\
         scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v1\""
    )
}

/// A page shaped like kube-apiserver's `/metrics`, of at least `target` bytes (the request
/// families repeat per component until it is that big).
fn apiserver_page(target: usize) -> String {
    let mut page = String::with_capacity(target + (1 << 20));
    let mut counts = Counts(42);
    let components = 1 + target / 1_400_000;
    help_and_type(
        &mut page,
        "apiserver_current_inflight_requests",
        "gauge",
        "Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
    );
    for kind in ["mutating", "readOnly"] {
        let _ = writeln!(
            page,
            "apiserver_current_inflight_requests{{request_kind=\"{kind}\"}} {}",
            counts.next(400)
        );
    }
    help_and_type(
        &mut page,
        "apiserver_request_duration_seconds",
        "histogram",
        "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
    );
    for component in 0..components {
        for (group, resource) in RESOURCES {
            for (verb, scope) in VERBS {
                let labels = request_labels(component, group, resource, scope, verb);
                histogram(
                    &mut page,
                    &mut counts,
                    "apiserver_request_duration_seconds",
                    &labels,
                    &DURATION_BUCKETS,
                );
            }
        }
    }
    help_and_type(
        &mut page,
        "apiserver_request_total",
        "counter",
        "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
    );
    for component in 0..components {
        for (group, resource) in RESOURCES {
            for (verb, scope) in VERBS {
                for code in CODES {
                    let labels = request_labels(component, group, resource, scope, verb);
                    let _ = writeln!(
                        page,
                        "apiserver_request_total{{code=\"{code}\",{labels}}} {}",
                        counts.next(1_000_000)
                    );
                }
            }
        }
    }
    help_and_type(
        &mut page,
        "apiserver_response_sizes",
        "histogram",
        "Response size distribution in bytes for each group, version, verb, resource, subresource, scope and component.",
    );
    for component in 0..components {
        for (group, resource) in RESOURCES {
            for (verb, scope) in VERBS
                .iter()
                .filter(|(verb, _)| matches!(*verb, "GET" | "LIST"))
            {
                let labels = request_labels(component, group, resource, scope, verb);
                histogram(
                    &mut page,
                    &mut counts,
                    "apiserver_response_sizes",
                    &labels,
                    &SIZE_BUCKETS,
                );
            }
        }
    }
    help_and_type(
        &mut page,
        "etcd_request_duration_seconds",
        "histogram",
        "Etcd request latency in seconds for each operation and object type.",
    );
    for operation in ["get", "list", "listWithCount", "create", "update", "delete"] {
        for (_, resource) in RESOURCES {
            let labels = format!("operation=\"{operation}\",type=\"/registry/{resource}\"");
            histogram(
                &mut page,
                &mut counts,
                "etcd_request_duration_seconds",
                &labels,
                &DURATION_BUCKETS,
            );
        }
    }
    // The SLI histogram repeats until the page is big enough.
    help_and_type(
        &mut page,
        "apiserver_request_sli_duration_seconds",
        "histogram",
        "Response latency distribution (not counting webhook duration and priority & fairness queue wait times) in seconds for each verb, group, version, resource, subresource, scope and component.",
    );
    let mut component = 0;
    while page.len() < target {
        for (group, resource) in RESOURCES {
            for (verb, scope) in VERBS {
                let labels = request_labels(component, group, resource, scope, verb);
                histogram(
                    &mut page,
                    &mut counts,
                    "apiserver_request_sli_duration_seconds",
                    &labels,
                    &DURATION_BUCKETS,
                );
            }
        }
        component += 1;
    }
    help_and_type(
        &mut page,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(page, "process_resident_memory_bytes 1.18747136e+09");
    page
}

fn prometheus_parse(page: &str) -> prometheus_parse::Scrape {
    // Its API takes owned lines, as from `BufRead::lines`.
    let lines = page.lines().map(|line| Ok(line.to_owned()));
    match prometheus_parse::Scrape::parse(lines) {
        Ok(scrape) => scrape,
        Err(error) => panic!("prometheus-parse failed: {error}"),
    }
}

fn parse_and_group(page: &str) -> usize {
    let parsed = text::parse(page);
    parsed
        .families()
        .map(|family| family.histograms().len())
        .sum()
}

/// The median of a few timed runs, for the ratio line.
fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let page = apiserver_page(TARGET_BYTES);
    let parsed = text::parse(&page);
    assert_eq!(parsed.error_count(), 0, "{:?}", parsed.errors());
    let theirs = prometheus_parse(&page);
    eprintln!(
        "page: {:.2} MiB, {} lines, {} families, {} samples ({} after prometheus-parse's grouping), {} histogram series",
        page.len() as f64 / f64::from(1 << 20),
        parsed.line_count(),
        parsed.families().len(),
        parsed.sample_count(),
        theirs.samples.len(),
        parse_and_group(&page),
    );
    drop(parsed);
    drop(theirs);

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("kube-apiserver page");
    group.throughput(Throughput::Bytes(page.len() as u64));
    group.sample_size(10);
    group.bench_function("fleetwatch text::parse", |b| {
        b.iter(|| text::parse(black_box(&page)))
    });
    group.bench_function("fleetwatch text::parse + histograms", |b| {
        b.iter(|| parse_and_group(black_box(&page)))
    });
    group.bench_function("prometheus-parse Scrape::parse", |b| {
        b.iter(|| prometheus_parse(black_box(&page)))
    });
    group.finish();
    criterion.final_summary();

    let ours = median_time(5, || drop(black_box(text::parse(black_box(&page)))));
    let theirs = median_time(5, || drop(black_box(prometheus_parse(black_box(&page)))));
    let mib = page.len() as f64 / f64::from(1 << 20);
    eprintln!(
        "median of 5: text::parse {:.1} ms ({:.0} MiB/s), prometheus-parse {:.1} ms ({:.0} MiB/s): {:.1}x",
        ours.as_secs_f64() * 1e3,
        mib / ours.as_secs_f64(),
        theirs.as_secs_f64() * 1e3,
        mib / theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64(),
    );
}
