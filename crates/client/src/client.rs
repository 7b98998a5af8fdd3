//! The budgeted client: [`Client::connect`], and what a component does with a client — informers,
//! writes, reads of the API server's own endpoints, the ceiling's hits and the metrics.

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response};
use kube::client::Body;
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::{Api, Resource};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tower::{BoxError, Service};

use crate::budget::Budget;
use crate::connect::{self, Endpoint, Source};
use crate::error::{Error, Result, chain};
use crate::failure::{self, Failure};
use crate::informer::{self, Informer, Open, Upstream, Watch};
use crate::objects::ObjectWriter;
use crate::priority::Priority;
use crate::settings::Settings;
use crate::stack::Stack;
use crate::writer::Writer;

/// Non-resource endpoints a component may read with [`Client::scrape`].
/// The most [`Client::scrape`] reads of a page: a kube-apiserver's `/metrics` is a few MB on a
/// large cluster; an endpoint that answers with far more is broken or hostile.
pub const DEFAULT_SCRAPE_LIMIT: usize = 64 << 20;

const SCRAPABLE: [&str; 4] = ["/metrics", "/readyz", "/livez", "/version"];

/// The budgeted client for one API server. Cheap to clone; clones share its connection's token
/// bucket, concurrency limit and informers (one per resource type and selector). Every client
/// in a process shares the process's hard ceiling and metrics (see [`Budget`]).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
    priority: Priority,
}

struct Inner {
    /// kube clients over the same stack state, one per priority.
    critical: kube::Client,
    normal: kube::Client,
    background: kube::Client,
    stack: Stack,
    endpoint: Endpoint,
    /// What the client was configured with, to reach the server's other replicas (`None` over a
    /// test wire).
    config: Option<kube::Config>,
    /// Learnt from the server's version at start-up, before any informer runs.
    streaming_lists: AtomicBool,
    informers: informer::Registry,
}

