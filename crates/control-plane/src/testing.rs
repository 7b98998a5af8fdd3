//! Test support: one real control plane per test binary, shared by its tests, stopped when the
//! binary exits — also when tests panic (the harness still exits normally, and an `atexit` hook
//! stops the processes). A binary killed outright leaves a directory whose owner pid is dead; the
//! next test binary to start cleans those up.
//!
//! Tests isolate themselves by namespace. A test that needs the control plane and cannot get one
//! panics with the reason: it never skips.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::plane::{ControlPlane, LabOptions};

static SHARED: OnceLock<ControlPlane> = OnceLock::new();

/// The shared control plane of this test binary (with kube-controller-manager), started on first
/// use. Panics, with the build or start-up error, if it cannot be had.
pub fn shared() -> &'static ControlPlane {
    start_shared(false)
}

/// [`shared`], with every request written to [`ControlPlane::audit_log`]. A test binary uses
/// one or the other: the first call starts the plane.
pub fn shared_with_audit_log() -> &'static ControlPlane {
    let plane = start_shared(true);
    assert!(
        plane.audit_log().exists(),
        "the shared control plane was started without an audit log: call shared_with_audit_log \
         first in this test binary"
    );
    plane
}

fn start_shared(audit_log: bool) -> &'static ControlPlane {
    SHARED.get_or_init(|| {
        let base = tests_dir();
        let mut options = LabOptions::new(base.join(format!("pid-{}", std::process::id())));
        options.controllers = true;
        options.audit_log = audit_log;
        // Start on a thread of its own with its own runtime: callers may be inside any runtime.
        let plane = std::thread::spawn(move || {
            runtime().block_on(async {
                clean_dead_test_labs(&base).await;
                ControlPlane::start(options).await
            })
        })
        .join()
        .expect("the control-plane start-up thread panicked")
        .unwrap_or_else(|e| panic!("cannot start the test control plane: {e}"));
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(stop_shared);
        }
        plane
    })
}

extern "C" fn stop_shared() {
    if let Some(plane) = SHARED.get()
        && let Err(e) = runtime().block_on(plane.stop())
    {
        eprintln!("stopping the test control plane: {e}");
    }
}

/// A runtime of its own: start-up and the exit hook run outside any test's runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the test control plane")
}

/// Where test labs live: `$FLEETWATCH_TEST_DIR`, else `<tmp>/fleetwatch-test`.
fn tests_dir() -> PathBuf {
    std::env::var_os("FLEETWATCH_TEST_DIR").map_or_else(
        || std::env::temp_dir().join("fleetwatch-test"),
        PathBuf::from,
    )
}

/// Stops and removes labs of test binaries that died without cleaning up.
async fn clean_dead_test_labs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("pid-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let owner_alive = Path::new(&format!("/proc/{pid}")).exists();
        if !owner_alive && let Err(e) = crate::plane::down(&entry.path()).await {
            tracing::warn!("cleaning up {}: {e}", entry.path().display());
        }
    }
}

/// A control plane of one test's own, for tests that restart, freeze or reconfigure it: stopped
/// when dropped, also when the test fails.
#[derive(Debug)]
pub struct Dedicated(Option<ControlPlane>);

impl Dedicated {
    /// Starts a control plane with `options` (see [`ControlPlane::start`]).
    pub async fn start(options: LabOptions) -> crate::error::Result<Dedicated> {
        ControlPlane::start(options)
            .await
            .map(|plane| Dedicated(Some(plane)))
    }
}

impl Dedicated {
    /// A lab under `dir` with the DaemonSet controller, kube-scheduler and kwok, holding `nodes`
    /// of kwok's fake nodes (see [`crate::plane::kwok`]); panics saying what failed.
    pub async fn with_kwok_nodes(dir: &Path, nodes: usize) -> Dedicated {
        let mut options = LabOptions::new(dir);
        options.controllers = true;
        options.kwok = true;
        let plane = Dedicated::start(options)
            .await
            .unwrap_or_else(|e| panic!("the lab with kube-scheduler and kwok cannot start: {e}"));
        let admin = plane.admin_client().await.expect("admin client");
        let spec = crate::PopulateSpec {
            kwok: true,
            ..crate::PopulateSpec::new(nodes, 0)
        };
        crate::populate(&admin, &spec, &|_, _| {})
            .await
            .unwrap_or_else(|e| panic!("creating {nodes} kwok nodes: {e}"));
        plane
    }
}

impl std::ops::Deref for Dedicated {
    type Target = ControlPlane;

    fn deref(&self) -> &ControlPlane {
        // Taken only in `drop`.
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        let Some(plane) = self.0.take() else { return };
        // Its own thread and runtime: this may run inside the test's runtime, or unwinding.
        let stopped = std::thread::spawn(move || runtime().block_on(plane.stop())).join();
        if !matches!(stopped, Ok(Ok(()))) {
            eprintln!("stopping a test's own control plane failed: {stopped:?}");
        }
    }
}

