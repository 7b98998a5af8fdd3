//! `fleetwatch collector`: the control-plane telemetry service, one per cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use fleetwatch_client::{Client, Settings, Source};
use fleetwatch_collector::CollectorConfig;
use tokio::net::TcpListener;

#[derive(Debug, clap::Args)]
#[command(after_long_help = "It scrapes every \
                  API server replica's /metrics, /readyz and /livez, derives SLIs over a sliding \
                  window (request rates, latency quantiles, APF saturation and per-flow-schema \
                  load, etcd latency, watchers, LIST sizes), keeps object state from watches in \
                  kube-state-metrics' names, and serves it all on /metrics. Every request goes \
                  through fleetwatch's budgeted client: its cost to the API server does not grow \
                  with the number of nodes.\n\nReplicas elect a leader through a Lease \
                  (`fleetwatch-collector` in the pod's namespace): only the leader watches and \
                  scrapes, and a follower takes over within the lease duration (15 s). On \
                  SIGTERM it stops its sources, releases the Lease and flushes remote-write.\n\nWithout --kubeconfig it uses $KUBECONFIG, then \
                  ~/.kube/config, then the pod's service account.")]
pub struct Args {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,

    /// Context in the kubeconfig (default: its current context).
    #[arg(long, requires = "kubeconfig")]
    context: Option<String>,

    /// Address to serve /metrics, /healthz and /readyz on [default: 0.0.0.0:9470, or the config
    /// file's `listen`].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Also push every series to this Prometheus remote-write endpoint (e.g.
    /// http://prometheus:9090/api/v1/write) every 30 s [default: the config file's
    /// `remote_write.url`].
    #[arg(long, value_name = "URL")]
    remote_write: Option<String>,

    /// Receive the API server's audit webhook (HTTPS, client certificates required) on this
    /// address, for per-user and per-user-agent request rates and latency [default: off, or
    /// the config file's `audit`]. Needs the three --audit-* files.
    #[arg(long, value_name = "ADDR", requires_all = ["audit_tls_cert", "audit_tls_key", "audit_client_ca"])]
    audit_listen: Option<SocketAddr>,

    /// The audit receiver's serving certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "audit_listen")]
    audit_tls_cert: Option<PathBuf>,

    /// The audit receiver's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "audit_listen")]
    audit_tls_key: Option<PathBuf>,

    /// The CA whose client certificates the audit receiver accepts (the API server's).
    #[arg(long, value_name = "FILE", requires = "audit_listen")]
    audit_client_ca: Option<PathBuf>,

    /// Configuration file (YAML): per-component settings; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => CollectorConfig::load(path)?,
        None => CollectorConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.remote_write {
        config.remote_write.url = Some(url);
    }
    if let Some(listen) = args.audit_listen {
        config.audit.enabled = true;
        config.audit.listen = listen;
        config.audit.tls_cert_file = args.audit_tls_cert;
        config.audit.tls_key_file = args.audit_tls_key;
        config.audit.client_ca_file = args.audit_client_ca;
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("the flags and the config file: {e}"))?;
    let source = match args.kubeconfig {
        Some(path) => Source::Kubeconfig {
            path,
            context: args.context,
        },
        None => Source::Default,
    };
    let client = Client::connect(source, Settings::new("collector")).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    fleetwatch_collector::run(config, client, listener, super::terminated()).await?;
    Ok(())
}
