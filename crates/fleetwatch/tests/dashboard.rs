//! The Grafana dashboard under `deploy/grafana`: every panel's every query, run against the real
//! Prometheus 2.42 fed by the real collector and agent on the lab (with the rules of
//! `deploy/prometheus` loaded), parses and returns data. Panels that need the audit webhook say
//! so in their description: their queries must parse there, and return data on a lab whose API
//! server audits to the collector.

// The test creates a DaemonSet and LISTs with the lab's admin client.
#![allow(clippy::disallowed_types)]

mod common;
mod lab_collector;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetwatch_control_plane::pki;
use fleetwatch_control_plane::plane::{AuditWebhook, LabOptions};
use fleetwatch_control_plane::populate::{PopulateSpec, from_json, node_name, populate};
use fleetwatch_control_plane::testing::{self, Dedicated};
use fleetwatch_telemetry::testing::{self as prometheus, Prometheus, ScrapeTarget};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

const COLLECTOR_USER: &str = "fw-dashboard-collector";
/// What a panel that needs the collector's audit webhook says first.
const NEEDS_AUDIT: &str = "Needs the collector's audit webhook";
const DEADLINE: Duration = Duration::from_secs(120);

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn dashboard() -> Value {
    let path = deploy().join("grafana/fleetwatch.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A panel's title, whether it needs the audit webhook, and its queries.
struct Panel {
    title: String,
    needs_audit: bool,
    queries: Vec<String>,
}

fn panels(dashboard: &Value) -> Vec<Panel> {
    let all = dashboard["panels"].as_array().expect("panels");
    let ids: std::collections::BTreeSet<_> = all.iter().map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), all.len(), "panel ids are not unique");
    all.iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let title = p["title"].as_str().expect("a title").to_owned();
            let queries: Vec<String> = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t["expr"].as_str().expect("an expr").to_owned())
                .collect();
            assert!(!queries.is_empty(), "panel {title:?} has no query");
            let needs_audit = p["description"]
                .as_str()
                .is_some_and(|d| d.starts_with(NEEDS_AUDIT));
            Panel {
                title,
                needs_audit,
                queries,
            }
        })
        .collect()
}

/// An agent process, killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The agent for one of the lab's nodes: the host's /proc and /sys, and DNS through servers
/// that do not answer (its DNS series then say so). The lab has no kubelets.
fn start_agent(node: &str, address: std::net::SocketAddr, log: &Path) -> Agent {
    // Port 9 (discard) on two loopback addresses: the resolver and the cluster DNS must differ.
    let child = Command::new(env!("CARGO_BIN_EXE_fleetwatch"))
        .args([
            "agent",
            "--node-name",
            node,
            "--no-kubelet",
            "--interval",
            "2",
        ])
        .args(["--listen", &address.to_string(), "--dns-interval", "2"])
        .args([
            "--dns-resolver",
            "127.0.0.1:9",
            "--cluster-dns",
            "127.0.0.2:9",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .expect("start fleetwatch agent");
    Agent(child)
}

/// Objects the object-state and rollout panels show: synthetic Ready nodes with Running pods,
/// and a DaemonSet (the lab runs no controllers, so its status is the API server's defaults).
async fn objects(admin: &kube::Client) {
    populate(admin, &PopulateSpec::new(3, 2), &|_, _| {})
        .await
        .expect("synthetic nodes and pods");
    let labels = json!({"app": "fw-dashboard"});
    let daemon_set: DaemonSet = from_json(json!({
        "metadata": {"name": "fw-dashboard", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "agent", "image": "fleetwatch:test"}]}},
        },
    }))
    .expect("daemon set");
    lab_collector::create(&Api::namespaced(admin.clone(), "default"), &daemon_set).await;
}

/// Namespace- and cluster-scoped LISTs, so the collector's window has their latencies.
#[allow(clippy::disallowed_methods)] // the LIST panels need LISTs to show, a handful a second
async fn list(admin: &kube::Client) {
    let params = ListParams::default();
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .list(&params)
        .await
        .expect("a namespace-scoped LIST");
    Api::<ConfigMap>::all(admin.clone())
        .list(&params)
        .await
        .expect("a cluster-scoped LIST");
}

