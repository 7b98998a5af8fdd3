//! The audit webhook receiver against a real kube-apiserver that audits to it: requests of a
//! test user show up under that user, user agent, verb and resource; bad input is refused and
//! counted while the receiver keeps serving; clients are bounded to the top K plus `other`.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwatch_client::{Client, Settings, Source};
use fleetwatch_collector::audit::{AuditConfig, PATH, Receiver};
use fleetwatch_collector::component::{Build, Component};
use fleetwatch_control_plane::plane::{
    AuditWebhook, ControlPlane, LabOptions, METADATA_AUDIT_POLICY,
};
use fleetwatch_control_plane::testing::Dedicated;
use fleetwatch_telemetry::exposition::{Format, Readiness, render};
use fleetwatch_telemetry::text;
use k8s_openapi::api::core::v1::ConfigMap;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const TEST_USER: &str = "audit-test-user";
const AGENT_COMPONENT: &str = "audit-test-agent";
const AGENT_VERSION: &str = "0.0.0-audit";
/// The user agent fleetwatch's client sends for `AGENT_COMPONENT` at `AGENT_VERSION`.
const TEST_AGENT: &str = "fleetwatch-audit-test-agent/0.0.0-audit";
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_api_server_audits_to_the_receiver() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let receiver_tls = ReceiverTls::generate(tmp.path());
    // The receiver's socket first, so the API server's URL is known before it starts; batches
    // sent before `serve` wait in the listen queue.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    let mut options = LabOptions::new(tmp.path().join("lab"));
    options.audit_webhook = Some(AuditWebhook::Receiver {
        url: format!("https://{address}{PATH}"),
        ca_pem: receiver_tls.ca_pem.clone(),
        policy: METADATA_AUDIT_POLICY.to_owned(),
    });
    let plane = Dedicated::start(options).await.expect("the lab starts");

    let config = receiver_tls.config(plane.client_ca_file());
    let mut registry = Registry::default();
    let receiver = Receiver::on_listener(listener, &config, &mut registry).expect("the receiver");
    let (stop_tx, stop) = watch::channel(false);
    let serving = tokio::spawn(receiver.serve(stop));
    let page = || render(&registry, Format::Text).expect("renders");

    attributes_requests_to_the_test_user(&plane, &page).await;
    let poster = Poster::new(
        address,
        &receiver_tls.ca_pem,
        Some(plane.kubeconfig_for("poster", &[]).expect("a user")),
    );
    refuses_bad_input_and_keeps_serving(&poster, &page).await;
    refuses_clients_without_a_certificate(&poster, &page).await;
    bounds_clients_to_the_top_k(&poster, &page, config.top_k).await;
    measures_a_400_event_batch(&poster).await;
    the_component_builds_serves_and_stops(&plane, &receiver_tls).await;

    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the receiver stops when told")
        .expect("the receiver task");
}

/// Requests of `TEST_USER` (forbidden: it has no RBAC, and 403s are audited too) appear with
/// its user agent, verb and resource, each counted once, and timed.
async fn attributes_requests_to_the_test_user(plane: &ControlPlane, page: &impl Fn() -> String) {
    let kubeconfig = plane.kubeconfig_for(TEST_USER, &[]).expect("a kubeconfig");
    let mut settings = Settings::new(AGENT_COMPONENT);
    settings.version = AGENT_VERSION.to_owned();
    settings.start_jitter = Duration::from_millis(10);
    let client = Client::connect(
        Source::Kubeconfig {
            path: kubeconfig,
            context: None,
        },
        settings,
    )
    .await
    .expect("the test user's client");
    let writer = client.writer::<ConfigMap>("default");
    for i in 0..3 {
        let denied = writer.delete(&format!("audit-test-{i}")).await;
        assert!(denied.is_err(), "the test user has no RBAC: {denied:?}");
    }
    let selector = [
        ("user", TEST_USER),
        ("user_agent", TEST_AGENT),
        ("verb", "delete"),
        ("resource", "configmaps"),
    ];
    let requests = [&selector[..], &[("code_class", "4xx")]].concat();
    let counted = poll(|| {
        let n = value(
            &page(),
            "fleetwatch_collector_audit_requests_total",
            &requests,
        );
        (n >= 3.0).then_some(n)
    })
    .await
    .unwrap_or_else(|| panic!("the test user's deletes never arrived:\n{}", page()));
    assert_eq!(
        counted, 3.0,
        "each request counts once (ResponseComplete only)"
    );
    let timed = value(
        &page(),
        "fleetwatch_collector_audit_request_duration_seconds_count",
        &selector,
    );
    assert_eq!(timed, 3.0, "each request is timed once");
    let events = value(
        &page(),
        "fleetwatch_collector_audit_events_total",
        &[("outcome", "accepted")],
    );
    assert!(events >= 3.0);
    let parsed = text::parse(&page()).error_count();
    assert_eq!(parsed, 0, "the page parses cleanly");
    let page = page();
    let families = text::parse(&page);
    for family in families.families() {
        assert!(family.help().is_some(), "{} has HELP", family.name());
    }
}

