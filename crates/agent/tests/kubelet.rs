//! The kubelet source against a fixture kubelet (`support/kubelet.rs`): what it serves, how each
//! way of failing shows, that one endpoint failing leaves the other served, that the token is
//! read again each poll and never reported, and that TLS is verified.

#[path = "support/kubelet.rs"]
mod fixture;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwatch_agent::health::Health;
use fleetwatch_agent::kubelet::{Failure, Kubelet, KubeletConfig, Polled, STALE_POLLS};
use fleetwatch_agent::source::{Build, Source as _};
use fleetwatch_telemetry::exposition::{self, Format, Readiness};
use fleetwatch_telemetry::page::{Page, Section};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use fixture::{FORBIDDEN_TOKEN, Fixture, FixtureKubelet, Mode, NODE, RESOURCE, SUMMARY, TOKEN};

const TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BODY: usize = 4 * 1024 * 1024;

fn config(kubelet: &FixtureKubelet) -> KubeletConfig {
    KubeletConfig {
        url: kubelet.url.clone(),
        token_file: Some(kubelet.token_file.clone()),
        ca_file: Some(kubelet.ca_file.clone()),
        interval: Duration::from_secs(5),
        timeout: TIMEOUT,
        max_body_bytes: MAX_BODY,
    }
}

/// The source started as the agent starts it, with what renders its page.
struct Agent {
    registry: Registry,
    sections: Vec<Arc<dyn Section>>,
    kubelet: Kubelet,
}

impl Agent {
    fn start(config: &KubeletConfig, node: &str) -> Agent {
        let mut registry = Registry::default();
        let health = Health::register(&mut registry);
        let readiness = Readiness::default();
        let mut sections = Vec::new();
        let (_stop_tx, stop) = watch::channel(false);
        let kubelet = config
            .start(&mut Build {
                node,
                registry: &mut registry,
                sections: &mut sections,
                readiness: &readiness,
                health: &health,
                stop,
            })
            .expect("the source starts");
        Agent {
            registry,
            sections,
            kubelet,
        }
    }

    /// The page `/metrics` would serve: the registry's families, then the sections.
    fn page(&self) -> String {
        let mut page = exposition::render(&self.registry, Format::Text)
            .expect("render")
            .into_bytes();
        let mut sections = Page::new(&mut page, Format::Text);
        for section in &self.sections {
            section.write(&mut sections);
        }
        String::from_utf8(page).expect("UTF-8")
    }
}

/// The value of the one line `series` (name and labels, as written) on `page`.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a value"))
}

fn up(page: &str, source: &str) -> Option<f64> {
    value(
        page,
        &format!("fleetwatch_agent_source_up{{source=\"{source}\"}}"),
    )
}

fn errors(page: &str, source: &str, reason: &str) -> Option<f64> {
    value(
        page,
        &format!("fleetwatch_agent_source_errors_total{{source=\"{source}\",reason=\"{reason}\"}}"),
    )
}

fn read_bytes(page: &str, source: &str) -> f64 {
    value(
        page,
        &format!("fleetwatch_agent_source_read_bytes_total{{source=\"{source}\"}}"),
    )
    .expect("read bytes")
}

/// One series of each endpoint, from the fixture files.
const RESOURCE_SERIES: &str = "container_cpu_usage_seconds_total{node=\"node-7\",\
    container=\"postgres\",namespace=\"payments\",pod=\"postgres-0\"}";
const SUMMARY_SERIES: &str = "fleetwatch_agent_node_fs_used_bytes{node=\"node-7\"}";

