//! The host source through its public API: fixture trees under `tests/fixtures/host/<name>`
//! (adapted from a real node's `/proc`), served exactly as their files say; failures counted
//! with the last good snapshot kept; and the live machine's `/proc`, which must look like a
//! machine's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetwatch_agent::health::Health;
use fleetwatch_agent::host::{Failure, Host, HostConfig, MAX_FILE_BYTES};
use fleetwatch_agent::source::{Build, Source as _};
use fleetwatch_telemetry::exposition::{self, Format, Readiness};
use fleetwatch_telemetry::page::{Page, Section};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// A fixture tree's root.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/host")
        .join(name)
}

/// What the agent would have built around the source.
struct Agent {
    registry: Registry,
    sections: Vec<Arc<dyn Section>>,
    readiness: Readiness,
    host: Host,
}

impl Agent {
    fn start(root: &Path, node: &str) -> Agent {
        let mut registry = Registry::default();
        let health = Health::register(&mut registry);
        let readiness = Readiness::default();
        let mut sections = Vec::new();
        let (_, stop) = watch::channel(false);
        let config = HostConfig {
            root: root.to_owned(),
            interval: Duration::from_secs(30),
        };
        let host = config
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
            readiness,
            host,
        }
    }

    /// The source's section, as `/metrics` writes it.
    fn page(&self) -> String {
        let mut out = Vec::new();
        {
            let mut page = Page::new(&mut out, Format::Text);
            for section in &self.sections {
                section.write(&mut page);
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    /// The health series.
    fn health(&self) -> BTreeMap<String, f64> {
        samples(&exposition::render(&self.registry, Format::Text).expect("renders"))
    }
}

/// A page's samples, by `name{labels}`.
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// The value of `series` on `page`, which must be there.
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

/// The bytes of every file under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                tree_bytes(&entry.path())
            } else {
                entry.metadata().expect("metadata").len()
            }
        })
        .sum()
}

/// Copies the tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

const UP: &str = "fleetwatch_agent_source_up{source=\"host\"}";

/// The fixtures' CPU times are in ticks of 100 a second, the USER_HZ of every architecture
/// Kubernetes runs on; on any other, the expected seconds below would be wrong, not the source.
fn assume_user_hz_100() {
    assert_eq!(
        procfs::ticks_per_second(),
        100,
        "the fixtures assume USER_HZ 100"
    );
}

