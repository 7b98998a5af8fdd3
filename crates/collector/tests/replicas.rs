//! Three API server replicas on one etcd (the lab's HA control plane): the collector reads each
//! one; a replica stopped and started again shows as an explicit `up` of 0 for at most two
//! intervals and a counted restart, while the others stay up; restarting the replica its
//! informers watch relists each informer at most once.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{get, value};
use fleetwatch_client::{Client, Settings, Source};
use fleetwatch_collector::CollectorConfig;
use fleetwatch_control_plane::plane::LabOptions;
use fleetwatch_control_plane::testing::Dedicated;
use fleetwatch_telemetry::text;

/// Long enough for a debug build to read three ~2.4 MB pages at once on a busy two-core
/// machine (about 1.3 s each when alone, measured with `fleetwatch collector` on the lab).
const INTERVAL: Duration = Duration::from_secs(15);
/// The most time a change may take to show: two intervals (one may have just begun, and the
/// interval is jittered by 10 %) and the time to read a page.
const TWO_INTERVALS: Duration = Duration::from_secs(36);

fn up(page: &str, replica: &str) -> Option<f64> {
    let labels = [("replica", replica), ("endpoint", "metrics")];
    value(page, "fleetwatch_collector_apiserver_up", &labels)
}

fn restarts(page: &str, replica: &str) -> f64 {
    let labels = [("replica", replica)];
    value(
        page,
        "fleetwatch_collector_apiserver_restarts_total",
        &labels,
    )
    .unwrap_or(0.0)
}

/// The lists the collector's informers made so far, by resource.
fn informer_lists(page: &str) -> BTreeMap<String, f64> {
    let mut lists = BTreeMap::new();
    for sample in text::parse(page)
        .samples()
        .filter(|s| s.name == "fleetwatch_client_informer_lists_total")
    {
        let resource = sample.label("resource").unwrap_or_default().to_owned();
        *lists.entry(resource).or_default() += sample.value;
    }
    lists
}

/// Polls the collector's page until `check` holds; returns how long that took.
async fn until(
    address: SocketAddr,
    what: &str,
    timeout: Duration,
    check: impl Fn(&str) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut page = String::new();
    while started.elapsed() < timeout {
        page = get(address, "/metrics").await.1;
        if check(&page) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ours: Vec<&str> = page
        .lines()
        .filter(|l| l.contains("apiserver_up") || l.contains("restarts") || l.contains("leader"))
        .collect();
    let kept = std::env::temp_dir().join("fleetwatch-replicas-test-page.txt");
    let _ = std::fs::write(&kept, &page);
    panic!(
        "{what}: not within {timeout:?} (the last page, {} bytes, is in {})\n{ours:#?}",
        page.len(),
        kept.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_replica_is_read_and_a_restart_is_a_short_explicit_gap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut options = LabOptions::new(tmp.path().join("lab"));
    options.extra_apiservers = 2;
    let plane = Dedicated::start(options)
        .await
        .expect("a lab with three API server replicas");
    let replicas = plane.apiserver_urls();
    assert_eq!(replicas.len(), 3, "{replicas:?}");

    let mut settings = Settings::new("collector-replicas-test");
    settings.start_jitter = Duration::from_millis(100);
    let source = Source::Kubeconfig {
        path: plane.kubeconfig(),
        context: None,
    };
    let client = Client::connect(source, settings).await.expect("a client");
    let mut config = CollectorConfig::default();
    config.leader_election.enabled = false;
    config.apiserver.interval = INTERVAL;
    config.apiserver.timeout = INTERVAL;
    config.apiserver.window = INTERVAL * 4;
    config.apiserver.replicas = replicas.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(fleetwatch_collector::run(config, client, listener, async {
        let _ = stopped.await;
    }));

    let all_up = |page: &str| replicas.iter().all(|r| up(page, r) == Some(1.0));
    until(
        address,
        "every replica is read",
        Duration::from_secs(120),
        all_up,
    )
    .await;
    let second = &replicas[1];

    // One replica stops: it shows as down within two intervals, the others stay up.
    plane.stop_replica(0).await.expect("stop kube-apiserver-2");
    let down = until(
        address,
        "the stopped replica shows as down",
        TWO_INTERVALS,
        |page| up(page, second) == Some(0.0) && up(page, &replicas[0]) == Some(1.0),
    )
    .await;
    plane
        .start_replica_again(0)
        .await
        .expect("start kube-apiserver-2 again");
    let back = until(
        address,
        "the replica is read again",
        TWO_INTERVALS,
        |page| up(page, second) == Some(1.0) && restarts(page, second) >= 1.0,
    )
    .await;
    eprintln!(
        "replica down after {:.1} s, read again {:.1} s after it was ready (interval {INTERVAL:?})",
        down.as_secs_f64(),
        back.as_secs_f64()
    );

    // The replica the kubeconfig names (the informers' server) restarts: at most one relist
    // per informer, and every replica is read again.
    let before = informer_lists(&get(address, "/metrics").await.1);
    plane
        .restart_apiserver()
        .await
        .expect("restart kube-apiserver");
    until(
        address,
        "every replica is read again",
        TWO_INTERVALS * 2,
        |page| all_up(page) && restarts(page, &replicas[0]) >= 1.0,
    )
    .await;
    tokio::time::sleep(INTERVAL * 2).await;
    let after = informer_lists(&get(address, "/metrics").await.1);
    let relists: BTreeMap<&String, f64> = after
        .iter()
        .map(|(resource, n)| (resource, n - before.get(resource).copied().unwrap_or(0.0)))
        .collect();
    eprintln!("lists after the restart, by resource: {relists:?}");
    assert!(
        relists.values().all(|n| *n <= 1.0),
        "an informer listed more than once after one restart: {relists:?}"
    );

    stop.send(()).expect("the collector runs");
    tokio::time::timeout(Duration::from_secs(25), collector)
        .await
        .expect("the collector stops within its grace")
        .expect("the collector task")
        .expect("the collector ran cleanly");
}
