//! Writes: the few object changes a component makes (creating, server-side applying and
//! deleting its own objects), through the same budget as everything else. Reads go through
//! informers only; a write returns nothing it could be polled for.

use std::fmt::Debug;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Writes objects of type `K` in one namespace.
#[derive(Debug, Clone)]
pub struct Writer<K> {
    api: Api<K>,
    resource: String,
    server: String,
    /// The server-side apply field manager, `fleetwatch-<component>`.
    manager: String,
}

impl<K> Writer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    pub(crate) fn new(api: Api<K>, server: &str, component: &str) -> Self {
        Writer {
            api,
            resource: K::plural(&()).into_owned(),
            server: server.to_owned(),
            manager: format!("fleetwatch-{component}"),
        }
    }

    /// Creates `object`.
    pub async fn create(&self, object: &K) -> Result<()> {
        self.api
            .create(&PostParams::default(), object)
            .await
            .map(drop)
            .map_err(|e| self.error("create", e))
    }

    /// Server-side applies `object` as `name`, owning the fields it sets (field manager
    /// `fleetwatch-<component>`).
    pub async fn apply(&self, name: &str, object: &K) -> Result<()> {
        self.api
            .patch(
                name,
                &PatchParams::apply(&self.manager).force(),
                &Patch::Apply(object),
            )
            .await
            .map(drop)
            .map_err(|e| self.error("patch", e))
    }

    /// Deletes `name`; an object that is already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(self.error("delete", e)),
        }
    }

    fn error(&self, verb: &'static str, error: kube::Error) -> Error {
        Error::from_kube(&self.server, verb, &self.resource, error)
    }
}
