//! The `/metrics` endpoint and the health endpoints of a fleetwatch process.
//!
//! `/metrics` renders a `prometheus_client` registry and the [`Section`]s on each scrape (off
//! the async threads: a large collector's page takes a second) in the format the scraper asks for — Prometheus
//! text 0.0.4 by default, which is what `promtool check metrics` and most scrapers read, or
//! OpenMetrics 1.0 when the `Accept` header names it — and gzips it when `Accept-Encoding`
//! allows. `/healthz` answers while the process serves; `/readyz` answers 200 only when every
//! component registered in its [`Readiness`] says it is ready, and `?verbose` lists them in the
//! API server's style. Series and checks that exist only for a while — the collector's sources,
//! which run only while it leads — live in a [`Scoped`] beside the process's own.
//!
//! The page is streamed: the sections are written a chunk at a time onto a bounded queue that
//! the response reads, so a 275 MiB page costs a few chunks of memory, and a scraper that stops
//! reading holds no lock (sections flush only between slices of their sources). A page the
//! scraper has not read within [`SCRAPE_DEADLINE`] is abandoned and the response aborted,
//! never ended early as if complete.
//!
//! The server is small on purpose: GET and HEAD only, a bounded number of connections, a
//! header-read timeout, no request bodies read.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use crate::page::{CHUNK_BYTES, Page, Section, Sink};

/// The content type of Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// At most this many connections are served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 64;
/// A client that has not sent its request headers by then is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A page not read to the end by then is abandoned: longer than any scrape timeout Prometheus
/// allows at the usual intervals, short enough that a stuck scraper does not pin a thread.
pub const SCRAPE_DEADLINE: Duration = Duration::from_secs(60);
/// Chunks written ahead of the scraper: 1 MiB at `CHUNK_BYTES`, a bound on the page's memory
/// per scrape, not a measured optimum.
const CHUNKS_AHEAD: usize = 4;

/// The format a scrape is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics only if it names
    /// `application/openmetrics-text` with a non-zero quality; text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let asks_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if asks_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Renders `registry` in `format`.
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    render_all(&[registry], format)
}

/// Renders `registries` as one page in `format` (their family names must not overlap).
pub fn render_all(registries: &[&Registry], format: Format) -> Result<String, std::fmt::Error> {
    let mut page = families(registries, format)?;
    if format == Format::OpenMetrics {
        page.push_str(EOF);
    }
    Ok(page)
}

fn write_sections(page: &mut Page<'_>, sections: &[Arc<dyn Section>]) {
    for section in sections {
        section.write(page);
        page.flush();
    }
}

/// Ends a page in `format`.
fn end(page: &mut Vec<u8>, format: Format) {
    if format == Format::OpenMetrics {
        page.extend_from_slice(EOF.as_bytes());
    }
}

/// OpenMetrics' last line.
const EOF: &str = "# EOF\n";

/// The registries' families in `format`, without OpenMetrics' `# EOF`.
fn families(registries: &[&Registry], format: Format) -> Result<String, std::fmt::Error> {
    let mut openmetrics = String::new();
    for registry in registries {
        encode_registry(&mut openmetrics, registry)?;
    }
    Ok(match format {
        Format::OpenMetrics => openmetrics,
        Format::Text => openmetrics_to_text(&openmetrics),
    })
}

/// Rewrites `prometheus_client`'s OpenMetrics output as text format 0.0.4, which it cannot
/// write itself. Only the metadata lines differ for what fleetwatch registers: a counter's
/// family is named after its samples (`x_total`), `unknown` is `untyped`, `info` and `stateset`
/// are gauges, and there is no `# UNIT` or `# EOF`. Sample lines pass through unchanged
/// (fleetwatch registers no exemplars).
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut text = String::with_capacity(openmetrics.len());
    // A HELP line waits for its family's TYPE line (which follows it), which says whether the
    // family is a counter and so renamed.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        let mut words = line.strip_prefix("# ").map(|c| c.splitn(3, ' '));
        let mut word = || words.as_mut().and_then(Iterator::next).unwrap_or_default();
        let (keyword, name, rest) = (word(), word(), word());
        if keyword == "TYPE" {
            let kind = match rest {
                "unknown" | "gaugehistogram" => "untyped",
                "info" | "stateset" => "gauge",
                kind => kind,
            };
            let counter = kind == "counter";
            if let Some((help_name, help)) = pending_help.take() {
                push_metadata(
                    &mut text,
                    "HELP",
                    help_name,
                    counter && help_name == name,
                    help,
                );
            }
            push_metadata(&mut text, "TYPE", name, counter, kind);
            continue;
        }
        if let Some((help_name, help)) = pending_help.take() {
            push_metadata(&mut text, "HELP", help_name, false, help);
        }
        match keyword {
            "HELP" => pending_help = Some((name, rest)),
            "EOF" | "UNIT" => {}
            _ => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    if let Some((help_name, help)) = pending_help {
        push_metadata(&mut text, "HELP", help_name, false, help);
    }
    text
}

