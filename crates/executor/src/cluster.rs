//! One cluster as the executor acts on it, through the budgeted client: the change's dry run,
//! its quarantine lane, a wave's admission and the rollback. Every step is idempotent (server-side
//! apply, labels set to a value, deletes of what may be gone), so a resumed run may repeat the
//! step it was killed in without applying anything twice in effect.
//!
//! What it reads it watches: the nodes' metadata (only the change's labels are kept) and the
//! change's DaemonSet (one object, by field selector) — no LIST polling, whatever the cluster's
//! size.

use std::collections::BTreeMap;

use fleetwatch_client::{Client, Informer, Mode, ObjectWriter, Watch};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use serde_json::Value;

use crate::admission::{node_label_patch, nodes_to_admit, with_admission_affinity};
use crate::change::{Change, LABEL_PREFIX, Location, Manifest};
use crate::quarantine::{LaneSize, lane};

/// The field manager of everything a rollout applies.
pub const FIELD_MANAGER: &str = "fleetwatch-rollout";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{at}: {source}")]
    Manifest {
        at: Location,
        #[source]
        source: Box<fleetwatch_client::Error>,
    },
    #[error(transparent)]
    Client(Box<fleetwatch_client::Error>),
    #[error("{0}")]
    Object(String),
}

impl From<fleetwatch_client::Error> for ClusterError {
    fn from(error: fleetwatch_client::Error) -> Self {
        ClusterError::Client(Box::new(error))
    }
}

/// What a dry run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRun {
    /// Objects the server checked.
    pub checked: usize,
    /// Objects in a namespace the change itself creates, which does not exist yet: the server
    /// cannot check them before that namespace is there.
    pub unchecked: Vec<String>,
}

/// A wave's admission on this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Nodes that carry the change's label now.
    pub nodes: usize,
    /// Of those, the nodes labelled by this call (0 when it repeats a completed step).
    pub newly_labelled: usize,
    /// The cluster's nodes.
    pub of: usize,
}

/// A cluster, connected, with the executor's informers synced.
#[derive(Debug)]
pub struct Cluster {
    writer: ObjectWriter,
    /// Node name → the node's `rollout.fleetwatch.dev/*` labels.
    nodes: Informer<BTreeMap<String, String>>,
    daemonset: Informer<DaemonSet>,
}

