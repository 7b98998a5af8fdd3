//! The emulated agents of each pattern, their identities, and the pod churn generator.

// The `naive-*` agents are the incident's unbudgeted clients, and the admin grants the agents
// their read access: the two uses of a raw `kube::Client` clippy.toml allows here.
#![allow(clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleetwatch_client::{Budget, Client, Settings, Source, Watch};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::instrument::WithSubscriber;

use crate::LoadSpec;
use crate::error::{LabError, Result};
use fleetwatch_control_plane::ControlPlane;
use fleetwatch_control_plane::populate::{node_name, standalone_pod};

/// How an emulated per-node agent reads the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// No agents: the API server's own background cost over the same time, the baseline that
    /// every other pattern's cost includes.
    Idle,
    /// The incident: every node LISTs all pods cluster-wide on a timer, without resourceVersion
    /// (a quorum read from etcd).
    NaiveList,
    /// The same with `fieldSelector=spec.nodeName=<node>`: etcd still reads every pod.
    NaiveListNode,
    /// Every node runs an informer on all pods (a telemetry processor without a node filter).
    WatchAll,
    /// Every node runs an informer on its own pods (field selector, from the watch cache).
    WatchNode,
    /// fleetwatch: one collector per cluster, the real one (`fleetwatch_collector::run`: its
    /// informers, its scrapes of every API server replica, its Lease); agents make no API calls.
    Fleetwatch,
}