async fn refuses_bad_input_and_keeps_serving(poster: &Poster, page: &impl Fn() -> String) {
    let batches = |outcome| {
        value(
            &page(),
            "fleetwatch_collector_audit_batches_total",
            &[("outcome", outcome)],
        )
    };
    let status = poster
        .send("POST", PATH, Body::Bytes(b"this is not JSON".to_vec()))
        .await
        .expect("an answer");
    assert_eq!(status.code, 400);
    assert_eq!(batches("not_json"), 1.0);

    let status = poster
        .send("GET", PATH, Body::Bytes(Vec::new()))
        .await
        .expect("an answer");
    assert_eq!(status.code, 405);
    assert_eq!(batches("bad_method"), 1.0);

    // 100 MiB declared up front: refused from the header, before the body is read.
    let hundred_mib = 100 << 20;
    for chunked in [false, true] {
        let started = Instant::now();
        let status = poster
            .send(
                "POST",
                PATH,
                Body::Zeros {
                    len: hundred_mib,
                    chunked,
                },
            )
            .await
            .expect("an answer");
        eprintln!(
            "413 for a 100 MiB body (chunked: {chunked}) after {:?}, {} MiB sent",
            started.elapsed(),
            status.sent >> 20
        );
        assert_eq!(status.code, 413, "chunked: {chunked}");
        assert!(
            status.sent < hundred_mib,
            "answered before the whole body was sent (chunked: {chunked})"
        );
    }
    assert_eq!(batches("too_large"), 2.0);

    let ok = poster
        .send(
            "POST",
            PATH,
            Body::Bytes(event_list(&[event("after-413", "x", "get")]).into_bytes()),
        )
        .await
        .expect("an answer");
    assert_eq!(ok.code, 200, "the receiver keeps serving");
}

async fn refuses_clients_without_a_certificate(poster: &Poster, page: &impl Fn() -> String) {
    let failed = |page: &str| {
        value(
            page,
            "fleetwatch_collector_audit_connections_total",
            &[("outcome", "handshake_failed")],
        )
    };
    let before = failed(&page());
    let anonymous = Poster {
        identity: None,
        ..poster.clone()
    };
    let answer = anonymous
        .send("POST", PATH, Body::Bytes(event_list(&[]).into_bytes()))
        .await;
    assert!(
        answer.is_err(),
        "no HTTP answer without a client certificate: {answer:?}"
    );
    let counted = poll(|| (failed(&page()) > before).then_some(())).await;
    assert!(counted.is_some(), "the refused handshake is counted");
}

