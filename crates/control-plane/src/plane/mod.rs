//! One lab control plane: etcd, kube-apiserver and optionally kube-controller-manager, and
//! kube-scheduler with kwok for fake nodes ([`kwok`]), on loopback, with generated certificates,
//! RBAC, and an admin user in `system:masters`.
//!
//! Its directory ([`dir`]) holds everything it made: a marker, `state.json` (the processes it
//! started, written as each one starts so a crash leaves a record), `pki/`, `etcd/`, `logs/`,
//! `users/`, `kubeconfig` and, with kwok, `kwok/` (its Stages). The processes' command lines are
//! in [`recipes`], how they are started and awaited in [`launch`], more API server replicas in
//! [`replicas`], fault injection for tests in [`faults`].

pub mod dir;
mod etcd;
mod faults;
pub mod kubeconfig;
pub mod kwok;
mod launch;
mod recipes;
mod replicas;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};

use self::dir::LabDir;
use self::kubeconfig::{UserFiles, config_from};
use self::launch::{Launch, on_free_ports, wait_until};
use crate::binaries::{Binaries, DEFAULT_RELEASE, Release, Tool, cache_dir};
use crate::error::{Error, Result};
use crate::pki::{Pki, service_account_keys};
use crate::process::{Recorded, free_port, spawn};

pub use self::dir::MARKER;
pub use self::replicas::MAX_EXTRA_APISERVERS;

/// The admin user: a client certificate in `system:masters`.
pub const ADMIN_USER: &str = "fleetwatch-lab-admin";
/// A process gets this long to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start a lab control plane.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Directory for state, certificates, data and logs: new, empty, or a lab's (see [`dir`]).
    pub dir: PathBuf,
    /// Where the built binaries are cached (see [`crate::binaries::cache_dir`]).
    pub cache: PathBuf,
    /// Which Kubernetes release (and its etcd) to run.
    pub release: &'static Release,
    /// Also run kube-controller-manager (DaemonSet, ReplicaSet, garbage collection, …).
    pub controllers: bool,
    /// Own process group, so the control plane outlives the command that started it.
    pub detached: bool,
    /// kube-apiserver `--max-requests-inflight` / `--max-mutating-requests-inflight`, to make
    /// overload reachable on a small machine (the API server's defaults: 400 / 200).
    pub max_requests_inflight: Option<(u32, u32)>,
    /// How long each process may take to become ready.
    pub start_timeout: Duration,
    /// Send audit events to a webhook (none by default: the API server audits nothing).
    pub audit_webhook: Option<AuditWebhook>,
    /// Also write every request at `Metadata` level ([`METADATA_AUDIT_POLICY`]) to
    /// [`ControlPlane::audit_log`], one JSON event per line (ignored with `audit_webhook`, whose
    /// policy the API server then applies).
    pub audit_log: bool,
    /// More kube-apiserver replicas on the same etcd, up to [`MAX_EXTRA_APISERVERS`] (see
    /// [`replicas`](self::replicas) for what changes with more than one).
    pub extra_apiservers: usize,
    /// Also run kube-scheduler and kwok, which plays kubelet for nodes annotated
    /// `kwok.x-k8s.io/node=fake` (see [`kwok`]; create them with
    /// [`PopulateSpec::kwok`](crate::PopulateSpec::kwok)). Both are built on first use.
    pub kwok: bool,
}

impl LabOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LabOptions {
            dir: dir.into(),
            cache: cache_dir(),
            release: DEFAULT_RELEASE,
            controllers: false,
            detached: false,
            max_requests_inflight: None,
            start_timeout: Duration::from_secs(120),
            audit_webhook: None,
            audit_log: false,
            extra_apiservers: 0,
            kwok: false,
        }
    }
}

/// The user of the client certificate kube-apiserver presents to the audit webhook, issued
/// by the lab's client CA (see [`ControlPlane::client_ca_file`]).
pub const AUDIT_WEBHOOK_USER: &str = "kube-apiserver-audit-webhook";

/// An audit policy that records every request at `Metadata` level (who, what, when, how it
/// ended; no bodies), once it has completed or started streaming.
pub const METADATA_AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

