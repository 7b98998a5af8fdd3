//! The DNS probe: names resolved through the node's resolver and directly against the cluster
//! DNS service, to see a cache serving answers past their TTL while the upstream fails.
//! (Being written.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::source::{Build, Source, Task};

/// The cluster's API server name, resolved by default.
pub const DEFAULT_NAME: &str = "kubernetes.default.svc.cluster.local";

/// What is resolved, through which servers, how often.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    /// The names resolved each interval.
    pub names: Vec<String>,
    /// The node's resolver; `None` means the first `nameserver` of `resolv_conf`.
    pub resolver: Option<SocketAddr>,
    /// Where the node's resolver is read from when not given.
    pub resolv_conf: PathBuf,
    /// The cluster DNS service (the upstream the node's cache forwards to); `None` turns the
    /// stale-answer check off, and a series says so.
    pub cluster_dns: Option<SocketAddr>,
    /// How often every name is resolved.
    pub interval: Duration,
    /// Per query.
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            names: vec![DEFAULT_NAME.to_owned()],
            resolver: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            cluster_dns: None,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
        }
    }
}

impl DnsConfig {
    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl Source for DnsConfig {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn build(&self, _build: &mut Build<'_>) -> Result<Task, Error> {
        Ok(Box::pin(async {}))
    }
}
