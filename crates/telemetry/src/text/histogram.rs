//! A histogram family's samples grouped into series, for rates and quantiles.

use std::collections::HashMap;

use super::{Family, Label, MetricType, parser::parse_float};

/// One series of a histogram family: its labels other than `le`, its buckets, `_sum` and
/// `_count`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram<'p, 'a> {
    /// The series' labels without `le`, in the order of its first line.
    pub labels: Vec<&'p Label<'a>>,
    /// The buckets sorted by `le` (the last is normally `+Inf`), as the page has them: counts
    /// are cumulative.
    pub buckets: Vec<Bucket>,
    /// The `_sum` sample's value, if the page has one.
    pub sum: Option<f64>,
    /// The `_count` sample's value, if the page has one.
    pub count: Option<f64>,
}

impl<'p> Histogram<'p, '_> {
    /// The value of the label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&'p str> {
        self.labels
            .iter()
            .find(|label| label.name == name)
            .map(|label| &*label.value)
    }
}

/// One bucket of a histogram series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// The bucket's upper bound, from its `le` label.
    pub le: f64,
    /// How many observations were at most `le`.
    pub count: f64,
}

/// Groups a histogram family's samples by series; see [`Family::histograms`].
pub(super) fn group<'p, 'a>(family: Family<'p, 'a>) -> Vec<Histogram<'p, 'a>> {
    if family.metric_type() != MetricType::Histogram {
        return Vec::new();
    }
    let name = family.name();
    let mut series: Vec<Histogram<'p, 'a>> = Vec::new();
    // Series by their labels sorted by name, for lines whose series is not the previous one's.
    let mut by_labels: HashMap<Vec<(&'a str, &'p str)>, usize> = HashMap::new();
    let mut previous: Option<usize> = None;
    for sample in family.samples() {
        let own = |label: &&Label<'_>| label.name != "le";
        let same_as_previous = previous
            .and_then(|index| series.get(index))
            .is_some_and(|h| {
                sample
                    .labels
                    .iter()
                    .filter(own)
                    .eq(h.labels.iter().copied())
            });
        let index = match previous {
            Some(index) if same_as_previous => index,
            _ => {
                let mut key: Vec<(&'a str, &'p str)> = sample
                    .labels
                    .iter()
                    .filter(own)
                    .map(|label| (label.name, &*label.value))
                    .collect();
                key.sort_unstable();
                *by_labels.entry(key).or_insert_with(|| {
                    series.push(Histogram {
                        labels: sample.labels.iter().filter(own).collect(),
                        buckets: Vec::new(),
                        sum: None,
                        count: None,
                    });
                    series.len() - 1
                })
            }
        };
        previous = Some(index);
        let Some(histogram) = series.get_mut(index) else {
            continue;
        };
        match sample.name.strip_prefix(name) {
            Some("_bucket") => {
                // The parser let in only buckets with a float `le`.
                if let Some(le) = sample.label("le").and_then(parse_float) {
                    histogram.buckets.push(Bucket {
                        le,
                        count: sample.value,
                    });
                }
            }
            Some("_sum") => histogram.sum = Some(sample.value),
            Some("_count") => histogram.count = Some(sample.value),
            _ => {}
        }
    }
    for histogram in &mut series {
        // Stable, and a no-op for pages that list buckets in order (all the Go clients do).
        histogram.buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
    }
    series
}
