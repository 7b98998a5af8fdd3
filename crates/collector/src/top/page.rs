//! One read of the collector's page, kept as owned series: only the families `top` shows (the
//! API-server SLIs and the audit receiver's), so a reading costs little however large the page.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use fleetwatch_telemetry::text;

use crate::apiserver::signals::PREFIX;

/// The audit receiver's families (built by the audit webhook receiver, `crate::audit`).
pub const AUDIT_REQUESTS: &str = "fleetwatch_collector_audit_requests_total";
/// The audit receiver's latency histogram, by user, user agent, verb and resource.
pub const AUDIT_DURATION: &str = "fleetwatch_collector_audit_request_duration_seconds";
const AUDIT_PREFIX: &str = "fleetwatch_collector_audit_";

/// One sample: its full name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Series {
    /// The value of label `name`, empty when the series lacks it.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// What one read of the page kept.
#[derive(Debug, Clone)]
pub struct Reading {
    /// When the read completed (for rates between two readings).
    pub at: Instant,
    /// The same moment on the wall clock, for the screen's header.
    pub wall: SystemTime,
    pub series: Vec<Series>,
    /// Lines on the page, and how many of them did not parse (the rest still counts).
    pub lines: usize,
    pub bad_lines: usize,
    /// The first bad line, for the screen.
    pub first_bad: Option<String>,
    /// Whether the page has any audit family at all (HELP or TYPE without samples included).
    pub has_audit: bool,
}

impl Reading {
    /// Parses a page strictly, keeping what `top` shows.
    pub fn parse(body: &[u8], at: Instant, wall: SystemTime) -> Reading {
        let page = text::parse_bytes(body);
        let series = page
            .samples()
            .filter(|s| s.name.starts_with(PREFIX) || s.name.starts_with(AUDIT_PREFIX))
            .map(|s| Series {
                name: s.name.to_owned(),
                labels: s
                    .labels
                    .iter()
                    .map(|l| (l.name.to_owned(), l.value.to_string()))
                    .collect(),
                value: s.value,
            })
            .collect();
        let has_audit = page.families().any(|f| f.name().starts_with(AUDIT_PREFIX));
        Reading {
            at,
            wall,
            series,
            lines: page.line_count(),
            bad_lines: page.error_count(),
            first_bad: page.errors().first().map(ToString::to_string),
            has_audit,
        }
    }

    /// The samples of family `name` (without the API-server prefix, e.g. `up`).
    pub fn family<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        let full = format!("{PREFIX}{name}");
        self.series.iter().filter(move |s| s.name == full)
    }

    /// Samples with this exact full name.
    pub fn named<'a>(&'a self, full: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| s.name == full)
    }
}
