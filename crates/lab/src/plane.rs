//! One lab control plane: etcd, kube-apiserver and optionally kube-controller-manager on loopback,
//! with generated certificates, RBAC, and an admin user in `system:masters`.
//!
//! Its directory holds everything it made: `state.json` (the processes it started, written as
//! each one starts so a crash leaves a record), `pki/`, `etcd/`, `logs/` and `kubeconfig`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::binaries::{Binaries, cache_dir};
use crate::error::{LabError, Result};
use crate::pki::{IssuedCert, Pki, service_account_keys};
use crate::process::{Recorded, free_port, log_tail, lost_port_race, spawn};

/// The admin user: a client certificate in `system:masters`.
pub const ADMIN_USER: &str = "fleetwatch-lab-admin";
const PORT_ATTEMPTS: usize = 3;
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start a lab control plane.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Directory for state, certificates, data and logs; removed by [`ControlPlane::stop`].
    pub dir: PathBuf,
    /// Where the built binaries are cached (see [`crate::binaries::cache_dir`]).
    pub cache: PathBuf,
    /// Also run kube-controller-manager (DaemonSet, ReplicaSet, garbage collection, …).
    pub controllers: bool,
    /// Own process group, so the control plane outlives the command that started it.
    pub detached: bool,
    /// kube-apiserver `--max-requests-inflight` / `--max-mutating-requests-inflight`, to make
    /// overload reachable on a small machine (the API server's defaults: 400 / 200).
    pub max_requests_inflight: Option<(u32, u32)>,
    /// How long each process may take to become ready.
    pub start_timeout: Duration,
}

impl LabOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LabOptions {
            dir: dir.into(),
            cache: cache_dir(),
            controllers: false,
            detached: false,
            max_requests_inflight: None,
            start_timeout: Duration::from_secs(120),
        }
    }
}

/// What `state.json` records about a running lab.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    pub processes: Vec<Recorded>,
    pub etcd_url: String,
    pub apiserver_url: String,
}

/// A running lab control plane. Dropping it does not stop it: call [`ControlPlane::stop`] (or
/// `fleetwatch lab down`), so a `lab up` can outlive its command.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    pki: Pki,
    /// Behind a lock because fault injection (restarts) changes pids of a shared plane.
    state: Mutex<LabState>,
    /// How kube-apiserver was launched, to restart it the same way.
    apiserver: Mutex<Option<Launch>>,
}

#[derive(Debug, Clone)]
struct Launch {
    exe: PathBuf,
    args: Vec<String>,
    detached: bool,
    timeout: Duration,
}

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }
    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
}

impl ControlPlane {
    /// Builds the binaries if needed, starts the processes and returns once `/readyz` is ok (and,
    /// with controllers, once kube-controller-manager is working). A lab left by a crashed run in
    /// the same directory is cleaned up first; a live one is an error.
    pub async fn start(options: LabOptions) -> Result<Self> {
        let layout = Layout {
            dir: options.dir.clone(),
        };
        clean_leftovers(&layout)?;
        for sub in [layout.dir.clone(), layout.pki(), layout.dir.join("logs")] {
            fs::create_dir_all(&sub).map_err(LabError::io("creating the lab directory", &sub))?;
        }
        let cache = options.cache.clone();
        let binaries = tokio::task::spawn_blocking(move || {
            Binaries::ensure(&cache, &mut |step| tracing::info!("{step}"))
        })
        .await
        .map_err(|e| LabError::Client(format!("build task failed: {e}")))??;

        let pki = Pki::generate()?;
        let plane = ControlPlane {
            dir: layout.dir.clone(),
            pki,
            state: Mutex::default(),
            apiserver: Mutex::default(),
        };
        let started = plane.start_processes(&layout, &binaries, &options).await;
        if started.is_err() {
            plane.stop();
        }
        started.map(|()| plane)
    }

    async fn start_processes(
        &self,
        layout: &Layout,
        binaries: &Binaries,
        options: &LabOptions,
    ) -> Result<()> {
        self.write_pki(layout)?;
        self.start_etcd(layout, binaries, options).await?;
        self.start_apiserver(layout, binaries, options).await?;
        if options.controllers {
            self.start_controller_manager(layout, binaries, options)
                .await?;
        }
        Ok(())
    }

