//! A fixture kubelet: `/metrics/resource` and `/stats/summary` over HTTPS with its own CA,
//! bearer tokens checked as the kubelet's webhook authentication and authorization would answer
//! (401 without or with an unknown token, 403 for [`FORBIDDEN_TOKEN`]), and a [`Mode`] per path
//! for the ways a real one fails. It counts requests per path and keeps what each one carried.
//!
//! Shared by `tests/kubelet.rs` and `examples/fixture_kubelet.rs` (the benchmark's kubelet),
//! each of which uses part of it.
//!
//! HTTP is written by hand, not through hyper's server: the failure modes need a body shorter
//! than its `Content-Length` and a connection closed mid-answer, which a server library exists
//! to prevent. Connections are kept alive, as the kubelet's are.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The token the fixture accepts from the start (written to `token` in its directory).
pub const TOKEN: &str = "fixture-token-0b1f9c";
/// A token that authenticates but is not authorized: 403.
pub const FORBIDDEN_TOKEN: &str = "forbidden-token-77aa";
pub const RESOURCE: &str = "/metrics/resource";
pub const SUMMARY: &str = "/stats/summary";
/// The node of the fixture files.
pub const NODE: &str = "node-7";
/// The size of a [`Mode::HugeDeclared`] or [`Mode::HugeChunked`] body.
pub const HUGE_BYTES: usize = 10 * 1024 * 1024;

/// How a path answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The fixture's body.
    Normal,
    /// A 200 whose body is not a metrics page or not a summary.
    Malformed,
    /// Half the body, with the whole body's `Content-Length`, then the connection closed.
    Truncated,
    /// [`HUGE_BYTES`], declared in `Content-Length`.
    HugeDeclared,
    /// [`HUGE_BYTES`], chunked: the size is known only by reading.
    HugeChunked,
    /// The fixture's body, after this pause.
    Slow(Duration),
    /// 401, echoing the token it was sent (as a careless proxy might).
    Unauthorized,
    /// 403, as the kubelet words it.
    Forbidden,
}

/// The two bodies served.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub node: String,
    pub resource: Arc<Vec<u8>>,
    pub summary: Arc<Vec<u8>>,
    /// Pods and containers in it, and pods with network stats (not on the host's network).
    pub pods: usize,
    pub containers: usize,
    pub networked: usize,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubelet")
}

impl Fixture {
    /// `tests/fixtures/kubelet/`: node `node-7`, 3 pods, 4 containers.
    pub fn files() -> Fixture {
        let read = |name: &str| {
            let path = fixture_dir().join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        Fixture {
            node: NODE.to_owned(),
            resource: Arc::new(read("metrics-resource.txt")),
            summary: Arc::new(read("stats-summary.json")),
            pods: 3,
            containers: 4,
            networked: 2,
        }
    }

    /// A node of `pods` pods, in the fixture files' form, the same every time.
    pub fn generated(pods: usize, node: &str) -> Fixture {
        let pods: Vec<Pod> = (0..pods).map(Pod::new).collect();
        Fixture {
            node: node.to_owned(),
            resource: Arc::new(resource_page(&pods).into_bytes()),
            summary: Arc::new(summary(&pods, node).into_bytes()),
            pods: pods.len(),
            containers: pods.iter().map(|p| p.containers.len()).sum(),
            networked: pods.iter().filter(|p| !p.host_network).count(),
        }
    }
}

/// A well-mixed 64-bit number from `seed` (splitmix64): the generator's only randomness.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `mix(seed)` in `low..high`.
fn between(seed: u64, low: u64, high: u64) -> u64 {
    low + mix(seed) % (high - low).max(1)
}

const NAMESPACES: [&str; 6] = [
    "kube-system",
    "default",
    "payments",
    "search",
    "checkout",
    "monitoring",
];
const APPS: [&str; 7] = [
    "api", "worker", "frontend", "cache", "indexer", "ledger", "exporter",
];
const CONTAINERS: [&str; 3] = ["app", "envoy", "log-shipper"];

/// One generated pod.
struct Pod {
    index: u64,
    name: String,
    namespace: &'static str,
    uid: String,
    containers: Vec<&'static str>,
    /// On the host's network: no network stats of its own.
    host_network: bool,
    pvc: bool,
}

impl Pod {
    fn new(index: usize) -> Pod {
        let i = index as u64;
        let app = APPS[index % APPS.len()];
        let r = mix(i);
        let name = format!("{app}-{}-{}", suffix(r, 10), suffix(mix(r), 5));
        let u = (mix(r ^ 1), mix(r ^ 2));
        let uid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            u.0 >> 32,
            (u.0 >> 16) & 0xffff,
            u.0 & 0xfff,
            0x8000 | (u.1 >> 48) & 0x3fff,
            u.1 & 0xffff_ffff_ffff
        );
        Pod {
            index: i,
            name,
            namespace: NAMESPACES[index % NAMESPACES.len()],
            uid,
            containers: CONTAINERS[..1 + index % CONTAINERS.len()].to_vec(),
            host_network: index % 25 == 7,
            pvc: index % 10 == 3,
        }
    }

