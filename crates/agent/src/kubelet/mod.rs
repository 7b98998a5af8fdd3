//! The kubelet source: `/metrics/resource` and `/stats/summary` of the node's own kubelet.
//! (Being written.)

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::source::{Build, Source, Task};

/// Where the kubelet is and how it is read.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletConfig {
    /// The kubelet's base URL, e.g. `https://10.0.0.7:10250`.
    pub url: String,
    /// A bearer token file, read again before each poll (projected tokens rotate).
    pub token_file: Option<PathBuf>,
    /// PEM certificates the kubelet's serving certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// How often both endpoints are polled.
    pub interval: Duration,
    /// Per request, connection and body included.
    pub timeout: Duration,
    /// The most bytes of one response body read; a larger one is an error.
    pub max_body_bytes: usize,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            url: "https://127.0.0.1:10250".to_owned(),
            token_file: None,
            ca_file: None,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

impl KubeletConfig {
    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl Source for KubeletConfig {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    fn build(&self, _build: &mut Build<'_>) -> Result<Task, Error> {
        Ok(Box::pin(async {}))
    }
}