#[tokio::test]
async fn the_fixtures_values_are_served_with_the_node_label() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let agent = Agent::start(&config(&server), NODE);
    let polled = agent.kubelet.poll().await;
    assert_eq!(
        polled,
        Polled {
            // 4 series × 4 containers, 3 × 3 pods, 4 of the node.
            resource: Ok(29),
            // The node's 12; per pod network (2 pods), ephemeral storage, 3 per volume (7)
            // and 2 per container (4).
            summary: Ok(12 + 2 * 2 + 3 + 3 * 7 + 2 * 4),
        }
    );
    let page = agent.page();
    let parsed = fleetwatch_telemetry::text::parse(&page);
    assert_eq!(parsed.errors(), &[], "{page}");
    for (series, expected) in [
        (RESOURCE_SERIES, 2841.903266),
        (
            "node_cpu_usage_seconds_total{node=\"node-7\"}",
            27430.156113,
        ),
        (
            "node_memory_working_set_bytes{node=\"node-7\"}",
            3_123_040_256.0,
        ),
        (
            "container_start_time_seconds{node=\"node-7\",container=\"coredns\",\
             namespace=\"kube-system\",pod=\"coredns-6f6b679f8f-x7lqd\"}",
            1_786_347_141.0,
        ),
        (
            "pod_memory_working_set_bytes{node=\"node-7\",namespace=\"payments\",\
             pod=\"postgres-0\"}",
            499_687_424.0,
        ),
        ("resource_scrape_error{node=\"node-7\"}", 0.0),
        (SUMMARY_SERIES, 23_484_452_864.0),
        (
            "fleetwatch_agent_node_imagefs_used_bytes{node=\"node-7\"}",
            4_771_913_728.0,
        ),
        (
            "fleetwatch_agent_node_fs_inodes_free{node=\"node-7\"}",
            6_374_912.0,
        ),
        (
            "fleetwatch_agent_node_rlimit_processes{node=\"node-7\"}",
            431.0,
        ),
        (
            "fleetwatch_agent_pod_network_transmit_bytes_total{node=\"node-7\",\
             namespace=\"payments\",pod=\"postgres-0\",\
             uid=\"0f3c54d2-6a4e-4b8e-9a51-2f7c1d9e8b30\"}",
            27_440_719_018.0,
        ),
        (
            "fleetwatch_agent_pod_ephemeral_storage_used_bytes{node=\"node-7\",\
             namespace=\"kube-system\",pod=\"kube-proxy-9dz4k\",\
             uid=\"a1d2c3b4-5e6f-4a7b-8c9d-0e1f2a3b4c5d\"}",
            360_448.0,
        ),
        (
            "fleetwatch_agent_pod_volume_used_bytes{node=\"node-7\",namespace=\"payments\",\
             pod=\"postgres-0\",uid=\"0f3c54d2-6a4e-4b8e-9a51-2f7c1d9e8b30\",volume=\"data\",\
             persistentvolumeclaim=\"data-postgres-0\"}",
            16_302_731_264.0,
        ),
        (
            "fleetwatch_agent_container_logs_used_bytes{node=\"node-7\",\
             namespace=\"kube-system\",pod=\"coredns-6f6b679f8f-x7lqd\",\
             uid=\"3b8e7f1a-2c4d-4e5f-9a6b-7c8d9e0f1a2b\",container=\"coredns\"}",
            1_818_624.0,
        ),
        (
            "fleetwatch_agent_source_up{source=\"kubelet_resource\"}",
            1.0,
        ),
        (
            "fleetwatch_agent_source_up{source=\"kubelet_summary\"}",
            1.0,
        ),
        ("fleetwatch_agent_kubelet_unexpected_samples_total", 0.0),
    ] {
        assert_eq!(value(&page, series), Some(expected), "{series} in\n{page}");
    }
    assert!(
        page.contains("\nnode_cpu_usage_seconds_total{node=\"node-7\"} 27430.156113\n"),
        "the kubelet's timestamps are not served"
    );
    assert!(
        !page.contains("\nscrape_error{"),
        "the hidden family is not in the fixture"
    );
    let fixture = server.fixture();
    assert_eq!(
        read_bytes(&page, "kubelet_resource"),
        fixture.resource.len() as f64
    );
    assert_eq!(
        read_bytes(&page, "kubelet_summary"),
        fixture.summary.len() as f64
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(request.method, "GET");
        assert!(
            [RESOURCE, SUMMARY].contains(&request.path.as_str()),
            "{request:?}"
        );
        assert_eq!(request.token.as_deref(), Some(TOKEN));
        assert_eq!(
            request.user_agent.as_deref(),
            Some(concat!("fleetwatch-agent/", env!("CARGO_PKG_VERSION")))
        );
    }
    assert_eq!(
        (server.requests(RESOURCE), server.requests(SUMMARY)),
        (1, 1)
    );

    // The next poll reuses both connections: a poll is not two TLS handshakes.
    let polled = agent.kubelet.poll().await;
    assert!(
        polled.resource.is_ok() && polled.summary.is_ok(),
        "{polled:?}"
    );
    assert_eq!(server.connections(), 2);
}