impl Pattern {
    pub const ALL: [Pattern; 6] = [
        Pattern::Idle,
        Pattern::NaiveList,
        Pattern::NaiveListNode,
        Pattern::WatchAll,
        Pattern::WatchNode,
        Pattern::Fleetwatch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pattern::Idle => "idle",
            Pattern::NaiveList => "naive-list",
            Pattern::NaiveListNode => "naive-list-node",
            Pattern::WatchAll => "watch-all",
            Pattern::WatchNode => "watch-node",
            Pattern::Fleetwatch => "fleetwatch",
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Pattern::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown pattern `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The group every load-lab identity is in, bound to read-only access to nodes, pods and
/// `/metrics` — what the agents need and nothing more.
const AGENT_GROUP: &str = "fleetwatch-lab:agents";
/// The probe's user: it GETs one node throughout a run.
pub(crate) const PROBE_USER: &str = "fleetwatch-lab-probe";

/// Kubeconfigs of the load lab's users, with their RBAC in place.
#[derive(Debug)]
pub(crate) struct Identities {
    plane_dir: PathBuf,
    pub(crate) probe: PathBuf,
    agents: std::collections::HashMap<&'static str, PathBuf>,
    /// Every API server replica, for the collector to scrape: the lab's `kubernetes`
    /// EndpointSlice of a single replica lists its advertised, not its loopback, address.
    apiservers: Vec<String>,
}

impl Identities {
    pub(crate) async fn prepare(plane: &ControlPlane) -> Result<Self> {
        let admin = plane.admin_client().await?;
        grant_read_access(&admin).await?;
        grant_collector_access(&admin, &Pattern::Fleetwatch.user()).await?;
        let mut agents = std::collections::HashMap::new();
        for pattern in Pattern::ALL {
            let user = pattern.user();
            agents.insert(pattern.name(), plane.kubeconfig_for(&user, &[AGENT_GROUP])?);
        }
        Ok(Identities {
            plane_dir: plane.dir().to_path_buf(),
            probe: plane.kubeconfig_for(PROBE_USER, &[AGENT_GROUP])?,
            agents,
            apiservers: plane.apiserver_urls(),
        })
    }

    fn kubeconfig(&self, pattern: Pattern) -> Result<&PathBuf> {
        self.agents.get(pattern.name()).ok_or_else(|| {
            LabError::invalid(
                "pattern",
                format!("no identity for {pattern} in {}", self.plane_dir.display()),
            )
        })
    }
}

impl Pattern {
    /// The user this pattern's agents authenticate as (for a FlowSchema or an audit query of
    /// their requests).
    pub fn user(self) -> String {
        format!("fleetwatch-lab-{self}")
    }
}

/// The collector's own access, as its deployment grants it ([`fleetwatch_collector::access`]),
/// with its Lease in [`COLLECTOR_LEASE_NAMESPACE`].
async fn grant_collector_access(admin: &kube::Client, user: &str) -> Result<()> {
    use fleetwatch_control_plane::populate::from_json;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use serde_json::json;
    let name = "fleetwatch-lab-collector";
    let subjects = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]);
    let namespace = COLLECTOR_LEASE_NAMESPACE;
    let role: ClusterRole = from_json(json!({
        "metadata": {"name": name},
        "rules": fleetwatch_collector::access::cluster_rules(),
    }))?;
    let binding: ClusterRoleBinding = from_json(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    }))?;
    let lease_role: Role = from_json(json!({
        "metadata": {"name": name, "namespace": namespace},
        "rules": fleetwatch_collector::access::lease_rules(),
    }))?;
    let lease_binding: RoleBinding = from_json(json!({
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": subjects,
    }))?;
    create_if_missing(&Api::all(admin.clone()), &role).await?;
    create_if_missing(&Api::all(admin.clone()), &binding).await?;
    create_if_missing(&Api::namespaced(admin.clone(), namespace), &lease_role).await?;
    create_if_missing(&Api::namespaced(admin.clone(), namespace), &lease_binding).await
}

async fn grant_read_access(admin: &kube::Client) -> Result<()> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let name = "fleetwatch-lab-agents";
    let role: ClusterRole = fleetwatch_control_plane::populate::from_json(serde_json::json!({
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        ],
    }))?;
    let binding: ClusterRoleBinding = fleetwatch_control_plane::populate::from_json(
        serde_json::json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": AGENT_GROUP}],
        }),
    )?;
    create_if_missing(&Api::all(admin.clone()), &role).await?;
    create_if_missing(&Api::all(admin.clone()), &binding).await
}

async fn create_if_missing<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What the agents did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Agents at work until [`Running::stop`].
pub(crate) struct Running {
    tasks: JoinSet<()>,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    synced: watch::Receiver<usize>,
    agents: usize,
}

/// What each agent gets: where to count, when to stop, and whom to tell it has synced.
#[derive(Clone)]
struct Lifeline {
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
    synced: Arc<watch::Sender<usize>>,
}

impl Lifeline {
    fn synced(&self) {
        self.synced.send_modify(|n| *n += 1);
    }

    async fn stopped(&self) {
        // The sender lives in `Running` until every task has ended.
        let _ = self.stop.clone().wait_for(|stop| *stop).await;
    }
}

/// Starts `agents` agents of `pattern`; they run until stopped.
pub(crate) async fn start(
    identities: &Identities,
    pattern: Pattern,
    agents: usize,
    spec: &LoadSpec,
) -> Result<Running> {
    let kubeconfig = identities.kubeconfig(pattern)?.clone();
    let (stop, stop_rx) = watch::channel(false);
    let (synced_tx, synced) = watch::channel(0);
    let life = Lifeline {
        counters: Arc::new(Counters::default()),
        stop: stop_rx,
        synced: Arc::new(synced_tx),
    };
    let mut tasks = JoinSet::new();
    let expected = match pattern {
        Pattern::Idle => 0,
        Pattern::NaiveList | Pattern::NaiveListNode => {
            for agent in 0..agents {
                let node = (pattern == Pattern::NaiveListNode)
                    .then(|| node_name(agent % spec.nodes.max(1)));
                let client = naive_client(&kubeconfig, pattern).await?;
                // Spread the agents over the interval, as real nodes are not in lock-step either.
                let interval = spec.settings.list_interval;
                let offset = interval.mul_f64(agent as f64 / agents.max(1) as f64);
                tasks.spawn(naive_agent(client, node, offset, interval, life.clone()));
            }
            agents
        }
        Pattern::WatchAll | Pattern::WatchNode => {
            let by_node = pattern == Pattern::WatchNode;
            let clients: Vec<Client> = stream::iter(0..agents)
                .map(|_| budgeted(&kubeconfig, pattern))
                .buffer_unordered(16)
                .try_collect()
                .await?;
            for (agent, client) in clients.into_iter().enumerate() {
                let node = by_node.then(|| node_name(agent % spec.nodes.max(1)));
                tasks.spawn(watching_agent(client, node, life.clone()));
            }
            agents
        }
        Pattern::Fleetwatch => {
            let client = budgeted(&kubeconfig, pattern).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| {
                    LabError::invalid("pattern", format!("no port for the collector: {e}"))
                })?;
            let config = collector_config(&identities.apiservers);
            tasks.spawn(collector(config, client, listener, life.clone()));
            1
        }
    };
    Ok(Running {
        tasks,
        counters: life.counters,
        stop,
        synced,
        agents: expected,
    })
}

impl Running {
    /// Waits until every agent has its first complete view of the pods (naive agents have
    /// nothing to sync), for at most `timeout`; whether they all got there.
    pub(crate) async fn synced(&mut self, timeout: Duration) -> bool {
        let agents = self.agents;
        let all = self.synced.wait_for(|n| *n >= agents);
        matches!(tokio::time::timeout(timeout, all).await, Ok(Ok(_)))
    }

    /// Stops every agent and says what they did; an agent that panicked fails the run.
    pub(crate) async fn stop(mut self) -> Result<Outcome> {
        let _ = self.stop.send(true);
        let mut failed = None;
        while let Some(joined) = self.tasks.join_next().await {
            failed = failed.or(joined.err());
        }
        if let Some(e) = failed {
            return Err(LabError::task("an emulated agent")(e));
        }
        Ok(Outcome {
            requests: self.counters.requests.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
        })
    }
}

/// A plain kube client: the incident's agents had no budget. Lab-only.
async fn naive_client(kubeconfig: &Path, pattern: Pattern) -> Result<kube::Client> {
    let mut config = fleetwatch_control_plane::plane::kubeconfig::config_from(kubeconfig).await?;
    // Pattern names are plain tokens, so the header value is always valid.
    let agent = http::HeaderValue::from_str(&format!("fleetwatch-lab-{pattern}/0"))
        .map_err(|e| LabError::invalid("pattern", e.to_string()))?;
    config.headers.push((http::header::USER_AGENT, agent));
    #[allow(clippy::disallowed_methods)] // the incident's unbudgeted client, on purpose
    kube::Client::try_from(config).map_err(LabError::Api)
}

async fn budgeted(kubeconfig: &Path, pattern: Pattern) -> Result<Client> {
    let source = Source::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        context: None,
    };
    let settings = Settings::new(format!("lab-{pattern}"));
    // Each emulated agent stands for a process of its own in a real fleet, with its own hard
    // ceiling: sharing this process's would throttle thousands of agents to one's budget.
    let budget = Budget::separate_for_emulated_process(&settings)?;
    // Up to thousands of emulated agents connect per run: their "connected" lines are not
    // news (a failure still comes back as the error).
    Client::connect_with_budget(source, settings, &budget)
        .with_subscriber(tracing::subscriber::NoSubscriber::default())
        .await
        .map_err(LabError::Connect)
}

async fn naive_agent(
    client: kube::Client,
    node: Option<String>,
    offset: Duration,
    interval: Duration,
    life: Lifeline,
) {
    let params = match &node {
        Some(node) => ListParams::default().fields(&format!("spec.nodeName={node}")),
        None => ListParams::default(),
    };
    // The response is read whole but not decoded: the API server's cost is the same, and
    // decoding here would compete with it for the lab machine's cores.
    let Ok(request) = kube::core::Request::new("/api/v1/pods").list(&params) else {
        life.counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    life.synced();
    let start = tokio::time::Instant::now() + offset;
    let mut ticks = tokio::time::interval_at(start, interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = life.stopped() => return,
        }
        life.counters.requests.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            listed = client.request_text(request.clone()) => if listed.is_err() {
                life.counters.errors.fetch_add(1, Ordering::Relaxed);
            },
            () = life.stopped() => return,
        }
    }
}

/// The pod's node, the one field these agents use.
fn pod_node(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

async fn watching_agent(client: Client, node: Option<String>, life: Lifeline) {
    let watch = match node {
        Some(node) => Watch::<Pod>::all().fields(format!("spec.nodeName={node}")),
        None => Watch::<Pod>::all(),
    };
    let Ok(informer) = client.informer(watch, pod_node) else {
        life.counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tokio::select! {
        () = informer.ready() => life.synced(),
        () = life.stopped() => {}
    }
    life.stopped().await;
    let lists = informer.stats().lists;
    life.counters.requests.fetch_add(lists, Ordering::Relaxed);
}

/// The Lease's namespace in the lab.
const COLLECTOR_LEASE_NAMESPACE: &str = "default";

/// The collector as deployed (leader election on, every source), but serving on loopback and
/// scraping the lab's replicas by their loopback URLs.
fn collector_config(apiservers: &[String]) -> fleetwatch_collector::CollectorConfig {
    let mut config = fleetwatch_collector::CollectorConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    };
    config.apiserver.replicas = apiservers.to_vec();
    config.leader_election.namespace = Some(COLLECTOR_LEASE_NAMESPACE.to_owned());
    config.leader_election.identity = Some(Pattern::Fleetwatch.user());
    config
}

/// How often the lab asks the collector's `/readyz` whether it has synced.
const READY_POLL: Duration = Duration::from_millis(100);

/// fleetwatch's collector itself, until stopped: synced once its `/readyz` says its sources are
/// ready (objects listed, every replica scraped); its requests are what its client counted.
async fn collector(
    config: fleetwatch_collector::CollectorConfig,
    client: Client,
    listener: tokio::net::TcpListener,
    life: Lifeline,
) {
    let mut registry = prometheus_client::registry::Registry::default();
    client.register_metrics(&mut registry);
    let Ok(address) = listener.local_addr() else {
        life.counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let synced = async {
        while !ready(address).await {
            tokio::time::sleep(READY_POLL).await;
        }
        life.synced();
        std::future::pending::<()>().await
    };
    let run = fleetwatch_collector::run(config, client, listener, life.stopped());
    let ran = tokio::select! {
        ran = run => ran,
        () = synced => Ok(()),
    };
    if let Err(error) = ran {
        tracing::warn!(%error, "the collector failed");
        life.counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    match requests_counted(&registry) {
        Some(requests) => life
            .counters
            .requests
            .fetch_add(requests, Ordering::Relaxed),
        // Not a zero that reads as measured: the run fails as an agent error.
        None => life.counters.errors.fetch_add(1, Ordering::Relaxed),
    };
}

/// The sources whose readiness means the collector has synced: every object kind listed and
/// every API server replica scraped. (`/readyz` alone is ready before the collector leads: a
/// follower's page is complete without them.)
const SYNCED_SOURCES: [&str; 2] = ["[+]objects ok", "[+]apiserver ok"];

/// Whether `GET /readyz?verbose` at `address` answers 200 with [`SYNCED_SOURCES`] ready.
async fn ready(address: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /readyz?verbose HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = String::new();
        // A readiness report is a few lines; the bound keeps a confused server from growing it.
        stream.take(64 * 1024).read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), answer).await,
        Ok(Ok(answer)) if answer.starts_with("HTTP/1.1 200")
            && SYNCED_SOURCES.iter().all(|source| answer.contains(source))
    )
}

/// The sum of `fleetwatch_client_requests_total` in `registry`, if it encodes and parses.
fn requests_counted(registry: &prometheus_client::registry::Registry) -> Option<u64> {
    let mut page = String::new();
    prometheus_client::encoding::text::encode(&mut page, registry).ok()?;
    let lines = page.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).ok()?;
    let requests = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "fleetwatch_client_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v as u64,
            _ => 0,
        })
        .sum();
    Some(requests)
}

/// Creates and deletes pods at a steady rate in namespace `lab-churn` until stopped.
pub(crate) struct Churn {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
}

pub(crate) async fn churn(
    plane: &ControlPlane,
    nodes: usize,
    per_second: f64,
    duration: Duration,
) -> Result<Churn> {
    let stop = Arc::new(tokio::sync::Notify::new());
    if per_second <= 0.0 || nodes == 0 {
        return Ok(Churn { task: None, stop });
    }
    let admin = plane.admin_client().await?;
    let namespace = "lab-churn";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    create_if_missing(
        &namespaces,
        &fleetwatch_control_plane::populate::from_json(
            serde_json::json!({"metadata": {"name": namespace}}),
        )?,
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(admin, namespace);
    let period = Duration::from_secs_f64(1.0 / per_second);
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        let mut live = std::collections::VecDeque::new();
        let deadline = tokio::time::Instant::now() + duration;
        let run = id_suffix();
        for i in 0usize.. {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopped.notified() => break,
                () = tokio::time::sleep_until(deadline) => break,
            }
            let name = format!("churn-{run}-{i}");
            let pod = fleetwatch_control_plane::populate::from_json::<Pod>(standalone_pod(
                &name,
                i % nodes,
            ));
            if let Ok(pod) = pod
                && pods.create(&PostParams::default(), &pod).await.is_ok()
            {
                live.push_back(name);
            }
            // Keep about one second's worth alive: every create is matched by a delete.
            while live.len() as f64 > per_second.max(1.0) {
                if let Some(old) = live.pop_front() {
                    let _ = pods
                        .delete(&old, &DeleteParams::default().grace_period(0))
                        .await;
                }
            }
        }
        for name in live {
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
        }
    });
    Ok(Churn {
        task: Some(task),
        stop,
    })
}

impl Churn {
    /// Stops the churn; a churn task that panicked fails the run.
    pub(crate) async fn stop(self) -> Result<()> {
        self.stop.notify_one();
        match self.task {
            Some(task) => task.await.map_err(LabError::task("the pod churn")),
            None => Ok(()),
        }
    }
}

/// A short suffix that differs between runs, so churn pod names never collide.
fn id_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}")
}
