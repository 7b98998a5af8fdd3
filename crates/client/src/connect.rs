//! Construction: where the configuration comes from (a kubeconfig file and context, the pod's
//! service account, or `$KUBECONFIG`), kube's HTTP stack built from it, the guard-rail
//! [`Stack`] around that, and a first `GET /version` through the stack so that a wrong address
//! or certificate is reported at start-up, with the server and what failed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::core::NamespaceResourceScope;
use kube::{Api, Resource};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::accounting::Metrics;
use crate::ceiling::Priority;
use crate::error::{Error, Result, chain};
use crate::informer;
use crate::settings::Settings;
use crate::stack::Stack;
use crate::writer::Writer;

/// Where the client's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A kubeconfig file, and a context in it (its current context if `None`).
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
    InCluster,
    /// The first file in `$KUBECONFIG`, else `~/.kube/config`, else in-cluster.
    Default,
}

/// Non-resource endpoints a component may read with [`Client::scrape`].
const SCRAPABLE: [&str; 4] = ["/metrics", "/readyz", "/livez", "/version"];

/// The budgeted client. Cheap to clone; clones share one budget, one ceiling, one set of metrics
/// and one informer per resource type and selector.
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
    settings: Settings,
    server: String,
    context: String,
    /// Learnt from the server's version at start-up, before any informer runs.
    streaming_lists: AtomicBool,
    informers: informer::Registry,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("context", &self.context)
            .field("settings", &self.settings)
            .field("streaming_lists", &self.streaming_lists)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Loads the configuration from `source`, builds the stack and checks the server answers.
    pub async fn connect(source: Source, settings: Settings) -> Result<Client> {
        let stack = Stack::new(&settings)?;
        let settings = settings.validated()?;
        let (mut config, context) = load(source).await?;
        // Retries are the stack's business: kube's own retry layer would retry under the limits.
        config.default_retry = false;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let default_namespace = config.default_namespace.clone();
        let certificate = |e: &dyn std::error::Error| Error::Certificate {
            server: server.clone(),
            context: context.clone(),
            reason: chain_dyn(e),
        };
        let builder = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| certificate(&e))?
            .with_layer(&tower::buffer::BufferLayer::new(1024));
        let wire = take_service(builder)
            .ok_or_else(|| Error::Settings("kube's client builder held no service".into()))?;
        let kube_for = |priority| {
            kube::client::ClientBuilder::new(
                stack.service(priority, wire.clone()),
                &default_namespace,
            )
            .build()
        };
        let client = Client {
            inner: Arc::new(Inner {
                critical: kube_for(Priority::Critical),
                normal: kube_for(Priority::Normal),
                background: kube_for(Priority::Background),
                stack: stack.clone(),
                settings,
                server: server.clone(),
                context: context.clone(),
                streaming_lists: AtomicBool::new(false),
                informers: informer::Registry::default(),
            }),
            priority: Priority::Normal,
        };
        let version = client.kube().apiserver_version().await;
        let version = version.map_err(|e| match client.kube_error("get", "/version", e) {
            Error::Request { reason, .. } if reason.contains("certificate") => Error::Certificate {
                server: server.clone(),
                context: context.clone(),
                reason,
            },
            Error::Request { reason, .. } => Error::Unreachable {
                server: server.clone(),
                context: context.clone(),
                reason,
            },
            other => other,
        })?;
        let streaming_lists = offers_streaming_lists(&version);
        client
            .inner
            .streaming_lists
            .store(streaming_lists, Ordering::Relaxed);
        tracing::info!(%server, %context, streaming_lists, "connected");
        Ok(client)
    }

    /// The same client, sending its requests at `priority` (it matters at the hard ceiling).
    #[must_use]
    pub fn with_priority(&self, priority: Priority) -> Client {
        Client {
            inner: self.inner.clone(),
            priority,
        }
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Registers the client's metrics (`fleetwatch_client_*`) in `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.stack.metrics().register(registry);
    }

    /// Counts hits of the hard ceiling; `changed().await` wakes when it is hit, so the component
    /// can shed its own work.
    pub fn ceiling_hits(&self) -> watch::Receiver<u64> {
        self.inner.stack.ceiling().hits()
    }

    /// Reads one of the API server's own non-resource endpoints (`/metrics`, `/readyz`,
    /// `/livez`, `/version`, optionally with a query such as `?verbose`). Resource paths are
    /// refused: objects are read through informers only.
    pub async fn scrape(&self, path_and_query: &str) -> Result<String> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        if !SCRAPABLE.contains(&path) {
            return Err(Error::NotScrapable {
                path: path_and_query.to_owned(),
                allowed: SCRAPABLE.join(", "),
            });
        }
        let request = http::Request::get(path_and_query)
            .body(Vec::new())
            .map_err(|e| self.request_error("get", path, &e))?;
        self.kube()
            .request_text(request)
            .await
            .map_err(|e| self.kube_error("get", path, e))
    }

    /// A writer for namespaced objects of type `K` in `namespace`.
    pub fn writer<K>(&self, namespace: &str) -> Writer<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Writer::new(self.clone(), Api::namespaced(self.kube(), namespace))
    }

    pub(crate) fn kube(&self) -> kube::Client {
        match self.priority {
            Priority::Critical => self.inner.critical.clone(),
            Priority::Normal => self.inner.normal.clone(),
            Priority::Background => self.inner.background.clone(),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        self.inner.stack.metrics()
    }

    pub(crate) fn streaming_lists(&self) -> bool {
        self.inner.streaming_lists.load(Ordering::Relaxed)
    }

    pub(crate) fn informers(&self) -> &informer::Registry {
        &self.inner.informers
    }

    /// A kube error as the client's error: the server and what failed, never credentials.
    pub(crate) fn kube_error(
        &self,
        verb: &'static str,
        resource: &str,
        error: kube::Error,
    ) -> Error {
        match error {
            kube::Error::Api(status) => Error::Status {
                server: self.inner.server.clone(),
                verb,
                resource: resource.to_owned(),
                status: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            kube::Error::Service(error) => match error.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => self.request_error(verb, resource, other.as_ref()),
            },
            other => self.request_error(verb, resource, &other),
        }
    }

    fn request_error(
        &self,
        verb: &'static str,
        resource: &str,
        error: &dyn std::error::Error,
    ) -> Error {
        Error::Request {
            server: self.inner.server.clone(),
            verb,
            resource: resource.to_owned(),
            reason: chain_dyn(error),
        }
    }
}