    fn write_pki(&self, layout: &Layout) -> Result<()> {
        let pki = layout.pki();
        let serving = self.pki.serving_cert()?;
        let (sa_key, sa_pub) = service_account_keys()?;
        let authorities = self.pki.files().map(|(name, pem)| (pki.join(name), pem));
        write_files(&authorities)?;
        write_files(&[
            (pki.join("apiserver.crt"), serving.cert_pem),
            (pki.join("apiserver.key"), serving.key_pem),
            (pki.join("sa.key"), sa_key),
            (pki.join("sa.pub"), sa_pub),
        ])
    }

    async fn start_etcd(
        &self,
        layout: &Layout,
        binaries: &Binaries,
        options: &LabOptions,
    ) -> Result<()> {
        let data = layout.dir.join("etcd");
        let log = layout.log("etcd");
        for _ in 0..PORT_ATTEMPTS {
            let (client, peer) = (free_port()?, free_port()?);
            let url = format!("http://127.0.0.1:{client}");
            let args = vec![
                "--name=lab".to_owned(),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={url}"),
                format!("--advertise-client-urls={url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster=lab=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync=true".to_owned(),
                "--quota-backend-bytes=8589934592".to_owned(),
                "--log-level=warn".to_owned(),
            ];
            let mut child = self.launch("etcd", &binaries.etcd, &args, &log, options.detached)?;
            let health = format!("127.0.0.1:{client}");
            let ready = wait_until("etcd", &mut child, &log, options.start_timeout, || {
                etcd_healthy(&health)
            });
            match ready.await {
                Err(LabError::Died { .. }) if lost_port_race(&log) => continue,
                other => other?,
            }
            self.state().etcd_url = url;
            return self.save_state();
        }
        Err(port_error("etcd", &log))
    }

    async fn start_apiserver(
        &self,
        layout: &Layout,
        binaries: &Binaries,
        options: &LabOptions,
    ) -> Result<()> {
        let log = layout.log("kube-apiserver");
        let pki = layout.pki();
        let admin = self.pki.client_cert(ADMIN_USER, &["system:masters"])?;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let url = format!("https://127.0.0.1:{port}");
            let p = |f: &str| pki.join(f).display().to_string();
            let mut args = vec![
                format!("--etcd-servers={}", self.state().etcd_url),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", pki.display()),
                format!("--tls-cert-file={}", p("apiserver.crt")),
                format!("--tls-private-key-file={}", p("apiserver.key")),
                format!("--client-ca-file={}", p("client-ca.crt")),
                "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
                "--allow-privileged=true".to_owned(),
                "--authorization-mode=RBAC".to_owned(),
                "--disable-admission-plugins=ServiceAccount".to_owned(),
                format!("--service-account-issuer={url}/"),
                format!("--service-account-key-file={}", p("sa.pub")),
                format!("--service-account-signing-key-file={}", p("sa.key")),
                "--profiling=false".to_owned(),
            ];
            if let Some((all, mutating)) = options.max_requests_inflight {
                args.push(format!("--max-requests-inflight={all}"));
                args.push(format!("--max-mutating-requests-inflight={mutating}"));
            }
            self.state().apiserver_url = url;
            self.write_kubeconfig(&layout.kubeconfig(), ADMIN_USER, &admin)?;
            let launch = Launch {
                exe: binaries.kube_apiserver.clone(),
                args,
                detached: options.detached,
                timeout: options.start_timeout,
            };
            match self.run_apiserver(&launch).await {
                Err(LabError::Died { .. }) if lost_port_race(&log) => continue,
                other => other?,
            }
            *lock(&self.apiserver) = Some(launch);
            return Ok(());
        }
        Err(port_error("kube-apiserver", &log))
    }

    /// A handle on the lab that `lab up` started in `dir`, for commands that run against it
    /// later (`lab load`). It can issue users and read its processes; it cannot restart the API
    /// server (the flags live with the process that started it).
    pub fn attach(dir: &Path) -> Result<Self> {
        let layout = Layout {
            dir: dir.to_path_buf(),
        };
        let state = read_state(&layout)?.ok_or_else(|| LabError::NoState {
            dir: dir.to_path_buf(),
        })?;
        if let Some(dead) = state.processes.iter().find(|p| !p.is_running()) {
            return Err(LabError::Client(format!(
                "the lab in {} is not running ({} pid {} is gone); start it with `fleetwatch lab up`",
                dir.display(),
                dead.name,
                dead.pid
            )));
        }
        Ok(ControlPlane {
            dir: dir.to_path_buf(),
            pki: Pki::load(&layout.pki())?,
            state: Mutex::new(state),
            apiserver: Mutex::default(),
        })
    }

