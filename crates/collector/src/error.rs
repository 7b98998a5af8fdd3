//! The collector's errors: where (file and line, server, component) and what failed.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file that does not parse or check: `at` is `file:line`, or the file
    /// when the whole file is wrong.
    #[error("{at}: {message}")]
    Config { at: String, message: String },

    /// A component that could not start.
    #[error("{component}: {reason}")]
    Component {
        component: &'static str,
        reason: String,
    },

    /// The API client's own error (connecting, an informer).
    #[error(transparent)]
    Client(#[from] fleetwatch_client::Error),

    /// Serving `/metrics`.
    #[error("serving /metrics on {address}: {source}")]
    Serve {
        address: String,
        source: std::io::Error,
    },
}
