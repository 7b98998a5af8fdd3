//! The Prometheus rules under `deploy/prometheus` with the real Prometheus 2.42 and its promtool:
//! they check, their unit tests pass, and on the real control plane the alert for a client whose
//! cost grows with cluster size holds for the incident's per-node LIST and never for fleetwatch's
//! collector, each attributed by a FlowSchema of its own.

// The test grants RBAC and creates FlowSchemas with the lab's admin client.
#![allow(clippy::disallowed_types)]

mod lab_collector;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleetwatch_control_plane::populate::{PopulateSpec, from_json, populate};
use fleetwatch_control_plane::testing;
use fleetwatch_load_lab::{self as load, LoadSettings, LoadSpec, Pattern};
use fleetwatch_telemetry::testing::{self as prometheus, Prometheus, ScrapeTarget};
use k8s_openapi::api::flowcontrol::v1::FlowSchema;
use kube::Api;
use serde_json::json;

const ALERT: &str = "FleetwatchClientCostGrowsWithClusterSize";
/// The collector's user, and the name of its FlowSchema and of the incident agents'.
const COLLECTOR_USER: &str = "fw-rules-collector";
const NAIVE_SCHEMA: &str = "fw-rules-naive-list";
/// 21 nodes × 30 pods: each of the incident's LISTs reads 630 pods, 7 seats by APF's estimate.
const NODES: usize = 21;
const PODS_PER_NODE: usize = 30;
/// The collector's window in this test (5 minutes by default): its first LISTs must leave the
/// window before Prometheus starts, so the test need not wait the alert's 15 minutes (the
/// promtool unit tests cover those, with the default window).
const WINDOW: Duration = Duration::from_secs(40);

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let promtool =
        prometheus::binary("promtool").expect("promtool (scripts/prometheus fetches it)");
    let out = Command::new(&promtool)
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?}: {}\n{text}",
        out.status
    );
    text
}

#[test]
fn the_rules_check_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "fleetwatch.rules.yaml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "fleetwatch.rules.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// A FlowSchema named `name` for everything `user` sends, so the API server reports its
/// requests apart (as the chart does for fleetwatch's service accounts).
async fn flow_schema_for(admin: &kube::Client, name: &str, user: &str) {
    let schema: FlowSchema = from_json(json!({
        "metadata": {"name": name},
        "spec": {
            "matchingPrecedence": 500,
            "priorityLevelConfiguration": {"name": "workload-low"},
            "rules": [{"subjects": [{"kind": "User", "user": {"name": user}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                   "clusterScope": true, "namespaces": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}],
        },
    }))
    .expect("flow schema");
    lab_collector::create(&Api::all(admin.clone()), &schema).await;
}

/// The alert's state per flow schema now (`pending` or `firing`), and the recorded wide-read
/// seats per second per flow schema.
async fn observe(prometheus: &Prometheus) -> (Vec<(String, String)>, Vec<(String, f64)>) {
    let alerts = prometheus
        .query(&format!("ALERTS{{alertname={ALERT:?}}}"))
        .await
        .expect("ALERTS");
    let seats = prometheus
        .query("fleetwatch:apiserver_flowcontrol_wide_read_seats:per_second")
        .await
        .expect("the recorded wide-read seats");
    let schema = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get("flow_schema").cloned().unwrap_or_default()
    };
    (
        alerts
            .iter()
            .map(|(l, _)| (schema(l), l.get("alertstate").cloned().unwrap_or_default()))
            .collect(),
        seats.iter().map(|(l, v)| (schema(l), *v)).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_alert_holds_for_the_incidents_lists_and_never_for_fleetwatch() {
    let plane = testing::shared();
    let admin = plane.admin_client().await.expect("an admin client");
    populate(&admin, &PopulateSpec::new(NODES, PODS_PER_NODE), &|_, _| {})
        .await
        .expect("synthetic nodes and pods");
    lab_collector::grant_read_access(&admin, COLLECTOR_USER).await;
    flow_schema_for(&admin, COLLECTOR_USER, COLLECTOR_USER).await;
    flow_schema_for(&admin, NAIVE_SCHEMA, &Pattern::NaiveList.user()).await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let collector = lab_collector::start(plane, COLLECTOR_USER, WINDOW, dir.path());
    // Its informers' first LISTs (the only wide reads fleetwatch makes) leave its window.
    tokio::time::sleep(WINDOW + Duration::from_secs(10)).await;

    let prometheus = Prometheus::start(prometheus::Options {
        scrape_targets: vec![
            ScrapeTarget::new("collector", collector.address.to_string())
                .every(Duration::from_secs(5)),
        ],
        rule_files: vec![rules_dir().join("fleetwatch.rules.yaml")],
        ..prometheus::Options::default()
    })
    .await
    .expect("the real Prometheus");

    let naive = LoadSpec {
        pattern: Pattern::NaiveList,
        agents: NODES,
        nodes: NODES,
        pods: NODES * PODS_PER_NODE,
        settings: LoadSettings {
            duration: Duration::from_secs(60),
            list_interval: Duration::from_secs(10),
            churn_per_second: 0.0,
            probe_interval: Duration::from_secs(1),
        },
    };
    let run = load::run(plane, &naive);
    tokio::pin!(run);
    let (mut naive_alerted, mut collector_alerted) = (None, Vec::new());
    let (mut naive_seats, mut collector_seats) = (0.0_f64, Vec::new());
    let started = Instant::now();
    let report = loop {
        tokio::select! {
            report = &mut run => break report.expect("the naive-list run"),
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let (alerts, seats) = observe(&prometheus).await;
        for (schema, state) in alerts {
            if schema == NAIVE_SCHEMA {
                naive_alerted.get_or_insert((started.elapsed(), state));
            } else {
                collector_alerted.push((schema, state));
            }
        }
        for (schema, value) in seats {
            match schema.as_str() {
                NAIVE_SCHEMA => naive_seats = naive_seats.max(value),
                COLLECTOR_USER => collector_seats.push(value),
                _ => {}
            }
        }
    };
    let collector_log =
        || std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();

    eprintln!(
        "naive-list: {} pod LISTs, alert {naive_alerted:?}, at most {naive_seats:.2} wide-read \
         seats/s; fleetwatch's collector: wide-read seats/s {collector_seats:?}",
        report.pod_lists
    );
    assert!(
        naive_alerted.is_some(),
        "{ALERT} never held for the incident's LISTs (at most {naive_seats} wide-read seats/s)\n{}",
        prometheus.log()
    );
    assert!(
        collector_alerted.is_empty(),
        "{ALERT} held for fleetwatch: {collector_alerted:?}"
    );
    // Seen, and seen paying nothing for the cluster's size: the API server dispatched its
    // requests (a recorded series), none of them wide.
    assert!(
        !collector_seats.is_empty(),
        "the API server never reported the collector's flow schema\n{}",
        collector_log()
    );
    let dispatched = prometheus
        .query(&format!(
            "fleetwatch_collector_apiserver_flowcontrol_dispatched_per_second\
             {{replica=\"cluster\",flow_schema={COLLECTOR_USER:?}}}"
        ))
        .await
        .expect("the collector's dispatched requests");
    assert!(
        matches!(dispatched.as_slice(), [(_, rate)] if *rate > 0.0),
        "the API server dispatched none of the collector's requests: {dispatched:?}"
    );
    assert!(
        collector_seats.iter().all(|&v| v < 0.01),
        "fleetwatch's collector made wide reads in steady state: {collector_seats:?}"
    );
}
