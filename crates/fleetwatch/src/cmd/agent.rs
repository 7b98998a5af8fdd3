//! `fleetwatch agent`: the per-node agent, one per node (a DaemonSet). It makes no API-server
//! request at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use fleetwatch_agent::dns::DnsConfig;
use fleetwatch_agent::host::HostConfig;
use fleetwatch_agent::kubelet::KubeletConfig;
use fleetwatch_agent::{AgentConfig, DEFAULT_LISTEN};
use fleetwatch_telemetry::remote_write;
use tokio::net::TcpListener;

/// Where a pod's service-account token and cluster CA are mounted.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "It reads the node's own kubelet (/metrics/resource and \
                  /stats/summary: RBAC nodes/metrics and nodes/stats, never nodes/proxy), the \
                  host's /proc and /sys under --host-root, and resolves --dns-name through the \
                  node's resolver and the cluster DNS service every 10 s, reporting answers a \
                  cache serves past their TTL while the cluster DNS fails \
                  (fleetwatch_agent_dns_served_stale). It serves everything on /metrics and \
                  optionally pushes it to remote-write. It never talks to the API server: it \
                  has no client that could, and ignores any kubeconfig.\n\nIn a DaemonSet, give \
                  the node name and IP from the downward API (NODE_NAME, NODE_IP); the kubelet \
                  token and CA default to the pod's service account's."
)]
pub struct Args {
    /// The node this agent runs on.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    node_name: String,

    /// The node's IP: the kubelet is https://NODE_IP:10250 unless --kubelet says otherwise.
    #[arg(long, env = "NODE_IP", value_name = "IP")]
    node_ip: Option<std::net::IpAddr>,

    /// The kubelet's URL [default: https://$NODE_IP:10250].
    #[arg(long, value_name = "URL")]
    kubelet: Option<String>,

    /// Bearer token file for the kubelet, read again before each poll [default: the service
    /// account's token, when mounted].
    #[arg(long, value_name = "FILE")]
    kubelet_token_file: Option<PathBuf>,

    /// CA (PEM) the kubelet's serving certificate must chain to [default: the service
    /// account's ca.crt, when mounted]. TLS is always verified.
    #[arg(long, value_name = "FILE")]
    kubelet_ca: Option<PathBuf>,

    /// Don't read the kubelet (host and DNS only).
    #[arg(long, conflicts_with_all = ["kubelet", "kubelet_token_file", "kubelet_ca"])]
    no_kubelet: bool,

    /// How often the kubelet and the host are read, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    interval: u64,

    /// Where the host's root filesystem is mounted: /proc, /sys and /etc/resolv.conf are read
    /// under it.
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,

    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Also push every series to this Prometheus remote-write endpoint.
    #[arg(long, value_name = "URL")]
    remote_write: Option<String>,

    /// How often the page is pushed to remote-write, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        requires = "remote_write"
    )]
    remote_write_interval: u64,

    /// A name to resolve every DNS interval (repeat for more) [default:
    /// kubernetes.default.svc.cluster.local].
    #[arg(long = "dns-name", value_name = "NAME")]
    dns_names: Vec<String>,

    /// The node's resolver, ADDR:PORT [default: the first nameserver of
    /// <host-root>/etc/resolv.conf].
    #[arg(long, value_name = "ADDR")]
    dns_resolver: Option<SocketAddr>,

    /// The cluster DNS the node's cache forwards to, ADDR:PORT: with node-local-dns, the
    /// kube-dns-upstream Service's ClusterIP (the cache takes over kube-dns's own address on the
    /// node). Without it the agent cannot tell a cache serving stale answers from a healthy
    /// one, and says so (fleetwatch_agent_dns_stale_check_enabled 0).
    #[arg(long, value_name = "ADDR")]
    cluster_dns: Option<SocketAddr>,

    /// How often the DNS names are resolved, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    dns_interval: u64,
}

impl Args {
    fn config(self) -> anyhow::Result<AgentConfig> {
        let interval = Duration::from_secs(self.interval);
        let kubelet = if self.no_kubelet {
            None
        } else {
            Some(self.kubelet_config(interval)?)
        };
        let dns_interval = Duration::from_secs(self.dns_interval);
        let mut dns = DnsConfig {
            resolver: self.dns_resolver,
            resolv_conf: self.host_root.join("etc/resolv.conf"),
            cluster_dns: self.cluster_dns,
            interval: dns_interval,
            // A lookup must end before the next one starts.
            timeout: DnsConfig::default().timeout.min(dns_interval / 2),
            ..DnsConfig::default()
        };
        if !self.dns_names.is_empty() {
            dns.names = self.dns_names;
        }
        let remote_write = self.remote_write.map(|url| {
            (
                remote_write::Config::new(url),
                Duration::from_secs(self.remote_write_interval),
            )
        });
        Ok(AgentConfig {
            node_name: self.node_name,
            kubelet,
            host: HostConfig {
                root: self.host_root,
                interval,
            },
            dns,
            remote_write,
        })
    }

    fn kubelet_config(&self, interval: Duration) -> anyhow::Result<KubeletConfig> {
        let url = match (&self.kubelet, self.node_ip) {
            (Some(url), _) => url.clone(),
            (None, Some(std::net::IpAddr::V6(ip))) => format!("https://[{ip}]:10250"),
            (None, Some(ip)) => format!("https://{ip}:10250"),
            (None, None) => anyhow::bail!(
                "--kubelet or --node-ip (NODE_IP) is needed to find the kubelet, or --no-kubelet"
            ),
        };
        Ok(KubeletConfig {
            url,
            token_file: self.kubelet_token_file.clone().or_else(|| mounted("token")),
            ca_file: self.kubelet_ca.clone().or_else(|| mounted("ca.crt")),
            interval,
            // A poll must end before the next one starts.
            timeout: KubeletConfig::default().timeout.min(interval / 2),
            ..KubeletConfig::default()
        })
    }
}

/// The service account's `file`, if the pod has it mounted.
fn mounted(file: &str) -> Option<PathBuf> {
    let path = Path::new(SERVICE_ACCOUNT_DIR).join(file);
    path.is_file().then_some(path)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listen = args.listen;
    let config = args.config()?;
    config.validate()?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    fleetwatch_agent::run(config, listener, super::terminated()).await?;
    Ok(())
}
