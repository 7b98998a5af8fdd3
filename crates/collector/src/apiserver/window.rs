//! The sliding window: what each scrape kept of a page ([`Snapshot`]), and what the window's
//! snapshots say together ([`Derived`]): rates with counter resets handled as Prometheus'
//! `rate()` does, and histogram quantiles interpolated as `histogram_quantile()` does.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::signals::{Combine, Derive, SIGNALS, Signal};

/// A series' kept label values, in its signal's `by` order.
pub type Key = Vec<String>;

/// A series' value in one scrape.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    /// Cumulative bucket counts by upper bound (ascending, `+Inf` last), and the sum.
    Histogram {
        buckets: Vec<(f64, f64)>,
        sum: f64,
    },
}

/// What one scrape kept: per signal (indexed as [`SIGNALS`]), its series.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub series: Vec<BTreeMap<Key, Value>>,
}

/// A sample as the extraction sees it: full name, a label lookup and the value.
pub trait SampleView {
    fn name(&self) -> &str;
    fn label(&self, name: &str) -> Option<&str>;
    fn value(&self) -> f64;
}

impl SampleView for fleetwatch_telemetry::text::Sample<'_, '_> {
    fn name(&self) -> &str {
        self.name
    }
    fn label(&self, name: &str) -> Option<&str> {
        fleetwatch_telemetry::text::Sample::label(self, name)
    }
    fn value(&self) -> f64 {
        self.value
    }
}

impl Snapshot {
    /// Keeps what [`SIGNALS`] ask for of a page's samples, summing over dropped labels.
    pub fn of<S: SampleView>(at: Instant, samples: impl IntoIterator<Item = S>) -> Snapshot {
        let mut series: Vec<BTreeMap<Key, Value>> = vec![BTreeMap::new(); SIGNALS.len()];
        let index = SourceIndex::new();
        for sample in samples {
            let Some((signal_index, part)) = index.find(sample.name()) else {
                continue;
            };
            let signal = &SIGNALS[signal_index];
            let owned = |name: &str| sample.label(name).map(str::to_owned);
            if signal.skip.is_some_and(|skip| skip(&owned)) {
                continue;
            }
            let key: Key = signal
                .by
                .iter()
                .map(|l| sample.label(l).unwrap_or_default().to_owned())
                .collect();
            add(&mut series[signal_index], key, part, &sample);
        }
        Snapshot { at, series }
    }
}

/// Which part of a family a sample name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Value,
    Bucket,
    Sum,
}

/// Sample name → (signal, part), built once per snapshot from the table.
struct SourceIndex(BTreeMap<String, (usize, Part)>);

impl SourceIndex {
    fn new() -> Self {
        let mut names = BTreeMap::new();
        for (i, signal) in SIGNALS.iter().enumerate() {
            match signal.derive {
                Derive::Rate | Derive::Last => {
                    names.insert(signal.source.to_owned(), (i, Part::Value));
                }
                Derive::Quantiles => {
                    names.insert(format!("{}_bucket", signal.source), (i, Part::Bucket));
                    names.insert(format!("{}_sum", signal.source), (i, Part::Sum));
                }
                Derive::RateOfSum => {
                    names.insert(format!("{}_sum", signal.source), (i, Part::Value));
                }
            }
        }
        SourceIndex(names)
    }

    fn find(&self, name: &str) -> Option<(usize, Part)> {
        self.0.get(name).copied()
    }
}

fn add<S: SampleView>(series: &mut BTreeMap<Key, Value>, key: Key, part: Part, sample: &S) {
    let value = sample.value();
    match part {
        Part::Value => {
            let entry = series.entry(key).or_insert(Value::Scalar(0.0));
            if let Value::Scalar(total) = entry {
                *total += value;
            }
        }
        Part::Bucket | Part::Sum => {
            let entry = series.entry(key).or_insert(Value::Histogram {
                buckets: Vec::new(),
                sum: 0.0,
            });
            let Value::Histogram { buckets, sum } = entry else {
                return;
            };
            if part == Part::Sum {
                *sum += value;
                return;
            }
            let Some(le) = sample.label("le").and_then(parse_bound) else {
                return;
            };
            match buckets.binary_search_by(|(b, _)| b.total_cmp(&le)) {
                Ok(i) => buckets[i].1 += value,
                Err(i) => buckets.insert(i, (le, value)),
            }
        }
    }
}

