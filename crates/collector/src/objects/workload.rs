//! DaemonSets and Deployments: their counts (a handful of integers each) and the
//! `kube_daemonset_*` and `kube_deployment_*` families. A missing status reads as zeros, as
//! Go's zero values do in kube-state-metrics.

use fleetwatch_client::ObjectKey;
use fleetwatch_telemetry::page::Page;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};

use super::family::{Family, Source, one_if, unix_seconds};

/// The projection of a DaemonSet: its numbers, in the order of [`DAEMONSET_FAMILIES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSetState {
    created: Option<i64>,
    numbers: [i64; DAEMONSET_FAMILIES.len()],
}

/// What the DaemonSet informer keeps of a DaemonSet.
pub fn project_daemonset(daemonset: &DaemonSet) -> DaemonSetState {
    let s = daemonset.status.clone().unwrap_or_default();
    DaemonSetState {
        created: unix_seconds(daemonset.metadata.creation_timestamp.as_ref()),
        numbers: [
            s.current_number_scheduled.into(),
            s.desired_number_scheduled.into(),
            s.number_available.unwrap_or(0).into(),
            s.number_misscheduled.into(),
            s.number_ready.into(),
            s.number_unavailable.unwrap_or(0).into(),
            s.observed_generation.unwrap_or(0),
            s.updated_number_scheduled.unwrap_or(0).into(),
            daemonset.metadata.generation.unwrap_or(0),
        ],
    }
}

pub(crate) const DAEMONSET_CREATED: Family =
    Family::gauge("kube_daemonset_created", "[STABLE] Unix creation timestamp");

/// One series per DaemonSet each, in [`DaemonSetState::numbers`]' order.
pub(crate) const DAEMONSET_FAMILIES: [Family; 9] = [
    Family::gauge(
        "kube_daemonset_status_current_number_scheduled",
        "[STABLE] The number of nodes running at least one daemon pod and are supposed to.",
    ),
    Family::gauge(
        "kube_daemonset_status_desired_number_scheduled",
        "[STABLE] The number of nodes that should be running the daemon pod.",
    ),
    Family::gauge(
        "kube_daemonset_status_number_available",
        "[STABLE] The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available",
    ),
    Family::gauge(
        "kube_daemonset_status_number_misscheduled",
        "[STABLE] The number of nodes running a daemon pod but are not supposed to.",
    ),
    Family::gauge(
        "kube_daemonset_status_number_ready",
        "[STABLE] The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    Family::gauge(
        "kube_daemonset_status_number_unavailable",
        "[STABLE] The number of nodes that should be running the daemon pod and have none of the daemon pod running and available",
    ),
    Family::gauge(
        "kube_daemonset_status_observed_generation",
        "[STABLE] The most recent generation observed by the daemon set controller.",
    ),
    Family::gauge(
        "kube_daemonset_status_updated_number_scheduled",
        "[STABLE] The total number of nodes that are running updated daemon pod",
    ),
    Family::gauge(
        "kube_daemonset_metadata_generation",
        "[STABLE] Sequence number representing a specific generation of the desired state.",
    ),
];

fn daemonset_labels(key: &ObjectKey) -> [(&'static str, &str); 2] {
    [
        ("namespace", key.namespace.as_deref().unwrap_or_default()),
        ("daemonset", &key.name),
    ]
}

/// Writes the `kube_daemonset_*` families from `store`.
pub(crate) fn encode_daemonsets(store: &impl Source<DaemonSetState>, page: &mut Page<'_>) {
    DAEMONSET_CREATED.write(page, store, |out, key, d| {
        if let Some(created) = d.created {
            out.sample(&daemonset_labels(key), created as f64)
        }
    });
    for (i, family) in DAEMONSET_FAMILIES.iter().enumerate() {
        family.write(page, store, |out, key, d| {
            out.sample(&daemonset_labels(key), d.numbers[i] as f64)
        });
    }
}

/// The projection of a Deployment: its numbers, in the order of [`DEPLOYMENT_FAMILIES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentState {
    created: Option<i64>,
    /// `spec.replicas`: no series when unset.
    spec_replicas: Option<i32>,
    paused: bool,
    numbers: [i64; DEPLOYMENT_FAMILIES.len()],
}

