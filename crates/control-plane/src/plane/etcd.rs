//! The lab's etcd over its HTTP gateway on loopback: health during start-up and compaction for
//! fault injection, over [`launch::exchange`](super::launch::exchange).

use super::launch::exchange;
use crate::error::{Error, Result};

/// Whether etcd at `addr` (`127.0.0.1:<port>`) answers `/health` with `"health":"true"`.
pub(crate) async fn healthy(addr: &str) -> bool {
    exchange(addr, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .is_ok_and(|response| response.contains("\"health\":\"true\""))
}

/// Compacts etcd's history up to its current revision, physically, so that watches from older
/// resourceVersions get 410 Gone. Returns the compacted revision.
pub(crate) async fn compact(addr: &str) -> Result<i64> {
    const STATUS: &str = "/v3/maintenance/status";
    let status = post(addr, STATUS, "{}").await?;
    // The gateway encodes int64 as a JSON string.
    let revision = &status["header"]["revision"];
    let revision = revision
        .as_str()
        .and_then(|r| r.parse::<i64>().ok())
        .or_else(|| revision.as_i64())
        .ok_or_else(|| Error::Etcd {
            addr: addr.to_owned(),
            path: STATUS,
            reason: format!("no revision in the status: {status}"),
        })?;
    let body = format!("{{\"revision\": {revision}, \"physical\": true}}");
    post(addr, "/v3/kv/compaction", &body).await?;
    Ok(revision)
}

/// A JSON POST; a status other than 200 is an error with the status line.
async fn post(addr: &str, path: &'static str, body: &str) -> Result<serde_json::Value> {
    let fail = |reason: String| Error::Etcd {
        addr: addr.to_owned(),
        path,
        reason,
    };
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = exchange(addr, &request)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (head, json) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no HTTP body".into()))?;
    let status = head.lines().next().unwrap_or_default();
    if !(status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200")) {
        return Err(fail(status.to_owned()));
    }
    serde_json::from_str(json).map_err(|e| fail(e.to_string()))
}