fn push_metadata(text: &mut String, keyword: &str, name: &str, counter: bool, rest: &str) {
    text.push_str("# ");
    text.push_str(keyword);
    text.push(' ');
    text.push_str(name);
    if counter && !name.ends_with("_total") {
        text.push_str("_total");
    }
    text.push(' ');
    text.push_str(rest);
    text.push('\n');
}

/// Whether an `Accept-Encoding` header allows gzip.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|header| {
        header.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| p.replace(' ', "") == "q=0")
        })
    })
}

/// The readiness of a process's components, for `/readyz`. Every component starts not ready.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    components: Arc<Mutex<Vec<Component>>>,
}

/// A component's name and readiness flag.
type Component = (String, Arc<AtomicBool>);

/// One component's readiness flag (from [`Readiness::component`]).
#[derive(Debug, Clone)]
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    /// Marks the component ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

impl Readiness {
    /// Registers a component, not ready until its flag says so.
    pub fn component(&self, name: impl Into<String>) -> Ready {
        let flag = Arc::new(AtomicBool::new(false));
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.into(), flag.clone()));
        Ready(flag)
    }

    /// Whether every component is ready, and one line per component in the API server's
    /// `/readyz?verbose` style (`[+]name ok`, `[-]name not ready`).
    pub fn report(&self) -> (bool, String) {
        let components = self
            .components
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all = true;
        let mut lines = String::new();
        for (name, flag) in components.iter() {
            let ready = flag.load(Ordering::Relaxed);
            all &= ready;
            let (mark, state) = if ready {
                ('+', "ok")
            } else {
                ('-', "not ready")
            };
            lines.push_str(&format!("[{mark}]{name} {state}\n"));
        }
        (all, lines)
    }
}

/// Series and readiness checks that come and go together while the process serves: the
/// collector's sources, which exist only while it leads. Empty until [`Scoped::set`]; cheap to
/// clone (clones share the contents).
#[derive(Debug, Clone, Default)]
pub struct Scoped(Arc<RwLock<Option<ScopedParts>>>);

/// What a [`Scoped`] holds while set.
#[derive(Debug, Clone)]
struct ScopedParts {
    registry: Arc<Registry>,
    sections: Arc<[Arc<dyn Section>]>,
    readiness: Readiness,
}

impl Scoped {
    /// Serves `registry` and then `sections` beside the process's own series and reports
    /// `readiness` in `/readyz`, replacing what was there.
    pub fn set(&self, registry: Registry, sections: Vec<Arc<dyn Section>>, readiness: Readiness) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(ScopedParts {
            registry: Arc::new(registry),
            sections: sections.into(),
            readiness,
        });
    }

    /// Removes the series and checks.
    pub fn clear(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn current(&self) -> Option<ScopedParts> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The exposition server's own metrics.
#[derive(Debug, Clone)]
pub struct ServerMetrics {
    render_seconds: Histogram,
    scrapes: Family<Vec<(String, String)>, Counter>,
}

impl ServerMetrics {
    /// Registers `fleetwatch_exposition_*` in `registry`, before it is shared with the server.
    pub fn register(registry: &mut Registry) -> ServerMetrics {
        let metrics = ServerMetrics {
            // 1 ms … ~4 s: a render beyond 100 ms is a problem worth seeing.
            render_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 13),
            ),
            scrapes: Family::default(),
        };
        registry.register(
            "fleetwatch_exposition_render_seconds",
            "Time to write the /metrics page, until the scraper has all but its last chunks",
            metrics.render_seconds.clone(),
        );
        registry.register(
            "fleetwatch_exposition_scrapes",
            "Scrapes of /metrics by format and encoding",
            metrics.scrapes.clone(),
        );
        metrics
    }
}

/// What the server serves.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The registry `/metrics` renders; fully registered before it is shared.
    pub registry: Arc<Registry>,
    /// Series written onto the page after the registry's (see [`Section`]).
    pub sections: Vec<Arc<dyn Section>>,
    /// The components `/readyz` reports.
    pub readiness: Readiness,
    /// The server's own metrics, registered in `registry`.
    pub metrics: ServerMetrics,
    /// Series and checks served beside `registry` and `readiness` while they exist.
    pub scoped: Scoped,
}

/// The start of a page, rendered, and the sections still to write.
type PageParts = (Vec<u8>, Vec<Arc<dyn Section>>);

impl Exposition {
    /// The page `/metrics` serves now, whole: the process's series and the scoped ones.
    pub fn render(&self, format: Format) -> Result<Vec<u8>, std::fmt::Error> {
        let (mut page, sections) = self.parts(format)?;
        write_sections(&mut Page::new(&mut page, format), &sections);
        end(&mut page, format);
        Ok(page)
    }

