//! What every object-state family shares: its descriptor (name, HELP text as kube-state-metrics
//! writes it, TYPE), writing one family from one store, and condition statuses.
//!
//! Series are written straight from the stores onto the page with borrowed label values:
//! rendering allocates nothing per series.

use fleetwatch_client::{ObjectKey, Store};
use fleetwatch_telemetry::page::{Kind, Page, Samples};

/// A family's descriptor. `help` is kube-state-metrics' text, with the `[STABLE] ` it puts
/// before the HELP of its stable families.
#[derive(Debug)]
pub(crate) struct Family {
    /// The name on the page: a counter's ends in `_total`.
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
}

impl Family {
    pub(crate) const fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: Kind::Gauge,
        }
    }

    pub(crate) const fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: Kind::Counter,
        }
    }

    /// Writes this family's descriptor, then `write(sample, key, object)` for each object in
    /// `store`. Nothing at all for an empty store: kube-state-metrics writes a resource's
    /// HELP and TYPE lines only while it has objects of it.
    pub(crate) fn write<T>(
        &self,
        page: &mut Page<'_>,
        store: &Store<T>,
        mut write: impl FnMut(&mut Samples<'_, '_>, &ObjectKey, &T),
    ) {
        if store.is_empty() {
            return;
        }
        let mut samples = page.family(self.name, self.help, self.kind);
        for (key, object) in store.iter() {
            write(&mut samples, key, object);
        }
    }
}

/// 1 or 0, as kube-state-metrics' `boolFloat64`.
pub(crate) fn one_if(condition: bool) -> f64 {
    if condition { 1.0 } else { 0.0 }
}

/// A condition's status as the API reports it (`True`, `False`, `Unknown`; anything else is kept
/// as `Other`, which matches none of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    True,
    False,
    Unknown,
    Other,
}

impl Status {
    pub(crate) fn parse(status: &str) -> Status {
        match status {
            "True" => Status::True,
            "False" => Status::False,
            "Unknown" => Status::Unknown,
            _ => Status::Other,
        }
    }

    /// kube-state-metrics' `addConditionMetrics`: one series per possible status, labelled in
    /// lower case, 1 for the condition's own.
    pub(crate) fn series(self) -> [(&'static str, f64); 3] {
        [
            ("true", one_if(self == Status::True)),
            ("false", one_if(self == Status::False)),
            ("unknown", one_if(self == Status::Unknown)),
        ]
    }
}

/// A condition: its type and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    pub(crate) kind: Box<str>,
    pub(crate) status: Status,
}

/// A Unix timestamp in seconds, as kube-state-metrics' `*_created` families.
pub(crate) fn unix_seconds(
    time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Option<i64> {
    time.map(|t| t.0.as_second())
}

/// An optional string field as Go's zero value would read it.
pub(crate) fn boxed(value: Option<&String>) -> Box<str> {
    value.map(String::as_str).unwrap_or_default().into()
}