/// Where and what the lab's API server audits (`--audit-policy-file`,
/// `--audit-webhook-config-file`).
#[derive(Debug, Clone)]
pub enum AuditWebhook {
    /// The lab writes the policy and a webhook kubeconfig into `<dir>/audit/`; the kubeconfig
    /// trusts `ca_pem` for the receiver and presents a client certificate for
    /// [`AUDIT_WEBHOOK_USER`] from the lab's client CA, which the receiver is to trust.
    Receiver {
        /// Where batches are posted, e.g. `https://127.0.0.1:<port>/audit`.
        url: String,
        /// The CA (PEM) that signed the receiver's serving certificate.
        ca_pem: String,
        /// The audit policy (an `audit.k8s.io/v1` `Policy`, YAML), e.g.
        /// [`METADATA_AUDIT_POLICY`].
        policy: String,
    },
    /// A webhook kubeconfig and a policy written by someone else (the Helm chart's
    /// `fleetwatch-audit-webhook` ConfigMap, say), given to kube-apiserver as they are.
    Files {
        kubeconfig: PathBuf,
        policy: PathBuf,
    },
}

/// What `state.json` records about a running lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub processes: Vec<Recorded>,
    pub etcd_url: String,
    pub apiserver_url: String,
    /// The extra replicas' URLs, in start order.
    #[serde(default)]
    pub replica_urls: Vec<String>,
    /// The Kubernetes release running (`v1.37.2`); labs started before this was recorded ran
    /// the default release.
    #[serde(default = "default_kubernetes_version")]
    pub kubernetes_version: String,
}

fn default_kubernetes_version() -> String {
    DEFAULT_RELEASE.kubernetes.to_owned()
}

impl Default for LabState {
    fn default() -> Self {
        LabState {
            processes: Vec::new(),
            etcd_url: String::new(),
            apiserver_url: String::new(),
            replica_urls: Vec::new(),
            kubernetes_version: default_kubernetes_version(),
        }
    }
}

/// A running lab control plane. Dropping it does not stop it: call [`ControlPlane::stop`] (or
/// `fleetwatch lab down`), so a `lab up` can outlive its command.
#[derive(Debug)]
pub struct ControlPlane {
    dir: LabDir,
    pki: Pki,
    /// Behind a lock because fault injection (restarts) changes pids of a shared plane.
    state: Mutex<LabState>,
    /// How kube-apiserver was launched, to restart it the same way.
    apiserver: Mutex<Option<Launch>>,
    /// How each extra replica was launched, and its URL.
    replicas: Mutex<Vec<(Launch, String)>>,
}

impl ControlPlane {
    /// Builds the binaries if needed, starts the processes and returns once `/readyz` is ok (and,
    /// with controllers, once kube-controller-manager is working). A lab left by a crashed run in
    /// the same directory is cleaned up first; a live one is an error, and so is a directory that
    /// is not a lab's and not empty.
    pub async fn start(options: LabOptions) -> Result<Self> {
        let dir = LabDir::prepare(&options.dir, async |old: &LabState| {
            stop_recorded(&old.processes).await;
        })
        .await?;
        let (cache, release, kwok) = (options.cache.clone(), options.release, options.kwok);
        let (binaries, kwok) = tokio::task::spawn_blocking(move || {
            let on_step = &mut |step: &str| tracing::info!("{step}");
            let binaries = Binaries::ensure(&cache, release, kwok, on_step)?;
            let kwok = kwok
                .then(|| Tool::Kwok.ensure(&cache, on_step))
                .transpose()?;
            Ok::<_, Error>((binaries, kwok))
        })
        .await
        .map_err(|e| Error::Task {
            what: "building the control-plane binaries",
            reason: e.to_string(),
        })??;
        let plane = ControlPlane {
            dir,
            pki: Pki::generate()?,
            state: Mutex::new(LabState {
                kubernetes_version: release.kubernetes.to_owned(),
                ..LabState::default()
            }),
            apiserver: Mutex::default(),
            replicas: Mutex::default(),
        };
        let started = plane
            .start_processes(&binaries, kwok.as_deref(), &options)
            .await;
        if let Err(e) = &started {
            tracing::debug!("start-up failed, stopping what started: {e}");
            if let Err(stop) = plane.stop().await {
                tracing::warn!("cleaning up after a failed start: {stop}");
            }
        }
        started.map(|()| plane)
    }

