//! One GET of a collector's `/metrics` over plain HTTP, bounded in time and size.
//!
//! Hand-written on a tokio `TcpStream` rather than with hyper: the collector and the binary may
//! declare no HTTP client crate (`crates/fleetwatch/tests/architecture.rs`), so that nothing but
//! the budgeted client can reach an API server. This one cannot: it speaks plain HTTP only and
//! refuses `https://`, and kube-apiserver serves TLS only (its insecure port is long gone).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response head (status line and headers) read.
const MAX_HEAD_BYTES: usize = 64 << 10;
/// How much of an error response's body is quoted in the error.
const QUOTED_BODY_CHARS: usize = 200;

/// Why a read of the collector's page failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// A URL this reader cannot use.
    #[error("{url}: {reason}")]
    Url { url: String, reason: &'static str },
    /// Nothing listens there.
    #[error("is the collector running? (connection refused to {address}, reading {url})")]
    Refused { url: String, address: String },
    /// The whole read took longer than the timeout.
    #[error("{url}: no complete answer within {after:?}")]
    Timeout { url: String, after: Duration },
    /// The collector answered, but not 200.
    #[error("{url} answered HTTP {status} {reason}{}", quote(body))]
    Status {
        url: String,
        status: u16,
        reason: String,
        body: String,
    },
    /// The page is larger than the limit.
    #[error("{url}: the answer is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: usize },
    /// The answer is not HTTP as this reader understands it.
    #[error("{url}: not a valid HTTP answer: {reason}")]
    Protocol { url: String, reason: String },
    /// Resolving, connecting, writing or reading failed otherwise.
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
}

fn quote(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let cut: String = body.chars().take(QUOTED_BODY_CHARS).collect();
    format!(": {cut:?}")
}

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as given, for messages.
    pub text: String,
    /// Host as written (an IPv6 address keeps its brackets, as the Host header wants).
    pub host: String,
    pub port: u16,
    /// Path and query, `/metrics` when the URL has none.
    pub path: String,
}

