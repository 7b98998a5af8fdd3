//! The remote-write sink against the real Prometheus (Debian's 2.42: run scripts/prometheus
//! first) and against misbehaving receivers (small fixtures here: 500-then-200, 400, one that
//! never answers, and TLS).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fleetwatch_telemetry::exposition::{self, Format};
use fleetwatch_telemetry::remote_write::proto::decode_body;
use fleetwatch_telemetry::remote_write::{
    Config, RemoteWrite, Sample, Stats, TimeSeries, WriteRequest,
};
use fleetwatch_telemetry::testing::{self, Options, Prometheus};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

fn now_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(now.as_millis()).expect("ms")
}

fn deadline(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// `count` series `name{i="<n>"}`, n from `first`, each with one sample of value n.
fn numbered(name: &str, first: usize, count: usize, timestamp: i64) -> Vec<TimeSeries> {
    (first..first + count)
        .map(|n| {
            TimeSeries::new(
                name,
                [("i", n.to_string()), ("test", "remote_write".to_owned())],
                vec![Sample::new(n as f64, timestamp)],
            )
        })
        .collect()
}

/// A sink with quick retries for tests.
fn start_sink(url: &str, tune: impl FnOnce(&mut Config)) -> (RemoteWrite, Registry) {
    let mut config = Config::new(url);
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(200);
    config.timeout = Duration::from_secs(5);
    tune(&mut config);
    let mut registry = Registry::default();
    let (sink, task) = RemoteWrite::start(config, &mut registry).expect("valid config");
    tokio::spawn(task);
    (sink, registry)
}

/// Polls `stats` until `done` holds (fails after a minute).
async fn wait_for(sink: &RemoteWrite, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
    let started = Instant::now();
    loop {
        let stats = sink.stats();
        if done(&stats) {
            return stats;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waiting for {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn value(prometheus: &Prometheus, promql: &str) -> f64 {
    let result = prometheus.query(promql).await.expect("query");
    assert_eq!(result.len(), 1, "{promql}: {result:?}");
    result[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_pushed_arrive_with_their_exact_values() {
    let prometheus = Prometheus::start(Options::default())
        .await
        .expect("prometheus");
    let (sink, registry) = start_sink(&prometheus.remote_write_url(), |_| {});
    let (older, newer) = (now_ms() - 60_000, now_ms() - 30_000);
    let values = [
        (0.1, 1e300),
        (-2.5, -0.000_123),
        (42.0, 4_503_599_627_370_497.0),
    ];
    let batch = values
        .iter()
        .enumerate()
        .map(|(n, (a, b))| {
            TimeSeries::new(
                "fw_exact_value",
                [("series", n.to_string())],
                vec![Sample::new(*a, older), Sample::new(*b, newer)],
            )
        })
        .collect();
    sink.push(batch);
    sink.flush(deadline(30)).await.expect("flushed");
    let stats = sink.stats();
    assert_eq!(
        (stats.pushed, stats.sent, stats.dropped, stats.rejected),
        (6, 6, 0, 0)
    );
    assert!(stats.requests.success >= 1, "{stats:?}");

    let latest = prometheus.query("fw_exact_value").await.expect("query");
    let oldest = prometheus
        .query("min_over_time(fw_exact_value[10m])")
        .await
        .expect("query");
    let counts = prometheus
        .query("count_over_time(fw_exact_value[10m])")
        .await
        .expect("query");
    let by_series = |result: Vec<(BTreeMap<String, String>, f64)>| {
        result
            .into_iter()
            .map(|(labels, v)| (labels["series"].clone(), v))
            .collect::<BTreeMap<_, _>>()
    };
    let (latest, oldest, counts) = (by_series(latest), by_series(oldest), by_series(counts));
    for (n, (a, b)) in values.iter().enumerate() {
        let n = n.to_string();
        assert_eq!(latest[&n], *b, "latest of series {n}");
        assert_eq!(oldest[&n], a.min(*b), "oldest of series {n}");
        assert_eq!(counts[&n], 2.0, "samples of series {n}");
    }
    let labels = prometheus
        .query("fw_exact_value{series=\"0\"}")
        .await
        .expect("query");
    assert_eq!(
        labels[0].0,
        BTreeMap::from([
            ("__name__".to_owned(), "fw_exact_value".to_owned()),
            ("series".to_owned(), "0".to_owned()),
        ])
    );

    // The sink's own metrics: what it says it sent, and a page promtool accepts.
    let page = exposition::render(&registry, Format::Text).expect("render");
    assert!(
        page.contains("fleetwatch_remote_write_samples_total{outcome=\"sent\"} 6\n"),
        "{page}"
    );
    assert!(
        page.contains("fleetwatch_remote_write_queue_samples 0\n"),
        "{page}"
    );
    testing::promtool_check_metrics(&page).expect("promtool accepts the sink's metrics");
    sink.shutdown(deadline(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_restart_loses_only_what_the_counter_says() {
    const CAPACITY: usize = 1_000;
    const PUSHED: usize = 1_500;
    let mut prometheus = Prometheus::start(Options::default())
        .await
        .expect("prometheus");
    let (sink, _registry) = start_sink(&prometheus.remote_write_url(), |config| {
        config.capacity = CAPACITY;
        config.max_samples_per_request = 100;
    });
    // What arrived before the outage must survive the restart (same storage).
    let before = numbered("fw_before_restart", 0, 50, now_ms() - 20_000);
    sink.push(before);
    sink.flush(deadline(30))
        .await
        .expect("flushed before the outage");
    prometheus.stop().expect("stop");

    // One sample per series, so every sample is queryable on its own.
    let timestamp = now_ms() - 10_000;
    for first in (0..PUSHED).step_by(100) {
        sink.push(numbered("fw_restart", first, 100, timestamp));
        let stats = sink.stats();
        assert!(stats.queued <= CAPACITY as u64, "{stats:?}");
    }
    let over = (PUSHED - CAPACITY) as u64;
    // The overflow is counted at push time; wait also for the sender to have tried and failed
    // (nothing listens, so a request fails at once), so the queue is known to hold on failure.
    let stats = wait_for(&sink, "the overflow and a failed send", |s| {
        s.dropped == over && s.requests.connection_error >= 1
    })
    .await;
    assert_eq!(stats.queued, CAPACITY as u64, "{stats:?}");
    assert_eq!((stats.sent, stats.rejected), (50, 0));

    prometheus
        .restart()
        .await
        .expect("restart on the same storage");
    sink.flush(deadline(60))
        .await
        .expect("flushed after the restart");
    let stats = sink.stats();
    assert_eq!(stats.dropped, over, "{stats:?}");
    assert_eq!(stats.sent, 50 + (PUSHED as u64) - over, "{stats:?}");
    assert_eq!(value(&prometheus, "count(fw_before_restart)").await, 50.0);

    // Exactly pushed − dropped samples arrived.
    let kept = PUSHED as u64 - stats.dropped;
    assert_eq!(value(&prometheus, "count(fw_restart)").await, kept as f64);
    assert_eq!(
        value(&prometheus, "count(count_over_time(fw_restart[1h]) == 1)").await,
        kept as f64,
        "each kept series has exactly its one sample"
    );
    // The oldest were dropped: what is left is the newest CAPACITY.
    assert_eq!(value(&prometheus, "min(fw_restart)").await, over as f64);
    assert_eq!(
        value(&prometheus, "max(fw_restart)").await,
        (PUSHED - 1) as f64
    );
    sink.shutdown(deadline(5)).await;
}

/// What a fixture receiver saw.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    request: WriteRequest,
}

#[derive(Clone)]
struct Fixture {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Fixture {
    fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.address)
    }

    fn received(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
}

/// A receiver that answers the n-th request (from 0) with `answer(n)`: status and an optional
/// `Retry-After`. It decodes every body it gets.
async fn fixture(answer: fn(usize) -> (StatusCode, Option<&'static str>)) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let fixture = Fixture {
        address: listener.local_addr().expect("address"),
        received: Arc::default(),
    };
    let received = fixture.received.clone();
    tokio::spawn(async move {
        let count = Arc::new(AtomicUsize::new(0));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (received, count) = (received.clone(), count.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (received, count) = (received.clone(), count.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.expect("body").to_bytes();
                        let request = decode_body(&body).expect("a remote-write body");
                        received.lock().expect("lock").push(Received {
                            headers: parts.headers,
                            request,
                        });
                        let (status, retry_after) = answer(count.fetch_add(1, Ordering::SeqCst));
                        let mut response = Response::builder().status(status);
                        if let Some(seconds) = retry_after {
                            response = response.header("Retry-After", seconds);
                        }
                        Ok::<_, Infallible>(
                            response
                                .body(Full::new(Bytes::from_static(b"fixture says so")))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    fixture
}

fn samples_of(received: &[Received]) -> Vec<(String, f64, i64)> {
    received
        .iter()
        .flat_map(|r| &r.request.timeseries)
        .flat_map(|s| {
            let i = s.label("i").unwrap_or_default().to_owned();
            s.samples
                .iter()
                .map(move |x| (i.clone(), x.value, x.timestamp))
        })
        .collect()
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_and_nothing_is_lost() {
    let receiver = fixture(|n| match n {
        0 => (StatusCode::INTERNAL_SERVER_ERROR, None),
        1 => (StatusCode::SERVICE_UNAVAILABLE, Some("not a number")),
        2 => (StatusCode::TOO_MANY_REQUESTS, Some("0")),
        _ => (StatusCode::OK, None),
    })
    .await;
    let (sink, _registry) = start_sink(&receiver.url(), |_| {});
    sink.push(numbered("fw_retry", 0, 10, 1_000));
    sink.flush(deadline(30)).await.expect("flushed");
    let stats = sink.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.rejected),
        (10, 0, 0),
        "{stats:?}"
    );
    assert_eq!(
        (
            stats.requests.server_error,
            stats.requests.throttled,
            stats.requests.success
        ),
        (2, 1, 1),
        "{stats:?}"
    );

    let received = receiver.received.lock().expect("lock");
    assert_eq!(received.len(), 4);
    // Every attempt carried the same samples; the last one was accepted.
    let expected: Vec<_> = (0..10).map(|n| (n.to_string(), n as f64, 1_000)).collect();
    for attempt in received.iter() {
        assert_eq!(samples_of(std::slice::from_ref(attempt)), expected);
    }
    let headers = &received[3].headers;
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    let agent = headers["user-agent"].to_str().expect("ascii");
    assert_eq!(agent, concat!("fleetwatch/", env!("CARGO_PKG_VERSION")));
    // Labels sorted by name, the metric name included.
    let names: Vec<&str> = received[3].request.timeseries[0]
        .labels
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["__name__", "i", "test"]);
}

#[tokio::test]
async fn a_400_is_not_retried_and_counts_as_rejected() {
    let receiver = fixture(|_| (StatusCode::BAD_REQUEST, None)).await;
    let (sink, _registry) =
        start_sink(&receiver.url(), |config| config.max_samples_per_request = 4);
    sink.push(numbered("fw_rejected", 0, 10, 1_000));
    sink.flush(deadline(30)).await.expect("flushed");
    let stats = sink.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.rejected),
        (0, 0, 10),
        "{stats:?}"
    );
    // Three requests (4 + 4 + 2 samples), each tried once.
    assert_eq!(stats.requests.rejected, 3, "{stats:?}");
    assert_eq!(receiver.received(), 3);
    sink.shutdown(deadline(5)).await;
}

#[tokio::test]
async fn a_series_the_receiver_would_refuse_is_not_sent_and_counts_as_rejected() {
    let receiver = fixture(|_| (StatusCode::OK, None)).await;
    let (sink, _registry) = start_sink(&receiver.url(), |_| {});
    let mut batch = numbered("fw_mixed", 0, 3, 1_000);
    batch.push(TimeSeries::new(
        "fw_mixed",
        [("i", "x"), ("i", "y")],
        vec![Sample::new(1.0, 1_000), Sample::new(2.0, 2_000)],
    ));
    sink.push(batch);
    sink.flush(deadline(30)).await.expect("flushed");
    let stats = sink.stats();
    assert_eq!(
        (stats.pushed, stats.sent, stats.rejected),
        (5, 3, 2),
        "{stats:?}"
    );
    let received = receiver.received.lock().expect("lock");
    assert_eq!(samples_of(&received).len(), 3);
}

/// A receiver that accepts connections and reads requests but never answers.
async fn silent_receiver() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream); // open, unread, unanswered
        }
    });
    address
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_shutdown_keeps_its_deadline() {
    let address = silent_receiver().await;
    let url = format!("http://{address}/api/v1/write");
    let (sink, _registry) = start_sink(&url, |config| config.timeout = Duration::from_millis(200));
    sink.push(numbered("fw_silent", 0, 7, 1_000));
    let stats = wait_for(&sink, "two timeouts", |s| s.requests.timeout >= 2).await;
    assert_eq!(
        (stats.sent, stats.dropped, stats.queued),
        (0, 0, 7),
        "{stats:?}"
    );
    let started = Instant::now();
    let stats = sink
        .shutdown(Instant::now() + Duration::from_millis(500))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (stats.sent, stats.dropped, stats.queued),
        (0, 7, 0),
        "{stats:?}"
    );

    // With the default 10 s timeout, shutdown abandons the request under way at its deadline.
    let (sink, _registry) = start_sink(&url, |config| config.timeout = Duration::from_secs(10));
    sink.push(numbered("fw_silent", 0, 3, 1_000));
    let started = Instant::now();
    let stats = sink
        .shutdown(Instant::now() + Duration::from_millis(500))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (stats.sent, stats.dropped, stats.queued),
        (0, 3, 0),
        "{stats:?}"
    );
    // Pushed after the shutdown: dropped at once.
    let (sink, _registry) = start_sink(&url, |_| {});
    let clone = sink.clone();
    sink.shutdown(Instant::now()).await;
    clone.push(numbered("fw_silent", 0, 2, 1_000));
    assert_eq!(clone.stats().dropped, 2);
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, certified.cert.pem()).expect("write ca");

    let certificate = rustls::pki_types::CertificateDer::from(certified.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![certificate], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .expect("body")
                            .to_bytes();
                        let samples: usize = decode_body(&body)
                            .expect("remote-write body")
                            .timeseries
                            .iter()
                            .map(|s| s.samples.len())
                            .sum();
                        counter.fetch_add(samples, Ordering::SeqCst);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let url = format!("https://localhost:{port}/api/v1/write");

    let (sink, _registry) = start_sink(&url, |config| config.ca_file = Some(ca_file.clone()));
    sink.push(numbered("fw_tls", 0, 5, 1_000));
    sink.flush(deadline(30)).await.expect("flushed over TLS");
    assert_eq!(sink.stats().sent, 5);
    assert_eq!(received.load(Ordering::SeqCst), 5);

    // Without the CA the server is not trusted: connection errors, retried, nothing sent.
    let (untrusting, _registry) = start_sink(&url, |_| {});
    untrusting.push(numbered("fw_tls", 0, 5, 1_000));
    let stats = wait_for(&untrusting, "a refused handshake", |s| {
        s.requests.connection_error >= 1
    })
    .await;
    assert_eq!(stats.sent, 0);
    untrusting.shutdown(deadline(1)).await;

    // A CA file that is not PEM is a configuration error naming the field.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let mut config = Config::new(&url);
    config.ca_file = Some(bad);
    let error = RemoteWrite::start(config, &mut Registry::default()).expect_err("bad ca_file");
    assert!(
        error.to_string().starts_with("remote_write.ca_file: "),
        "{error}"
    );
}
