//! Benchmarks of the budgeted client:
//!
//! 1. Informer store memory per Pod at 100,000 Pods: full objects, metadata only, and a
//!    projection that keeps what a collector uses (node, phase, readiness, restarts). Measured
//!    with a counting global allocator around filling the crate's own `Store`, without an API
//!    server: the store is what stays resident, whatever the wire brought.
//! 2. The stack's added latency per request: the full tower stack around an in-memory service,
//!    against the bare service. Each batch is 100 requests on a fresh stack within a budget of
//!    its own (as if each batch were a fresh process), so the token bucket and the hard ceiling
//!    (100 requests in its bucket) admit them all without waiting: what is measured is the cost
//!    of the layers, not their limits.
//!
//! `cargo bench -p fleetwatch-client --bench client`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use fleetwatch_client::stack::Stack;
use fleetwatch_client::{Budget, Priority, Settings, Store};
use http::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::client::Body;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use serde_json::json;
use tower::{BoxError, Service, ServiceExt};

const PODS: usize = 100_000;
const BATCH: usize = 100;

/// Counts live heap bytes and allocations.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A Pod as a controller and a kubelet would leave it: owner, labels, 1–3 containers with
/// resources, probes and statuses.
fn pod(i: usize) -> Pod {
    let rs = i / 30;
    let app = ["api", "web", "worker", "cache", "ingest", "batch"][rs % 6];
    let hash = format!(
        "{:08x}",
        (rs as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
    );
    let containers: Vec<_> = (0..=(rs % 3))
        .map(|c| {
            let name = ["main", "sidecar", "metrics"][c];
            json!({
                "name": name,
                "image": format!("registry.example/{app}/{name}:1.{}.0", rs % 20),
                "ports": [{"containerPort": 8080 + c, "protocol": "TCP", "name": format!("http-{c}")}],
                "env": [{"name": "APP", "value": app}, {"name": "LOG_LEVEL", "value": "info"}],
                "resources": {
                    "requests": {"cpu": format!("{}m", 100 * (c + 1)), "memory": format!("{}Mi", 128 * (c + 1))},
                    "limits": {"cpu": format!("{}m", 500 * (c + 1)), "memory": format!("{}Mi", 512 * (c + 1))},
                },
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080 + c}, "periodSeconds": 10},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            })
        })
        .collect();
    let statuses: Vec<_> = (0..=(rs % 3))
        .map(|c| {
            let name = ["main", "sidecar", "metrics"][c];
            json!({
                "name": name, "ready": true, "started": true, "restartCount": i % 3,
                "image": format!("registry.example/{app}/{name}:1.{}.0", rs % 20),
                "imageID": format!("registry.example/{app}/{name}@sha256:{:064x}", rs * 3 + c),
                "containerID": format!("containerd://{:064x}", i * 3 + c),
                "state": {"running": {"startedAt": "2026-11-28T10:00:00Z"}},
            })
        })
        .collect();
    let node = format!("node-{:05}", i / 30);
    let conditions: Vec<_> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": "2026-11-28T10:00:00Z"}))
        .into();
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("{app}-{hash}-{i:06x}"),
            "namespace": format!("team-{}", i % 50),
            "uid": format!("{i:08x}-0000-4000-8000-000000000000"),
            "resourceVersion": (1_000_000 + i).to_string(),
            "creationTimestamp": "2026-11-28T10:00:00Z",
            "labels": {"app": app, "pod-template-hash": hash},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"),
                                  "uid": format!("{rs:08x}-1111-4000-8000-000000000000"), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "nodeName": node, "containers": containers, "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": format!("10.128.{}.{}", (i / 7500) % 250, (i / 30) % 250 + 1),
            "podIP": format!("10.{}.{}.{}", 64 + i / 62_500, (i / 250) % 250, i % 250 + 1),
            "startTime": "2026-11-28T10:00:00Z", "qosClass": "Burstable", "containerStatuses": statuses,
        },
    }))
    .expect("a valid pod")
}

/// What a collector keeps of a Pod.
#[derive(Debug, Clone)]
struct PodView {
    node: Option<Box<str>>,
    phase: u8,
    ready: bool,
    restarts: u32,
}

