//! The collector beside kube-state-metrics v2.20.0 on one lab, side by side in one run: both
//! started at the same moment against the same objects and the same pod churn, each with a user
//! and a FlowSchema of its own so that the API server counts what each asks of it.
//!
//! `cargo bench -p fleetwatch --bench versus_ksm` (or `bench/collector_vs_ksm.sh`, which runs
//! it at two sizes). Settings from the environment: `NODES` (2000), `PODS_PER_NODE` (30),
//! `MINUTES` of steady state (10), `STARTUP_SECONDS` (120: the window whose peak RSS is the
//! start-up peak; steady state starts after it), `SCRAPE_SECONDS` (30). Needs the control-plane
//! binaries and kube-state-metrics in the cache (`fleetwatch lab build`). Prints a Markdown table.
//!
//! Measured per process: peak RSS in the start-up window, median and largest RSS in steady
//! state (sampled every 250 ms, scrapes included: Prometheus scrapes both), CPU over steady
//! state, requests the API server dispatched for its user and their APF execution seconds, and
//! `GET /metrics` (uncompressed) time to the last byte, every `SCRAPE_SECONDS`.

// Identities, FlowSchemas, churn and the API server's counters go through the lab's admin client
// (`kube::Client`), only ever against the loopback lab this benchmark starts.
#![allow(clippy::disallowed_types)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetwatch_collector::access;
use fleetwatch_control_plane::{ControlPlane, Tool, binaries, populate};
use fleetwatch_load_lab::measure::{self, percentile};
use fleetwatch_telemetry::text;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const FLEETWATCH: &str = env!("CARGO_BIN_EXE_fleetwatch");
const USERS: [&str; 2] = ["bench-fleetwatch", "bench-kube-state-metrics"];
const CHURN_NAMESPACE: &str = "default";
/// Pods created (and as many deleted) per second.
const CHURN_PER_SECOND: u64 = 5;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number"))
    })
}

