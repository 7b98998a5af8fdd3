//! Starting, checking and stopping the lab's own processes. Every pid is checked against the
//! binary we recorded before it is signalled, so a reused pid is never hit.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A process the lab started, as recorded in its state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub name: String,
    pub pid: u32,
    pub exe: PathBuf,
}

/// Starts `exe args…` with stdout and stderr in `log`. A `detached` process gets its own process
/// group so that it outlives the command that started it (`lab up`) and a Ctrl-C there; otherwise
/// it shares ours, so a Ctrl-C on a test run stops it too.
pub fn spawn(exe: &Path, args: &[String], log: &Path, detached: bool) -> Result<Child> {
    let out = File::create(log).map_err(Error::io("creating a process log", log))?;
    let err = out
        .try_clone()
        .map_err(Error::io("creating a process log", log))?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    if detached {
        cmd.process_group(0);
    }
    cmd.spawn()
        .map_err(Error::io("starting a control-plane process", exe))
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Recorded {
    /// Whether the pid is alive and still runs the binary we started (not a reused pid).
    pub fn is_running(&self) -> bool {
        let Ok(exe) = std::fs::read_link(format!("/proc/{}/exe", self.pid)) else {
            return false;
        };
        // A zombie has no exe link; a replaced binary reads as "<path> (deleted)".
        exe == self.exe
            || exe.to_string_lossy().trim_end_matches(" (deleted)") == self.exe.to_string_lossy()
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the process is gone, or after
    /// [`KILL_WAIT`] more if even SIGKILL does not end it (a process in uninterruptible sleep),
    /// which is logged. Async so that stopping a lab never blocks the runtime's threads.
    pub async fn terminate(&self, grace: Duration) -> Stopped {
        if !self.is_running() {
            return Stopped::AlreadyGone;
        }
        signal(self.pid, libc::SIGTERM);
        if self.gone_within(grace).await {
            return Stopped::Terminated;
        }
        signal(self.pid, libc::SIGKILL);
        if self.gone_within(KILL_WAIT).await {
            return Stopped::Killed;
        }
        tracing::warn!(
            name = self.name,
            pid = self.pid,
            "still running {}s after SIGKILL; giving up on it",
            KILL_WAIT.as_secs()
        );
        Stopped::StillRunning
    }

    async fn gone_within(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while self.is_running() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }
}

/// How [`Recorded::terminate`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    AlreadyGone,
    Terminated,
    Killed,
    StillRunning,
}

/// How long a process may take to vanish after SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

impl Recorded {
    /// Sends `sig` if the pid still runs our binary.
    pub fn send(&self, sig: libc::c_int) {
        if self.is_running() {
            signal(self.pid, sig);
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid was just checked to be ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A free loopback TCP port. Another process may take it before we bind; callers retry on
/// "address already in use".
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(Error::io("finding a free port", "127.0.0.1:0"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(Error::io("finding a free port", "127.0.0.1:0"))
}

/// Whether a log says the process could not bind its port.
pub fn lost_port_race(log: &Path) -> bool {
    log_tail(log, 30).contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh -c script`, recorded with the binary it ends up running (after `exec`).
    async fn started(script: &str) -> (Child, Recorded) {
        let child = Command::new("sh")
            .args(["-c", script])
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
        (
            child,
            Recorded {
                name: "test".to_owned(),
                pid,
                exe,
            },
        )
    }

    #[tokio::test]
    async fn terminate_asks_then_kills_and_is_bounded() {
        let (mut polite, recorded) = started("exec sleep 60").await;
        assert!(recorded.is_running());
        assert_eq!(
            recorded.terminate(Duration::from_secs(5)).await,
            Stopped::Terminated
        );
        let _ = polite.wait();
        assert_eq!(
            recorded.terminate(Duration::from_secs(5)).await,
            Stopped::AlreadyGone
        );

        // Ignored signals survive exec: this sleep ignores SIGTERM and must be killed.
        let (mut stubborn, recorded) = started("trap '' TERM; exec sleep 60").await;
        let begun = Instant::now();
        assert_eq!(
            recorded.terminate(Duration::from_millis(300)).await,
            Stopped::Killed
        );
        assert!(begun.elapsed() < Duration::from_millis(300) + KILL_WAIT);
        let _ = stubborn.wait();
    }

    #[tokio::test]
    async fn a_reused_pid_is_not_ours() {
        let (mut child, mut recorded) = started("exec sleep 60").await;
        recorded.exe = PathBuf::from("/nonexistent/kube-apiserver");
        assert!(!recorded.is_running());
        assert_eq!(
            recorded.terminate(Duration::from_secs(1)).await,
            Stopped::AlreadyGone
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "not signalled"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
