//! The chart's least privilege on the lab's real kube-apiserver, once the rendered chart is
//! applied: SubjectAccessReviews show that the collector's service account may read what the
//! collector watches and write its Lease, and nothing else (no secrets, no other writes, no
//! escalation), and that the agent's may get the kubelet's metrics and stats, and nothing else.
//! Then the real `fleetwatch collector`, run with exactly its service account's credentials (a
//! TokenRequest token), leads, syncs, serves API-server SLIs and object state, and is refused
//! nothing.

// The tests apply the chart, populate the lab, ask for reviews and read the Lease with the
// lab's admin client.
#![allow(clippy::disallowed_types)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{NAMESPACE, named, objects, render};
use fleetwatch_control_plane::populate::{PopulateSpec, node_name, populate};
use fleetwatch_control_plane::testing::{self, Subject, can, wait_until_can};
use fleetwatch_telemetry::text;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::Value;

/// How long the RBAC authorizer may take to see the chart's bindings after they are applied.
const GRANT_SEEN: Duration = Duration::from_secs(20);

/// The service account the chart runs workload `kind`/`name` as (its pod template's
/// `serviceAccountName`), after checking that the chart creates it: `(name, subject)`.
fn runs_as(objects: &[Value], kind: &str, name: &str) -> (String, Subject) {
    let account = named(objects, kind, name)["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_else(|| panic!("the chart's {kind} {name} names no serviceAccountName"))
        .to_owned();
    let namespace = named(objects, "ServiceAccount", &account)["metadata"]["namespace"]
        .as_str()
        .unwrap_or_else(|| panic!("the chart's ServiceAccount {account} has no namespace"))
        .to_owned();
    assert_eq!(namespace, NAMESPACE, "the {kind}'s service account");
    let subject = Subject::service_account(&namespace, &account);
    (account, subject)
}

/// The `(verb, target)` pairs a ClusterRole's or Role's `rules` grant, targets written as
/// [`can`] takes them (`resource.group`, or a non-resource URL).
fn granted(rules: &Value) -> Vec<(String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut pairs = Vec::new();
    for rule in rules.as_array().expect("rules are a list") {
        let verbs = strings(&rule["verbs"]);
        let mut targets = strings(&rule["nonResourceURLs"]);
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                targets.push(if group.is_empty() {
                    resource
                } else {
                    format!("{resource}.{group}")
                });
            }
        }
        for target in targets {
            pairs.extend(verbs.iter().map(|verb| (verb.clone(), target.clone())));
        }
    }
    assert!(!pairs.is_empty(), "no grants in {rules}");
    pairs
}

/// What one review asks: verb, target, namespace (`None`: cluster-wide).
type Access = (String, String, Option<String>);

fn access(verb: &str, target: &str, namespace: Option<&str>) -> Access {
    (
        verb.to_owned(),
        target.to_owned(),
        namespace.map(str::to_owned),
    )
}