fn parse_bound(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => le.parse().ok(),
    }
}

/// The snapshots of one replica within the window.
#[derive(Debug)]
pub struct Window {
    span: Duration,
    snapshots: VecDeque<Snapshot>,
}

impl Window {
    pub fn new(span: Duration) -> Window {
        Window {
            span,
            snapshots: VecDeque::new(),
        }
    }

    /// Adds a scrape; forgets those the window no longer needs (it keeps the newest one at or
    /// before its start, so a window always spans its full length once it has).
    pub fn push(&mut self, snapshot: Snapshot) {
        self.snapshots.push_back(snapshot);
        let newest = self.snapshots.back().map(|s| s.at);
        while let (Some(newest), Some(second)) = (newest, self.snapshots.get(1)) {
            if newest.duration_since(second.at) >= self.span {
                self.snapshots.pop_front();
            } else {
                break;
            }
        }
    }

    /// Forgets everything (the replica went away).
    pub fn clear(&mut self) {
        self.snapshots.clear();
    }

    /// What the window says, once it holds two scrapes.
    pub fn derive(&self) -> Option<Derived> {
        let (first, last) = (self.snapshots.front()?, self.snapshots.back()?);
        let seconds = last.at.duration_since(first.at).as_secs_f64();
        if self.snapshots.len() < 2 || seconds <= 0.0 {
            return None;
        }
        let signals = SIGNALS
            .iter()
            .enumerate()
            .map(|(i, signal)| self.derive_signal(i, signal, seconds))
            .collect();
        Some(Derived { signals })
    }

    fn derive_signal(&self, i: usize, signal: &Signal, seconds: f64) -> BTreeMap<Key, Value> {
        let last = &self.snapshots[self.snapshots.len() - 1].series[i];
        if signal.derive == Derive::Last {
            return last.clone();
        }
        let mut increases: BTreeMap<Key, Value> = BTreeMap::new();
        let pairs = self.snapshots.iter().zip(self.snapshots.iter().skip(1));
        for (older, newer) in pairs {
            for (key, new) in &newer.series[i] {
                let Some(old) = older.series[i].get(key) else {
                    continue;
                };
                let increase = increase(old, new);
                match increases.get_mut(key) {
                    Some(total) => accumulate(total, &increase),
                    None => {
                        increases.insert(key.clone(), increase);
                    }
                }
            }
        }
        if signal.derive != Derive::Quantiles {
            for value in increases.values_mut() {
                if let Value::Scalar(v) = value {
                    *v /= seconds;
                }
            }
        }
        increases
    }
}

/// `new - old`, or `new` where the counter went down (the process restarted).
fn increase(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Scalar(o), Value::Scalar(n)) => Value::Scalar(if n >= o { n - o } else { *n }),
        (
            Value::Histogram {
                buckets: ob,
                sum: os,
            },
            Value::Histogram {
                buckets: nb,
                sum: ns,
            },
        ) => {
            let count = |b: &[(f64, f64)]| b.last().map_or(0.0, |(_, c)| *c);
            if count(nb) < count(ob) || ob.len() != nb.len() {
                return new.clone();
            }
            let buckets = ob
                .iter()
                .zip(nb)
                .map(|((le, o), (_, n))| (*le, (n - o).max(0.0)))
                .collect();
            Value::Histogram {
                buckets,
                sum: ns - os,
            }
        }
        _ => new.clone(),
    }
}

