//! The exposition server over real HTTP: negotiation, gzip, health, and what it refuses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fleetwatch_telemetry::exposition::{
    self, Exposition, Format, OPENMETRICS_CONTENT_TYPE, Readiness, Scoped, ServerMetrics,
    TEXT_CONTENT_TYPE,
};
use fleetwatch_telemetry::page::{Kind, Page, Section};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end (blocking: run it off the
/// runtime).
fn get(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = chunked
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&chunked[..end]).expect("hex"), 16)
            .expect("a chunk size");
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunked[end + 2..end + 2 + size]);
        chunked = &chunked[end + 4 + size..];
    }
}

async fn server() -> (SocketAddr, Readiness, Arc<Registry>) {
    let (address, readiness, registry, _) = server_with_scope().await;
    (address, readiness, registry)
}

async fn server_with_scope() -> (SocketAddr, Readiness, Arc<Registry>, Scoped) {
    let mut registry = Registry::default();
    let served: Counter = Counter::default();
    served.inc_by(7);
    registry.register("demo_served", "Things served", served);
    let metrics = ServerMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let readiness = Readiness::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let exposition = Exposition {
        sections: Vec::new(),
        registry: registry.clone(),
        readiness: readiness.clone(),
        metrics,
        scoped: Scoped::default(),
    };
    let scoped = exposition.scoped.clone();
    tokio::spawn(exposition::serve(
        listener,
        exposition,
        std::future::pending(),
    ));
    (address, readiness, registry, scoped)
}

async fn fetch(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let (method, path) = (method.to_owned(), path.to_owned());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        get(address, &method, &path, &headers)
    })
    .await
    .expect("the request thread")
}

