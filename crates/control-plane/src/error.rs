use std::path::PathBuf;

/// Result alias for the control-plane crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while building, starting, populating or stopping a lab control plane.
/// Every variant says what to do next or where to look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no Go toolchain found (`go` is not on PATH); install Go ≥ 1.26 to build the control plane"
    )]
    NoGo,
    #[error("building {component}: step `{step}` failed; the full log is {}\n{tail}", log.display())]
    Build {
        component: &'static str,
        step: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{what}: {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{process} exited during start-up ({status}); its log is {}; last lines:\n{tail}", log.display())]
    Died {
        process: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{process} did not become ready within {seconds}s; its log is {}; last lines:\n{tail}", log.display())]
    NotReady {
        process: &'static str,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("{process} could not bind a free loopback port in {attempts} attempts; its log is {}; last lines:\n{tail}", log.display())]
    NoFreePort {
        process: &'static str,
        attempts: usize,
        log: PathBuf,
        tail: String,
    },
    #[error("a lab is already running in {} (pids {pids:?}); stop it with `fleetwatch lab down --dir {}`", dir.display(), dir.display())]
    AlreadyRunning { dir: PathBuf, pids: Vec<u32> },
    #[error("the lab in {} is not running ({process} pid {pid} is gone); start it with `fleetwatch lab up --dir {}`", dir.display(), dir.display())]
    NotRunning {
        dir: PathBuf,
        process: String,
        pid: u32,
    },
    #[error("no lab in {}: nothing to stop (a lab directory holds {})", dir.display(), crate::plane::MARKER)]
    NoLab { dir: PathBuf },
    #[error("--dir {}: {reason}", dir.display())]
    UnsafeDir { dir: PathBuf, reason: String },
    #[error(
        "kube-apiserver cannot be restarted from this handle: it was not started by it (attached labs only observe)"
    )]
    CannotRestart,
    #[error("{asked} extra API server replicas asked for; the lab runs at most {max}")]
    Replicas { asked: usize, max: usize },
    #[error("generating certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("kubeconfig {}: {reason}", path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("building a client for the lab's API server: {0}")]
    Connect(#[source] kube::Error),
    #[error("API request to the lab control plane failed: {0}")]
    Api(#[from] kube::Error),
    #[error("etcd {path} at {addr}: {reason}")]
    Etcd {
        addr: String,
        path: &'static str,
        reason: String,
    },
    #[error("lab state file {}: {source}", path.display())]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{file}, compiled into fleetwatch, does not parse: {reason}")]
    Embedded { file: &'static str, reason: String },
    #[error("building a synthetic object: {0}")]
    Synthetic(#[source] serde_json::Error),
    #[error("{what}: the task panicked or was cancelled: {reason}")]
    Task { what: &'static str, reason: String },
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}
