//! 410 Gone: etcd is compacted past the informer's resourceVersion while its watch is down (the
//! API server stopped); when the server is back, exactly one relist follows, made because the
//! server answered 410 (by the informer's count of relists by reason, and by its metric), and
//! the watch resumes.
//! Its own control plane: it stops the API server and compacts etcd.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{connect, create, eventually, namespace, settings, sum, test_user};
use fleetwatch_client::{Relists, Watch};
use fleetwatch_control_plane::testing;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use serde_json::json;

const NS: &str = "gone";

fn name(meta: &PartialObjectMeta<ConfigMap>) -> String {
    meta.metadata.name.clone().unwrap_or_default()
}

#[tokio::test]
async fn compaction_while_the_watch_is_down_costs_exactly_one_relist() {
    common::log();
    let plane = testing::shared();
    let kubeconfig = test_user(plane, "fw-gone", "workload-low").await;
    namespace(plane, NS).await;
    namespace(plane, "elsewhere").await;
    let admin = plane.admin_client().await.expect("admin");
    let ours: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    for i in 0..3 {
        create(
            &ours,
            json!({"metadata": {"name": format!("cm-{i}"), "labels": {"test": "gone"}}}),
        )
        .await;
    }
    let client = connect(kubeconfig, settings("gone")).await;
    let informer = client
        .metadata_informer(Watch::<ConfigMap>::namespaced(NS).labels("test=gone"), name)
        .expect("informer");
    informer.ready().await;
    assert_eq!(informer.stats().lists, 1);

    // History moves on where the informer does not look, then the watch goes down and etcd
    // forgets everything before now.
    let elsewhere: Api<ConfigMap> = Api::namespaced(admin, "elsewhere");
    for i in 0..20 {
        create(
            &elsewhere,
            json!({"metadata": {"name": format!("other-{i}")}}),
        )
        .await;
    }
    plane.stop_apiserver().await;
    let compacted = plane.compact_etcd().await.expect("compact etcd");
    plane
        .start_apiserver_again()
        .await
        .expect("start the API server");

    let admin = plane.admin_client().await.expect("admin");
    let ours: Api<ConfigMap> = Api::namespaced(admin, NS);
    create(
        &ours,
        json!({"metadata": {"name": "after", "labels": {"test": "gone"}}}),
    )
    .await;
    let expected: BTreeSet<String> = ["cm-0", "cm-1", "cm-2", "after"].map(str::to_owned).into();
    let names =
        || -> BTreeSet<String> { informer.store().iter().map(|(_, n)| n.clone()).collect() };
    let recovered = tokio::time::timeout(Duration::from_secs(60), async {
        while names() != expected {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(
        recovered.await.is_ok(),
        "the informer holds {:?} ({:?}), expected {expected:?}; client metrics:\n{}",
        names(),
        informer.stats(),
        common::client_metrics(&client)
    );
    let one_for_gone = Relists {
        gone: 1,
        ..Relists::default()
    };
    assert_eq!(
        (informer.stats().lists, informer.stats().relists),
        (2, one_for_gone),
        "exactly one relist, and for 410 Gone"
    );

    // The watch resumed: a change arrives without another list.
    create(
        &ours,
        json!({"metadata": {"name": "later", "labels": {"test": "gone"}}}),
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the resumed watch to deliver",
        || names().contains("later"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = common::client_metrics(&client);
    let watches = sum(
        &text,
        "fleetwatch_client_requests_total",
        &[("verb", "watch"), ("resource", "configmaps")],
    );
    let lists = |reason| {
        sum(
            &text,
            "fleetwatch_client_informer_lists_total",
            &[("resource", "configmaps"), ("reason", reason)],
        )
    };
    println!(
        "410 test: compacted etcd to revision {compacted}; lists {} ({:?}); watch requests sent \
         {watches}",
        informer.stats().lists,
        informer.stats().relists
    );
    assert_eq!(
        (informer.stats().lists, informer.stats().relists),
        (2, one_for_gone),
        "no further relist once the watch resumed"
    );
    assert_eq!(
        (
            lists("initial"),
            lists("gone"),
            lists("list_incomplete"),
            lists("other")
        ),
        (1.0, 1.0, 0.0, 0.0),
        "the client's metric agrees:\n{text}"
    );
}