/// The real Prometheus scraping `targets` every 2 s, with fleetwatch's rules.
async fn prometheus_for(targets: &[(&str, String)]) -> Prometheus {
    Prometheus::start(prometheus::Options {
        scrape_targets: targets
            .iter()
            .map(|(job, address)| {
                ScrapeTarget::new(*job, address.clone()).every(Duration::from_secs(2))
            })
            .collect(),
        rule_files: vec![deploy().join("prometheus/fleetwatch.rules.yaml")],
        ..prometheus::Options::default()
    })
    .await
    .expect("the real Prometheus")
}

/// Runs each of `panels`' queries until it returns data, LISTing between rounds; panics at once
/// on a query Prometheus refuses, and after [`DEADLINE`] naming the panels still without data
/// (with the logs in `dir`).
async fn wait_for_data(
    prometheus: &Prometheus,
    panels: &[&Panel],
    admin: &kube::Client,
    dir: &Path,
) {
    let mut waiting: Vec<(&Panel, &String)> = panels
        .iter()
        .flat_map(|p| p.queries.iter().map(move |q| (*p, q)))
        .collect();
    let started = Instant::now();
    while !waiting.is_empty() && started.elapsed() < DEADLINE {
        list(admin).await;
        let mut still = Vec::new();
        for (panel, query) in waiting {
            match prometheus.query(query).await {
                Ok(series) if !series.is_empty() => {}
                Ok(_) => still.push((panel, query)),
                Err(e) => panic!("panel {:?}: {query}: {e}", panel.title),
            }
        }
        waiting = still;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let log = |name| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let empty: Vec<String> = waiting
        .iter()
        .map(|(p, q)| format!("{:?}: {q}", p.title))
        .collect();
    assert!(
        empty.is_empty(),
        "no data within {DEADLINE:?} for:\n{}\ncollector log:\n{}\nagent log:\n{}",
        empty.join("\n"),
        log("collector.log"),
        log("agent.log"),
    );
    eprintln!(
        "{} panels returned data within {:?}",
        panels.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_parses_and_returns_data_from_the_lab() {
    let panels = panels(&dashboard());
    let plane = testing::shared();
    let admin = plane.admin_client().await.expect("an admin client");
    lab_collector::grant_read_access(&admin, COLLECTOR_USER).await;
    objects(&admin).await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let collector =
        lab_collector::start(plane, COLLECTOR_USER, Duration::from_secs(30), dir.path());
    let agent_address = lab_collector::free_address();
    let _agent = start_agent(&node_name(0), agent_address, &dir.path().join("agent.log"));
    let prometheus = prometheus_for(&[
        ("collector", collector.address.to_string()),
        ("agent", agent_address.to_string()),
    ])
    .await;
    let plain: Vec<&Panel> = panels.iter().filter(|p| !p.needs_audit).collect();
    wait_for_data(&prometheus, &plain, &admin, dir.path()).await;

    // Without the webhook the audit panels are empty, but their queries must parse.
    let audit: Vec<&Panel> = panels.iter().filter(|p| p.needs_audit).collect();
    assert!(!audit.is_empty(), "no panel is marked {NEEDS_AUDIT:?}");
    for panel in audit {
        for query in &panel.queries {
            prometheus
                .query(query)
                .await
                .unwrap_or_else(|e| panic!("panel {:?}: {query}: {e}", panel.title));
        }
    }
}

/// The panels marked as needing the audit webhook return data once it is on: a lab of the
/// test's own whose API server audits to the collector's receiver with exactly the webhook
/// kubeconfig and policy the chart renders (`audit.enabled`), so this also proves those files
/// work as the chart says to use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_panels_return_data_with_the_charts_webhook_files() {
    let panels = panels(&dashboard());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = |name: &str| dir.path().join(name);
    // The receiver's serving certificate, and the API server's client certificate from a CA of
    // its own (the lab's CA does not exist before the lab starts, and the chart's kubeconfig
    // must name the files then).
    let (receiver_ca, receiver) = pki::loopback_server("fleetwatch-audit").expect("receiver TLS");
    let clients = pki::Pki::generate().expect("a client CA");
    let client = clients
        .client_cert("kube-apiserver-audit", &[])
        .expect("the API server's client certificate");
    let client_ca = clients
        .files()
        .into_iter()
        .find(|(name, _)| *name == "client-ca.crt")
        .map(|(_, pem)| pem)
        .expect("the client CA");
    for (name, contents) in [
        ("audit.crt", receiver.cert_pem),
        ("audit.key", receiver.key_pem),
        ("audit-ca.crt", receiver_ca),
        ("audit-client.crt", client.cert_pem),
        ("audit-client.key", client.key_pem),
        ("audit-client-ca.crt", client_ca),
    ] {
        std::fs::write(path(name), contents).expect("write a certificate file");
    }
    // The port is chosen before the lab starts (the webhook kubeconfig names it); the API server
    // retries batches until the collector listens.
    let listen = lab_collector::free_address();
    let (kubeconfig, policy) = charts_webhook_files(
        &format!("https://{listen}/audit"),
        &path("audit-ca.crt"),
        &path("audit-client.crt"),
        &path("audit-client.key"),
        dir.path(),
    );
    let mut options = LabOptions::new(path("lab"));
    options.audit_webhook = Some(AuditWebhook::Files { kubeconfig, policy });
    let plane = Dedicated::start(options)
        .await
        .expect("a lab auditing through the chart's webhook kubeconfig");
    let admin = plane.admin_client().await.expect("an admin client");
    lab_collector::grant_read_access(&admin, COLLECTOR_USER).await;
    let audit = lab_collector::Audit {
        listen,
        cert: path("audit.crt"),
        key: path("audit.key"),
        client_ca: path("audit-client-ca.crt"),
    };
    let collector = lab_collector::start_with_audit(
        &plane,
        COLLECTOR_USER,
        Duration::from_secs(30),
        dir.path(),
        Some(&audit),
    );
    let prometheus = prometheus_for(&[("collector", collector.address.to_string())]).await;
    let audited: Vec<&Panel> = panels.iter().filter(|p| p.needs_audit).collect();
    wait_for_data(&prometheus, &audited, &admin, dir.path()).await;
}

/// The chart's `fleetwatch-audit-webhook` ConfigMap rendered for a receiver at `server` with
/// these certificate files, its two files written into `dir`: (kubeconfig, policy).
fn charts_webhook_files(
    server: &str,
    ca: &Path,
    client_cert: &Path,
    client_key: &Path,
    dir: &Path,
) -> (PathBuf, PathBuf) {
    let chart = common::chart();
    let values = format!(
        "audit.enabled=true,audit.tlsSecret=fleetwatch-audit-tls,audit.webhook.server={server},\
         audit.webhook.certificateAuthority={},audit.webhook.clientCertificate={},\
         audit.webhook.clientKey={}",
        ca.display(),
        client_cert.display(),
        client_key.display()
    );
    let rendered = common::helm(&[
        "template",
        "fleetwatch",
        chart.to_str().expect("a UTF-8 path"),
        "--namespace",
        common::NAMESPACE,
        "--show-only",
        "templates/audit.yaml",
        "--set",
        &values,
    ]);
    let objects = common::objects(&rendered);
    let config_map = common::named(&objects, "ConfigMap", "fleetwatch-audit-webhook");
    let file = |key: &str| {
        let text = config_map["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("the chart's audit ConfigMap has no {key}"));
        let file = dir.join(key);
        std::fs::write(&file, text).expect("write a file of the chart's audit ConfigMap");
        file
    };
    (file("audit-webhook.kubeconfig"), file("audit-policy.yaml"))
}
