//! Rendering the object-state families of a large cluster: 2,000 nodes and 60,000 pods shaped
//! like the lab's (`fleetwatch lab up --nodes 2000 --pods-per-node 30`: a ReplicaSet owner, 1–3
//! containers with requests and limits, four conditions), in both formats, written whole into
//! one buffer and streamed in chunks as `/metrics` serves it, side by side.
//!
//! `cargo bench -p fleetwatch-collector --bench objects`; prints the page size once.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetwatch_collector::objects::Stores;
use fleetwatch_telemetry::exposition::Format;
use fleetwatch_telemetry::page::{Page, Section, Sink};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

const NODES: usize = 2_000;
const PODS_PER_NODE: usize = 30;

fn node(i: usize) -> Node {
    object(json!({
        "metadata": {"name": format!("lab-node-{i:05}"), "uid": uid(i, 0),
                     "creationTimestamp": "2026-12-01T00:00:00Z",
                     "labels": {"kubernetes.io/hostname": format!("lab-node-{i:05}")}},
        "spec": {"podCIDR": format!("10.{}.{}.0/24", 64 + i / 256, i % 256), "providerID": format!("lab://{i}")},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"},
            "allocatable": {"cpu": "31500m", "memory": "125Gi", "pods": "110", "ephemeral-storage": "450Gi"},
            "conditions": (["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
                .map(|kind| json!({"type": kind, "status": if kind == "Ready" { "True" } else { "False" }}))),
            "addresses": [{"type": "InternalIP", "address": format!("10.128.{}.{}", i / 250, i % 250 + 1)},
                          {"type": "Hostname", "address": format!("lab-node-{i:05}")}],
            "nodeInfo": {"machineID": "", "systemUUID": uid(i, 1), "bootID": "", "kernelVersion": "6.12.0",
                         "osImage": "Debian GNU/Linux 13", "containerRuntimeVersion": "containerd://2.1.0",
                         "kubeletVersion": "v1.37.2", "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": "amd64"},
        },
    }))
}

fn pod(p: usize) -> Pod {
    let rs = p / 10;
    let app = ["web", "api", "worker", "cache", "batch"][rs % 5];
    let containers = ["main", "sidecar", "metrics"][..=rs % 3].to_vec();
    let condition = |kind| json!({"type": kind, "status": "True"});
    object(json!({
        "metadata": {
            "name": format!("{app}-{rs:05}-{:08x}-{p:06x}", rs * 7919),
            "namespace": format!("lab-{:02}", p / 2_000),
            "uid": uid(p, 2),
            "creationTimestamp": "2026-12-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "uid": uid(rs, 3),
                                 "name": format!("{app}-{rs:05}-{:08x}", rs * 7919), "controller": true}],
        },
        "spec": {
            "nodeName": format!("lab-node-{:05}", p % NODES),
            "containers": containers.iter().enumerate().map(|(c, name)| json!({
                "name": name, "image": "registry.lab.invalid/app:1",
                "resources": {
                    "requests": {"cpu": format!("{}m", 100 * (c + 1)), "memory": format!("{}Mi", 128 * (c + 1))},
                    "limits": {"cpu": format!("{}m", 500 * (c + 1)), "memory": format!("{}Mi", 512 * (c + 1))},
                },
            })).collect::<Vec<Value>>(),
        },
        "status": {
            "phase": "Running",
            "hostIP": format!("10.128.{}.{}", (p % NODES) / 250, p % 250 + 1),
            "podIP": format!("10.{}.{}.{}", 64 + p / 62_500, (p / 250) % 250, p % 250 + 1),
            "conditions": (["PodScheduled", "Initialized", "ContainersReady", "Ready"].map(condition)),
            "containerStatuses": containers.iter().map(|name| json!({
                "name": name, "ready": true, "restartCount": p % 4, "image": "", "imageID": "",
                "state": {"running": {}},
            })).collect::<Vec<Value>>(),
        },
    }))
}

fn uid(i: usize, kind: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

fn object<K: serde::de::DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

fn stores() -> Stores {
    let mut stores = Stores::default();
    for i in 0..NODES {
        stores.apply_node(&node(i));
    }
    for p in 0..NODES * PODS_PER_NODE {
        stores.apply_pod(&pod(p));
    }
    stores
}

/// The whole page in one buffer (what `/metrics` served before it streamed; what remote-write
/// still renders).
fn render(stores: &Stores, format: Format) -> Vec<u8> {
    let mut page = Vec::new();
    stores.write(&mut Page::new(&mut page, format));
    page
}

/// Counts the chunks' bytes and drops them, as a scraper that keeps up would read them.
struct Discard(usize);

impl Sink for Discard {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.0 += chunk.len();
        true
    }
}

/// The page streamed in chunks, as `/metrics` serves it; its size.
fn stream(stores: &Stores, format: Format) -> usize {
    let mut sink = Discard(0);
    let mut rest = Vec::new();
    stores.write(&mut Page::streaming(&mut rest, format, &mut sink));
    sink.0 + rest.len()
}

fn bench(c: &mut Criterion) {
    let stores = stores();
    let page = render(&stores, Format::Text);
    assert_eq!(stream(&stores, Format::Text), page.len());
    let series = page.iter().filter(|b| **b == b'\n').count();
    println!(
        "{NODES} nodes, {} pods: {series} lines, {:.1} MiB",
        NODES * PODS_PER_NODE,
        page.len() as f64 / (1 << 20) as f64
    );
    let mut group = c.benchmark_group("objects");
    group.sample_size(10);
    group.throughput(Throughput::Elements(series as u64));
    for (name, format) in [("text", Format::Text), ("openmetrics", Format::OpenMetrics)] {
        // The server keeps no buffer between scrapes: each render grows a new page.
        group.bench_function(format!("render_60k_pods_{name}"), |b| {
            b.iter(|| render(&stores, format))
        });
        group.bench_function(format!("stream_60k_pods_{name}"), |b| {
            b.iter(|| stream(&stores, format))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
