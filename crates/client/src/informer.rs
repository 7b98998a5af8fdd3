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
//!
//! kube's watcher does the listing, watching and resuming; what it emits goes through a
//! `Handler`, which has no I/O and no clock: it fills the store, counts every list with the
//! reason it was made ([`Relists`], `fleetwatch_client_informer_lists_total{reason}`), and
//! decides what an error means. The task around it only opens streams and sleeps.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, Weak};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tower::util::rng::{HasherRng, Rng};

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::metrics::{InformerLabels, ListLabels, Metrics};
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
    /// Every list: the initial one plus [`InformerStats::relists`] (streaming or not).
    pub lists: u64,
    /// Why the lists after the first were made.
    pub relists: Relists,
    /// Whether the store has been filled by a complete list at least once.
    pub synced: bool,
    /// Bumped on every change to the store.
    pub generation: u64,
}

/// Lists after an informer's first, by reason. Only `gone` is expected (rule 5: relist only
/// after 410 Gone); `list_incomplete` follows a failed list; `other` should stay zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Relists {
    /// The server answered 410 Gone: the resourceVersion to resume from was compacted away.
    pub gone: u64,
    /// The list before failed or ended before it was complete, and was made again.
    pub list_incomplete: u64,
    /// kube's watcher started over for another reason (an event without a resourceVersion).
    pub other: u64,
}

/// Why a list is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Initial,
    Gone,
    ListIncomplete,
    Other,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Initial => "initial",
            Reason::Gone => "gone",
            Reason::ListIncomplete => "list_incomplete",
            Reason::Other => "other",
        }
    }
}

impl Relists {
    fn count(&mut self, reason: Reason) {
        match reason {
            Reason::Initial => {}
            Reason::Gone => self.gone += 1,
            Reason::ListIncomplete => self.list_incomplete += 1,
            Reason::Other => self.other += 1,
        }
    }
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
    /// Lists so far, and why the later ones were made.
    lists: Mutex<(u64, Relists)>,
    progress: watch::Sender<(bool, u64)>,
    task: Mutex<Option<AbortHandle>>,
}

impl<T> Shared<T> {
    fn new(resource: String) -> Self {
        Shared {
            resource,
            store: RwLock::new(Store::default()),
            lists: Mutex::default(),
            progress: watch::channel((false, 0)).0,
            task: Mutex::new(None),
        }
    }