    /// Starts kube-apiserver as `launch` says and waits for `/readyz`.
    async fn run_apiserver(&self, launch: &Launch) -> Result<()> {
        let log = self.layout().log("kube-apiserver");
        let mut child = self.launch(
            "kube-apiserver",
            &launch.exe,
            &launch.args,
            &log,
            launch.detached,
        )?;
        let client = self.admin_client().await?;
        let ready = wait_until("kube-apiserver", &mut child, &log, launch.timeout, || {
            let client = client.clone();
            async move { readyz(&client).await }
        });
        ready.await
    }

    /// Stops kube-apiserver (SIGTERM, as a node drain or crash-loop would) and leaves it down.
    /// Fault injection for tests; etcd keeps running.
    pub fn stop_apiserver(&self) {
        if let Some(process) = self.process("kube-apiserver") {
            process.terminate(STOP_GRACE);
        }
    }

    /// Starts kube-apiserver again after [`ControlPlane::stop_apiserver`], on the same port and
    /// with the same flags, and waits until it is ready.
    pub async fn start_apiserver_again(&self) -> Result<()> {
        let launch = lock(&self.apiserver).clone();
        let launch =
            launch.ok_or_else(|| LabError::Client("kube-apiserver was never started".into()))?;
        self.run_apiserver(&launch).await
    }

