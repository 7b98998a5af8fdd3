//! The audit webhook source: an HTTPS receiver for kube-apiserver's audit webhook backend
//! (`--audit-webhook-config-file`), turning its events into per-client request series.
//!
//! Owns: accepting `POST /audit` with an `audit.k8s.io/v1` `EventList` body from clients whose
//! certificate the configured CA signed ([`server`]), reading the few fields it counts by
//! ([`event`]), and keeping per-client series for the top K clients by requests, the rest as
//! `other` ([`topk`], [`aggregate`]).
//!
//! Must not: slow the API server down or grow without bound. The API server sends batches (up
//! to 400 events, a buffer of 10,000) and retries any non-2xx, dropping events once its buffer
//! is full; so a batch is answered as soon as it is counted (a 400-event, 257 KiB batch: 15 ms
//! median over a new TLS connection, 11 ms of it parsing and counting, in an unoptimised debug
//! build), a body past `max_body_bytes` is refused with 413 before it is buffered, and
//! what is kept is bounded by K and by per-client budgets, not by the clients the cluster has.
//! It never calls the API server.
//!
//! Series (`fleetwatch_collector_audit_*`):
//! - `requests_total{user,user_agent,verb,resource,code_class}` — requests at stage
//!   `ResponseComplete`, so each counts once (the other stages are counted as
//!   `events_total{outcome="ignored_stage"}`); `resource` is `pods` or `pods/log`, empty for a
//!   non-resource request; `code_class` is `2xx` … `5xx`, or `unknown`.
//! - `request_duration_seconds{user,user_agent,verb,resource}` — `stageTimestamp −
//!   requestReceivedTimestamp`; long-running requests (watch, exec, attach, port-forward,
//!   proxy) are counted but not timed, as in the API server's own histogram.
//! - `events_total{outcome}` (accepted, ignored_stage, malformed), `batches_total{outcome}`
//!   (accepted, not_json, not_event_list, too_large, bad_method, not_found, read_error),
//!   `connections_total{outcome}` (accepted, handshake_failed).
//!
//! Response sizes are not reported: an audit event has no response-size field. The only
//! response content it can carry is `responseObject`, and only at level `RequestResponse`,
//! which makes the API server keep and re-serialise every response it audits — the kind of cost
//! fleetwatch exists to avoid — and which is the object as JSON after conversion, not the bytes
//! sent (protobuf, compression, watch streams), and is absent for non-resource requests. Bytes
//! per verb and resource come from the API server's own `apiserver_response_sizes` histogram
//! (read by the [`crate::apiserver`] source); per client they are not available.
//!
//! The receiver is configured under `audit:` in the collector's file; the API server needs an
//! audit policy (`--audit-policy-file`, or it sends nothing) and a webhook kubeconfig whose
//! cluster is this receiver's URL and CA and whose user is a client certificate this receiver's
//! `client_ca_file` signed.

pub mod aggregate;
pub mod event;
pub mod server;
pub mod topk;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use self::server::Receiver;
use crate::component::{Build, Component, Task};
use crate::error::Error;

/// The one path the receiver serves (`POST` only).
pub const PATH: &str = "/audit";
/// Where the receiver listens unless configured.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9471";
/// The largest body read unless configured: above the API server's own default cap on a batch
/// (`--audit-webhook-truncate-max-batch-size`, 10 MiB, when truncation is on).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Clients with series of their own unless configured.
pub const DEFAULT_TOP_K: usize = 20;
/// The most clients with series of their own (each multiplies the per-client series).
pub const MAX_TOP_K: usize = 500;

/// The audit webhook receiver's settings (`audit:` in the collector's config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Whether to run the receiver.
    pub enabled: bool,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The serving certificate chain (PEM).
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) that signs the API server's client certificate; clients without a
    /// certificate it signed are refused at the handshake.
    pub client_ca_file: Option<PathBuf>,
    /// The largest body accepted; a larger one is answered 413 without being read.
    pub max_body_bytes: usize,
    /// How many clients (user, user agent) have series of their own; the rest are `other`.
    pub top_k: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: false,
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 9471))),
            tls_cert_file: None,
            tls_key_file: None,
            client_ca_file: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            top_k: DEFAULT_TOP_K,
        }
    }
}

