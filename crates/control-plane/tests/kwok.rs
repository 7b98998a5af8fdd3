//! A DaemonSet really rolls out in the lab: the real DaemonSet controller makes a pod per node,
//! the real kube-scheduler binds each to one of kwok's fake nodes, kwok reports them Running and
//! Ready and keeps the nodes' Leases fresh, and deleting the DaemonSet makes its pods go away.
//! Node affinity injected into a pod template confines a DaemonSet to labelled nodes, which is
//! what the rollout executor relies on to roll out node by node.

// The admin lists pods and leases a few times a second until a deadline to see what the lab
// holds; clippy.toml refuses LIST calls elsewhere because polling with them is the incident's
// pattern, which does not apply to a test against its own loopback lab.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fleetwatch_control_plane::populate::{KWOK_NODE_LABEL, node_name};
use fleetwatch_control_plane::testing::Dedicated;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const NODES: usize = 20;
/// Nodes `0..CANARY_NODES` carry [`CANARY_LABEL`].
const CANARY_NODES: usize = 5;
const CANARY_LABEL: (&str, &str) = ("rollout.fleetwatch.dev/test", "1");
const NAMESPACE: &str = "kwok-rollout";
const ROLLOUT_WITHIN: Duration = Duration::from_secs(60);
/// kwok's node lease duration in the lab (`--node-lease-duration-seconds`).
const LEASE_PERIOD: Duration = Duration::from_secs(40);

#[tokio::test]
async fn a_daemonset_rolls_out_onto_kwok_nodes_and_node_affinity_confines_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plane = Dedicated::with_kwok_nodes(&tmp.path().join("lab"), NODES).await;
    let admin = plane.admin_client().await.expect("admin client");
    let nodes: Api<Node> = Api::all(admin.clone());
    kwok_reports_them_ready(&nodes).await;
    for i in 0..CANARY_NODES {
        let patch = json!({"metadata": {"labels": {CANARY_LABEL.0: CANARY_LABEL.1}}});
        nodes
            .patch(
                &node_name(i),
                &Default::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .expect("label a canary node");
    }
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace"),
        )
        .await
        .expect("create the namespace");

    let daemon_sets: Api<DaemonSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let everywhere = daemon_set("everywhere", false);
    let canary = daemon_set("canary", true);
    for ds in [&everywhere, &canary] {
        daemon_sets
            .create(&PostParams::default(), ds)
            .await
            .expect("create a DaemonSet");
    }

    let all: BTreeSet<String> = (0..NODES).map(node_name).collect();
    let labelled: BTreeSet<String> = (0..CANARY_NODES).map(node_name).collect();
    rolled_out(&daemon_sets, &pods, "everywhere", &all).await;
    rolled_out(&daemon_sets, &pods, "canary", &labelled).await;

    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-node-lease");
    // Two lease periods: kwok renews every quarter period, so a stale one shows within these.
    let watch_until = Instant::now() + 2 * LEASE_PERIOD;
    loop {
        leases_are_fresh(&leases, &all).await;
        if Instant::now() >= watch_until {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    for name in ["everywhere", "canary"] {
        daemon_sets
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete a DaemonSet");
    }
    let deadline = Instant::now() + ROLLOUT_WITHIN;
    loop {
        let left = pods.list(&ListParams::default()).await.expect("list pods");
        if left.items.is_empty() {
            break;
        }
        let names: Vec<_> = left.items.iter().map(pod_summary).collect();
        assert!(
            Instant::now() < deadline,
            "{} DaemonSet pods still there {ROLLOUT_WITHIN:?} after their DaemonSets were \
             deleted (kwok's pod-delete stage should finish them): {names:?}",
            names.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until kwok's node-initialize stage has reported every kwok node Ready (populate creates
/// them without conditions, as a kubelet registers).
async fn kwok_reports_them_ready(nodes: &Api<Node>) {
    let (key, value) = KWOK_NODE_LABEL;
    let selector = ListParams::default().labels(&format!("{key}={value}"));
    let deadline = Instant::now() + ROLLOUT_WITHIN;
    loop {
        let listed = nodes.list(&selector).await.expect("list nodes").items;
        let not_ready: Vec<_> = listed
            .iter()
            .filter(|n| {
                !n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        if listed.len() == NODES && not_ready.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} kwok nodes listed, not Ready after {ROLLOUT_WITHIN:?}: {not_ready:?}",
            listed.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A DaemonSet `name` with no tolerations (kwok's nodes carry no taints) and, if `canary`, the
/// node affinity the rollout executor injects: only nodes labelled [`CANARY_LABEL`].
fn daemon_set(name: &str, canary: bool) -> DaemonSet {
    let labels = json!({"app": name});
    let mut spec = json!({
        "containers": [{"name": "agent", "image": "registry.lab.invalid/fleetwatch-agent:test"}],
    });
    if canary {
        spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": CANARY_LABEL.0, "operator": "In", "values": [CANARY_LABEL.1]},
            ]}],
        }}});
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }))
    .expect("a DaemonSet")
}

