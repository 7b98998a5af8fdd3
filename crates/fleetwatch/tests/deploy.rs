//! The Helm chart under `deploy/helm/fleetwatch` with the real Helm v4 and the lab's real
//! kube-apiserver: it lints strictly, renders exactly the committed plain manifests, ships the
//! RBAC the collector's and agent's `access` modules declare, and its every object passes a
//! server-side-apply dry run with strict field validation and then applies for real. What the
//! applied chart's service accounts may then do is `deploy_access.rs`.

// The test applies the manifests with the lab's admin client.
#![allow(clippy::disallowed_types)]

mod common;

use common::{NAMESPACE, apply, chart, helm, manifests, named, namespace, objects, render};
use fleetwatch_control_plane::testing;

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
    // A dry run cannot create the namespace the others are dry-run into.
    apply(&client, &namespace(), false).await;
    let objects = common::objects_as_dynamic(&render());
    for dry_run in [true, false] {
        for object in &objects {
            apply(&client, object, dry_run).await;
        }
    }
}