/// Who a SubjectAccessReview asks about: a user name and its groups, as the API server's
/// authenticator would hand them to the authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub user: String,
    pub groups: Vec<String>,
}

impl Subject {
    /// Service account `namespace/name`, with the groups every token of it authenticates with.
    pub fn service_account(namespace: &str, name: &str) -> Subject {
        Subject {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        }
    }

    /// A user in `groups`, plus `system:authenticated`, which the authenticator adds to every
    /// authenticated user (as for [`ControlPlane::client_for`]'s users).
    pub fn user(name: &str, groups: &[&str]) -> Subject {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        groups.push("system:authenticated".to_owned());
        Subject {
            user: name.to_owned(),
            groups,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.user)
    }
}

/// Whether the lab's authorizer lets `subject` `verb` `target`, in `namespace` (`None`: across
/// the cluster, which only a ClusterRoleBinding grants for namespaced resources). Asks with a
/// SubjectAccessReview through `client`, which must be allowed to create them (the admin).
///
/// `target` is written as `kubectl auth can-i` takes it: `resource[.group][/subresource]`
/// (`pods`, `pods/exec`, `leases.coordination.k8s.io`, `deployments.apps/scale`), or a
/// non-resource URL starting with `/` (`/metrics`).
///
/// Panics if the review cannot be made, or for a non-resource URL with a namespace: a test
/// cannot go on without the answer.
pub async fn can(
    client: &kube::Client,
    subject: &Subject,
    verb: &str,
    target: &str,
    namespace: Option<&str>,
) -> bool {
    use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec};

    let (resource_attributes, non_resource_attributes) = attributes(verb, target, namespace);
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(subject.user.clone()),
            groups: Some(subject.groups.clone()),
            resource_attributes,
            non_resource_attributes,
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviewed = kube::Api::<SubjectAccessReview>::all(client.clone())
        .create(&kube::api::PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| {
            panic!("a SubjectAccessReview of {subject} {verb} {target} in {namespace:?}: {e}")
        });
    reviewed
        .status
        .unwrap_or_else(|| panic!("the review of {subject} {verb} {target} has no status"))
        .allowed
}