#[tokio::test]
async fn metrics_are_text_by_default_and_openmetrics_when_asked() {
    let (address, _, _) = server().await;
    let text = fetch(address, "GET", "/metrics", &[]).await;
    assert_eq!(text.status, 200);
    assert_eq!(text.header("content-type"), Some(TEXT_CONTENT_TYPE));
    let body = String::from_utf8(text.body).expect("utf-8");
    assert!(
        body.contains("# TYPE demo_served_total counter\ndemo_served_total 7\n"),
        "{body}"
    );
    assert!(!body.contains("# EOF"));

    let accept = [(
        "Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )];
    let om = fetch(address, "GET", "/metrics", &accept).await;
    assert_eq!(om.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    let body = String::from_utf8(om.body).expect("utf-8");
    assert!(
        body.contains("# TYPE demo_served counter\ndemo_served_total 7\n"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn gzip_when_the_scraper_accepts_it() {
    let (address, _, registry) = server().await;
    let zipped = fetch(address, "GET", "/metrics", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut page = String::new();
    flate2::read::GzDecoder::new(zipped.body.as_slice())
        .read_to_string(&mut page)
        .expect("a gzip body");
    // The page is the registry's, rendered as text (the scrape counter has moved on since).
    let rendered = exposition::render(&registry, Format::Text).expect("render");
    let first = |p: &str| p.lines().take(3).collect::<Vec<_>>().join("\n");
    assert_eq!(first(&page), first(&rendered));
    let plain = fetch(
        address,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "identity")],
    )
    .await;
    assert_eq!(plain.header("content-encoding"), None);
}

#[tokio::test]
async fn readyz_waits_for_every_component_and_healthz_does_not() {
    let (address, readiness, _) = server().await;
    let informers = readiness.component("informers");
    assert_eq!(fetch(address, "GET", "/healthz", &[]).await.status, 200);
    let not_ready = fetch(address, "GET", "/readyz", &[]).await;
    assert_eq!(not_ready.status, 503);
    assert!(String::from_utf8_lossy(&not_ready.body).contains("[-]informers not ready"));
    informers.set(true);
    let ready = fetch(address, "GET", "/readyz?verbose", &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&ready.body),
        "[+]informers ok\nreadyz check ok\n"
    );
}

#[tokio::test]
async fn scoped_series_and_checks_come_and_go_together() {
    let (address, readiness, _, scoped) = server_with_scope().await;
    readiness.component("process").set(true);
    let mut registry = Registry::default();
    let leads: Counter = Counter::default();
    leads.inc();
    registry.register("demo_term_work", "Work done this term", leads);
    let term = Readiness::default();
    let sources = term.component("sources");
    scoped.set(registry, Vec::new(), term);

    let page = String::from_utf8(fetch(address, "GET", "/metrics", &[]).await.body).expect("utf-8");
    assert!(page.contains("demo_served_total 7\n"), "{page}");
    assert!(page.contains("demo_term_work_total 1\n"), "{page}");
    let accept = [("Accept", "application/openmetrics-text")];
    let om =
        String::from_utf8(fetch(address, "GET", "/metrics", &accept).await.body).expect("utf-8");
    assert_eq!(om.matches("# EOF").count(), 1, "{om}");
    assert!(om.ends_with("# EOF\n"));
    let waiting = fetch(address, "GET", "/readyz?verbose", &[]).await;
    assert_eq!(waiting.status, 503);
    assert_eq!(
        String::from_utf8_lossy(&waiting.body),
        "[+]process ok\n[-]sources not ready\nreadyz check not ready\n"
    );
    sources.set(true);
    assert_eq!(fetch(address, "GET", "/readyz", &[]).await.status, 200);

    scoped.clear();
    let page = String::from_utf8(fetch(address, "GET", "/metrics", &[]).await.body).expect("utf-8");
    assert!(!page.contains("demo_term_work"), "{page}");
    assert!(page.contains("demo_served_total 7\n"), "{page}");
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let (address, _, _) = server().await;
    assert_eq!(fetch(address, "GET", "/debug", &[]).await.status, 404);
    assert_eq!(fetch(address, "POST", "/metrics", &[]).await.status, 405);
    let head = fetch(address, "HEAD", "/metrics", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
}

/// `rows` samples with 1 kB labels, flushed every 100: a page of `rows` kB.
#[derive(Debug, Default)]
struct Rows {
    rows: usize,
    written: AtomicUsize,
    saw_the_reader_go: AtomicBool,
}

impl Section for Rows {
    fn write(&self, page: &mut Page<'_>) {
        let mut samples = page.family("demo_row", "One row.", Kind::Gauge);
        let filler = "f".repeat(1000);
        for row in 0..self.rows {
            samples.sample(&[("filler", filler.as_str())], row as f64);
            self.written.fetch_add(1, Ordering::Relaxed);
            if row % 100 == 99 {
                samples.flush();
                if samples.is_closed() {
                    self.saw_the_reader_go.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

impl Rows {
    fn page(rows: usize) -> String {
        let mut page = Vec::new();
        Rows {
            rows,
            ..Rows::default()
        }
        .write(&mut Page::new(&mut page, Format::Text));
        String::from_utf8(page).expect("utf-8")
    }
}

#[tokio::test]
async fn a_large_page_streams_whole_plain_and_gzipped() {
    let (address, _, _, scoped) = server_with_scope().await;
    // 5 MB: many times the chunks the server writes ahead of the scraper.
    let rows = Arc::new(Rows {
        rows: 5000,
        ..Rows::default()
    });
    scoped.set(Registry::default(), vec![rows], Readiness::default());
    let expected = Rows::page(5000);

    let plain = fetch(address, "GET", "/metrics", &[]).await;
    assert_eq!(plain.header("transfer-encoding"), Some("chunked"));
    let page = String::from_utf8(plain.body).expect("utf-8");
    assert!(page.contains("demo_served_total 7\n"));
    assert!(
        page.ends_with(&expected),
        "the section follows the registry, whole"
    );

    let zipped = fetch(address, "GET", "/metrics", &[("Accept-Encoding", "gzip")]).await;
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(zipped.body.as_slice())
        .read_to_string(&mut unzipped)
        .expect("one whole gzip stream");
    assert!(unzipped.ends_with(&expected));
}

#[tokio::test]
async fn a_scraper_that_hangs_up_stops_the_page() {
    let (address, _, _, scoped) = server_with_scope().await;
    // 200 MB if it were written whole.
    let rows = Arc::new(Rows {
        rows: 200_000,
        ..Rows::default()
    });
    scoped.set(
        Registry::default(),
        vec![rows.clone()],
        Readiness::default(),
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("send");
        let mut start = vec![0; 64 * 1024];
        stream.read_exact(&mut start).expect("the page's start");
    })
    .await
    .expect("the scraper");
    let hung_up = Instant::now();
    while !rows.saw_the_reader_go.load(Ordering::Relaxed) {
        assert!(
            hung_up.elapsed() < Duration::from_secs(20),
            "the page is still being written {:?} after the scraper went",
            hung_up.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = rows.written.load(Ordering::Relaxed);
    assert!(
        written < 20_000,
        "{written} rows written for a scraper that read 64 kB"
    );
    assert_eq!(fetch(address, "GET", "/healthz", &[]).await.status, 200);
}
