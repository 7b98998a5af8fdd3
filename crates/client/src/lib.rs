//! The budgeted API client: the only way any fleetwatch component talks to a Kubernetes API
//! server.
//!
//! Start with [`Client::connect`]: it reads a kubeconfig (or the in-cluster configuration),
//! builds the guard-rail stack around `kube::Client` and checks that the server answers. From a
//! [`Client`] a component gets [`Informer`]s (the only read API: list once from the watch cache,
//! then watch), a [`Writer`] for the few writes it makes, and [`Client::scrape`] for the API
//! server's own non-resource endpoints (`/metrics`, `/readyz`, …).
//!
//! Owns: construction of `kube::Client` ([`connect`](mod@connect)), the tower stack of guard
//! rails around it, assembled in one place ([`stack`]): identifying User-Agent, token bucket,
//! adaptive concurrency, Retry-After and backoff, a hard ceiling, cost accounting — one layer per
//! module — and informers.
//!
//! Must not: offer periodic LIST polling (there is no list call and no resync period), let any
//! setting remove its rate limits or its hard ceiling (settings are clamped to
//! [`ceiling::HARD_REQUESTS_PER_MINUTE`] and [`ceiling::HARD_RESPONSE_BYTES_PER_MINUTE`]), or put
//! a credential in an error or a log line.

pub mod accounting;
pub mod backoff;
pub mod body;
mod bucket;
pub mod ceiling;
pub mod classify;
pub mod concurrency;
pub mod connect;
mod error;
pub mod informer;
pub mod retry;
mod settings;
pub mod stack;
pub mod store;
pub mod token_bucket;
pub mod user_agent;
mod writer;

pub use ceiling::Priority;
pub use connect::{Client, Source};
pub use error::{Error, Result};
pub use informer::{Informer, InformerStats, Watch};
pub use settings::{Concurrency, Settings};
pub use store::{ObjectKey, Store};
pub use writer::Writer;
