//! An informer's store: the projected value of every object, keyed by namespace and name.
//! Namespaces are interned (a cluster has few, each shared by many objects) and names are boxed
//! strings, so that a projected Pod costs little more than its name and the fields kept.
//! Objects are kept in key order so that a reader can go through a large store a slice at a
//! time ([`Store::iter_after`]), letting go of the informer's lock in between.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
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
    objects: BTreeMap<ObjectKey, T>,
    namespaces: HashSet<Arc<str>>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            objects: BTreeMap::new(),
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

    /// Every object, in key order (namespace, then name; cluster-scoped objects first).
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &T)> {
        self.objects.iter()
    }

    /// The objects after `after` in key order (all of them for `None`): where a reader that
    /// let go of the lock after `after` carries on. Objects applied meanwhile before `after`
    /// are not seen; those after it are.
    pub fn iter_after(&self, after: Option<&ObjectKey>) -> impl Iterator<Item = (&ObjectKey, &T)> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.objects.range((start, Bound::Unbounded))
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn object(namespace: Option<&str>, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: namespace.map(str::to_owned),
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn names<'a>(objects: impl Iterator<Item = (&'a ObjectKey, &'a u32)>) -> Vec<u32> {
        objects.map(|(_, v)| *v).collect()
    }

    #[test]
    fn a_reader_resumes_after_the_last_key_it_saw() {
        let mut store = Store::default();
        store.apply(&object(Some("b"), "x"), 3);
        store.apply(&object(Some("a"), "y"), 2);
        store.apply(&object(None, "z"), 1);
        store.apply(&object(Some("b"), "w"), 4);
        assert_eq!(
            names(store.iter()),
            [1, 2, 4, 3],
            "cluster-scoped, then by namespace, name"
        );

        let (first, _) = store.iter().nth(1).expect("two objects");
        let first = first.clone();
        // Changes while the reader let go: one before its key (not seen), one after (seen).
        store.delete(&object(None, "z"));
        store.apply(&object(Some("a"), "a"), 5);
        store.apply(&object(Some("c"), "v"), 6);
        assert_eq!(names(store.iter_after(Some(&first))), [4, 3, 6]);
        assert_eq!(names(store.iter_after(None)), [5, 2, 4, 3, 6]);
    }
}
