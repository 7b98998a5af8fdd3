//! What every object-state family shares: its descriptor (name, HELP text as kube-state-metrics
//! writes it, TYPE), writing one family from one store, and condition statuses.
//!
//! Series are written straight from the stores onto the page with borrowed label values:
//! rendering allocates nothing per series. A family is written [`OBJECTS_PER_SLICE`] objects at
//! a time under the store's read lock, and the page is flushed between slices with the lock
//! let go: a watch event waits for one slice (about a millisecond), never for the scraper.

use std::ops::Deref;

use fleetwatch_client::{Informer, ObjectKey, Store};
use fleetwatch_telemetry::page::{Kind, Page, Samples};

/// Objects written under one hold of a store's lock. A choice, not a tuned value: at the
/// measured 773 ms for 60,000 pods' twenty-odd families (`--bench objects`), a slice of 1,000
/// pods takes about 0.6 ms, and a lock hold per slice costs nothing measurable beside it.
pub(crate) const OBJECTS_PER_SLICE: usize = 1000;

/// A store to read from: an informer's (behind its lock) or one filled by hand.
pub(crate) trait Source<T> {
    fn read(&self) -> impl Deref<Target = Store<T>> + '_;
}

impl<T> Source<T> for Informer<T> {
    fn read(&self) -> impl Deref<Target = Store<T>> + '_ {
        self.store()
    }
}

impl<T> Source<T> for Store<T> {
    fn read(&self) -> impl Deref<Target = Store<T>> + '_ {
        self
    }
}

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
    /// `source`, a slice at a time. Nothing at all for an empty store: kube-state-metrics
    /// writes a resource's HELP and TYPE lines only while it has objects of it.
    pub(crate) fn write<T>(
        &self,
        page: &mut Page<'_>,
        source: &impl Source<T>,
        mut write: impl FnMut(&mut Samples<'_, '_>, &ObjectKey, &T),
    ) {
        if source.read().is_empty() {
            return;
        }
        let mut samples = page.family(self.name, self.help, self.kind);
        let mut after: Option<ObjectKey> = None;
        loop {
            let store = source.read();
            let mut last = None;
            let mut written = 0;
            for (key, object) in store.iter_after(after.as_ref()).take(OBJECTS_PER_SLICE) {
                write(&mut samples, key, object);
                last = Some(key);
                written += 1;
            }
            // A full slice may have more after it; a short one was the end.
            let next = last.filter(|_| written == OBJECTS_PER_SLICE).cloned();
            drop(store);
            samples.flush();
            match next {
                Some(key) if !samples.is_closed() => after = Some(key),
                _ => return,
            }
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
