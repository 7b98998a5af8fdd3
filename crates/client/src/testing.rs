//! Helpers for the unit tests: a fake API server to put under the stack, sockets that fail in
//! known ways, and the metrics as Prometheus text.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use kube::client::Body;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tower::{BoxError, Service, ServiceExt};

use crate::connect::{self, Endpoint};
use crate::metrics::Metrics;

/// `metrics` registered and encoded, as a scrape would see them.
pub(crate) fn metrics_text(metrics: &Metrics) -> String {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    text
}

/// A response body whose frames a test sends when it likes; it ends when the sender is dropped.
#[derive(Debug)]
pub(crate) struct TestBody(mpsc::UnboundedReceiver<Bytes>);

impl TestBody {
    pub(crate) fn channel() -> (mpsc::UnboundedSender<Bytes>, TestBody) {
        let (frames, body) = mpsc::unbounded_channel();
        (frames, TestBody(body))
    }

    pub(crate) fn full(text: impl Into<Bytes>) -> TestBody {
        let (frames, body) = TestBody::channel();
        frames.send(text.into()).expect("the body is alive");
        body
    }
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|frame| frame.map(|f| Ok(Frame::data(f))))
    }
}

/// A wire that answers `/version` as a Kubernetes 1.33 API server would (so informers use
/// `resourceVersion=0` lists, not streaming ones) and every other request with
/// `answer(request)`.
pub(crate) fn fake_api<F>(
    answer: F,
) -> impl Service<Request<Body>, Response = Response<TestBody>, Error = BoxError, Future: Send>
+ Clone
+ Send
+ 'static
where
    F: Fn(&Request<Body>) -> Response<TestBody> + Clone + Send + Sync + 'static,
{
    tower::service_fn(move |request: Request<Body>| {
        let response = if request.uri().path() == "/version" {
            Response::new(TestBody::full(
                r#"{"major":"1","minor":"33","gitVersion":"v1.33.0","gitCommit":"","gitTreeState":"",
                    "buildDate":"","goVersion":"","compiler":"","platform":""}"#,
            ))
        } else {
            answer(&request)
        };
        async move { Ok::<_, BoxError>(response) }
    })
}

/// An endpoint for a fake server at `server`.
pub(crate) fn endpoint(server: &str) -> Endpoint {
    Endpoint {
        server: server.to_owned(),
        context: "unit".to_owned(),
        default_namespace: "default".to_owned(),
    }
}

/// A loopback server that accepts connections and answers a TLS ClientHello with plain HTTP;
/// its URL and the number of connections it accepted.
pub(crate) async fn not_tls_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("https://{}", listener.local_addr().expect("its address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let mut hello = [0; 512];
            let _ = socket.read(&mut hello).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    (url, accepted)
}

/// A loopback port nothing listens on (it was free a moment ago).
pub(crate) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The production wire (kube's HTTP stack) for `url`, with no credentials.
pub(crate) fn https_wire(
    url: &str,
) -> impl Service<
    Request<Body>,
    Response = Response<Box<kube::client::DynBody>>,
    Error = BoxError,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let config = kube::Config::new(url.parse().expect("a URL"));
    connect::wire(config).expect("kube's HTTP stack")
}

/// The error a `GET /version` to `url` fails with.
pub(crate) async fn https_wire_error(url: &str) -> BoxError {
    let request = Request::get("/version")
        .body(Body::from(Vec::new()))
        .expect("request");
    match https_wire(url).oneshot(request).await {
        Ok(response) => panic!("{url} answered {}", response.status()),
        Err(error) => error,
    }
}
