//! The DNS probe against the real dnsmasq (Debian's 2.90, fetched into the cache by
//! `scripts/dnsmasq`): an "upstream" dnsmasq serving `kubernetes.default.svc.cluster.local` at
//! TTL 2 stands in for the cluster DNS, a second one in front of it with `--use-stale-cache`
//! for the node-local cache. The upstream is killed, and the agent must say, within one TTL and
//! two intervals, that the cache is answering past the TTL — while the cache still answers.
//!
//! No skipping: without the binary the tests fail, saying how to get it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwatch_agent::dns::DnsConfig;
use fleetwatch_agent::health::Health;
use fleetwatch_agent::source::{Build, Source};
use fleetwatch_telemetry::exposition::{self, Format, Readiness};
use fleetwatch_telemetry::page::{Page, Section};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

const NAME: &str = "kubernetes.default.svc.cluster.local";
const MISSING: &str = "missing.default.svc.cluster.local";
/// A name with more A records than fit a 512-byte UDP reply: dnsmasq truncates it.
const BIG: &str = "big.default.svc.cluster.local";
/// The upstream's TTL for `NAME`.
const TTL: Duration = Duration::from_secs(2);
const INTERVAL: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_millis(300);
/// Polls come every interval ±10 %.
const LONGEST_INTERVAL: Duration = Duration::from_millis(550);

/// The cached dnsmasq, or a failure that says how to get it.
fn dnsmasq_binary() -> PathBuf {
    let cache = std::env::var_os("FLEETWATCH_CACHE").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME or FLEETWATCH_CACHE is set");
            PathBuf::from(home).join(".cache/fleetwatch")
        },
        PathBuf::from,
    );
    let path = cache.join("bin/dnsmasq-2.90/dnsmasq");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/dnsmasq (it fetches Debian's dnsmasq 2.90 into the cache)",
        path.display()
    );
    path
}

/// `N` ports free on `ip` for both UDP and TCP (dnsmasq serves both), all different: each is
/// held until all are found.
fn free_addresses<const N: usize>(ip: Ipv4Addr) -> [SocketAddr; N] {
    let mut held = Vec::new();
    for _ in 0..100 {
        let udp = UdpSocket::bind((ip, 0)).expect("bind a UDP port on loopback");
        let address = udp.local_addr().expect("local address");
        if let Ok(tcp) = TcpListener::bind(address) {
            held.push((address, udp, tcp));
        }
        if held.len() == N {
            return std::array::from_fn(|i| held[i].0);
        }
    }
    panic!("not {N} ports free for both UDP and TCP on {ip}");
}

/// A loopback address of its own for this test (127.0.0.2–254), so that tests running at once
/// are unlikely to meet.
fn loopback() -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, rand::random_range(2..=254))
}

/// A running dnsmasq, killed when dropped; its log is printed if the test is failing.
struct Dnsmasq {
    role: &'static str,
    child: Option<Child>,
    address: SocketAddr,
    log: PathBuf,
    args: Vec<String>,
}