/// Every failure's message, checked for the token.
fn failure(polled: &Result<usize, Failure>) -> &Failure {
    let failure = polled.as_ref().expect_err("the endpoint fails");
    for token in [TOKEN, FORBIDDEN_TOKEN] {
        assert!(!failure.message.contains(token), "{failure}");
    }
    failure
}

#[tokio::test]
async fn each_bad_answer_fails_its_endpoint_alone() {
    let modes = [
        (
            Mode::Malformed,
            "parse",
            "", /* the parser's words: below */
        ),
        (Mode::Truncated, "body", "body"),
        (
            Mode::HugeDeclared,
            "too_large",
            "response larger than 4194304 bytes",
        ),
        (
            Mode::HugeChunked,
            "too_large",
            "response larger than 4194304 bytes",
        ),
        (
            Mode::Slow(TIMEOUT * 3),
            "timeout",
            "no whole answer within 1s",
        ),
        (
            Mode::Unauthorized,
            "unauthorized",
            "401 Unauthorized: the kubelet did not accept",
        ),
        (
            Mode::Forbidden,
            "forbidden",
            "403 Forbidden: the agent's service account needs get on",
        ),
    ];
    for (path, other) in [(RESOURCE, SUMMARY), (SUMMARY, RESOURCE)] {
        let (source, other_source) = if path == RESOURCE {
            ("kubelet_resource", "kubelet_summary")
        } else {
            ("kubelet_summary", "kubelet_resource")
        };
        let (series, other_series) = if path == RESOURCE {
            (RESOURCE_SERIES, SUMMARY_SERIES)
        } else {
            (SUMMARY_SERIES, RESOURCE_SERIES)
        };
        for (mode, reason, says) in modes {
            let context = format!("{mode:?} on {path}");
            let server = FixtureKubelet::start(Fixture::files()).await;
            let agent = Agent::start(&config(&server), NODE);
            let first = agent.kubelet.poll().await;
            assert!(first.resource.is_ok() && first.summary.is_ok(), "{first:?}");
            let read_before = read_bytes(&agent.page(), source);
            server.set_mode(path, mode);

            let started = Instant::now();
            let polled = agent.kubelet.poll().await;
            let took = started.elapsed();
            let (failed, served) = if path == RESOURCE {
                (&polled.resource, &polled.summary)
            } else {
                (&polled.summary, &polled.resource)
            };
            let failure = failure(failed);
            assert_eq!(failure.reason, reason, "{context}: {failure}");
            let says = match (mode, path) {
                (Mode::Malformed, RESOURCE) => "rejected lines, the first: line 2",
                (Mode::Malformed, _) => "not a stats summary",
                _ => says,
            };
            assert!(failure.message.contains(says), "{context}: {failure}");
            assert!(
                failure
                    .message
                    .starts_with(&format!("{}{path}: ", server.url)),
                "{context}: {failure}"
            );
            assert!(served.is_ok(), "{context}: the other endpoint: {served:?}");
            assert!(took < TIMEOUT * 2, "{context}: the poll took {took:?}");

            let page = agent.page();
            assert_eq!(up(&page, source), Some(0.0), "{context}");
            assert_eq!(errors(&page, source, reason), Some(1.0), "{context}");
            assert_eq!(up(&page, other_source), Some(1.0), "{context}");
            assert_eq!(errors(&page, other_source, reason), None, "{context}");
            assert!(
                value(&page, other_series).is_some(),
                "{context}: {other} is served"
            );
            assert!(
                value(&page, series).is_some(),
                "{context}: the last good snapshot is still served after one failure"
            );
            let read = read_bytes(&page, source) - read_before;
            assert!(
                read <= (MAX_BODY + 64 * 1024) as f64,
                "{context}: reading stops at the cap: {read} bytes read"
            );
            if mode == Mode::Forbidden {
                let permission = if path == RESOURCE {
                    "nodes/metrics"
                } else {
                    "nodes/stats"
                };
                assert!(failure.message.contains(permission), "{failure}");
            }
        }
    }
}

