//! Synthetic cluster contents: ready Nodes with realistic capacity and labels, and Pods bound to
//! them with labels, owner references (real ReplicaSets), 1–3 containers with resources and a
//! Running status — what a list or watch of a real cluster's pods costs to serve.
//!
//! With [`PopulateSpec::kwok`] the nodes are kwok's instead (see [`crate::plane::kwok`]): they
//! register like a kubelet (capacity, addresses, no conditions) and kwok reports them Ready and
//! keeps their Leases fresh, so the scheduler and the DaemonSet controller treat them as real.
//!
//! Objects are made deterministically from their index, so two labs of the same size hold the
//! same objects. Requests run with bounded concurrency; pods need two each (create, then
//! `status`, which create ignores).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::error::Result;
use crate::plane::kwok;

/// Pods per synthetic ReplicaSet, and at most this many pods per namespace.
const PODS_PER_REPLICASET: usize = 10;
const PODS_PER_NAMESPACE: usize = 2_000;

/// What to create: nodes `first_node..nodes` and their pods. A lab of `first_node` nodes made
/// with the same `pods_per_node` grows to `nodes` (what `lab sweep` does between sizes).
#[derive(Debug, Clone)]
pub struct PopulateSpec {
    pub nodes: usize,
    pub pods_per_node: usize,
    /// Nodes `0..first_node` (and their pods) exist already.
    pub first_node: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Make the nodes kwok's (annotated [`kwok::NODE_ANNOTATION`], labelled [`KWOK_NODE_LABEL`],
    /// no taints), for a lab started with [`LabOptions::kwok`](crate::LabOptions::kwok).
    pub kwok: bool,
}

impl PopulateSpec {
    pub fn new(nodes: usize, pods_per_node: usize) -> Self {
        PopulateSpec {
            nodes,
            pods_per_node,
            first_node: 0,
            concurrency: 64,
            kwok: false,
        }
    }

    /// Pods in the lab once this spec is done.
    pub fn pods(&self) -> usize {
        self.nodes * self.pods_per_node
    }

    /// The pods this spec creates.
    fn new_pods(&self) -> Range<usize> {
        (self.first_node * self.pods_per_node).min(self.pods())..self.pods()
    }

    /// Namespaces to create: those of new pods whose first pod is new (namespace `i` holds
    /// pods from `i × PODS_PER_NAMESPACE`).
    fn new_namespaces(&self) -> Range<usize> {
        let pods = self.new_pods();
        let end = pods.end.div_ceil(PODS_PER_NAMESPACE).max(1);
        pods.start.div_ceil(PODS_PER_NAMESPACE).min(end)..end
    }

    /// ReplicaSets to create, likewise; a partly filled one of an earlier run gets its
    /// remaining pods but is not created again.
    fn new_replica_sets(&self) -> Range<usize> {
        let pods = self.new_pods();
        pods.start.div_ceil(PODS_PER_REPLICASET)..pods.end.div_ceil(PODS_PER_REPLICASET)
    }

    /// Objects to create in all (namespaces, nodes, replica sets, pods).
    pub fn objects(&self) -> usize {
        self.new_namespaces().len()
            + self.nodes.saturating_sub(self.first_node)
            + self.new_replica_sets().len()
            + self.new_pods().len()
    }
}

/// Label every synthetic object carries, for selecting or cleaning them.
pub const SYNTHETIC_LABEL: &str = "fleetwatch.dev/synthetic";
/// Label (key, value) of kwok's nodes, for selecting them.
pub const KWOK_NODE_LABEL: (&str, &str) = ("type", "kwok");

