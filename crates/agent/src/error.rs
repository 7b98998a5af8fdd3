use std::fmt;

/// What stops the agent from starting or serving. A source that fails while running is not an
/// error here: it is counted and logged (rate-limited) and the agent goes on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is wrong: `field` is the flag or setting, `message` the expected form.
    #[error("{field}: {message}")]
    Config { field: String, message: String },
    /// A source could not be built.
    #[error("the {source_name} source: {reason}")]
    Source {
        source_name: &'static str,
        reason: String,
    },
    /// Serving `/metrics` failed.
    #[error("serving /metrics on {address}: {source}")]
    Serve {
        address: String,
        source: std::io::Error,
    },
}

impl Error {
    /// A [`Error::Config`] for `field`.
    pub fn config(field: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::Config {
            field: field.into(),
            message: message.to_string(),
        }
    }
}
