//! A frozen API server (SIGSTOP for 60 s, then SIGCONT): connections stay open and nothing
//! answers. The client must not spin (its process CPU stays low), its memory stays bounded, and
//! everything recovers after the thaw. Its own control plane: it freezes the API server.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect, create, eventually, namespace, settings, test_user};
use fleetwatch_client::Watch;
use fleetwatch_control_plane::testing;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use serde_json::json;

const NS: &str = "frozen";
const FREEZE: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// One readiness probe of the component: when it started, how long it took, whether it answered.
#[derive(Debug)]
struct Probe {
    started: Instant,
    took: Duration,
    answered: bool,
}

/// The probes made wholly within the freeze: none answered (the freeze was real), each gave up at
/// its own timeout (give or take a second of scheduling), and they kept their cadence.
fn assert_probes_kept_coming_while_frozen(
    probes: &[Probe],
    stopped_at: Instant,
    thawed_at: Instant,
) {
    let frozen: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.started >= stopped_at && p.started + p.took < thawed_at)
        .collect();
    let cycle = PROBE_TIMEOUT + PROBE_EVERY;
    // Cycles that fit in the freeze, less one at each end that straddles it.
    let expected = (FREEZE.as_secs_f64() / cycle.as_secs_f64()).floor() as usize - 2;
    println!(
        "frozen test: {} probes within the freeze, {} answered, longest {:?}",
        frozen.len(),
        frozen.iter().filter(|p| p.answered).count(),
        frozen.iter().map(|p| p.took).max()
    );
    assert!(
        frozen.len() >= expected,
        "{} probes in a {FREEZE:?} freeze, expected at least {expected}: the component was held up",
        frozen.len()
    );
    for probe in &frozen {
        assert!(
            !probe.answered,
            "a frozen API server answered: the freeze proves nothing"
        );
        assert!(
            probe.took < PROBE_TIMEOUT + Duration::from_secs(1),
            "a probe took {:?}, past its own {PROBE_TIMEOUT:?} timeout",
            probe.took
        );
    }
}

fn name<K>(meta: &PartialObjectMeta<K>) -> String {
    meta.metadata.name.clone().unwrap_or_default()
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// Resident memory of this process in MiB, from `/proc/self/status`.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number");
    kib / 1024.0
}

#[tokio::test]
async fn a_frozen_api_server_costs_no_cpu_and_everything_recovers() {
    common::log();
    let plane = testing::shared();
    let kubeconfig = test_user(plane, "fw-frozen", "workload-low").await;
    namespace(plane, NS).await;
    let admin = plane.admin_client().await.expect("admin");
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    for i in 0..5 {
        create(
            &configmaps,
            json!({"metadata": {"name": format!("cm-{i}")}}),
        )
        .await;
    }
    // Watches end (server side) after 60–120 s, so some end around the thaw and must resume.
    let mut settings = settings("frozen");
    settings.watch_timeout = Duration::from_secs(60);
    let client = connect(kubeconfig, settings).await;
    let watches = || {
        common::sum(
            &common::client_metrics(&client),
            "fleetwatch_client_requests_total",
            &[("verb", "watch")],
        )
    };
    let informers = (
        client
            .metadata_informer(Watch::<ConfigMap>::namespaced(NS), name)
            .expect("configmaps"),
        client
            .metadata_informer(Watch::<Secret>::namespaced(NS), name)
            .expect("secrets"),
        client
            .metadata_informer(Watch::<Pod>::namespaced(NS), name)
            .expect("pods"),
    );
    informers.0.ready().await;
    informers.1.ready().await;
    informers.2.ready().await;
    let watches_before = watches();

    // A component keeps doing its work while the server is frozen: a readiness probe every
    // second with its own timeout, and a write. The client must not hold the component up: each
    // probe gives up at its own timeout (none is stuck inside the client), and once the server
    // thaws, probes answer again.
    let probes: Arc<Mutex<Vec<Probe>>> = Arc::default();
    let prober = {
        let (client, probes) = (client.clone(), probes.clone());
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let probe = tokio::time::timeout(PROBE_TIMEOUT, client.scrape("/readyz")).await;
                let answered = matches!(probe, Ok(Ok(_)));
                let took = started.elapsed();
                probes.lock().expect("probes").push(Probe {
                    started,
                    took,
                    answered,
                });
                tokio::time::sleep(PROBE_EVERY).await;
            }
        })
    };

    let (cpu_before, rss_before) = (cpu_seconds(), rss_mib());
    let frozen_at = Instant::now();
    plane.freeze("kube-apiserver");
    // Taken after the freeze: whatever starts after it, starts while the server is stopped.
    let stopped_at = Instant::now();
    let write = {
        let writer = client.writer::<ConfigMap>(NS);
        let object: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "written-while-frozen"}}))
                .expect("cm");
        tokio::spawn(async move { writer.create(&object).await })
    };
    let mut rss_peak = rss_before;
    while frozen_at.elapsed() < FREEZE {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(rss_mib());
    }
    let cpu = cpu_seconds() - cpu_before;
    let frozen_for = frozen_at.elapsed().as_secs_f64();
    // Taken before the thaw: whatever ends before it, ended while the server was stopped.
    let thawed_at = Instant::now();
    plane.thaw("kube-apiserver");
    println!(
        "frozen test: {frozen_for:.0} s frozen; client process CPU {cpu:.2} s ({:.2}% of a core); \
         RSS {rss_before:.1} MiB before, {rss_peak:.1} MiB peak",
        100.0 * cpu / frozen_for
    );
    assert!(
        cpu < 0.02 * frozen_for,
        "the client used {cpu:.2} s of CPU while the server was frozen"
    );
    assert!(
        rss_peak - rss_before < 64.0,
        "memory grew from {rss_before:.1} to {rss_peak:.1} MiB"
    );

    // Everything recovers: the write lands, the watches deliver, probes answer.
    write
        .await
        .expect("task")
        .expect("the write made during the freeze succeeds after it");
    create(&configmaps, json!({"metadata": {"name": "after-thaw"}})).await;
    let names =
        || -> BTreeSet<String> { informers.0.store().iter().map(|(_, n)| n.clone()).collect() };
    eventually(
        Duration::from_secs(60),
        "the watch to deliver after the thaw",
        || names().contains("after-thaw") && names().contains("written-while-frozen"),
    )
    .await;
    assert!(
        client
            .scrape("/readyz")
            .await
            .expect("readyz after the thaw")
            .contains("ok")
    );
    eventually(
        Duration::from_secs(30),
        "a probe to answer after the thaw",
        || {
            let probes = probes.lock().expect("probes");
            probes.iter().any(|p| p.started > thawed_at && p.answered)
        },
    )
    .await;
    prober.abort();
    assert_probes_kept_coming_while_frozen(&probes.lock().expect("probes"), stopped_at, thawed_at);

    // A watch the server ended resumes from its resourceVersion: more watches, no more lists.
    eventually(Duration::from_secs(70), "a watch to end and resume", || {
        watches() > watches_before
    })
    .await;
    let lists = [
        informers.0.stats().lists,
        informers.1.stats().lists,
        informers.2.stats().lists,
    ];
    println!(
        "frozen test: lists per informer {lists:?}; watch requests {watches_before} before the \
         freeze, {} now",
        watches()
    );
    assert_eq!(
        lists,
        [1, 1, 1],
        "a watch that ended was relisted instead of resumed"
    );
}