impl Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.endpoint.server)
            .field("context", &self.endpoint.context)
            .field("settings", self.stack.settings())
            .field("streaming_lists", &self.streaming_lists)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Loads the configuration from `source`, builds the stack within the process's budget and
    /// checks the server answers (`GET /version`), so that a wrong address or certificate is
    /// reported at start-up, with the server and what failed.
    ///
    /// The first client in a process creates the process's hard ceiling from its settings; a
    /// later one whose settings ask for a different ceiling gets [`Error::Settings`].
    pub async fn connect(source: Source, settings: Settings) -> Result<Client> {
        let budget = Budget::of_process(&settings)?;
        Client::connect_with_budget(source, settings, &budget).await
    }

    /// [`Client::connect`] within `budget` instead of the process's. The only budget to pass is
    /// one from [`Budget::separate_for_emulated_process`], for the load lab's emulated agents;
    /// everything else calls [`Client::connect`].
    pub async fn connect_with_budget(
        source: Source,
        settings: Settings,
        budget: &Budget,
    ) -> Result<Client> {
        let (config, endpoint) = connect::load(source).await?;
        Client::with_config(config, endpoint, &settings, budget).await
    }

    /// A client for one replica of this client's API server, at `server` (`https://host:port`,
    /// e.g. from the `kubernetes` EndpointSlice): the same credentials, the certificate still
    /// verified against the configured server's name (a replica's serving certificate names the
    /// service, not always its own address), within the same process budget.
    pub async fn replica(&self, server: &str) -> Result<Client> {
        let Some(config) = &self.inner.config else {
            return Err(Error::Settings(
                "this client has no configuration to reach replicas with".into(),
            ));
        };
        let mut config = config.clone();
        let invalid = |reason: String| Error::Request {
            server: server.to_owned(),
            verb: "connect",
            resource: "replica".into(),
            reason,
        };
        let uri: http::Uri = server
            .parse()
            .map_err(|e| invalid(format!("not a URL: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(invalid("a replica is reached over https only".into()));
        }
        if config.tls_server_name.is_none() {
            config.tls_server_name = config
                .cluster_url
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned());
        }
        config.cluster_url = uri;
        let endpoint = Endpoint {
            server: server.trim_end_matches('/').to_owned(),
            ..self.inner.endpoint.clone()
        };
        let settings = self.inner.stack.settings().clone();
        Client::with_config(config, endpoint, &settings, self.inner.stack.budget()).await
    }

    /// Another client to the same server, within the same process budget, with informers of
    /// its own: dropping it (and every informer from it) ends their watches. For work that stops
    /// and starts within a process, such as a leader's term.
    pub async fn separate(&self) -> Result<Client> {
        let Some(config) = &self.inner.config else {
            return Err(Error::Settings(
                "this client has no configuration to connect again with".into(),
            ));
        };
        let settings = self.inner.stack.settings().clone();
        let endpoint = self.inner.endpoint.clone();
        Client::with_config(
            config.clone(),
            endpoint,
            &settings,
            self.inner.stack.budget(),
        )
        .await
    }

    async fn with_config(
        config: kube::Config,
        endpoint: Endpoint,
        settings: &Settings,
        budget: &Budget,
    ) -> Result<Client> {
        let wire = connect::wire(config.clone()).map_err(|e| Error::Certificate {
            server: endpoint.server.clone(),
            context: endpoint.context.clone(),
            reason: chain(&e),
        })?;
        Client::over(wire, settings, budget, endpoint, Some(config)).await
    }

    /// The client over `wire` (kube's HTTP service, or a fake API server in tests).
    pub(crate) async fn over<S, B>(
        wire: S,
        settings: &Settings,
        budget: &Budget,
        endpoint: Endpoint,
        config: Option<kube::Config>,
    ) -> Result<Client>
    where
        S: Service<Request<Body>, Response = Response<B>, Error = BoxError>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let stack = Stack::new(settings, budget, &endpoint.server)?;
        // The one place a kube client is built: over the budgeted stack.
        #[allow(clippy::disallowed_methods)]
        let kube_for = |priority| {
            kube::client::ClientBuilder::new(
                stack.service(priority, wire.clone()),
                &endpoint.default_namespace,
            )
            .build()
        };
        let client = Client {
            inner: Arc::new(Inner {
                critical: kube_for(Priority::Critical),
                normal: kube_for(Priority::Normal),
                background: kube_for(Priority::Background),
                stack: stack.clone(),
                endpoint,
                config,
                streaming_lists: AtomicBool::new(false),
                informers: informer::Registry::default(),
            }),
            priority: Priority::Normal,
        };
        let version = client.kube().apiserver_version().await;
        let version = version.map_err(|e| client.start_up_error(e))?;
        let streaming_lists = offers_streaming_lists(&version);
        client
            .inner
            .streaming_lists
            .store(streaming_lists, Ordering::Relaxed);
        let Endpoint {
            server, context, ..
        } = &client.inner.endpoint;
        tracing::info!(%server, %context, streaming_lists, "connected");
        Ok(client)
    }

    /// The same client, sending its requests at `priority` (it decides the order of waiting
    /// requests and what the hard ceiling sheds).
    #[must_use]
    pub fn with_priority(&self, priority: Priority) -> Client {
        Client {
            inner: self.inner.clone(),
            priority,
        }
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.inner.endpoint.server
    }

    /// Registers the metrics (`fleetwatch_client_*`) of this client's budget in `registry`.
    /// They are the process's, shared by every client in it: register them once per registry,
    /// from any one client.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.stack.budget().metrics().register(registry);
    }

    /// Counts hits of the process's hard ceiling (by any client in it); `changed().await` wakes
    /// when it is hit, so the component can shed its own work.
    pub fn ceiling_hits(&self) -> watch::Receiver<u64> {
        self.inner.stack.budget().ceiling().hits()
    }

    /// Reads one of the API server's own non-resource endpoints (`/metrics`, `/readyz`,
    /// `/livez`, `/version`, optionally with a query such as `?verbose`), up to
    /// [`DEFAULT_SCRAPE_LIMIT`] bytes. Resource paths are refused: objects are read through
    /// informers only.
    pub async fn scrape(&self, path_and_query: &str) -> Result<String> {
        self.scrape_limited(path_and_query, DEFAULT_SCRAPE_LIMIT)
            .await
    }

    /// [`Client::scrape`], reading at most `max_bytes` of the page: a longer page is
    /// [`Error::TooLarge`], and no more of it is read.
    pub async fn scrape_limited(&self, path_and_query: &str, max_bytes: usize) -> Result<String> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        if !SCRAPABLE.contains(&path) {
            return Err(Error::NotScrapable {
                path: path_and_query.to_owned(),
                allowed: SCRAPABLE.join(", "),
            });
        }
        let request = http::Request::get(path_and_query)
            .body(Vec::new())
            .map_err(|e| Error::request(self.server(), "get", path, &e))?;
        let response = self
            .kube()
            .send(request.map(Body::from))
            .await
            .map_err(|e| self.kube_error("get", path, e))?;
        let mut body = response.into_body();
        // Frame by frame into one buffer: reading the body as an `AsyncRead` copied it through
        // a stream adapter and took seconds for a 2 MB page in debug builds (50× the raw
        // client's time, measured on the lab).
        let mut page = Vec::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await
        {
            let frame = frame.map_err(|e| Error::request(self.server(), "get", path, &e))?;
            if let Some(data) = frame.data_ref() {
                if page.len() + data.len() > max_bytes {
                    return Err(Error::TooLarge {
                        server: self.server().to_owned(),
                        path: path.to_owned(),
                        limit: max_bytes,
                    });
                }
                page.extend_from_slice(data);
            }
        }
        String::from_utf8(page).map_err(|e| Error::request(self.server(), "get", path, &e))
    }

    /// A writer for namespaced objects of type `K` in `namespace`.
    pub fn writer<K>(&self, namespace: &str) -> Writer<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + DeserializeOwned
            + Debug,
    {
        Writer::new(
            Api::namespaced(self.kube(), namespace),
            self.server(),
            &self.inner.stack.settings().component,
        )
    }

    /// A writer of objects of any kind, applying as `field_manager` (a rollout's
    /// `fleetwatch-rollout`, say), at this client's priority.
    pub fn object_writer(&self, field_manager: &str) -> ObjectWriter {
        ObjectWriter::new(self.kube(), self.server(), field_manager)
    }

    /// An informer of full `K` objects, each stored as `project(&object)`. The whole object
    /// crosses the wire; only the projection stays in memory.
    pub fn informer<K, T>(&self, watch: Watch<K>, project: fn(&K) -> T) -> Result<Informer<T>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        let open: Open<K, K> = |api, config| kube::runtime::watcher(api, config).boxed();
        self.inner
            .informers
            .start("full", watch, project, open, self.upstream())
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
        self.inner
            .informers
            .start("metadata", watch, project, open, self.upstream())
    }

    /// What an informer needs of this client. Not the client itself: the client's registry holds
    /// the informer, and the informer must stop when the client is dropped.
    fn upstream(&self) -> Upstream {
        Upstream {
            kube: self.kube(),
            settings: self.inner.stack.settings().clone(),
            metrics: self.inner.stack.budget().metrics().clone(),
            streaming_lists: self.inner.streaming_lists.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn kube(&self) -> kube::Client {
        match self.priority {
            Priority::Critical => self.inner.critical.clone(),
            Priority::Normal => self.inner.normal.clone(),
            Priority::Background => self.inner.background.clone(),
        }
    }

    fn kube_error(&self, verb: &'static str, resource: &str, error: kube::Error) -> Error {
        Error::from_kube(self.server(), verb, resource, error)
    }

    /// The first request's failure: a failed TLS handshake is a certificate problem (told by the
    /// error's types, see [`failure`]); no answer at all means the server is unreachable.
    fn start_up_error(&self, error: kube::Error) -> Error {
        let Endpoint {
            server, context, ..
        } = &self.inner.endpoint;
        if failure::of(&error) == Failure::Tls {
            return Error::Certificate {
                server: server.clone(),
                context: context.clone(),
                reason: chain(&error),
            };
        }
        match self.kube_error("get", "/version", error) {
            Error::Request { reason, .. } => Error::Unreachable {
                server: server.clone(),
                context: context.clone(),
                reason,
            },
            other => other,
        }
    }
}

/// Streaming lists (KEP-3157, `sendInitialEvents`) are on by default from Kubernetes 1.34.
fn offers_streaming_lists(version: &k8s_openapi::apimachinery::pkg::version::Info) -> bool {
    let number = |s: &str| {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    };
    matches!(
        (number(&version.major), number(&version.minor)),
        (Some(major), Some(minor)) if major > 1 || minor >= 34
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::settings::MIN_BACKOFF;
    use crate::testing::{TestBody, closed_port, endpoint, fake_api, not_tls_server};

    fn encoded(client: &Client) -> String {
        let mut registry = Registry::default();
        client.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[tokio::test]
    async fn clients_in_one_budget_export_one_metric_set_counting_both() {
        let settings = Settings::new("unit");
        let budget = Budget::separate_for_emulated_process(&settings).expect("budget");
        let wire = fake_api(|_| Response::new(TestBody::full("ok")));
        let connect =
            |server: &str| Client::over(wire.clone(), &settings, &budget, endpoint(server), None);
        let a = connect("https://replica-a.invalid")
            .await
            .expect("client a");
        let b = connect("https://replica-b.invalid")
            .await
            .expect("client b");
        for client in [&a, &b] {
            client.scrape("/readyz").await.expect("readyz");
        }

        let text = encoded(&a);
        let families: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let distinct: BTreeSet<&str> = families.iter().copied().collect();
        assert_eq!(
            families.len(),
            distinct.len(),
            "a family registered twice:\n{text}"
        );
        for path in ["/version", "/readyz"] {
            let line = format!(
                "fleetwatch_client_requests_total{{verb=\"get\",resource=\"{path}\",code=\"200\"}} 2"
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        for server in ["https://replica-a.invalid", "https://replica-b.invalid"] {
            let line = format!("fleetwatch_client_concurrency_limit{{server=\"{server}\"}} ");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert_eq!(
            encoded(&b),
            text,
            "both clients export the same, single set"
        );
    }

    /// A kubeconfig for `server` with a token user, in the temporary directory.
    fn kubeconfig(name: &str, server: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "fleetwatch-client-{}-{name}.kubeconfig",
            std::process::id()
        ));
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: unit\n\
             clusters: [{{name: unit, cluster: {{server: \"{server}\"}}}}]\n\
             contexts: [{{name: unit, context: {{cluster: unit, user: unit}}}}]\n\
             users: [{{name: unit, user: {{token: not-a-secret}}}}]\n"
        );
        std::fs::write(&path, text).expect("writing a kubeconfig");
        path
    }

    #[tokio::test]
    async fn a_failed_tls_handshake_is_a_certificate_error_and_silence_is_unreachable() {
        let mut settings = Settings::new("unit");
        settings.backoff.initial = MIN_BACKOFF;
        settings.backoff.max = MIN_BACKOFF * 4;
        let budget = Budget::separate_for_emulated_process(&settings).expect("budget");
        let connect = |name: &str, server: &str| {
            let source = Source::Kubeconfig {
                path: kubeconfig(name, server),
                context: None,
            };
            Client::connect_with_budget(source, settings.clone(), &budget)
        };

        let (url, _) = not_tls_server().await;
        let e = connect("not-tls", &url).await.expect_err("not TLS");
        assert!(
            matches!(&e, Error::Certificate { server, .. } if *server == url),
            "{e:?}"
        );

        let url = format!("https://127.0.0.1:{}", closed_port());
        let e = connect("closed", &url).await.expect_err("nothing listens");
        assert!(
            matches!(&e, Error::Unreachable { server, .. } if *server == url),
            "{e:?}"
        );
    }
}