/// Waits until [`can`] says yes, for at most `timeout`; panics naming the access if it never
/// does. The RBAC authorizer learns of a new binding through its informers, a moment after the
/// binding is stored, so a test that has just granted something waits for it here first.
pub async fn wait_until_can(
    client: &kube::Client,
    subject: &Subject,
    verb: &str,
    target: &str,
    namespace: Option<&str>,
    timeout: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + timeout;
    while !can(client, subject, verb, target, namespace).await {
        assert!(
            std::time::Instant::now() < deadline,
            "{subject} still may not {verb} {target} in {namespace:?} after {timeout:?}: the \
             grant did not reach the authorizer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A review's attributes for `verb` on `target` (see [`can`]).
fn attributes(
    verb: &str,
    target: &str,
    namespace: Option<&str>,
) -> (
    Option<k8s_openapi::api::authorization::v1::ResourceAttributes>,
    Option<k8s_openapi::api::authorization::v1::NonResourceAttributes>,
) {
    use k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes};

    if target.starts_with('/') {
        assert!(
            namespace.is_none(),
            "{target} is a non-resource URL: it has no namespace (asked for {namespace:?})"
        );
        let url = NonResourceAttributes {
            path: Some(target.to_owned()),
            verb: Some(verb.to_owned()),
        };
        return (None, Some(url));
    }
    let (resource, subresource) = match target.split_once('/') {
        Some((resource, subresource)) => (resource, Some(subresource.to_owned())),
        None => (target, None),
    };
    let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
    let attributes = ResourceAttributes {
        verb: Some(verb.to_owned()),
        group: Some(group.to_owned()),
        resource: Some(resource.to_owned()),
        subresource,
        namespace: namespace.map(str::to_owned),
        ..ResourceAttributes::default()
    };
    (Some(attributes), None)
}

/// Writes a kubeconfig into `dir` that authenticates to the lab's API server as service account
/// `namespace/name` with a token from the TokenRequest API, valid for `expiry` (at least 10
/// minutes: the API server refuses shorter), and returns its path: exactly the credentials a
/// pod of that service account has, for running a real binary with them. The token goes into
/// an owner-only file beside it, which the kubeconfig names (as a pod's token is mounted), so
/// neither the kubeconfig nor a log of it shows the token.
pub async fn service_account_kubeconfig(
    plane: &ControlPlane,
    namespace: &str,
    name: &str,
    expiry: std::time::Duration,
    dir: &Path,
) -> crate::error::Result<PathBuf> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;

    let admin = plane.admin_client().await?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(i64::try_from(expiry.as_secs()).unwrap_or(i64::MAX)),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let granted = kube::Api::<ServiceAccount>::namespaced(admin, namespace)
        .create_token_request(name, &kube::api::PostParams::default(), &request)
        .await?;
    let token = granted.status.and_then(|s| s.token).unwrap_or_default();
    let stem = crate::plane::kubeconfig::file_stem(&format!("{namespace}-{name}"));
    let (token_file, path) = (
        dir.join(format!("{stem}.token")),
        dir.join(format!("{stem}.kubeconfig")),
    );
    let fail = |reason: String| crate::Error::Kubeconfig {
        path: path.clone(),
        reason,
    };
    if token.is_empty() {
        return Err(fail(format!(
            "the TokenRequest for {namespace}/{name} returned no token"
        )));
    }
    let lab = kube::config::Kubeconfig::read_from(plane.kubeconfig())
        .map_err(|e| fail(format!("reading the lab's kubeconfig: {e}")))?;
    let user = format!("system:serviceaccount:{namespace}:{name}");
    let kubeconfig = token_kubeconfig(lab, &user, &token_file).map_err(fail)?;
    let text = serde_yaml_ng::to_string(&kubeconfig).map_err(|e| fail(e.to_string()))?;
    crate::plane::dir::write_private(&[(token_file.clone(), token), (path.clone(), text)])?;
    Ok(path)
}

/// The lab's kubeconfig `lab` (its cluster: server and CA) with one user, `user`, who
/// authenticates with the bearer token in `token_file`.
fn token_kubeconfig(
    lab: kube::config::Kubeconfig,
    user: &str,
    token_file: &Path,
) -> Result<kube::config::Kubeconfig, String> {
    use crate::plane::kubeconfig::{CONTEXT, single_context};

    let cluster = lab
        .clusters
        .into_iter()
        .find(|c| c.name == CONTEXT)
        .ok_or_else(|| format!("the lab's kubeconfig has no cluster {CONTEXT:?}"))?;
    let auth = kube::config::AuthInfo {
        token_file: Some(token_file.display().to_string()),
        ..kube::config::AuthInfo::default()
    };
    Ok(single_context(cluster, user, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_as_kubectl_auth_can_i_reads_them() {
        let resource = |target: &str, namespace| {
            let (resource, url) = attributes("get", target, namespace);
            assert!(url.is_none(), "{target}");
            let r = resource.expect("resource attributes");
            (r.group, r.resource, r.subresource, r.namespace)
        };
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(resource("pods", None), (s(""), s("pods"), None, None));
        assert_eq!(
            resource("nodes/proxy", None),
            (s(""), s("nodes"), s("proxy"), None)
        );
        assert_eq!(
            resource("leases.coordination.k8s.io", Some("ns")),
            (s("coordination.k8s.io"), s("leases"), None, s("ns"))
        );
        assert_eq!(
            resource("deployments.apps/scale", None),
            (s("apps"), s("deployments"), s("scale"), None)
        );
        let (resource, url) = attributes("get", "/metrics", None);
        assert!(resource.is_none());
        let url = url.expect("non-resource attributes");
        assert_eq!((url.verb, url.path), (s("get"), s("/metrics")));
    }

    #[test]
    #[should_panic(expected = "non-resource URL")]
    fn a_non_resource_url_has_no_namespace() {
        let _ = attributes("get", "/metrics", Some("default"));
    }

    #[test]
    fn a_service_account_is_in_the_groups_its_tokens_carry() {
        let sa = Subject::service_account("fleetwatch", "fleetwatch-agent");
        assert_eq!(sa.user, "system:serviceaccount:fleetwatch:fleetwatch-agent");
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:fleetwatch",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn a_token_kubeconfig_keeps_the_labs_cluster_and_names_only_the_token_file() {
        let lab: kube::config::Kubeconfig = serde_yaml_ng::from_str(
            "apiVersion: v1\nkind: Config\ncurrent-context: fleetwatch-lab\n\
             clusters: [{name: fleetwatch-lab, cluster: {server: 'https://127.0.0.1:6443', \
             certificate-authority: /lab/pki/serving-ca.crt}}]\n\
             contexts: [{name: fleetwatch-lab, context: {cluster: fleetwatch-lab, user: admin}}]\n\
             users: [{name: admin, user: {client-certificate: /lab/a.crt, client-key: /lab/a.key}}]\n",
        )
        .expect("a kubeconfig");
        let config = token_kubeconfig(lab, "system:serviceaccount:ns:sa", Path::new("/t/sa.token"))
            .expect("a token kubeconfig");
        let cluster = config.clusters[0].cluster.as_ref().expect("the cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/lab/pki/serving-ca.crt")
        );
        let [user] = config.auth_infos.as_slice() else {
            panic!("one user, not the admin too: {:?}", config.auth_infos)
        };
        let auth = user.auth_info.as_ref().expect("auth info");
        assert_eq!(auth.token_file.as_deref(), Some("/t/sa.token"));
        assert!(auth.token.is_none() && auth.client_certificate.is_none());
        assert_eq!(
            config.contexts[0]
                .context
                .as_ref()
                .and_then(|c| c.user.as_deref()),
            Some("system:serviceaccount:ns:sa")
        );
    }
}
