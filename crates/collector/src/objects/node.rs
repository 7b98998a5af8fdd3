//! Nodes: what is kept of each (a few strings and numbers, not the images, volumes or
//! heartbeat times that make up most of a Node) and the `kube_node_*` families.

use fleetwatch_telemetry::page::Page;
use k8s_openapi::api::core::v1::Node;

use super::family::{Condition, Family, Source, Status, boxed, one_if, unix_seconds};
use super::resource::{self, List, Resource};

/// The projection of a Node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    created: Option<i64>,
    /// `kube_node_info`'s labels after `node`, in its order; `kubeproxy_version` is always
    /// `deprecated` and not kept.
    info: Info,
    unschedulable: bool,
    capacity: Box<[Resource]>,
    allocatable: Box<[Resource]>,
    conditions: Box<[Condition]>,
    taints: Box<[Taint]>,
    /// Suffixes of `node-role.kubernetes.io/<role>` labels.
    roles: Box<[Box<str>]>,
    /// (type, address)
    addresses: Box<[(Box<str>, Box<str>)]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Info {
    kernel_version: Box<str>,
    os_image: Box<str>,
    container_runtime_version: Box<str>,
    kubelet_version: Box<str>,
    provider_id: Box<str>,
    pod_cidr: Box<str>,
    system_uuid: Box<str>,
    internal_ip: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Taint {
    key: Box<str>,
    value: Box<str>,
    effect: Box<str>,
}

const ROLE_PREFIX: &str = "node-role.kubernetes.io/";

/// What the node informer keeps of a Node.
pub fn project(node: &Node) -> NodeState {
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    let system = status.and_then(|s| s.node_info.as_ref());
    let system_field = |field: fn(&k8s_openapi::api::core::v1::NodeSystemInfo) -> &String| {
        boxed(system.map(field))
    };
    let addresses = status
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    // The last InternalIP, as kube-state-metrics picks it.
    let internal_ip = addresses
        .iter()
        .rev()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.as_str())
        .unwrap_or_default();
    NodeState {
        created: unix_seconds(node.metadata.creation_timestamp.as_ref()),
        info: Info {
            kernel_version: system_field(|s| &s.kernel_version),
            os_image: system_field(|s| &s.os_image),
            container_runtime_version: system_field(|s| &s.container_runtime_version),
            kubelet_version: system_field(|s| &s.kubelet_version),
            provider_id: boxed(spec.and_then(|s| s.provider_id.as_ref())),
            pod_cidr: boxed(spec.and_then(|s| s.pod_cidr.as_ref())),
            system_uuid: system_field(|s| &s.system_uuid),
            internal_ip: internal_ip.into(),
        },
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        capacity: resource::project(status.and_then(|s| s.capacity.as_ref()), List::Node),
        allocatable: resource::project(status.and_then(|s| s.allocatable.as_ref()), List::Node),
        conditions: status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|c| Condition {
                kind: c.type_.as_str().into(),
                status: Status::parse(&c.status),
            })
            .collect(),
        taints: spec
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|t| Taint {
                key: t.key.as_str().into(),
                value: boxed(t.value.as_ref()),
                effect: t.effect.as_str().into(),
            })
            .collect(),
        roles: node
            .metadata
            .labels
            .iter()
            .flatten()
            .filter_map(|(label, _)| label.strip_prefix(ROLE_PREFIX))
            .map(Into::into)
            .collect(),
        addresses: addresses
            .iter()
            .map(|a| (a.type_.as_str().into(), a.address.as_str().into()))
            .collect(),
    }
}

pub(crate) const CREATED: Family =
    Family::gauge("kube_node_created", "[STABLE] Unix creation timestamp");
