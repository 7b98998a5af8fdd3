//! The real `fleetwatch collector` process on the lab, as one user with exactly the read access
//! its deployment grants: for tests that feed a real Prometheus from it.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fleetwatch_control_plane::plane::ControlPlane;
use fleetwatch_control_plane::populate::from_json;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// A collector process serving `/metrics` on `address`, killed when dropped.
pub struct Collector {
    child: Child,
    pub address: SocketAddr,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Creates `object` with `api`; one that exists already (an earlier test's) is fine.
pub async fn create<K>(api: &Api<K>, object: &K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating {object:?}: {e}"),
    }
}

/// Grants `user` the collector's read access ([`fleetwatch_collector::access`]), as the chart
/// does its service account.
pub async fn grant_read_access(admin: &kube::Client, user: &str) {
    let role: ClusterRole = from_json(json!({
        "metadata": {"name": user},
        "rules": fleetwatch_collector::access::cluster_rules(),
    }))
    .expect("cluster role");
    create(&Api::all(admin.clone()), &role).await;
    let binding: ClusterRoleBinding = from_json(json!({
        "metadata": {"name": user},
        "roleRef": {"kind": "ClusterRole", "name": user, "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .expect("binding");
    create(&Api::all(admin.clone()), &binding).await;
}

/// The collector's audit webhook receiver: where it listens and its TLS files.
pub struct Audit {
    pub listen: SocketAddr,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// The CA of the client certificates it accepts (the API server's).
    pub client_ca: std::path::PathBuf,
}

/// Starts the collector as `user` (granted with [`grant_read_access`]), without leader election,
/// reading every replica of `plane` each 5 s over a `window`; its config and `collector.log`
/// are in `dir`.
pub fn start(plane: &ControlPlane, user: &str, window: Duration, dir: &Path) -> Collector {
    start_with_audit(plane, user, window, dir, None)
}

/// [`start`], with the audit webhook receiver on when `audit` is given.
pub fn start_with_audit(
    plane: &ControlPlane,
    user: &str,
    window: Duration,
    dir: &Path,
    audit: Option<&Audit>,
) -> Collector {
    let kubeconfig = plane
        .kubeconfig_for(user, &[])
        .expect("the collector's kubeconfig");
    let replicas: Vec<String> = plane
        .apiserver_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    let config = dir.join("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "apiserver:\n  interval_seconds: 5\n  timeout_seconds: 5\n  window_seconds: {}\n  \
             replicas: [{}]\nleader_election:\n  enabled: false\n",
            window.as_secs(),
            replicas.join(", ")
        ),
    )
    .expect("write the collector's config");
    let address = free_address();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetwatch"));
    command
        .args(["collector", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--listen", &address.to_string(), "--config"])
        .arg(&config);
    if let Some(audit) = audit {
        command
            .args(["--audit-listen", &audit.listen.to_string()])
            .arg("--audit-tls-cert")
            .arg(&audit.cert)
            .arg("--audit-tls-key")
            .arg(&audit.key)
            .arg("--audit-client-ca")
            .arg(&audit.client_ca);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("collector.log")).expect("a log file"))
        .spawn()
        .expect("start fleetwatch collector");
    Collector { child, address }
}
