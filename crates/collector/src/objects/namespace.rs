//! Namespaces: phase, conditions and creation time, and the `kube_namespace_*` families.

use fleetwatch_telemetry::page::Page;
use k8s_openapi::api::core::v1::Namespace;

use super::family::{Condition, Family, Source, Status, one_if, unix_seconds};

/// The projection of a Namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceState {
    created: Option<i64>,
    phase: Phase,
    conditions: Box<[Condition]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Active,
    Terminating,
    /// Empty or anything else: neither series is 1.
    Other,
}

/// What the namespace informer keeps of a Namespace.
pub fn project(namespace: &Namespace) -> NamespaceState {
    let status = namespace.status.as_ref();
    NamespaceState {
        created: unix_seconds(namespace.metadata.creation_timestamp.as_ref()),
        phase: match status.and_then(|s| s.phase.as_deref()) {
            Some("Active") => Phase::Active,
            Some("Terminating") => Phase::Terminating,
            _ => Phase::Other,
        },
        conditions: status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|c| Condition {
                kind: c.type_.as_str().into(),
                status: Status::parse(&c.status),
            })
            .collect(),
    }
}

pub(crate) const CREATED: Family =
    Family::gauge("kube_namespace_created", "[STABLE] Unix creation timestamp");
pub(crate) const LABELS: Family = Family::gauge(
    "kube_namespace_labels",
    "[STABLE] Kubernetes labels converted to Prometheus labels.",
);
pub(crate) const STATUS_PHASE: Family = Family::gauge(
    "kube_namespace_status_phase",
    "[STABLE] kubernetes namespace status phase.",
);
pub(crate) const STATUS_CONDITION: Family = Family::gauge(
    "kube_namespace_status_condition",
    "The condition of a namespace.",
);

/// Writes the `kube_namespace_*` families from `store`.
pub(crate) fn encode(store: &impl Source<NamespaceState>, page: &mut Page<'_>) {
    CREATED.write(page, store, |out, key, namespace| {
        if let Some(created) = namespace.created {
            out.sample(&[("namespace", &*key.name)], created as f64)
        }
    });
    // No label is allow-listed (kube-state-metrics' default): the family has no series.
    LABELS.write(page, store, |_, _, _| {});
    STATUS_PHASE.write(page, store, |out, key, namespace| {
        [
            ("Active", Phase::Active),
            ("Terminating", Phase::Terminating),
        ]
        .iter()
        .for_each(|(name, phase)| {
            let labels = [("namespace", &*key.name), ("phase", *name)];
            out.sample(&labels, one_if(namespace.phase == *phase))
        })
    });
    STATUS_CONDITION.write(page, store, |out, key, namespace| {
        namespace.conditions.iter().for_each(|c| {
            c.status.series().iter().for_each(|(status, value)| {
                let labels = [
                    ("namespace", &*key.name),
                    ("condition", &*c.kind),
                    ("status", status),
                ];
                out.sample(&labels, *value)
            })
        })
    })
}
