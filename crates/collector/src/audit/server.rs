//! The HTTPS server: TLS with client certificates, HTTP/1.1, one path, one method, and limits
//! on connections, header time, body size, body time and bodies buffered at once.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use fleetwatch_telemetry::limited_log::LimitedLog;

use super::aggregate::{Aggregator, BatchOutcome};
use super::event::{self, BatchError};
use super::{AuditConfig, AuditError, PATH};
use crate::component::stopped;

/// At most this many connections are served at once; more wait in the listen queue. An API
/// server replica keeps one or two open.
pub const MAX_CONNECTIONS: usize = 32;
/// At most this many bodies are read and parsed at once, so that memory is bounded by this
/// times `max_body_bytes`, not by the number of connections.
pub const MAX_BODIES_AT_ONCE: usize = 4;
/// A client that has not finished the TLS handshake, or sent its request headers, by then is
/// disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A body must have arrived in full by then (the API server sends a batch at once).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After refusing a body it did not read, the server reads and discards what the client still
/// sends for at most this long before closing, so that the client reads the refusal instead of
/// a connection reset.
pub const LINGER: Duration = Duration::from_secs(2);
/// Bodies up to this size are parsed on the connection's task; larger ones on a blocking
/// thread. 400 Metadata-level events are about 250 KiB.
const PARSE_INLINE_BYTES: usize = 512 << 10;
/// The top-K counts are halved this often.
pub const DECAY_INTERVAL: Duration = Duration::from_secs(600);
/// Warnings of one kind are logged at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// A bound, not yet serving, audit webhook receiver.
pub struct Receiver {
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    max_body_bytes: usize,
    aggregator: Aggregator,
    bodies: Arc<Semaphore>,
    log: LimitedLog,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Binds `config.listen`, loads the certificates and registers the series in `registry`.
    pub fn bind(config: &AuditConfig, registry: &mut Registry) -> Result<Receiver, AuditError> {
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| AuditError::Bind {
                address: config.listen,
                source,
            })?;
        Receiver::on_listener(listener, config, registry)
    }

    /// As [`Receiver::bind`], on a listener already bound (`config.listen` is not used).
    /// Connections that arrive before [`Receiver::serve`] wait in its queue.
    pub fn on_listener(
        listener: std::net::TcpListener,
        config: &AuditConfig,
        registry: &mut Registry,
    ) -> Result<Receiver, AuditError> {
        config.validate().map_err(AuditError::Config)?;
        let tls = server_config(config)?;
        listener
            .set_nonblocking(true)
            .map_err(|source| AuditError::Bind {
                address: config.listen,
                source,
            })?;
        Ok(Receiver {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            shared: Arc::new(Shared {
                max_body_bytes: config.max_body_bytes,
                aggregator: Aggregator::register(registry, config.top_k),
                bodies: Arc::new(Semaphore::new(MAX_BODIES_AT_ONCE)),
                log: LimitedLog::new(WARN_INTERVAL),
            }),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` turns true; then closes the listener and asks every connection to
    /// finish the request it is on and close.
    pub async fn serve(self, mut stop: watch::Receiver<bool>) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "the audit webhook listener cannot be used");
                return;
            }
        };
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut decay =
            tokio::time::interval_at(tokio::time::Instant::now() + DECAY_INTERVAL, DECAY_INTERVAL);
        loop {
            let (tcp, peer, permit) = tokio::select! {
                () = stopped(&mut stop) => return,
                _ = decay.tick() => {
                    self.shared.aggregator.decay();
                    continue;
                }
                next = accept(&listener, &connections) => match next {
                    Some(next) => next,
                    None => return,
                },
            };
            let connection = Connection {
                shared: self.shared.clone(),
                acceptor: self.acceptor.clone(),
                stop: stop.clone(),
                peer,
            };
            tokio::spawn(async move {
                connection.run(tcp).await;
                drop(permit);
            });
        }
    }
}

/// The next connection, once a connection slot is free; `None` if the slots are gone.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = connections.clone().acquire_owned().await.ok()?;
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => return Some((tcp, peer, permit)),
            // Out of file descriptors and the like: wait, and try again.
            Err(error) => {
                tracing::warn!(%error, "accepting an audit webhook connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The rustls server configuration: the serving certificate, and client certificates required
/// and checked against the client CA.
fn server_config(config: &AuditConfig) -> Result<ServerConfig, AuditError> {
    let (Some(cert_file), Some(key_file), Some(ca_file)) = (
        &config.tls_cert_file,
        &config.tls_key_file,
        &config.client_ca_file,
    ) else {
        return Err(AuditError::Config(
            "audit: tls_cert_file, tls_key_file and client_ca_file are required".into(),
        ));
    };
    let certs = certificates(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| tls(key_file, e))?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(ca_file)? {
        roots.add(ca).map_err(|e| tls(ca_file, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls(ca_file, e))?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(cert_file, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(cert_file, e))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, AuditError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| tls(file, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(file, e))?;
    if certs.is_empty() {
        return Err(tls(file, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn tls(file: &Path, reason: impl std::fmt::Display) -> AuditError {
    AuditError::Tls {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// One accepted connection.
struct Connection {
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream) {
        let tls = match tokio::time::timeout(HEADER_READ_TIMEOUT, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => return self.refused(&error.to_string()),
            Err(_) => return self.refused("no TLS handshake in time"),
        };
        self.shared.aggregator.connection(true);
        // Set by the handler when it answers without reading a body the client is sending.
        let linger = Arc::new(AtomicBool::new(false));
        let (shared, flag) = (self.shared.clone(), linger.clone());
        // Boxed: taking the stream back from hyper (to linger) needs an `Unpin` future.
        let service = service_fn(move |request| {
            let (shared, flag) = (shared.clone(), flag.clone());
            Box::pin(async move { Ok::<_, Infallible>(respond(shared, &flag, request).await) })
        });
        let mut connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(tls), service);
        let served = tokio::select! {
            served = poll_fn(|cx| connection.poll_without_shutdown(cx)) => served,
            () = stopped(&mut self.stop) => {
                std::pin::Pin::new(&mut connection).graceful_shutdown();
                poll_fn(|cx| connection.poll_without_shutdown(cx)).await
            }
        };
        if let Err(error) = served {
            tracing::debug!(peer = %self.peer, %error, "audit webhook connection ended with an error");
        }
        let tls = connection.into_parts().io.into_inner();
        close(tls, linger.load(Ordering::Relaxed)).await;
    }

    fn refused(&self, reason: &str) {
        self.shared.aggregator.connection(false);
        self.shared.log.warn(
            "audit-handshake",
            format_args!(
                "audit webhook: refused a connection from {} at the TLS handshake: {reason}",
                self.peer
            ),
        );
    }
}

/// Closes a connection: TLS close_notify and FIN, and, if the client may still be sending a
/// body that was refused, reads and discards it for up to [`LINGER`] first so that the client
/// reads the answer rather than a reset.
async fn close(mut tls: TlsStream<TcpStream>, linger: bool) {
    let _ = tls.shutdown().await;
    if !linger {
        return;
    }
    let mut sink = vec![0u8; 64 << 10];
    let deadline = tokio::time::Instant::now() + LINGER;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tls.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

/// Answers one webhook request, counting its outcome.
async fn respond(
    shared: Arc<Shared>,
    linger: &AtomicBool,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (outcome, response) = handle(&shared, linger, request).await;
    shared.aggregator.batch(outcome);
    tracing::trace!(outcome = outcome.label(), elapsed = ?started.elapsed(), "audit batch");
    response
}

async fn handle(
    shared: &Arc<Shared>,
    linger: &AtomicBool,
    request: Request<Incoming>,
) -> (BatchOutcome, Response<Full<Bytes>>) {
    let has_body = !request.body().is_end_stream();
    let refuse_unread = |outcome, status, body: String| {
        // Whatever body came with it is left unread: linger so the answer arrives.
        linger.store(has_body, Ordering::Relaxed);
        (outcome, plain(status, body))
    };
    if request.uri().path() != PATH {
        return refuse_unread(
            BatchOutcome::NotFound,
            StatusCode::NOT_FOUND,
            format!("not found: the audit webhook is POST {PATH}\n"),
        );
    }
    if request.method() != Method::POST {
        let (outcome, mut response) = refuse_unread(
            BatchOutcome::BadMethod,
            StatusCode::METHOD_NOT_ALLOWED,
            "only POST\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return (outcome, response);
    }
    let max = shared.max_body_bytes;
    if declared_length(&request).is_some_and(|length| length > max as u64) {
        shared.log.warn("audit-too-large", too_large_message(max));
        return refuse_unread(
            BatchOutcome::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes\n"),
        );
    }
    let body = match read_body(shared, request.into_body()).await {
        Ok(body) => body,
        Err((outcome, status, message)) => return refuse_unread(outcome, status, message),
    };
    if body.len() <= PARSE_INLINE_BYTES {
        return accept_batch(shared, &body);
    }
    // Parsing a large batch takes long enough to hold up other connections on this thread.
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || accept_batch(&shared, &body))
        .await
        .unwrap_or_else(|_| {
            (
                BatchOutcome::ReadError,
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "counting the batch failed\n".into(),
                ),
            )
        })
}

/// `Content-Length`, if the request declares one.
fn declared_length(request: &Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

type Refusal = (BatchOutcome, StatusCode, String);

/// Reads the whole body, stopping at `max_body_bytes` (a chunked body declares no length) and
/// at [`BODY_READ_TIMEOUT`], holding one of the [`MAX_BODIES_AT_ONCE`] slots meanwhile.
async fn read_body(shared: &Shared, body: Incoming) -> Result<Bytes, Refusal> {
    let max = shared.max_body_bytes;
    let read = async {
        let _slot = shared.bodies.acquire().await;
        Limited::new(body, max).collect().await
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            shared.log.warn("audit-too-large", too_large_message(max));
            Err((
                BatchOutcome::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {max} bytes\n"),
            ))
        }
        Ok(Err(error)) => Err((
            BatchOutcome::ReadError,
            StatusCode::BAD_REQUEST,
            format!("reading the body failed: {error}\n"),
        )),
        Err(_) => Err((
            BatchOutcome::ReadError,
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {BODY_READ_TIMEOUT:?}\n"),
        )),
    }
}

fn too_large_message(max: usize) -> String {
    format!(
        "audit webhook: refused a batch larger than audit.max_body_bytes ({max}); raise it, or \
         lower the API server's --audit-webhook-truncate-max-batch-size"
    )
}

/// Parses and counts a batch. A batch that is not an EventList is refused (400): retrying it
/// cannot help, but the API server should not be told it was taken.
fn accept_batch(shared: &Shared, body: &[u8]) -> (BatchOutcome, Response<Full<Bytes>>) {
    match event::parse(body) {
        Ok(events) => {
            let tally = shared.aggregator.record(&events);
            if let Some(why) = tally.first_malformed {
                shared.log.warn(
                    "audit-malformed",
                    format_args!(
                        "audit webhook: {} malformed events in a batch of {} (the first: {why})",
                        tally.malformed,
                        events.len()
                    ),
                );
            }
            (BatchOutcome::Accepted, plain(StatusCode::OK, String::new()))
        }
        Err(error) => {
            let outcome = match error {
                BatchError::NotJson(_) => BatchOutcome::NotJson,
                BatchError::NotEventList(_) => BatchOutcome::NotEventList,
            };
            shared
                .log
                .warn("audit-bad-batch", format_args!("audit webhook: {error}"));
            (
                outcome,
                plain(StatusCode::BAD_REQUEST, format!("{error}\n")),
            )
        }
    }
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
