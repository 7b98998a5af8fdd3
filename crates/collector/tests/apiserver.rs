//! The API-server source against the real kube-apiserver of the lab: its page parses cleanly and
//! has what the signals read, and a running collector serves the derived SLIs.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::{client, get};
use fleetwatch_collector::CollectorConfig;
use fleetwatch_collector::apiserver::signals::{Derive, SIGNALS};
use fleetwatch_telemetry::testing::{Options, Prometheus, ScrapeTarget, promtool_check_metrics};
use fleetwatch_telemetry::text;

/// Families v1.37.2 shows only once something happens — a request queued or rejected by APF, a
/// LIST served from the watch cache (informers use streaming lists there) — so a quiet lab's
/// page lacks them.
const ONLY_AFTER_AN_EVENT: [&str; 4] = [
    "apiserver_flowcontrol_current_inqueue_requests",
    "apiserver_flowcontrol_request_wait_duration_seconds",
    "apiserver_flowcontrol_rejected_requests_total",
    "apiserver_cache_list_returned_objects_total",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_real_page_parses_cleanly_and_has_every_signal() {
    let client = client().await;
    let page = client
        .scrape("/metrics")
        .await
        .expect("the API server's page");
    let parsed = text::parse(&page);
    assert_eq!(
        parsed.error_count(),
        0,
        "a real v1.37.2 page must parse without errors: {:?}",
        parsed.errors()
    );
    let names: BTreeSet<&str> = parsed.samples().map(|s| s.name).collect();
    let missing: Vec<String> = SIGNALS
        .iter()
        .filter(|s| !ONLY_AFTER_AN_EVENT.contains(&s.source))
        .map(|s| match s.derive {
            Derive::Rate | Derive::Last => s.source.to_owned(),
            Derive::Quantiles => format!("{}_bucket", s.source),
            Derive::RateOfSum => format!("{}_sum", s.source),
        })
        .filter(|name| !names.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "the page has none of {missing:?}");

    // Cross-check: the prometheus-parse crate reads the same counters, gauges and untyped
    // samples off the same page (it folds histograms and summaries into one value each).
    let lines = page.lines().map(|l| Ok(l.to_owned()));
    let theirs = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse reads it");
    let ours: HashMap<(String, BTreeMap<String, String>), f64> = parsed
        .samples()
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .map(|label| (label.name.to_owned(), label.value.to_string()))
                .collect();
            ((s.name.to_owned(), labels), s.value)
        })
        .collect();
    let mut compared = 0;
    for sample in &theirs.samples {
        use prometheus_parse::Value::{Counter, Gauge, Untyped};
        let (Counter(value) | Gauge(value) | Untyped(value)) = sample.value else {
            continue;
        };
        let labels: BTreeMap<String, String> = sample
            .labels
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let key = (sample.metric.clone(), labels);
        let mine = ours.get(&key).copied();
        assert!(
            mine.is_some_and(|v| v == value || (v.is_nan() && value.is_nan())),
            "{key:?}: prometheus-parse reads {value}, this parser {mine:?}"
        );
        compared += 1;
    }
    assert!(compared > 1000, "only {compared} samples compared");
}

fn value_of(page: &str, series_prefix: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_collector_serves_the_slis_of_each_replica_and_the_cluster() {
    let client = client().await;
    let server = client.server().to_owned();
    let mut config = CollectorConfig::default();
    // Short enough for a test; the timeout leaves a lab still starting its controllers on a
    // loaded two-core machine time to render its page (about 2.4 MB).
    config.apiserver.interval = Duration::from_secs(15);
    config.apiserver.timeout = Duration::from_secs(15);
    config.apiserver.window = Duration::from_secs(30);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(fleetwatch_collector::run(config, client, listener, async {
        let _ = stopped.await;
    }));

    // Ready once each replica was read; SLIs once the window holds two pages.
    let mut page = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let cluster_rate = "fleetwatch_collector_apiserver_requests_per_second{replica=\"cluster\"";
    while tokio::time::Instant::now() < deadline {
        let (status, _) = get(address, "/readyz").await;
        if status == 200 {
            page = get(address, "/metrics").await.1;
            if page.contains(cluster_rate) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ours: Vec<&str> = page
        .lines()
        .filter(|l| l.contains("fleetwatch_collector_apiserver") && !l.starts_with('#'))
        .collect();
    assert!(
        page.contains(cluster_rate),
        "no cluster request rate within 120 s:\n{ours:#?}"
    );
    let up =
        format!("fleetwatch_collector_apiserver_up{{replica=\"{server}\",endpoint=\"metrics\"}}");
    assert_eq!(value_of(&page, &up), Some(1.0), "{up} in\n{page}");
    let cpu = format!("fleetwatch_collector_apiserver_cpu_cores{{replica=\"{server}\"}}");
    assert!(
        value_of(&page, &cpu).is_some_and(|v| v > 0.0),
        "the API server uses some CPU: {cpu}"
    );
    let latency = "fleetwatch_collector_apiserver_request_duration_seconds{replica=\"cluster\"";
    assert!(page.contains(latency), "latency quantiles: {latency}");
    assert!(
        page.contains("fleetwatch_client_requests_total"),
        "the budgeted client's own metrics are served"
    );

    // The real Prometheus scrapes it cleanly, and promtool finds nothing wrong with the page.
    let prometheus = Prometheus::start(Options {
        scrape_targets: vec![ScrapeTarget::new("collector", address.to_string())],
        ..Options::default()
    })
    .await
    .expect("the test Prometheus starts");
    prometheus
        .wait_for_healthy_targets(Duration::from_secs(30))
        .await
        .expect("Prometheus scrapes the collector: up, no sample errors");
    let query = format!(
        "fleetwatch_collector_apiserver_up{{job=\"collector\",endpoint=\"metrics\",replica=\"{server}\"}}"
    );
    let up = prometheus.query(&query).await.expect("a PromQL query");
    assert_eq!(up.len(), 1, "{query}: {up:?}");
    assert_eq!(up[0].1, 1.0);
    let text = get(address, "/metrics").await.1;
    promtool_check_metrics(&text).expect("promtool check metrics passes on the collector's page");

    stop.send(()).expect("the collector runs");
    tokio::time::timeout(Duration::from_secs(15), collector)
        .await
        .expect("the collector stops within its grace")
        .expect("the collector task")
        .expect("the collector ran cleanly");
}
