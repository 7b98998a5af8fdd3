//! An informer's store: the projected value of every object, keyed by namespace and name.
//! Namespaces are interned (a cluster has few, each shared by many objects) and names are boxed
//! strings, so that a projected Pod costs little more than its name and the fields kept.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::Resource;

/// Namespace (interned; `None` for cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: Option<Arc<str>>,
    pub name: Box<str>,
}

/// Projected objects by key.
#[derive(Debug)]
pub struct Store<T> {
    objects: HashMap<ObjectKey, T>,
    namespaces: HashSet<Arc<str>>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            objects: HashMap::new(),
            namespaces: HashSet::new(),
        }
    }
}

impl<T> Store<T> {
    /// Stores `value` for `object` (replacing an earlier one).
    pub fn apply<K: Resource>(&mut self, object: &K, value: T) {
        let key = self.key(object);
        self.objects.insert(key, value);
    }

    /// Forgets `object`.
    pub fn delete<K: Resource>(&mut self, object: &K) {
        let key = self.key(object);
        self.objects.remove(&key);
    }

    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<&T> {
        self.objects.get(&ObjectKey {
            namespace: namespace.map(Arc::from),
            name: name.into(),
        })
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &T)> {
        self.objects.iter()
    }

    fn key<K: Resource>(&mut self, object: &K) -> ObjectKey {
        let meta = object.meta();
        let namespace = meta.namespace.as_deref().map(|ns| {
            if let Some(interned) = self.namespaces.get(ns) {
                interned.clone()
            } else {
                let interned: Arc<str> = Arc::from(ns);
                self.namespaces.insert(interned.clone());
                interned
            }
        });
        ObjectKey {
            namespace,
            name: meta.name.as_deref().unwrap_or_default().into(),
        }
    }
}