/// What the Deployment informer keeps of a Deployment.
pub fn project_deployment(deployment: &Deployment) -> DeploymentState {
    let s = deployment.status.clone().unwrap_or_default();
    DeploymentState {
        created: unix_seconds(deployment.metadata.creation_timestamp.as_ref()),
        spec_replicas: deployment.spec.replicas,
        paused: deployment.spec.paused.unwrap_or(false),
        numbers: [
            s.replicas.unwrap_or(0).into(),
            s.ready_replicas.unwrap_or(0).into(),
            s.available_replicas.unwrap_or(0).into(),
            s.unavailable_replicas.unwrap_or(0).into(),
            s.updated_replicas.unwrap_or(0).into(),
            s.observed_generation.unwrap_or(0),
            deployment.metadata.generation.unwrap_or(0),
        ],
    }
}

pub(crate) const DEPLOYMENT_CREATED: Family = Family::gauge(
    "kube_deployment_created",
    "[STABLE] Unix creation timestamp",
);
pub(crate) const DEPLOYMENT_SPEC_REPLICAS: Family = Family::gauge(
    "kube_deployment_spec_replicas",
    "[STABLE] Number of desired pods for a deployment.",
);
pub(crate) const DEPLOYMENT_SPEC_PAUSED: Family = Family::gauge(
    "kube_deployment_spec_paused",
    "[STABLE] Whether the deployment is paused and will not be processed by the deployment controller.",
);

/// One series per Deployment each, in [`DeploymentState::numbers`]' order.
pub(crate) const DEPLOYMENT_FAMILIES: [Family; 7] = [
    Family::gauge(
        "kube_deployment_status_replicas",
        "[STABLE] The number of replicas per deployment.",
    ),
    Family::gauge(
        "kube_deployment_status_replicas_ready",
        "[STABLE] The number of ready replicas per deployment.",
    ),
    Family::gauge(
        "kube_deployment_status_replicas_available",
        "[STABLE] The number of available replicas per deployment.",
    ),
    Family::gauge(
        "kube_deployment_status_replicas_unavailable",
        "[STABLE] The number of unavailable replicas per deployment.",
    ),
    Family::gauge(
        "kube_deployment_status_replicas_updated",
        "[STABLE] The number of updated replicas per deployment.",
    ),
    Family::gauge(
        "kube_deployment_status_observed_generation",
        "[STABLE] The generation observed by the deployment controller.",
    ),
    Family::gauge(
        "kube_deployment_metadata_generation",
        "[STABLE] Sequence number representing a specific generation of the desired state.",
    ),
];

fn deployment_labels(key: &ObjectKey) -> [(&'static str, &str); 2] {
    [
        ("namespace", key.namespace.as_deref().unwrap_or_default()),
        ("deployment", &key.name),
    ]
}

/// Writes the `kube_deployment_*` families from `store`.
pub(crate) fn encode_deployments(store: &impl Source<DeploymentState>, page: &mut Page<'_>) {
    DEPLOYMENT_CREATED.write(page, store, |out, key, d| {
        if let Some(created) = d.created {
            out.sample(&deployment_labels(key), created as f64)
        }
    });
    DEPLOYMENT_SPEC_REPLICAS.write(page, store, |out, key, d| {
        if let Some(replicas) = d.spec_replicas {
            out.sample(&deployment_labels(key), replicas.into())
        }
    });
    DEPLOYMENT_SPEC_PAUSED.write(page, store, |out, key, d| {
        out.sample(&deployment_labels(key), one_if(d.paused))
    });
    for (i, family) in DEPLOYMENT_FAMILIES.iter().enumerate() {
        family.write(page, store, |out, key, d| {
            out.sample(&deployment_labels(key), d.numbers[i] as f64)
        });
    }
}
