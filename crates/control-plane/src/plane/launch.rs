//! Starting one of the lab's processes and waiting until it works: the one port-retry loop, the
//! readiness wait, and the errors that name the process, its log and its last lines.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::process::{log_tail, lost_port_race};

/// A process is started on fresh ports at most this many times when another process takes its
/// port between our choosing it and its binding it.
const PORT_ATTEMPTS: usize = 3;
/// Each readiness check may take this long.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// How a process is (or was) launched: kept so kube-apiserver can be started again the same way.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) name: &'static str,
    pub(crate) exe: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) log: PathBuf,
    /// Own process group, so the process outlives the command that started it.
    pub(crate) detached: bool,
    pub(crate) timeout: Duration,
}

/// Runs `attempt` (which picks its own ports) again while the process dies because it lost the
/// race for a port; any other outcome is returned as it is.
pub(crate) async fn on_free_ports<T>(
    process: &'static str,
    log: &Path,
    mut attempt: impl AsyncFnMut() -> Result<T>,
) -> Result<T> {
    for _ in 0..PORT_ATTEMPTS {
        match attempt().await {
            Err(Error::Died { .. }) if lost_port_race(log) => {
                tracing::debug!(process, "lost the race for a port; trying others");
            }
            other => return other,
        }
    }
    Err(Error::NoFreePort {
        process,
        attempts: PORT_ATTEMPTS,
        log: log.to_path_buf(),
        tail: log_tail(log, 10),
    })
}

/// Waits until `ready()` holds; errors if the process exits first or the launch's timeout
/// passes.
pub(crate) async fn wait_until(
    launch: &Launch,
    child: &mut Child,
    mut ready: impl AsyncFnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + launch.timeout;
    loop {
        if tokio::time::timeout(CHECK_TIMEOUT, ready())
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Died {
                process: launch.name,
                status: status.to_string(),
                log: launch.log.clone(),
                tail: log_tail(&launch.log, 20),
            });
        }
        if Instant::now() > deadline {
            return Err(Error::NotReady {
                process: launch.name,
                seconds: launch.timeout.as_secs(),
                log: launch.log.clone(),
                tail: log_tail(&launch.log, 20),
            });
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