/// Creates the objects of `spec`; `on_progress(done, total)` hears each created object.
pub async fn populate(
    client: &kube::Client,
    spec: &PopulateSpec,
    on_progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<()> {
    let done = AtomicUsize::new(0);
    let total = spec.objects();
    let tick = || on_progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
    let pods = Pods {
        client,
        pods_per_node: spec.pods_per_node,
        tick: &tick,
    };

    let namespaces: Api<Namespace> = Api::all(client.clone());
    create_each(
        &namespaces,
        spec.new_namespaces(),
        &namespace,
        spec.concurrency,
        &tick,
    )
    .await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let new_nodes = spec.first_node.min(spec.nodes)..spec.nodes;
    let kwok = spec.kwok;
    create_each(
        &nodes,
        new_nodes.clone(),
        &|i| node(i, kwok),
        spec.concurrency,
        &tick,
    )
    .await?;
    if kwok {
        lift_not_ready_taints(&nodes, new_nodes, spec.concurrency).await?;
    }

    let new_pods = spec.new_pods();
    let replica_sets = spec.new_replica_sets();
    // Pods before the first new ReplicaSet belong to one an earlier run created.
    let first_in_new_set = (replica_sets.start * PODS_PER_REPLICASET).min(new_pods.end);
    if new_pods.start < first_in_new_set {
        let rs = new_pods.start / PODS_PER_REPLICASET;
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace_of(rs));
        let uid = sets.get(&replica_set_name(rs)).await?.metadata.uid;
        pods.create(
            rs,
            &uid.unwrap_or_default(),
            new_pods.start..first_in_new_set,
        )
        .await?;
    }
    // Each ReplicaSet is created, then its pods with the ReplicaSet's uid as owner.
    let post = &PostParams::default();
    let pods = &pods;
    run(
        replica_sets,
        spec.concurrency.div_ceil(PODS_PER_REPLICASET).max(1),
        |rs| async move {
            let first = rs * PODS_PER_REPLICASET;
            let pods_in_set = (new_pods.end - first).min(PODS_PER_REPLICASET);
            let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace_of(rs));
            let created = sets
                .create(post, &from_json(replica_set(rs, pods_in_set))?)
                .await?;
            tick();
            let uid = created.metadata.uid.unwrap_or_default();
            pods.create(rs, &uid, first..first + pods_in_set).await
        },
    )
    .await
}

/// Creates synthetic pods, each bound and then given a Running status.
struct Pods<'a> {
    client: &'a kube::Client,
    pods_per_node: usize,
    tick: &'a (dyn Fn() + Sync),
}

impl Pods<'_> {
    /// Creates pods `range` of ReplicaSet `rs` (uid `owner`).
    async fn create(&self, rs: usize, owner: &str, range: Range<usize>) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace_of(rs));
        let post = PostParams::default();
        run(range, PODS_PER_REPLICASET, |p| {
            let (pods, post) = (&pods, &post);
            async move {
                let node = p / self.pods_per_node.max(1);
                pods.create(post, &from_json(synthetic_pod(p, rs, owner, node))?)
                    .await?;
                let status = Patch::Merge(pod_status(p, node));
                pods.patch_status(&pod_name(rs, p), &PatchParams::default(), &status)
                    .await?;
                (self.tick)();
                Ok(())
            }
        })
        .await
    }
}

/// The namespace of ReplicaSet `rs` and its pods.
fn namespace_of(rs: usize) -> String {
    namespace_name(rs * PODS_PER_REPLICASET / PODS_PER_NAMESPACE)
}

/// The TaintNodesByCondition admission plugin gives every new node
/// `node.kubernetes.io/not-ready:NoSchedule`, and in a cluster the node lifecycle controller lifts
/// it once the node is Ready. The lab runs without that controller (see `recipes`), so kwok's
/// nodes have it lifted here, or nothing would be scheduled onto them.
async fn lift_not_ready_taints(
    nodes: &Api<Node>,
    items: Range<usize>,
    concurrency: usize,
) -> Result<()> {
    let untainted = Patch::Merge(json!({"spec": {"taints": null}}));
    run(items, concurrency, |i| {
        let untainted = &untainted;
        async move {
            nodes
                .patch(&node_name(i), &PatchParams::default(), untainted)
                .await?;
            Ok(())
        }
    })
    .await
}

/// Creates `make(i)` for every `i` in `items` through `api`.
async fn create_each<K>(
    api: &Api<K>,
    items: std::ops::Range<usize>,
    make: &(dyn Fn(usize) -> Value + Sync),
    concurrency: usize,
    tick: &(dyn Fn() + Sync),
) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    run(items, concurrency, |i| async move {
        api.create(&PostParams::default(), &from_json(make(i))?)
            .await?;
        tick();
        Ok(())
    })
    .await
}