/// Waits until DaemonSet `name` reports every one of `nodes` scheduled and ready, and its pods
/// are Running and Ready, one on each of `nodes` and none elsewhere.
async fn rolled_out(
    daemon_sets: &Api<DaemonSet>,
    pods: &Api<Pod>,
    name: &str,
    nodes: &BTreeSet<String>,
) {
    let deadline = Instant::now() + ROLLOUT_WITHIN;
    let selector = ListParams::default().labels(&format!("app={name}"));
    let want = i32::try_from(nodes.len()).expect("a small number");
    loop {
        let status = daemon_sets
            .get_status(name)
            .await
            .expect("get the DaemonSet")
            .status
            .unwrap_or_default();
        let listed = pods.list(&selector).await.expect("list pods").items;
        let ready_on: Vec<String> = listed
            .iter()
            .filter(|p| running_and_ready(p))
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect();
        let distinct: BTreeSet<String> = ready_on.iter().cloned().collect();
        let done = status.desired_number_scheduled == want
            && status.number_ready == want
            && listed.len() == nodes.len()
            && ready_on.len() == nodes.len()
            && &distinct == nodes;
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "DaemonSet {name} did not roll out onto {} nodes within {ROLLOUT_WITHIN:?}: \
             desiredNumberScheduled {}, numberReady {}, pods {:?}",
            nodes.len(),
            status.desired_number_scheduled,
            status.number_ready,
            listed.iter().map(pod_summary).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status.pod_ip.is_some()
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `name@node phase`, for failure messages.
fn pod_summary(pod: &Pod) -> String {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    format!(
        "{}@{} {}",
        pod.metadata.name.as_deref().unwrap_or("?"),
        node.unwrap_or("unscheduled"),
        phase.unwrap_or("no phase")
    )
}

/// Every one of `nodes` has a Lease renewed within the last lease period.
async fn leases_are_fresh(leases: &Api<Lease>, nodes: &BTreeSet<String>) {
    let now = Timestamp::now();
    let listed = leases.list(&ListParams::default()).await.expect("leases");
    let renewed: Vec<(String, Option<Timestamp>)> = listed
        .items
        .iter()
        .map(|l| {
            let name = l.metadata.name.clone().unwrap_or_default();
            (
                name,
                l.spec
                    .as_ref()
                    .and_then(|s| s.renew_time.as_ref())
                    .map(|t| t.0),
            )
        })
        .collect();
    let names: BTreeSet<String> = renewed.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(&names, nodes, "a Lease for each kwok node, and only those");
    for (name, renew_time) in renewed {
        let age = renew_time.map(|t| now.duration_since(t));
        assert!(
            age.is_some_and(|age| age.unsigned_abs() < LEASE_PERIOD),
            "node {name}'s Lease was last renewed at {renew_time:?} (now {now}): not within \
             {LEASE_PERIOD:?}"
        );
    }
}