    /// Stops and starts kube-apiserver; returns once it is ready again.
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.stop_apiserver();
        self.start_apiserver_again().await
    }

    /// Freezes one of the lab's processes with SIGSTOP (a hung server: connections stay open,
    /// nothing answers) until [`ControlPlane::thaw`].
    pub fn freeze(&self, name: &str) {
        if let Some(process) = self.process(name) {
            process.send(libc::SIGSTOP);
        }
    }

    /// Resumes a process frozen by [`ControlPlane::freeze`].
    pub fn thaw(&self, name: &str) {
        if let Some(process) = self.process(name) {
            process.send(libc::SIGCONT);
        }
    }

    /// Compacts etcd's history up to its current revision, through etcd's own API, so that
    /// watches from older resourceVersions get 410 Gone. Returns the compacted revision.
    pub async fn compact_etcd(&self) -> Result<i64> {
        let addr = self.etcd_url().trim_start_matches("http://").to_owned();
        let status = etcd_post(&addr, "/v3/maintenance/status", "{}").await?;
        let revision = status["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse::<i64>().ok())
            .or_else(|| status["header"]["revision"].as_i64())
            .ok_or_else(|| LabError::Client(format!("etcd status without a revision: {status}")))?;
        let body = format!("{{\"revision\": {revision}, \"physical\": true}}");
        etcd_post(&addr, "/v3/kv/compaction", &body).await?;
        Ok(revision)
    }

    fn layout(&self) -> Layout {
        Layout {
            dir: self.dir.clone(),
        }
    }

    fn state(&self) -> MutexGuard<'_, LabState> {
        lock(&self.state)
    }

    fn process(&self, name: &str) -> Option<Recorded> {
        self.state()
            .processes
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    async fn start_controller_manager(
        &self,
        layout: &Layout,
        binaries: &Binaries,
        options: &LabOptions,
    ) -> Result<()> {
        let log = layout.log("kube-controller-manager");
        let kubeconfig = layout.kubeconfig().display().to_string();
        let pki = layout.pki();
        for _ in 0..PORT_ATTEMPTS {
            let args = vec![
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={}", free_port()?),
                format!("--cert-dir={}", pki.join("kcm").display()),
                format!("--root-ca-file={}", pki.join("serving-ca.crt").display()),
                format!(
                    "--service-account-private-key-file={}",
                    pki.join("sa.key").display()
                ),
                "--leader-elect=false".to_owned(),
                "--use-service-account-credentials=false".to_owned(),
                // No kubelets renew these nodes' leases: the node lifecycle controller would mark
                // every synthetic node NotReady and evict its pods. The synthetic pods' owning
                // ReplicaSets must stay inert too, or their controller would add and delete pods
                // while the lab fills them.
                "--controllers=*,-node-lifecycle-controller,-node-ipam-controller,-replicaset-controller"
                    .to_owned(),
            ];
            let mut child = self.launch(
                "kube-controller-manager",
                &binaries.kube_controller_manager,
                &args,
                &log,
                options.detached,
            )?;
            let client = self.admin_client().await?;
            // It works once its root-CA publisher has filled `default` with kube-root-ca.crt.
            let ready = wait_until(
                "kube-controller-manager",
                &mut child,
                &log,
                options.start_timeout,
                || {
                    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                        kube::Api::namespaced(client.clone(), "default");
                    async move { matches!(api.get_opt("kube-root-ca.crt").await, Ok(Some(_))) }
                },
            )
            .await;
            match ready {
                Err(LabError::Died { .. }) if lost_port_race(&log) => continue,
                other => other?,
            }
            return Ok(());
        }
        Err(port_error("kube-controller-manager", &log))
    }

    /// Starts a process and records it in the state file before anything else can fail.
    fn launch(
        &self,
        name: &'static str,
        exe: &Path,
        args: &[String],
        log: &Path,
        detached: bool,
    ) -> Result<Child> {
        let child = spawn(exe, args, log, detached)?;
        {
            let mut state = self.state();
            state.processes.retain(|p| p.name != name);
            state.processes.push(Recorded {
                name: name.to_owned(),
                pid: child.id(),
                exe: exe.to_path_buf(),
            });
        }
        self.save_state()?;
        Ok(child)
    }

    fn save_state(&self) -> Result<()> {
        let path = self.layout().state();
        let json = serde_json::to_vec_pretty(&*self.state()).map_err(|source| LabError::State {
            path: path.clone(),
            source,
        })?;
        fs::write(&path, json).map_err(LabError::io("writing the lab state", &path))
    }

    /// Writes a kubeconfig for `user` (its certificate and key next to it in `pki/`).
    fn write_kubeconfig(&self, path: &Path, user: &str, cert: &IssuedCert) -> Result<()> {
        let pki = self.dir.join("pki");
        let (crt, key) = (
            pki.join(format!("{}.crt", file_stem(user))),
            pki.join(format!("{}.key", file_stem(user))),
        );
        write_files(&[
            (crt.clone(), cert.cert_pem.clone()),
            (key.clone(), cert.key_pem.clone()),
        ])?;
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fleetwatch-lab\n  cluster:\n    server: \"{server}\"\n    \
             certificate-authority: \"{ca}\"\ncontexts:\n- name: fleetwatch-lab\n  context:\n    cluster: fleetwatch-lab\n    \
             user: \"{user}\"\ncurrent-context: fleetwatch-lab\nusers:\n- name: \"{user}\"\n  user:\n    \
             client-certificate: \"{crt}\"\n    client-key: \"{key}\"\n",
            server = self.state().apiserver_url,
            ca = pki.join("serving-ca.crt").display(),
            crt = crt.display(),
            key = key.display(),
        );
        write_files(&[(path.to_path_buf(), text)])
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        Layout {
            dir: self.dir.clone(),
        }
        .kubeconfig()
    }

    /// The lab's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The API server's URL (`https://127.0.0.1:<port>`).
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
    /// `kube-controller-manager`); it changes when a process is restarted.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.process(name).map(|p| p.pid)
    }

    /// A kubeconfig for another user and groups, signed by the lab's client CA — for tests of
    /// least privilege. The user starts with no RBAC bindings.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let cert = self.pki.client_cert(user, groups)?;
        let path = self.dir.join(format!("kubeconfig-{}", file_stem(user)));
        self.write_kubeconfig(&path, user, &cert)?;
        Ok(path)
    }

    /// A `kube::Config` for the admin. Only for the lab's own loopback control plane.
    pub async fn admin_config(&self) -> Result<kube::Config> {
        config_from(&self.kubeconfig()).await
    }

    /// A client for the admin user. Only for the lab's own loopback control plane.
    pub async fn admin_client(&self) -> Result<kube::Client> {
        client_from(self.admin_config().await?)
    }

    /// A client for `user` in `groups` (see [`ControlPlane::kubeconfig_for`]).
    pub async fn client_for(&self, user: &str, groups: &[&str]) -> Result<kube::Client> {
        client_from(config_from(&self.kubeconfig_for(user, groups)?).await?)
    }

    /// Stops every process this lab started (API server first, etcd last) and removes its
    /// directory. Safe to call more than once.
    pub fn stop(&self) {
        stop_recorded(&self.processes());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Stops the lab recorded in `dir` (as `fleetwatch lab down` does) and removes the directory.
/// Returns the processes that were still running and were stopped.
pub fn down(dir: &Path) -> Result<Vec<Recorded>> {
    let layout = Layout {
        dir: dir.to_path_buf(),
    };
    let state = read_state(&layout)?.ok_or_else(|| LabError::NoState {
        dir: dir.to_path_buf(),
    })?;
    let running: Vec<Recorded> = state
        .processes
        .iter()
        .filter(|p| p.is_running())
        .cloned()
        .collect();
    stop_recorded(&state.processes);
    fs::remove_dir_all(dir).map_err(LabError::io("removing the lab directory", dir))?;
    Ok(running)
}

/// The state of the lab in `dir`, if there is one.
pub fn read_state_in(dir: &Path) -> Result<Option<LabState>> {
    read_state(&Layout {
        dir: dir.to_path_buf(),
    })
}

fn read_state(layout: &Layout) -> Result<Option<LabState>> {
    let path = layout.state();
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io("reading the lab state", &path)(e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| LabError::State { path, source })
}

/// A live lab in the directory is an error; a dead one (crashed run) is stopped and removed.
fn clean_leftovers(layout: &Layout) -> Result<()> {
    if let Some(state) = read_state(layout)? {
        let live: Vec<u32> = state
            .processes
            .iter()
            .filter(|p| p.is_running())
            .map(|p| p.pid)
            .collect();
        if state.processes.iter().any(|p| p.name == "kube-apiserver")
            && live.len() == state.processes.len()
        {
            return Err(LabError::AlreadyRunning {
                dir: layout.dir.clone(),
                pids: live,
            });
        }
        tracing::info!(dir = %layout.dir.display(), "cleaning up a lab left by an earlier run");
        stop_recorded(&state.processes);
    }
    if layout.dir.exists() {
        fs::remove_dir_all(&layout.dir)
            .map_err(LabError::io("removing an old lab directory", &layout.dir))?;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent across a panic elsewhere (each update is one assignment).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JSON POST to etcd's HTTP gateway on loopback (see `etcd_healthy` for why by hand).
async fn etcd_post(addr: &str, path: &str, body: &str) -> Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fail = |what: String| LabError::Client(format!("etcd {path} at {addr}: {what}"));
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (head, json) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no HTTP body".into()))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(fail(head.lines().next().unwrap_or_default().to_owned()));
    }
    serde_json::from_str(json).map_err(|e| fail(e.to_string()))
}

fn stop_recorded(processes: &[Recorded]) {
    for process in processes.iter().rev() {
        process.terminate(STOP_GRACE);
    }
}

fn write_files(files: &[(PathBuf, String)]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for (path, text) in files {
        // Keys and certificates are readable by their owner only.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(LabError::io("writing a lab file", path))?;
        file.write_all(text.as_bytes())
            .map_err(LabError::io("writing a lab file", path))?;
    }
    Ok(())
}

fn file_stem(user: &str) -> String {
    user.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) async fn config_from(kubeconfig: &Path) -> Result<kube::Config> {
    let raw = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| LabError::Client(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(raw, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| LabError::Client(e.to_string()))
}

fn client_from(config: kube::Config) -> Result<kube::Client> {
    kube::Client::try_from(config).map_err(LabError::Api)
}

async fn readyz(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}

/// etcd's `/health` over plain HTTP on loopback. Written by hand because it is one request to a
/// local process during start-up; pulling an HTTP client in for it would cost more than this.
async fn etcd_healthy(addr: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.contains("\"health\":\"true\"")
}

fn port_error(process: &'static str, log: &Path) -> LabError {
    LabError::Died {
        process,
        status: format!("could not bind a free port in {PORT_ATTEMPTS} attempts"),
        log: log.to_path_buf(),
        tail: log_tail(log, 10),
    }
}

fn died(process: &'static str, child: &mut Child, log: &Path) -> Option<LabError> {
    match child.try_wait() {
        Ok(Some(status)) => Some(LabError::Died {
            process,
            status: status.to_string(),
            log: log.to_path_buf(),
            tail: log_tail(log, 20),
        }),
        _ => None,
    }
}

fn not_ready(process: &'static str, timeout: Duration, log: &Path) -> LabError {
    LabError::NotReady {
        process,
        seconds: timeout.as_secs(),
        log: log.to_path_buf(),
        tail: log_tail(log, 20),
    }
}

async fn wait_until<F, Fut>(
    process: &'static str,
    child: &mut Child,
    log: &Path,
    timeout: Duration,
    mut ready: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::time::timeout(Duration::from_secs(5), ready())
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        if let Some(err) = died(process, child, log) {
            return Err(err);
        }
        if Instant::now() > deadline {
            return Err(not_ready(process, timeout, log));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