impl Dnsmasq {
    /// Starts dnsmasq on `address` with `extra` arguments and waits until it accepts TCP.
    fn start(role: &'static str, dir: &Path, address: SocketAddr, extra: &[String]) -> Dnsmasq {
        let log = dir.join(format!("{role}.log"));
        let mut args = vec![
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--bind-interfaces".to_owned(),
            format!("--listen-address={}", address.ip()),
            format!("--port={}", address.port()),
            "--pid-file=".to_owned(),
            "--log-queries".to_owned(),
            format!("--log-facility={}", log.display()),
        ];
        // As root, dnsmasq would otherwise change to `nobody`; as anyone else it stays itself.
        if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0) {
            args.push("--user=root".to_owned());
        }
        args.extend_from_slice(extra);
        let mut dnsmasq = Dnsmasq {
            role,
            child: None,
            address,
            log,
            args,
        };
        dnsmasq.spawn();
        dnsmasq
    }

    fn spawn(&mut self) {
        let child = Command::new(dnsmasq_binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dnsmasq");
        self.child = Some(child);
        self.wait_until_serving();
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(100)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!(
                    "the {} dnsmasq exited ({status}): {stderr}\n{}",
                    self.role,
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the {} dnsmasq does not serve on {} after 10 s\n{}",
                self.role,
                self.address,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it outright (a crash, not a shutdown) and waits for it to be gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn logs(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("({e})"));
        format!(
            "--- {} dnsmasq log ({}):\n{log}",
            self.role,
            self.log.display()
        )
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The upstream: authoritative for `cluster.local` (NXDOMAIN for any other name in it), with
/// `NAME` at TTL 2 and `BIG`'s 40 addresses.
fn upstream(dir: &Path, address: SocketAddr) -> Dnsmasq {
    let mut args = vec![
        format!("--host-record={NAME},10.96.0.1"),
        format!("--local-ttl={}", TTL.as_secs()),
        "--local=/cluster.local/".to_owned(),
    ];
    args.extend((1..=40).map(|i| format!("--host-record={BIG},10.97.0.{i}")));
    Dnsmasq::start("upstream", dir, address, &args)
}

/// The node-local cache: forwards everything to the upstream, and answers from expired entries
/// (at TTL 0) when it cannot refresh them.
fn cache(dir: &Path, address: SocketAddr, upstream: SocketAddr) -> Dnsmasq {
    Dnsmasq::start(
        "cache",
        dir,
        address,
        &[
            format!("--server={}#{}", upstream.ip(), upstream.port()),
            "--use-stale-cache".to_owned(),
        ],
    )
}

/// The agent's DNS source, built through the public API and running.
struct Agent {
    sections: Vec<Arc<dyn Section>>,
    registry: Registry,
    readiness: Readiness,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    fn start(config: &DnsConfig) -> Agent {
        let mut registry = Registry::default();
        let health = Health::register(&mut registry);
        let readiness = Readiness::default();
        let (stop, stopped) = watch::channel(false);
        let mut sections = Vec::new();
        let task = config
            .build(&mut Build {
                node: "node-1",
                registry: &mut registry,
                sections: &mut sections,
                readiness: &readiness,
                health: &health,
                stop: stopped,
            })
            .expect("build the DNS source");
        Agent {
            sections,
            registry,
            readiness,
            stop,
            task: tokio::spawn(task),
        }
    }

    /// The source's sections as the text format.
    fn page(&self) -> String {
        let mut out = Vec::new();
        let mut page = Page::new(&mut out, Format::Text);
        for section in &self.sections {
            section.write(&mut page);
        }
        String::from_utf8(out).expect("utf-8")
    }

    /// The sample of `series` whose labels include all of `labels` (there must be at most
    /// one).
    fn value(&self, series: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sample(&self.page(), series, labels)
    }

    /// Polls every 50 ms until `done` holds or `within` has passed; returns how long it took.
    async fn until(&self, within: Duration, what: &str, done: impl Fn(&Agent) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            if done(self) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "not within {within:?}: {what}\n{}",
                self.page()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("the source stops when told")
            .expect("the source's task does not panic");
    }
}

fn sample(page: &str, series: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut found = page.lines().filter_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix('{')?;
        let (label_part, value) = rest.split_once("} ")?;
        let have: Vec<&str> = label_part.split(',').collect();
        wanted
            .iter()
            .all(|w| have.contains(&w.as_str()))
            .then(|| value.trim().parse::<f64>().expect("a number"))
    });
    let first = found.next();
    assert!(
        found.next().is_none(),
        "more than one {series} sample with {labels:?}:\n{page}"
    );
    first
}

fn up(agent: &Agent, name: &str, server: &str) -> Option<f64> {
    agent.value(
        "fleetwatch_agent_dns_up",
        &[("node", "node-1"), ("name", name), ("server", server)],
    )
}

fn stale(agent: &Agent, name: &str) -> Option<f64> {
    agent.value(
        "fleetwatch_agent_dns_served_stale",
        &[("node", "node-1"), ("name", name)],
    )
}

fn lookups(agent: &Agent, name: &str, server: &str, result: &str) -> f64 {
    agent
        .value(
            "fleetwatch_agent_dns_lookups_total",
            &[("name", name), ("server", server), ("result", result)],
        )
        .unwrap_or_else(|| panic!("no lookups_total for {name} {server} {result}"))
}

fn probe_config(resolver: SocketAddr, cluster_dns: Option<SocketAddr>) -> DnsConfig {
    DnsConfig {
        names: vec![NAME.to_owned(), MISSING.to_owned()],
        resolver: Some(resolver),
        cluster_dns,
        interval: INTERVAL,
        timeout: TIMEOUT,
        ..DnsConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_answering_past_the_ttl_while_the_upstream_is_down_is_served_stale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ip = loopback();
    let [upstream_address, cache_address] = free_addresses(ip);
    let mut upstream = upstream(dir.path(), upstream_address);
    let cache = cache(dir.path(), cache_address, upstream_address);
    let agent = Agent::start(&probe_config(cache_address, Some(upstream_address)));

    agent
        .until(Duration::from_secs(10), "both servers answer", |agent| {
            up(agent, NAME, "resolver") == Some(1.0) && up(agent, NAME, "cluster_dns") == Some(1.0)
        })
        .await;
    assert!(
        agent.readiness.report().0,
        "ready after a poll: {:?}",
        agent.readiness.report()
    );
    assert_eq!(
        agent.value(
            "fleetwatch_agent_dns_stale_check_enabled",
            &[("node", "node-1")]
        ),
        Some(1.0)
    );

    // Healthy, for more than two TTLs: the cache's entry expires and dnsmasq serves it once at
    // TTL 0 while it refreshes. That is not stale, the upstream answers.
    let first_success = lookups(&agent, NAME, "resolver", "success");
    let healthy_until = Instant::now() + TTL * 2 + INTERVAL * 2;
    let mut resolver_ttl_zero_seen = false;
    while Instant::now() < healthy_until {
        let page = agent.page();
        assert_eq!(
            sample(
                &page,
                "fleetwatch_agent_dns_served_stale",
                &[("name", NAME)]
            ),
            Some(0.0),
            "not stale while the upstream answers:\n{page}"
        );
        resolver_ttl_zero_seen |= sample(
            &page,
            "fleetwatch_agent_dns_answer_ttl_seconds",
            &[("name", NAME), ("server", "resolver")],
        ) == Some(0.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        resolver_ttl_zero_seen,
        "dnsmasq --use-stale-cache answers at TTL 0 once per expiry even when healthy; the test \
         means to check that is not called stale, but never saw it:\n{}",
        agent.page()
    );
    let healthy_success = lookups(&agent, NAME, "resolver", "success");
    assert!(
        healthy_success >= first_success + 4.0,
        "a lookup every interval: {first_success} then {healthy_success}"
    );
    assert!(lookups(&agent, MISSING, "resolver", "nxdomain") >= 1.0);
    assert!(lookups(&agent, MISSING, "cluster_dns", "nxdomain") >= 1.0);
    assert_eq!(up(&agent, MISSING, "resolver"), Some(0.0));
    assert_eq!(stale(&agent, MISSING), Some(0.0));

    let cache_log_before_kill = cache.logs().len();
    upstream.kill();
    // The first failed poll comes within an interval, the bound it sets expires a TTL later,
    // and the next poll sees it: a TTL and two intervals, and some time for the lookups.
    let within = TTL + LONGEST_INTERVAL * 2 + Duration::from_millis(500);
    let detected = agent
        .until(within, "served_stale 1 after the upstream died", |agent| {
            stale(agent, NAME) == Some(1.0)
        })
        .await;
    eprintln!(
        "served_stale 1 {:.2} s after the upstream was killed (TTL {} s, interval {:?}): \
         stale_seconds {:?}",
        detected.as_secs_f64(),
        TTL.as_secs(),
        INTERVAL,
        agent.value("fleetwatch_agent_dns_stale_seconds", &[("name", NAME)]),
    );
    let page = agent.page();
    assert_eq!(
        sample(
            &page,
            "fleetwatch_agent_dns_up",
            &[("name", NAME), ("server", "resolver")]
        ),
        Some(1.0),
        "the cache still answers:\n{page}"
    );
    assert_eq!(
        sample(
            &page,
            "fleetwatch_agent_dns_up",
            &[("name", NAME), ("server", "cluster_dns")]
        ),
        Some(0.0),
        "{page}"
    );
    let stale_seconds = sample(
        &page,
        "fleetwatch_agent_dns_stale_seconds",
        &[("name", NAME)],
    )
    .expect("stale_seconds");
    assert!(stale_seconds > 0.0, "{page}");

    // It stays so, and grows, while the cache goes on answering.
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(stale(&agent, NAME), Some(1.0), "{}", agent.page());
    let later = agent
        .value("fleetwatch_agent_dns_stale_seconds", &[("name", NAME)])
        .expect("stale_seconds");
    assert!(later > stale_seconds, "{stale_seconds} then {later}");
    assert_eq!(up(&agent, NAME, "resolver"), Some(1.0));
    assert!(lookups(&agent, NAME, "resolver", "success") > healthy_success);
    assert!(lookups(&agent, NAME, "cluster_dns", "error") >= 1.0);
    // A name the cache holds no answer for is not "served stale".
    assert_eq!(stale(&agent, MISSING), Some(0.0));
    let health = exposition::render(&agent.registry, Format::Text).expect("render");
    assert!(
        health.contains("fleetwatch_agent_source_up{source=\"dns\"} 0"),
        "the source's poll fails while a server does not answer:\n{health}"
    );
    // dnsmasq's own word, against ours: since the kill it has answered from expired entries.
    // (Only after the kill: healthy, it serves one expired answer per refresh too.)
    let since_kill = cache.logs().split_off(cache_log_before_kill);
    assert!(
        since_kill.contains(&format!("cached-stale {NAME} is 10.96.0.1")),
        "the cache says it answered from expired entries since the upstream died:\n{since_kill}"
    );

    // The upstream back: not stale any more.
    upstream.spawn();
    agent
        .until(
            Duration::from_secs(5),
            "served_stale 0 once the upstream is back",
            |agent| stale(agent, NAME) == Some(0.0) && up(agent, NAME, "cluster_dns") == Some(1.0),
        )
        .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cluster_dns_the_stale_check_says_it_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [address] = free_addresses(loopback());
    let _server = upstream(dir.path(), address);
    let mut config = probe_config(address, None);
    config.names.push(BIG.to_owned());
    let agent = Agent::start(&config);
    agent
        .until(Duration::from_secs(10), "the resolver answers", |agent| {
            up(agent, NAME, "resolver") == Some(1.0)
        })
        .await;
    let page = agent.page();
    assert_eq!(
        sample(&page, "fleetwatch_agent_dns_stale_check_enabled", &[]),
        Some(0.0),
        "{page}"
    );
    assert!(
        !page.contains("fleetwatch_agent_dns_served_stale{"),
        "no verdict without an upstream to compare: {page}"
    );
    assert!(!page.contains("cluster_dns"), "{page}");
    assert_eq!(
        sample(
            &page,
            "fleetwatch_agent_dns_answer_ttl_seconds",
            &[("name", NAME), ("server", "resolver")]
        ),
        Some(TTL.as_secs_f64()),
        "an authoritative answer's TTL as given: {page}"
    );
    assert!(lookups(&agent, MISSING, "resolver", "nxdomain") >= 1.0);
    // Truncated over UDP, answered over TCP.
    assert_eq!(up(&agent, BIG, "resolver"), Some(1.0), "{page}");
    assert_eq!(lookups(&agent, BIG, "resolver", "error"), 0.0, "{page}");
    agent.stop().await;
}
