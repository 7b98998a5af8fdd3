//! Writes of objects whose types are known only at run time: the manifests of a rollout's change
//! (any kind, namespaced or not) and the labels it puts on nodes. Through the same budget as
//! every other request; like [`Writer`](crate::Writer), it reads nothing back that could be
//! polled — what a caller needs to follow, it watches with an informer.
//!
//! Each object's kind is resolved once per API group version (`GET /apis/<group>/<version>`,
//! kube's `pinned_kind`) and remembered, so applying a change to a cluster costs one discovery
//! request per group version it uses, not one per object.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};

use crate::error::{Error, Result};

/// Whether a write is carried out or only checked by the API server (`dryRun=All`: admission,
/// validation and defaulting run, nothing is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    DryRun,
    Persist,
}

/// Server-side applies, patches and deletes objects of any kind, as one field manager.
pub struct ObjectWriter {
    kube: kube::Client,
    server: String,
    manager: String,
    resolved: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("server", &self.server)
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl ObjectWriter {
    pub(crate) fn new(kube: kube::Client, server: &str, manager: &str) -> Self {
        ObjectWriter {
            kube,
            server: server.to_owned(),
            manager: manager.to_owned(),
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// The field manager every apply is made as.
    pub fn manager(&self) -> &str {
        &self.manager
    }

    /// Server-side applies `object`, forcing ownership of the fields it sets, with strict field
    /// validation (an unknown or duplicated field is refused, not dropped). A namespaced object
    /// without a namespace is refused here rather than defaulted. Returns the object as stored
    /// (or as it would be, in [`Mode::DryRun`]).
    ///
    /// # Errors
    /// [`Error::InvalidObject`] for an object without apiVersion, kind or name, or a namespaced
    /// one without a namespace; [`Error::Status`] with the server's own message when it refuses.
    pub async fn apply(&self, object: &DynamicObject, mode: Mode) -> Result<DynamicObject> {
        let target = self.target(object).await?;
        let mut params = PatchParams::apply(&self.manager)
            .force()
            .validation_strict();
        params.dry_run = mode == Mode::DryRun;
        target
            .api
            .patch(&target.name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| self.error("apply", &target.describe, e))
    }

    /// JSON-merge-patches `object`'s own name and namespace with `patch` (e.g. a node's labels;
    /// a `null` value removes a key). The patch is not an apply: it takes no field ownership.
    ///
    /// # Errors
    /// As [`ObjectWriter::apply`].
    pub async fn merge_patch(
        &self,
        object: &DynamicObject,
        patch: &(impl serde::Serialize + std::fmt::Debug),
    ) -> Result<()> {
        let target = self.target(object).await?;
        target
            .api
            .patch(&target.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(drop)
            .map_err(|e| self.error("patch", &target.describe, e))
    }

    /// Deletes `object` (found by its kind, namespace and name) at once, leaving its dependents
    /// (a DaemonSet's pods) to the garbage collector (background propagation, so the object is
    /// gone when this returns even while the collector lags); one already gone is not an error.
    ///
    /// # Errors
    /// As [`ObjectWriter::apply`].
    pub async fn delete(&self, object: &DynamicObject) -> Result<()> {
        let target = self.target(object).await?;
        match target
            .api
            .delete(&target.name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(self.error("delete", &target.describe, e)),
        }
    }

    /// The API, name and description of `object`'s kind on this server.
    async fn target(&self, object: &DynamicObject) -> Result<Target> {
        let invalid = |reason: &str| Error::InvalidObject {
            object: describe_unresolved(object),
            reason: reason.to_owned(),
        };
        let types = object
            .types
            .as_ref()
            .ok_or_else(|| invalid("it has no apiVersion and kind"))?;
        let gvk = GroupVersionKind::try_from(types)
            .map_err(|_| invalid("its apiVersion is not <group>/<version> or <version>"))?;
        let name = object
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("it has no metadata.name"))?;
        let (resource, capabilities) = self.resolve(&gvk).await?;
        let (api, describe) = match (capabilities.scope, object.metadata.namespace.as_deref()) {
            (Scope::Cluster, _) => (
                Api::all_with(self.kube.clone(), &resource),
                format!("{} {name}", resource.plural),
            ),
            (Scope::Namespaced, Some(namespace)) if !namespace.is_empty() => (
                Api::namespaced_with(self.kube.clone(), namespace, &resource),
                format!("{} {namespace}/{name}", resource.plural),
            ),
            (Scope::Namespaced, _) => {
                return Err(invalid(
                    "it is namespaced and has no metadata.namespace (fleetwatch does not default one)",
                ));
            }
        };
        Ok(Target {
            api,
            name,
            describe,
        })
    }

    /// `gvk`'s resource on this server: asked once per group version, then remembered.
    async fn resolve(&self, gvk: &GroupVersionKind) -> Result<(ApiResource, ApiCapabilities)> {
        if let Some(known) = self.lock().get(gvk) {
            return Ok(known.clone());
        }
        let resource = format!("{}/{} {}", gvk.group, gvk.version, gvk.kind);
        let found = pinned_kind(&self.kube, gvk)
            .await
            .map_err(|e| self.error("discover", &resource, e))?;
        self.lock().insert(gvk.clone(), found.clone());
        Ok(found)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>> {
        // A panic while holding the map leaves it consistent (inserts are whole), so a poisoned
        // lock is still usable.
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn error(&self, verb: &'static str, resource: &str, error: kube::Error) -> Error {
        Error::from_kube(&self.server, verb, resource, error)
    }
}

/// Where a write goes.
struct Target {
    api: Api<DynamicObject>,
    name: String,
    /// `daemonsets ns/name`, for errors.
    describe: String,
}

/// `Kind ns/name` from what the object says of itself, for errors before it is resolved.
fn describe_unresolved(object: &DynamicObject) -> String {
    let kind = object
        .types
        .as_ref()
        .map_or("(no kind)", |t| t.kind.as_str());
    let name = object.metadata.name.as_deref().unwrap_or("(no name)");
    match object.metadata.namespace.as_deref() {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}
