//! The host source: the node's `/proc` and `/sys`, mounted at a root of their own.
//! (Being written.)

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::source::{Build, Source, Task};

/// Where the host's filesystems are and how often they are read.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// The host's root: `/proc` and `/sys` are read under it (`/host` in a pod, `/` on a host).
    pub root: PathBuf,
    /// How often everything is read.
    pub interval: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            root: PathBuf::from("/"),
            interval: Duration::from_secs(30),
        }
    }
}

impl HostConfig {
    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl Source for HostConfig {
    fn name(&self) -> &'static str {
        "host"
    }

    fn build(&self, _build: &mut Build<'_>) -> Result<Task, Error> {
        Ok(Box::pin(async {}))
    }
}