    fn seed(&self, what: u64) -> u64 {
        mix(self.index.wrapping_mul(1000).wrapping_add(what))
    }
}

/// `len` characters of a ReplicaSet pod's name suffix.
fn suffix(mut r: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize];
            r /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it, which is how the
/// kubelet's page has them: shortest digits, exponent form from 1e+06 up and below 1e-04.
pub fn go_float(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let exponent = value.abs().log10().floor() as i32;
    if (-4..6).contains(&exponent) {
        return format!("{value}");
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// The scrape's time, in ms.
const NOW_MS: u64 = 1_786_528_800_000;
/// Some seconds before it: the node's boot.
const BOOT_S: u64 = 1_786_347_062;

/// A page being written in the kubelet's text form.
struct TextPage(String);

impl TextPage {
    fn family(&mut self, name: &str, stability: &str, help: &str, kind: &str) {
        self.0.push_str(&format!(
            "# HELP {name} [{stability}] {help}\n# TYPE {name} {kind}\n"
        ));
    }

    /// A sample; `labels` already written as `a="b",c="d"`.
    fn sample(&mut self, name: &str, labels: &str, value: f64, timestamp: Option<u64>) {
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let stamp = timestamp.map_or_else(String::new, |t| format!(" {t}"));
        self.0
            .push_str(&format!("{name}{braces} {}{stamp}\n", go_float(value)));
    }
}

/// A sample's time: the stats are a few seconds old, each cgroup's its own age.
fn stamp(seed: u64) -> Option<u64> {
    Some(NOW_MS - between(seed, 500, 15_000))
}

/// `/metrics/resource` for `pods`, families and samples sorted as the Go client sorts them.
fn resource_page(pods: &[Pod]) -> String {
    let mut containers: Vec<(&str, &Pod)> = pods
        .iter()
        .flat_map(|pod| pod.containers.iter().map(move |c| (*c, pod)))
        .collect();
    containers
        .sort_by(|a, b| (a.0, a.1.namespace, &a.1.name).cmp(&(b.0, b.1.namespace, &b.1.name)));
    let mut by_pod: Vec<&Pod> = pods.iter().collect();
    by_pod.sort_by(|a, b| (a.namespace, &a.name).cmp(&(b.namespace, &b.name)));
    let container = |c: &str, pod: &Pod| {
        format!(
            "container=\"{c}\",namespace=\"{}\",pod=\"{}\"",
            pod.namespace, pod.name
        )
    };
    let pod_labels = |pod: &Pod| format!("namespace=\"{}\",pod=\"{}\"", pod.namespace, pod.name);
    let mut page = TextPage(String::new());
    let name = "container_cpu_usage_seconds_total";
    page.family(
        name,
        "STABLE",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
    );
    for (c, pod) in &containers {
        let seed = pod.seed(c.len() as u64);
        let cpu = between(seed, 1_000, 9_000_000_000) as f64 / 1e6;
        page.sample(name, &container(c, pod), cpu, stamp(seed));
    }
    let name = "container_memory_working_set_bytes";
    page.family(
        name,
        "STABLE",
        "Current working set of the container in bytes",
        "gauge",
    );
    for (c, pod) in &containers {
        let seed = pod.seed(c.len() as u64);
        let bytes = between(seed ^ 2, 2_000, 250_000) * 4096;
        page.sample(name, &container(c, pod), bytes as f64, stamp(seed));
    }
    let name = "container_start_time_seconds";
    page.family(
        name,
        "STABLE",
        "Start time of the container since unix epoch in seconds",
        "gauge",
    );
    for (c, pod) in &containers {
        let seed = pod.seed(c.len() as u64);
        let start = BOOT_S + between(seed ^ 3, 40, 170_000);
        page.sample(name, &container(c, pod), start as f64, None);
    }
    let name = "container_swap_usage_bytes";
    page.family(
        name,
        "ALPHA",
        "Current amount of the container swap usage in bytes. Reported only on non-windows systems",
        "gauge",
    );
    for (c, pod) in &containers {
        let seed = pod.seed(c.len() as u64);
        page.sample(name, &container(c, pod), 0.0, stamp(seed));
    }
    let node = stamp(1);
    page.family(
        "node_cpu_usage_seconds_total",
        "STABLE",
        "Cumulative cpu time consumed by the node in core-seconds",
        "counter",
    );
    page.sample(
        "node_cpu_usage_seconds_total",
        "",
        27_430.156_113 + pods.len() as f64,
        node,
    );
    page.family(
        "node_memory_working_set_bytes",
        "STABLE",
        "Current working set of the node in bytes",
        "gauge",
    );
    page.sample(
        "node_memory_working_set_bytes",
        "",
        (900_000 + pods.len() as u64 * 9_000) as f64 * 4096.0,
        node,
    );
    page.family(
        "node_swap_usage_bytes",
        "ALPHA",
        "Current swap usage of the node in bytes. Reported only on non-windows systems",
        "gauge",
    );
    page.sample("node_swap_usage_bytes", "", 0.0, node);
    let name = "pod_cpu_usage_seconds_total";
    page.family(
        name,
        "STABLE",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
    );
    for pod in &by_pod {
        let seed = pod.seed(0);
        let cpu = between(seed, 1_000, 20_000_000_000) as f64 / 1e6;
        page.sample(name, &pod_labels(pod), cpu, stamp(seed));
    }
    let name = "pod_memory_working_set_bytes";
    page.family(
        name,
        "STABLE",
        "Current working set of the pod in bytes",
        "gauge",
    );
    for pod in &by_pod {
        let seed = pod.seed(0);
        let bytes = between(seed ^ 2, 3_000, 400_000) * 4096;
        page.sample(name, &pod_labels(pod), bytes as f64, stamp(seed));
    }
    let name = "pod_swap_usage_bytes";
    page.family(
        name,
        "ALPHA",
        "Current amount of the pod swap usage in bytes. Reported only on non-windows systems",
        "gauge",
    );
    for pod in &by_pod {
        page.sample(name, &pod_labels(pod), 0.0, stamp(pod.seed(0)));
    }
    page.family(
        "resource_scrape_error",
        "STABLE",
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    page.sample("resource_scrape_error", "", 0.0, None);
    page.0
}

/// An RFC 3339 time `ago` seconds before the scrape (2026-08-12T10:00:00Z; `ago` under ten
/// days).
fn time(ago: u64) -> String {
    let (now, then) = (NOW_MS / 1000, NOW_MS / 1000 - ago);
    let day = 12 - (now / 86_400 - then / 86_400);
    let seconds = then % 86_400;
    format!(
        "2026-08-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A filesystem's stats, the Summary API's `FsStats`.
fn fs_stats(at: &str, available: u64, capacity: u64, used: u64, inodes_used: u64) -> Value {
    json!({
        "time": at,
        "availableBytes": available,
        "capacityBytes": capacity,
        "usedBytes": used,
        "inodesFree": 6_553_600 - 178_688,
        "inodes": 6_553_600,
        "inodesUsed": inodes_used,
    })
}

const NODEFS_CAPACITY: u64 = 107_285_479_424;
const NODEFS_AVAILABLE: u64 = 77_601_386_496;

fn cpu(at: &str, seed: u64) -> Value {
    json!({
        "time": at,
        "usageNanoCores": between(seed, 100_000, 90_000_000),
        "usageCoreNanoSeconds": between(seed ^ 1, 1_000_000_000, 9_000_000_000_000),
    })
}

fn memory(at: &str, seed: u64) -> Value {
    let working_set = between(seed ^ 2, 2_000, 250_000) * 4096;
    json!({
        "time": at,
        "usageBytes": working_set + between(seed ^ 3, 0, 50_000) * 4096,
        "workingSetBytes": working_set,
        "rssBytes": working_set / 4 * 3,
        "pageFaults": between(seed ^ 4, 1_000, 5_000_000),
        "majorPageFaults": between(seed ^ 5, 0, 40),
    })
}

fn interface(name: &str, seed: u64) -> Value {
    json!({
        "name": name,
        "rxBytes": between(seed, 1_000_000, 90_000_000_000),
        "rxErrors": 0,
        "txBytes": between(seed ^ 1, 1_000_000, 90_000_000_000),
        "txErrors": 0,
    })
}

/// A pod's network: its default interface inline and in `interfaces`.
fn network(at: &str, seed: u64) -> Value {
    let eth0 = interface("eth0", seed);
    let mut network = json!({"time": at, "interfaces": [eth0.clone()]});
    if let (Some(network), Some(eth0)) = (network.as_object_mut(), eth0.as_object()) {
        network.extend(eth0.clone());
    }
    network
}

fn volume(name: &str, at: &str, capacity: u64, used: u64) -> Value {
    json!({
        "time": at,
        "availableBytes": capacity - used,
        "capacityBytes": capacity,
        "usedBytes": used,
        "inodesFree": 1_954_996,
        "inodes": 1_955_005,
        "inodesUsed": 9,
        "name": name,
    })
}

fn pod_stats(pod: &Pod) -> Value {
    let at = time(between(pod.seed(9), 1, 15));
    let started = time(between(pod.seed(8), 600, 170_000));
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            let seed = pod.seed(c.len() as u64);
            json!({
                "name": c,
                "startTime": started,
                "cpu": cpu(&at, seed),
                "memory": memory(&at, seed),
                "rootfs": fs_stats(&at, NODEFS_AVAILABLE, NODEFS_CAPACITY, between(seed ^ 6, 1, 64) * 8192, between(seed, 5, 40)),
                "logs": fs_stats(&at, NODEFS_AVAILABLE, NODEFS_CAPACITY, between(seed ^ 7, 1, 4000) * 4096, between(seed, 1, 4)),
                "swap": {"time": at, "swapAvailableBytes": 0, "swapUsageBytes": 0},
            })
        })
        .collect();
    let mut volumes = vec![volume(
        &format!("kube-api-access-{}", suffix(pod.seed(10), 5)),
        &at,
        8_007_680,
        12_288,
    )];
    if pod.index.is_multiple_of(2) {
        volumes.push(volume("config", &at, 8_007_680, 4096));
    }
    if pod.pvc {
        let mut data = volume(
            "data",
            &at,
            52_589_998_080,
            between(pod.seed(11), 1, 12_000_000) * 4096,
        );
        if let Some(data) = data.as_object_mut() {
            data.insert(
                "pvcRef".to_owned(),
                json!({"name": format!("data-{}", pod.name), "namespace": pod.namespace}),
            );
        }
        volumes.push(data);
    }
    let mut stats = json!({
        "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "startTime": started,
        "containers": containers,
        "cpu": cpu(&at, pod.seed(0)),
        "memory": memory(&at, pod.seed(0)),
        "volume": volumes,
        "ephemeral-storage": fs_stats(&at, NODEFS_AVAILABLE, NODEFS_CAPACITY, between(pod.seed(12), 1, 5000) * 4096, between(pod.seed(12), 10, 90)),
        "process_stats": {"process_count": pod.containers.len()},
        "swap": {"time": at, "swapUsageBytes": 0},
    });
    if !pod.host_network
        && let Some(stats) = stats.as_object_mut()
    {
        stats.insert("network".to_owned(), network(&at, pod.seed(13)));
    }
    stats
}

/// `/stats/summary` for `pods` on `node`, in the kubelet's JSON (indented one space).
fn summary(pods: &[Pod], node: &str) -> String {
    let at = time(3);
    let system = |name: &str, seed: u64| json!({"name": name, "startTime": time(170_000), "cpu": cpu(&at, seed), "memory": memory(&at, seed)});
    let imagefs = fs_stats(
        &at,
        NODEFS_AVAILABLE,
        NODEFS_CAPACITY,
        4_771_913_728,
        71_932,
    );
    let summary = json!({
        "node": {
            "nodeName": node,
            "systemContainers": [system("kubelet", 1), system("runtime", 2), system("pods", 3)],
            "startTime": time(181_738),
            "cpu": cpu(&at, 4),
            "memory": memory(&at, 5),
            "network": {
                "time": at,
                "name": "ens5",
                "rxBytes": 61_844_137_912_u64,
                "rxErrors": 0,
                "txBytes": 23_111_905_268_u64,
                "txErrors": 0,
                "interfaces": [interface("ens5", 6), interface("cni0", 7)],
            },
            "fs": fs_stats(&at, NODEFS_AVAILABLE, NODEFS_CAPACITY, 23_484_452_864, 178_688),
            "runtime": {"imageFs": imagefs, "containerFs": imagefs},
            "rlimit": {"time": at, "maxpid": 4_194_304, "curproc": 200 + 4 * pods.len()},
            "swap": {"time": at, "swapAvailableBytes": 0, "swapUsageBytes": 0},
        },
        "pods": pods.iter().map(pod_stats).collect::<Vec<_>>(),
    });
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&summary, &mut serializer).expect("JSON");
    String::from_utf8(out).expect("UTF-8")
}

/// What one request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The bearer token, if the request had one.
    pub token: Option<String>,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
}

#[derive(Debug)]
struct State {
    fixture: Fixture,
    /// `RESOURCE`'s and `SUMMARY`'s.
    modes: Mutex<[Mode; 2]>,
    accepted: Mutex<Vec<String>>,
    requests: [AtomicU64; 2],
    other_requests: AtomicU64,
    /// TLS connections accepted.
    connections: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

fn index(path: &str) -> Option<usize> {
    match path {
        RESOURCE => Some(0),
        SUMMARY => Some(1),
        _ => None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fixture kubelet. Dropping it stops it.
#[derive(Debug)]
pub struct FixtureKubelet {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub address: SocketAddr,
    /// Its CA (PEM), which signed its serving certificate.
    pub ca_file: PathBuf,
    /// A file holding [`TOKEN`].
    pub token_file: PathBuf,
    /// Where those files are.
    pub dir: PathBuf,
    state: Arc<State>,
    _temp: Option<tempfile::TempDir>,
    task: JoinHandle<()>,
}

impl Drop for FixtureKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FixtureKubelet {
    /// Serves `fixture` on a loopback port, its files in a temporary directory.
    pub async fn start(fixture: Fixture) -> FixtureKubelet {
        let temp = tempfile::tempdir().expect("tempdir");
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut kubelet = FixtureKubelet::start_in(fixture, listen, temp.path())
            .await
            .expect("the fixture kubelet");
        kubelet._temp = Some(temp);
        kubelet
    }

    /// Serves `fixture` on `listen`, writing `ca.crt` and `token` into `dir`.
    pub async fn start_in(
        fixture: Fixture,
        listen: SocketAddr,
        dir: &Path,
    ) -> std::io::Result<FixtureKubelet> {
        let (ca_pem, server) = certificates(listen);
        let ca_file = dir.join("ca.crt");
        let token_file = dir.join("token");
        std::fs::write(&ca_file, ca_pem)?;
        std::fs::write(&token_file, format!("{TOKEN}\n"))?;
        let listener = TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let state = Arc::new(State {
            fixture,
            modes: Mutex::new([Mode::Normal; 2]),
            accepted: Mutex::new(vec![TOKEN.to_owned()]),
            requests: [AtomicU64::new(0), AtomicU64::new(0)],
            other_requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let task = tokio::spawn(accept(listener, acceptor, state.clone()));
        let host = match address.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        Ok(FixtureKubelet {
            url: format!("https://{host}:{}", address.port()),
            address,
            ca_file,
            token_file,
            dir: dir.to_owned(),
            state,
            _temp: None,
            task,
        })
    }

    /// How `path` answers from now on.
    pub fn set_mode(&self, path: &str, mode: Mode) {
        let i = index(path).expect("RESOURCE or SUMMARY");
        lock(&self.state.modes)[i] = mode;
    }

    /// Accepts `token` too.
    pub fn accept_token(&self, token: &str) {
        lock(&self.state.accepted).push(token.to_owned());
    }

    /// Requests of `path` so far (of any other path for any other string).
    pub fn requests(&self, path: &str) -> u64 {
        match index(path) {
            Some(i) => self.state.requests[i].load(Ordering::SeqCst),
            None => self.state.other_requests.load(Ordering::SeqCst),
        }
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// The bodies served.
    pub fn fixture(&self) -> &Fixture {
        &self.state.fixture
    }
}

/// A CA of its own, for the test of a kubelet whose CA is not the configured one.
pub fn other_ca(dir: &Path) -> PathBuf {
    let (ca, _) = certificates(SocketAddr::from(([127, 0, 0, 1], 0)));
    let path = dir.join("other-ca.crt");
    std::fs::write(&path, ca).expect("write");
    path
}

/// A new CA's PEM, and a server configuration with a certificate it signed for `listen`'s
/// address, loopback and `localhost`.
fn certificates(listen: SocketAddr) -> (String, rustls::ServerConfig) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, "fixture-kubelet-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut serving = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    serving
        .distinguished_name
        .push(DnType::CommonName, "node-7@1786347101");
    for ip in [
        listen.ip(),
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ] {
        if !ip.is_unspecified() {
            serving.subject_alt_names.push(SanType::IpAddress(ip));
        }
    }
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("key");
    let cert = serving.signed_by(&key, &issuer).expect("serving cert");
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    (ca_pem, server)
}

async fn accept(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            // A client that does not trust the CA ends the handshake: nothing to serve.
            if let Ok(stream) = acceptor.accept(stream).await {
                state.connections.fetch_add(1, Ordering::SeqCst);
                serve(stream, &state).await;
            }
        });
    }
}

/// A request's line and headers.
struct Head {
    method: String,
    path: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves requests on one connection until either side closes it.
async fn serve<S>(stream: S, state: &State)
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    while let Some(head) = read_head(&mut read).await {
        let keep_alive = answer(&mut write, &head, state).await.unwrap_or(false);
        if !keep_alive {
            let _ = write.shutdown().await;
            return;
        }
    }
}

/// The next request's head; `None` at the end of the connection or for a head too large.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> Option<Head> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = read.read_line(&mut line).await.ok()?;
        total += n;
        if n == 0 || total > 64 * 1024 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        lines.push(line.to_owned());
    }
    let mut request = lines.first()?.split(' ');
    let (method, path) = (request.next()?.to_owned(), request.next()?.to_owned());
    let headers = lines[1..]
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Head {
        method,
        path,
        headers,
    })
}

