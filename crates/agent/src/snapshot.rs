//! A source's latest poll, served as it was taken: each poll builds its families afresh and
//! [`Latest::replace`] swaps them in, so a pod that went away leaves no stale series behind.
//! A node has at most a few hundred pods, so a snapshot is thousands of samples, not millions:
//! plain vectors are enough.

use std::sync::{Arc, PoisonError, RwLock};

use fleetwatch_telemetry::page::{Kind, LabelWriter, Labels, Page, Section};

/// One family of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The samples' name (a counter's ends in `_total`).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<(LabelSet, f64)>,
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample.
    pub fn push(&mut self, labels: LabelSet, value: f64) {
        self.samples.push((labels, value));
    }
}

/// A sample's labels, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet(pub Vec<(&'static str, String)>);

impl LabelSet {
    /// Labels from `(name, value)` pairs.
    pub fn of<const N: usize>(pairs: [(&'static str, &str); N]) -> LabelSet {
        LabelSet(pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect())
    }
}

impl Labels for LabelSet {
    fn write(&self, writer: &mut LabelWriter<'_>) {
        for (name, value) in &self.0 {
            writer.label(name, value);
        }
    }
}

/// The families of a source's last successful poll; a [`Section`] of the page.
#[derive(Debug, Clone, Default)]
pub struct Latest(Arc<RwLock<Arc<Vec<Family>>>>);

impl Latest {
    /// Serves `families` from now on, instead of the previous poll's.
    pub fn replace(&self, families: Vec<Family>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(families);
    }

    /// The families served now.
    pub fn current(&self) -> Arc<Vec<Family>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Section for Latest {
    fn write(&self, page: &mut Page<'_>) {
        for family in self.current().iter() {
            if family.samples.is_empty() {
                continue;
            }
            let mut samples = page.family(family.name, family.help, family.kind);
            for (labels, value) in &family.samples {
                samples.sample(labels, *value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fleetwatch_telemetry::exposition::Format;

    use super::*;

    fn page(latest: &Latest) -> String {
        let mut out = Vec::new();
        latest.write(&mut Page::new(&mut out, Format::Text));
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_new_poll_replaces_the_last_one_whole() {
        let latest = Latest::default();
        let mut family = Family::new("x_bytes", "X.", Kind::Gauge);
        family.push(LabelSet::of([("pod", "a")]), 1.0);
        family.push(LabelSet::of([("pod", "b")]), 2.5);
        latest.replace(vec![family.clone()]);
        assert_eq!(
            page(&latest),
            "# HELP x_bytes X.\n# TYPE x_bytes gauge\nx_bytes{pod=\"a\"} 1\nx_bytes{pod=\"b\"} 2.5\n"
        );
        family.samples.remove(0);
        latest.replace(vec![family, Family::new("empty", "E.", Kind::Gauge)]);
        let second = page(&latest);
        assert!(!second.contains("pod=\"a\""), "{second}");
        assert!(
            !second.contains("empty"),
            "an empty family is left out: {second}"
        );
    }
}
