//! One remote-write request attempt over HTTP(S): the headers the protocol requires, the
//! timeout, and what the answer means. It can only POST a remote-write body to the one
//! configured URL; it is no general HTTP client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::config::{Config, ConfigError};
use super::metrics::RequestOutcome;
use super::retry::{Verdict, retry_after, verdict};

/// The `User-Agent` of every request.
pub const USER_AGENT_VALUE: &str = concat!("fleetwatch/", env!("CARGO_PKG_VERSION"));
/// The remote-write protocol version header's value for protocol 1.0.
pub const PROTOCOL_VERSION: &str = "0.1.0";
/// Of an error response's body, at most this much is read (for the log).
const ERROR_BODY_LIMIT: usize = 1024;
/// A success response's body is read (so the connection can be reused) up to this.
const BODY_LIMIT: usize = 64 * 1024;

/// How one attempt went.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub outcome: RequestOutcome,
    pub verdict: Verdict,
    /// A 429's or 5xx's `Retry-After`, in seconds, capped.
    pub retry_after: Option<Duration>,
    /// For the log: the status and the start of the body, or the error.
    pub detail: String,
}

/// Sends request bodies to the configured URL.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
    max_retry_after: Duration,
}

impl Client {
    /// A client for `config`, whose URL `validate` parsed as `uri`.
    pub fn new(config: &Config, uri: Uri) -> Result<Client, ConfigError> {
        let tls = tls_config(config, &uri)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false); // the TLS layer takes https URLs
        http.set_connect_timeout(Some(config.timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(Client {
            http,
            uri,
            timeout: config.timeout,
            max_retry_after: config.max_backoff,
        })
    }

    /// The URL requests go to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// POSTs one body, giving up after the timeout.
    pub async fn send(&self, body: Bytes) -> Attempt {
        let request = Request::post(self.uri.clone())
            .header(CONTENT_ENCODING, "snappy")
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", PROTOCOL_VERSION)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            // Not expected: the URL was validated and the headers are constants.
            Err(error) => {
                return Attempt {
                    outcome: RequestOutcome::Rejected,
                    verdict: Verdict::Rejected,
                    retry_after: None,
                    detail: format!("the request could not be built: {error}"),
                };
            }
        };
        let exchange = async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let limit = if status.is_success() {
                BODY_LIMIT
            } else {
                ERROR_BODY_LIMIT
            };
            // A body past the limit is cut short; only the log would have shown it.
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Attempt {
                outcome: RequestOutcome::Timeout,
                verdict: Verdict::Retry,
                retry_after: None,
                detail: format!("no answer within {:?}", self.timeout),
            },
            Ok(Err(error)) => Attempt {
                outcome: RequestOutcome::ConnectionError,
                verdict: Verdict::Retry,
                retry_after: None,
                detail: error_chain(&error),
            },
            Ok(Ok((status, retry_after_header, body))) => {
                let verdict = verdict(status);
                let outcome = match verdict {
                    Verdict::Sent => RequestOutcome::Success,
                    Verdict::Rejected => RequestOutcome::Rejected,
                    Verdict::Retry if status == StatusCode::TOO_MANY_REQUESTS => {
                        RequestOutcome::Throttled
                    }
                    Verdict::Retry => RequestOutcome::ServerError,
                };
                let retry_after = match verdict {
                    Verdict::Retry => {
                        retry_after(retry_after_header.as_deref(), self.max_retry_after)
                    }
                    _ => None,
                };
                let text = String::from_utf8_lossy(&body);
                Attempt {
                    outcome,
                    verdict,
                    retry_after,
                    detail: format!("HTTP {status}: {}", text.trim()),
                }
            }
        }
    }
}

/// The error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The TLS client configuration: for https, the system's roots and `ca_file`'s certificates;
/// for http, none are loaded (the configuration is never used).
fn tls_config(config: &Config, uri: &Uri) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    if uri.scheme_str() == Some("https") {
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = &config.ca_file {
            let tls_error = |reason: String| ConfigError::Tls {
                field: "ca_file",
                reason,
            };
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_error(format!("{}: {e}", path.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
            if certificates.is_empty() {
                return Err(tls_error(format!(
                    "{} holds no PEM certificate",
                    path.display()
                )));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
            }
        } else if added == 0 {
            let errors: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
            return Err(ConfigError::Tls {
                field: "url",
                reason: format!(
                    "{uri} is https but this system has no trusted CA certificates{}; install \
                     them (ca-certificates) or set ca_file",
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", errors.join("; "))
                    }
                ),
            });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls {
            field: "url",
            reason: format!("TLS could not be set up: {e}"),
        })?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}