/// Adds `more` into `total` (same kind, same buckets; a mismatch leaves `total` as it is).
pub fn accumulate(total: &mut Value, more: &Value) {
    match (total, more) {
        (Value::Scalar(t), Value::Scalar(m)) => *t += m,
        (
            Value::Histogram { buckets, sum },
            Value::Histogram {
                buckets: mb,
                sum: ms,
            },
        ) => {
            *sum += ms;
            for (le, count) in mb {
                match buckets.binary_search_by(|(b, _)| b.total_cmp(le)) {
                    Ok(i) => buckets[i].1 += count,
                    Err(i) => buckets.insert(i, (*le, *count)),
                }
            }
        }
        _ => {}
    }
}

/// What a window says: per signal, per series, a rate (per second), a last value, or the
/// window's bucket increases (for quantiles).
#[derive(Debug, Clone, Default)]
pub struct Derived {
    pub signals: Vec<BTreeMap<Key, Value>>,
}

impl Derived {
    /// The cluster's view: replicas added (or the largest taken, per signal).
    pub fn combine<'a>(replicas: impl IntoIterator<Item = &'a Derived>) -> Derived {
        let mut cluster = Derived {
            signals: vec![BTreeMap::new(); SIGNALS.len()],
        };
        for replica in replicas {
            for (i, series) in replica.signals.iter().enumerate() {
                for (key, value) in series {
                    match cluster.signals[i].get_mut(key) {
                        None => {
                            cluster.signals[i].insert(key.clone(), value.clone());
                        }
                        Some(total) => match (SIGNALS[i].combine, total, value) {
                            (Combine::Max, Value::Scalar(t), Value::Scalar(v)) => *t = t.max(*v),
                            (_, total, value) => accumulate(total, value),
                        },
                    }
                }
            }
        }
        cluster
    }
}

