//! `remote_write:` end to end: a running collector pushes its page — its own series and, while
//! it leads, its sources' — to the real Prometheus 2.42 as a remote-write receiver, and pushes
//! once more as it stops.

mod common;

use std::time::Duration;

use common::client;
use fleetwatch_collector::CollectorConfig;
use fleetwatch_telemetry::testing::{Options, Prometheus};

#[tokio::test(flavor = "multi_thread")]
async fn the_collector_pushes_its_page_to_a_real_prometheus() {
    let prometheus = Prometheus::start(Options::default())
        .await
        .expect("the test Prometheus starts");
    let client = client().await;
    let server = client.server().to_owned();
    let mut config = CollectorConfig::default();
    config.leader_election.enabled = false;
    config.apiserver.interval = Duration::from_secs(15);
    config.apiserver.timeout = Duration::from_secs(15);
    config.apiserver.window = Duration::from_secs(30);
    config.remote_write.url = Some(prometheus.remote_write_url());
    config.remote_write.interval = Duration::from_secs(2);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(fleetwatch_collector::run(config, client, listener, async {
        let _ = stopped.await;
    }));

    // The process's own series, then a source's, arrive without any scrape configured.
    // Without leader election the collector leads once its start-up jitter has passed.
    let leads = |v| v == 1.0;
    prometheus
        .wait_for_series(
            "fleetwatch_collector_leader",
            leads,
            Duration::from_secs(90),
        )
        .await;
    let up =
        format!("fleetwatch_collector_apiserver_up{{replica=\"{server}\",endpoint=\"metrics\"}}");
    prometheus
        .wait_for_series(&up, leads, Duration::from_secs(90))
        .await;
    let sent = "fleetwatch_remote_write_samples_total{outcome=\"sent\"}";
    prometheus
        .wait_for_series(sent, |v| v > 0.0, Duration::from_secs(90))
        .await;

    stop.send(()).expect("the collector runs");
    tokio::time::timeout(Duration::from_secs(25), collector)
        .await
        .expect("the collector stops, flushing remote-write, within its grace")
        .expect("the collector task")
        .expect("the collector ran cleanly");
    let dropped = "fleetwatch_remote_write_samples_total{outcome=\"dropped\"}";
    let found = prometheus.query(dropped).await.expect("a PromQL query");
    assert!(
        matches!(found.as_slice(), [(_, v)] if *v == 0.0),
        "nothing was dropped on the way: {found:?}"
    );
}
