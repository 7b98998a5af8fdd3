//! The host source: the node's CPU, memory, load, network devices, open files, connection
//! tracking and pressure stalls, read from the host's `/proc` mounted under a root of its own.
//!
//! Owns: reading a fixed set of files under [`HostConfig::root`] every interval, what they
//! become on the page, and the source's health under `host`. `stat`, `meminfo`,
//! `loadavg` and `netdev` are read by procfs (from text read here, never by its
//! `current()` functions, which read the real `/proc`), each line checked first: procfs's
//! errors name neither the line nor what is wrong, it splits some lines at exactly one space,
//! and one of its parsers panics on a non-ASCII name. `sys` (`file-nr`, conntrack) and
//! `pressure` are parsed here; their modules say why.
//!
//! Must not: read outside the root (only the fixed relative paths below are joined onto it,
//! never a path taken from what was read; procfs's own links, such as `net` → `self/net`, are
//! relative), grow with what it reads (each file is read up to [`MAX_FILE_BYTES`], at most
//! [`MAX_DEVICES`] devices are served, and the families are a fixed set), or write to the
//! host.
//!
//! # Series
//! Every sample has a `node` label (the agent's node name).
//! - `/proc/stat`: `fleetwatch_agent_node_cpu_seconds_total{mode}` (counter; `user`, `nice`,
//!   `system`, `idle`, `iowait`, `irq`, `softirq`, `steal`, those the kernel shows, summed over
//!   CPUs), `fleetwatch_agent_node_cpus` (online CPUs),
//!   `fleetwatch_agent_node_context_switches_total`, `fleetwatch_agent_node_forks_total`,
//!   `fleetwatch_agent_node_boot_time_seconds`, `fleetwatch_agent_node_tasks_blocked`.
//! - `/proc/meminfo`, one gauge per quantity (see `meminfo` for why not a `kind` label):
//!   `fleetwatch_agent_node_memory_{total,available,free,buffers,cached,swap_total,swap_free}_bytes`
//!   (`available` only from kernels that show `MemAvailable`).
//! - `/proc/loadavg`: `fleetwatch_agent_node_load{1,5,15}`, `fleetwatch_agent_node_tasks_running`,
//!   `fleetwatch_agent_node_tasks`.
//! - `/proc/net/dev`, with `device`:
//!   `fleetwatch_agent_node_network_{receive,transmit}_{bytes,packets,errors,drops}_total`; and
//!   `fleetwatch_agent_node_network_devices`, every device listed, served or not. The file is
//!   the agent's network namespace: run it with the host's network.
//! - `/proc/sys/fs/file-nr`: `fleetwatch_agent_node_file_descriptors_{allocated,max}`.
//! - `/proc/sys/net/netfilter/nf_conntrack_{count,max}`:
//!   `fleetwatch_agent_node_conntrack_entries`, `fleetwatch_agent_node_conntrack_entries_max`;
//!   left out when the file is not there (conntrack not loaded).
//! - `/proc/pressure/{cpu,memory,io}`:
//!   `fleetwatch_agent_node_pressure_stall_seconds_total{resource,kind}` (`kind` is `some` or
//!   `full`); a resource is left out when its file is not there (before Linux 4.20, or PSI
//!   off), and cpu's `full` when the kernel does not show it (before 5.13).
//!
//! # Failures
//! The files other than conntrack's and pressure's must be there. The first file that is
//! missing, unreadable or malformed ends the poll: `fleetwatch_agent_source_up{source="host"} 0`,
//! one count of `fleetwatch_agent_source_errors_total` under `read` (missing or unreadable),
//! `too_large` (over [`MAX_FILE_BYTES`]) or `parse` (a rejected line: the message is
//! `path:line: expected …`; `panic` should never be seen, the checks are there to keep
//! procfs from one), and a rate-limited warning. The last good poll's snapshot is still
//! served; `up` and `fleetwatch_agent_source_last_success_timestamp_seconds` say how old it is.

mod files;
mod loadavg;
mod meminfo;
mod netdev;
mod pressure;
mod stat;
mod sys;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::health::Target;
use crate::snapshot::{Family, Latest};
use crate::source::{self, Build, Source, Task};

pub use self::files::MAX_FILE_BYTES;
use self::files::{Malformed, ReadError};
pub use self::netdev::MAX_DEVICES;

/// The files read, relative to the root.
const STAT: &str = "proc/stat";
const MEMINFO: &str = "proc/meminfo";
const LOADAVG: &str = "proc/loadavg";
const NET_DEV: &str = "proc/net/dev";
const FILE_NR: &str = "proc/sys/fs/file-nr";
const CONNTRACK_COUNT: &str = "proc/sys/net/netfilter/nf_conntrack_count";
const CONNTRACK_MAX: &str = "proc/sys/net/netfilter/nf_conntrack_max";
/// Followed by a resource of [`pressure::RESOURCES`].
const PRESSURE: &str = "proc/pressure/";

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
        let root = self.root.display();
        if !self.root.is_dir() {
            return Err(Error::config(
                "--host-root",
                format!("{root} is not a directory"),
            ));
        }
        let proc = self.root.join("proc");
        if !proc.is_dir() {
            return Err(Error::config(
                "--host-root",
                format!(
                    "{root} has no proc directory (the host's /proc must be mounted at {})",
                    proc.display()
                ),
            ));
        }
        if self.interval.is_zero() {
            return Err(Error::config("--interval", "must be more than 0 s"));
        }
        Ok(())
    }

    /// Registers the source's section and health, and returns it ready to poll: what
    /// [`Source::build`]'s task runs every interval, and what tests run one poll at a time.
    pub fn start(&self, build: &mut Build<'_>) -> Result<Host, Error> {
        self.validate()?;
        let latest = Latest::default();
        build.sections.push(Arc::new(latest.clone()));
        let name = self.name();
        Ok(Host(Arc::new(Inner {
            root: self.root.clone(),
            node: build.node.to_owned(),
            latest,
            target: build.health.target(name, build.readiness.component(name)),
            // The unit of /proc/stat's CPU times, USER_HZ: the agent shares the node's kernel.
            ticks_per_second: procfs::ticks_per_second(),
        })))
    }
}

