//! Informers, the only read API: list once from the watch cache — a streaming list where the
//! server offers it, otherwise a `resourceVersion=0` list without pagination — then watch with
//! bookmarks; resume from the last resourceVersion after a dropped watch; relist only on 410 Gone,
//! after a backoff; start after a random delay. Each informer keeps only what its projection
//! returns (or only metadata), and there is one per resource type and selector per client,
//! shared by everyone who asks for it.
//!
//! Nothing here lists on a timer: there is no resync period and no way to ask for a list. An
//! informer, once started, runs as long as its client: asking for it again returns the running
//! one, so dropping and re-creating informers cannot be turned into LIST polling either.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, Weak};

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tower::util::rng::{HasherRng, Rng};

use crate::accounting::{InformerLabels, Metrics};
use crate::backoff::Backoff;
use crate::connect::Client;
use crate::error::{Error, Result};
use crate::settings::Settings;
use crate::store::Store;

/// What an informer watches: a resource type, all namespaces or one, and optional selectors.
#[derive(Debug, Clone)]
pub struct Watch<K> {
    namespace: Option<String>,
    labels: Option<String>,
    fields: Option<String>,
    api: fn(kube::Client, &str) -> Api<K>,
}

impl<K: Resource<DynamicType = ()>> Watch<K> {
    /// Every object of the type, cluster-wide.
    pub fn all() -> Self {
        Watch {
            namespace: None,
            labels: None,
            fields: None,
            api: |client, _| Api::all(client),
        }
    }

    /// Objects in one namespace.
    pub fn namespaced(namespace: impl Into<String>) -> Self
    where
        K: Resource<Scope = NamespaceResourceScope>,
    {
        Watch {
            namespace: Some(namespace.into()),
            api: |client, namespace| Api::namespaced(client, namespace),
            ..Watch::all()
        }
    }
}

impl<K> Watch<K> {
    /// Only objects matching a label selector.
    #[must_use]
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.labels = Some(selector.into());
        self
    }

    /// Only objects matching a field selector.
    #[must_use]
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.fields = Some(selector.into());
        self
    }
}

/// What an informer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InformerStats {
    /// Initial lists plus relists (streaming or not).
    pub lists: u64,
    /// Whether the store has been filled by a complete list at least once.
    pub synced: bool,
    /// Bumped on every change to the store.
    pub generation: u64,
}

/// A shared, continuously updated view of one resource type, projected to `T`.
#[derive(Debug)]
pub struct Informer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Informer<T> {
    fn clone(&self) -> Self {
        Informer {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
struct Shared<T> {
    resource: String,
    store: RwLock<Store<T>>,
    lists: AtomicU64,
    progress: watch::Sender<(bool, u64)>,
    task: Mutex<Option<AbortHandle>>,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl<T> Informer<T> {
    /// Waits until the store holds a complete list.
    pub async fn ready(&self) {
        let mut progress = self.shared.progress.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail while we hold it.
        let _ = progress.wait_for(|(synced, _)| *synced).await;
    }

    /// Wakes on every change to the store (`changed().await`).
    pub fn changes(&self) -> watch::Receiver<(bool, u64)> {
        self.shared.progress.subscribe()
    }

    /// Read access to the store.
    pub fn store(&self) -> RwLockReadGuard<'_, Store<T>> {
        self.shared
            .store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stats(&self) -> InformerStats {
        let (synced, generation) = *self.shared.progress.borrow();
        InformerStats {
            lists: self.shared.lists.load(Ordering::Relaxed),
            synced,
            generation,
        }
    }

    /// The resource this informer watches (`pods`, `daemonsets.apps`).
    pub fn resource(&self) -> &str {
        &self.shared.resource
    }
}

/// How the initial list is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// A watch with `sendInitialEvents=true`, served from the watch cache.
    Streaming,
    /// A `resourceVersion=0` list, unpaginated (served from the watch cache), then a watch.
    CachedList,
}

/// The informers of one client, by resource, scope and selector; they live as long as it.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    running: Mutex<HashMap<String, Running>>,
}

#[derive(Debug)]
struct Running {
    informer: Arc<dyn Any + Send + Sync>,
    projection: usize,
}

type Open<K, S> = fn(Api<K>, watcher::Config) -> BoxStream<'static, watcher::Result<Event<S>>>;

impl Client {
    /// An informer of full `K` objects, each stored as `project(&object)`. The whole object
    /// crosses the wire; only the projection stays in memory.
    pub fn informer<K, T>(&self, watch: Watch<K>, project: fn(&K) -> T) -> Result<Informer<T>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        let open: Open<K, K> = |api, config| kube::runtime::watcher(api, config).boxed();
        self.start_informer("full", watch, project, open)
    }

    /// An informer of object metadata only (`PartialObjectMeta`), each stored as
    /// `project(&meta)`: the server sends only metadata.
    pub fn metadata_informer<K, T>(
        &self,
        watch: Watch<K>,
        project: fn(&PartialObjectMeta<K>) -> T,
    ) -> Result<Informer<T>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        // `metadata_watcher` is deprecated in favour of `Api<PartialObjectMeta<K>>`, which would
        // need a second scope-checked constructor in `Watch`; the requests are the same.
        #[allow(deprecated)]
        let open: Open<K, PartialObjectMeta<K>> =
            |api, config| kube::runtime::metadata_watcher(api, config).boxed();
        self.start_informer("metadata", watch, project, open)
    }