#[tokio::test]
async fn node_a_is_served_exactly_as_its_files_say() {
    assume_user_hz_100();
    let root = fixture("node-a");
    let agent = Agent::start(&root, "node-a");
    let served = agent.host.poll().await.expect("the poll succeeds");
    let page = agent.page();
    let got = samples(&page);
    assert_eq!(served, got.len(), "{page}");
    // 13 from stat, 7 from meminfo, 5 from loadavg, 8 × 6 devices + 1, 2 fds, 2 conntrack, 6 PSI.
    assert_eq!(served, 84, "{page}");
    assert!(
        got.keys().all(|series| series.contains("node=\"node-a\"")),
        "every sample has node: {page}"
    );
    let cpu = |mode: &str| {
        value(
            &got,
            &format!("fleetwatch_agent_node_cpu_seconds_total{{node=\"node-a\",mode=\"{mode}\"}}"),
        )
    };
    let modes = [
        ("user", 3148.46),
        ("nice", 1482.8),
        ("system", 549.64),
        ("idle", 5900.01),
        ("iowait", 25.32),
        ("irq", 0.0),
        ("softirq", 6.91),
        ("steal", 46.65),
    ];
    for (mode, seconds) in modes {
        assert_eq!(cpu(mode), seconds, "{mode}");
    }
    let node = |name: &str| value(&got, &format!("{name}{{node=\"node-a\"}}"));
    let expected = [
        ("fleetwatch_agent_node_cpus", 2.0),
        ("fleetwatch_agent_node_context_switches_total", 3_260_607.0),
        ("fleetwatch_agent_node_forks_total", 44_511.0),
        ("fleetwatch_agent_node_boot_time_seconds", 1_796_312_222.0),
        ("fleetwatch_agent_node_tasks_blocked", 0.0),
        (
            "fleetwatch_agent_node_memory_total_bytes",
            24_683_664.0 * 1024.0,
        ),
        (
            "fleetwatch_agent_node_memory_available_bytes",
            24_211_208.0 * 1024.0,
        ),
        (
            "fleetwatch_agent_node_memory_free_bytes",
            20_670_556.0 * 1024.0,
        ),
        (
            "fleetwatch_agent_node_memory_buffers_bytes",
            14_588.0 * 1024.0,
        ),
        (
            "fleetwatch_agent_node_memory_cached_bytes",
            3_454_768.0 * 1024.0,
        ),
        ("fleetwatch_agent_node_memory_swap_total_bytes", 0.0),
        ("fleetwatch_agent_node_memory_swap_free_bytes", 0.0),
        ("fleetwatch_agent_node_load1", 0.68),
        ("fleetwatch_agent_node_load5", 1.98),
        ("fleetwatch_agent_node_load15", 2.34),
        ("fleetwatch_agent_node_tasks_running", 1.0),
        ("fleetwatch_agent_node_tasks", 88.0),
        ("fleetwatch_agent_node_network_devices", 6.0),
        ("fleetwatch_agent_node_file_descriptors_allocated", 220.0),
        ("fleetwatch_agent_node_file_descriptors_max", 2_466_103.0),
        ("fleetwatch_agent_node_conntrack_entries", 1873.0),
        ("fleetwatch_agent_node_conntrack_entries_max", 262_144.0),
    ];
    for (name, want) in expected {
        assert_eq!(node(name), want, "{name}");
    }
    let device = |name: &str, device: &str| {
        value(
            &got,
            &format!("fleetwatch_agent_node_network_{name}{{node=\"node-a\",device=\"{device}\"}}"),
        )
    };
    assert_eq!(device("receive_bytes_total", "eth0"), 324_212_462.0);
    assert_eq!(device("receive_packets_total", "eth0"), 17_802.0);
    assert_eq!(device("receive_errors_total", "eth0"), 3.0);
    assert_eq!(device("receive_drops_total", "eth0"), 7.0);
    assert_eq!(device("transmit_bytes_total", "eth0"), 1_293_463.0);
    assert_eq!(device("transmit_packets_total", "eth0"), 11_653.0);
    assert_eq!(device("transmit_errors_total", "eth0"), 1.0);
    assert_eq!(device("transmit_drops_total", "eth0"), 2.0);
    assert_eq!(device("receive_drops_total", "flannel.1"), 12.0);
    assert_eq!(device("transmit_bytes_total", "br-5c0d.100"), 796.0);
    assert_eq!(device("receive_bytes_total", "veth3f2a9c1e"), 1_201_334.0);
    let stall = |resource: &str, kind: &str| {
        value(
            &got,
            &format!(
                "fleetwatch_agent_node_pressure_stall_seconds_total{{node=\"node-a\",\
                 resource=\"{resource}\",kind=\"{kind}\"}}"
            ),
        )
    };
    assert_eq!(stall("cpu", "some"), 735.995648);
    assert_eq!(stall("cpu", "full"), 0.0);
    assert_eq!(stall("memory", "some"), 30.960591);
    assert_eq!(stall("memory", "full"), 17.807156);
    assert_eq!(stall("io", "some"), 8.123456);
    assert_eq!(stall("io", "full"), 5.234567);

    // Every family has its HELP, and counters are typed so.
    let mut help = None;
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP name text");
            assert!(!text.trim().is_empty(), "{line}");
            help = Some(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(help.as_deref(), Some(name), "a HELP before {line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        }
    }
    assert!(page.contains("# TYPE fleetwatch_agent_node_cpu_seconds_total counter\n"));

    let health = agent.health();
    assert_eq!(value(&health, UP), 1.0);
    assert_eq!(
        value(
            &health,
            "fleetwatch_agent_source_read_bytes_total{source=\"host\"}"
        ),
        tree_bytes(&root) as f64,
        "every file of the tree is read once, and counted"
    );
    assert!(agent.readiness.report().0);
}

#[tokio::test]
async fn missing_conntrack_and_cpu_full_are_left_out() {
    assume_user_hz_100();
    let agent = Agent::start(&fixture("node-b"), "node-b");
    agent.host.poll().await.expect("the poll succeeds");
    let page = agent.page();
    let got = samples(&page);
    assert!(!page.contains("conntrack"), "{page}");
    assert!(!page.contains("resource=\"cpu\",kind=\"full\""), "{page}");
    let stall = "fleetwatch_agent_node_pressure_stall_seconds_total{node=\"node-b\",";
    assert_eq!(
        value(&got, &format!("{stall}resource=\"cpu\",kind=\"some\"}}")),
        9876.54321
    );
    assert_eq!(
        value(&got, &format!("{stall}resource=\"io\",kind=\"full\"}}")),
        1.234567
    );
    let node = |name: &str| value(&got, &format!("{name}{{node=\"node-b\"}}"));
    assert_eq!(node("fleetwatch_agent_node_cpus"), 4.0);
    assert_eq!(node("fleetwatch_agent_node_tasks_blocked"), 2.0);
    assert_eq!(node("fleetwatch_agent_node_load1"), 12.07);
    assert_eq!(node("fleetwatch_agent_node_tasks"), 1523.0);
    assert_eq!(
        node("fleetwatch_agent_node_memory_swap_total_bytes"),
        2_097_148.0 * 1024.0
    );
    assert_eq!(
        node("fleetwatch_agent_node_memory_swap_free_bytes"),
        2_001_234.0 * 1024.0
    );
    assert_eq!(
        value(
            &got,
            "fleetwatch_agent_node_network_receive_bytes_total{node=\"node-b\",device=\"ens5\"}"
        ),
        123_456_789_012.0
    );
    assert_eq!(
        value(
            &got,
            "fleetwatch_agent_node_cpu_seconds_total{node=\"node-b\",mode=\"user\"}"
        ),
        88_123.45
    );
    assert_eq!(value(&agent.health(), UP), 1.0);
}

#[tokio::test]
async fn a_malformed_file_is_named_by_path_and_line() {
    let root = fixture("bad-meminfo");
    let agent = Agent::start(&root, "n");
    let failure = agent.host.poll().await.expect_err("the poll fails");
    assert_eq!(
        failure,
        Failure {
            reason: "parse",
            message: format!(
                "{}:3: expected `Name: value kB` or `Name: value` (a name of letters, digits, \
                 `_()`), not `MemAvailable`",
                root.join("proc/meminfo").display()
            ),
        }
    );
    assert_eq!(agent.page(), "", "nothing was ever read whole");
    let health = agent.health();
    assert_eq!(value(&health, UP), 0.0);
    assert_eq!(
        value(
            &health,
            "fleetwatch_agent_source_errors_total{source=\"host\",reason=\"parse\"}"
        ),
        1.0
    );
    assert!(agent.readiness.report().0, "ready once it has tried");
}

#[tokio::test]
async fn a_failed_poll_keeps_the_last_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture("node-a"), dir.path());
    let agent = Agent::start(dir.path(), "node-a");
    agent.host.poll().await.expect("the first poll succeeds");
    let first = agent.page();
    assert!(
        first.contains("fleetwatch_agent_node_memory_total_bytes"),
        "{first}"
    );

    let meminfo = dir.path().join("proc/meminfo");
    let saved = std::fs::read(&meminfo).expect("read");
    std::fs::remove_file(&meminfo).expect("remove");
    let failure = agent.host.poll().await.expect_err("meminfo is missing");
    assert_eq!(failure.reason, "read");
    assert_eq!(
        failure.message,
        format!("{}: no such file", meminfo.display())
    );
    assert_eq!(
        agent.page(),
        first,
        "the last good snapshot is still served"
    );
    let health = agent.health();
    assert_eq!(value(&health, UP), 0.0);
    let errors = "fleetwatch_agent_source_errors_total{source=\"host\",reason=\"read\"}";
    assert_eq!(value(&health, errors), 1.0);

    // A file over the limit is refused, not read whole.
    let limit = usize::try_from(MAX_FILE_BYTES).expect("fits");
    std::fs::write(&meminfo, vec![b' '; limit + 1]).expect("write");
    let failure = agent.host.poll().await.expect_err("meminfo is too large");
    assert_eq!(failure.reason, "too_large");
    assert_eq!(agent.page(), first);

    std::fs::write(&meminfo, saved).expect("restore");
    agent.host.poll().await.expect("meminfo is back");
    let health = agent.health();
    assert_eq!(value(&health, UP), 1.0);
    assert_eq!(value(&health, errors), 1.0);
}

