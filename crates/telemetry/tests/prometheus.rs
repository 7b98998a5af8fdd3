//! The test Prometheus itself (`fleetwatch_telemetry::testing`): it scrapes, reports targets,
//! answers queries, says what it refuses, and leaves no process behind. Run scripts/prometheus
//! first.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetwatch_telemetry::testing::{self, Error, Options, Prometheus, ScrapeTarget};
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `page` as text format 0.0.4 on every path.
async fn serve(page: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_request| async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from_static(page.as_bytes())))
                            .expect("response"),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

const GOOD_PAGE: &str = "# HELP fw_demo_requests_total Requests.\n\
                         # TYPE fw_demo_requests_total counter\n\
                         fw_demo_requests_total{code=\"200\"} 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_target_and_reports_it_healthy() {
    let good = serve(GOOD_PAGE).await;
    let prometheus = Prometheus::start(Options {
        scrape_targets: vec![
            ScrapeTarget::new("demo", good.to_string()).every(Duration::from_millis(500)),
        ],
        ..Options::default()
    })
    .await
    .expect("prometheus");
    let targets = prometheus
        .wait_for_healthy_targets(Duration::from_secs(30))
        .await
        .expect("healthy");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].job, "demo");
    assert_eq!(targets[0].labels["instance"], good.to_string());
    assert_eq!(targets[0].scrape_url, format!("http://{good}/metrics"));

    let up = prometheus.query("up{job=\"demo\"}").await.expect("query");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].1, 1.0);
    let requests = prometheus
        .query("fw_demo_requests_total")
        .await
        .expect("query");
    assert_eq!(requests[0].0["code"], "200");
    assert_eq!(requests[0].1, 3.0);
    // A scalar is one result without labels.
    assert_eq!(
        prometheus
            .query("scalar(vector(2.5))")
            .await
            .expect("query"),
        vec![(Default::default(), 2.5)]
    );
}

#[tokio::test]
async fn a_target_serving_garbage_is_down_with_its_error() {
    let bad = serve("this is not { a metrics page\n").await;
    let prometheus = Prometheus::start(Options {
        scrape_targets: vec![ScrapeTarget::new("bad", bad.to_string())],
        ..Options::default()
    })
    .await
    .expect("prometheus");
    let started = Instant::now();
    let target = loop {
        let targets = prometheus.targets().await.expect("targets");
        if let Some(target) = targets.first().filter(|t| t.health == "down") {
            break target.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{targets:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!target.last_error.is_empty(), "{target:?}");
    let error = prometheus
        .wait_for_healthy_targets(Duration::from_millis(500))
        .await
        .expect_err("not healthy");
    assert!(matches!(error, Error::TargetsNotHealthy { .. }), "{error}");
}

#[tokio::test]
async fn bad_promql_is_an_api_error() {
    let prometheus = Prometheus::start(Options::default())
        .await
        .expect("prometheus");
    let error = prometheus.query("sum(").await.expect_err("bad query");
    assert!(matches!(error, Error::Api { .. }), "{error}");
    assert!(error.to_string().contains("bad_data"), "{error}");
    let error = prometheus
        .query("vector(1)[5m:1m]")
        .await
        .expect_err("a range");
    assert!(matches!(error, Error::Decode { .. }), "{error}");
}

#[tokio::test]
async fn stop_restart_and_drop_leave_no_process() {
    let mut prometheus = Prometheus::start(Options::default())
        .await
        .expect("prometheus");
    let first = prometheus.pid().expect("running");
    prometheus.stop().expect("stop");
    assert!(!prometheus.is_running());
    assert!(!std::path::Path::new(&format!("/proc/{first}")).exists());
    prometheus.restart().await.expect("restart");
    let second = prometheus.pid().expect("running again");
    assert!(prometheus.is_running());
    assert!(prometheus.data_dir().is_dir());
    assert!(
        prometheus
            .log()
            .contains("Server is ready to receive web requests")
    );
    drop(prometheus);
    assert!(!std::path::Path::new(&format!("/proc/{second}")).exists());
}

#[test]
fn promtool_checks_pages() {
    testing::promtool_check_metrics(GOOD_PAGE).expect("a good page");
    let lint = testing::promtool_check_metrics(
        "# HELP fw_requests Requests.\n# TYPE fw_requests counter\nfw_requests 1\n",
    )
    .expect_err("a counter without _total");
    assert!(lint.contains("_total"), "{lint}");
    let broken = testing::promtool_check_metrics("fw_x{ 1\n").expect_err("not a page");
    assert!(!broken.is_empty());
}

#[test]
fn a_missing_binary_says_what_to_run() {
    let error = Error::NotFound {
        path: "/nowhere/prometheus".into(),
    };
    assert_eq!(
        error.to_string(),
        "Prometheus not found at /nowhere/prometheus: run scripts/prometheus"
    );
    assert!(testing::prometheus_dir().ends_with("bin/prometheus-2.42"));
}