impl Url {
    /// Parses a plain-HTTP URL; `https://` and anything else is refused with the reason.
    pub fn parse(text: &str) -> Result<Url, FetchError> {
        let refuse = |reason| FetchError::Url {
            url: text.to_owned(),
            reason,
        };
        if text.starts_with("https://") {
            return Err(refuse(
                "only plain http:// is read (the collector serves /metrics over plain HTTP)",
            ));
        }
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| refuse("expected a URL starting with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        let (host, port) = split_authority(authority).ok_or_else(|| refuse("bad host or port"))?;
        Ok(Url {
            text: text.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// `host:port` for connecting (IPv6 without brackets is what `connect` wants).
    fn connect_to(&self) -> (String, u16) {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host.to_owned(), self.port)
    }
}

fn split_authority(authority: &str) -> Option<(&str, u16)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        (host, rest.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
        None => 80,
    };
    (!host.is_empty()).then_some((host, port))
}

/// GETs `url`, returning the body of a 200 answer of at most `max_bytes`.
pub async fn get(url: &Url, timeout: Duration, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
    match tokio::time::timeout(timeout, exchange(url, max_bytes)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout {
            url: url.text.clone(),
            after: timeout,
        }),
    }
}

async fn exchange(url: &Url, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
    let io = |source: std::io::Error| FetchError::Io {
        url: url.text.clone(),
        source,
    };
    let mut stream = TcpStream::connect(url.connect_to())
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => FetchError::Refused {
                url: url.text.clone(),
                address: format!("{}:{}", url.host, url.port),
            },
            _ => io(e),
        })?;
    // HTTP/1.1 with `Connection: close`; no Accept-Encoding, so the body comes uncompressed.
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: fleetwatch-top/{}\r\n\
         Accept: text/plain;version=0.0.4\r\nConnection: close\r\n\r\n",
        url.path,
        url.host,
        url.port,
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let (head, rest) = read_head(&mut stream, url).await?;
    let status = parse_head(&head, url)?;
    let body = read_body(&mut stream, rest, &status, url, max_bytes).await?;
    if status.code != 200 {
        return Err(FetchError::Status {
            url: url.text.clone(),
            status: status.code,
            reason: status.reason,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    Ok(body)
}

/// Reads until the blank line ending the head; returns the head and what was read past it.
async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
    url: &Url,
) -> Result<(String, Vec<u8>), FetchError> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buffer).into_owned(), rest));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(protocol(url, "response headers longer than 64 KiB"));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|source| FetchError::Io {
                url: url.text.clone(),
                source,
            })?;
        if n == 0 {
            return Err(protocol(url, "connection closed before the headers ended"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn protocol(url: &Url, reason: impl Into<String>) -> FetchError {
    FetchError::Protocol {
        url: url.text.clone(),
        reason: reason.into(),
    }
}

/// What the head says about the body.
#[derive(Debug)]
struct Head {
    code: u16,
    reason: String,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(head: &str, url: &Url) -> Result<Head, FetchError> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|c| c.parse().ok());
    let (true, Some(code)) = (version.starts_with("HTTP/1."), code) else {
        return Err(protocol(url, format!("status line {status_line:?}")));
    };
    let mut parsed = Head {
        code,
        reason: parts.next().unwrap_or_default().to_owned(),
        content_length: None,
        chunked: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => parsed.content_length = value.parse().ok(),
            "transfer-encoding" => parsed.chunked = value.eq_ignore_ascii_case("chunked"),
            "content-encoding" if !value.eq_ignore_ascii_case("identity") => {
                return Err(protocol(
                    url,
                    format!("unasked-for content encoding {value}"),
                ));
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// Reads the body (chunked, by length, or to the end), refusing more than `max_bytes`.
async fn read_body(
    stream: &mut (impl AsyncRead + Unpin),
    already: Vec<u8>,
    head: &Head,
    url: &Url,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::TooLarge {
        url: url.text.clone(),
        limit: max_bytes,
    };
    if head.content_length.is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }
    // Chunk framing adds a few bytes per chunk: allow some slack for it on the raw bytes, and
    // check the decoded body against the limit itself.
    let raw_limit = if head.chunked {
        max_bytes.saturating_add(max_bytes / 8 + 4096)
    } else {
        max_bytes
    };
    let mut raw = already;
    let mut chunk = vec![0u8; 64 << 10];
    while raw.len() <= raw_limit && head.content_length.is_none_or(|n| raw.len() < n) {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|source| FetchError::Io {
                url: url.text.clone(),
                source,
            })?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    if raw.len() > raw_limit {
        return Err(too_large());
    }
    let body = if head.chunked {
        dechunk(&raw).ok_or_else(|| protocol(url, "bad chunked encoding"))?
    } else {
        raw
    };
    if head.content_length.is_some_and(|n| body.len() < n) {
        return Err(protocol(url, "connection closed before the body ended"));
    }
    if body.len() > max_bytes {
        return Err(too_large());
    }
    Ok(body)
}

/// Decodes a complete chunked body; `None` when it is malformed or cut short.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(raw.len());
    loop {
        let line_end = find(raw, b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        let data = raw.get(..size)?;
        body.extend_from_slice(data);
        raw = raw.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_the_path_and_port_and_refuse_https() {
        let url = Url::parse("http://127.0.0.1:9470").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 9470, "/metrics")
        );
        let url = Url::parse("http://[::1]/m?x=1").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("[::1]", 80, "/m?x=1")
        );
        assert_eq!(url.connect_to(), ("::1".to_owned(), 80));
        for bad in [
            "https://a:1/metrics",
            "a:1",
            "http://:9470",
            "http://a:0",
            "http://a:x",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn chunked_bodies_decode_and_truncated_ones_are_refused() {
        let raw = b"4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n";
        assert_eq!(dechunk(raw).as_deref(), Some(&b"abcdefg"[..]));
        assert_eq!(dechunk(b"4\r\nab"), None);
        assert_eq!(dechunk(b"zz\r\n"), None);
    }

    #[test]
    fn an_error_status_quotes_the_start_of_the_body() {
        let error = FetchError::Status {
            url: "http://x/metrics".into(),
            status: 500,
            reason: "Internal Server Error".into(),
            body: "boom\n".into(),
        };
        assert_eq!(
            error.to_string(),
            "http://x/metrics answered HTTP 500 Internal Server Error: \"boom\""
        );
    }
}