pub(crate) const INFO: Family = Family::gauge(
    "kube_node_info",
    "[STABLE] Information about a cluster node.",
);
pub(crate) const LABELS: Family = Family::gauge(
    "kube_node_labels",
    "[STABLE] Kubernetes labels converted to Prometheus labels.",
);
pub(crate) const ROLE: Family = Family::gauge("kube_node_role", "The role of a cluster node.");
pub(crate) const SPEC_TAINT: Family = Family::gauge(
    "kube_node_spec_taint",
    "[STABLE] The taint of a cluster node.",
);
pub(crate) const SPEC_UNSCHEDULABLE: Family = Family::gauge(
    "kube_node_spec_unschedulable",
    "[STABLE] Whether a node can schedule new pods.",
);
pub(crate) const STATUS_ALLOCATABLE: Family = Family::gauge(
    "kube_node_status_allocatable",
    "[STABLE] The allocatable for different resources of a node that are available for scheduling.",
);
pub(crate) const STATUS_CAPACITY: Family = Family::gauge(
    "kube_node_status_capacity",
    "[STABLE] The capacity for different resources of a node.",
);
pub(crate) const STATUS_CONDITION: Family = Family::gauge(
    "kube_node_status_condition",
    "[STABLE] The condition of a cluster node.",
);
pub(crate) const STATUS_ADDRESSES: Family =
    Family::gauge("kube_node_status_addresses", "Node address information.");

/// Writes the `kube_node_*` families from `store`.
pub(crate) fn encode(store: &impl Source<NodeState>, page: &mut Page<'_>) {
    CREATED.write(page, store, |out, key, node| {
        if let Some(created) = node.created {
            out.sample(&[("node", &*key.name)], created as f64)
        }
    });
    INFO.write(page, store, |out, key, node| {
        let i = &node.info;
        let labels = [
            ("node", &*key.name),
            ("kernel_version", &*i.kernel_version),
            ("os_image", &*i.os_image),
            ("container_runtime_version", &*i.container_runtime_version),
            ("kubelet_version", &*i.kubelet_version),
            ("kubeproxy_version", "deprecated"),
            ("provider_id", &*i.provider_id),
            ("pod_cidr", &*i.pod_cidr),
            ("system_uuid", &*i.system_uuid),
            ("internal_ip", &*i.internal_ip),
        ];
        out.sample(&labels, 1.0)
    });
    // No label is allow-listed (kube-state-metrics' default): the family has no series.
    LABELS.write(page, store, |_, _, _| {});
    ROLE.write(page, store, |out, key, node| {
        node.roles
            .iter()
            .for_each(|role| out.sample(&[("node", &*key.name), ("role", role)], 1.0))
    });
    SPEC_TAINT.write(page, store, |out, key, node| {
        node.taints.iter().for_each(|t| {
            let labels = [
                ("node", &*key.name),
                ("key", &*t.key),
                ("value", &*t.value),
                ("effect", &*t.effect),
            ];
            out.sample(&labels, 1.0)
        })
    });
    SPEC_UNSCHEDULABLE.write(page, store, |out, key, node| {
        out.sample(&[("node", &*key.name)], one_if(node.unschedulable))
    });
    for (family, resources) in [
        (
            &STATUS_ALLOCATABLE,
            (|n: &NodeState| &n.allocatable) as fn(&NodeState) -> &[Resource],
        ),
        (&STATUS_CAPACITY, |n: &NodeState| &n.capacity),
    ] {
        family.write(page, store, |out, key, node| {
            resources(node).iter().for_each(|r| {
                let labels = [
                    ("node", &*key.name),
                    ("resource", r.name.as_str()),
                    ("unit", r.unit.as_str()),
                ];
                out.sample(&labels, r.value)
            })
        });
    }
    STATUS_CONDITION.write(page, store, |out, key, node| {
        node.conditions.iter().for_each(|c| {
            c.status.series().iter().for_each(|(status, value)| {
                let labels = [
                    ("node", &*key.name),
                    ("condition", &*c.kind),
                    ("status", status),
                ];
                out.sample(&labels, *value)
            })
        })
    });
    STATUS_ADDRESSES.write(page, store, |out, key, node| {
        node.addresses.iter().for_each(|(kind, address)| {
            let labels = [("node", &*key.name), ("type", kind), ("address", address)];
            out.sample(&labels, 1.0)
        })
    })
}
