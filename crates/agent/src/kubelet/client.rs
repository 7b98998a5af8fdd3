//! The kubelet client: GET of [`Endpoint`]'s two paths of one URL, and nothing else — it is the
//! agent's only HTTP client, and it cannot be pointed at another path or method.
//!
//! Every request carries the token read for this poll (marked sensitive, so no debug output
//! shows it), one deadline covers connecting, TLS, headers and body, and the body is read
//! frame by frame up to the cap, then abandoned. Built as the remote-write client is (hyper-util's
//! pooled client over hyper-rustls with the ring provider), but with only the configured CA as
//! roots: a kubelet's serving certificate is never signed by a public CA.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, USER_AGENT};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::{Endpoint, Failure, KubeletConfig};
use crate::error::Error;
use crate::health::Target;

/// The `User-Agent` of every request.
pub const USER_AGENT_VALUE: &str = concat!("fleetwatch-agent/", env!("CARGO_PKG_VERSION"));
/// A token file larger than this is refused (a service-account JWT is about 1 KiB).
const MAX_TOKEN_BYTES: u64 = 64 * 1024;
/// Of an error answer's body, at most this much is read, for the message.
const ERROR_BODY_LIMIT: usize = 1024;
/// Of that, at most this many characters go into the message.
const ERROR_TEXT_CHARS: usize = 200;

/// A bearer token, read for one poll. Its `Debug` does not show it.
pub(super) struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads `file`: the whole file, surrounding whitespace trimmed, must be a non-empty token.
    /// The messages name the file, never its contents.
    pub(super) fn read(file: &Path) -> Result<Token, Failure> {
        let failure = |what: String| {
            Failure::new(
                "token",
                format!("the token file {}: {what}", file.display()),
            )
        };
        let mut text = String::new();
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_TOKEN_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| failure(e.to_string()))?;
        if text.len() as u64 > MAX_TOKEN_BYTES {
            return Err(failure(format!("larger than {MAX_TOKEN_BYTES} bytes")));
        }
        let token = text.trim();
        if token.is_empty() {
            return Err(failure("is empty".to_owned()));
        }
        Ok(Token(token.to_owned()))
    }

    /// The `Authorization` header, marked sensitive.
    fn header(&self) -> Result<HeaderValue, Failure> {
        let mut value = HeaderValue::try_from(format!("Bearer {}", self.0)).map_err(|_| {
            Failure::new(
                "token",
                "the token file holds characters not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// `text` with every occurrence of the token replaced: whatever a kubelet (or something
    /// posing as one) echoes into an error body, the token does not reach the log.
    pub(super) fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "<token>")
    }
}

/// The PEM certificates of `file`: at least one, or a message saying why not.
pub(super) fn load_ca(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no PEM certificate", file.display()));
    }
    Ok(certificates)
}

/// Reads the two endpoints of one kubelet.
#[derive(Debug)]
pub(super) struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    scheme: Scheme,
    authority: Authority,
    /// The base URL, for messages.
    url: String,
    timeout: Duration,
    max_body_bytes: usize,
}

impl Client {
    /// A client for `config`, whose URL `uri` is (checked by `validate`).
    pub(super) fn new(config: &KubeletConfig, uri: &Uri) -> Result<Client, Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(Error::config("--kubelet", "must be https://HOST:PORT"));
        };
        let tls = tls_config(config.ca_file.as_deref())?;
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
            // Kept across polls (both endpoints at once: two connections), so a poll is not
            // two TLS handshakes; the kubelet closing them first only costs a new one.
            .pool_idle_timeout(config.interval.saturating_mul(2))
            .pool_max_idle_per_host(2)
            .build(connector);
        Ok(Client {
            http,
            scheme: scheme.clone(),
            authority: authority.clone(),
            url: format!("{scheme}://{authority}"),
            timeout: config.timeout,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// The base URL.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// GETs `endpoint`'s path; the body, whole, if the answer is a 200 within the timeout and
    /// the cap. Body bytes read are counted on `target`, whatever the outcome.
    pub(super) async fn get(
        &self,
        endpoint: Endpoint,
        token: Option<&Token>,
        target: &Target,
    ) -> Result<Bytes, Failure> {
        let request = self.request(endpoint, token)?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| request_failure(&e))?;
            let status = response.status();
            if status != StatusCode::OK {
                let excerpt = excerpt(response.into_body(), target).await;
                return Err(status_failure(status, endpoint, token.is_some(), &excerpt));
            }
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length > self.max_body_bytes as u64) {
                return Err(too_large(self.max_body_bytes));
            }
            read_capped(response.into_body(), self.max_body_bytes, declared, target).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                "timeout",
                format!("no whole answer within {:?}", self.timeout),
            )),
        }
    }

    fn request(
        &self,
        endpoint: Endpoint,
        token: Option<&Token>,
    ) -> Result<Request<Empty<Bytes>>, Failure> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(endpoint.path())
            .build()
            .map_err(|e| Failure::new("request", format!("the URL: {e}")))?;
        let mut request = Request::get(uri)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(ACCEPT, endpoint.accept())
            .body(Empty::new())
            .map_err(|e| Failure::new("request", format!("the request: {e}")))?;
        if let Some(token) = token {
            request.headers_mut().insert(AUTHORIZATION, token.header()?);
        }
        Ok(request)
    }
}