    /// The registries' families, rendered (the start of the page), and the sections that
    /// follow them.
    fn parts(&self, format: Format) -> Result<PageParts, std::fmt::Error> {
        Ok(match self.scoped.current() {
            Some(scoped) => (
                families(&[&self.registry, &scoped.registry], format)?.into_bytes(),
                self.sections
                    .iter()
                    .chain(&*scoped.sections)
                    .cloned()
                    .collect(),
            ),
            None => (
                families(&[&self.registry], format)?.into_bytes(),
                self.sections.clone(),
            ),
        })
    }

    /// Whether the process and its scoped components are ready, one line per component.
    fn readiness_report(&self) -> (bool, String) {
        let (mut ready, mut lines) = self.readiness.report();
        if let Some(scoped) = self.scoped.current() {
            let (scoped_ready, scoped_lines) = scoped.readiness.report();
            ready &= scoped_ready;
            lines.push_str(&scoped_lines);
        }
        (ready, lines)
    }
}

/// A server started by [`spawn`]: its address, for messages, and its task.
#[derive(Debug)]
pub struct Serving {
    /// The listener's address (`?` if it could not be read).
    pub address: String,
    /// Ends once the server has stopped accepting.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// [`serve`] on a task of its own until `stop` turns true (or its sender is gone), logging the
/// address it serves on.
pub fn spawn(
    listener: TcpListener,
    exposition: Exposition,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Serving {
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let task = tokio::spawn(serve(listener, exposition, async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }));
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    Serving { address, task }
}

/// Serves `exposition` on `listener` until `shutdown` completes; then stops accepting (scrapes
/// in progress finish on their own).
pub async fn serve(
    listener: TcpListener,
    exposition: Exposition,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return Ok(()),
            permit = connections.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { return Ok(()) };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait, and try again.
                Err(error) => {
                    tracing::warn!(%error, "accepting a /metrics connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let exposition = exposition.clone();
                async move { Ok::<_, Infallible>(respond(&exposition, &request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "metrics connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// A response's body: a short one, or a page as it is written.
type Body = Either<Full<Bytes>, PageBody>;

async fn respond(exposition: &Exposition, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
    }
    let verbose = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    match request.uri().path() {
        "/metrics" => metrics(exposition, request.headers()).await,
        "/healthz" | "/livez" => plain(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let (ready, lines) = exposition.readiness_report();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let summary = if ready { "ok\n" } else { "not ready\n" };
            let body = if verbose || !ready {
                format!("{lines}readyz check {}", summary)
            } else {
                summary.to_owned()
            };
            plain(status, body)
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: this server serves /metrics, /healthz and /readyz\n".into(),
        ),
    }
}

async fn metrics(exposition: &Exposition, headers: &HeaderMap) -> Response<Body> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(header(ACCEPT));
    let gzip = accepts_gzip(header(ACCEPT_ENCODING));
    let labels = vec![
        ("format".to_owned(), format!("{format:?}").to_lowercase()),
        ("gzip".to_owned(), gzip.to_string()),
    ];
    exposition.metrics.scrapes.get_or_create(&labels).inc();
    let Ok((mut page, sections)) = exposition.parts(format) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the registry could not be encoded\n".into(),
        );
    };
    let (chunks, body) = mpsc::channel(CHUNKS_AHEAD);
    let complete = Arc::new(AtomicBool::new(false));
    let mut sink = Chunks {
        chunks,
        runtime: tokio::runtime::Handle::current(),
        deadline: tokio::time::Instant::now() + SCRAPE_DEADLINE,
        // The fast level: a scrape every 15–30 s should not cost more CPU compressing than
        // writing.
        gzip: gzip.then(|| GzEncoder::new(Vec::with_capacity(CHUNK_BYTES), Compression::fast())),
        complete: complete.clone(),
    };
    let render_seconds = exposition.metrics.render_seconds.clone();
    // Writing a large page is CPU work, and the sink waits for the scraper: a blocking thread.
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        write_sections(
            &mut Page::streaming(&mut page, format, &mut sink),
            &sections,
        );
        end(&mut page, format);
        sink.finish(page);
        render_seconds.observe(started.elapsed().as_secs_f64());
    });
    let mut response = Response::builder()
        .header(CONTENT_TYPE, format.content_type())
        .header(VARY, "Accept, Accept-Encoding");
    if gzip {
        response = response.header(CONTENT_ENCODING, "gzip");
    }
    response
        .body(Either::Right(PageBody { body, complete }))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, String::new()))
}

