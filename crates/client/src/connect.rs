//! Where the configuration comes from (a kubeconfig file and context, the pod's service account,
//! or `$KUBECONFIG`) and kube's HTTP stack built from it: the wire below the guard-rail stack.
//! [`Client::connect`](crate::Client::connect) puts them together.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use http::{Request, Response};
use kube::client::{Body, DynBody};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use tower::{BoxError, Service};

use crate::error::{Error, Result, chain};

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

/// Which API server a client talks to, for its errors and logs.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The server's URL, without a trailing slash.
    pub(crate) server: String,
    /// The kubeconfig context (or `in-cluster`).
    pub(crate) context: String,
    pub(crate) default_namespace: String,
}

/// kube's HTTP service for `config` (base URI, authentication, TLS, connection pool), with its
/// built-in retry off: retries are the stack's business, and kube's would retry under the limits.
pub(crate) fn wire(
    mut config: kube::Config,
) -> Result<
    impl Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError, Future: Send>
    + Clone
    + Send
    + 'static,
    kube::Error,
> {
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::buffer::BufferLayer::new(1024));
    Ok(take_service(builder).expect("a ClientBuilder holds its service"))
}

/// Reads the configuration for `source`; returns it with the endpoint it names.
pub(crate) async fn load(source: Source) -> Result<(kube::Config, Endpoint)> {
    let (config, context) = config_for(source).await?;
    let endpoint = Endpoint {
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned(),
        context,
        default_namespace: config.default_namespace.clone(),
    };
    Ok((config, endpoint))
}

/// Reads the configuration; returns it with the context's name (for error messages).
async fn config_for(source: Source) -> Result<(kube::Config, String)> {
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
