//! The client's errors. Each says where (kubeconfig file, context, server) and what failed, in
//! words a user can act on; none carries a token, a key or a kubeconfig's contents.

use std::path::PathBuf;

use crate::priority::Priority;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },

    #[error("kubeconfig {path}: no context named {context:?} (it has: {known})")]
    UnknownContext {
        path: PathBuf,
        context: String,
        known: String,
    },

    #[error(
        "in-cluster configuration: {reason} (is this running in a pod with a service account?)"
    )]
    InCluster { reason: String },

    #[error(
        "TLS with {server} (context {context}): {reason} — check the kubeconfig's \
         certificate-authority and client certificate"
    )]
    Certificate {
        server: String,
        context: String,
        reason: String,
    },

    #[error("API server {server} (context {context}) is unreachable: {reason}")]
    Unreachable {
        server: String,
        context: String,
        reason: String,
    },

    #[error("{verb} {resource} on {server}: HTTP {status} {reason}: {message}")]
    Status {
        server: String,
        verb: &'static str,
        resource: String,
        status: u16,
        reason: String,
        message: String,
    },

    #[error("{object}: {reason}")]
    InvalidObject { object: String, reason: String },

    #[error("{verb} {resource} on {server}: {reason}")]
    Request {
        server: String,
        verb: &'static str,
        resource: String,
        reason: String,
    },

    #[error(
        "request shed at the client's hard ceiling ({} priority; it would have waited \
         {wait_secs:.1} s): the component should shed work",
        priority.as_str()
    )]
    Shed { priority: Priority, wait_secs: f64 },

    #[error(
        "an informer for {key} already runs with a different projection: one watch per \
         resource type and selector per process — share its projection"
    )]
    ConflictingProjection { key: String },

    #[error("{path} is not an API server endpoint fleetwatch scrapes (allowed: {allowed})")]
    NotScrapable { path: String, allowed: String },

    #[error("get {path} on {server}: the page is larger than the limit of {limit} bytes")]
    TooLarge {
        server: String,
        path: String,
        limit: usize,
    },

    #[error("invalid client settings: {0}")]
    Settings(String),
}

impl Error {
    /// A kube error as the client's: the server and what failed, never credentials. The
    /// client's own errors (a request shed at the ceiling) come back as they were.
    pub(crate) fn from_kube(
        server: &str,
        verb: &'static str,
        resource: &str,
        error: kube::Error,
    ) -> Error {
        match error {
            kube::Error::Api(status) => Error::Status {
                server: server.to_owned(),
                verb,
                resource: resource.to_owned(),
                status: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            kube::Error::Service(error) => match error.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::request(server, verb, resource, other.as_ref()),
            },
            other => Error::request(server, verb, resource, &other),
        }
    }

    /// A request that failed without an answer from the server.
    pub(crate) fn request(
        server: &str,
        verb: &'static str,
        resource: &str,
        error: &(dyn std::error::Error + 'static),
    ) -> Error {
        Error::Request {
            server: server.to_owned(),
            verb,
            resource: resource.to_owned(),
            reason: chain(error),
        }
    }
}

/// The error and its sources on one line (`a: b: c`).
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}
