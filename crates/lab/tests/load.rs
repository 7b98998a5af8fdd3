//! A short sweep of the load lab against the real control plane: the incident's pattern costs the
//! API server the most, fleetwatch's collector about as little as a per-node field-selected watch.

use std::time::Duration;

use fleetwatch_lab::load::{self, LoadReport, LoadSpec, Pattern};
use fleetwatch_lab::{PopulateSpec, populate, testing};

const NODES: usize = 40;
const PODS_PER_NODE: usize = 15;

async fn measure(pattern: Pattern) -> LoadReport {
    let plane = testing::shared();
    let spec = LoadSpec {
        pattern,
        agents: NODES,
        nodes: NODES,
        pods: NODES * PODS_PER_NODE,
        duration: Duration::from_secs(12),
        list_interval: Duration::from_secs(1),
        churn_per_second: 10.0,
        probe_interval: Duration::from_millis(100),
    };
    load::run(plane, &spec).await.expect("load run")
}

#[tokio::test]
async fn patterns_cost_the_api_server_in_the_expected_order() {
    let plane = testing::shared();
    let admin = plane.admin_client().await.expect("admin client");
    populate(&admin, &PopulateSpec::new(NODES, PODS_PER_NODE), &|_, _| {})
        .await
        .expect("populate");
    assert_eq!(
        load::cluster_size(plane).await.expect("size"),
        (NODES, NODES * PODS_PER_NODE)
    );

    let mut reports = Vec::new();
    for pattern in [
        Pattern::NaiveList,
        Pattern::WatchAll,
        Pattern::WatchNode,
        Pattern::Fleetwatch,
    ] {
        reports.push(measure(pattern).await);
    }
    for r in &reports {
        eprintln!(
            "{:<12} cpu {:>6.2}s (reported {:>6.2}s) out {:>8} B  probe p99 {:?} ms  agent requests {} errors {}",
            r.pattern,
            r.apiserver_cpu_seconds,
            r.apiserver_cpu_seconds_reported,
            r.apiserver_bytes_written,
            r.probe_p99_ms,
            r.agent_requests,
            r.agent_errors
        );
        assert_eq!(r.agent_errors, 0, "{}: agents failed", r.pattern);
        assert!(
            r.probe_samples > 50,
            "{}: the probe ran throughout",
            r.pattern
        );
        // /proc and the API server's own counter agree (both count the same process).
        let gap = (r.apiserver_cpu_seconds - r.apiserver_cpu_seconds_reported).abs();
        assert!(
            gap < 0.5 + 0.1 * r.apiserver_cpu_seconds,
            "{}: /proc and metrics disagree",
            r.pattern
        );
    }
    let cpu: Vec<f64> = reports.iter().map(|r| r.apiserver_cpu_seconds).collect();
    let [naive, watch_all, watch_node, fleetwatch] = cpu[..] else {
        unreachable!()
    };
    assert!(
        naive > 2.0 * watch_all,
        "naive-list {naive:.2}s vs watch-all {watch_all:.2}s"
    );
    assert!(
        watch_all > 2.0 * watch_node,
        "watch-all {watch_all:.2}s vs watch-node {watch_node:.2}s"
    );
    // One collector per cluster against one watch per node: equal within noise at 40 nodes, and
    // fleetwatch's share stays constant as nodes are added while watch-node's grows.
    assert!(
        fleetwatch < 1.5 * watch_node,
        "fleetwatch {fleetwatch:.2}s vs watch-node {watch_node:.2}s"
    );
}
