//! Writes: the few object changes a component makes (creating, server-side applying and
//! deleting its own objects), through the same budget as everything else. Reads go through
//! informers only; a write returns nothing it could be polled for.

use std::fmt::Debug;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connect::Client;
use crate::error::Result;

/// Writes objects of type `K` in one namespace.
#[derive(Debug, Clone)]
pub struct Writer<K> {
    client: Client,
    api: Api<K>,
    resource: String,
}

impl<K> Writer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    pub(crate) fn new(client: Client, api: Api<K>) -> Self {
        Writer {
            client,
            api,
            resource: K::plural(&()).into_owned(),
        }
    }

    /// Creates `object`.
    pub async fn create(&self, object: &K) -> Result<()> {
        self.api
            .create(&PostParams::default(), object)
            .await
            .map(drop)
            .map_err(|e| self.client.kube_error("create", &self.resource, e))
    }

    /// Server-side applies `object` as `name`, owning the fields it sets (field manager
    /// `fleetwatch-<component>`).
    pub async fn apply(&self, name: &str, object: &K) -> Result<()> {
        let manager = format!("fleetwatch-{}", self.client.settings().component);
        self.api
            .patch(
                name,
                &PatchParams::apply(&manager).force(),
                &Patch::Apply(object),
            )
            .await
            .map(drop)
            .map_err(|e| self.client.kube_error("patch", &self.resource, e))
    }

    /// Deletes `name`; an object that is already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(self.client.kube_error("delete", &self.resource, e)),
        }
    }
}