/// The `q` quantile of cumulative `buckets`, as Prometheus' `histogram_quantile()` computes it:
/// linear within the bucket the rank falls in; the highest finite bound if it falls in `+Inf`;
/// `None` with no observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last().map(|(_, c)| *c)?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let start = if lower.0 == 0.0 && le <= 0.0 {
                le
            } else {
                lower.0
            };
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(start + (le - start) * (rank - lower.1) / in_bucket);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sample(&'static str, Vec<(&'static str, &'static str)>, f64);

    impl SampleView for &Sample {
        fn name(&self) -> &str {
            self.0
        }
        fn label(&self, name: &str) -> Option<&str> {
            self.1.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        }
        fn value(&self) -> f64 {
            self.2
        }
    }

    fn index_of(name: &str) -> usize {
        SIGNALS
            .iter()
            .position(|s| s.name == name)
            .expect("a signal")
    }

    fn requests(get_200: f64, list_200: f64) -> Vec<Sample> {
        vec![
            Sample(
                "apiserver_request_total",
                vec![("verb", "GET"), ("code", "200"), ("resource", "pods")],
                get_200,
            ),
            Sample(
                "apiserver_request_total",
                vec![("verb", "GET"), ("code", "200"), ("resource", "nodes")],
                1.0,
            ),
            Sample(
                "apiserver_request_total",
                vec![("verb", "LIST"), ("code", "200"), ("resource", "pods")],
                list_200,
            ),
        ]
    }

    fn key(values: &[&str]) -> Key {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn rates_sum_over_dropped_labels_and_survive_a_restart() {
        let start = Instant::now();
        let mut window = Window::new(Duration::from_secs(300));
        for (t, get, list) in [(0, 10.0, 0.0), (30, 40.0, 6.0), (60, 5.0, 12.0)] {
            let samples = requests(get, list);
            window.push(Snapshot::of(start + Duration::from_secs(t), &samples));
        }
        let derived = window.derive().expect("two scrapes");
        let rates = &derived.signals[index_of("requests_per_second")];
        // GET (pods + nodes): 11 → 41 is +30; then the process restarted and every series
        // started again from zero, so all of the new 6 happened in the window: 36 over 60 s.
        assert_eq!(rates[&key(&["GET", "200"])], Value::Scalar(36.0 / 60.0));
        assert_eq!(rates[&key(&["LIST", "200"])], Value::Scalar(12.0 / 60.0));
    }

    #[test]
    fn the_window_forgets_what_it_no_longer_spans() {
        let start = Instant::now();
        let mut window = Window::new(Duration::from_secs(60));
        for t in [0, 30, 60, 90, 120] {
            let samples = requests(t as f64, 0.0);
            window.push(Snapshot::of(start + Duration::from_secs(t), &samples));
        }
        assert_eq!(window.snapshots.len(), 3, "120 s back to 60 s");
        let derived = window.derive().expect("derived");
        let rates = &derived.signals[index_of("requests_per_second")];
        assert_eq!(rates[&key(&["GET", "200"])], Value::Scalar(1.0));
    }

    fn histogram(buckets: &[(&'static str, f64)], sum: f64, verb: &'static str) -> Vec<Sample> {
        let labels = |le| vec![("verb", verb), ("scope", "cluster"), ("le", le)];
        let mut samples: Vec<Sample> = buckets
            .iter()
            .map(|(le, c)| Sample("apiserver_request_duration_seconds_bucket", labels(*le), *c))
            .collect();
        samples.push(Sample(
            "apiserver_request_duration_seconds_sum",
            vec![("verb", verb), ("scope", "cluster")],
            sum,
        ));
        samples
    }

    #[test]
    fn quantiles_come_from_the_windows_increase_and_skip_watches() {
        let start = Instant::now();
        let mut window = Window::new(Duration::from_secs(300));
        let before = [("0.1", 100.0), ("1", 100.0), ("+Inf", 100.0)];
        // In the window: 10 requests ≤ 0.1 s, 10 in (0.1, 1].
        let after = [("0.1", 110.0), ("1", 120.0), ("+Inf", 120.0)];
        let mut first = histogram(&before, 5.0, "LIST");
        first.extend(histogram(&before, 5.0, "WATCH"));
        let mut second = histogram(&after, 9.0, "LIST");
        second.extend(histogram(&after, 9.0, "WATCH"));
        window.push(Snapshot::of(start, &first));
        window.push(Snapshot::of(start + Duration::from_secs(30), &second));
        let derived = window.derive().expect("derived");
        let latency = &derived.signals[index_of("request_duration_seconds")];
        assert_eq!(latency.len(), 1, "WATCH is left out: {latency:?}");
        let Value::Histogram { buckets, .. } = &latency[&key(&["LIST", "cluster"])] else {
            panic!("a histogram");
        };
        assert_eq!(
            buckets,
            &vec![(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)]
        );
        assert_eq!(quantile(0.5, buckets), Some(0.1));
        let p99 = quantile(0.99, buckets).expect("p99");
        assert!((p99 - (0.1 + 0.9 * 9.8 / 10.0)).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn quantile_matches_histogram_quantile_at_the_edges() {
        assert_eq!(quantile(0.5, &[]), None);
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        // Everything above the highest bound: the highest finite bound.
        assert_eq!(
            quantile(0.9, &[(1.0, 0.0), (f64::INFINITY, 4.0)]),
            Some(1.0)
        );
        // The first bucket interpolates from zero.
        assert_eq!(
            quantile(0.5, &[(2.0, 4.0), (f64::INFINITY, 4.0)]),
            Some(1.0)
        );
    }

    #[test]
    fn the_cluster_adds_requests_and_takes_the_largest_object_count() {
        let objects = index_of("stored_objects");
        let rates = index_of("requests_per_second");
        let replica = |objects_seen: f64, rate: f64| {
            let mut derived = Derived {
                signals: vec![BTreeMap::new(); SIGNALS.len()],
            };
            derived.signals[objects].insert(key(&["pods"]), Value::Scalar(objects_seen));
            derived.signals[rates].insert(key(&["GET", "200"]), Value::Scalar(rate));
            derived
        };
        let (a, b) = (replica(900.0, 2.0), replica(1000.0, 3.0));
        let cluster = Derived::combine([&a, &b]);
        assert_eq!(
            cluster.signals[objects][&key(&["pods"])],
            Value::Scalar(1000.0)
        );
        assert_eq!(
            cluster.signals[rates][&key(&["GET", "200"])],
            Value::Scalar(5.0)
        );
    }
}
