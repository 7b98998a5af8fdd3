//! The object writer (manifests of kinds known only at run time) against a real API server:
//! dry runs store nothing, strict validation refuses what it would drop, namespaced and
//! cluster-scoped kinds resolve, merge patches add and remove labels, deletes are idempotent,
//! and malformed objects are refused before any request, naming the object.

// The test reads back what the writer did with the lab's admin client (the writer has no reads).
#![allow(clippy::disallowed_types)]

mod common;

use common::{connect, namespace, settings};
use fleetwatch_client::{Error, Mode};
use fleetwatch_control_plane::testing;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject};
use serde_json::json;

fn object(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).expect("a Kubernetes object")
}

fn config_map(namespace: &str, name: &str, data: serde_json::Value) -> DynamicObject {
    object(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }))
}

#[tokio::test]
async fn applies_patches_and_deletes_objects_of_any_kind_as_its_field_manager() {
    let plane = testing::shared();
    let ns = "objects-writer";
    namespace(plane, ns).await;
    let client = connect(plane.kubeconfig(), settings("objects-test")).await;
    let writer = client.object_writer("fleetwatch-objects-test");
    let admin = plane.admin_client().await.expect("admin client");
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);

    // A dry run is checked by the server and stores nothing.
    let wanted = config_map(ns, "applied", json!({"key": "value"}));
    let dry = writer.apply(&wanted, Mode::DryRun).await.expect("dry run");
    assert_eq!(
        dry.data["data"]["key"], "value",
        "the dry run returns the object"
    );
    assert!(
        config_maps.get_opt("applied").await.expect("get").is_none(),
        "a dry run stored the object"
    );

    // Persisted, it is owned by the writer's field manager.
    writer.apply(&wanted, Mode::Persist).await.expect("apply");
    let stored = config_maps
        .get("applied")
        .await
        .expect("the applied object");
    assert_eq!(
        stored
            .data
            .as_ref()
            .and_then(|d| d.get("key"))
            .map(String::as_str),
        Some("value")
    );
    let managers: Vec<_> = stored
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.as_deref())
        .collect();
    assert_eq!(managers, ["fleetwatch-objects-test"], "field managers");

    // Strict validation refuses a field the server would drop, and names it (v1.37.2 answers
    // an apply patch that does not fit the schema with a 500, not a 400).
    let mut unknown = config_map(ns, "unknown-field", json!({"key": "value"}));
    unknown.data["spec"] = json!({"replicas": 1});
    match writer.apply(&unknown, Mode::DryRun).await {
        Err(Error::Status { message, .. }) => assert!(
            message.contains(".spec: field not declared in schema"),
            "the error names the field: {message}"
        ),
        other => panic!("an unknown field was accepted: {other:?}"),
    }

    // A cluster-scoped kind, and a merge patch that adds one label and removes another.
    let labelled = object(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "objects-writer-labels", "labels": {"old": "1"}},
    }));
    writer
        .apply(&labelled, Mode::Persist)
        .await
        .expect("apply a namespace");
    writer
        .merge_patch(
            &labelled,
            &json!({"metadata": {"labels": {"new": "2", "old": null}}}),
        )
        .await
        .expect("merge patch");
    let namespaces: Api<Namespace> = Api::all(admin);
    let labels = namespaces
        .get("objects-writer-labels")
        .await
        .expect("the namespace")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(labels.get("new").map(String::as_str), Some("2"));
    assert!(
        !labels.contains_key("old"),
        "the null value kept the label: {labels:?}"
    );

    // Deleting twice is fine; the object is gone.
    writer.delete(&wanted).await.expect("delete");
    writer.delete(&wanted).await.expect("delete again");
    assert!(config_maps.get_opt("applied").await.expect("get").is_none());
}

#[tokio::test]
async fn malformed_or_unknown_objects_are_refused_naming_the_object() {
    let plane = testing::shared();
    let client = connect(plane.kubeconfig(), settings("objects-test")).await;
    let writer = client.object_writer("fleetwatch-objects-test");

    let no_namespace = object(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lost"},
    }));
    let error = writer
        .apply(&no_namespace, Mode::DryRun)
        .await
        .expect_err("a namespaced object without a namespace");
    assert!(
        matches!(&error, Error::InvalidObject { object, reason }
            if object == "ConfigMap lost" && reason.contains("namespace")),
        "{error}"
    );

    let no_name = object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}));
    let error = writer
        .apply(&no_name, Mode::DryRun)
        .await
        .expect_err("an object without a name");
    assert!(error.to_string().contains("metadata.name"), "{error}");

    let unknown_kind = object(json!({
        "apiVersion": "example.invalid/v1", "kind": "Widget", "metadata": {"name": "w"},
    }));
    let error = writer
        .apply(&unknown_kind, Mode::DryRun)
        .await
        .expect_err("a kind the server does not serve");
    let text = error.to_string();
    assert!(
        text.contains("discover") && text.contains("example.invalid/v1 Widget"),
        "{text}"
    );
    assert!(
        text.contains(&client.server().to_owned()),
        "names the server: {text}"
    );
}
