//! The object-state families against the real kube-state-metrics v2.20.0, on the shared real
//! control plane: the same objects, read by both, must give the same HELP and TYPE lines and
//! the same set of (labels, value) in every family of [`CLAIMED`].
//!
//! kube-state-metrics is built from Go modules into the cache like the control plane
//! (`fleetwatch_control_plane::Tool::KubeStateMetrics`); a failed build fails the test.
//! Objects are created with the lab's admin client, and statuses written through the status
//! subresource where no controller would fill them (there are no kubelets and no scheduler).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetwatch_client::{Client, Settings, Source};
use fleetwatch_collector::objects::{CLAIMED, ObjectState};
use fleetwatch_control_plane::{ControlPlane, PopulateSpec, Tool, binaries, populate, testing};
use fleetwatch_telemetry::exposition::Format;
use fleetwatch_telemetry::page::{self, Section};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NAMESPACE: &str = "ksm-compat";
const TERMINATING: &str = "ksm-compat-terminating";
const EDGE_NODE: &str = "ksm-node-edge";
/// Families kube-state-metrics leaves without series by default (no label allow-list).
const EMPTY_BY_DEFAULT: [&str; 3] = [
    "kube_node_labels",
    "kube_pod_labels",
    "kube_namespace_labels",
];
/// How long both sides get to agree: controllers keep changing statuses for a while.
const CONVERGE: Duration = Duration::from_secs(90);

/// A series' labels, sorted by name.
type Labels = Vec<(String, String)>;
/// A family's series: labels → value.
type Series = BTreeMap<Labels, f64>;

/// One page: HELP and TYPE by family, and every family's series.
#[derive(Debug, Default)]
struct Page {
    help: BTreeMap<String, String>,
    kind: BTreeMap<String, String>,
    series: BTreeMap<String, Series>,
}

impl Page {
    /// Parses a Prometheus text page strictly: every line is a HELP, TYPE, other comment or a
    /// sample with its label values unescaped. (`prometheus-parse` silently drops a label whose
    /// value holds `,` or `=` and keeps escapes as they are, which could hide a difference.)
    fn parse(text: &str) -> Page {
        let mut page = Page::default();
        for (number, line) in text.lines().enumerate() {
            let fail = |why: &str| -> ! { panic!("line {}: {why}: {line:?}", number + 1) };
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                let (keyword, name, rest) = (words.next(), words.next(), words.next());
                let map = match keyword {
                    Some("HELP") => &mut page.help,
                    Some("TYPE") => &mut page.kind,
                    _ => continue,
                };
                let name = name.unwrap_or_else(|| fail("a metadata line without a name"));
                map.insert(name.to_owned(), rest.unwrap_or_default().to_owned());
                continue;
            }
            let SampleLine { name, labels, rest } =
                split_sample(line).unwrap_or_else(|why| fail(why));
            let value = rest.split(' ').next().unwrap_or_default();
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                v => v.parse().unwrap_or_else(|_| fail("not a sample value")),
            };
            let previous = page
                .series
                .entry(name.to_owned())
                .or_default()
                .insert(labels, value);
            if previous.is_some() {
                fail("the same series twice on a page");
            }
        }
        page
    }

    /// Only the series of this test's objects: those in its namespaces, and (for series
    /// without a namespace) of its nodes.
    fn of_test_objects(&self, family: &str, nodes: &BTreeSet<String>) -> Series {
        let label = |labels: &[(String, String)], name: &str| {
            labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        self.series
            .get(family)
            .into_iter()
            .flatten()
            .filter(|(labels, _)| match label(labels, "namespace") {
                Some(namespace) => namespace == NAMESPACE || namespace == TERMINATING,
                None => label(labels, "node").is_some_and(|n| nodes.contains(&n)),
            })
            .map(|(labels, value)| (labels.clone(), *value))
            .collect()
    }
}

/// A sample line's parts.
struct SampleLine<'a> {
    name: &'a str,
    /// Unescaped.
    labels: Labels,
    /// The value and what may follow it.
    rest: &'a str,
}

/// Splits a sample line.
fn split_sample(line: &str) -> Result<SampleLine<'_>, &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("an unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return Err("an unknown escape"),
                    },
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(key.to_owned(), value).is_some() {
                return Err("a label twice");
            }
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    Ok(SampleLine {
        name,
        labels: labels.into_iter().collect(),
        rest: rest.trim_start(),
    })
}

