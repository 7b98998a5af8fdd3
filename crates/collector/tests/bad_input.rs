//! The API-server source against a real API server that misbehaves: a page over the size limit,
//! and an API server that stops answering (SIGSTOP). Each is a counted error and an `up` of 0
//! for that endpoint; the collector keeps serving `/metrics` throughout and recovers by itself.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{client, get, value};
use fleetwatch_collector::CollectorConfig;
use fleetwatch_control_plane::testing::shared;

struct Running {
    address: SocketAddr,
    server: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), fleetwatch_collector::Error>>,
}

/// A collector with leader election and object state off, reading the API server every
/// `interval` (timeout the same).
async fn start(interval: Duration, max_page_bytes: usize) -> Running {
    let client = client().await;
    let server = client.server().to_owned();
    let mut config = CollectorConfig::default();
    config.leader_election.enabled = false;
    config.objects.enabled = false;
    config.apiserver.interval = interval;
    config.apiserver.timeout = interval;
    config.apiserver.window = interval * 3;
    config.apiserver.max_page_bytes = max_page_bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(fleetwatch_collector::run(config, client, listener, async {
        let _ = stopped.await;
    }));
    Running {
        address,
        server,
        stop,
        task,
    }
}

impl Running {
    /// Polls the page until `check` holds; panics with the page after `timeout`.
    async fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut page = String::new();
        while Instant::now() < deadline {
            page = get(self.address, "/metrics").await.1;
            if check(&page) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let ours: Vec<&str> = page
            .lines()
            .filter(|l| l.contains("apiserver_up") || l.contains("scrape_errors"))
            .collect();
        panic!("{what}: not within {timeout:?}\n{ours:#?}");
    }

    fn up(&self, page: &str, endpoint: &str) -> Option<f64> {
        let labels = [("replica", self.server.as_str()), ("endpoint", endpoint)];
        value(page, "fleetwatch_collector_apiserver_up", &labels)
    }

    fn errors(&self, page: &str, reason: &str) -> f64 {
        let labels = [
            ("replica", self.server.as_str()),
            ("endpoint", "metrics"),
            ("reason", reason),
        ];
        value(
            page,
            "fleetwatch_collector_apiserver_scrape_errors_total",
            &labels,
        )
        .unwrap_or(0.0)
    }

    async fn stop(self) {
        self.stop.send(()).expect("the collector runs");
        tokio::time::timeout(Duration::from_secs(25), self.task)
            .await
            .expect("the collector stops within its grace")
            .expect("the collector task")
            .expect("the collector ran cleanly");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_page_and_a_hanging_api_server_are_counted_and_survived() {
    // The real page is about 2.4 MB: with a 100 kB limit /metrics fails as too large, while
    // /readyz and /livez (their own small limits) still read.
    let limited = start(Duration::from_secs(5), 100_000).await;
    limited
        .wait_for(
            "/metrics refused as too large",
            Duration::from_secs(90),
            |page| {
                limited.errors(page, "too_large") >= 1.0
                    && limited.up(page, "metrics") == Some(0.0)
                    && limited.up(page, "readyz") == Some(1.0)
            },
        )
        .await;
    limited.stop().await;

    // A frozen API server: reads time out (10 s), the endpoint goes down, /metrics keeps
    // answering at once, and after the thaw the replica is read again.
    let collector = start(Duration::from_secs(10), 32 << 20).await;
    collector
        .wait_for("the replica is read", Duration::from_secs(120), |page| {
            collector.up(page, "metrics") == Some(1.0)
        })
        .await;
    let plane = shared();
    plane.freeze("kube-apiserver");
    let frozen = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut down = false;
    while !down && frozen.elapsed() < Duration::from_secs(60) {
        let asked = Instant::now();
        let page = get(collector.address, "/metrics").await.1;
        slowest = slowest.max(asked.elapsed());
        down = collector.up(&page, "metrics") == Some(0.0)
            && collector.errors(&page, "unanswered") >= 1.0;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    plane.thaw("kube-apiserver");
    assert!(down, "a frozen API server shows as down within 60 s");
    eprintln!(
        "frozen: down after {:.1} s; slowest /metrics meanwhile {slowest:?}",
        frozen.elapsed().as_secs_f64()
    );
    assert!(
        slowest < Duration::from_secs(2),
        "/metrics answered within {slowest:?} while the API server hung"
    );
    collector
        .wait_for(
            "the replica is read again",
            Duration::from_secs(90),
            |page| collector.up(page, "metrics") == Some(1.0),
        )
        .await;
    collector.stop().await;
}
