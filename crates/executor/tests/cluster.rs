//! The executor's steps on a real cluster: the lab's kube-apiserver with the real DaemonSet
//! controller, kube-scheduler and kwok's fake nodes. A change is dry-run (a bad one is refused
//! at its file and line, with nothing created), its quarantine lane installed, two waves
//! admitted (the DaemonSet's pods run on exactly the admitted nodes; repeating a step changes
//! nothing), and it is rolled back: no node keeps its label, no change pod is left.

// The test reads the cluster with the lab's admin client to check what the executor did, and
// lists pods until a deadline; clippy.toml refuses both outside the budgeted client because
// polling is the incident's pattern, which does not apply to a test against its own lab.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleetwatch_client::{Client, Settings, Source};
use fleetwatch_control_plane::testing::Dedicated;
use fleetwatch_executor::change::{Change, parse};
use fleetwatch_executor::cluster::{Cluster, ClusterError};
use fleetwatch_executor::quarantine::{LaneSize, lane_name};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::flowcontrol::v1::FlowSchema;
use kube::api::{Api, ListParams};

const NODES: usize = 20;
const WITHIN: Duration = Duration::from_secs(60);

const CHANGE: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: probe-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: probe, namespace: probe-system}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-probe, namespace: probe-system}
spec:
  selector: {matchLabels: {app: node-probe}}
  template:
    metadata: {labels: {app: node-probe}}
    spec:
      serviceAccountName: probe
      containers: [{name: probe, image: registry.example/probe:1}]
";

fn change(text: &str) -> Change {
    parse(
        Path::new("change"),
        &[(PathBuf::from("change/probe.yaml"), text.to_owned())],
    )
    .expect("a valid change")
}

/// Whether the cluster has no `name` (of `api`'s kind).
async fn absent<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("get").is_none()
}

/// The nodes the change's pods run on, once every pod is Running and Ready.
async fn pods_ready_on(pods: &Api<Pod>) -> Option<BTreeSet<String>> {
    let list = pods
        .list(&ListParams::default().labels("app=node-probe"))
        .await
        .expect("list the change's pods");
    let mut nodes = BTreeSet::new();
    for pod in &list.items {
        let status = pod.status.as_ref()?;
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if status.phase.as_deref() != Some("Running") || !ready {
            return None;
        }
        nodes.insert(pod.spec.as_ref()?.node_name.clone()?);
    }
    Some(nodes)
}

/// Waits until the change's pods run, Ready, on exactly the nodes labelled for it.
async fn runs_on_exactly_the_admitted_nodes(pods: &Api<Pod>, nodes: &Api<Node>, want: usize) {
    let labelled: BTreeSet<String> = nodes
        .list(&ListParams::default().labels("rollout.fleetwatch.dev/node-probe"))
        .await
        .expect("list labelled nodes")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(labelled.len(), want, "labelled nodes: {labelled:?}");
    let deadline = Instant::now() + WITHIN;
    loop {
        let running = pods_ready_on(pods).await;
        if running.as_ref() == Some(&labelled) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {WITHIN:?} the change's ready pods are on {running:?}, not on the admitted \
             nodes {labelled:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_change_is_dry_run_admitted_wave_by_wave_and_rolled_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plane = Dedicated::with_kwok_nodes(&tmp.path().join("lab"), NODES).await;
    let admin = plane.admin_client().await.expect("admin client");
    let client = Client::connect(
        Source::Kubeconfig {
            path: plane.kubeconfig(),
            context: None,
        },
        Settings::new("rollout"),
    )
    .await
    .expect("the budgeted client");

    // A change the server refuses is named at its file and line, and nothing is created.
    let bad = change(&CHANGE.replace(
        "metadata: {name: probe-system}",
        "metadata: {name: probe-system}\nspec: {finalizers: [kubernetes], bogus: 1}",
    ));
    let cluster = Cluster::watch(&client, &bad)
        .await
        .expect("watch the cluster");
    match cluster.dry_run(&bad).await {
        Err(ClusterError::Manifest { at, source }) => {
            assert_eq!(at.to_string(), "change/probe.yaml:1:1");
            assert!(source.to_string().contains("bogus"), "{source}");
        }
        other => panic!("a namespace with an unknown field passed the dry run: {other:?}"),
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    assert!(absent(&namespaces, "probe-system").await);

    // The good change: what lives in its own new namespace cannot be checked before it exists.
    let good = change(CHANGE);
    let cluster = Cluster::watch(&client, &good)
        .await
        .expect("watch the cluster");
    let dry = cluster.dry_run(&good).await.expect("the dry run");
    assert_eq!(dry.checked, 1, "{dry:?}");
    assert_eq!(
        dry.unchecked,
        ["change/probe.yaml:5:1", "change/probe.yaml:9:1"]
    );
    assert!(absent(&namespaces, "probe-system").await);

    cluster
        .install_lane(&good, LaneSize::default())
        .await
        .expect("the quarantine lane");
    let schemas: Api<FlowSchema> = Api::all(admin.clone());
    assert!(!absent(&schemas, &lane_name("node-probe")).await);

    let pods: Api<Pod> = Api::namespaced(admin.clone(), "probe-system");
    let nodes: Api<Node> = Api::all(admin.clone());
    let first = cluster.admit(&good, 0, 0.25).await.expect("wave 0");
    assert_eq!((first.nodes, first.newly_labelled, first.of), (5, 5, NODES));
    runs_on_exactly_the_admitted_nodes(&pods, &nodes, 5).await;

    // The informer sees its own labels before the step is repeated: nothing new is labelled.
    let deadline = Instant::now() + WITHIN;
    loop {
        let again = cluster.admit(&good, 0, 0.25).await.expect("wave 0 again");
        if again.newly_labelled == 0 {
            assert_eq!(again.nodes, 5);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "wave 0 keeps labelling nodes: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = cluster.admit(&good, 1, 0.5).await.expect("wave 1");
    assert_eq!((second.nodes, second.newly_labelled), (10, 5));
    runs_on_exactly_the_admitted_nodes(&pods, &nodes, 10).await;

    let unlabelled = cluster.roll_back(&good, None).await.expect("roll back");
    assert_eq!(unlabelled, 10);
    cluster.remove_lane(&good).await.expect("remove the lane");
    assert!(absent(&schemas, &lane_name("node-probe")).await);
    let labelled = nodes
        .list(&ListParams::default().labels("rollout.fleetwatch.dev/node-probe"))
        .await
        .expect("list labelled nodes");
    assert!(labelled.items.is_empty(), "nodes kept the change's label");
    let deadline = Instant::now() + WITHIN;
    loop {
        let left = pods
            .list(&ListParams::default().labels("app=node-probe"))
            .await
            .expect("list the change's pods");
        if left.items.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} change pods left {WITHIN:?} after the rollback",
            left.items.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