impl AuditConfig {
    /// Checks the settings; when enabled, names the first required field that is missing.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let files = [
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
            ("client_ca_file", &self.client_ca_file),
        ];
        if let Some((field, _)) = files.iter().find(|(_, file)| file.is_none()) {
            return Err(format!(
                "audit.{field}: required when audit.enabled is true (the API server's webhook \
                 must be TLS with a client certificate)"
            ));
        }
        if self.max_body_bytes < 64 << 10 {
            return Err("audit.max_body_bytes: must be at least 65536 (64 KiB)".into());
        }
        if self.top_k == 0 || self.top_k > MAX_TOP_K {
            return Err(format!("audit.top_k: must be between 1 and {MAX_TOP_K}"));
        }
        Ok(())
    }
}

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Settings that do not check.
    #[error("{0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("audit: cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// A certificate, key or CA file that cannot be read or used.
    #[error("audit: {}: {reason}", file.display())]
    Tls { file: PathBuf, reason: String },
}

impl Component for AuditConfig {
    fn name(&self) -> &'static str {
        "audit"
    }

    /// Binds the listener and loads the certificates now, so that a bad address or file fails
    /// the start; the task serves until the collector stops.
    fn build(&self, build: &mut Build<'_>) -> Result<Task, Error> {
        let ready = build.readiness.component(self.name());
        if !self.enabled {
            ready.set(true);
            return Ok(Box::pin(async {}));
        }
        let receiver = Receiver::bind(self, build.registry).map_err(|e| Error::Component {
            component: "audit",
            reason: e.to_string(),
        })?;
        let address = receiver
            .local_addr()
            .map_or_else(|_| self.listen.to_string(), |a| a.to_string());
        let stop = build.stop.clone();
        Ok(Box::pin(async move {
            tracing::info!(%address, path = PATH, "receiving the audit webhook");
            ready.set(true);
            receiver.serve(stop).await;
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_by_default_and_valid() {
        let config = AuditConfig::default();
        assert!(!config.enabled);
        assert_eq!(config.max_body_bytes, 16 << 20);
        assert_eq!(config.top_k, 20);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn enabled_names_the_missing_field() {
        let mut config = AuditConfig {
            enabled: true,
            tls_cert_file: Some("tls.crt".into()),
            ..AuditConfig::default()
        };
        let error = config.validate().expect_err("no key");
        assert!(error.starts_with("audit.tls_key_file:"), "{error}");
        config.tls_key_file = Some("tls.key".into());
        let error = config.validate().expect_err("no CA");
        assert!(error.starts_with("audit.client_ca_file:"), "{error}");
        config.client_ca_file = Some("ca.crt".into());
        assert_eq!(config.validate(), Ok(()));
        config.top_k = 0;
        assert!(
            config
                .validate()
                .expect_err("k = 0")
                .starts_with("audit.top_k")
        );
    }

    #[test]
    fn reads_its_yaml_keys_and_refuses_unknown_ones() {
        let config: AuditConfig = serde_yaml_ng::from_str(
            "enabled: true\nlisten: 127.0.0.1:9443\ntls_cert_file: /tls/tls.crt\n\
             tls_key_file: /tls/tls.key\nclient_ca_file: /tls/ca.crt\n\
             max_body_bytes: 1048576\ntop_k: 5\n",
        )
        .expect("parses");
        assert_eq!(config.listen.port(), 9443);
        assert_eq!(config.top_k, 5);
        assert_eq!(config.validate(), Ok(()));
        assert!(serde_yaml_ng::from_str::<AuditConfig>("topk: 5\n").is_err());
    }
}
