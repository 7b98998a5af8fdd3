//! Object state: nodes, pods, namespaces, DaemonSets and Deployments, read through informers
//! of the budgeted client and exposed as kube-state-metrics-compatible families.
//!
//! Start with [`ObjectState::start`], await [`ObjectState::ready`], and serve the
//! [`ObjectState`] as a page [`Section`]: each scrape writes the families straight from the
//! informers' stores, so 150,000 pods are 150,000 small projections, not millions of long-lived
//! metric objects, and a series disappears the moment its object's delete event arrives.
//! [`Stores`] are the same families from stores filled by hand (tests, benchmarks).
//!
//! Owns: one informer per resource (cluster-wide, shared through the client's registry), the
//! projections they store ([`NodeState`], [`PodState`], [`NamespaceState`], [`DaemonSetState`],
//! [`DeploymentState`]), and the families listed in [`CLAIMED`]: the same names, HELP text,
//! TYPE, label names, label values and values as kube-state-metrics v2.20.0 (`tests/ksm.rs`
//! compares them with the real kube-state-metrics on a real control plane). Like
//! kube-state-metrics without `--metric-labels-allowlist`, the `*_labels` families have no
//! series; allow-lists are not supported.
//!
//! Must not: LIST-poll (it cannot: informers list once from the watch cache, then watch), hold
//! full objects (each store keeps only its projection; images, volumes, environments and
//! managed fields are dropped as each event arrives), or watch per node (one collector per
//! cluster reads cluster-wide state once).
//!
//! A scrape writes each family a slice of objects at a time under its store's read lock and
//! streams the page between slices, lock let go: a watch event waits for one slice, not for
//! the page (about a second for 60,000 pods, 275 MiB: `cargo bench -p fleetwatch-collector
//! --bench objects`, `bench/RESULTS.md`) nor for the scraper. The page is therefore not one
//! instant's state: an object changed mid-scrape may show its old value in the families
//! written before the change. It allocates nothing per series.

mod family;
mod namespace;
mod node;
mod pod;
mod quantity;
mod resource;
mod workload;

use family::Source;
use fleetwatch_client::{Client, Informer, InformerStats, Store, Watch};
use fleetwatch_telemetry::page::{Page, Section};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};

pub use namespace::NamespaceState;
pub use node::NodeState;
pub use pod::PodState;
pub use workload::{DaemonSetState, DeploymentState};

/// Every family this module writes, by the name on the page; each one kube-state-metrics
/// v2.20.0 also writes, with the same meaning. The compatibility test iterates this list.
pub const CLAIMED: &[&str] = &[
    "kube_node_created",
    "kube_node_info",
    "kube_node_labels",
    "kube_node_role",
    "kube_node_spec_taint",
    "kube_node_spec_unschedulable",
    "kube_node_status_allocatable",
    "kube_node_status_capacity",
    "kube_node_status_condition",
    "kube_node_status_addresses",
    "kube_pod_created",
    "kube_pod_info",
    "kube_pod_labels",
    "kube_pod_owner",
    "kube_pod_status_phase",
    "kube_pod_status_ready",
    "kube_pod_status_scheduled",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_ready",
    "kube_pod_container_status_running",
    "kube_pod_container_resource_requests",
    "kube_pod_container_resource_limits",
    "kube_namespace_created",
    "kube_namespace_labels",
    "kube_namespace_status_phase",
    "kube_namespace_status_condition",
    "kube_daemonset_created",
    "kube_daemonset_status_current_number_scheduled",
    "kube_daemonset_status_desired_number_scheduled",
    "kube_daemonset_status_number_available",
    "kube_daemonset_status_number_misscheduled",
    "kube_daemonset_status_number_ready",
    "kube_daemonset_status_number_unavailable",
    "kube_daemonset_status_observed_generation",
    "kube_daemonset_status_updated_number_scheduled",
    "kube_daemonset_metadata_generation",
    "kube_deployment_created",
    "kube_deployment_spec_replicas",
    "kube_deployment_spec_paused",
    "kube_deployment_status_replicas",
    "kube_deployment_status_replicas_ready",
    "kube_deployment_status_replicas_available",
    "kube_deployment_status_replicas_unavailable",
    "kube_deployment_status_replicas_updated",
    "kube_deployment_status_observed_generation",
    "kube_deployment_metadata_generation",
];

/// Starting the object-state source failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client refused an informer (another projection of the same resource is running in
    /// this client).
    #[error("starting the {resource} informer: {source}")]
    Informer {
        resource: &'static str,
        #[source]
        source: Box<fleetwatch_client::Error>,
    },
}

/// The object-state source: five informers and the families encoded from them. Cheap to clone;
/// clones share the informers.
#[derive(Debug, Clone)]
pub struct ObjectState {
    nodes: Informer<NodeState>,
    pods: Informer<PodState>,
    namespaces: Informer<NamespaceState>,
    daemonsets: Informer<DaemonSetState>,
    deployments: Informer<DeploymentState>,
}