/// 1,000 distinct users leave at most K + 1 clients on the page, and the test user (a steady
/// client) keeps its series.
async fn bounds_clients_to_the_top_k(poster: &Poster, page: &impl Fn() -> String, k: usize) {
    for batch in 0..3 {
        let events: Vec<String> = (0..400)
            .filter(|i| batch * 400 + i < 1000)
            .map(|i| event(&format!("flood-user-{}", batch * 400 + i), "flood", "get"))
            .collect();
        let status = poster
            .send("POST", PATH, Body::Bytes(event_list(&events).into_bytes()))
            .await
            .expect("an answer");
        assert_eq!(status.code, 200);
    }
    let page = page();
    let parsed = text::parse(&page);
    let clients: BTreeSet<(&str, &str)> = parsed
        .samples()
        .filter(|s| s.name == "fleetwatch_collector_audit_requests_total")
        .map(|s| {
            (
                s.label("user").unwrap_or_default(),
                s.label("user_agent").unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        clients.len() <= k + 1,
        "{} clients: {clients:?}",
        clients.len()
    );
    assert!(clients.contains(&("other", "other")));
    assert!(
        clients.contains(&(TEST_USER, TEST_AGENT)),
        "one-off clients do not push a steady one out: {clients:?}"
    );
    let other = value(
        &page,
        "fleetwatch_collector_audit_requests_total",
        &[("user", "other"), ("verb", "get"), ("resource", "pods")],
    );
    assert!(other >= (1000 - k) as f64, "{other}");
}

async fn measures_a_400_event_batch(poster: &Poster) {
    let events: Vec<String> = (0..400)
        .map(|i| event(&format!("batch-user-{}", i % 7), "kubectl/v1.37.2", "list"))
        .collect();
    let body = event_list(&events).into_bytes();
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let status = poster
            .send("POST", PATH, Body::Bytes(body.clone()))
            .await
            .expect("an answer");
        times.push(started.elapsed());
        assert_eq!(status.code, 200);
    }
    times.sort();
    // The server's share: parsing and counting, in-process.
    let started = Instant::now();
    let parsed = fleetwatch_collector::audit::event::parse(&body).expect("an EventList");
    let mut registry = Registry::default();
    let aggregator =
        fleetwatch_collector::audit::aggregate::Aggregator::register(&mut registry, 20);
    assert_eq!(aggregator.record(&parsed).accepted, 400);
    eprintln!(
        "parsing and counting a 400-event batch in-process: {:?}",
        started.elapsed()
    );
    eprintln!(
        "a 400-event batch ({} KiB): median {:?}, max {:?} (new TLS connection each)",
        body.len() >> 10,
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert!(times[times.len() / 2] < Duration::from_millis(500));
}

/// The component path: `build` binds and registers, the task serves and reports ready, and
/// stops (closing the listener) when the collector stops.
async fn the_component_builds_serves_and_stops(plane: &ControlPlane, tls: &ReceiverTls) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut config = tls.config(plane.client_ca_file());
    config.listen = port;
    let client = Client::connect(
        Source::Kubeconfig {
            path: plane.kubeconfig(),
            context: None,
        },
        Settings::new("audit-component-test"),
    )
    .await
    .expect("the admin client");
    let mut registry = Registry::default();
    let readiness = Readiness::default();
    let (stop_tx, stop) = watch::channel(false);
    let mut build = Build {
        client: &client,
        registry: &mut registry,
        sections: &mut Vec::new(),
        readiness: &readiness,
        stop,
    };
    let task = tokio::spawn(config.build(&mut build).expect("builds"));
    assert!(
        poll(|| readiness.report().0.then_some(())).await.is_some(),
        "ready"
    );
    let poster = Poster::new(
        port,
        &tls.ca_pem,
        Some(plane.kubeconfig_for("poster", &[]).expect("a user")),
    );
    let status = poster
        .send("POST", PATH, Body::Bytes(b"{".to_vec()))
        .await
        .expect("an answer");
    assert_eq!(status.code, 400);
    let page = render(&registry, Format::Text).expect("renders");
    assert_eq!(
        value(
            &page,
            "fleetwatch_collector_audit_batches_total",
            &[("outcome", "not_json")]
        ),
        1.0
    );
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the task ends when the collector stops")
        .expect("the task");
    assert!(
        TcpStream::connect(port).await.is_err(),
        "the listener is closed"
    );
}

/// The receiver's own CA and serving certificate (for 127.0.0.1), written to `dir`.
struct ReceiverTls {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl ReceiverTls {
    fn generate(dir: &Path) -> ReceiverTls {
        let (ca_pem, issued) =
            fleetwatch_control_plane::pki::loopback_server("audit-receiver").expect("receiver TLS");
        let (cert, key) = (dir.join("receiver.crt"), dir.join("receiver.key"));
        std::fs::write(&cert, issued.cert_pem).expect("write");
        std::fs::write(&key, issued.key_pem).expect("write");
        ReceiverTls { ca_pem, cert, key }
    }

    fn config(&self, client_ca: PathBuf) -> AuditConfig {
        AuditConfig {
            enabled: true,
            listen: "127.0.0.1:0".parse().expect("address"),
            tls_cert_file: Some(self.cert.clone()),
            tls_key_file: Some(self.key.clone()),
            client_ca_file: Some(client_ca),
            ..AuditConfig::default()
        }
    }
}

/// What a request body is.
enum Body {
    Bytes(Vec<u8>),
    /// `len` zero bytes, written 64 KiB at a time, declared up front or chunked.
    Zeros {
        len: u64,
        chunked: bool,
    },
}

#[derive(Debug)]
struct Answer {
    code: u16,
    /// Body bytes written when the answer arrived.
    sent: u64,
}

/// A raw HTTP/1.1-over-TLS client, one connection per request, that reads the answer while it
/// is still sending the body (as Go's client does).
#[derive(Clone)]
struct Poster {
    address: SocketAddr,
    roots: Arc<rustls::RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl Poster {
    /// Trusts `ca_pem`; presents the client certificate next to a lab user's kubeconfig.
    fn new(address: SocketAddr, ca_pem: &str, user: Option<PathBuf>) -> Poster {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(ca.expect("CA")).expect("root");
        }
        let identity = user.map(|kubeconfig| {
            let cert = kubeconfig.with_extension("crt");
            let key = kubeconfig.with_extension("key");
            let certs = CertificateDer::pem_file_iter(&cert)
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            (
                certs,
                Arc::new(PrivateKeyDer::from_pem_file(&key).expect("key")),
            )
        });
        Poster {
            address,
            roots: Arc::new(roots),
            identity,
        }
    }

    async fn connect(&self) -> io::Result<TlsStream<TcpStream>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(self.roots.clone());
        let config = match &self.identity {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map_err(io::Error::other)?,
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(self.address).await?;
        let name = ServerName::try_from("127.0.0.1").map_err(io::Error::other)?;
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }

    async fn send(&self, method: &str, path: &str, body: Body) -> io::Result<Answer> {
        let stream = self.connect().await?;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let framing = match &body {
            Body::Bytes(bytes) => format!("Content-Length: {}\r\n", bytes.len()),
            Body::Zeros {
                len,
                chunked: false,
            } => format!("Content-Length: {len}\r\n"),
            Body::Zeros { chunked: true, .. } => "Transfer-Encoding: chunked\r\n".to_owned(),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             {framing}Connection: close\r\n\r\n"
        );
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        let sending = async move {
            writer.write_all(head.as_bytes()).await?;
            match body {
                Body::Bytes(bytes) => writer.write_all(&bytes).await?,
                Body::Zeros { len, chunked } => {
                    let chunk = vec![0u8; 64 << 10];
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if chunked {
                            writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                        }
                        writer.write_all(&chunk[..n]).await?;
                        if chunked {
                            writer.write_all(b"\r\n").await?;
                        }
                        left -= n as u64;
                        counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    if chunked {
                        writer.write_all(b"0\r\n\r\n").await?;
                    }
                }
            }
            writer.flush().await?;
            // Keep the write half open until the answer is read.
            std::future::pending::<io::Result<()>>().await
        };
        let reading = async {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no answer"));
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head).into_owned();
            line.split(' ')
                .nth(1)
                .and_then(|code| code.parse::<u16>().ok())
                .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {line:?}")))
        };
        let code = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::select! {
                code = reading => code,
                sent = sending => Err(sent.err().unwrap_or_else(|| io::Error::other("sent"))),
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in 30 s"))??;
        Ok(Answer {
            code,
            sent: sent.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// A `ResponseComplete` event of `user`, as the API server writes one.
fn event(user: &str, agent: &str, verb: &str) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "0d3c1e8a-58a4-4a43-a0a6-1b7e0c2f6f10", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods/web-0", "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": agent,
        "objectRef": {"resource": "pods", "namespace": "default", "name": "web-0", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-03-01T10:00:00.000000Z",
        "stageTimestamp": "2026-03-01T10:00:00.003000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    })
    .to_string()
}

fn event_list(events: &[String]) -> String {
    format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        events.join(",")
    )
}

/// The sum of the samples named `name` whose labels include `labels`.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text::parse(page)
        .samples()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// Polls `check` until it returns something, or [`DEADLINE`] passes.
async fn poll<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
