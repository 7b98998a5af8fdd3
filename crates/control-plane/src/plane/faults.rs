//! Fault injection for tests: the API server stopped, restarted or frozen, etcd compacted.

use super::{ControlPlane, STOP_GRACE, etcd, lock};
use crate::error::{Error, Result};

impl ControlPlane {
    /// Stops kube-apiserver (SIGTERM, as a node drain or crash-loop would) and leaves it down.
    /// etcd keeps running.
    pub async fn stop_apiserver(&self) {
        if let Some(process) = self.process("kube-apiserver") {
            process.terminate(STOP_GRACE).await;
        }
    }

    /// Starts kube-apiserver again after [`ControlPlane::stop_apiserver`], on the same port and
    /// with the same flags, and waits until it is ready.
    pub async fn start_apiserver_again(&self) -> Result<()> {
        let launch = lock(&self.apiserver).clone().ok_or(Error::CannotRestart)?;
        self.run_apiserver(&launch).await
    }

    /// Stops and starts kube-apiserver; returns once it is ready again.
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.stop_apiserver().await;
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
        let url = self.etcd_url();
        etcd::compact(url.trim_start_matches("http://")).await
    }
}
