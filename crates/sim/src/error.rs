//! Errors of the simulator: every input error names the file and, for syntax and type errors,
//! the line and column, and says what was expected.

/// Result alias for the simulator.
pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// What can go wrong before a simulation runs (running one cannot fail).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// A file does not parse, or a value has the wrong type or range.
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A file parses but does not make sense as a whole (e.g. two clusters with one name).
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// The rollout engine refused the policy or fleet.
    #[error("planning the rollout: {0}")]
    Plan(#[from] fleetwatch_rollout::PlanError),
}

impl SimError {
    pub(crate) fn invalid(file: &str, message: impl Into<String>) -> Self {
        SimError::Invalid {
            file: file.to_owned(),
            message: message.into(),
        }
    }

    /// A parse error at byte `offset` of `text`, with 1-based line and column.
    pub(crate) fn at_offset(
        file: &str,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        SimError::Parse {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}
