//! The priority a caller gives its requests. It decides the order in which requests waiting for
//! budget (the token bucket, the hard ceiling) are served, and how long one may wait at the
//! ceiling before it is shed.

/// How a request fares where it has to wait for budget. Ordered most urgent first: a waiting
/// `Critical` request is served before any waiting `Normal` one, and `Normal` before
/// `Background`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Waits as long as it takes (leader-election renewals, aborting a rollout).
    Critical,
    /// Waits up to [`Settings::ceiling_wait`](crate::Settings::ceiling_wait) at the ceiling,
    /// then is shed.
    #[default]
    Normal,
    /// Shed as soon as it would have to wait at the ceiling.
    Background,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Background => "background",
        }
    }
}