/// Differences between kube-state-metrics' page and ours, per claimed family, for the test's
/// objects; and the number of series compared.
fn differences(ksm: &Page, ours: &Page, nodes: &BTreeSet<String>) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut compared = 0;
    for family in CLAIMED {
        for (what, theirs, mine) in [
            ("HELP", ksm.help.get(*family), ours.help.get(*family)),
            ("TYPE", ksm.kind.get(*family), ours.kind.get(*family)),
        ] {
            if theirs != mine {
                problems.push(format!(
                    "{family}: {what} differs\n  kube-state-metrics: {theirs:?}\n  fleetwatch:         {mine:?}"
                ));
            }
        }
        let theirs = ksm.of_test_objects(family, nodes);
        let mine = ours.of_test_objects(family, nodes);
        if theirs.is_empty() && !EMPTY_BY_DEFAULT.contains(family) {
            problems.push(format!(
                "{family}: kube-state-metrics has no series of the test's objects yet"
            ));
        }
        compared += theirs.len();
        let show = |labels: &[(String, String)], value: f64| {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{{{}}} {value}", labels.join(","))
        };
        let mut lines = Vec::new();
        for (labels, value) in &theirs {
            match mine.get(labels) {
                Some(v) if v.to_bits() == value.to_bits() => {}
                Some(v) => lines.push(format!(
                    "  value differs {}: kube-state-metrics {value}, fleetwatch {v}",
                    show(labels, *value)
                )),
                None => lines.push(format!(
                    "  only kube-state-metrics: {}",
                    show(labels, *value)
                )),
            }
        }
        for (labels, value) in &mine {
            if !theirs.contains_key(labels) {
                lines.push(format!(
                    "  only fleetwatch:         {}",
                    show(labels, *value)
                ));
            }
        }
        if !lines.is_empty() {
            problems.push(format!("{family}:\n{}", lines.join("\n")));
        }
    }
    (problems, compared)
}

/// What the controllers have yet to do before the comparison covers everything the test set
/// up: the DaemonSet's pods made and counted, the Deployments observed, the held namespace
/// terminating with its conditions.
fn unsettled(ksm: &Page) -> Vec<String> {
    let series = |family: &str, want: &[(&str, &str)]| -> Vec<f64> {
        ksm.series
            .get(family)
            .into_iter()
            .flatten()
            .filter(|(labels, _)| {
                want.iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, value)| *value)
            .collect()
    };
    let ns = ("namespace", NAMESPACE);
    let checks = [
        (
            "the DaemonSet's two pods",
            series("kube_pod_owner", &[ns, ("owner_kind", "DaemonSet")]).len() == 2,
        ),
        (
            "the DaemonSet's desired count",
            series("kube_daemonset_status_desired_number_scheduled", &[ns]) == [2.0],
        ),
        (
            "both Deployments observed",
            series("kube_deployment_status_observed_generation", &[ns]) == [1.0, 1.0],
        ),
        (
            "the held namespace terminating",
            series(
                "kube_namespace_status_phase",
                &[("namespace", TERMINATING), ("phase", "Terminating")],
            ) == [1.0]
                && !series(
                    "kube_namespace_status_condition",
                    &[("namespace", TERMINATING)],
                )
                .is_empty(),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, done)| !done)
        .map(|(what, _)| format!("not yet seen in kube-state-metrics' page: {what}"))
        .collect()
}

