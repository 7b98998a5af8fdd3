use std::path::PathBuf;

/// Result alias for the lab crate.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// What can go wrong while building, starting, populating or stopping a lab control plane.
/// Every variant says what to do next or where to look.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
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
    #[error("a lab is already running in {} (pids {pids:?}); stop it with `fleetwatch lab down --dir {}`", dir.display(), dir.display())]
    AlreadyRunning { dir: PathBuf, pids: Vec<u32> },
    #[error("no lab state in {}: nothing to stop", dir.display())]
    NoState { dir: PathBuf },
    #[error("generating certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("kubeconfig or client setup: {0}")]
    Client(String),
    #[error("API request to the lab control plane failed: {0}")]
    Api(#[from] kube::Error),
    #[error("drawing the sweep plot {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    #[error("lab state file {}: {source}", path.display())]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl LabError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LabError::Io { what, path, source }
    }
}