/// Answers one request; whether the connection stays open.
async fn answer<W: AsyncWrite + Unpin>(
    write: &mut W,
    head: &Head,
    state: &State,
) -> std::io::Result<bool> {
    let token = head
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    lock(&state.seen).push(Seen {
        method: head.method.clone(),
        path: head.path.clone(),
        token: token.clone(),
        user_agent: head.header("user-agent").map(str::to_owned),
        accept: head.header("accept").map(str::to_owned),
    });
    let Some(i) = index(&head.path) else {
        state.other_requests.fetch_add(1, Ordering::SeqCst);
        return respond(
            write,
            "404 Not Found",
            "text/plain",
            b"404 page not found\n",
        )
        .await;
    };
    state.requests[i].fetch_add(1, Ordering::SeqCst);
    if head.method != "GET" {
        return respond(write, "405 Method Not Allowed", "text/plain", b"").await;
    }
    let subresource = if i == 0 { "metrics" } else { "stats" };
    let forbidden = format!(
        "Forbidden (user=system:serviceaccount:monitoring:fleetwatch-agent, verb=get, \
         resource=nodes, subresource={subresource})"
    );
    let mode = lock(&state.modes)[i];
    let accepted = token
        .as_ref()
        .is_some_and(|t| lock(&state.accepted).contains(t));
    match (mode, token.as_deref()) {
        (Mode::Unauthorized, _) | (_, None) => {
            let body = format!(
                "Unauthorized (bearer token {:?})",
                token.unwrap_or_default()
            );
            return respond(write, "401 Unauthorized", "text/plain", body.as_bytes()).await;
        }
        (Mode::Forbidden, _) | (_, Some(FORBIDDEN_TOKEN)) => {
            return respond(write, "403 Forbidden", "text/plain", forbidden.as_bytes()).await;
        }
        _ if !accepted => {
            return respond(write, "401 Unauthorized", "text/plain", b"Unauthorized").await;
        }
        _ => {}
    }
    let (content_type, body) = if i == 0 {
        (
            "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
            &state.fixture.resource,
        )
    } else {
        ("application/json", &state.fixture.summary)
    };
    match mode {
        Mode::Normal | Mode::Unauthorized | Mode::Forbidden => {
            respond(write, "200 OK", content_type, body).await
        }
        Mode::Slow(pause) => {
            tokio::time::sleep(pause).await;
            respond(write, "200 OK", content_type, body).await
        }
        Mode::Malformed => {
            let body: &[u8] = if i == 0 {
                b"# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total{ 12\n<html>not a page</html>\n"
            } else {
                b"{\"node\": {\"nodeName\": \"node-7\", \"fs\": <html>"
            };
            respond(write, "200 OK", content_type, body).await
        }
        Mode::Truncated => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            write.write_all(head.as_bytes()).await?;
            write.write_all(&body[..body.len() / 2]).await?;
            write.flush().await?;
            Ok(false)
        }
        Mode::HugeDeclared => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {HUGE_BYTES}\r\n\r\n"
            );
            write.write_all(head.as_bytes()).await?;
            let chunk = padding();
            for _ in 0..HUGE_BYTES / chunk.len() {
                write.write_all(&chunk).await?;
            }
            write.flush().await?;
            Ok(true)
        }
        Mode::HugeChunked => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            write.write_all(head.as_bytes()).await?;
            let chunk = padding();
            for _ in 0..HUGE_BYTES / chunk.len() {
                write
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                write.write_all(&chunk).await?;
                write.write_all(b"\r\n").await?;
            }
            write.write_all(b"0\r\n\r\n").await?;
            write.flush().await?;
            Ok(true)
        }
    }
}

/// 64 KiB of comment lines.
fn padding() -> Vec<u8> {
    b"# padding padding padding padding padding padding padding padding\n"
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024)
        .collect()
}

async fn respond<W: AsyncWrite + Unpin>(
    write: &mut W,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<bool> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    write.write_all(body).await?;
    write.flush().await?;
    Ok(true)
}