async fn run<I, F, Fut>(items: I, concurrency: usize, f: F) -> Result<()>
where
    I: Iterator<Item = usize>,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    stream::iter(items)
        .map(f)
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// A Kubernetes object from its JSON form (the synthetic objects are written as JSON literals).
pub fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(crate::Error::Synthetic)
}

fn namespace_name(i: usize) -> String {
    format!("lab-{i:03}")
}

/// The name of synthetic node `i`.
pub fn node_name(i: usize) -> String {
    format!("lab-node-{i:05}")
}

fn namespace(i: usize) -> Value {
    json!({"metadata": {"name": namespace_name(i), "labels": {SYNTHETIC_LABEL: "true"}}})
}

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
const APPS: [&str; 6] = ["api", "web", "worker", "cache", "ingest", "batch"];

/// Node `i`; a `kwok` node carries kwok's annotation and label and registers without
/// conditions, which kwok's node-initialize stage then reports.
fn node(i: usize, kwok: bool) -> Value {
    let name = node_name(i);
    let now = now();
    let condition = |kind: &str, status: &str, reason: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": reason,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let mut node = json!({
        "metadata": {"name": name, "labels": {
            SYNTHETIC_LABEL: "true",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "m7i.16xlarge",
            "topology.kubernetes.io/region": "lab-1",
            "topology.kubernetes.io/zone": ZONES[i % ZONES.len()],
            "node-role.kubernetes.io/worker": "",
        }},
        "spec": {"podCIDR": pod_cidr(i), "providerID": format!("lab://{name}")},
        "status": {
            "capacity": {"cpu": "64", "memory": "262144Mi", "pods": "110", "ephemeral-storage": "500Gi"},
            "allocatable": {"cpu": "63500m", "memory": "255000Mi", "pods": "110", "ephemeral-storage": "450Gi"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("Ready", "True", "KubeletReady"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": host_ip(i)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{i:032x}"), "systemUUID": format!("{i:08x}-0000-4000-8000-000000000000"),
                "bootID": format!("{i:08x}-b007-4000-8000-000000000000"),
                "kernelVersion": "6.12.0-lab", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://2.1.4", "kubeletVersion": crate::KUBERNETES_VERSION,
                "kubeProxyVersion": crate::KUBERNETES_VERSION, "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    });
    if kwok {
        let (key, value) = kwok::NODE_ANNOTATION;
        node["metadata"]["annotations"] = json!({key: value});
        let (key, value) = KWOK_NODE_LABEL;
        node["metadata"]["labels"][key] = json!(value);
        if let Some(status) = node["status"].as_object_mut() {
            status.remove("conditions");
        }
    }
    node
}

fn replica_set(rs: usize, replicas: usize) -> Value {
    let app = APPS[rs % APPS.len()];
    let labels =
        json!({"app": app, "pod-template-hash": template_hash(rs), SYNTHETIC_LABEL: "true"});
    json!({
        "metadata": {"name": replica_set_name(rs), "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(rs, None)},
        },
    })
}

fn replica_set_name(rs: usize) -> String {
    format!("{}-{rs:05}-{}", APPS[rs % APPS.len()], template_hash(rs))
}

fn template_hash(rs: usize) -> String {
    format!(
        "{:08x}",
        (rs as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
    )
}

fn pod_name(rs: usize, p: usize) -> String {
    format!("{}-{p:06x}", replica_set_name(rs))
}

fn synthetic_pod(p: usize, rs: usize, owner_uid: &str, node: usize) -> Value {
    let app = APPS[rs % APPS.len()];
    json!({
        "metadata": {
            "name": pod_name(rs, p),
            "labels": {"app": app, "pod-template-hash": template_hash(rs), SYNTHETIC_LABEL: "true"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set_name(rs),
                "uid": owner_uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": pod_spec(rs, Some(node_name(node))),
    })
}

/// 1–3 containers, varying by ReplicaSet.
fn pod_spec(rs: usize, node: Option<String>) -> Value {
    let app = APPS[rs % APPS.len()];
    let containers: Vec<Value> = (0..=(rs % 3))
        .map(|c| {
            let name = ["main", "sidecar", "metrics"][c];
            json!({
                "name": name,
                "image": format!("registry.lab.invalid/{app}/{name}:1.{}.0", rs % 20),
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
    let mut spec = json!({
        "containers": containers,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ],
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    spec
}

/// A pod without an owner on node `node`, for churn.
pub fn standalone_pod(name: &str, node: usize) -> Value {
    let labels = json!({"app": "churn", SYNTHETIC_LABEL: "true"});
    json!({"metadata": {"name": name, "labels": labels}, "spec": pod_spec(0, Some(node_name(node)))})
}

fn pod_status(p: usize, node: usize) -> Value {
    let now = now();
    let rs = p / PODS_PER_REPLICASET;
    let app = APPS[rs % APPS.len()];
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now});
    let statuses: Vec<Value> = (0..=(rs % 3))
        .map(|c| {
            let name = ["main", "sidecar", "metrics"][c];
            json!({
                "name": name, "ready": true, "started": true, "restartCount": 0,
                "image": format!("registry.lab.invalid/{app}/{name}:1.{}.0", rs % 20),
                "imageID": format!("registry.lab.invalid/{app}/{name}@sha256:{:064x}", rs * 3 + c),
                "containerID": format!("containerd://{:064x}", p * 3 + c),
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Running",
        "conditions": [condition("PodScheduled"), condition("Initialized"), condition("ContainersReady"), condition("Ready")],
        "hostIP": host_ip(node), "podIP": pod_ip(p), "podIPs": [{"ip": pod_ip(p)}],
        "startTime": now, "qosClass": "Burstable", "containerStatuses": statuses,
    }})
}

fn host_ip(i: usize) -> String {
    format!("10.128.{}.{}", (i / 250) % 250, i % 250 + 1)
}

fn pod_cidr(i: usize) -> String {
    format!("10.{}.{}.0/24", 64 + (i / 256) % 64, i % 256)
}

fn pod_ip(p: usize) -> String {
    format!(
        "10.{}.{}.{}",
        64 + (p / 62_500) % 64,
        (p / 250) % 250,
        p % 250 + 1
    )
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grow(from: usize, to: usize, pods_per_node: usize) -> PopulateSpec {
        PopulateSpec {
            first_node: from,
            ..PopulateSpec::new(to, pods_per_node)
        }
    }

    #[test]
    fn a_kwok_node_is_kwoks_and_registers_without_conditions() {
        let kwok: Node = from_json(node(3, true)).expect("a node");
        let (key, value) = kwok::NODE_ANNOTATION;
        let annotations = kwok.metadata.annotations.expect("annotations");
        assert_eq!(annotations.get(key).map(String::as_str), Some(value));
        let labels = kwok.metadata.labels.expect("labels");
        assert_eq!(
            labels.get(KWOK_NODE_LABEL.0).map(String::as_str),
            Some(KWOK_NODE_LABEL.1)
        );
        let status = kwok.status.expect("status");
        assert!(status.conditions.is_none(), "kwok reports them");
        let pods = status.allocatable.and_then(|a| a.get("pods").cloned());
        assert_eq!(pods.map(|q| q.0), Some("110".to_owned()));

        let plain: Node = from_json(node(3, false)).expect("a node");
        assert!(plain.metadata.annotations.is_none());
        assert!(plain.status.and_then(|s| s.conditions).is_some());
    }

    proptest! {
        /// Growing in two steps creates exactly what one step creates: nothing twice, nothing
        /// missed, whatever the boundaries.
        #[test]
        fn growth_in_steps_partitions_the_objects(
            a in 1usize..300, b in 0usize..300, pods_per_node in 1usize..40,
        ) {
            let (mid, end) = (a, a + b);
            let whole = PopulateSpec::new(end, pods_per_node);
            let (first, second) = (PopulateSpec::new(mid, pods_per_node), grow(mid, end, pods_per_node));
            prop_assert_eq!(first.new_pods().end, second.new_pods().start);
            prop_assert_eq!(first.new_replica_sets().end, second.new_replica_sets().start);
            prop_assert_eq!(first.new_namespaces().end, second.new_namespaces().start);
            prop_assert_eq!(first.objects() + second.objects(), whole.objects());
        }
    }
}