impl Source for HostConfig {
    fn name(&self) -> &'static str {
        "host"
    }

    fn build(&self, build: &mut Build<'_>) -> Result<Task, Error> {
        let host = self.start(build)?;
        let (interval, stop) = (self.interval, build.stop.clone());
        Ok(Box::pin(source::every(interval, stop, move || {
            let host = host.clone();
            async move {
                // The outcome is in the health series; the failure was logged there.
                let _ = host.poll().await;
            }
        })))
    }
}

/// Why a poll failed: a fixed `reason` for the errors series (see the [module doc](self)) and a
/// message for the log, naming the file (and line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

/// The host source, started: each [`Host::poll`] reads every file into its section. Clones
/// share everything.
#[derive(Debug, Clone)]
pub struct Host(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    node: String,
    latest: Latest,
    target: Target,
    ticks_per_second: u64,
}

impl Host {
    /// Reads every file and serves what they hold, returning how many samples; or counts the
    /// failure and goes on serving the last good poll's.
    pub async fn poll(&self) -> Result<usize, Failure> {
        let started = Instant::now();
        let inner = self.0.clone();
        // The files are tiny and /proc answers from memory, but the root is only a path: a
        // bind mount or a test's directory on a slow or hung filesystem must not hold up the
        // runtime's threads, which also serve /metrics.
        let read = tokio::task::spawn_blocking(move || inner.read())
            .await
            .unwrap_or_else(|join| {
                let reason = if join.is_panic() {
                    "panic"
                } else {
                    "cancelled"
                };
                Err(Failure::new(
                    reason,
                    format!("reading the host's files: {join}"),
                ))
            });
        let took = started.elapsed();
        let inner = &*self.0;
        match read {
            Ok(families) => {
                let samples = families.iter().map(|f| f.samples.len()).sum();
                inner.latest.replace(families);
                inner.target.succeeded(took);
                Ok(samples)
            }
            Err(failure) => {
                inner.target.failed(failure.reason, took, &failure);
                Err(failure)
            }
        }
    }
}

impl Inner {
    /// Every file, as families; the first file that fails ends the poll.
    fn read(&self) -> Result<Vec<Family>, Failure> {
        let ticks = self.ticks_per_second;
        let stat = self.required(STAT, |text| stat::parse(text, ticks))?;
        let meminfo = self.required(MEMINFO, meminfo::parse)?;
        let load = self.required(LOADAVG, loadavg::parse)?;
        let dev = self.required(NET_DEV, netdev::parse)?;
        let file_nr = self.required(FILE_NR, sys::file_nr)?;
        let conntrack = (
            self.optional(CONNTRACK_COUNT, sys::count)?,
            self.optional(CONNTRACK_MAX, sys::count)?,
        );
        let mut pressures = Vec::with_capacity(pressure::RESOURCES.len());
        for resource in pressure::RESOURCES {
            let path = format!("{PRESSURE}{resource}");
            pressures.push((resource, self.optional(&path, pressure::parse)?));
        }
        let node = &self.node;
        let mut families = stat::families(&stat, node, ticks);
        families.extend(meminfo::families(&meminfo, node));
        families.extend(loadavg::families(&load, node));
        families.extend(netdev::families(&dev, node));
        families.extend(sys::families(file_nr, conntrack, node));
        families.extend(pressure::families(&pressures, node));
        Ok(families)
    }

    /// `relative` under the root, parsed; a failure if it is not there.
    fn required<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str) -> Result<T, Malformed>,
    ) -> Result<T, Failure> {
        self.optional(relative, parse)?.ok_or_else(|| {
            let path = self.root.join(relative);
            Failure::new("read", format!("{}: no such file", path.display()))
        })
    }

    /// `relative` under the root, parsed, or `None` if it is not there.
    fn optional<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str) -> Result<T, Malformed>,
    ) -> Result<Option<T>, Failure> {
        let path = self.root.join(relative);
        let shown = path.display();
        let text = match files::read(&path, &self.target) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(None),
            Err(ReadError::TooLarge) => {
                let message = format!("{shown}: larger than {MAX_FILE_BYTES} bytes");
                return Err(Failure::new("too_large", message));
            }
            Err(ReadError::Io(e)) => return Err(Failure::new("read", format!("{shown}: {e}"))),
        };
        parse(&text)
            .map(Some)
            .map_err(|malformed| Failure::new("parse", malformed.at(&path)))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn field(config: &HostConfig) -> String {
        match config.validate() {
            Err(Error::Config { field, message }) => format!("{field}: {message}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn the_root_must_hold_proc() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = |root: &Path| HostConfig {
            root: root.to_owned(),
            ..HostConfig::default()
        };
        let missing = dir.path().join("missing");
        assert_eq!(
            field(&config(&missing)),
            format!("--host-root: {} is not a directory", missing.display())
        );
        let no_proc = field(&config(dir.path()));
        assert!(
            no_proc.starts_with("--host-root: ") && no_proc.contains("has no proc directory"),
            "{no_proc}"
        );
        std::fs::create_dir(dir.path().join("proc")).expect("mkdir");
        assert_eq!(field(&config(dir.path())), "Ok(())");
        let never = HostConfig {
            interval: Duration::ZERO,
            ..config(dir.path())
        };
        assert_eq!(field(&never), "--interval: must be more than 0 s");
    }
}
