//! What the collector's integration tests share: a budgeted client for the test binary's lab,
//! a plain GET against a collector, and the value of a series on its page.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use fleetwatch_client::{Client, Settings, Source};
use fleetwatch_control_plane::testing::shared;
use fleetwatch_telemetry::text;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A budgeted client for the shared lab of this test binary, as the admin.
pub async fn client() -> Client {
    let plane = shared();
    let mut settings = Settings::new("collector-test");
    settings.start_jitter = Duration::from_millis(100);
    Client::connect(
        Source::Kubeconfig {
            path: plane.kubeconfig(),
            context: None,
        },
        settings,
    )
    .await
    .expect("connecting to the lab")
}

/// GETs `path` from the collector's server (HTTP/1.0, read to the end).
pub async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the collector");
    let request = format!("GET {path} HTTP/1.0\r\nHost: collector\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("read the answer");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample `name` whose labels include every one of `labels`, on `page`.
pub fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text::parse(page)
        .samples()
        .find(|s| s.name == name && labels.iter().all(|(n, v)| s.label(n) == Some(*v)))
        .map(|s| s.value)
}