/// A process this test started, killed when dropped (also when the test panics).
struct Started {
    child: Child,
    log: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Started {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// kube-state-metrics on loopback against the lab, for the compared resources only.
fn start_kube_state_metrics(binary: &Path, plane: &ControlPlane, dir: &Path) -> (Started, u16) {
    let (port, telemetry_port) = (free_port(), free_port());
    let log = dir.join("kube-state-metrics.log");
    let out = std::fs::File::create(&log).expect("a log file");
    let err = out.try_clone().expect("a log file");
    let child = Command::new(binary)
        .arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
        .args(["--host=127.0.0.1", "--telemetry-host=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--telemetry-port={telemetry_port}"))
        .arg("--resources=nodes,pods,namespaces,daemonsets,deployments")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    (Started { child, log }, port)
}

/// `GET /metrics` over HTTP/1.0 from a loopback port: the status and body.
fn get_metrics(port: u16) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

async fn kube_state_metrics_page(port: u16, ksm: &mut Started) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = ksm.child.try_wait() {
            panic!("kube-state-metrics exited ({status}):\n{}", ksm.log_tail());
        }
        match tokio::task::spawn_blocking(move || get_metrics(port))
            .await
            .expect("join")
        {
            Ok((200, body)) => return body,
            other if Instant::now() > deadline => panic!(
                "kube-state-metrics did not serve /metrics within a minute ({other:?}):\n{}",
                ksm.log_tail()
            ),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn our_page(state: &ObjectState) -> String {
    let mut page = Vec::new();
    state.write(&mut page::Page::new(&mut page, Format::Text));
    String::from_utf8(page).expect("the collector writes UTF-8")
}

async fn collector_client(plane: &ControlPlane) -> Client {
    let mut settings = Settings::new("collector-ksm-test");
    settings.start_jitter = Duration::ZERO;
    let source = Source::Kubeconfig {
        path: plane.kubeconfig(),
        context: None,
    };
    Client::connect(source, settings)
        .await
        .expect("a budgeted client for the lab")
}

fn object<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

/// Creates `value` and returns the created object's uid.
async fn create<K>(api: &Api<K>, value: Value) -> String
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let created = api
        .create(&PostParams::default(), &object::<K>(value))
        .await
        .unwrap_or_else(|e| panic!("creating a test object: {e}"));
    created.meta().uid.clone().expect("a uid")
}

fn container(name: &str, resources: Value) -> Value {
    json!({"name": name, "image": "registry.lab.invalid/app:1", "resources": resources})
}

fn edge_node() -> Value {
    json!({
        "metadata": {"name": EDGE_NODE, "labels": {
            "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/gpu": "true",
        }},
        "spec": {"unschedulable": true, "providerID": "lab://edge",
                 "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                            {"key": "maintenance", "effect": "NoExecute"}]},
        "status": {
            "capacity": {"cpu": "7500m", "memory": "31Gi", "pods": "250", "ephemeral-storage": "100G",
                         "hugepages-2Mi": "1Gi", "hugepages-1Gi": "0", "example.com/gpu": "8",
                         "attachable-volumes-csi-ebs": "25", "kubernetes.io/batch": "3"},
            "allocatable": {"cpu": "7", "memory": "30Gi", "pods": "250", "example.com/gpu": "7"},
            "conditions": [
                {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"},
                {"type": "MemoryPressure", "status": "True"},
                {"type": "FrequentKubeletRestart", "status": "False"},
            ],
            "addresses": [{"type": "InternalIP", "address": "10.200.0.1"},
                          {"type": "InternalIP", "address": "10.200.0.2"},
                          {"type": "Hostname", "address": EDGE_NODE}],
            "nodeInfo": {"machineID": "m", "systemUUID": "edge-uuid", "bootID": "b", "kernelVersion": "6.1.0",
                         "osImage": "Edge OS \"2\"", "containerRuntimeVersion": "cri-o://1.31",
                         "kubeletVersion": "v1.36.0", "kubeProxyVersion": "v1.36.0",
                         "operatingSystem": "linux", "architecture": "arm64"},
        },
    })
}

/// Creates the compared objects: nodes, namespaces (one left terminating), owners, pods in
/// every phase with statuses, a DaemonSet and two Deployments. Returns the test's node names.
async fn create_objects(plane: &ControlPlane) -> BTreeSet<String> {
    let admin = plane.admin_client().await.expect("the lab's admin client");
    populate(&admin, &PopulateSpec::new(2, 0), &|_, _| {})
        .await
        .expect("populating two nodes");
    let nodes: Api<Node> = Api::all(admin.clone());
    create(&nodes, edge_node()).await;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for name in [NAMESPACE, TERMINATING] {
        create(&namespaces, json!({"metadata": {"name": name}})).await;
    }
    // A namespace held in Terminating by a finalizer on an object in it.
    let held: Api<ConfigMap> = Api::namespaced(admin.clone(), TERMINATING);
    create(
        &held,
        json!({"metadata": {"name": "held", "finalizers": ["fleetwatch.dev/hold"]}}),
    )
    .await;
    namespaces
        .delete(TERMINATING, &DeleteParams::default())
        .await
        .expect("deleting the terminating namespace");

    let classes: Api<PriorityClass> = Api::all(admin.clone());
    create(
        &classes,
        json!({"metadata": {"name": "ksm-compat-high"}, "value": 1000}),
    )
    .await;
    // Owners that exist, or the garbage collector would delete the pods they own. No
    // ReplicaSet controller runs in the lab: this one stays as created.
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let rs_labels = json!({"app": "web-rs"});
    let rs_uid = create(&replica_sets, json!({
        "metadata": {"name": "web-rs"},
        "spec": {"replicas": 2, "selector": {"matchLabels": rs_labels},
                 "template": {"metadata": {"labels": rs_labels}, "spec": {"containers": [container("main", json!({}))]}}},
    }))
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    let cm_uid = create(&config_maps, json!({"metadata": {"name": "extra"}})).await;
    let rs_owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": rs_uid, "controller": true});
    let cm_owner = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "extra", "uid": cm_uid, "controller": false});
    let cm_owner_unset =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "extra", "uid": cm_uid});

    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let node0 = fleetwatch_control_plane::populate::node_name(0);
    let full_resources = json!({
        "requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1Gi", "hugepages-2Mi": "4Mi",
                     "example.com/widget": "2"},
        "limits": {"cpu": "1", "memory": "100M", "hugepages-2Mi": "4Mi", "example.com/widget": "2"},
    });
    let running_status = |restarts: u32| {
        json!({
            "phase": "Running", "hostIP": "10.128.0.1", "podIP": "10.64.0.9",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "main", "image": "registry.lab.invalid/app:1", "imageID": "", "ready": true,
                 "restartCount": restarts, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
                {"name": "sidecar", "image": "registry.lab.invalid/app:1", "imageID": "", "ready": false,
                 "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        })
    };
    let terminated = |phase: &str, code: i32, restarts: u32| {
        json!({
            "phase": phase, "hostIP": "10.128.0.1", "podIP": "",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "main", "image": "registry.lab.invalid/app:1", "imageID": "",
                "ready": false, "restartCount": restarts,
                "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}}],
        })
    };
    let specs: [(&str, Value, Value, Option<Value>); 5] = [
        (
            "running-a",
            json!({"ownerReferences": [rs_owner, cm_owner]}),
            json!({"nodeName": node0, "priorityClassName": "ksm-compat-high",
                   "containers": [container("main", full_resources), container("sidecar", json!({"requests": {"cpu": "1500m"}}))]}),
            Some(running_status(3)),
        ),
        (
            "succeeded-b",
            json!({"ownerReferences": [rs_owner]}),
            json!({"nodeName": node0, "containers": [container("main", json!({"requests": {"memory": "1500m"}}))]}),
            Some(terminated("Succeeded", 0, 0)),
        ),
        (
            "failed-c",
            json!({}),
            json!({"nodeName": node0, "hostNetwork": true, "containers": [container("main", json!({"limits": {"cpu": "2"}}))]}),
            Some(terminated("Failed", 1, 5)),
        ),
        (
            "pending-d",
            json!({"ownerReferences": [cm_owner_unset]}),
            json!({"containers": [container("main", json!({}))]}),
            None,
        ),
        (
            "unknown-e",
            json!({}),
            json!({"nodeName": node0, "containers": [container("main", json!({}))]}),
            Some(json!({"phase": "Unknown", "hostIP": "10.128.0.1"})),
        ),
    ];
    for (name, mut metadata, spec, status) in specs {
        metadata["name"] = json!(name);
        create(&pods, json!({"metadata": metadata, "spec": spec})).await;
        if let Some(status) = status {
            pods.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap_or_else(|e| panic!("setting the status of pod {name}: {e}"));
        }
    }

    // The DaemonSet controller creates its pods (which stay Pending: no scheduler, no
    // kubelet) and counts them; the Deployment controller creates ReplicaSets that get no pods.
    let daemonsets: Api<DaemonSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let ds_labels = json!({"app": "agent"});
    create(&daemonsets, json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": ds_labels},
                 "template": {"metadata": {"labels": ds_labels}, "spec": {
                     "containers": [container("agent", json!({"requests": {"cpu": "10m", "memory": "20Mi"}}))],
                     // Created nodes carry the not-ready taint (no node lifecycle controller
                     // lifts it); the edge node's own taints keep the DaemonSet off it.
                     "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}],
                 }}},
    }))
    .await;
    let deployments: Api<Deployment> = Api::namespaced(admin, NAMESPACE);
    for (name, replicas, paused) in [("web", 3, false), ("paused", 1, true)] {
        let labels = json!({"app": format!("deploy-{name}")});
        create(&deployments, json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "paused": paused, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container("main", json!({}))]}}},
        }))
        .await;
    }
    [
        node0,
        fleetwatch_control_plane::populate::node_name(1),
        EDGE_NODE.to_owned(),
    ]
    .into_iter()
    .collect()
}