#[tokio::main]
async fn main() {
    let nodes = setting("NODES", 2000);
    let pods_per_node = setting("PODS_PER_NODE", 30);
    let minutes = setting("MINUTES", 10);
    let startup = Duration::from_secs(setting("STARTUP_SECONDS", 120));
    let scrape_every = Duration::from_secs(setting("SCRAPE_SECONDS", 30));
    let dir = tempfile::tempdir().expect("a lab directory");
    let lab = dir.path().join("lab");
    eprintln!("== lab up: {nodes} nodes × {pods_per_node} pods");
    run(Command::new(FLEETWATCH)
        .args(["lab", "up", "--dir"])
        .arg(&lab)
        .args([
            "--nodes",
            &nodes.to_string(),
            "--pods-per-node",
            &pods_per_node.to_string(),
        ]));
    let _down = LabDown(lab.clone());
    let plane = ControlPlane::attach(&lab).expect("the lab just started");
    let admin = plane.admin_client().await.expect("the lab's admin client");
    setup_identities(&admin).await;
    let kubeconfigs = USERS.map(|u| plane.kubeconfig_for(u, &[]).expect("a user kubeconfig"));
    let churning = Arc::new(AtomicBool::new(true));
    let churn = tokio::spawn(churn(admin.clone(), nodes as usize, churning.clone()));
    let before = flow_counters(&admin).await;

    let cache = binaries::cache_dir();
    let ksm_binary = Tool::KubeStateMetrics.in_cache(&cache);
    assert!(
        ksm_binary.exists(),
        "{} is missing: run `fleetwatch lab build`",
        ksm_binary.display()
    );
    let [ours_port, ksm_port, ksm_telemetry] = [free_port(), free_port(), free_port()];
    let config = dir.path().join("collector.yaml");
    std::fs::write(&config, format!("listen: 127.0.0.1:{ours_port}\n")).expect("config");
    eprintln!("== starting both");
    let processes = [
        spawn(
            Command::new(FLEETWATCH)
                .args(["collector", "--kubeconfig"])
                .arg(&kubeconfigs[0])
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn"),
            &dir.path().join("fleetwatch.log"),
        ),
        spawn(
            Command::new(&ksm_binary)
                .arg(format!("--kubeconfig={}", kubeconfigs[1].display()))
                .args(["--host=127.0.0.1", "--telemetry-host=127.0.0.1"])
                .arg(format!("--port={ksm_port}"))
                .arg(format!("--telemetry-port={ksm_telemetry}"))
                .arg("--resources=nodes,pods,namespaces,daemonsets,deployments"),
            &dir.path().join("kube-state-metrics.log"),
        ),
    ];
    let started = Instant::now();
    let pids = processes.each_ref().map(|p| p.0.id());
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (samples, sampling) = (samples.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let at = started.elapsed();
                // A process that exited is reported by the main loop; its last samples stand.
                if let [Some(ours), Some(theirs)] = pids.map(read_proc) {
                    let reading = [ours, theirs];
                    samples
                        .lock()
                        .expect("samples")
                        .push(Sample { at, reading });
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let steady_end = startup + Duration::from_secs(60 * minutes);
    let mut renders: [Vec<(Duration, usize)>; 2] = [Vec::new(), Vec::new()];
    let mut next_scrape = Duration::from_secs(10);
    let mut at_steady = None;
    while started.elapsed() < steady_end {
        for (i, (_, log)) in processes.iter().enumerate() {
            let alive = Path::new(&format!("/proc/{}", pids[i])).exists();
            assert!(alive, "{} exited: see {}", USERS[i], log.display());
        }
        if at_steady.is_none() && started.elapsed() >= startup {
            at_steady = Some(flow_counters(&admin).await);
        }
        if started.elapsed() >= next_scrape {
            for (i, port) in [ours_port, ksm_port].into_iter().enumerate() {
                let timed = tokio::task::spawn_blocking(move || timed_get(port))
                    .await
                    .expect("join");
                if let Some(timed) = timed {
                    renders[i].push(timed);
                }
            }
            eprintln!(
                "   {:>4.0} s: rendered {:?}",
                started.elapsed().as_secs_f64(),
                renders
                    .each_ref()
                    .map(|r| r.last().map(|(d, n)| (d.as_millis(), n >> 20)))
            );
            next_scrape += scrape_every;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = flow_counters(&admin).await;
    let at_steady = at_steady.expect("steady state was reached");
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    churning.store(false, Ordering::Relaxed);
    let _ = churn.await;
    for (mut child, _) in processes {
        let _ = child.kill();
        let _ = child.wait();
    }

    let samples = samples.lock().expect("samples");
    println!(
        "\n{nodes} nodes × {pods_per_node} pods, {CHURN_PER_SECOND} pods/s churn; start-up window {} s, steady state {minutes} min\n",
        startup.as_secs()
    );
    println!(
        "| | start-up peak RSS MiB | steady RSS MiB (median / max) | CPU in steady state (% of a core) | API requests: start-up / steady | APF execution s: start-up / steady | /metrics p50 / p99 ms (n) | page MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, user) in USERS.iter().enumerate() {
        let of = |s: &Sample| s.reading[i];
        let in_startup: Vec<Reading> = samples.iter().filter(|s| s.at < startup).map(of).collect();
        let steady: Vec<Reading> = samples.iter().filter(|s| s.at >= startup).map(of).collect();
        let peak = in_startup.iter().map(|r| r.rss).max().unwrap_or(0);
        let mut rss: Vec<u64> = steady.iter().map(|r| r.rss).collect();
        rss.sort_unstable();
        let cpu = steady.last().map_or(0.0, |l| l.cpu_seconds) - steady[0].cpu_seconds;
        let seconds = (steady_end - startup).as_secs_f64();
        let mut times: Vec<f64> = renders[i]
            .iter()
            .filter(|(_, bytes)| *bytes > 0)
            .map(|(d, _)| d.as_secs_f64() * 1e3)
            .collect();
        times.sort_by(f64::total_cmp);
        let page = renders[i].last().map_or(0, |(_, n)| *n);
        let (first, steady) = (
            at_steady.minus(&before, user),
            after.minus(&at_steady, user),
        );
        println!(
            "| {user} | {} | {} / {} | {:.2} | {:.0} / {:.0} | {:.2} / {:.2} | {:.0} / {:.0} ({}) | {:.1} |",
            peak >> 20,
            rss[rss.len() / 2] >> 20,
            rss.last().copied().unwrap_or(0) >> 20,
            100.0 * cpu / seconds,
            first.0,
            steady.0,
            first.1,
            steady.1,
            percentile(&times, 0.5).unwrap_or(f64::NAN),
            percentile(&times, 0.99).unwrap_or(f64::NAN),
            times.len(),
            page as f64 / f64::from(1 << 20),
        );
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    rss: u64,
    cpu_seconds: f64,
}

#[derive(Debug)]
struct Sample {
    at: Duration,
    reading: [Reading; 2],
}

/// RSS and CPU seconds (user + system) of `pid`; `None` once it has exited.
fn read_proc(pid: u32) -> Option<Reading> {
    Some(Reading {
        rss: measure::rss_bytes(pid).ok()?,
        cpu_seconds: measure::cpu_seconds(pid).ok()?,
    })
}

/// `GET /metrics` without compression: time to the last byte and the body's size.
fn timed_get(port: u16) -> Option<(Duration, usize)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let elapsed = started.elapsed();
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    // `HTTP/1.0 200` or `HTTP/1.1 200`: servers answer an HTTP/1.0 request either way.
    (response.starts_with(b"HTTP/1.") && response.get(8..13) == Some(b" 200 ")).then_some(())?;
    Some((elapsed, response.len() - head_end - 4))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn spawn(command: &mut Command, log: &Path) -> (Child, PathBuf) {
    let out = std::fs::File::create(log).expect("a log file");
    let err = out.try_clone().expect("a log file");
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("starting a process");
    (child, log.to_owned())
}

fn run(command: &mut Command) {
    let status = command.status().expect("running fleetwatch");
    assert!(status.success(), "{command:?} failed: {status}");
}

/// Stops the lab when the benchmark ends, however it ends.
struct LabDown(PathBuf);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = Command::new(FLEETWATCH)
            .args(["lab", "down", "--dir"])
            .arg(&self.0)
            .status();
    }
}

/// Read access for both users to what they watch, leases for the collector's election, and a
/// FlowSchema each (to the default `workload-low` level) so the API server counts them apart.
async fn setup_identities(admin: &kube::Client) {
    use k8s_openapi::api::flowcontrol::v1::FlowSchema;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let post = PostParams::default();
    // The collector's own rules (kube-state-metrics needs a subset), its Lease's cluster-wide
    // here for brevity.
    let rules: Vec<_> = [access::cluster_rules(), access::lease_rules()]
        .into_iter()
        .flat_map(|rules| rules.as_array().cloned().unwrap_or_default())
        .collect();
    let role: ClusterRole = populate::from_json(json!({
        "metadata": {"name": "bench-reader"},
        "rules": rules,
    }))
    .expect("role");
    Api::<ClusterRole>::all(admin.clone())
        .create(&post, &role)
        .await
        .expect("creating the role");
    let subjects: Vec<_> = USERS
        .iter()
        .map(|u| json!({"kind": "User", "name": u, "apiGroup": "rbac.authorization.k8s.io"}))
        .collect();
    let binding: ClusterRoleBinding = populate::from_json(json!({
        "metadata": {"name": "bench-reader"},
        "roleRef": {"kind": "ClusterRole", "name": "bench-reader", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": subjects,
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&post, &binding)
        .await
        .expect("creating the binding");
    for user in USERS {
        let schema: FlowSchema = populate::from_json(json!({
            "metadata": {"name": user},
            "spec": {
                "priorityLevelConfiguration": {"name": "workload-low"},
                "matchingPrecedence": 500,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{
                    "subjects": [{"kind": "User", "user": {"name": user}}],
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                       "clusterScope": true, "namespaces": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }],
            },
        }))
        .expect("flow schema");
        Api::<FlowSchema>::all(admin.clone())
            .create(&post, &schema)
            .await
            .expect("creating a FlowSchema");
    }
}

/// Requests dispatched and their APF execution seconds, per user's FlowSchema.
struct FlowCounters(Vec<(String, (f64, f64))>);

impl FlowCounters {
    fn get(&self, user: &str) -> (f64, f64) {
        self.0
            .iter()
            .find(|(u, _)| u == user)
            .map_or((0.0, 0.0), |(_, c)| *c)
    }

    /// What `user`'s counters grew by since `earlier`.
    fn minus(&self, earlier: &FlowCounters, user: &str) -> (f64, f64) {
        let (now, then) = (self.get(user), earlier.get(user));
        (now.0 - then.0, now.1 - then.1)
    }
}

async fn flow_counters(admin: &kube::Client) -> FlowCounters {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("a request");
    let page = admin
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let parsed = text::parse(&page);
    let sum = |name: &str, user: &str| -> f64 {
        parsed
            .samples()
            .filter(|s| s.name == name && s.label("flow_schema") == Some(user))
            .map(|s| s.value)
            .sum()
    };
    FlowCounters(
        USERS
            .iter()
            .map(|u| {
                (
                    u.to_string(),
                    (
                        sum("apiserver_flowcontrol_dispatched_requests_total", u),
                        sum("apiserver_flowcontrol_request_execution_seconds_sum", u),
                    ),
                )
            })
            .collect(),
    )
}

/// Creates a pod and deletes the one created ten seconds before, `CHURN_PER_SECOND` times a
/// second, until `churning` turns false; then deletes what is left.
async fn churn(admin: kube::Client, nodes: usize, churning: Arc<AtomicBool>) {
    let pods: Api<Pod> = Api::namespaced(admin, CHURN_NAMESPACE);
    let keep = (CHURN_PER_SECOND * 10) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / CHURN_PER_SECOND));
    let name = |i: usize| format!("bench-churn-{i:06}");
    let mut i = 0;
    while churning.load(Ordering::Relaxed) {
        tick.tick().await;
        let pod: Pod =
            populate::from_json(populate::standalone_pod(&name(i), i % nodes)).expect("a pod");
        if let Err(error) = pods.create(&PostParams::default(), &pod).await {
            eprintln!("churn: creating {}: {error}", name(i));
        }
        if i >= keep {
            let _ = pods.delete(&name(i - keep), &DeleteParams::default()).await;
        }
        i += 1;
    }
    for j in i.saturating_sub(keep)..i {
        let _ = pods.delete(&name(j), &DeleteParams::default()).await;
    }
}
