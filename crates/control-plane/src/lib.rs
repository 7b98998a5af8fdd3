//! A real Kubernetes control plane on loopback — etcd, kube-apiserver and optionally
//! kube-controller-manager, and kube-scheduler with kwok playing kubelet for fake nodes — for
//! fleetwatch's tests and the `fleetwatch lab` commands. The same idea as controller-runtime's
//! envtest.
//!
//! Start with [`ControlPlane::start`] (what `fleetwatch lab up` runs) or, in tests,
//! [`testing::shared`], which gives every test in a binary the same control plane and stops it
//! when the binary exits. [`populate`] fills a control plane with synthetic Nodes and Pods.
//!
//! Owns: building the pinned control-plane binaries from Go modules into a cache outside the repo
//! ([`binaries`]), certificates ([`pki`]), the lab directory and what may be deleted in it
//! ([`plane`]), starting and stopping the processes it started ([`process`]), and synthetic
//! cluster objects ([`populate`]). Its admin client talks only to the loopback control plane it
//! started itself, so it is one of the two places outside the budgeted client that build a
//! `kube::Client` (the load lab's incident emulation is the other).
//!
//! Must not: talk to any API server other than one it started, stop a process it did not start
//! (every pid it signals is checked against the recorded binary first), or delete a file it did
//! not create (a lab directory carries a marker; anything else is refused).

// clippy.toml refuses `kube::Client` outside the budgeted client: the control plane's admin client
// bootstraps the lab's own loopback API server, before any budgeted client exists. Constructing
// one is still refused but at the single site in `plane` that says why.
#![allow(clippy::disallowed_types)]

pub mod binaries;
mod error;
pub mod pki;
pub mod plane;
pub mod populate;
pub mod process;
pub mod testing;

pub use binaries::{Binaries, DEFAULT_RELEASE, ETCD_VERSION, KUBERNETES_VERSION, Release, Tool};
pub use error::{Error, Result};
pub use plane::{ControlPlane, LabOptions};
pub use populate::{PopulateSpec, populate};