impl ObjectState {
    /// Starts (or joins, if `client` already runs them with these projections) the informers
    /// on nodes, pods, namespaces, DaemonSets and Deployments, cluster-wide. They run as long as
    /// `client`; each lists once from the watch cache after the client's start-up jitter.
    pub fn start(client: &Client) -> Result<ObjectState, Error> {
        let failed = |resource| {
            move |source| Error::Informer {
                resource,
                source: Box::new(source),
            }
        };
        Ok(ObjectState {
            nodes: client
                .informer(Watch::<Node>::all(), node::project)
                .map_err(failed("nodes"))?,
            pods: client
                .informer(Watch::<Pod>::all(), pod::project)
                .map_err(failed("pods"))?,
            namespaces: client
                .informer(Watch::<Namespace>::all(), namespace::project)
                .map_err(failed("namespaces"))?,
            daemonsets: client
                .informer(Watch::<DaemonSet>::all(), workload::project_daemonset)
                .map_err(failed("daemonsets"))?,
            deployments: client
                .informer(Watch::<Deployment>::all(), workload::project_deployment)
                .map_err(failed("deployments"))?,
        })
    }

    /// Waits until every informer holds a complete list. Until then a scrape shows what has
    /// been listed so far (possibly nothing).
    pub async fn ready(&self) {
        self.nodes.ready().await;
        self.pods.ready().await;
        self.namespaces.ready().await;
        self.daemonsets.ready().await;
        self.deployments.ready().await;
    }

    /// What each informer has done (lists, relists and why, whether synced), by resource.
    pub fn stats(&self) -> [(&'static str, InformerStats); 5] {
        [
            ("nodes", self.nodes.stats()),
            ("pods", self.pods.stats()),
            ("namespaces", self.namespaces.stats()),
            ("daemonsets", self.daemonsets.stats()),
            ("deployments", self.deployments.stats()),
        ]
    }

    /// Objects held, by resource (`nodes`, `pods`, …): what the stores cost is proportional to.
    pub fn objects(&self) -> [(&'static str, usize); 5] {
        [
            ("nodes", self.nodes.store().len()),
            ("pods", self.pods.store().len()),
            ("namespaces", self.namespaces.store().len()),
            ("daemonsets", self.daemonsets.store().len()),
            ("deployments", self.deployments.store().len()),
        ]
    }
}

impl Section for ObjectState {
    fn write(&self, page: &mut Page<'_>) {
        write_families(
            &self.namespaces,
            &self.nodes,
            &self.pods,
            &self.daemonsets,
            &self.deployments,
            page,
        );
    }
}

/// Every family, in kube-state-metrics' order of resources.
fn write_families(
    namespaces: &impl Source<NamespaceState>,
    nodes: &impl Source<NodeState>,
    pods: &impl Source<PodState>,
    daemonsets: &impl Source<DaemonSetState>,
    deployments: &impl Source<DeploymentState>,
    page: &mut Page<'_>,
) {
    namespace::encode(namespaces, page);
    node::encode(nodes, page);
    pod::encode(pods, page);
    workload::encode_daemonsets(daemonsets, page);
    workload::encode_deployments(deployments, page);
}

/// The five stores filled by hand, written as [`ObjectState`] writes its informers': what a
/// scrape shows for a given set of objects, without an API server.
#[derive(Debug, Default)]
pub struct Stores {
    nodes: Store<NodeState>,
    pods: Store<PodState>,
    namespaces: Store<NamespaceState>,
    daemonsets: Store<DaemonSetState>,
    deployments: Store<DeploymentState>,
}

impl Stores {
    pub fn apply_node(&mut self, object: &Node) {
        self.nodes.apply(object, node::project(object));
    }

    pub fn apply_pod(&mut self, object: &Pod) {
        self.pods.apply(object, pod::project(object));
    }

    pub fn delete_pod(&mut self, object: &Pod) {
        self.pods.delete(object);
    }

    pub fn apply_namespace(&mut self, object: &Namespace) {
        self.namespaces.apply(object, namespace::project(object));
    }

    pub fn apply_daemonset(&mut self, object: &DaemonSet) {
        self.daemonsets
            .apply(object, workload::project_daemonset(object));
    }

    pub fn apply_deployment(&mut self, object: &Deployment) {
        self.deployments
            .apply(object, workload::project_deployment(object));
    }
}

impl Section for Stores {
    fn write(&self, page: &mut Page<'_>) {
        write_families(
            &self.namespaces,
            &self.nodes,
            &self.pods,
            &self.daemonsets,
            &self.deployments,
            page,
        );
    }
}

#[cfg(test)]
mod tests;