    fn start_informer<K, S, T>(
        &self,
        mode: &str,
        watch: Watch<K>,
        project: fn(&S) -> T,
        open: Open<K, S>,
    ) -> Result<Informer<T>>
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
        S: Resource + Send + 'static,
        T: Send + Sync + 'static,
    {
        let resource = match K::group(&()).as_ref() {
            "" => K::plural(&()).into_owned(),
            group => format!("{}.{group}", K::plural(&())),
        };
        let key = format!(
            "{mode} {resource}/{} ns={} labels={} fields={}",
            K::version(&()),
            watch.namespace.as_deref().unwrap_or("*"),
            watch.labels.as_deref().unwrap_or(""),
            watch.fields.as_deref().unwrap_or(""),
        );
        let registry = self.informers();
        let mut running = registry
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Function pointers identify the projection well enough to refuse a second one.
        let projection = project as usize;
        if let Some(existing) = running.get(&key) {
            return match existing.informer.clone().downcast::<Shared<T>>() {
                Ok(shared) if existing.projection == projection => Ok(Informer { shared }),
                _ => Err(Error::ConflictingProjection { key }),
            };
        }
        let shared = Arc::new(Shared {
            resource: resource.clone(),
            store: RwLock::new(Store::default()),
            lists: AtomicU64::new(0),
            progress: watch::channel((false, 0)).0,
            task: Mutex::new(None),
        });
        let task = Task {
            settings: self.settings().clone(),
            metrics: self.metrics().clone(),
            streaming_lists: self.streaming_lists(),
            api: (watch.api)(self.kube(), watch.namespace.as_deref().unwrap_or_default()),
            config: watcher::Config {
                label_selector: watch.labels,
                field_selector: watch.fields,
                ..watcher::Config::default()
            },
            project,
            open,
            shared: Arc::downgrade(&shared),
            labels: InformerLabels { resource },
        };
        let handle = tokio::spawn(task.run()).abort_handle();
        *shared.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        running.insert(
            key,
            Running {
                informer: shared.clone(),
                projection,
            },
        );
        Ok(Informer { shared })
    }
}

/// The loop behind one informer. It holds no `Client` (whose registry holds the informer), so
/// the informer stops when its client is dropped.
struct Task<K, S: 'static, T> {
    settings: Settings,
    metrics: Metrics,
    streaming_lists: bool,
    api: Api<K>,
    config: watcher::Config,
    project: fn(&S) -> T,
    open: Open<K, S>,
    shared: Weak<Shared<T>>,
    labels: InformerLabels,
}