    fn lists(&self) -> MutexGuard<'_, (u64, Relists)> {
        // Counters only: a panic elsewhere cannot leave them torn.
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
        let (lists, relists) = *self.shared.lists();
        InformerStats {
            lists,
            relists,
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

/// Opens kube's watcher (full objects or metadata) for an API and a configuration.
pub(crate) type Open<K, S> =
    fn(Api<K>, watcher::Config) -> BoxStream<'static, watcher::Result<Event<S>>>;

/// What an informer needs of its client. Not the client itself: the client's registry holds the
/// informer, so the informer stops when its client is dropped.
pub(crate) struct Upstream {
    pub(crate) kube: kube::Client,
    pub(crate) settings: Settings,
    pub(crate) metrics: Metrics,
    pub(crate) streaming_lists: bool,
}

impl Registry {
    /// The running informer for `watch` in this mode, or a new one storing `project(&object)`.
    pub(crate) fn start<K, S, T>(
        &self,
        mode: &str,
        watch: Watch<K>,
        project: fn(&S) -> T,
        open: Open<K, S>,
        upstream: Upstream,
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
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        // Function pointers identify the projection well enough to refuse a second one.
        let projection = project as usize;
        if let Some(existing) = running.get(&key) {
            return match existing.informer.clone().downcast::<Shared<T>>() {
                Ok(shared) if existing.projection == projection => Ok(Informer { shared }),
                _ => Err(Error::ConflictingProjection { key }),
            };
        }
        let shared = Arc::new(Shared::new(resource.clone()));
        let strategy = if upstream.streaming_lists {
            ListStrategy::Streaming
        } else {
            ListStrategy::CachedList
        };
        let task = Task {
            api: (watch.api)(
                upstream.kube,
                watch.namespace.as_deref().unwrap_or_default(),
            ),
            config: watcher::Config {
                label_selector: watch.labels,
                field_selector: watch.fields,
                ..watcher::Config::default()
            },
            open,
            shared: Arc::downgrade(&shared),
            handler: Handler::new(project, upstream.metrics, resource, strategy),
            settings: upstream.settings,
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

/// The loop behind one informer: opens kube's watcher, feeds what it emits to the [`Handler`]
/// and sleeps where the handler says to back off. It holds the informer weakly, and stops when
/// the last handle (and the client's registry) let go.
struct Task<K, S: 'static, T> {
    api: Api<K>,
    config: watcher::Config,
    open: Open<K, S>,
    shared: Weak<Shared<T>>,
    handler: Handler<S, T>,
    settings: Settings,
}

/// How feeding a stream ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The informer is gone: stop.
    Dropped,
    /// Open a new watcher (a fresh list).
    Restart,
}

impl<K, S, T> Task<K, S, T>
where
    K: Clone + Send + Sync + 'static,
    S: Resource + Send + 'static,
    T: Send + Sync + 'static,
{
    async fn run(mut self) {
        let mut rng = HasherRng::new();
        tokio::time::sleep(self.settings.start_jitter.mul_f64(rng.next_f64())).await;
        let watch_timeout = self.settings.watch_timeout.mul_f64(1.0 + rng.next_f64());
        let watch_timeout = u32::try_from(watch_timeout.as_secs()).unwrap_or(u32::MAX);
        let mut backoff = Backoff::new(self.settings.backoff);
        loop {
            let config = watcher::Config {
                timeout: Some(watch_timeout),
                ..self.config(self.handler.strategy)
            };
            let events = (self.open)(self.api.clone(), config);
            if feed(&mut self.handler, &self.shared, events, &mut backoff).await == Ended::Dropped {
                return;
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
}

/// Feeds `events` to `handler` until it asks for a new watcher, the stream ends (kube's never
/// does) or the informer is dropped, backing off after errors.
async fn feed<S, T>(
    handler: &mut Handler<S, T>,
    shared: &Weak<Shared<T>>,
    mut events: impl Stream<Item = watcher::Result<Event<S>>> + Unpin,
    backoff: &mut Backoff,
) -> Ended
where
    S: Resource,
{
    while let Some(event) = events.next().await {
        let Some(informer) = shared.upgrade() else {
            return Ended::Dropped;
        };
        let next = handler.handle(&informer, event);
        drop(informer);
        if next != Next::Continue {
            tokio::time::sleep(backoff.next_delay()).await;
        }
        if next == Next::Restart {
            return Ended::Restart;
        }
    }
    Ended::Restart
}

/// What to do after an item of the watcher's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    /// Back off, then keep reading the stream (kube's watcher recovers by itself).
    BackOff,
    /// Back off, then open a new watcher: kube's would retry what cannot succeed.
    Restart,
}

/// What an informer does with each item of kube's watcher stream: fills the store, counts lists
/// by reason and decides what an error means. No I/O and no clock.
#[derive(Debug)]
struct Handler<S, T> {
    project: fn(&S) -> T,
    metrics: Metrics,
    resource: String,
    strategy: ListStrategy,
    /// A list being received; it replaces the store once complete.
    pending: Option<Store<T>>,
    /// Whether any list was started: the first is the initial one, whatever came before it.
    listed: bool,
    /// Why the next list would be made, from what happened since the last one started.
    cause: Reason,
}

impl<S: Resource, T> Handler<S, T> {
    fn new(
        project: fn(&S) -> T,
        metrics: Metrics,
        resource: String,
        strategy: ListStrategy,
    ) -> Self {
        Handler {
            project,
            metrics,
            resource,
            strategy,
            pending: None,
            listed: false,
            cause: Reason::Other,
        }
    }

    fn handle(&mut self, shared: &Shared<T>, event: watcher::Result<Event<S>>) -> Next {
        match event {
            Ok(event) => {
                self.apply(shared, event);
                Next::Continue
            }
            Err(error) => self.failed(&error),
        }
    }

    fn apply(&mut self, shared: &Shared<T>, event: Event<S>) {
        let store = || shared.store.write().unwrap_or_else(PoisonError::into_inner);
        let len = match event {
            Event::Init => {
                self.list_started(shared);
                return;
            }
            Event::InitApply(object) => {
                if let Some(pending) = &mut self.pending {
                    pending.apply(&object, (self.project)(&object));
                }
                return;
            }
            Event::InitDone => {
                let Some(complete) = self.pending.take() else {
                    return;
                };
                // A complete list: another one needs a reason of its own.
                self.cause = Reason::Other;
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
        self.metrics
            .informer_objects
            .get_or_create(&InformerLabels {
                resource: self.resource.clone(),
            })
            .set(i64::try_from(len).unwrap_or(i64::MAX));
        shared.progress.send_modify(|(synced, generation)| {
            *synced = true;
            *generation += 1;
        });
    }

    fn list_started(&mut self, shared: &Shared<T>) {
        let reason = if self.listed {
            self.cause
        } else {
            Reason::Initial
        };
        self.listed = true;
        // Unless something says otherwise, a list that starts again did not complete.
        self.cause = Reason::ListIncomplete;
        self.pending = Some(Store::default());
        {
            let mut lists = shared.lists();
            lists.0 += 1;
            lists.1.count(reason);
        }
        self.metrics
            .informer_lists
            .get_or_create(&ListLabels {
                resource: self.resource.clone(),
                reason: reason.as_str(),
            })
            .inc();
    }

    fn failed(&mut self, error: &watcher::Error) -> Next {
        tracing::debug!(resource = %self.resource, "informer: {error}");
        match error {
            // kube's watcher relists by itself after a 410 in the stream.
            watcher::Error::WatchError(status) if status.code == 410 => {
                self.cause = Reason::Gone;
                Next::BackOff
            }
            // It retries a watch the server refuses with 410 at its start for ever: start over
            // from a fresh list instead.
            watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 410 => {
                self.cause = Reason::Gone;
                Next::Restart
            }
            watcher::Error::WatchStartFailed(kube::Error::Api(status))
                if self.strategy == ListStrategy::Streaming && matches!(status.code, 400 | 422) =>
            {
                tracing::info!(resource = %self.resource, "the server refuses streaming lists; using resourceVersion=0 lists");
                self.strategy = ListStrategy::CachedList;
                Next::Restart
            }
            _ => Next::BackOff,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};
    use std::time::Duration;

    use bytes::Bytes;
    use futures::stream;
    use http::Response;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::core::Status;
    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;
    use crate::budget::Budget;
    use crate::client::Client;
    use crate::settings::MIN_BACKOFF;
    use crate::testing::{TestBody, endpoint, fake_api, metrics_text};

    fn config_map(name: &str, value: &str, resource_version: u32) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": resource_version.to_string()},
            "data": {"v": value},
        })
    }

    fn cm(name: &str, value: &str) -> ConfigMap {
        serde_json::from_value(config_map(name, value, 1)).expect("a config map")
    }

    fn value_of(cm: &ConfigMap) -> String {
        cm.data
            .as_ref()
            .and_then(|d| d.get("v"))
            .cloned()
            .unwrap_or_default()
    }

    fn contents(store: &Store<String>) -> BTreeMap<String, String> {
        store
            .iter()
            .map(|(key, value)| (key.name.to_string(), value.clone()))
            .collect()
    }

    fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn status(code: u16) -> Box<Status> {
        Status::failure("from the test", "Test")
            .with_code(code)
            .boxed()
    }

    /// A handler and its informer's shared state, fed by [`feed`] as the task would.
    struct Fed {
        handler: Handler<ConfigMap, String>,
        shared: Arc<Shared<String>>,
        metrics: Metrics,
        backoff: Backoff,
    }

    impl Fed {
        fn new(strategy: ListStrategy) -> Self {
            let metrics = Metrics::default();
            let mut settings = Settings::new("unit").backoff;
            settings.initial = MIN_BACKOFF;
            Fed {
                handler: Handler::new(value_of, metrics.clone(), "configmaps".into(), strategy),
                shared: Arc::new(Shared::new("configmaps".into())),
                metrics,
                backoff: Backoff::new(settings),
            }
        }

        async fn feed(&mut self, events: Vec<watcher::Result<Event<ConfigMap>>>) -> Ended {
            let weak = Arc::downgrade(&self.shared);
            feed(
                &mut self.handler,
                &weak,
                stream::iter(events),
                &mut self.backoff,
            )
            .await
        }

        fn store(&self) -> BTreeMap<String, String> {
            contents(&self.shared.store.read().expect("store"))
        }

        fn stats(&self) -> InformerStats {
            Informer {
                shared: self.shared.clone(),
            }
            .stats()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_complete_list_replaces_the_store_and_changes_apply_after_it() {
        let mut fed = Fed::new(ListStrategy::CachedList);
        fed.feed(vec![
            Ok(Event::Init),
            Ok(Event::InitApply(cm("a", "1"))),
            Ok(Event::InitApply(cm("b", "1"))),
        ])
        .await;
        assert!(
            fed.store().is_empty() && !fed.stats().synced,
            "a list in progress is not the store"
        );
        fed.feed(vec![Ok(Event::InitDone)]).await;
        assert_eq!(fed.store(), expect(&[("a", "1"), ("b", "1")]));
        assert!(fed.stats().synced);
        fed.feed(vec![
            Ok(Event::Apply(cm("c", "1"))),
            Ok(Event::Apply(cm("a", "2"))),
            Ok(Event::Delete(cm("b", "1"))),
        ])
        .await;
        assert_eq!(fed.store(), expect(&[("a", "2"), ("c", "1")]));
        let stats = fed.stats();
        assert_eq!((stats.lists, stats.relists), (1, Relists::default()));
        assert_eq!(stats.generation, 4, "the complete list and three changes");
    }

    #[tokio::test(start_paused = true)]
    async fn every_list_after_the_first_is_counted_with_its_reason() {
        let mut fed = Fed::new(ListStrategy::CachedList);
        let list = |name: &str| {
            vec![
                Ok(Event::Init),
                Ok(Event::InitApply(cm(name, "1"))),
                Ok(Event::InitDone),
            ]
        };
        fed.feed(list("first")).await;
        // Errors kube's watcher recovers from by itself do not relist.
        let forbidden = watcher::Error::WatchStartFailed(kube::Error::Api(status(403)));
        fed.feed(vec![
            Err(forbidden),
            Err(watcher::Error::WatchError(status(500))),
        ])
        .await;
        assert_eq!(fed.stats().lists, 1);
        // A 410 in the stream: kube relists.
        let gone = || Err(watcher::Error::WatchError(status(410)));
        fed.feed(vec![gone()]).await;
        fed.feed(list("after-gone")).await;
        // Again, and that list fails half way: it is made once more.
        let failed = watcher::Error::InitialListFailed(kube::Error::Api(status(500)));
        fed.feed(vec![
            gone(),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("partial", "1"))),
            Err(failed),
        ])
        .await;
        fed.feed(list("retried")).await;
        assert_eq!(
            fed.store(),
            expect(&[("retried", "1")]),
            "the partial list was dropped"
        );
        // A list with nothing to explain it.
        fed.feed(list("unexplained")).await;
        let relists = Relists {
            gone: 2,
            list_incomplete: 1,
            other: 1,
        };
        assert_eq!((fed.stats().lists, fed.stats().relists), (5, relists));
        let text = metrics_text(&fed.metrics);
        for (reason, n) in [
            ("initial", 1),
            ("gone", 2),
            ("list_incomplete", 1),
            ("other", 1),
        ] {
            let line = format!(
                "fleetwatch_client_informer_lists_total{{resource=\"configmaps\",reason=\"{reason}\"}} {n}"
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_refused_with_410_at_its_start_restarts_from_a_fresh_list() {
        let mut fed = Fed::new(ListStrategy::CachedList);
        fed.feed(vec![Ok(Event::Init), Ok(Event::InitDone)]).await;
        let refused = watcher::Error::WatchStartFailed(kube::Error::Api(status(410)));
        let ended = fed.feed(vec![Err(refused), Ok(Event::Init)]).await;
        assert_eq!(ended, Ended::Restart);
        assert_eq!(fed.stats().lists, 1, "nothing after the restart was read");
        fed.feed(vec![Ok(Event::Init), Ok(Event::InitDone)]).await;
        assert_eq!(fed.stats().relists.gone, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_refusing_streaming_lists_gets_cached_lists_and_that_is_no_relist() {
        let mut fed = Fed::new(ListStrategy::Streaming);
        let refused = watcher::Error::WatchStartFailed(kube::Error::Api(status(422)));
        assert_eq!(fed.feed(vec![Err(refused)]).await, Ended::Restart);
        assert_eq!(fed.handler.strategy, ListStrategy::CachedList);
        fed.feed(vec![Ok(Event::Init), Ok(Event::InitDone)]).await;
        let stats = fed.stats();
        assert_eq!((stats.lists, stats.relists), (1, Relists::default()));
    }

    #[tokio::test(start_paused = true)]
    async fn feeding_stops_when_the_informer_is_dropped() {
        let mut fed = Fed::new(ListStrategy::CachedList);
        let weak = Arc::downgrade(&fed.shared);
        drop(std::mem::replace(
            &mut fed.shared,
            Arc::new(Shared::new("other".into())),
        ));
        let events = stream::iter(vec![Ok(Event::Init)]);
        assert_eq!(
            feed(&mut fed.handler, &weak, events, &mut fed.backoff).await,
            Ended::Dropped
        );
    }

    /// A list's resourceVersion and items.
    type List = (u32, Vec<serde_json::Value>);

    /// A fake API server for one namespace of config maps: lists are answered from a queue,
    /// watches are handed to the test (their query, and a sender for their events).
    struct FakeServer {
        lists: Mutex<VecDeque<List>>,
        queries: Arc<Mutex<Vec<String>>>,
        watches: mpsc::UnboundedSender<(String, mpsc::UnboundedSender<Bytes>)>,
    }

    impl FakeServer {
        fn answer(&self, request: &http::Request<kube::client::Body>) -> Response<TestBody> {
            let query = request.uri().query().unwrap_or_default().to_owned();
            self.queries.lock().expect("queries").push(query.clone());
            if query.split('&').any(|kv| kv == "watch=true") {
                let (events, body) = TestBody::channel();
                let _ = self.watches.send((query, events));
                return Response::new(body);
            }
            let (resource_version, items) = self
                .lists
                .lock()
                .expect("lists")
                .pop_front()
                .expect("a list was scripted for every list request");
            let list = json!({
                "apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": resource_version.to_string()},
                "items": items,
            });
            Response::new(TestBody::full(list.to_string()))
        }
    }

    fn event(kind: &str, object: &serde_json::Value) -> Bytes {
        Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
    }

    fn resource_version(query: &str) -> Option<&str> {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
    }

    /// The informer behind a real client and kube's own watcher, against a fake API server:
    /// watch events change the store, a bookmark moves the resourceVersion a dropped watch
    /// resumes from, and only a 410 makes it list again.
    #[tokio::test]
    async fn over_kube_s_watcher_watches_resume_from_the_last_resource_version_and_only_410_relists()
     {
        let lists = VecDeque::from([
            (10, vec![config_map("a", "1", 5), config_map("b", "1", 6)]),
            (30, vec![config_map("a", "3", 25)]),
        ]);
        let (watches, mut opened) = mpsc::unbounded_channel();
        let server = Arc::new(FakeServer {
            lists: Mutex::new(lists),
            queries: Arc::default(),
            watches,
        });
        let queries = server.queries.clone();
        let wire = fake_api(move |request| server.answer(request));
        let mut settings = Settings::new("unit");
        settings.start_jitter = Duration::ZERO;
        settings.backoff.initial = MIN_BACKOFF;
        settings.backoff.max = MIN_BACKOFF * 2;
        let budget = Budget::separate_for_emulated_process(&settings).expect("budget");
        let client = Client::over(
            wire,
            &settings,
            &budget,
            endpoint("https://fake.invalid"),
            None,
        )
        .await
        .expect("client");
        let informer = client
            .informer(Watch::<ConfigMap>::namespaced("ns"), value_of)
            .expect("informer");
        let until = |expected: BTreeMap<String, String>| {
            let mut changes = informer.changes();
            let informer = informer.clone();
            async move {
                let converged = changes.wait_for(|_| contents(&informer.store()) == expected);
                tokio::time::timeout(Duration::from_secs(10), converged)
                    .await
                    .expect("the store converges")
                    .expect("the informer runs");
            }
        };
        until(expect(&[("a", "1"), ("b", "1")])).await;
        let list_query = queries.lock().expect("queries")[0].clone();
        assert_eq!(
            resource_version(&list_query),
            Some("0"),
            "from the watch cache: {list_query}"
        );
        assert!(!list_query.contains("limit="), "unpaginated: {list_query}");

        let (query, events) = opened.recv().await.expect("a watch");
        assert_eq!(resource_version(&query), Some("10"), "{query}");
        for (kind, object) in [
            ("ADDED", config_map("c", "1", 11)),
            ("MODIFIED", config_map("a", "2", 12)),
            ("DELETED", config_map("b", "1", 13)),
            (
                "BOOKMARK",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"resourceVersion": "20"}}),
            ),
        ] {
            events.send(event(kind, &object)).expect("watch open");
        }
        until(expect(&[("a", "2"), ("c", "1")])).await;

        // The server ends the watch: it resumes from the bookmark, without a list.
        drop(events);
        let (query, events) = opened.recv().await.expect("a resumed watch");
        assert_eq!(resource_version(&query), Some("20"), "{query}");
        assert_eq!(informer.stats().lists, 1);

        // 410 Gone: the one reason to list again.
        let gone = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                          "reason": "Expired", "message": "too old resource version", "code": 410});
        events.send(event("ERROR", &gone)).expect("watch open");
        until(expect(&[("a", "3")])).await;
        let (query, _events) = opened.recv().await.expect("a watch after the relist");
        assert_eq!(resource_version(&query), Some("30"), "{query}");
        let stats = informer.stats();
        let relists = Relists {
            gone: 1,
            ..Relists::default()
        };
        assert_eq!((stats.lists, stats.relists), (2, relists));
    }
}
