//! Pods: what is kept of each (identity, placement, owners, container names with their
//! requests, limits and restart counts; no specs, environments, probes or volumes) and the
//! `kube_pod_*` families. The largest store by far — 150,000 pods in a large cluster — so the
//! projection is as small as the families allow.

use fleetwatch_telemetry::page::Page;
use k8s_openapi::api::core::v1::Pod;

use super::family::{Family, Source, Status, boxed, one_if, unix_seconds};
use super::resource::{self, List, Resource};

/// The projection of a Pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodState {
    uid: Box<str>,
    created: Option<i64>,
    /// `spec.nodeName`, empty while unscheduled.
    node: Box<str>,
    host_ip: Box<str>,
    pod_ip: Box<str>,
    priority_class: Box<str>,
    host_network: bool,
    phase: Phase,
    owners: Box<[Owner]>,
    containers: Box<[Container]>,
    statuses: Box<[ContainerStatus]>,
    /// Statuses of the pod's `Ready` and `PodScheduled` conditions (normally at most one each).
    ready: Box<[Status]>,
    scheduled: Box<[Status]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    kind: Box<str>,
    name: Box<str>,
    /// `ownerReferences[].controller`; unset reads as false.
    controller: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Container {
    name: Box<str>,
    requests: Box<[Resource]>,
    limits: Box<[Resource]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ContainerStatus {
    name: Box<str>,
    restarts: u32,
    ready: bool,
    running: bool,
}

/// `status.phase`: one of the five, another string (no series is 1), or empty (no series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Empty,
    Pending,
    Succeeded,
    Failed,
    Unknown,
    Running,
    Other,
}

impl Phase {
    /// In kube-state-metrics' order.
    const ALL: [(Phase, &'static str); 5] = [
        (Phase::Pending, "Pending"),
        (Phase::Succeeded, "Succeeded"),
        (Phase::Failed, "Failed"),
        (Phase::Unknown, "Unknown"),
        (Phase::Running, "Running"),
    ];

    fn parse(phase: Option<&str>) -> Phase {
        match phase.unwrap_or_default() {
            "" => Phase::Empty,
            phase => Phase::ALL
                .iter()
                .find(|(_, name)| *name == phase)
                .map_or(Phase::Other, |(p, _)| *p),
        }
    }
}

/// What the pod informer keeps of a Pod.
pub fn project(pod: &Pod) -> PodState {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let condition = |kind: &str| -> Box<[Status]> {
        conditions
            .iter()
            .filter(|c| c.type_ == kind)
            .map(|c| Status::parse(&c.status))
            .collect()
    };
    PodState {
        uid: boxed(meta.uid.as_ref()),
        created: unix_seconds(meta.creation_timestamp.as_ref()),
        node: boxed(spec.and_then(|s| s.node_name.as_ref())),
        host_ip: boxed(status.and_then(|s| s.host_ip.as_ref())),
        pod_ip: boxed(status.and_then(|s| s.pod_ip.as_ref())),
        priority_class: boxed(spec.and_then(|s| s.priority_class_name.as_ref())),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        phase: Phase::parse(status.and_then(|s| s.phase.as_deref())),
        owners: meta
            .owner_references
            .iter()
            .flatten()
            .map(|o| Owner {
                kind: o.kind.as_str().into(),
                name: o.name.as_str().into(),
                controller: o.controller.unwrap_or(false),
            })
            .collect(),
        containers: spec
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let resources = c.resources.as_ref();
                Container {
                    name: c.name.as_str().into(),
                    requests: resource::project(
                        resources.and_then(|r| r.requests.as_ref()),
                        List::Container,
                    ),
                    limits: resource::project(
                        resources.and_then(|r| r.limits.as_ref()),
                        List::Container,
                    ),
                }
            })
            .collect(),
        statuses: status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|s| ContainerStatus {
                name: s.name.as_str().into(),
                restarts: u32::try_from(s.restart_count).unwrap_or(0),
                ready: s.ready,
                running: s
                    .state
                    .as_ref()
                    .is_some_and(|state| state.running.is_some()),
            })
            .collect(),
        ready: condition("Ready"),
        scheduled: condition("PodScheduled"),
    }
}

impl PodState {
    /// The first owner reference that is the controller (`metav1.GetControllerOf`).
    fn controller(&self) -> Option<&Owner> {
        self.owners.iter().find(|o| o.controller)
    }
}

pub(crate) const CREATED: Family =
    Family::gauge("kube_pod_created", "[STABLE] Unix creation timestamp");
pub(crate) const INFO: Family = Family::gauge("kube_pod_info", "[STABLE] Information about pod.");
pub(crate) const LABELS: Family = Family::gauge(
    "kube_pod_labels",
    "[STABLE] Kubernetes labels converted to Prometheus labels.",
);
pub(crate) const OWNER: Family = Family::gauge(
    "kube_pod_owner",
    "[STABLE] Information about the Pod's owner.",
);
pub(crate) const STATUS_PHASE: Family =
    Family::gauge("kube_pod_status_phase", "[STABLE] The pods current phase.");
