//! Writing many series: the [`page`](fleetwatch_telemetry::page) writer against
//! `prometheus_client`'s encoder fed the same borrowed label values through a `Collector` (what
//! the collector's object state did before), side by side, in both formats. For the text
//! format `prometheus_client` writes OpenMetrics and the exposition rewrites it
//! (`openmetrics_to_text`), as `/metrics` does.
//!
//! 200,000 series shaped like `kube_pod_container_resource_requests` (seven labels, a uid
//! among them, values 0.1 … 3).
//!
//! `cargo bench -p fleetwatch-telemetry --bench page -- --warm-up-time 1`

use std::fmt;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetwatch_telemetry::exposition::{Format, openmetrics_to_text};
use fleetwatch_telemetry::page::{Kind, Page};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

const SERIES: usize = 200_000;
const NAME: &str = "kube_pod_container_resource_requests";
const HELP: &str = "The number of requested request resource by a container.";

/// One series' label values, owned once (the stores' projections).
#[derive(Debug)]
struct Row {
    namespace: String,
    pod: String,
    uid: String,
    container: &'static str,
    node: String,
    resource: &'static str,
    unit: &'static str,
    value: f64,
}

fn rows() -> Vec<Row> {
    (0..SERIES)
        .map(|i| Row {
            namespace: format!("lab-{:02}", i / 6_000),
            pod: format!("web-{:05}-{:08x}-{i:06x}", i / 20, i * 7919),
            uid: format!("00000002-0000-4000-8000-{i:012x}"),
            container: ["main", "sidecar", "metrics"][i % 3],
            node: format!("lab-node-{:05}", i % 2000),
            resource: ["cpu", "memory"][i % 2],
            unit: ["core", "byte"][i % 2],
            value: [0.1, 0.25, 1.0, 3.0][i % 4],
        })
        .collect()
}

fn labels(r: &Row) -> [(&str, &str); 7] {
    [
        ("namespace", &r.namespace),
        ("pod", &r.pod),
        ("uid", &r.uid),
        ("container", r.container),
        ("node", &r.node),
        ("resource", r.resource),
        ("unit", r.unit),
    ]
}

fn page_writer(rows: &[Row], format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    let mut page = Page::new(&mut out, format);
    let mut samples = page.family(NAME, HELP, Kind::Gauge);
    for r in rows {
        samples.sample(&labels(r), r.value);
    }
    out
}

#[derive(Debug)]
struct Rows(Vec<Row>);

impl Collector for Rows {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut metric = encoder.encode_descriptor(NAME, HELP, None, MetricType::Gauge)?;
        for r in &self.0 {
            metric.encode_family(&labels(r))?.encode_gauge(&r.value)?;
        }
        Ok(())
    }
}

fn prometheus_client(registry: &Registry, format: Format) -> String {
    let mut openmetrics = String::new();
    encode_registry(&mut openmetrics, registry).expect("encodes");
    match format {
        Format::OpenMetrics => openmetrics,
        Format::Text => openmetrics_to_text(&openmetrics),
    }
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    let mut group = c.benchmark_group("page");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SERIES as u64));
    for (name, format) in [("text", Format::Text), ("openmetrics", Format::OpenMetrics)] {
        group.bench_function(format!("page_writer_{name}"), |b| {
            b.iter(|| page_writer(&rows, format))
        });
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Rows(rows)));
    for (name, format) in [("text", Format::Text), ("openmetrics", Format::OpenMetrics)] {
        group.bench_function(format!("prometheus_client_{name}"), |b| {
            b.iter(|| prometheus_client(&registry, format))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