    /// A handle on the lab that `lab up` started in `dir`, for commands that run against it
    /// later (`lab load`). It can issue users and read its processes; it cannot restart the API
    /// server (the flags live with the process that started it).
    pub fn attach(dir: &Path) -> Result<Self> {
        let lab = LabDir::existing(dir)?;
        let state = lab.read_state()?.ok_or_else(|| Error::NoLab {
            dir: dir.to_path_buf(),
        })?;
        if let Some(dead) = state.processes.iter().find(|p| !p.is_running()) {
            return Err(Error::NotRunning {
                dir: dir.to_path_buf(),
                process: dead.name.clone(),
                pid: dead.pid,
            });
        }
        Ok(ControlPlane {
            pki: Pki::load(&lab.pki())?,
            dir: lab,
            state: Mutex::new(state),
            apiserver: Mutex::default(),
            replicas: Mutex::default(),
        })
    }

    /// `kwok`: kwok's binary, when the lab runs it (and kube-scheduler).
    async fn start_processes(
        &self,
        binaries: &Binaries,
        kwok: Option<&Path>,
        options: &LabOptions,
    ) -> Result<()> {
        self.write_pki()?;
        self.start_etcd(binaries, options).await?;
        self.start_apiserver(binaries, options).await?;
        self.start_replicas(binaries, options).await?;
        if options.controllers {
            self.start_controller_manager(binaries, options).await?;
        }
        if let Some(kwok) = kwok {
            self.start_scheduler(binaries, options).await?;
            self.start_kwok(kwok, options).await?;
        }
        Ok(())
    }

    fn write_pki(&self) -> Result<()> {
        let pki = self.dir.pki();
        let serving = self.pki.serving_cert("kube-apiserver")?;
        let (sa_key, sa_pub) = service_account_keys()?;
        let authorities = self.pki.files().map(|(name, pem)| (pki.join(name), pem));
        dir::write_private(&authorities)?;
        dir::write_private(&[
            (pki.join("apiserver.crt"), serving.cert_pem),
            (pki.join("apiserver.key"), serving.key_pem),
            (pki.join("sa.key"), sa_key),
            (pki.join("sa.pub"), sa_pub),
        ])
    }

    async fn start_etcd(&self, binaries: &Binaries, options: &LabOptions) -> Result<()> {
        let log = self.dir.log("etcd");
        let url = on_free_ports("etcd", &log, async || {
            let (client, peer) = (free_port()?, free_port()?);
            let args = recipes::etcd(&self.dir.etcd_data(), client, peer);
            let launch = self.launch_of("etcd", &binaries.etcd, args, options);
            let addr = format!("127.0.0.1:{client}");
            self.run(&launch, async || etcd::healthy(&addr).await)
                .await?;
            Ok(recipes::etcd_url(client))
        })
        .await?;
        self.state().etcd_url = url;
        self.save_state()
    }

    async fn start_apiserver(&self, binaries: &Binaries, options: &LabOptions) -> Result<()> {
        let log = self.dir.log("kube-apiserver");
        let launch = on_free_ports("kube-apiserver", &log, async || {
            let port = free_port()?;
            let etcd_url = self.etcd_url();
            let mut args = recipes::apiserver(
                &etcd_url,
                port,
                &self.dir.pki(),
                options.max_requests_inflight,
            );
            if let Some(webhook) = &options.audit_webhook {
                args.extend(self.write_audit_webhook(webhook)?);
            } else if options.audit_log {
                args.extend(self.write_audit_log_policy()?);
            }
            if options.extra_apiservers > 0 {
                args.push(replicas::NO_ENDPOINT_RECONCILER.to_owned());
            }
            self.state().apiserver_url = recipes::apiserver_url(port);
            self.issue(ADMIN_USER, &["system:masters"], self.dir.kubeconfig())?;
            let launch = self.launch_of("kube-apiserver", &binaries.kube_apiserver, args, options);
            self.run_apiserver(&launch).await?;
            Ok(launch)
        })
        .await?;
        *lock(&self.apiserver) = Some(launch);
        Ok(())
    }