#[tokio::test]
async fn the_token_is_read_again_before_each_poll() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let agent = Agent::start(&config(&server), NODE);
    assert!(agent.kubelet.poll().await.summary.is_ok());
    let rotated = "rotated-token-5d2e";
    server.accept_token(rotated);
    std::fs::write(&server.token_file, format!("{rotated}\n")).expect("rotate");
    let polled = agent.kubelet.poll().await;
    assert!(
        polled.resource.is_ok() && polled.summary.is_ok(),
        "{polled:?}"
    );
    let tokens: Vec<_> = server
        .seen()
        .into_iter()
        .map(|s| s.token.unwrap_or_default())
        .collect();
    assert_eq!(tokens, [TOKEN, TOKEN, rotated, rotated]);

    // A token the kubelet does not know: a 401 whose body echoes it, and no message shows it.
    std::fs::write(&server.token_file, "unknown-token-91c3").expect("write");
    server.set_mode(SUMMARY, Mode::Unauthorized);
    let polled = agent.kubelet.poll().await;
    for failed in [&polled.resource, &polled.summary] {
        let failure = failure(failed);
        assert_eq!(failure.reason, "unauthorized");
        assert!(!failure.message.contains("unknown-token-91c3"), "{failure}");
    }
    let summary = failure(&polled.summary);
    assert!(
        summary.message.contains("bearer token \"<token>\""),
        "{summary}"
    );
    assert!(!format!("{polled:?}").contains("unknown-token-91c3"));

    // The forbidden token: 403 on both, naming each permission.
    std::fs::write(&server.token_file, FORBIDDEN_TOKEN).expect("write");
    server.set_mode(SUMMARY, Mode::Normal);
    let polled = agent.kubelet.poll().await;
    assert!(
        failure(&polled.resource)
            .message
            .contains("needs get on nodes/metrics")
    );
    assert!(
        failure(&polled.summary)
            .message
            .contains("needs get on nodes/stats")
    );
}

#[tokio::test]
async fn an_unreadable_token_sends_nothing() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let agent = Agent::start(&config(&server), NODE);
    std::fs::remove_file(&server.token_file).expect("remove");
    let polled = agent.kubelet.poll().await;
    for failed in [&polled.resource, &polled.summary] {
        assert_eq!(failure(failed).reason, "token", "{failed:?}");
    }
    assert_eq!(server.seen(), []);
    let page = agent.page();
    assert_eq!(errors(&page, "kubelet_resource", "token"), Some(1.0));
    assert_eq!(errors(&page, "kubelet_summary", "token"), Some(1.0));
}

#[tokio::test]
async fn without_a_token_the_401_names_the_flag() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let config = KubeletConfig {
        token_file: None,
        ..config(&server)
    };
    let polled = Agent::start(&config, NODE).kubelet.poll().await;
    let failure = failure(&polled.summary);
    assert_eq!(failure.reason, "unauthorized");
    assert!(
        failure
            .message
            .contains("no bearer token was sent; set --kubelet-token-file")
    );
    assert_eq!(server.seen()[0].token, None);
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_tls() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let config = KubeletConfig {
        ca_file: Some(fixture::other_ca(&server.dir)),
        ..config(&server)
    };
    let agent = Agent::start(&config, NODE);
    let polled = agent.kubelet.poll().await;
    for failed in [&polled.resource, &polled.summary] {
        let failure = failure(failed);
        assert_eq!(failure.reason, "tls", "{failure}");
        assert!(failure.message.contains("certificate"), "{failure}");
    }
    assert_eq!(
        server.seen(),
        [],
        "no request is sent over an unverified connection"
    );
    assert_eq!(up(&agent.page(), "kubelet_summary"), Some(0.0));
}