fn chain_dyn(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    if let Some(source) = error.source() {
        let rest = chain(source);
        if !text.contains(&rest) {
            text = format!("{text}: {rest}");
        }
    }
    text
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

/// Reads the configuration; returns it with the context's name (for error messages).
async fn load(source: Source) -> Result<(kube::Config, String)> {
    match source {
        Source::Kubeconfig { path, context } => from_file(&path, context).await,
        Source::InCluster => in_cluster(),
        Source::Default => {
            let from_env = std::env::var_os("KUBECONFIG")
                .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()));
            let home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube").join("config"));
            match from_env.or_else(|| home.filter(|p| p.exists())) {
                Some(path) => from_file(&path, None).await,
                None => in_cluster(),
            }
        }
    }
}

fn in_cluster() -> Result<(kube::Config, String)> {
    kube::Config::incluster()
        .map(|c| (c, "in-cluster".to_owned()))
        .map_err(|e| Error::InCluster {
            reason: e.to_string(),
        })
}

async fn from_file(path: &Path, context: Option<String>) -> Result<(kube::Config, String)> {
    let fail = |reason: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(fail("no such file".into()));
    }
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| fail(describe(&e)))?;
    let chosen = context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .ok_or_else(|| fail("no context given and no current-context set".into()))?;
    if !kubeconfig.contexts.iter().any(|c| c.name == chosen) {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(Error::UnknownContext {
            path: path.to_path_buf(),
            context: chosen,
            known: known.join(", "),
        });
    }
    let options = KubeConfigOptions {
        context: Some(chosen.clone()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| fail(format!("context {chosen}: {}", describe(&e))))?;
    Ok((config, chosen))
}

/// A kubeconfig error in words, without echoing the file's contents (a YAML error can quote the
/// line it failed on, and that line can hold a token).
fn describe(error: &KubeconfigError) -> String {
    match error {
        KubeconfigError::Parse(_) => "not a valid kubeconfig (YAML parse error)".to_owned(),
        other => chain(other),
    }
}

/// The service inside a `ClientBuilder`, which otherwise only builds a finished `kube::Client`:
/// a layer sees the service it wraps, so [`Capture`] keeps it.
fn take_service<S>(builder: kube::client::ClientBuilder<S>) -> Option<S> {
    let taken = Mutex::new(None);
    let _ = builder.with_layer(&Capture(&taken));
    taken.into_inner().unwrap_or_else(PoisonError::into_inner)
}

struct Capture<'a, S>(&'a Mutex<Option<S>>);

impl<S> tower::Layer<S> for Capture<'_, S> {
    type Service = ();
    fn layer(&self, inner: S) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(inner);
    }
}
