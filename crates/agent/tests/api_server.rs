//! The agent against the lab's real kube-apiserver: the RBAC it ships (`access`) allows what the
//! kubelet checks for it and nothing more, proven by SubjectAccessReviews.

// The test grants RBAC and asks for reviews with the lab's admin client.
#![allow(clippy::disallowed_types)]

use fleetwatch_control_plane::testing;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use serde_json::json;

const NAMESPACE: &str = "fleetwatch-agent-test";
const SERVICE_ACCOUNT: &str = "fleetwatch-agent";

fn user() -> String {
    format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}")
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

/// Whether the API server says the agent's service account may `verb` `resource`
/// (`resource/subresource` allowed), in `namespace` if given.
async fn allowed(
    client: &kube::Client,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{NAMESPACE}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: namespace.map(str::to_owned),
                name: Some("node-1".into()).filter(|_| resource == "nodes"),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviewed = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SubjectAccessReview");
    reviewed.status.expect("a review's status").allowed
}

#[tokio::test]
async fn the_agents_rbac_allows_the_kubelets_two_checks_and_nothing_else() {
    let plane = testing::shared_with_audit_log();
    let client = plane.admin_client().await.expect("the admin client");
    // Before the grant the service account may do none of it: the reviews can say no.
    assert!(!allowed(&client, "get", "nodes/stats", None).await);
    grant(&client).await;
    // The authorizer sees a new binding through its informers, a moment after it is created.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !allowed(&client, "get", "nodes/metrics", None).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the grant did not reach the authorizer in 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for subresource in ["nodes/metrics", "nodes/stats"] {
        assert!(
            allowed(&client, "get", subresource, None).await,
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
            !allowed(&client, verb, resource, namespace).await,
            "the agent's service account may {verb} {resource} in {namespace:?}: more than it needs"
        );
    }
}
