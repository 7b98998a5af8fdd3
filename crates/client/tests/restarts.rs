//! Five informers through three API server restarts: no relist storm (at most two lists per
//! informer per restart, by the client's own count and by the API server's), and every informer
//! converges to the true object set after each restart. Its own control plane: it restarts it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{connect, create, eventually, namespace, settings, sum, test_user};
use fleetwatch_client::{Client, Informer, Watch};
use fleetwatch_control_plane::{ControlPlane, testing};
use k8s_openapi::api::core::v1::{Pod, PodTemplate, Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams};
use kube::core::PartialObjectMeta;
use serde_json::json;

const NS: &str = "restarts";
/// The resources watched, as the API server labels them. Not ConfigMaps: the API server's own
/// controllers watch those in `kube-system`, which its metrics cannot tell from our namespace.
const RESOURCES: [&str; 5] = [
    "podtemplates",
    "secrets",
    "services",
    "serviceaccounts",
    "pods",
];

fn meta_name<K>(meta: &PartialObjectMeta<K>) -> String {
    meta.metadata.name.clone().unwrap_or_default()
}

fn service_name(service: &Service) -> String {
    service.metadata.name.clone().unwrap_or_default()
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

struct Informers(Vec<Informer<String>>);

impl Informers {
    fn start(client: &Client) -> Self {
        Informers(vec![
            client
                .metadata_informer(Watch::<PodTemplate>::namespaced(NS), meta_name)
                .expect("podtemplates"),
            client
                .metadata_informer(Watch::<Secret>::namespaced(NS), meta_name)
                .expect("secrets"),
            client
                .informer(Watch::<Service>::namespaced(NS), service_name)
                .expect("services"),
            client
                .metadata_informer(Watch::<ServiceAccount>::namespaced(NS), meta_name)
                .expect("serviceaccounts"),
            client
                .informer(Watch::<Pod>::namespaced(NS), pod_name)
                .expect("pods"),
        ])
    }

    fn names(&self) -> Vec<BTreeSet<String>> {
        self.0
            .iter()
            .map(|i| i.store().iter().map(|(_, n)| n.clone()).collect())
            .collect()
    }

    fn lists(&self) -> Vec<u64> {
        self.0.iter().map(|i| i.stats().lists).collect()
    }

    /// Relists kube's watcher made for no reason the informers saw (they should make none).
    fn unexplained_relists(&self) -> Vec<u64> {
        self.0.iter().map(|i| i.stats().relists.other).collect()
    }
}

/// Every object in the namespace, per resource, as the admin sees it.
async fn truth(plane: &ControlPlane) -> Vec<BTreeSet<String>> {
    let admin = plane.admin_client().await.expect("admin");
    vec![
        names_in::<PodTemplate>(&admin).await,
        names_in::<Secret>(&admin).await,
        names_in::<Service>(&admin).await,
        names_in::<ServiceAccount>(&admin).await,
        names_in::<Pod>(&admin).await,
    ]
}

/// The names of every `K` in the test namespace (a metadata-only list by the admin): the test's
/// oracle, outside the client under test.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
async fn names_in<K>(admin: &kube::Client) -> BTreeSet<String>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(admin.clone(), NS)
        .list_metadata(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect()
}

/// Creates one object of each watched resource, named `<prefix>-<resource>`.
async fn create_one_of_each(plane: &ControlPlane, prefix: &str) {
    let admin = plane.admin_client().await.expect("admin");
    let meta = |r: &str| json!({"name": format!("{prefix}-{r}"), "namespace": NS});
    create::<PodTemplate>(&Api::namespaced(admin.clone(), NS), json!({"metadata": meta("podtemplates"), "template": {"spec": {"containers": [{"name": "c", "image": "registry.lab.invalid/app:1"}]}}})).await;
    create::<Secret>(
        &Api::namespaced(admin.clone(), NS),
        json!({"metadata": meta("secrets"), "stringData": {"k": "v"}}),
    )
    .await;
    create::<Service>(
        &Api::namespaced(admin.clone(), NS),
        json!({"metadata": meta("services"), "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    create::<ServiceAccount>(
        &Api::namespaced(admin.clone(), NS),
        json!({"metadata": meta("serviceaccounts")}),
    )
    .await;
    create::<Pod>(&Api::namespaced(admin, NS), json!({"metadata": meta("pods"), "spec": {"containers": [{"name": "c", "image": "registry.lab.invalid/app:1"}]}})).await;
}

async fn delete_pod_template(plane: &ControlPlane, name: &str) {
    let admin = plane.admin_client().await.expect("admin");
    Api::<PodTemplate>::namespaced(admin, NS)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
}

/// LIST and WATCH requests the (restarted, so freshly counted) API server served for each of
/// our resources in namespace scope. The lab's controller manager lists and watches cluster-wide
/// (`scope="cluster"`), and the test's admin only creates, deletes and lists after this is read,
/// so namespace-scoped LISTs and WATCHes of these resources are our informers'.
async fn server_lists_and_watches(plane: &ControlPlane) -> Vec<(f64, f64)> {
    let text = common::server_metrics(plane).await;
    RESOURCES
        .iter()
        .map(|r| {
            let labels = |verb| [("verb", verb), ("resource", *r), ("scope", "namespace")];
            // Watches are counted when they end; the ones still open are in the gauge.
            let watches = sum(&text, "apiserver_request_total", &labels("WATCH"))
                + sum(&text, "apiserver_longrunning_requests", &labels("WATCH"));
            (
                sum(&text, "apiserver_request_total", &labels("LIST")),
                watches,
            )
        })
        .collect()
}

#[tokio::test]
async fn five_informers_through_three_api_server_restarts() {
    common::log();
    let plane = testing::shared();
    let kubeconfig = test_user(plane, "fw-restarts", "workload-low").await;
    namespace(plane, NS).await;
    for i in 0..3 {
        create_one_of_each(plane, &format!("before-{i}")).await;
    }
    let client = connect(kubeconfig, settings("restarts")).await;
    let informers = Informers::start(&client);
    for informer in &informers.0 {
        informer.ready().await;
    }
    let expected = truth(plane).await;
    eventually(Duration::from_secs(30), "the informers to sync", || {
        informers.names() == expected
    })
    .await;
    assert_eq!(informers.lists(), vec![1; 5]);

    for round in 1..=3 {
        let lists_before = informers.lists();
        plane
            .restart_apiserver()
            .await
            .expect("restart the API server");
        // Changes after the restart must arrive too.
        create_one_of_each(plane, &format!("round-{round}")).await;
        delete_pod_template(plane, &format!("before-{}-podtemplates", round - 1)).await;
        let mut expected = expected_after(&informers, round);
        expected[0].remove(&format!("before-{}-podtemplates", round - 1));
        let converged = tokio::time::timeout(Duration::from_secs(90), async {
            while informers.names() != expected {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        assert!(
            converged.await.is_ok(),
            "round {round}: the informers hold {:?}, expected {expected:?}; lists {:?}",
            informers.names(),
            informers.lists()
        );
        let server = server_lists_and_watches(plane).await;
        let (dispatched, rejected) = common::server_requests_of(plane, "fw-restarts").await;
        let lists: Vec<u64> = informers
            .lists()
            .iter()
            .zip(&lists_before)
            .map(|(a, b)| a - b)
            .collect();
        println!(
            "restart {round}: lists per informer (client) {lists:?}; API server (LIST, WATCH) per \
             resource {server:?}; requests of our flow schema: {dispatched} dispatched, {rejected} rejected"
        );
        assert!(
            lists.iter().all(|&l| l <= 2),
            "relist storm by the client's count: {lists:?}"
        );
        assert_eq!(
            informers.unexplained_relists(),
            vec![0; 5],
            "relists with no 410 or failed list before them"
        );
        for (resource, (list, watch)) in RESOURCES.iter().zip(&server) {
            // Each informer resumes its watch or relists (a streaming list is a WATCH); two lists
            // and one resumed watch at most.
            assert!(
                list + watch <= 3.0,
                "{resource}: the API server served {list} LISTs and {watch} WATCHes"
            );
            assert!(
                list + watch >= 1.0,
                "{resource}: the informer never came back"
            );
        }
        // Read after the server's counts, as its LISTs are namespaced too.
        assert_eq!(
            truth(plane).await,
            expected,
            "the informers hold the true object set"
        );
    }
}

/// What the informers should hold: everything so far plus this round's objects.
fn expected_after(informers: &Informers, round: usize) -> Vec<BTreeSet<String>> {
    let mut names = informers.names();
    for (set, resource) in names.iter_mut().zip(RESOURCES) {
        set.insert(format!("round-{round}-{resource}"));
    }
    names
}