/// Lets the namespace held in Terminating go.
async fn release_terminating_namespace(plane: &ControlPlane) {
    let admin = plane.admin_client().await.expect("the lab's admin client");
    let held: Api<ConfigMap> = Api::namespaced(admin, TERMINATING);
    let _ = held
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_claimed_family_matches_kube_state_metrics() {
    let built = Instant::now();
    let binary = tokio::task::spawn_blocking(|| {
        Tool::KubeStateMetrics.ensure(&binaries::cache_dir(), &mut |step| eprintln!("{step}"))
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| {
        panic!(
            "kube-state-metrics {} cannot be had: {e}",
            binaries::KUBE_STATE_METRICS_VERSION
        )
    });
    eprintln!(
        "kube-state-metrics ready in {:?}: {}",
        built.elapsed(),
        binary.display()
    );
    let plane = testing::shared();
    let nodes = create_objects(plane).await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut ksm, port) = start_kube_state_metrics(&binary, plane, dir.path());
    let client = collector_client(plane).await;
    let state = ObjectState::start(&client).expect("starting the object-state source");
    tokio::time::timeout(Duration::from_secs(60), state.ready())
        .await
        .expect("the informers sync within a minute");

    let deadline = Instant::now() + CONVERGE;
    let mut rounds = 0;
    let (problems, compared) = loop {
        rounds += 1;
        let (theirs_text, ours_text) = (
            kube_state_metrics_page(port, &mut ksm).await,
            our_page(&state),
        );
        let (theirs, ours) = (Page::parse(&theirs_text), Page::parse(&ours_text));
        let (mut problems, compared) = differences(&theirs, &ours, &nodes);
        problems.extend(unsettled(&theirs));
        if problems.is_empty() || Instant::now() > deadline {
            if let Some(dir) = std::env::var_os("FLEETWATCH_KSM_DUMP") {
                let dir = PathBuf::from(dir);
                std::fs::write(dir.join("kube-state-metrics.txt"), &theirs_text).expect("dump");
                std::fs::write(dir.join("fleetwatch.txt"), &ours_text).expect("dump");
            }
            break (problems, compared);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    release_terminating_namespace(plane).await;
    assert!(
        problems.is_empty(),
        "fleetwatch and kube-state-metrics {} differ after {CONVERGE:?}:\n{}",
        binaries::KUBE_STATE_METRICS_VERSION,
        problems.join("\n")
    );
    eprintln!(
        "{} families, {compared} series of the test's objects equal to kube-state-metrics' \
         after {rounds} round(s) ({:?})",
        CLAIMED.len(),
        state.objects()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_s_series_disappear_without_a_relist() {
    const DELETE_NAMESPACE: &str = "ksm-delete";
    let plane = testing::shared();
    let admin = plane.admin_client().await.expect("the lab's admin client");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    create(&namespaces, json!({"metadata": {"name": DELETE_NAMESPACE}})).await;
    let client = collector_client(plane).await;
    let state = ObjectState::start(&client).expect("starting the object-state source");
    tokio::time::timeout(Duration::from_secs(60), state.ready())
        .await
        .expect("the informers sync within a minute");

    let pods: Api<Pod> = Api::namespaced(admin, DELETE_NAMESPACE);
    create(&pods, json!({"metadata": {"name": "doomed"}, "spec": {"containers": [container("main", json!({}))]}})).await;
    let series = r#"namespace="ksm-delete",pod="doomed""#;
    let until = |present: bool| {
        let state = state.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while our_page(&state).contains(series) != present {
                assert!(
                    Instant::now() < deadline,
                    "the pod's series are {} after 30 s:\n{}",
                    if present {
                        "still missing"
                    } else {
                        "still there"
                    },
                    our_page(&state)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    until(true).await;
    pods.delete(
        "doomed",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .expect("deleting the pod");
    until(false).await;
    let stats = state.stats();
    assert!(
        stats.iter().all(|(_, stats)| stats.lists == 1),
        "the delete came by watch, with no list after the first: {stats:?}"
    );
}
