//! The agent's page as Prometheus sees it: the real Prometheus 2.42 scrapes its `/metrics` and
//! receives its remote-write, both through `fleetwatch-telemetry` as the collector's are.

use std::net::SocketAddr;
use std::time::Duration;

use fleetwatch_agent::dns::DnsConfig;
use fleetwatch_agent::host::HostConfig;
use fleetwatch_agent::{AgentConfig, run};
use fleetwatch_telemetry::remote_write;
use fleetwatch_telemetry::testing::{Options, Prometheus, ScrapeTarget};

const NODE: &str = "node-1";

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_agent_and_receives_its_remote_write() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for /metrics");
    let address = listener.local_addr().expect("its address");
    let prometheus = Prometheus::start(Options {
        scrape_targets: vec![
            ScrapeTarget::new("agent", address.to_string()).every(Duration::from_secs(1)),
        ],
        ..Options::default()
    })
    .await
    .expect("the test Prometheus starts");
    let config = AgentConfig {
        node_name: NODE.to_owned(),
        kubelet: None,
        host: HostConfig {
            interval: Duration::from_secs(1),
            ..HostConfig::default()
        },
        // Nothing answers DNS here: its series say so, which is what they are for.
        dns: DnsConfig {
            resolver: Some(SocketAddr::from(([127, 0, 0, 1], 9))),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            ..DnsConfig::default()
        },
        remote_write: Some((
            remote_write::Config::new(prometheus.remote_write_url()),
            Duration::from_secs(1),
        )),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(run(config, listener, async {
        let _ = stopped.await;
    }));

    let targets = prometheus
        .wait_for_healthy_targets(Duration::from_secs(60))
        .await
        .expect("Prometheus scrapes the agent's page without an error");
    assert!(targets.iter().all(|t| t.health == "up"), "{targets:?}");
    // Scraped: Prometheus adds `job`; pushed: the series arrive as the page has them.
    let cpus = format!("fleetwatch_agent_node_cpus{{job=\"agent\",node=\"{NODE}\"}}");
    prometheus
        .wait_for_series(&cpus, |v| v >= 1.0, Duration::from_secs(60))
        .await;
    let pushed_up = "fleetwatch_agent_source_up{job=\"\",source=\"host\"}";
    prometheus
        .wait_for_series(pushed_up, |v| v == 1.0, Duration::from_secs(60))
        .await;
    let failing_dns = "fleetwatch_agent_source_up{job=\"agent\",source=\"dns\"}";
    prometheus
        .wait_for_series(failing_dns, |v| v == 0.0, Duration::from_secs(60))
        .await;
    let sent = "fleetwatch_remote_write_samples_total{job=\"\",outcome=\"sent\"}";
    prometheus
        .wait_for_series(sent, |v| v > 0.0, Duration::from_secs(60))
        .await;

    stop.send(()).expect("the agent runs");
    tokio::time::timeout(Duration::from_secs(15), agent)
        .await
        .expect("the agent stops, flushing remote-write, within its grace")
        .expect("the agent task")
        .expect("the agent ran cleanly");
}
