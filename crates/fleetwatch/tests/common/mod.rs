//! The Helm chart under `deploy/helm/fleetwatch` as the deploy tests see it: rendered by the
//! real Helm with its defaults into [`NAMESPACE`], and applied to the lab with server-side apply
//! (idempotent, so every test that needs the chart in the cluster applies it itself).

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]
// It applies the chart with the lab's admin client.
#![allow(clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fleetwatch_control_plane::{KUBERNETES_VERSION, Tool, binaries};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;

/// The release's namespace: every namespaced object of the chart lives here.
pub const NAMESPACE: &str = "fleetwatch";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn chart() -> PathBuf {
    repo().join("deploy/helm/fleetwatch")
}

/// The committed plain manifests: what `helm template` renders with the chart's defaults.
pub fn manifests() -> PathBuf {
    repo().join("deploy/manifests/fleetwatch.yaml")
}

/// Runs the cached Helm (built from Go modules first if missing) with `args`; panics with its
/// output unless it succeeds.
pub fn helm(args: &[&str]) -> String {
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

/// `helm template` of the chart with its defaults, for the lab's Kubernetes release.
pub fn render() -> String {
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
pub fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|document| serde::Deserialize::deserialize(document).expect("a YAML document"))
        .filter(|object: &Value| !object.is_null())
        .collect()
}

/// The rendered object of `kind` named `name`; panics if the chart has none.
pub fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
}

pub fn objects_as_dynamic(yaml: &str) -> Vec<DynamicObject> {
    objects(yaml)
        .into_iter()
        .map(|o| serde_json::from_value(o).expect("a Kubernetes object"))
        .collect()
}

/// The release's namespace, which `helm install --create-namespace` would make.
pub fn namespace() -> DynamicObject {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
    }))
    .expect("a Namespace")
}

/// Applies the rendered chart, and its namespace first, for real: what `helm install` leaves in
/// the cluster. Idempotent.
pub async fn install(client: &kube::Client) {
    apply(client, &namespace(), false).await;
    for object in &objects_as_dynamic(&render()) {
        apply(client, object, false).await;
    }
}

/// Server-side applies `object` (into [`NAMESPACE`] if namespaced) with strict field
/// validation, as a dry run if `dry_run`; panics naming the object if the API server refuses.
pub async fn apply(client: &kube::Client, object: &DynamicObject, dry_run: bool) {
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