#[tokio::test]
async fn a_failing_endpoint_keeps_its_snapshot_for_a_while() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let agent = Agent::start(&config(&server), NODE);
    assert!(agent.kubelet.poll().await.summary.is_ok());
    server.set_mode(SUMMARY, Mode::Malformed);
    for failed in 1..=STALE_POLLS {
        let polled = agent.kubelet.poll().await;
        assert_eq!(failure(&polled.summary).reason, "parse");
        let page = agent.page();
        assert_eq!(
            value(&page, SUMMARY_SERIES).is_some(),
            failed < STALE_POLLS,
            "after {failed} failed polls"
        );
        assert!(value(&page, RESOURCE_SERIES).is_some());
        assert_eq!(
            errors(&page, "kubelet_summary", "parse"),
            Some(f64::from(failed))
        );
    }
    server.set_mode(SUMMARY, Mode::Normal);
    assert!(agent.kubelet.poll().await.summary.is_ok());
    assert!(value(&agent.page(), SUMMARY_SERIES).is_some());
}

#[tokio::test]
async fn another_nodes_kubelet_is_refused() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let agent = Agent::start(&config(&server), "node-8");
    let polled = agent.kubelet.poll().await;
    let failure = failure(&polled.summary);
    assert_eq!(failure.reason, "wrong_node");
    assert!(
        failure.message.contains("\"node-7\"'s, not \"node-8\"'s"),
        "{failure}"
    );
    assert!(polled.resource.is_ok());
    assert!(
        agent
            .page()
            .contains("resource_scrape_error{node=\"node-8\"} 0\n")
    );
}

#[tokio::test]
async fn a_node_of_110_pods() {
    let fixture = Fixture::generated(110, NODE);
    let (pods, containers, networked) = (fixture.pods, fixture.containers, fixture.networked);
    assert!(
        networked < pods && networked > 100,
        "a few pods on the host's network"
    );
    let parsed = fleetwatch_telemetry::text::parse_bytes(&fixture.resource);
    assert_eq!(parsed.errors(), &[], "the generated page is valid");
    let server = FixtureKubelet::start(fixture).await;
    let agent = Agent::start(&config(&server), NODE);
    let polled = agent.kubelet.poll().await;
    // Resource: 4 series per container, 3 per pod, 4 of the node.
    assert_eq!(polled.resource, Ok(4 * containers + 3 * pods + 4));
    let page = agent.page();
    let count = |name: &str| page.lines().filter(|l| l.starts_with(name)).count();
    assert_eq!(
        count("fleetwatch_agent_pod_ephemeral_storage_used_bytes{"),
        pods
    );
    assert_eq!(
        count("fleetwatch_agent_container_rootfs_used_bytes{"),
        containers
    );
    assert_eq!(
        count("fleetwatch_agent_pod_network_receive_bytes_total{"),
        networked,
    );
    let summary = polled.summary.expect("the summary");
    assert!(summary > 10 * pods, "{summary} summary samples");
    let fixture = server.fixture();
    eprintln!(
        "110 pods, {containers} containers: /metrics/resource {} bytes, /stats/summary {} bytes",
        fixture.resource.len(),
        fixture.summary.len()
    );
}

#[tokio::test]
async fn the_source_task_polls_until_stopped() {
    let server = FixtureKubelet::start(Fixture::files()).await;
    let config = KubeletConfig {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(150),
        ..config(&server)
    };
    let mut registry = Registry::default();
    let health = Health::register(&mut registry);
    let readiness = Readiness::default();
    let mut sections = Vec::new();
    let (stop_tx, stop) = watch::channel(false);
    let task = config
        .build(&mut Build {
            node: NODE,
            registry: &mut registry,
            sections: &mut sections,
            readiness: &readiness,
            health: &health,
            stop,
        })
        .expect("build");
    assert_eq!(sections.len(), 2, "one section per endpoint");
    assert!(!readiness.report().0, "not ready before the first poll");
    let task = tokio::spawn(task);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.requests(SUMMARY) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.requests(SUMMARY) >= 3 && server.requests(RESOURCE) >= 3);
    assert!(readiness.report().0, "ready after the first poll");
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the task ends when stopped")
        .expect("the task");
}
