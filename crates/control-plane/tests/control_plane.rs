//! The lab's control plane is real: it stores and serves thousands of objects, enforces RBAC and
//! exposes the API server's own metrics.

// One-off LISTs by the admin check what the control plane stores; clippy.toml refuses LIST
// calls elsewhere because polling with them is the incident's pattern.
#![allow(clippy::disallowed_methods)]

use fleetwatch_control_plane::{PopulateSpec, populate, testing};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{Api, ListParams};

const SYNTHETIC: &str = "fleetwatch.dev/synthetic=true";

#[tokio::test]
async fn thousand_nodes_and_ten_thousand_pods_list_back() {
    let plane = testing::shared();
    let client = plane.admin_client().await.expect("admin client");
    let spec = PopulateSpec::new(1_000, 10);
    populate(&client, &spec, &|_, _| {})
        .await
        .expect("populate");

    let selector = ListParams::default().labels(SYNTHETIC);
    let nodes = Api::<Node>::all(client.clone())
        .list(&selector)
        .await
        .expect("list nodes");
    assert_eq!(nodes.items.len(), 1_000);
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    assert!(
        nodes.items.iter().all(ready),
        "every synthetic node reports Ready"
    );

    let pods = Api::<Pod>::all(client)
        .list(&selector)
        .await
        .expect("list pods");
    assert_eq!(pods.items.len(), 10_000);
    for pod in &pods.items {
        let status = pod.status.as_ref().expect("pod status");
        assert_eq!(
            status.phase.as_deref(),
            Some("Running"),
            "{:?}",
            pod.metadata.name
        );
        let spec = pod.spec.as_ref().expect("pod spec");
        assert!(
            spec.node_name
                .as_deref()
                .is_some_and(|n| n.starts_with("lab-node-"))
        );
        assert!((1..=3).contains(&spec.containers.len()));
        let owner = &pod
            .metadata
            .owner_references
            .as_ref()
            .expect("owner references")[0];
        assert_eq!(owner.kind, "ReplicaSet");
    }
    // Pods are spread over all nodes, `pods_per_node` each.
    let mut per_node = std::collections::HashMap::new();
    for pod in &pods.items {
        *per_node
            .entry(pod.spec.as_ref().and_then(|s| s.node_name.clone()))
            .or_insert(0) += 1;
    }
    assert_eq!(per_node.len(), 1_000);
    assert!(per_node.values().all(|&n| n == 10));
}

#[tokio::test]
async fn user_without_bindings_is_forbidden_and_admin_is_not() {
    let plane = testing::shared();
    let nobody = plane
        .client_for("no-bindings", &["fleetwatch-test"])
        .await
        .expect("client");
    let denied = Api::<Secret>::all(nobody)
        .list(&ListParams::default())
        .await;
    match denied {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
    let admin = plane.admin_client().await.expect("admin client");
    Api::<Secret>::all(admin)
        .list(&ListParams::default())
        .await
        .expect("admin may list secrets");
}

#[tokio::test]
async fn apiserver_metrics_are_served_to_the_admin() {
    let plane = testing::shared();
    let admin = plane.admin_client().await.expect("admin client");
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let metrics = admin.request_text(request).await.expect("GET /metrics");
    assert!(
        metrics.contains("apiserver_request_total{"),
        "no apiserver_request_total in /metrics"
    );
}

#[tokio::test]
async fn controller_manager_runs_controllers() {
    // The shared plane runs kube-controller-manager: its root-CA publisher fills new namespaces.
    let plane = testing::shared();
    let admin = plane.admin_client().await.expect("admin client");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "kcm-check"}}))
        .expect("namespace");
    namespaces
        .create(&Default::default(), &ns)
        .await
        .expect("create namespace");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin, "kcm-check");
    let published = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while config_maps
            .get_opt("kube-root-ca.crt")
            .await
            .ok()
            .flatten()
            .is_none()
        {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        published.is_ok(),
        "kube-root-ca.crt never appeared in a new namespace"
    );
}