pub(crate) const STATUS_READY: Family = Family::gauge(
    "kube_pod_status_ready",
    "[STABLE] Describes whether the pod is ready to serve requests.",
);
pub(crate) const STATUS_SCHEDULED: Family = Family::gauge(
    "kube_pod_status_scheduled",
    "[STABLE] Describes the status of the scheduling process for the pod.",
);
pub(crate) const CONTAINER_STATUS_RESTARTS: Family = Family::counter(
    "kube_pod_container_status_restarts_total",
    "[STABLE] The number of container restarts per container.",
);
pub(crate) const CONTAINER_STATUS_READY: Family = Family::gauge(
    "kube_pod_container_status_ready",
    "[STABLE] Describes whether the containers readiness check succeeded.",
);
pub(crate) const CONTAINER_STATUS_RUNNING: Family = Family::gauge(
    "kube_pod_container_status_running",
    "[STABLE] Describes whether the container is currently in running state.",
);
pub(crate) const CONTAINER_RESOURCE_REQUESTS: Family = Family::gauge(
    "kube_pod_container_resource_requests",
    "[STABLE] The number of requested request resource by a container. It is recommended to use the kube_pod_resource_requests metric exposed by kube-scheduler instead, as it is more precise.",
);
pub(crate) const CONTAINER_RESOURCE_LIMITS: Family = Family::gauge(
    "kube_pod_container_resource_limits",
    "[STABLE] The number of requested limit resource by a container. It is recommended to use the kube_pod_resource_limits metric exposed by kube-scheduler instead, as it is more precise.",
);

/// `namespace`, `pod` and `uid`: the labels every pod series starts with.
type Identity<'a> = [(&'static str, &'a str); 3];

fn identity<'a>(key: &'a fleetwatch_client::ObjectKey, pod: &'a PodState) -> Identity<'a> {
    [
        ("namespace", key.namespace.as_deref().unwrap_or_default()),
        ("pod", &key.name),
        ("uid", &pod.uid),
    ]
}

/// Writes the `kube_pod_*` families from `store`, one family after another. (Writing all of
/// them in one pass over the pods, each into a buffer of its own, measured no faster — a large
/// page's time is writing its bytes to fresh memory — and held the page twice.)
pub(crate) fn encode(store: &impl Source<PodState>, page: &mut Page<'_>) {
    CREATED.write(page, store, |out, key, pod| {
        if let Some(at) = pod.created {
            out.sample(&identity(key, pod), at as f64);
        }
    });
    INFO.write(page, store, |out, key, pod| {
        let (created_by_kind, created_by_name) =
            pod.controller().map_or(("", ""), |o| (&*o.kind, &*o.name));
        let labels = [
            ("host_ip", &*pod.host_ip),
            ("pod_ip", &*pod.pod_ip),
            ("node", &*pod.node),
            ("created_by_kind", created_by_kind),
            ("created_by_name", created_by_name),
            ("priority_class", &*pod.priority_class),
            ("host_network", true_false(pod.host_network)),
        ];
        out.sample(&(identity(key, pod), labels), 1.0);
    });
    // No label is allow-listed (kube-state-metrics' default): the family has no series.
    LABELS.write(page, store, |_, _, _| {});
    OWNER.write(page, store, |out, key, pod| {
        let id = identity(key, pod);
        if pod.owners.is_empty() {
            let labels = [
                ("owner_kind", ""),
                ("owner_name", ""),
                ("owner_is_controller", ""),
            ];
            out.sample(&(id, labels), 1.0);
        }
        for o in &pod.owners {
            let labels = [
                ("owner_kind", &*o.kind),
                ("owner_name", &*o.name),
                ("owner_is_controller", true_false(o.controller)),
            ];
            out.sample(&(id, labels), 1.0);
        }
    });
    STATUS_PHASE.write(page, store, |out, key, pod| {
        if pod.phase == Phase::Empty {
            return;
        }
        for (phase, name) in Phase::ALL {
            let labels = (identity(key, pod), [("phase", name)]);
            out.sample(&labels, one_if(pod.phase == phase));
        }
    });
    for (family, statuses) in [
        (
            &STATUS_READY,
            (|p: &PodState| &p.ready) as fn(&PodState) -> &[Status],
        ),
        (&STATUS_SCHEDULED, |p: &PodState| &p.scheduled),
    ] {
        family.write(page, store, |out, key, pod| {
            for status in statuses(pod) {
                for (condition, value) in status.series() {
                    out.sample(&(identity(key, pod), [("condition", condition)]), value);
                }
            }
        });
    }
    for (family, value) in [
        (
            &CONTAINER_STATUS_RESTARTS,
            (|s: &ContainerStatus| f64::from(s.restarts)) as fn(&ContainerStatus) -> f64,
        ),
        (&CONTAINER_STATUS_READY, |s| one_if(s.ready)),
        (&CONTAINER_STATUS_RUNNING, |s| one_if(s.running)),
    ] {
        family.write(page, store, |out, key, pod| {
            for s in &pod.statuses {
                out.sample(&(identity(key, pod), [("container", &*s.name)]), value(s));
            }
        });
    }
    for (family, resources) in [
        (
            &CONTAINER_RESOURCE_REQUESTS,
            (|c: &Container| &c.requests) as fn(&Container) -> &[Resource],
        ),
        (&CONTAINER_RESOURCE_LIMITS, |c: &Container| &c.limits),
    ] {
        family.write(page, store, |out, key, pod| {
            for c in &pod.containers {
                for r in resources(c) {
                    let labels = [
                        ("container", &*c.name),
                        ("node", &*pod.node),
                        ("resource", r.name.as_str()),
                        ("unit", r.unit.as_str()),
                    ];
                    out.sample(&(identity(key, pod), labels), r.value);
                }
            }
        });
    }
}

fn true_false(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}
