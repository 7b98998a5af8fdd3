//! The command lines of the lab's processes (envtest's recipe, see
//! `shared/design/REAL_CONTROL_PLANE.md`): loopback only, TLS with the lab's CAs, RBAC.

use std::path::Path;

use super::kwok::{NODE_ANNOTATION, NODE_LEASE_SECONDS};

/// etcd on loopback, fsync off (test data), an 8 GiB quota for large labs.
pub(crate) fn etcd(data: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let url = etcd_url(client_port);
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=lab".to_owned(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={url}"),
        format!("--advertise-client-urls={url}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=lab={peer}"),
        "--unsafe-no-fsync=true".to_owned(),
        "--quota-backend-bytes=8589934592".to_owned(),
        "--log-level=warn".to_owned(),
    ]
}

pub(crate) fn etcd_url(client_port: u16) -> String {
    format!("http://127.0.0.1:{client_port}")
}

pub(crate) fn apiserver_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// kube-apiserver on loopback at `port`, with the lab's certificates in `pki`.
/// `inflight`: `--max-requests-inflight` and `--max-mutating-requests-inflight`.
pub(crate) fn apiserver(
    etcd_url: &str,
    port: u16,
    pki: &Path,
    inflight: Option<(u32, u32)>,
) -> Vec<String> {
    let file = |f: &str| pki.join(f).display().to_string();
    let url = apiserver_url(port);
    let mut args = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", pki.display()),
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        format!("--client-ca-file={}", file("client-ca.crt")),
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        "--allow-privileged=true".to_owned(),
        "--authorization-mode=RBAC".to_owned(),
        "--disable-admission-plugins=ServiceAccount".to_owned(),
        format!("--service-account-issuer={url}/"),
        format!("--service-account-key-file={}", file("sa.pub")),
        format!("--service-account-signing-key-file={}", file("sa.key")),
        "--profiling=false".to_owned(),
    ];
    if let Some((all, mutating)) = inflight {
        args.push(format!("--max-requests-inflight={all}"));
        args.push(format!("--max-mutating-requests-inflight={mutating}"));
    }
    args
}

/// kube-apiserver's audit flags: `policy` decides what is audited, `webhook` (a kubeconfig)
/// where batches go. Batches are sent after at most a second (the default, 30 s, would make
/// every test wait), and a failed send is retried after a second rather than ten.
pub(crate) fn audit_webhook(policy: &Path, webhook: &Path) -> Vec<String> {
    vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-webhook-config-file={}", webhook.display()),
        "--audit-webhook-batch-max-wait=1s".to_owned(),
        "--audit-webhook-initial-backoff=1s".to_owned(),
    ]
}

/// The API server's flags to audit by `policy` into the JSON lines file `log`.
pub(crate) fn audit_log(policy: &Path, log: &Path) -> Vec<String> {
    vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log.display()),
        "--audit-log-format=json".to_owned(),
        "--audit-log-mode=blocking".to_owned(),
    ]
}

/// kube-controller-manager as the admin (`kubeconfig`), serving on loopback at `port`.
pub(crate) fn controller_manager(kubeconfig: &Path, port: u16, pki: &Path) -> Vec<String> {
    let mut args = component_base(kubeconfig, port);
    args.extend([
        format!("--cert-dir={}", pki.join("kcm").display()),
        format!("--root-ca-file={}", pki.join("serving-ca.crt").display()),
        format!(
            "--service-account-private-key-file={}",
            pki.join("sa.key").display()
        ),
        "--leader-elect=false".to_owned(),
        "--use-service-account-credentials=false".to_owned(),
        // No kubelets renew these nodes' leases: the node lifecycle controller would mark every
        // synthetic node NotReady and evict its pods. The synthetic pods' owning ReplicaSets
        // must stay inert too, or their controller would add and delete pods while the lab
        // fills them.
        "--controllers=*,-node-lifecycle-controller,-node-ipam-controller,-replicaset-controller"
            .to_owned(),
    ]);
    args
}

/// What kube-controller-manager and kube-scheduler share: `kubeconfig`'s user for the API and
/// for delegated authentication and authorization, serving on loopback at `port`.
fn component_base(kubeconfig: &Path, port: u16) -> Vec<String> {
    let kubeconfig = kubeconfig.display();
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
    ]
}

/// kube-scheduler as `kubeconfig`'s user, serving `/readyz` on loopback at `port` with `cert` and
/// `key` (from the lab's serving CA, so the lab can check it). No leader election, as for
/// kube-controller-manager: a lab runs one, and one that lost its lease while the API server
/// restarts (fault injection) would exit.
pub(crate) fn scheduler(kubeconfig: &Path, port: u16, cert: &Path, key: &Path) -> Vec<String> {
    let mut args = component_base(kubeconfig, port);
    args.extend([
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
        "--leader-elect=false".to_owned(),
    ]);
    args
}

/// kwok as `kubeconfig`'s user, with its Stages from the files `stages` (no CRDs: nothing is
/// installed into the lab), managing the nodes annotated [`NODE_ANNOTATION`] and their
/// pods and leases, serving `/healthz` over plain HTTP on loopback at `port`.
pub(crate) fn kwok(kubeconfig: &Path, stages: &[&Path], port: u16) -> Vec<String> {
    let (key, value) = NODE_ANNOTATION;
    let mut args = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--enable-crds=".to_owned(),
        format!("--manage-nodes-with-annotation-selector={key}={value}"),
        format!("--node-lease-duration-seconds={NODE_LEASE_SECONDS}"),
        format!("--server-address=127.0.0.1:{port}"),
    ];
    args.extend(stages.iter().map(|s| format!("--config={}", s.display())));
    args
}