fn project(pod: &Pod) -> PodView {
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 1,
        Some("Running") => 2,
        Some("Succeeded") => 3,
        Some("Failed") => 4,
        _ => 0,
    };
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    PodView {
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .map(Box::from),
        phase,
        ready: containers.iter().all(|c| c.ready),
        restarts: containers
            .iter()
            .map(|c| c.restart_count.unsigned_abs())
            .sum(),
    }
}

/// What a metadata-only watch delivers for a Pod.
fn metadata(pod: Pod) -> PartialObjectMeta<Pod> {
    pod.metadata.into_response_partial()
}

/// Live bytes and allocations per Pod of a store filled with `PODS` Pods through `insert`.
fn store_cost<T>(mut insert: impl FnMut(&mut Store<T>, Pod)) -> (f64, f64) {
    let before = (
        LIVE_BYTES.load(Ordering::Relaxed),
        ALLOCATIONS.load(Ordering::Relaxed),
    );
    let mut store = Store::default();
    let mut allocations_after_source = 0;
    for i in 0..PODS {
        let pod = pod(i);
        let before_insert = ALLOCATIONS.load(Ordering::Relaxed);
        insert(&mut store, pod);
        allocations_after_source += ALLOCATIONS.load(Ordering::Relaxed) - before_insert;
    }
    let bytes = LIVE_BYTES.load(Ordering::Relaxed) - before.0;
    assert_eq!(store.len(), PODS);
    black_box(&store);
    drop(store);
    let per = |n: f64| n / PODS as f64;
    (per(bytes as f64), per(allocations_after_source as f64))
}

fn memory() {
    let sample = project(&pod(1));
    assert!(sample.ready && sample.phase == 2 && sample.restarts == 1);
    assert_eq!(sample.node.as_deref(), Some("node-00000"));
    println!("informer store memory at {PODS} Pods (live heap bytes the store holds, per Pod):");
    let full = store_cost(|store: &mut Store<Pod>, pod| {
        let p = pod.clone();
        store.apply(&p, pod);
    });
    let meta = store_cost(|store: &mut Store<PartialObjectMeta<Pod>>, pod| {
        let meta = metadata(pod);
        store.apply(&meta.clone(), meta);
    });
    let projected = store_cost(|store: &mut Store<PodView>, pod| {
        let view = project(&pod);
        store.apply(&pod, view);
    });
    for (what, (bytes, allocations)) in [
        ("full Pod", full),
        ("metadata only", meta),
        ("projected", projected),
    ] {
        println!(
            "  {what:>14}: {bytes:8.0} B/pod  ({allocations:.1} allocations/pod while inserting)"
        );
    }
}

fn latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let wire = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, BoxError>(Response::new(String::from("{}")))
    });
    let request = || {
        Request::get("/api/v1/namespaces/team-1/pods/api-0000-000001")
            .body(Body::from(Vec::new()))
            .expect("request")
    };
    let mut settings = Settings::new("bench");
    settings.qps = 10_000.0;
    settings.burst = 10_000;
    let mut group = c.benchmark_group("per request");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("bare in-memory service", |b| {
        b.iter_batched(
            || wire,
            |mut service| {
                runtime.block_on(async {
                    for _ in 0..BATCH {
                        let ready = service.ready().await.expect("ready");
                        black_box(ready.call(request()).await.expect("response"));
                    }
                })
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("budgeted stack around it", |b| {
        b.iter_batched(
            || {
                // A fresh ceiling per batch: the process's would be spent after the first.
                let budget = Budget::separate_for_emulated_process(&settings).expect("budget");
                let stack = Stack::new(&settings, &budget, "bench").expect("stack");
                let _guard = runtime.enter();
                stack.service(Priority::Normal, wire)
            },
            |mut service| {
                runtime.block_on(async {
                    for _ in 0..BATCH {
                        let ready = service.ready().await.expect("ready");
                        black_box(ready.call(request()).await.expect("response"));
                    }
                })
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
    println!("(each iteration is a batch of {BATCH} requests: divide by {BATCH} for one request)");
}

fn main() {
    memory();
    let mut criterion = Criterion::default().configure_from_args();
    latency(&mut criterion);
    criterion.final_summary();
}