#[tokio::test]
async fn the_built_task_polls_until_stopped() {
    let mut registry = Registry::default();
    let health = Health::register(&mut registry);
    let readiness = Readiness::default();
    let mut sections = Vec::new();
    let (stop_tx, stop) = watch::channel(false);
    let config = HostConfig {
        root: fixture("node-a"),
        interval: Duration::from_secs(1),
    };
    let task = config
        .build(&mut Build {
            node: "node-a",
            registry: &mut registry,
            sections: &mut sections,
            readiness: &readiness,
            health: &health,
            stop,
        })
        .expect("builds");
    let task = tokio::spawn(task);
    // The first poll comes within a second (a random pause of up to the interval).
    tokio::time::timeout(Duration::from_secs(10), async {
        while !readiness.report().0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first poll ends within 10 s");
    let page = exposition::render(&registry, Format::Text).expect("renders");
    assert_eq!(value(&samples(&page), UP), 1.0);
    stop_tx.send(true).expect("the task listens");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task stops")
        .expect("without panicking");
}

#[test]
fn a_root_without_proc_does_not_start() {
    let mut registry = Registry::default();
    let health = Health::register(&mut registry);
    let (_, stop) = watch::channel(false);
    let root = fixture("");
    let error = HostConfig {
        root: root.clone(),
        interval: Duration::from_secs(30),
    }
    .start(&mut Build {
        node: "n",
        registry: &mut registry,
        sections: &mut Vec::new(),
        readiness: &Readiness::default(),
        health: &health,
        stop,
    })
    .map(|_| ())
    .expect_err("no proc under the fixtures' directory");
    assert!(
        error.to_string().starts_with(&format!(
            "--host-root: {} has no proc directory",
            root.display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn the_live_machine_looks_like_a_machine() {
    let agent = Agent::start(Path::new("/"), "live");
    agent.host.poll().await.expect("the live /proc parses");
    let first = samples(&agent.page());
    // Long enough for some ticks (100 a second) to pass on some CPU.
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.host.poll().await.expect("and again");
    let second = samples(&agent.page());
    let node = |samples: &BTreeMap<String, f64>, name: &str| {
        value(samples, &format!("{name}{{node=\"live\"}}"))
    };
    let cpu_total = |samples: &BTreeMap<String, f64>| -> f64 {
        samples
            .iter()
            .filter(|(series, _)| series.starts_with("fleetwatch_agent_node_cpu_seconds_total{"))
            .map(|(_, seconds)| seconds)
            .sum()
    };
    assert!(node(&second, "fleetwatch_agent_node_cpus") >= 1.0);
    assert!(
        cpu_total(&second) > cpu_total(&first),
        "CPU time grows: {} then {}",
        cpu_total(&first),
        cpu_total(&second)
    );
    let total = node(&second, "fleetwatch_agent_node_memory_total_bytes");
    let available = node(&second, "fleetwatch_agent_node_memory_available_bytes");
    let free = node(&second, "fleetwatch_agent_node_memory_free_bytes");
    assert!(total > available && available > 0.0, "{total} {available}");
    assert!(total >= free, "{total} {free}");
    let ctxt = "fleetwatch_agent_node_context_switches_total";
    assert!(node(&second, ctxt) >= node(&first, ctxt));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let boot = node(&second, "fleetwatch_agent_node_boot_time_seconds");
    assert!(boot > 0.0 && boot < now, "{boot} {now}");
    let tasks = node(&second, "fleetwatch_agent_node_tasks");
    let running = node(&second, "fleetwatch_agent_node_tasks_running");
    assert!(
        tasks >= running && running >= 1.0,
        "the reader itself runs: {running}/{tasks}"
    );
    assert!(node(&second, "fleetwatch_agent_node_load1") >= 0.0);
    let allocated = node(&second, "fleetwatch_agent_node_file_descriptors_allocated");
    let max = node(&second, "fleetwatch_agent_node_file_descriptors_max");
    assert!(allocated > 0.0 && max >= allocated, "{allocated} {max}");
    assert!(
        second.contains_key(
            "fleetwatch_agent_node_network_receive_bytes_total{node=\"live\",device=\"lo\"}"
        ),
        "every network namespace has lo"
    );
    if Path::new("/proc/pressure/memory").exists() {
        let stall = "fleetwatch_agent_node_pressure_stall_seconds_total{node=\"live\",\
                     resource=\"memory\",kind=\"some\"}";
        assert!(value(&second, stall) >= value(&first, stall));
    }
    let health = agent.health();
    assert_eq!(value(&health, UP), 1.0);
    assert!(
        value(
            &health,
            "fleetwatch_agent_source_read_bytes_total{source=\"host\"}"
        ) > 0.0
    );
}
