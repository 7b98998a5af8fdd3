//! Test support shared by the client's integration tests: a test user with RBAC and its own APF
//! flow schema on the lab's real control plane, and readers for the API server's and the client's
//! metrics.
//!
//! Why a flow schema: the API server does not label its metrics by User-Agent, so to see what our
//! client sent from the server's side, every test user gets a FlowSchema matching only that user;
//! `apiserver_flowcontrol_dispatched_requests_total{flow_schema=…}` (and `…rejected…`) then count
//! exactly that client's requests, as the API server saw them.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::path::PathBuf;
use std::time::Duration;

use fleetwatch_client::ceiling::{BURST_SECONDS, HARD_REQUESTS_PER_MINUTE};
use fleetwatch_client::{Client, Error, Settings, Source};
use fleetwatch_control_plane::ControlPlane;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::PostParams;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Creates `value` as a `K` with the admin client.
pub async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("creating a test object");
}

/// A user with read/write access to the core objects the tests use and to the API server's
/// non-resource endpoints, a FlowSchema named after it in `priority_level`, and a kubeconfig.
pub async fn test_user(plane: &ControlPlane, user: &str, priority_level: &str) -> PathBuf {
    let admin = plane.admin_client().await.expect("admin client");
    create::<ClusterRole>(
        &Api::all(admin.clone()),
        json!({
            "metadata": {"name": user},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps", "secrets", "services", "serviceaccounts", "pods", "podtemplates"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"nonResourceURLs": ["/metrics", "/readyz", "/livez", "/version"], "verbs": ["get"]},
            ],
        }),
    )
    .await;
    create::<ClusterRoleBinding>(
        &Api::all(admin.clone()),
        json!({
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }),
    )
    .await;
    flow_schema(plane, user, priority_level).await;
    plane
        .kubeconfig_for(user, &[])
        .expect("a kubeconfig for the test user")
}

/// A FlowSchema named `user` sending all of `user`'s requests to `priority_level`.
pub async fn flow_schema(plane: &ControlPlane, user: &str, priority_level: &str) {
    let admin = plane.admin_client().await.expect("admin client");
    create::<FlowSchema>(
        &Api::all(admin),
        json!({
            "metadata": {"name": user},
            "spec": {
                "priorityLevelConfiguration": {"name": priority_level},
                "matchingPrecedence": 500,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{
                    "subjects": [{"kind": "User", "user": {"name": user}}],
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                       "namespaces": ["*"], "clusterScope": true}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }],
            },
        }),
    )
    .await;
}

/// A priority level with the smallest concurrency share, rejecting (429) what it cannot seat.
pub async fn tiny_priority_level(plane: &ControlPlane, name: &str) {
    let admin = plane.admin_client().await.expect("admin client");
    create::<PriorityLevelConfiguration>(
        &Api::all(admin),
        json!({
            "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": {
                "nominalConcurrencyShares": 1,
                "lendablePercent": 0,
                "limitResponse": {"type": "Reject"},
            }},
        }),
    )
    .await;
}

pub async fn namespace(plane: &ControlPlane, name: &str) {
    let admin = plane.admin_client().await.expect("admin client");
    create::<Namespace>(&Api::all(admin), json!({"metadata": {"name": name}})).await;
}

/// Settings for tests: a short start jitter so tests do not wait for it.
pub fn settings(component: &str) -> Settings {
    let mut settings = Settings::new(component);
    settings.start_jitter = Duration::from_millis(200);
    settings
}

pub async fn connect(kubeconfig: PathBuf, settings: Settings) -> Client {
    Client::connect(
        Source::Kubeconfig {
            path: kubeconfig,
            context: None,
        },
        settings,
    )
    .await
    .expect("connecting the budgeted client")
}

/// The API server's `/metrics`, read with the admin client.
pub async fn server_metrics(plane: &ControlPlane) -> String {
    let admin = plane.admin_client().await.expect("admin client");
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    admin
        .request_text(request)
        .await
        .expect("API server /metrics")
}

/// The client's own metrics, as it exports them.
pub fn client_metrics(client: &Client) -> String {
    let mut registry = Registry::default();
    client.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoding metrics");
    text
}

/// The sum of every sample of `name` whose labels include all of `labels`, in Prometheus text.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .fold(0.0, |total, v| total + v)
}

/// Requests of the flow schemas of `users` the API server has seen: dispatched plus rejected.
pub async fn server_requests_of_all(plane: &ControlPlane, users: &[&str]) -> f64 {
    let mut seen = 0.0;
    for user in users {
        let (dispatched, rejected) = server_requests_of(plane, user).await;
        seen += dispatched + rejected;
    }
    seen
}

/// The most the hard ceiling lets through in `seconds`: its bucket's burst plus its rate, from
/// the crate's constants.
pub fn ceiling_allows(seconds: f64) -> f64 {
    let per_second = f64::from(HARD_REQUESTS_PER_MINUTE) / 60.0;
    per_second * (BURST_SECONDS + seconds)
}

/// What a flood of `GET /version` scrapes got.
#[derive(Debug)]
pub struct Flood {
    pub asked: usize,
    pub sent: usize,
    pub shed: usize,
    pub seconds: f64,
}

/// Scrapes `/version` once a millisecond for `duration`, taking `clients` in turn: the callers
/// together ask for 1,000 requests/s.
pub async fn flood(clients: &[Client], duration: Duration) -> Flood {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for client in clients.iter().cycle() {
        if started.elapsed() >= duration {
            break;
        }
        tick.tick().await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.scrape("/version").await }));
    }
    let asked = tasks.len();
    let (mut sent, mut shed) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => sent += 1,
            Err(Error::Shed { .. }) => shed += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    Flood {
        asked,
        sent,
        shed,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Requests of `user`'s flow schema the API server has dispatched and rejected.
pub async fn server_requests_of(plane: &ControlPlane, user: &str) -> (f64, f64) {
    let text = server_metrics(plane).await;
    let labels = [("flow_schema", user)];
    (
        sum(
            &text,
            "apiserver_flowcontrol_dispatched_requests_total",
            &labels,
        ),
        sum(
            &text,
            "apiserver_flowcontrol_rejected_requests_total",
            &labels,
        ),
    )
}

/// Logs to the test output as `RUST_LOG` says (nothing by default).
pub fn log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