/// Reads `body` to its end, failing as soon as it passes `max` bytes.
async fn read_capped(
    mut body: Incoming,
    max: usize,
    declared: Option<u64>,
    target: &Target,
) -> Result<Bytes, Failure> {
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
    let mut out = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Failure::new("body", format!("reading the body: {}", chain(&e))))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        target.read(data.len() as u64);
        if out.len() + data.len() > max {
            return Err(too_large(max));
        }
        out.extend_from_slice(&data);
    }
    Ok(Bytes::from(out))
}

fn too_large(max: usize) -> Failure {
    Failure::new("too_large", format!("response larger than {max} bytes"))
}

/// The start of an error answer's body as one line of printable text (empty if unreadable).
async fn excerpt(mut body: Incoming, target: &Target) -> String {
    let mut out = Vec::new();
    while out.len() < ERROR_BODY_LIMIT {
        let Some(Ok(frame)) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame.into_data() {
            target.read(data.len() as u64);
            out.extend_from_slice(&data);
        }
    }
    out.truncate(ERROR_BODY_LIMIT);
    String::from_utf8_lossy(&out)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ERROR_TEXT_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A non-200 answer: for 401 and 403, what to change.
fn status_failure(
    status: StatusCode,
    endpoint: Endpoint,
    sent_token: bool,
    excerpt: &str,
) -> Failure {
    let said = if excerpt.is_empty() {
        String::new()
    } else {
        format!(" (the kubelet said: {excerpt})")
    };
    match status {
        StatusCode::UNAUTHORIZED if sent_token => Failure::new(
            "unauthorized",
            format!(
                "401 Unauthorized: the kubelet did not accept the bearer token (is \
                 --kubelet-token-file a current service-account token, and does the kubelet \
                 authenticate tokens with the API server?){said}"
            ),
        ),
        StatusCode::UNAUTHORIZED => Failure::new(
            "unauthorized",
            format!("401 Unauthorized: no bearer token was sent; set --kubelet-token-file{said}"),
        ),
        StatusCode::FORBIDDEN => Failure::new(
            "forbidden",
            format!(
                "403 Forbidden: the agent's service account needs get on {}{said}",
                endpoint.subresource()
            ),
        ),
        _ => Failure::new("status", format!("HTTP {status}{said}")),
    }
}

/// A request that got no answer: `tls` if the handshake failed, else `connect` or `request`.
fn request_failure(error: &hyper_util::client::legacy::Error) -> Failure {
    let reason = if is_tls(error) {
        "tls"
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    Failure::new(reason, chain(error))
}

/// Whether a rustls error is among `error`'s causes. tokio-rustls wraps it in an `io::Error`
/// and hyper-rustls that in another, and an `io::Error`'s `source()` skips what it wraps:
/// `get_ref` finds it.
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<rustls::Error>() {
            return true;
        }
        cause = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    false
}

/// The error and its causes, as one line (an `io::Error`'s wrapped error included).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let shown = error.to_string();
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = error.source();
    }
    text
}

/// TLS with the CA file's certificates as the only roots (none for an http URL, where it is
/// never used).
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    if let Some(file) = ca_file {
        for certificate in load_ca(file).map_err(|e| Error::config("--kubelet-ca", e))? {
            roots
                .add(certificate)
                .map_err(|e| Error::config("--kubelet-ca", format!("{}: {e}", file.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Source {
            source_name: "kubelet",
            reason: format!("TLS could not be set up: {e}"),
        })?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_trimmed_redacted_and_not_debug_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "  s3cret.jwt\n").expect("write");
        let token = Token::read(&file).expect("token");
        assert_eq!(format!("{token:?}"), "Token(..)");
        assert_eq!(
            token.redact("got Bearer s3cret.jwt!"),
            "got Bearer <token>!"
        );
        assert!(token.header().expect("header").is_sensitive());
        std::fs::write(&file, " \n").expect("write");
        let empty = Token::read(&file).expect_err("empty");
        assert_eq!(empty.reason, "token");
        assert!(empty.message.ends_with("is empty"), "{}", empty.message);
        std::fs::write(&file, "a\u{7f}b").expect("write");
        let bad = Token::read(&file)
            .expect("read")
            .header()
            .expect_err("not a header");
        assert!(!bad.message.contains("a\u{7f}b"));
    }

    #[test]
    fn forbidden_names_the_permission_of_the_path() {
        let failure = status_failure(StatusCode::FORBIDDEN, Endpoint::Summary, true, "");
        assert_eq!(
            failure.message,
            "403 Forbidden: the agent's service account needs get on nodes/stats"
        );
        let failure = status_failure(StatusCode::FORBIDDEN, Endpoint::Resource, true, "no");
        assert!(
            failure
                .message
                .contains("get on nodes/metrics (the kubelet said: no)")
        );
        let failure = status_failure(StatusCode::UNAUTHORIZED, Endpoint::Resource, false, "");
        assert!(failure.message.contains("set --kubelet-token-file"));
        assert_eq!(
            status_failure(StatusCode::NOT_FOUND, Endpoint::Resource, true, "").reason,
            "status"
        );
    }
}