/// Asks every review and panics listing each one whose answer is not `expected`.
async fn expect_all(client: &kube::Client, subject: &Subject, expected: bool, asked: &[Access]) {
    let mut wrong = Vec::new();
    for (verb, target, namespace) in asked {
        if can(client, subject, verb, target, namespace.as_deref()).await != expected {
            let place = namespace
                .as_deref()
                .map_or("cluster-wide".to_owned(), |n| format!("in namespace {n}"));
            wrong.push(format!("{verb} {target} {place}"));
        }
    }
    let (answer, why) = if expected {
        ("may not", "the component needs it")
    } else {
        ("may", "more than the component needs")
    };
    assert!(
        wrong.is_empty(),
        "{subject} {answer} ({why}):\n  {}",
        wrong.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collectors_service_account_reads_what_it_watches_and_writes_only_its_lease() {
    let plane = testing::shared_with_audit_log();
    let admin = plane.admin_client().await.expect("the admin client");
    common::install(&admin).await;
    let (_, collector) = runs_as(&objects(&render()), "Deployment", "fleetwatch-collector");
    let lease = "leases.coordination.k8s.io";
    wait_until_can(&admin, &collector, "get", "pods", None, GRANT_SEEN).await;
    wait_until_can(
        &admin,
        &collector,
        "update",
        lease,
        Some(NAMESPACE),
        GRANT_SEEN,
    )
    .await;

    // Exactly what the collector's code declares, as the chart binds it: cluster-wide reads
    // (and the API servers' pages) from the ClusterRole, the Lease in the release's namespace.
    let mut allowed: Vec<Access> = granted(&fleetwatch_collector::access::cluster_rules())
        .into_iter()
        .map(|(verb, target)| (verb, target, None))
        .collect();
    allowed.extend(
        granted(&fleetwatch_collector::access::lease_rules())
            .into_iter()
            .map(|(verb, target)| (verb, target, Some(NAMESPACE.to_owned()))),
    );
    assert!(
        allowed.contains(&access("get", "/metrics", None))
            && allowed.contains(&access("patch", lease, Some(NAMESPACE))),
        "the declared rules changed shape: {allowed:?}"
    );
    expect_all(&admin, &collector, true, &allowed).await;

    let mut denied = Vec::new();
    for namespace in [Some(NAMESPACE), None] {
        for verb in ["get", "list", "watch"] {
            denied.push(access(verb, "secrets", namespace));
        }
        // No write to anything it reads, nor to what it could use to run code.
        for target in [
            "pods",
            "configmaps",
            "deployments.apps",
            "daemonsets.apps",
            "endpointslices.discovery.k8s.io",
            "events",
            "serviceaccounts",
        ] {
            for verb in ["create", "update", "patch", "delete", "deletecollection"] {
                denied.push(access(verb, target, namespace));
            }
        }
        for target in ["pods/exec", "pods/attach", "pods/portforward"] {
            denied.push(access("create", target, namespace));
            denied.push(access("get", target, namespace));
        }
        // Minting a token for any service account of the namespace is as good as its rights.
        denied.push(access("create", "serviceaccounts/token", namespace));
        denied.push(access(
            "create",
            "rolebindings.rbac.authorization.k8s.io",
            namespace,
        ));
        denied.push(access(
            "create",
            "roles.rbac.authorization.k8s.io",
            namespace,
        ));
    }
    for verb in ["create", "update", "patch", "delete"] {
        denied.push(access(verb, "nodes", None));
        denied.push(access(verb, "namespaces", None));
    }
    // Its Lease's namespace only, and never deleted (a release is an update).
    denied.push(access("delete", lease, Some(NAMESPACE)));
    denied.push(access("deletecollection", lease, Some(NAMESPACE)));
    for namespace in [
        Some("kube-system"),
        Some("default"),
        Some("kube-node-lease"),
        None,
    ] {
        for verb in ["create", "update", "patch", "delete"] {
            denied.push(access(verb, lease, namespace));
        }
    }
    // No way to more rights.
    for verb in ["create", "update", "patch", "escalate", "bind"] {
        denied.push(access(verb, "clusterroles.rbac.authorization.k8s.io", None));
    }
    denied.push(access(
        "create",
        "clusterrolebindings.rbac.authorization.k8s.io",
        None,
    ));
    for target in ["users", "groups", "serviceaccounts"] {
        denied.push(access("impersonate", target, None));
    }
    denied.push(access(
        "create",
        "subjectaccessreviews.authorization.k8s.io",
        None,
    ));
    for verb in ["get", "create"] {
        denied.push(access(verb, "nodes/proxy", None));
    }
    expect_all(&admin, &collector, false, &denied).await;
    eprintln!(
        "{collector}: {} accesses allowed, {} denied, as declared",
        allowed.len(),
        denied.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_service_account_gets_the_kubelets_metrics_and_stats_only() {
    let plane = testing::shared_with_audit_log();
    let admin = plane.admin_client().await.expect("the admin client");
    common::install(&admin).await;
    let (_, agent) = runs_as(&objects(&render()), "DaemonSet", "fleetwatch-agent");
    wait_until_can(&admin, &agent, "get", "nodes/stats", None, GRANT_SEEN).await;

    let allowed: Vec<Access> = granted(&fleetwatch_agent::access::cluster_rules())
        .into_iter()
        .map(|(verb, target)| (verb, target, None))
        .collect();
    assert_eq!(
        allowed,
        [
            access("get", "nodes/metrics", None),
            access("get", "nodes/stats", None)
        ],
        "the agent's declared rules"
    );
    expect_all(&admin, &agent, true, &allowed).await;

    let mut denied = vec![
        // `nodes/proxy` would also grant exec into every pod on the node.
        access("get", "nodes/proxy", None),
        access("create", "nodes/proxy", None),
        access("get", "nodes", None),
        access("list", "nodes", None),
        access("watch", "nodes", None),
        access("update", "nodes/stats", None),
    ];
    for namespace in [Some(NAMESPACE), None] {
        denied.push(access("list", "pods", namespace));
        denied.push(access("watch", "pods", namespace));
        denied.push(access("get", "secrets", namespace));
        denied.push(access("list", "secrets", namespace));
        denied.push(access("create", "pods/exec", namespace));
        denied.push(access("create", "events", namespace));
        denied.push(access("create", "serviceaccounts/token", namespace));
        denied.push(access("get", "leases.coordination.k8s.io", namespace));
    }
    expect_all(&admin, &agent, false, &denied).await;
    eprintln!(
        "{agent}: {} accesses allowed, {} denied, as declared",
        allowed.len(),
        denied.len()
    );
}

/// A `fleetwatch collector` process, killed when dropped (also when the test fails).
struct Collector {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    fn start(kubeconfig: &Path, config: &Path, identity: &str, dir: &Path) -> Collector {
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let log = dir.join("collector.log");
        let child = Command::new(env!("CARGO_BIN_EXE_fleetwatch"))
            .args(["collector", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--listen", &address.to_string(), "--config"])
            .arg(config)
            // As the chart's Deployment sets it, from the downward API.
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info")
            // Only the kubeconfig given: no ambient credentials to fall back on.
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("start fleetwatch collector");
        Collector {
            child,
            address,
            log,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `/metrics` page, if the collector serves it.
    fn metrics(&self) -> Option<String> {
        match get(self.address, "/metrics")? {
            (200, page) => Some(page),
            _ => None,
        }
    }

    /// Waits until `check` finds something, for at most `timeout`; panics naming `what`, with
    /// the collector's stderr, when the time is up or as soon as the collector exits.
    fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Collector) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{what}: the collector exited ({status}); its stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; the collector's stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Sends SIGTERM and waits at most `timeout` for the collector to exit.
    fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: sends a signal to our own child process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the collector did not exit within {timeout:?} of SIGTERM; its stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The value of the first sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let page = self.metrics()?;
        text::parse(&page)
            .samples()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
    }
}

/// `GET path` over HTTP/1.0 (so the body is not chunked): the status and body, or `None` if
/// nothing answers yet.
fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The collector's config: the Lease in the release's namespace (a pod finds it in its service
/// account's mounted namespace file; this process has none), the lab's API server named
/// outright because its `kubernetes` EndpointSlice lists the host's address (kube-apiserver
/// advertises its default interface) while it listens on loopback only, and short intervals so
/// the test is quick.
fn write_config(dir: &Path, apiserver: &str) -> PathBuf {
    let path = dir.join("collector.yaml");
    let config = format!(
        "apiserver:\n  interval_seconds: 5\n  timeout_seconds: 5\n  window_seconds: 15\n  \
         replicas: [\"{apiserver}\"]\nleader_election:\n  namespace: {NAMESPACE}\n"
    );
    std::fs::write(&path, config).expect("write the collector's config");
    path
}

/// Whether a log line reports a refusal: the client's errors say `HTTP 403 Forbidden`, kube's
/// `Forbidden` / `code: 403`. (A bare `403` would also match timestamps and versions.)
fn refused(line: &str) -> bool {
    line.to_ascii_lowercase().contains("forbidden")
        || ["HTTP 403", "code: 403", "status: 403"]
            .iter()
            .any(|p| line.contains(p))
}

#[test]
fn a_refusal_in_the_log_is_recognised_and_a_timestamp_is_not() {
    assert!(refused(
        "WARN list pods on https://127.0.0.1:6443: HTTP 403 Forbidden: pods is forbidden"
    ));
    assert!(refused(
        "ErrorResponse { reason: \"Forbidden\", code: 403 }"
    ));
    assert!(!refused(
        "2026-01-01T00:00:00.403123Z  INFO leading: sources started"
    ));
}

/// The `(verb, resource or path, code)` of every request the API server audited for `user`.
fn audited(
    plane: &fleetwatch_control_plane::ControlPlane,
    user: &str,
) -> Vec<(String, String, i64)> {
    let log = std::fs::read_to_string(plane.audit_log()).expect("the audit log");
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["user"]["username"] == user)
        .map(|event| {
            let what = match event["objectRef"]["resource"].as_str() {
                Some(resource) => resource.to_owned(),
                None => event["requestURI"].as_str().unwrap_or_default().to_owned(),
            };
            let code = event["responseStatus"]["code"].as_i64().unwrap_or_default();
            (
                event["verb"].as_str().unwrap_or_default().to_owned(),
                what,
                code,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_with_only_its_service_accounts_token_leads_syncs_and_is_refused_nothing() {
    let started = Instant::now();
    let plane = testing::shared_with_audit_log();
    let admin = plane.admin_client().await.expect("the admin client");
    common::install(&admin).await;
    let (account, subject) = runs_as(&objects(&render()), "Deployment", "fleetwatch-collector");
    // Nodes and pods for its informers to report (only this test populates this binary's lab).
    populate(&admin, &PopulateSpec::new(2, 2), &|_, _| {})
        .await
        .expect("two nodes and their pods");
    wait_until_can(&admin, &subject, "watch", "pods", None, GRANT_SEEN).await;
    let lease = "leases.coordination.k8s.io";
    wait_until_can(
        &admin,
        &subject,
        "create",
        lease,
        Some(NAMESPACE),
        GRANT_SEEN,
    )
    .await;

    let tmp = tempfile::tempdir().expect("tempdir");
    let kubeconfig = testing::service_account_kubeconfig(
        plane,
        NAMESPACE,
        &account,
        Duration::from_secs(600),
        tmp.path(),
    )
    .await
    .expect("a kubeconfig with the collector's service-account token");
    let config = write_config(tmp.path(), &plane.apiserver_url());
    let identity = "fleetwatch-collector-7d9f-test";
    let mut collector = Collector::start(&kubeconfig, &config, identity, tmp.path());

    // It leads: its Lease is in the release's namespace, held by it.
    collector.wait_for("the collector leads", Duration::from_secs(60), |c| {
        c.value("fleetwatch_collector_leader", &[])
            .filter(|v| *v == 1.0)
    });
    let held = Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get("fleetwatch-collector")
        .await
        .expect("the collector's Lease in the release's namespace");
    assert_eq!(
        held.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(identity),
        "the Lease's holder\n{}",
        collector.stderr()
    );

    // Every component synced: its informers listed and watched, its scrapes answered.
    let readyz = collector.wait_for("/readyz is ready", Duration::from_secs(60), |c| {
        get(c.address, "/readyz?verbose").filter(|(status, _)| *status == 200)
    });
    for component in ["objects", "apiserver"] {
        assert!(
            readyz.1.contains(&format!("[+]{component} ok")),
            "{component} is not among the ready components: {}",
            readyz.1
        );
    }
    // Up from the first scrape; a rate needs two.
    let replica = plane.apiserver_url();
    let page = collector.wait_for("the API server's SLIs", Duration::from_secs(60), |c| {
        let page = c.metrics()?;
        let parsed = text::parse(&page);
        let up = parsed.samples().any(|s| {
            s.name == "fleetwatch_collector_apiserver_up"
                && s.label("replica") == Some(replica.as_str())
                && s.value == 1.0
        });
        let rates = parsed.samples().any(|s| {
            s.name == "fleetwatch_collector_apiserver_requests_per_second"
                && s.label("replica") == Some(replica.as_str())
        });
        (up && rates).then_some(())?;
        Some(page)
    });
    let parsed = text::parse(&page);
    let samples: Vec<_> = parsed.samples().collect();
    let has = |name: &str, label: &str, value: &str| {
        samples
            .iter()
            .any(|s| s.name == name && s.label(label) == Some(value) && s.value == 1.0)
    };
    assert!(
        has("kube_node_info", "node", &node_name(0))
            && has("kube_node_info", "node", &node_name(1)),
        "kube_node_info for both nodes"
    );
    assert!(
        has("kube_pod_status_phase", "phase", "Running"),
        "a Running pod in kube_pod_status_phase"
    );
    assert!(
        has("kube_namespace_status_phase", "namespace", NAMESPACE),
        "the release's namespace in kube_namespace_status_phase"
    );

    // SIGTERM: it stops cleanly and releases its Lease, with the same rights.
    let status = collector.terminate(Duration::from_secs(25));
    let stderr = collector.stderr();
    assert!(status.success(), "exit status {status}\n{stderr}");
    let released = Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get("fleetwatch-collector")
        .await
        .expect("the collector's Lease");
    assert_eq!(
        released.spec.and_then(|s| s.holder_identity),
        None,
        "the Lease was released on SIGTERM\n{stderr}"
    );
    let refusals: Vec<&str> = stderr.lines().filter(|l| refused(l)).collect();
    assert!(
        refusals.is_empty(),
        "the collector was refused something:\n{}",
        refusals.join("\n")
    );

    // The API server's own record: it served the collector as the service account (every
    // informer's watch, the Lease, the API server's pages) and refused it nothing.
    let requests = audited(plane, &subject.user);
    let denied: Vec<_> = requests
        .iter()
        .filter(|(_, _, code)| *code == 403)
        .collect();
    assert!(
        denied.is_empty(),
        "the API server refused {subject}: {denied:?}"
    );
    let served: std::collections::BTreeSet<(&str, &str)> = requests
        .iter()
        .filter(|(_, _, code)| *code < 300)
        .map(|(verb, what, _)| (verb.as_str(), what.as_str()))
        .collect();
    // Each informer watches (1.37's informers may stream the initial list in the watch, so a
    // LIST is not required), and nothing is read but what its sources need.
    for resource in ["nodes", "pods", "namespaces", "daemonsets", "deployments"] {
        assert!(
            served.contains(&("watch", resource)),
            "no watch of {resource} served to {subject}: {served:?}"
        );
    }
    // The lease manager creates the Lease, then takes, renews and releases it by server-side
    // apply (a patch).
    assert!(
        requests
            .iter()
            .any(|(v, r, code)| v == "create" && r == "leases" && *code == 201)
            && requests
                .iter()
                .any(|(v, r, code)| v == "patch" && r == "leases" && *code == 200),
        "{subject} created and applied its Lease: {:?}",
        requests
            .iter()
            .filter(|(_, r, _)| r == "leases")
            .collect::<Vec<_>>()
    );
    assert!(
        requests
            .iter()
            .any(|(v, r, code)| v == "get" && r == "/metrics" && *code == 200),
        "{subject} read the API server's /metrics"
    );
    eprintln!(
        "{subject}: {} requests audited, none refused, served {served:?}; {:.1} s",
        requests.len(),
        started.elapsed().as_secs_f64()
    );
}
