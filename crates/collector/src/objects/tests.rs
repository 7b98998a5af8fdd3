//! The families from hand-filled stores, without an API server: what each object becomes, that
//! a deleted object's series go, and that [`CLAIMED`] is exactly what is written.

use std::collections::BTreeSet;

use fleetwatch_telemetry::exposition::Format;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::*;

/// The page `stores` write, in the text format.
fn page_text(stores: &Stores) -> String {
    let mut page = Vec::new();
    stores.write(&mut Page::new(&mut page, Format::Text));
    String::from_utf8(page).expect("UTF-8")
}

fn object<K: DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

fn pod() -> Pod {
    object(json!({
        "metadata": {
            "name": "web-1", "namespace": "shop", "uid": "u-1",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs", "controller": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "extra", "uid": "cm"},
            ],
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "main", "image": "x", "resources": {
                "requests": {"cpu": "250m", "memory": "1500m", "example.com/widget": "2", "pods": "1"},
                "limits": {"cpu": "1", "memory": "128Mi"},
            }}],
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.1",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false,
                                   "restartCount": 7, "state": {"running": {}}}],
        },
    }))
}

fn node() -> Node {
    object(json!({
        "metadata": {"name": "n1", "creationTimestamp": "2026-01-02T03:04:05Z",
                     "labels": {"node-role.kubernetes.io/worker": ""}},
        "spec": {"unschedulable": true, "podCIDR": "10.64.0.0/24", "providerID": "lab://n1",
                 "taints": [{"key": "dedicated", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "64", "memory": "262144Mi", "pods": "110"},
            "allocatable": {"cpu": "63500m"},
            "conditions": [{"type": "Ready", "status": "Unknown"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "nodeInfo": {"machineID": "", "systemUUID": "uuid", "bootID": "", "kernelVersion": "6.12",
                         "osImage": "Debian", "containerRuntimeVersion": "containerd://2", "kubeletVersion": "v1.37.2",
                         "kubeProxyVersion": "v1.37.2", "operatingSystem": "linux", "architecture": "amd64"},
        },
    }))
}

fn all_kinds() -> Stores {
    let mut stores = Stores::default();
    let pod = pod();
    stores.apply_pod(&pod);
    let node = node();
    stores.apply_node(&node);
    let ns: Namespace = object(
        json!({"metadata": {"name": "shop"}, "status": {"phase": "Terminating",
        "conditions": [{"type": "NamespaceContentRemaining", "status": "True"}]}}),
    );
    stores.apply_namespace(&ns);
    let ds: DaemonSet = object(
        json!({"metadata": {"name": "agent", "namespace": "shop", "generation": 2},
        "spec": {"selector": {}, "template": {}},
        "status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 5, "numberMisscheduled": 0, "numberReady": 1,
                   "numberUnavailable": 4}}),
    );
    stores.apply_daemonset(&ds);
    let deploy: Deployment = object(json!({"metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "selector": {}, "template": {}}}));
    stores.apply_deployment(&deploy);
    stores
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "{line}\nmissing from\n{text}"
        );
    }
}

#[test]
fn each_object_becomes_kube_state_metrics_series() {
    let text = page_text(&all_kinds());
    let pod = r#"namespace="shop",pod="web-1",uid="u-1""#;
    assert_lines(
        &text,
        &[
            "# HELP kube_pod_status_phase [STABLE] The pods current phase.",
            "# TYPE kube_pod_status_phase gauge",
            &format!(r#"kube_pod_status_phase{{{pod},phase="Running"}} 1"#),
            &format!(r#"kube_pod_status_phase{{{pod},phase="Pending"}} 0"#),
            &format!(
                r#"kube_pod_owner{{{pod},owner_kind="ReplicaSet",owner_name="web-abc",owner_is_controller="true"}} 1"#
            ),
            &format!(
                r#"kube_pod_owner{{{pod},owner_kind="ConfigMap",owner_name="extra",owner_is_controller="false"}} 1"#
            ),
            &format!(
                r#"kube_pod_info{{{pod},host_ip="10.0.0.1",pod_ip="10.1.0.1",node="n1",created_by_kind="ReplicaSet",created_by_name="web-abc",priority_class="",host_network="false"}} 1"#
            ),
            "# TYPE kube_pod_container_status_restarts_total counter",
            &format!(r#"kube_pod_container_status_restarts_total{{{pod},container="main"}} 7"#),
            // CPU in cores; memory rounded up to whole bytes for containers; no `pods`.
            &format!(
                r#"kube_pod_container_resource_requests{{{pod},container="main",node="n1",resource="cpu",unit="core"}} 0.25"#
            ),
            &format!(
                r#"kube_pod_container_resource_requests{{{pod},container="main",node="n1",resource="memory",unit="byte"}} 2"#
            ),
            &format!(
                r#"kube_pod_container_resource_requests{{{pod},container="main",node="n1",resource="example_com_widget",unit="integer"}} 2"#
            ),
            &format!(
                r#"kube_pod_container_resource_limits{{{pod},container="main",node="n1",resource="memory",unit="byte"}} 134217728"#
            ),
            &format!(r#"kube_pod_status_ready{{{pod},condition="false"}} 1"#),
            &format!(r#"kube_pod_container_status_running{{{pod},container="main"}} 1"#),
            &format!(r#"kube_pod_created{{{pod}}} 1767323045"#),
            r#"kube_node_status_capacity{node="n1",resource="pods",unit="integer"} 110"#,
            r#"kube_node_status_capacity{node="n1",resource="memory",unit="byte"} 274877906944"#,
            r#"kube_node_status_allocatable{node="n1",resource="cpu",unit="core"} 63.5"#,
            r#"kube_node_status_condition{node="n1",condition="Ready",status="unknown"} 1"#,
            r#"kube_node_spec_unschedulable{node="n1"} 1"#,
            r#"kube_node_spec_taint{node="n1",key="dedicated",value="",effect="NoSchedule"} 1"#,
            r#"kube_node_role{node="n1",role="worker"} 1"#,
            r#"kube_node_info{node="n1",kernel_version="6.12",os_image="Debian",container_runtime_version="containerd://2",kubelet_version="v1.37.2",kubeproxy_version="deprecated",provider_id="lab://n1",pod_cidr="10.64.0.0/24",system_uuid="uuid",internal_ip="10.0.0.1"} 1"#,
            r#"kube_namespace_status_phase{namespace="shop",phase="Terminating"} 1"#,
            r#"kube_namespace_status_condition{namespace="shop",condition="NamespaceContentRemaining",status="true"} 1"#,
            r#"kube_daemonset_status_number_unavailable{namespace="shop",daemonset="agent"} 4"#,
            r#"kube_daemonset_status_number_available{namespace="shop",daemonset="agent"} 0"#,
            r#"kube_daemonset_metadata_generation{namespace="shop",daemonset="agent"} 2"#,
            r#"kube_deployment_spec_replicas{namespace="shop",deployment="web"} 3"#,
            r#"kube_deployment_status_replicas_unavailable{namespace="shop",deployment="web"} 0"#,
            "# HELP kube_pod_labels [STABLE] Kubernetes labels converted to Prometheus labels.",
        ],
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("kube_pod_container") && l.contains("resource=\"pods\"")),
        "containers' pods requests are not series:\n{text}"
    );
}

#[test]
fn claimed_is_exactly_what_is_written_and_an_empty_store_writes_nothing() {
    let text = page_text(&all_kinds());
    let written: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let claimed: BTreeSet<&str> = CLAIMED.iter().copied().collect();
    assert_eq!(written, claimed);
    assert_eq!(claimed.len(), CLAIMED.len(), "a family claimed twice");
    assert_eq!(page_text(&Stores::default()), "");
}

#[test]
fn a_deleted_pod_s_series_are_gone() {
    let mut stores = all_kinds();
    let pod = pod();
    stores.delete_pod(&pod);
    let text = page_text(&stores);
    assert!(!text.contains("web-1"), "{text}");
    assert!(
        !text.contains("# TYPE kube_pod_"),
        "no pods, no pod families:\n{text}"
    );
}

#[test]
fn a_pod_without_owner_or_phase_follows_kube_state_metrics() {
    let mut stores = Stores::default();
    let bare: Pod =
        object(json!({"metadata": {"name": "bare", "namespace": "shop", "uid": "u-2"}}));
    stores.apply_pod(&bare);
    let text = page_text(&stores);
    assert_lines(
        &text,
        &[
            r#"kube_pod_owner{namespace="shop",pod="bare",uid="u-2",owner_kind="",owner_name="",owner_is_controller=""} 1"#,
        ],
    );
    assert!(!text.contains("kube_pod_status_phase{"), "{text}");
}

/// Keeps every chunk.
struct Chunks(Vec<Vec<u8>>);

impl fleetwatch_telemetry::page::Sink for Chunks {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.0.push(chunk);
        true
    }
}

#[test]
fn a_store_larger_than_a_slice_streams_each_object_once() {
    let mut stores = Stores::default();
    let pods = 2 * family::OBJECTS_PER_SLICE + 500;
    for i in 0..pods {
        let mut pod = pod();
        pod.metadata.name = Some(format!("web-{i}"));
        stores.apply_pod(&pod);
    }
    let whole = page_text(&stores);
    let mut chunks = Chunks(Vec::new());
    let mut rest = Vec::new();
    stores.write(&mut Page::streaming(&mut rest, Format::Text, &mut chunks));
    assert!(chunks.0.len() > 1, "the page went out in chunks");
    let streamed = String::from_utf8([chunks.0.concat(), rest].concat()).expect("UTF-8");
    assert_eq!(streamed, whole);
    let created: Vec<_> = whole
        .lines()
        .filter(|l| l.starts_with("kube_pod_created{"))
        .collect();
    assert_eq!(
        created.len(),
        pods,
        "each pod once, none twice at a slice's edge"
    );
    let distinct: BTreeSet<_> = created.iter().collect();
    assert_eq!(distinct.len(), pods);
}
