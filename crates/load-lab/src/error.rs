use std::path::PathBuf;

/// Result alias for the load lab.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// What can go wrong while running, measuring or recording load. Every variant says what failed
/// and where to look.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    ControlPlane(#[from] fleetwatch_control_plane::Error),
    #[error("API request to the lab control plane failed: {0}")]
    Api(#[from] kube::Error),
    #[error("an emulated agent could not connect: {0}")]
    Connect(#[from] fleetwatch_client::Error),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the load lab only targets a loopback control plane it started; {url} is not loopback")]
    NotLoopback { url: String },
    #[error("the lab has no {0} process")]
    NoProcess(&'static str),
    #[error("the API server's /metrics page: {0}")]
    Metrics(String),
    #[error("{what} failed, so the run has no honest result: {reason}")]
    Task { what: &'static str, reason: String },
    #[error("{what}: {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A lab process died during a run: the run's own error is what its clients saw.
    #[error(
        "{process} (pid {pid}) died during the {pattern} run at {nodes} nodes — out of memory? \
         the kernel log (dmesg) says whether it was OOM-killed; the run's clients saw: {seen}"
    )]
    ProcessDied {
        process: String,
        pid: u32,
        pattern: String,
        nodes: usize,
        seen: Box<LabError>,
    },
    #[error("the sweep CSV {}: {message}", path.display())]
    Csv { path: PathBuf, message: String },
    #[error("drawing the sweep plot {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

impl LabError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LabError::Io { what, path, source }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        LabError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// A task of the run that panicked or was cancelled.
    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |e| LabError::Task {
            what,
            reason: e.to_string(),
        }
    }
}