impl<K, S, T> Task<K, S, T>
where
    K: Clone + Send + Sync + 'static,
    S: Resource + Send + 'static,
    T: Send + Sync + 'static,
{
    async fn run(self) {
        let settings = &self.settings;
        let mut rng = HasherRng::new();
        tokio::time::sleep(settings.start_jitter.mul_f64(rng.next_f64())).await;
        let watch_timeout = settings.watch_timeout.mul_f64(1.0 + rng.next_f64());
        let watch_timeout = u32::try_from(watch_timeout.as_secs()).unwrap_or(u32::MAX);
        let mut backoff = Backoff::new(settings.backoff);
        let mut strategy = if self.streaming_lists {
            ListStrategy::Streaming
        } else {
            ListStrategy::CachedList
        };
        loop {
            let config = watcher::Config {
                timeout: Some(watch_timeout),
                ..self.config(strategy)
            };
            let mut events = (self.open)(self.api.clone(), config);
            // A list being received; it replaces the store once complete.
            let mut pending: Option<Store<T>> = None;
            while let Some(event) = events.next().await {
                let Some(shared) = self.shared.upgrade() else {
                    return;
                };
                match event {
                    Ok(event) => self.apply(&shared, &mut pending, event),
                    Err(error) => {
                        let delay = backoff.next_delay();
                        let restart = match &error {
                            // The watcher keeps retrying a watch that the server refuses with
                            // 410 at connect time: start over from a fresh list instead.
                            watcher::Error::WatchStartFailed(kube::Error::Api(s))
                                if s.code == 410 =>
                            {
                                true
                            }
                            watcher::Error::WatchStartFailed(kube::Error::Api(s))
                                if strategy == ListStrategy::Streaming
                                    && matches!(s.code, 400 | 422) =>
                            {
                                tracing::info!(resource = %self.labels.resource, "the server refuses streaming lists; using resourceVersion=0 lists");
                                strategy = ListStrategy::CachedList;
                                true
                            }
                            _ => false,
                        };
                        tracing::debug!(resource = %self.labels.resource, ?delay, "informer: {error}");
                        drop(shared);
                        tokio::time::sleep(delay).await;
                        if restart {
                            break;
                        }
                    }
                }
            }
        }
    }

    fn config(&self, strategy: ListStrategy) -> watcher::Config {
        let config = self.config.clone();
        match strategy {
            ListStrategy::Streaming => config.streaming_lists(),
            ListStrategy::CachedList => watcher::Config {
                page_size: None,
                ..config.any_semantic()
            },
        }
    }

    fn apply(&self, shared: &Shared<T>, pending: &mut Option<Store<T>>, event: Event<S>) {
        let metrics = &self.metrics;
        let store = || shared.store.write().unwrap_or_else(PoisonError::into_inner);
        let len = match event {
            Event::Init => {
                shared.lists.fetch_add(1, Ordering::Relaxed);
                metrics.informer_lists.get_or_create(&self.labels).inc();
                *pending = Some(Store::default());
                return;
            }
            Event::InitApply(object) => {
                if let Some(pending) = pending {
                    pending.apply(&object, (self.project)(&object));
                }
                return;
            }
            Event::InitDone => {
                let Some(complete) = pending.take() else {
                    return;
                };
                let mut store = store();
                *store = complete;
                store.len()
            }
            Event::Apply(object) => {
                let value = (self.project)(&object);
                let mut store = store();
                store.apply(&object, value);
                store.len()
            }
            Event::Delete(object) => {
                let mut store = store();
                store.delete(&object);
                store.len()
            }
        };
        metrics
            .informer_objects
            .get_or_create(&self.labels)
            .set(i64::try_from(len).unwrap_or(i64::MAX));
        shared.progress.send_modify(|(synced, generation)| {
            *synced = true;
            *generation += 1;
        });
    }
}
