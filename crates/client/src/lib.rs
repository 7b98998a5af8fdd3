//! The budgeted API client: the only way any fleetwatch component talks to a Kubernetes API
//! server.
//!
//! Start with [`Client::connect`]: it reads a kubeconfig (or the in-cluster configuration),
//! builds the guard-rail stack around kube's HTTP client and checks that the server answers.
//! From a [`Client`] a component gets [`Informer`]s (the only read API: list once from the watch
//! cache, then watch), a [`Writer`] for the few writes it makes, an [`ObjectWriter`] for objects
//! whose kinds are known only at run time (a rollout's manifests), and [`Client::scrape`] for the
//! API server's own non-resource endpoints (`/metrics`, `/readyz`, …).
//!
//! Owns: construction of `kube::Client` ([`connect`](mod@connect), [`client`]); the tower stack
//! of guard rails around it, assembled in one place ([`stack`]), one layer per module:
//! identifying User-Agent ([`user_agent`]), classification ([`classify`]), Retry-After and
//! backoff ([`retry`]), token bucket ([`token_bucket`]), the hard ceiling ([`ceiling`]),
//! adaptive concurrency ([`concurrency`]), cost accounting ([`accounting`]); the process's
//! [`Budget`] — one hard ceiling and one metric set per process, shared by every client in it,
//! while token bucket, concurrency limit and backoff are per API server connection;
//! informers ([`informer`]); and leader election through a Lease ([`lease`]).
//!
//! Must not: offer periodic LIST polling (there is no list call and no resync period); let any
//! setting remove its rate limits or its hard ceiling (settings are clamped to
//! [`ceiling::HARD_REQUESTS_PER_MINUTE`] and [`ceiling::HARD_RESPONSE_BYTES_PER_MINUTE`], and
//! the ceiling is the process's, not a client's: connecting again does not add one); classify
//! failures by their message text; put a credential in an error or a log line.
//!
//! Leaf modules, which import nothing from the crate (`request_info` only `priority`):
//! [`priority`], [`request_info`], [`metrics`], [`body`], [`backoff`], [`store`] and the failure
//! classification; every other module imports only downwards, so no two modules import each
//! other.

// clippy.toml refuses `kube::Client` outside the client: this crate is the one door.
#![allow(clippy::disallowed_types)]

pub mod accounting;
pub mod backoff;
pub mod body;
mod bucket;
mod budget;
pub mod ceiling;
pub mod classify;
// The one door to an API server: the only module that builds a `kube::Client`, which clippy.toml
// refuses everywhere else.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
pub mod client;
pub mod concurrency;
pub mod connect;
mod error;
mod failure;
mod gate;
// Leader election drives kube-lease-manager with the budgeted `kube::Client`.
#[allow(clippy::disallowed_types)]
pub mod lease;
// Informers hold the budgeted `kube::Client` their client gave them, to open kube's watcher.
#[allow(clippy::disallowed_types)]
pub mod informer;
pub mod metrics;
// Dynamic objects need kube's discovery, which takes the budgeted `kube::Client`.
#[allow(clippy::disallowed_types)]
pub mod objects;
pub mod priority;
pub mod request_info;
pub mod retry;
mod settings;
pub mod stack;
pub mod store;
#[cfg(test)]
mod testing;
pub mod token_bucket;
pub mod user_agent;
mod writer;

pub use budget::Budget;
pub use client::{Client, DEFAULT_SCRAPE_LIMIT};
pub use connect::Source;
pub use error::{Error, Result};
pub use informer::{Informer, InformerStats, Relists, Watch};
pub use lease::{Leadership, LeaseSettings};
pub use objects::{Mode, ObjectWriter};
pub use priority::Priority;
pub use settings::{Concurrency, MAX_BACKOFF, MAX_CEILING_WAIT, MIN_BACKOFF, MIN_QPS, Settings};
pub use store::{ObjectKey, Store};
pub use writer::Writer;
