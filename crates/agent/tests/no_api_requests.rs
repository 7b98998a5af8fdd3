//! Zero API-server requests, measured: the agent runs for several polls beside the lab's real
//! control plane with every way a Kubernetes client finds an API server pointing at it — a
//! kubeconfig in `$KUBECONFIG` and the in-cluster `KUBERNETES_SERVICE_HOST`/`_PORT` — and the API
//! server's audit log, which records every request, holds none with the agent's user agent. The
//! fixture kubelet sees the same user agent, so the check looks for a name that would be there.
//!
//! One test in a binary of its own: it sets environment variables before any thread starts.

// The positive control makes one request with the lab's admin client.
#![allow(clippy::disallowed_types)]

#[path = "support/kubelet.rs"]
mod fixture;

use std::io::{Read as _, Seek as _};
use std::net::SocketAddr;
use std::time::Duration;

use fleetwatch_agent::dns::DnsConfig;
use fleetwatch_agent::host::HostConfig;
use fleetwatch_agent::kubelet::KubeletConfig;
use fleetwatch_agent::{AgentConfig, run};
use fleetwatch_control_plane::testing;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::Value;

use fixture::{Fixture, FixtureKubelet, RESOURCE, SUMMARY};

const AGENT_USER_AGENT: &str = "fleetwatch-agent/";
const POLL: Duration = Duration::from_secs(2);

#[test]
fn the_agent_sends_the_api_server_nothing() {
    let plane = testing::shared_with_audit_log();
    let url: http::Uri = plane.apiserver_url().parse().expect("the API server's URL");
    // SAFETY: the only test in this binary, and no other thread of it reads the environment:
    // the control plane's start-up thread has ended and the runtime is not built yet.
    unsafe {
        std::env::set_var("KUBECONFIG", plane.kubeconfig());
        std::env::set_var("KUBERNETES_SERVICE_HOST", url.host().expect("a host"));
        std::env::set_var(
            "KUBERNETES_SERVICE_PORT",
            url.port_u16().expect("a port").to_string(),
        );
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let kubelet = FixtureKubelet::start(Fixture::files()).await;
        let mut audit = std::fs::File::open(plane.audit_log()).expect("the audit log");
        let start = audit.seek(std::io::SeekFrom::End(0)).expect("its end");
        run_agent(&kubelet).await;
        // The positive control: a request made now is in the log.
        let admin = plane.admin_client().await.expect("the admin client");
        kube::Api::<Namespace>::all(admin)
            .get("default")
            .await
            .expect("GET the default namespace");
        let events = appended(&mut audit, start, "/api/v1/namespaces/default").await;

        let agent_requests: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["userAgent"]
                    .as_str()
                    .is_some_and(|ua| ua.contains(AGENT_USER_AGENT))
            })
            .collect();
        assert!(
            agent_requests.is_empty(),
            "the API server logged requests from the agent: {agent_requests:?}"
        );
        let seen = kubelet.seen();
        assert!(
            kubelet.requests(RESOURCE) >= 2 && kubelet.requests(SUMMARY) >= 2,
            "the agent polled the kubelet: {seen:?}"
        );
        assert!(
            seen.iter().all(|s| s
                .user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with(AGENT_USER_AGENT))),
            "the kubelet saw the agent's user agent: {seen:?}"
        );
    });
}

/// Runs the agent until it has polled the kubelet's two endpoints at least twice.
async fn run_agent(kubelet: &FixtureKubelet) {
    let config = AgentConfig {
        node_name: fixture::NODE.to_owned(),
        kubelet: Some(KubeletConfig {
            url: kubelet.url.clone(),
            token_file: Some(kubelet.token_file.clone()),
            ca_file: Some(kubelet.ca_file.clone()),
            interval: POLL,
            timeout: Duration::from_secs(1),
            ..KubeletConfig::default()
        }),
        host: HostConfig {
            interval: POLL,
            ..HostConfig::default()
        },
        // Nothing answers DNS on this port: the probe fails, which is all it may do here.
        dns: DnsConfig {
            resolver: Some(SocketAddr::from(([127, 0, 0, 1], 9))),
            interval: POLL,
            timeout: Duration::from_millis(500),
            ..DnsConfig::default()
        },
        remote_write: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for /metrics");
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(run(config, listener, async move {
        let _ = stop.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while kubelet.requests(RESOURCE) < 2 || kubelet.requests(SUMMARY) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent did not poll the kubelet twice in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    agent
        .await
        .expect("the agent task")
        .expect("the agent ran and stopped cleanly");
}

/// The audit events appended to `log` after `start`, once one for `uri` is among them (the
/// API server writes each event when its request completes).
async fn appended(log: &mut std::fs::File, start: u64, uri: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        log.seek(std::io::SeekFrom::Start(start)).expect("seek");
        let mut text = String::new();
        log.read_to_string(&mut text).expect("read the audit log");
        let events: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("an audit event per line"))
            .collect();
        if events.iter().any(|e| e["requestURI"] == uri) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the audit log has no event for {uri} after 10 s: is the API server auditing?"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