    /// The API server's flags for `webhook`. For a [`AuditWebhook::Receiver`], first writes the
    /// audit policy, the receiver's CA and the webhook kubeconfig (with a client certificate of
    /// its own) into `<dir>/audit/`.
    fn write_audit_webhook(&self, webhook: &AuditWebhook) -> Result<Vec<String>> {
        let (url, ca_pem, policy_text) = match webhook {
            AuditWebhook::Files { kubeconfig, policy } => {
                return Ok(recipes::audit_webhook(policy, kubeconfig));
            }
            AuditWebhook::Receiver {
                url,
                ca_pem,
                policy,
            } => (url, ca_pem, policy),
        };
        let audit = self.dir.audit();
        std::fs::create_dir_all(&audit)
            .map_err(Error::io("creating the audit directory", &audit))?;
        let (policy, ca) = (audit.join("policy.yaml"), audit.join("receiver-ca.crt"));
        dir::write_private(&[
            (policy.clone(), policy_text.clone()),
            (ca.clone(), ca_pem.clone()),
        ])?;
        let cert = self.pki.client_cert(AUDIT_WEBHOOK_USER, &[])?;
        let files = UserFiles::new(&audit, AUDIT_WEBHOOK_USER, audit.join("webhook.kubeconfig"));
        files.write(url, &ca, AUDIT_WEBHOOK_USER, &cert)?;
        Ok(recipes::audit_webhook(&policy, &files.kubeconfig))
    }

    /// Writes [`METADATA_AUDIT_POLICY`] into `<dir>/audit/` and returns the API server's flags
    /// for it and the log file.
    fn write_audit_log_policy(&self) -> Result<Vec<String>> {
        let audit = self.dir.audit();
        std::fs::create_dir_all(&audit)
            .map_err(Error::io("creating the audit directory", &audit))?;
        let policy = audit.join("policy.yaml");
        dir::write_private(&[(policy.clone(), METADATA_AUDIT_POLICY.to_owned())])?;
        Ok(recipes::audit_log(&policy, &self.audit_log()))
    }

    async fn start_controller_manager(
        &self,
        binaries: &Binaries,
        options: &LabOptions,
    ) -> Result<()> {
        let name = "kube-controller-manager";
        let log = self.dir.log(name);
        on_free_ports(name, &log, async || {
            let args =
                recipes::controller_manager(&self.dir.kubeconfig(), free_port()?, &self.dir.pki());
            let launch = self.launch_of(name, &binaries.kube_controller_manager, args, options);
            let client = self.admin_client().await?;
            // It works once its root-CA publisher has filled `default` with kube-root-ca.crt.
            let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
            self.run(&launch, async || {
                matches!(configmaps.get_opt("kube-root-ca.crt").await, Ok(Some(_)))
            })
            .await
        })
        .await
    }

    fn launch_of(
        &self,
        name: &'static str,
        exe: &Path,
        args: Vec<String>,
        options: &LabOptions,
    ) -> Launch {
        Launch {
            name,
            exe: exe.to_path_buf(),
            args,
            log: self.dir.log(name),
            detached: options.detached,
            timeout: options.start_timeout,
        }
    }

    /// Starts kube-apiserver as `launch` says and waits for `/readyz`.
    async fn run_apiserver(&self, launch: &Launch) -> Result<()> {
        let client = self.admin_client().await?;
        self.run(launch, async || readyz(&client).await).await
    }

    /// Starts a process as `launch` says and waits until `/readyz` at `url` answers ok, asked
    /// as the admin: an API server replica, or kube-scheduler (the lab's serving CA signed its
    /// certificate too).
    async fn run_until_readyz(&self, launch: &Launch, url: &str) -> Result<()> {
        let mut config = self.admin_config().await?;
        config.cluster_url = url.parse().map_err(|e| Error::Kubeconfig {
            path: self.kubeconfig(),
            reason: format!("{} URL {url}: {e}", launch.name),
        })?;
        let client = lab_client(config)?;
        self.run(launch, async || readyz(&client).await).await
    }

    /// Starts a process, records it in the state file before anything else can fail, and waits
    /// until `ready`.
    async fn run(&self, launch: &Launch, ready: impl AsyncFnMut() -> bool) -> Result<()> {
        let mut child = spawn(&launch.exe, &launch.args, &launch.log, launch.detached)?;
        {
            let mut state = self.state();
            state.processes.retain(|p| p.name != launch.name);
            state.processes.push(Recorded {
                name: launch.name.to_owned(),
                pid: child.id(),
                exe: launch.exe.clone(),
            });
        }
        self.save_state()?;
        wait_until(launch, &mut child, ready).await
    }

