//! What the collector and the node agent share for their own telemetry: the `/metrics`
//! exposition server, the Prometheus remote-write sink and a strict parser of the Prometheus
//! text format (for the pages they scrape).
//!
//! Owns: serving a `prometheus_client` registry over HTTP with content negotiation
//! ([`exposition`]), with large sources writing their families straight onto the page
//! ([`page`]); pushing samples to a remote-write receiver through a bounded queue
//! ([`remote_write`]); parsing scraped pages ([`text`]); and, for tests, a real Prometheus on
//! loopback ([`testing`]).
//!
//! Must not: depend on anything that knows Kubernetes, or offer an HTTP client a component could
//! point at an API server — the agent depends on this crate and must not be able to reach one.

pub mod exposition;
pub mod limited_log;
pub mod page;
pub mod remote_write;
pub mod testing;
pub mod text;
