//! The Helm chart under `deploy/helm/fleetwatch` with the real Helm v4 and the lab's real
//! kube-apiserver: it lints strictly, renders exactly the committed plain manifests, ships the
//! RBAC the collector's and agent's `access` modules declare, and its every object passes a
//! server-side-apply dry run with strict field validation and then applies for real.

// The test applies the manifests with the lab's admin client.
#![allow(clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fleetwatch_control_plane::{KUBERNETES_VERSION, Tool, binaries, testing};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;

const NAMESPACE: &str = "fleetwatch";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/fleetwatch")
}

/// The committed plain manifests: what `helm template` renders with the chart's defaults.
fn manifests() -> PathBuf {
    repo().join("deploy/manifests/fleetwatch.yaml")
}

/// Runs the cached Helm (built from Go modules first if missing) with `args`; panics with its
/// output unless it succeeds.
fn helm(args: &[&str]) -> String {
    let helm = Tool::Helm
        .ensure(&binaries::cache_dir(), &mut |step| eprintln!("{step}"))
        .unwrap_or_else(|e| panic!("helm {} cannot be had: {e}", Tool::Helm.version()));
    let out = Command::new(&helm).args(args).output().expect("run helm");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "helm {args:?}: {}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

fn render() -> String {
    let chart = chart();
    helm(&[
        "template",
        "fleetwatch",
        chart.to_str().expect("a UTF-8 path"),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBERNETES_VERSION.trim_start_matches('v'),
    ])
}

/// Every object of a multi-document YAML stream, as JSON.
fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|document| serde::Deserialize::deserialize(document).expect("a YAML document"))
        .filter(|object: &Value| !object.is_null())
        .collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
}

#[test]
fn the_chart_lints_strictly_and_renders_the_committed_manifests() {
    let chart = chart();
    let lint = helm(&["lint", "--strict", chart.to_str().expect("a UTF-8 path")]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    let rendered = render();
    let committed = std::fs::read_to_string(manifests()).unwrap_or_default();
    if rendered != committed {
        std::fs::write(manifests().with_extension("yaml.rendered"), &rendered).ok();
        panic!(
            "{} is not what the chart renders; the rendering is beside it as \
             fleetwatch.yaml.rendered: review it and move it over",
            manifests().display()
        );
    }
}

#[test]
fn the_chart_grants_exactly_what_the_components_declare() {
    let objects = objects(&render());
    let collector = named(&objects, "ClusterRole", "fleetwatch-collector");
    assert_eq!(
        collector["rules"],
        fleetwatch_collector::access::cluster_rules(),
        "the collector's ClusterRole"
    );
    let agent = named(&objects, "ClusterRole", "fleetwatch-agent");
    assert_eq!(
        agent["rules"],
        fleetwatch_agent::access::cluster_rules(),
        "the agent's ClusterRole"
    );
    // The collector's only write: its leader-election Lease, in its own namespace.
    let leases = named(&objects, "Role", "fleetwatch-collector-lease");
    assert_eq!(leases["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        leases["rules"],
        fleetwatch_collector::access::lease_rules(),
        "the collector's Lease Role"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_object_passes_a_strict_dry_run_and_applies() {
    let plane = testing::shared();
    let client = plane.admin_client().await.expect("an admin client");
    let namespace: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
    }))
    .expect("a Namespace");
    // A dry run cannot create the namespace the others are dry-run into.
    apply(&client, &namespace, false).await;
    let objects = objects_as_dynamic(&render());
    for dry_run in [true, false] {
        for object in &objects {
            apply(&client, object, dry_run).await;
        }
    }
}

fn objects_as_dynamic(yaml: &str) -> Vec<DynamicObject> {
    objects(yaml)
        .into_iter()
        .map(|o| serde_json::from_value(o).expect("a Kubernetes object"))
        .collect()
}

async fn apply(client: &kube::Client, object: &DynamicObject, dry_run: bool) {
    let types = object.types.as_ref().expect("apiVersion and kind");
    let gvk = GroupVersionKind::try_from(types).expect("a group, version and kind");
    let (resource, capabilities) = pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("the API server does not serve {gvk:?}: {e}"));
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), NAMESPACE, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let mut params = PatchParams::apply("fleetwatch-deploy-test").validation_strict();
    if dry_run {
        params = params.dry_run();
    }
    let name = object.metadata.name.as_deref().expect("a name");
    api.patch(name, &params, &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "server-side apply of {} {name} (dry run: {dry_run}): {e}",
                types.kind
            )
        });
}
