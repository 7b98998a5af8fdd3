//! Two `fleetwatch collector` processes against the real control plane, each with its own user
//! and least-privilege RBAC: one leads; only the leader watches and scrapes (counted by the API
//! server, per user, through a FlowSchema of each user's own); `kill -9` the leader and the other
//! takes over within the lease duration; SIGTERM releases the Lease.

// The test sets up RBAC, FlowSchemas and reads the Lease with the lab's admin client.
#![allow(clippy::disallowed_types)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetwatch_client::{Client, Settings, Source};
use fleetwatch_control_plane::plane::ControlPlane;
use fleetwatch_control_plane::populate::from_json;
use fleetwatch_control_plane::testing;
use fleetwatch_telemetry::text;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::flowcontrol::v1::FlowSchema;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const NAMESPACE: &str = "fw-leader-test";
const LEASE: &str = "fw-leader-test";
const LEASE_SECONDS: u64 = 8;
const USERS: [&str; 2] = ["fw-collector-a", "fw-collector-b"];

/// A collector process, killed when dropped.
struct Collector {
    user: &'static str,
    child: Child,
    address: SocketAddr,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    fn start(user: &'static str, kubeconfig: &Path, config: &Path, log: &Path) -> Collector {
        let address = free_address();
        let child = Command::new(env!("CARGO_BIN_EXE_fleetwatch"))
            .args(["collector", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--listen", &address.to_string(), "--config"])
            .arg(config)
            .env("POD_NAME", user)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("a log file"))
            .spawn()
            .expect("start fleetwatch collector");
        Collector {
            user,
            child,
            address,
        }
    }

    /// The value of the first sample of `name` on the collector's page, if it serves one.
    fn value(&self, name: &str) -> Option<f64> {
        let page = http_get(self.address)?;
        text::parse(&page)
            .samples()
            .find(|s| s.name == name)
            .map(|s| s.value)
    }

    fn leading(&self) -> Option<bool> {
        self.value("fleetwatch_collector_leader").map(|v| v == 1.0)
    }
}

fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `GET /metrics`, or `None` if nothing answers yet.
fn http_get(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the collector reads, exactly ([`fleetwatch_collector::access`]), and its Lease.
async fn grant_least_privilege(admin: &kube::Client) {
    let created = |e: kube::Error| match e {
        kube::Error::Api(s) if s.code == 409 => (),
        e => panic!("creating a test object: {e}"),
    };
    let post = PostParams::default();
    let namespace: Namespace = from_json(json!({"metadata": {"name": NAMESPACE}})).expect("ns");
    Api::<Namespace>::all(admin.clone())
        .create(&post, &namespace)
        .await
        .map_or_else(created, drop);
    let role: ClusterRole = from_json(json!({
        "metadata": {"name": "fw-leader-test-collector"},
        "rules": fleetwatch_collector::access::cluster_rules(),
    }))
    .expect("cluster role");
    Api::<ClusterRole>::all(admin.clone())
        .create(&post, &role)
        .await
        .map_or_else(created, drop);
    let lease_role: Role = from_json(json!({
        "metadata": {"name": "fw-leader-test-lease", "namespace": NAMESPACE},
        "rules": fleetwatch_collector::access::lease_rules(),
    }))
    .expect("role");
    Api::<Role>::namespaced(admin.clone(), NAMESPACE)
        .create(&post, &lease_role)
        .await
        .map_or_else(created, drop);
    let subjects: Vec<_> = USERS
        .iter()
        .map(|u| json!({"kind": "User", "name": u, "apiGroup": "rbac.authorization.k8s.io"}))
        .collect();
    let binding: ClusterRoleBinding = from_json(json!({
        "metadata": {"name": "fw-leader-test-collector"},
        "roleRef": {"kind": "ClusterRole", "name": "fw-leader-test-collector",
                    "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": subjects,
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&post, &binding)
        .await
        .map_or_else(created, drop);
    let lease_binding: RoleBinding = from_json(json!({
        "metadata": {"name": "fw-leader-test-lease", "namespace": NAMESPACE},
        "roleRef": {"kind": "Role", "name": "fw-leader-test-lease",
                    "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": subjects,
    }))
    .expect("lease binding");
    Api::<RoleBinding>::namespaced(admin.clone(), NAMESPACE)
        .create(&post, &lease_binding)
        .await
        .map_or_else(created, drop);
}

/// Two FlowSchemas per user, so the API server counts its Lease requests apart from the rest.
async fn count_requests_per_user(admin: &kube::Client) {
    let schemas = Api::<FlowSchema>::all(admin.clone());
    for user in USERS {
        let subject = json!([{"kind": "User", "user": {"name": user}}]);
        let leases = json!({
            "metadata": {"name": format!("{user}-lease")},
            "spec": {
                "matchingPrecedence": 500,
                "priorityLevelConfiguration": {"name": "workload-low"},
                "rules": [{"subjects": subject, "resourceRules": [{
                    "verbs": ["*"], "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"], "namespaces": ["*"]}]}],
            },
        });
        let other = json!({
            "metadata": {"name": format!("{user}-other")},
            "spec": {
                "matchingPrecedence": 501,
                "priorityLevelConfiguration": {"name": "workload-low"},
                "rules": [{"subjects": subject,
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                       "clusterScope": true, "namespaces": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}],
            },
        });
        for schema in [leases, other] {
            let schema: FlowSchema = from_json(schema).expect("flow schema");
            match schemas.create(&PostParams::default(), &schema).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => panic!("creating a FlowSchema: {e}"),
            }
        }
    }
}

/// Requests the API server dispatched under `flow_schema` so far.
async fn dispatched(scraper: &Client, flow_schema: &str) -> f64 {
    let page = scraper
        .scrape("/metrics")
        .await
        .expect("the API server's /metrics");
    text::parse(&page)
        .samples()
        .filter(|s| s.name == "apiserver_flowcontrol_dispatched_requests_total")
        .filter(|s| s.label("flow_schema") == Some(flow_schema))
        .map(|s| s.value)
        .sum()
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("collector.yaml");
    let config = format!(
        "apiserver:\n  interval_seconds: 15\n  timeout_seconds: 15\n  window_seconds: 30\n\
         leader_election:\n  namespace: {NAMESPACE}\n  name: {LEASE}\n  \
         lease_duration_seconds: {LEASE_SECONDS}\n  renew_grace_seconds: 3\n"
    );
    std::fs::write(&path, config).expect("write the config");
    path
}

fn user_kubeconfig(plane: &ControlPlane, user: &str) -> std::path::PathBuf {
    plane
        .kubeconfig_for(user, &[])
        .expect("a user's kubeconfig")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_works_and_a_follower_takes_over_within_the_lease() {
    let plane = testing::shared();
    let admin = plane.admin_client().await.expect("the admin client");
    grant_least_privilege(&admin).await;
    count_requests_per_user(&admin).await;
    let scraper = Client::connect(
        Source::Kubeconfig {
            path: plane.kubeconfig(),
            context: None,
        },
        Settings::new("leader-test"),
    )
    .await
    .expect("a client for the API server's /metrics");

    let tmp = tempfile::tempdir().expect("tempdir");
    let config = write_config(tmp.path());
    let mut collectors: Vec<Collector> = USERS
        .iter()
        .map(|user| {
            let kubeconfig = user_kubeconfig(plane, user);
            let log = tmp.path().join(format!("{user}.log"));
            Collector::start(user, &kubeconfig, &config, &log)
        })
        .collect();
    let logs = || {
        USERS
            .iter()
            .map(|u| {
                let log = std::fs::read_to_string(tmp.path().join(format!("{u}.log")));
                format!("--- {u}:\n{}", log.unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Exactly one leads, and its sources run (it has scraped the API server).
    let leader = wait_for("one collector leads", Duration::from_secs(60), || {
        let standing: Vec<Option<bool>> = collectors.iter().map(Collector::leading).collect();
        match standing.as_slice() {
            [Some(true), Some(false)] => Some(0),
            [Some(false), Some(true)] => Some(1),
            _ => None,
        }
    });
    let follower = 1 - leader;
    wait_for(
        "the leader scrapes the API server",
        Duration::from_secs(90),
        || {
            collectors[leader]
                .value("fleetwatch_collector_apiserver_up")
                .filter(|up| *up == 1.0)
        },
    );
    assert_eq!(
        collectors[follower].value("fleetwatch_collector_apiserver_up"),
        None,
        "the follower serves no source series\n{}",
        logs()
    );

    // Over 20 s the follower touches nothing but the Lease; the leader scrapes and renews.
    let (leader_user, follower_user) = (collectors[leader].user, collectors[follower].user);
    let schemas = [
        format!("{leader_user}-other"),
        format!("{leader_user}-lease"),
        format!("{follower_user}-other"),
        format!("{follower_user}-lease"),
    ];
    let mut before = Vec::new();
    for schema in &schemas {
        before.push(dispatched(&scraper, schema).await);
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut delta = Vec::new();
    for (schema, before) in schemas.iter().zip(&before) {
        delta.push(dispatched(&scraper, schema).await - before);
    }
    eprintln!("requests in 20 s by flow schema: {schemas:?} {delta:?}");
    assert!(delta[0] > 0.0, "the leader scrapes: {delta:?}");
    assert!(delta[1] >= 2.0, "the leader renews every 5 s: {delta:?}");
    assert_eq!(
        delta[2], 0.0,
        "the follower makes no other request: {delta:?}"
    );
    assert!(delta[3] >= 1.0, "the follower reads the Lease: {delta:?}");

    // kill -9 the leader: the follower takes over within the lease duration (and a second of
    // the lease manager's jitter), and its sources start.
    let killed = Instant::now();
    collectors[leader].child.kill().expect("kill -9 the leader");
    let _ = collectors[leader].child.wait();
    wait_for(
        "the follower takes over",
        Duration::from_secs(LEASE_SECONDS + 2),
        || collectors[follower].leading().filter(|l| *l),
    );
    let takeover = killed.elapsed();
    eprintln!(
        "takeover {:.1} s after kill -9 (lease {LEASE_SECONDS} s)",
        takeover.as_secs_f64()
    );
    assert_eq!(
        collectors[follower].value("fleetwatch_collector_leader_terms_total"),
        Some(1.0),
        "the takeover counts as a term"
    );
    wait_for("the new leader scrapes", Duration::from_secs(90), || {
        collectors[follower]
            .value("fleetwatch_collector_apiserver_up")
            .filter(|up| *up == 1.0)
    });

    // SIGTERM: the new leader stops cleanly and gives the Lease up.
    let new_leader = collectors.remove(follower);
    let pid = i32::try_from(new_leader.child.id()).expect("a pid");
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let mut new_leader = new_leader;
    let status = wait_for(
        "the collector exits on SIGTERM",
        Duration::from_secs(25),
        || new_leader.child.try_wait().ok().flatten(),
    );
    assert!(status.success(), "exit status {status}\n{}", logs());
    let lease = Api::<Lease>::namespaced(admin, NAMESPACE)
        .get(LEASE)
        .await
        .expect("the Lease");
    let holder = lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(holder, None, "the Lease was released\n{}", logs());
}
