//! Starting one of the lab's processes and waiting until it works: the one port-retry loop, the
//! readiness wait, and the errors that name the process, its log and its last lines.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// One plain HTTP/1.0 request to a process on loopback (etcd's gateway, kwok's `/healthz`);
/// the whole response (the server closes the connection). Written by hand because these are a
/// few requests to local processes; pulling an HTTP client in for them would cost more than
/// these lines.
pub(crate) async fn exchange(addr: &str, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// Whether `GET path` at `addr` (`127.0.0.1:<port>`) answers 200 with the body `ok`.
pub(crate) async fn answers_ok(addr: &str, path: &str) -> bool {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    exchange(addr, &request).await.is_ok_and(|response| {
        response.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            head.split(' ').nth(1) == Some("200") && body.trim() == "ok"
        })
    })
}