fn rollout_labels(node: &PartialObjectMeta<Node>) -> BTreeMap<String, String> {
    node.metadata
        .labels
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with(LABEL_PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn whole(daemonset: &DaemonSet) -> DaemonSet {
    daemonset.clone()
}

impl Cluster {
    /// Starts watching `client`'s nodes and `change`'s DaemonSet, and waits for both to sync.
    ///
    /// # Errors
    /// [`ClusterError::Client`] if an informer cannot start.
    pub async fn watch(client: &Client, change: &Change) -> Result<Cluster, ClusterError> {
        let nodes = client.metadata_informer(Watch::<Node>::all(), rollout_labels)?;
        let namespace = &change.service_account.namespace;
        let daemonset = client.informer(
            Watch::<DaemonSet>::namespaced(namespace.clone())
                .fields(format!("metadata.name={}", change.name)),
            whole,
        )?;
        nodes.ready().await;
        daemonset.ready().await;
        Ok(Cluster {
            writer: client.object_writer(FIELD_MANAGER),
            nodes,
            daemonset,
        })
    }

    /// The change's DaemonSet as the cluster has it now, if it has one.
    pub fn daemonset(&self) -> Option<DaemonSet> {
        self.daemonset.store().iter().next().map(|(_, d)| d.clone())
    }

    /// Server-side dry-runs every object of the change, the DaemonSet with its admission
    /// affinity, as the first wave will apply them.
    ///
    /// # Errors
    /// [`ClusterError::Manifest`] naming the first object the server refuses and where it is
    /// written, with the server's own reason.
    pub async fn dry_run(&self, change: &Change) -> Result<DryRun, ClusterError> {
        let created_namespaces: Vec<&str> = change
            .manifests
            .iter()
            .filter(|m| {
                m.object
                    .types
                    .as_ref()
                    .is_some_and(|t| t.kind == "Namespace")
            })
            .filter_map(|m| m.object.metadata.name.as_deref())
            .collect();
        let mut result = DryRun::default();
        for (manifest, object) in to_apply(change)? {
            match self.writer.apply(&object, Mode::DryRun).await {
                Ok(_) => result.checked += 1,
                Err(fleetwatch_client::Error::Status { status: 404, .. })
                    if object
                        .metadata
                        .namespace
                        .as_deref()
                        .is_some_and(|n| created_namespaces.contains(&n)) =>
                {
                    result.unchecked.push(manifest.at.to_string());
                }
                Err(source) => {
                    return Err(ClusterError::Manifest {
                        at: manifest.at.clone(),
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(result)
    }

    /// Applies the change's quarantine lane.
    ///
    /// # Errors
    /// [`ClusterError::Client`] if the server refuses it.
    pub async fn install_lane(&self, change: &Change, size: LaneSize) -> Result<(), ClusterError> {
        for object in lane(&change.name, &change.service_account, size) {
            self.writer.apply(&dynamic(object)?, Mode::Persist).await?;
        }
        Ok(())
    }

    /// Deletes the change's quarantine lane (the FlowSchema first, so nothing is routed to a
    /// missing level).
    ///
    /// # Errors
    /// [`ClusterError::Client`] if the server refuses.
    pub async fn remove_lane(&self, change: &Change) -> Result<(), ClusterError> {
        let [level, schema] = lane(&change.name, &change.service_account, LaneSize::default());
        for object in [schema, level] {
            self.writer.delete(&dynamic(object)?).await?;
        }
        Ok(())
    }

    /// Admits `fraction` of the cluster's nodes to `wave`: applies the change (the DaemonSet
    /// confined to admitted nodes), then labels the nodes the fraction admits that are not
    /// labelled yet. Nodes admitted by earlier waves keep their label.
    ///
    /// # Errors
    /// [`ClusterError`] naming the object the server refused.
    pub async fn admit(
        &self,
        change: &Change,
        wave: usize,
        fraction: f64,
    ) -> Result<Admitted, ClusterError> {
        for (manifest, object) in to_apply(change)? {
            self.writer
                .apply(&object, Mode::Persist)
                .await
                .map_err(|source| ClusterError::Manifest {
                    at: manifest.at.clone(),
                    source: Box::new(source),
                })?;
        }
        let key = change.label_key();
        let (names, labelled) = self.node_names(&key);
        let mut newly_labelled = 0;
        let already: std::collections::HashSet<&str> =
            labelled.iter().map(String::as_str).collect();
        let admit = nodes_to_admit(&change.name, &names, fraction);
        for node in admit.iter().filter(|n| !already.contains(*n)) {
            self.writer
                .merge_patch(&node_object(node)?, &node_label_patch(&key, Some(wave)))
                .await?;
            newly_labelled += 1;
        }
        Ok(Admitted {
            nodes: labelled.len() + newly_labelled,
            newly_labelled,
            of: names.len(),
        })
    }

    /// Rolls the change back: removes its label from every node, then restores the DaemonSet
    /// it replaced (`previous`, as the cluster had it before the first wave) or, if there was
    /// none, deletes it, so no change pod is left. The change's other objects stay (a service
    /// account and RBAC do nothing without the DaemonSet's pods). Returns the nodes unlabelled.
    ///
    /// # Errors
    /// [`ClusterError`] if the server refuses a step; the rollback may be repeated.
    pub async fn roll_back(
        &self,
        change: &Change,
        previous: Option<&DaemonSet>,
    ) -> Result<usize, ClusterError> {
        let key = change.label_key();
        let (_, labelled) = self.node_names(&key);
        for node in &labelled {
            self.writer
                .merge_patch(&node_object(node)?, &node_label_patch(&key, None))
                .await?;
        }
        let daemonset = &change.daemonset().object;
        match previous {
            Some(previous) => {
                self.writer
                    .apply(&restorable(previous)?, Mode::Persist)
                    .await?;
            }
            None => self.writer.delete(daemonset).await?,
        }
        Ok(labelled.len())
    }

    /// Every node's name, and the names of those carrying `key`.
    fn node_names(&self, key: &str) -> (Vec<String>, Vec<String>) {
        let store = self.nodes.store();
        let mut all = Vec::with_capacity(store.len());
        let mut labelled = Vec::new();
        for (node, labels) in store.iter() {
            all.push(node.name.to_string());
            if labels.contains_key(key) {
                labelled.push(node.name.to_string());
            }
        }
        (all, labelled)
    }
}

/// Each manifest of the change with the object to apply for it: the DaemonSet with its
/// admission affinity, the rest as written.
fn to_apply(change: &Change) -> Result<Vec<(&Manifest, DynamicObject)>, ClusterError> {
    let key = change.label_key();
    let daemonset = change.daemonset();
    change
        .manifests
        .iter()
        .map(|manifest| {
            if std::ptr::eq(manifest, daemonset) {
                let value = serde_json::to_value(&manifest.object)
                    .map_err(|e| ClusterError::Object(e.to_string()))?;
                Ok((manifest, dynamic(with_admission_affinity(&value, &key))?))
            } else {
                Ok((manifest, manifest.object.clone()))
            }
        })
        .collect()
}

/// The DaemonSet as it was, stripped of what a server sets (status, resourceVersion, uid,
/// managedFields, …), to apply back.
fn restorable(previous: &DaemonSet) -> Result<DynamicObject, ClusterError> {
    let metadata = &previous.metadata;
    let object = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": metadata.name,
            "namespace": metadata.namespace,
            "labels": metadata.labels,
            "annotations": metadata.annotations,
        },
        "spec": previous.spec,
    });
    dynamic(object)
}

fn node_object(name: &str) -> Result<DynamicObject, ClusterError> {
    dynamic(serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
}

fn dynamic(value: Value) -> Result<DynamicObject, ClusterError> {
    serde_json::from_value(value).map_err(|e| ClusterError::Object(e.to_string()))
}