    fn state(&self) -> MutexGuard<'_, LabState> {
        lock(&self.state)
    }

    fn save_state(&self) -> Result<()> {
        let state = self.state().clone();
        self.dir.write_state(&state)
    }

    fn process(&self, name: &str) -> Option<Recorded> {
        self.state()
            .processes
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// Issues a client certificate for `user` in `groups` and writes a kubeconfig using it.
    fn issue(&self, user: &str, groups: &[&str], kubeconfig: PathBuf) -> Result<PathBuf> {
        let cert = self.pki.client_cert(user, groups)?;
        let files = UserFiles::new(&self.dir.users(), user, kubeconfig);
        let ca = self.dir.pki().join("serving-ca.crt");
        files.write(&self.apiserver_url(), &ca, user, &cert)?;
        Ok(files.kubeconfig)
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.kubeconfig()
    }

    /// The client CA (PEM): it signs every lab user's certificate, and the one the API server
    /// presents to an audit webhook.
    pub fn client_ca_file(&self) -> PathBuf {
        self.dir.pki().join("client-ca.crt")
    }

    /// The lab's directory.
    /// The API server's audit log (with [`LabOptions::audit_log`]): one `audit.k8s.io/v1`
    /// `Event` as JSON per line.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.log("kube-apiserver-audit")
    }

    pub fn dir(&self) -> &Path {
        &self.dir.root
    }

    /// The API server's URL (`https://127.0.0.1:<port>`).
    /// The Kubernetes release this lab runs (`v1.37.2`).
    pub fn kubernetes_version(&self) -> String {
        self.state().kubernetes_version.clone()
    }

    pub fn apiserver_url(&self) -> String {
        self.state().apiserver_url.clone()
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> String {
        self.state().etcd_url.clone()
    }

    /// The processes this lab started.
    pub fn processes(&self) -> Vec<Recorded> {
        self.state().processes.clone()
    }

    /// The pid of one of the lab's processes by name (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`, `kube-scheduler`, `kwok`); it changes when a process is
    /// restarted.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.process(name).map(|p| p.pid)
    }

    /// A kubeconfig for another user and groups, signed by the lab's client CA — for tests of
    /// least privilege. The user starts with no RBAC bindings.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let path = self
            .dir
            .users()
            .join(format!("{}.kubeconfig", kubeconfig::file_stem(user)));
        self.issue(user, groups, path)
    }

    /// A `kube::Config` for the admin. Only for the lab's own loopback control plane.
    pub async fn admin_config(&self) -> Result<kube::Config> {
        config_from(&self.kubeconfig()).await
    }

    /// A client for the admin user. Only for the lab's own loopback control plane.
    pub async fn admin_client(&self) -> Result<kube::Client> {
        lab_client(self.admin_config().await?)
    }

    /// A client for `user` in `groups` (see [`ControlPlane::kubeconfig_for`]).
    pub async fn client_for(&self, user: &str, groups: &[&str]) -> Result<kube::Client> {
        lab_client(config_from(&self.kubeconfig_for(user, groups)?).await?)
    }

    /// Stops every process this lab started (API server first, etcd last) and removes what the
    /// lab created in its directory. Safe to call more than once.
    pub async fn stop(&self) -> Result<()> {
        stop_recorded(&self.processes()).await;
        self.dir.remove()
    }
}

/// Stops the lab recorded in `dir` (as `fleetwatch lab down` does) and removes what it created
/// there. Returns the processes that were still running and were stopped.
pub async fn down(dir: &Path) -> Result<Vec<Recorded>> {
    let lab = LabDir::existing(dir)?;
    let processes = lab.read_state()?.unwrap_or_default().processes;
    let running: Vec<Recorded> = processes
        .iter()
        .filter(|p| p.is_running())
        .cloned()
        .collect();
    stop_recorded(&processes).await;
    lab.remove()?;
    Ok(running)
}

/// The state of the lab in `dir`, if there is one.
pub fn read_state_in(dir: &Path) -> Result<Option<LabState>> {
    match LabDir::existing(dir) {
        Ok(lab) => lab.read_state(),
        Err(Error::NoLab { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The one place a `kube::Client` is built from a lab kubeconfig: the lab's own loopback control
/// plane, bootstrapping before any budgeted client exists.
#[allow(clippy::disallowed_methods)]
fn lab_client(config: kube::Config) -> Result<kube::Client> {
    kube::Client::try_from(config).map_err(Error::Connect)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent across a panic elsewhere (each update is one assignment).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the processes last started first (kube-apiserver before etcd).
async fn stop_recorded(processes: &[Recorded]) {
    for process in processes.iter().rev() {
        process.terminate(STOP_GRACE).await;
    }
}

async fn readyz(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}