/// Queues a page's chunks for its response, gzipped if asked, until the deadline.
struct Chunks {
    chunks: mpsc::Sender<Bytes>,
    runtime: tokio::runtime::Handle,
    deadline: tokio::time::Instant,
    gzip: Option<GzEncoder<Vec<u8>>>,
    /// Set once the last chunk is queued: the body ends cleanly only then.
    complete: Arc<AtomicBool>,
}

impl Chunks {
    /// Queues `bytes` as they go on the wire, waiting while the scraper is behind; false once
    /// it has gone or the deadline has passed.
    fn queue(&self, bytes: Vec<u8>) -> bool {
        // An empty chunk would read as the end of a chunked body: nothing to send.
        if bytes.is_empty() {
            return true;
        }
        let queued = self.runtime.block_on(tokio::time::timeout_at(
            self.deadline,
            self.chunks.send(Bytes::from(bytes)),
        ));
        matches!(queued, Ok(Ok(())))
    }

    /// Sends the last chunk and, if the whole page went, marks it complete.
    fn finish(mut self, last: Vec<u8>) {
        let sent = self.send(last)
            && match self.gzip.take().map(GzEncoder::finish) {
                None => true,
                Some(Ok(rest)) => self.queue(rest),
                Some(Err(_)) => false,
            };
        self.complete.store(sent, Ordering::Release);
    }
}

impl Sink for Chunks {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        let Some(encoder) = &mut self.gzip else {
            return self.queue(chunk);
        };
        if encoder.write_all(&chunk).is_err() {
            return false;
        }
        // Compressed bytes go out once they are worth a write of their own.
        if encoder.get_ref().len() < CHUNK_BYTES / 4 {
            return true;
        }
        let compressed = std::mem::replace(encoder.get_mut(), Vec::with_capacity(CHUNK_BYTES));
        self.queue(compressed)
    }
}

/// A page as it is written. Ends with an error if the writer stopped before the end: hyper
/// then aborts the response, so the scraper sees a failed scrape, not a short page.
#[derive(Debug)]
pub struct PageBody {
    body: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
}

/// The page was abandoned before its end.
#[derive(Debug, thiserror::Error)]
#[error("the page was abandoned before its end (not read within {SCRAPE_DEADLINE:?})")]
pub struct Abandoned;

impl http_body::Body for PageBody {
    type Data = Bytes;
    type Error = Abandoned;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Abandoned>>> {
        self.body.poll_recv(cx).map(|chunk| match chunk {
            Some(chunk) => Some(Ok(Frame::data(chunk))),
            None if self.complete.load(Ordering::Acquire) => None,
            None => Some(Err(Abandoned)),
        })
    }
}

fn plain(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::gauge::Gauge;

    fn registry() -> Registry {
        let mut registry = Registry::default();
        let requests: Counter = Counter::default();
        requests.inc_by(3);
        registry.register("demo_requests", "Requests served", requests);
        let temperature: Gauge = Gauge::default();
        temperature.set(-2);
        registry.register("demo_temperature", "A gauge", temperature);
        registry
    }

    #[test]
    fn text_names_counter_families_after_their_samples_and_has_no_eof() {
        let text = render(&registry(), Format::Text).expect("render");
        assert_eq!(
            text,
            "# HELP demo_requests_total Requests served.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total 3\n\
             # HELP demo_temperature A gauge.\n\
             # TYPE demo_temperature gauge\n\
             demo_temperature -2\n"
        );
    }

    #[test]
    fn openmetrics_is_prometheus_clients_own_encoding() {
        let page = render(&registry(), Format::OpenMetrics).expect("render");
        assert!(page.starts_with("# HELP demo_requests Requests served.\n"));
        assert!(page.ends_with("# EOF\n"));
    }

    #[test]
    fn unknown_and_info_families_become_untyped_and_gauge() {
        let om = "# HELP a x.\n# TYPE a unknown\na 1\n# TYPE b info\nb_info{v=\"1\"} 1\n\
                  # TYPE c_seconds histogram\n# UNIT c_seconds seconds\nc_seconds_count 0\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP a x.\n# TYPE a untyped\na 1\n# TYPE b gauge\nb_info{v=\"1\"} 1\n\
             # TYPE c_seconds histogram\nc_seconds_count 0\n"
        );
    }

    #[test]
    fn negotiation_prefers_text_unless_openmetrics_is_asked_for() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        // Prometheus 2.42's own Accept header.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Text
        );
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn readiness_needs_every_component() {
        let readiness = Readiness::default();
        let informers = readiness.component("informers");
        let scrapes = readiness.component("apiserver-scrapes");
        informers.set(true);
        let (ready, lines) = readiness.report();
        assert!(!ready);
        assert_eq!(lines, "[+]informers ok\n[-]apiserver-scrapes not ready\n");
        scrapes.set(true);
        assert!(readiness.report().0);
    }
}
