//! A real Kubernetes control plane on loopback — etcd, kube-apiserver and optionally
//! kube-controller-manager — for fleetwatch's tests, the `fleetwatch lab` commands and the load
//! lab. The same idea as controller-runtime's envtest.
//!
//! Start with [`ControlPlane::start`] (what `fleetwatch lab up` runs) or, in tests,
//! [`testing::shared`], which gives every test in a binary the same control plane and stops it
//! when the binary exits. [`populate`] fills a control plane with synthetic Nodes and Pods.
//!
//! Owns: building the pinned control-plane binaries from Go modules into a cache outside the repo
//! ([`binaries`]), certificates ([`pki`]), starting and stopping the processes it started
//! ([`plane`]). Its admin client talks only to the loopback control plane it started itself, so
//! it is the one place outside the budgeted client that builds a `kube::Client`.
//!
//! Must not: talk to any API server other than one it started, or stop a process it did not
//! start (every pid it signals is checked against the recorded binary first).

pub mod binaries;
mod error;
pub mod load;
pub mod pki;
pub mod plane;
pub mod populate;
pub mod process;
pub mod testing;

pub use binaries::{Binaries, ETCD_VERSION, KUBERNETES_VERSION};
pub use error::{LabError, Result};
pub use plane::{ControlPlane, LabOptions};
pub use populate::{PopulateSpec, populate};
