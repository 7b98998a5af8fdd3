//! The agent against the lab's real kube-apiserver: the RBAC it ships (`access`) allows what the
//! kubelet checks for it and nothing more, proven by SubjectAccessReviews.

// The test grants RBAC and asks for reviews with the lab's admin client.
#![allow(clippy::disallowed_types)]

use std::time::Duration;

use fleetwatch_control_plane::testing::{self, Subject, can, wait_until_can};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use serde_json::json;

const NAMESPACE: &str = "fleetwatch-agent-test";
const SERVICE_ACCOUNT: &str = "fleetwatch-agent";

fn agent() -> Subject {
    Subject::service_account(NAMESPACE, SERVICE_ACCOUNT)
}

/// Creates the agent's ClusterRole from `access::cluster_rules()` and binds it to the agent's
/// service account.
async fn grant(client: &kube::Client) {
    let name = "fleetwatch-agent-test";
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": fleetwatch_agent::access::cluster_rules(),
    }))
    .expect("a ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
    }))
    .expect("a ClusterRoleBinding");
    let params = PostParams::default();
    Api::<ClusterRole>::all(client.clone())
        .create(&params, &role)
        .await
        .expect("create the agent's ClusterRole");
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&params, &binding)
        .await
        .expect("bind it");
}

#[tokio::test]
async fn the_agents_rbac_allows_the_kubelets_two_checks_and_nothing_else() {
    let plane = testing::shared_with_audit_log();
    let client = plane.admin_client().await.expect("the admin client");
    let agent = agent();
    // Before the grant the service account may do none of it: the reviews can say no.
    assert!(!can(&client, &agent, "get", "nodes/stats", None).await);
    grant(&client).await;
    let grant_seen = Duration::from_secs(20);
    wait_until_can(&client, &agent, "get", "nodes/metrics", None, grant_seen).await;
    for subresource in ["nodes/metrics", "nodes/stats"] {
        assert!(
            can(&client, &agent, "get", subresource, None).await,
            "the kubelet checks get {subresource} for the agent's requests"
        );
    }
    let denied = [
        ("get", "nodes/proxy", None),
        ("create", "nodes/proxy", None),
        ("get", "nodes", None),
        ("list", "nodes", None),
        ("list", "pods", None),
        ("get", "pods/exec", Some("default")),
        ("get", "secrets", Some("kube-system")),
        ("list", "configmaps", Some(NAMESPACE)),
        ("update", "nodes/stats", None),
        ("create", "events", Some(NAMESPACE)),
    ];
    for (verb, resource, namespace) in denied {
        assert!(
            !can(&client, &agent, verb, resource, namespace).await,
            "{agent} may {verb} {resource} in {namespace:?}: more than the agent needs"
        );
    }
}
