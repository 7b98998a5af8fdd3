//! Fits the cost model's coefficients to load-lab measurements and writes them into a
//! calibration file.
//!
//! Input: one [`Measurement`] per load run, as `fleetwatch lab sweep` writes them (every client
//! pattern at every cluster size). Every run carries the same background — a probe's GETs, pod
//! churn, the API server's housekeeping — which the `idle` run at the same size measures, so the
//! fits work on *net* values: a run minus the idle run of its size (rates scaled to the run's
//! length). Output: [`Fitted`], the base calibration text with the fitted keys replaced (its
//! comments kept, a `# measured: …` line above each fitted key) and a report per coefficient.
//!
//! What is fitted, and from what (all counts net of idle):
//! - **API-server CPU**, by non-negative least squares over every non-idle run, each weighted
//!   by 1 / its total CPU (measurement noise grows with a run's CPU):
//!   `cpu = per_list·lists + per_object_from_cache·(listed − from_etcd)
//!   + per_object_from_etcd·from_etcd + per_watch_event·watch_events`.
//! - **Memory per object listed**: net peak RSS against (LISTs in flight) × (objects per LIST),
//!   through the origin, LISTs in flight by Little's law (`pod_list_seconds / seconds`).
//! - **Memory per cached object**: the slope of the idle runs' peak RSS against pods + nodes.
//! - **APF seats**: seats per LIST of the `naive-list` runs give the estimator's cap and, where
//!   some LISTs stay below it, objects per seat.
//!
//! A coefficient the runs cannot identify keeps its base value and is reported as not measured,
//! with the reason. Everything else in the file keeps its base value.
//!
//! Pure: no I/O. The CLI (`fleetwatch lab calibrate`) reads the CSV and writes the file.

use std::collections::BTreeMap;

use toml_edit::{DocumentMut, Item, Value};

use crate::calibration::Calibration;
use crate::error::SimError;

/// The pattern of the baseline runs (no agents: only the background).
pub const IDLE: &str = "idle";
/// The pattern whose LISTs the APF seat fit reads: every agent LISTs all pods.
pub const NAIVE_LIST: &str = "naive-list";

/// Significant digits of a fitted value in the written file: more would be false precision.
const SIGNIFICANT_DIGITS: usize = 3;

/// One load run: what it did and what it cost the API server. Counters are increases over the
/// run's `seconds`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Measurement {
    /// The client pattern; [`IDLE`] is the baseline without agents.
    pub pattern: String,
    pub nodes: usize,
    pub pods: usize,
    pub seconds: f64,
    pub apiserver_cpu_seconds: f64,
    pub apiserver_peak_rss_bytes: u64,
    /// Pod LISTs served, the pods they returned, and of those the pods read from etcd.
    pub pod_lists: u64,
    pub pods_listed: u64,
    pub pods_listed_from_etcd: u64,
    /// Seconds pod LISTs spent in the API server, summed.
    pub pod_list_seconds: f64,
    /// Watch events sent to watchers, all resources.
    pub watch_events_sent: u64,
    /// APF's estimated seats in the agents' priority level, summed, and the requests they were
    /// for (LISTs and everything else in that level, e.g. the probe's GETs).
    pub agent_level_seats: f64,
    pub agent_level_requests: u64,
    /// Requests the API server rejected with 429; in `naive-list` runs, the agents' LISTs
    /// (APF estimated their seats before rejecting them).
    pub throttled_429: u64,
}

/// The fitted calibration and how each coefficient came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The new calibration file: the base text with `source` and the measured keys replaced.
    pub toml: String,
    /// The same, parsed and validated.
    pub calibration: Calibration,
    /// Every coefficient the fits look at, measured or not.
    pub coefficients: Vec<Coefficient>,
}

/// One coefficient's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Coefficient {
    /// Dotted key in the calibration file, e.g. `api_server.cpu_seconds_per_list`.
    pub key: &'static str,
    /// Its value in the base calibration.
    pub base: f64,
    /// Runs the fit used.
    pub runs: usize,
    pub outcome: Outcome,
}

/// Whether a coefficient was measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Fitted; `value` is what the new file holds (rounded to three significant digits).
    Measured { value: f64, quality: Quality },
    /// Not identifiable from these runs: the file keeps the base value.
    NotMeasured { reason: String },
}

/// How well a fit matches its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// RMS of the fit's residuals over the RMS of what it fits (0.12 reads as ±12%). Shared by
    /// the coefficients of one fit.
    pub relative_rms: f64,
    /// Coefficient of determination of the fit, where it has one.
    pub r_squared: Option<f64>,
    /// This coefficient's standard error over its value, where the fit has more runs than
    /// unknowns.
    pub relative_standard_error: Option<f64>,
    /// A caveat that travels with the value into the file's comment.
    pub note: Option<&'static str>,
}

impl Coefficient {
    /// The value the new file holds: the measured one, or the base one.
    #[must_use]
    pub fn value(&self) -> f64 {
        match self.outcome {
            Outcome::Measured { value, .. } => value,
            Outcome::NotMeasured { .. } => self.base,
        }
    }
}

/// Why the measurements cannot be fitted at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("no measurements to fit")]
    NoMeasurements,
    #[error("run {index} ({pattern} at {nodes} nodes): {message}")]
    BadMeasurement {
        /// 0-based position in the input.
        index: usize,
        pattern: String,
        nodes: usize,
        message: String,
    },
    #[error(
        "no {IDLE} run at {} nodes, which the {} run(s) there need: every cost is taken net of \
         the background (probe, churn, housekeeping) that the {IDLE} run of the same cluster \
         size measures, so every size needs one",
        join(.nodes),
        .patterns.join(", ")
    )]
    MissingIdle {
        nodes: Vec<usize>,
        patterns: Vec<String>,
    },
    #[error("the base calibration: {0}")]
    Base(SimError),
    #[error("the fitted calibration does not validate (a bug in the fit): {0}")]
    Output(SimError),
}

/// Result alias for fitting.
pub type Result<T, E = FitError> = std::result::Result<T, E>;

fn join(values: &[usize]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fits the cost model to `measurements`, starting from the calibration file `base_toml`, and
/// returns the new file (with `source` set to `source`) and a report per coefficient.
///
/// # Errors
/// [`FitError::Base`] if `base_toml` is not a valid calibration, [`FitError::NoMeasurements`]
/// for no runs, [`FitError::BadMeasurement`] for a run with a negative, non-finite or
/// inconsistent value, [`FitError::MissingIdle`] when a cluster size has runs but no idle run.
pub fn fit(measurements: &[Measurement], base_toml: &str, source: &str) -> Result<Fitted> {
    let base = Calibration::parse("base calibration", base_toml).map_err(FitError::Base)?;
    if measurements.is_empty() {
        return Err(FitError::NoMeasurements);
    }
    for (index, run) in measurements.iter().enumerate() {
        check(run).map_err(|message| FitError::BadMeasurement {
            index,
            pattern: run.pattern.clone(),
            nodes: run.nodes,
            message,
        })?;
    }
    let baselines = baselines(measurements);
    let mut missing: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for run in measurements.iter().filter(|m| m.pattern != IDLE) {
        if !baselines.contains_key(&run.nodes) {
            let patterns = missing.entry(run.nodes).or_default();
            if !patterns.contains(&run.pattern) {
                patterns.push(run.pattern.clone());
            }
        }
    }
    if !missing.is_empty() {
        let mut patterns: Vec<String> = missing.values().flatten().cloned().collect();
        patterns.sort();
        patterns.dedup();
        return Err(FitError::MissingIdle {
            nodes: missing.into_keys().collect(),
            patterns,
        });
    }
    let net: Vec<Net> = measurements
        .iter()
        .filter(|m| m.pattern != IDLE)
        .map(|m| Net::new(m, &baselines[&m.nodes]))
        .collect();

    let mut coefficients = fit_cpu(&net, &base).to_vec();
    coefficients.push(fit_listed_memory(&net, &base));
    coefficients.push(fit_cached_memory(measurements, &base));
    coefficients.extend(fit_seats(measurements, &base));

    let toml = write_toml(base_toml, source, &coefficients)?;
    let calibration = Calibration::parse("fitted calibration", &toml).map_err(FitError::Output)?;
    Ok(Fitted {
        toml,
        calibration,
        coefficients,
    })
}

/// What makes a run unusable, if anything.
fn check(run: &Measurement) -> std::result::Result<(), String> {
    if !(run.seconds.is_finite() && run.seconds > 0.0) {
        return Err(format!("seconds must be positive, got {}", run.seconds));
    }
    if run.nodes == 0 {
        return Err("nodes must be positive".to_owned());
    }
    for (name, value) in [
        ("apiserver_cpu_seconds", run.apiserver_cpu_seconds),
        ("pod_list_seconds", run.pod_list_seconds),
        ("agent_level_seats", run.agent_level_seats),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!("{name} must be a non-negative number, got {value}"));
        }
    }
    if run.pods_listed_from_etcd > run.pods_listed {
        return Err(format!(
            "pods_listed_from_etcd ({}) exceeds pods_listed ({})",
            run.pods_listed_from_etcd, run.pods_listed
        ));
    }
    Ok(())
}

/// The background at one cluster size: the idle runs' counters per second, and their peak RSS.
#[derive(Debug, Clone, Default)]
struct Baseline {
    cpu: f64,
    lists: f64,
    listed: f64,
    from_etcd: f64,
    list_seconds: f64,
    events: f64,
    rss: f64,
}

/// Idle runs by node count, averaged where a size has several.
fn baselines(measurements: &[Measurement]) -> BTreeMap<usize, Baseline> {
    let mut sums: BTreeMap<usize, (Baseline, f64)> = BTreeMap::new();
    for m in measurements.iter().filter(|m| m.pattern == IDLE) {
        let (b, n) = sums.entry(m.nodes).or_default();
        let per_second = |v: f64| v / m.seconds;
        b.cpu += per_second(m.apiserver_cpu_seconds);
        b.lists += per_second(m.pod_lists as f64);
        b.listed += per_second(m.pods_listed as f64);
        b.from_etcd += per_second(m.pods_listed_from_etcd as f64);
        b.list_seconds += per_second(m.pod_list_seconds);
        b.events += per_second(m.watch_events_sent as f64);
        b.rss += m.apiserver_peak_rss_bytes as f64;
        *n += 1.0;
    }
    sums.into_iter()
        .map(|(nodes, (b, n))| {
            let mean = Baseline {
                cpu: b.cpu / n,
                lists: b.lists / n,
                listed: b.listed / n,
                from_etcd: b.from_etcd / n,
                list_seconds: b.list_seconds / n,
                events: b.events / n,
                rss: b.rss / n,
            };
            (nodes, mean)
        })
        .collect()
}

/// A non-idle run minus the background of its size.
#[derive(Debug, Clone)]
struct Net {
    seconds: f64,
    /// The run's own CPU, background included (sets its weight in the CPU fit).
    total_cpu: f64,
    cpu: f64,
    lists: f64,
    from_cache: f64,
    from_etcd: f64,
    list_seconds: f64,
    events: f64,
    /// Peak RSS above the idle run's peak (a level, not a rate: not scaled by time).
    rss: f64,
}

impl Net {
    fn new(m: &Measurement, idle: &Baseline) -> Self {
        let net = |value: f64, rate: f64| value - rate * m.seconds;
        let from_etcd = net(m.pods_listed_from_etcd as f64, idle.from_etcd);
        Net {
            seconds: m.seconds,
            total_cpu: m.apiserver_cpu_seconds,
            cpu: net(m.apiserver_cpu_seconds, idle.cpu),
            lists: net(m.pod_lists as f64, idle.lists),
            from_cache: net(m.pods_listed as f64, idle.listed) - from_etcd,
            from_etcd,
            list_seconds: net(m.pod_list_seconds, idle.list_seconds),
            events: net(m.watch_events_sent as f64, idle.events),
            rss: m.apiserver_peak_rss_bytes as f64 - idle.rss,
        }
    }
}

/// Less than one count net of idle in every run: the counter did not move.
const NOT_MOVED: f64 = 0.5;

/// A fitted coefficient whose standard error exceeds this share of its value is not identified
/// by the runs (it mostly absorbs noise): it keeps its base value.
const MAX_RELATIVE_STANDARD_ERROR: f64 = 0.5;

/// A single-variable fit explaining less of the variance than this is not a measurement.
const MIN_R_SQUARED: f64 = 0.5;

/// The CPU fit: non-negative least squares of net CPU on net lists, objects listed from the
/// watch cache and from etcd, and watch events, each run weighted by 1 / its total CPU.
fn fit_cpu(net: &[Net], base: &Calibration) -> [Coefficient; 4] {
    struct Column {
        key: &'static str,
        base: f64,
        counter: &'static str,
        hint: &'static str,
        x: Vec<f64>,
    }
    let a = &base.api_server;
    let column = |key, base, counter, hint, f: fn(&Net) -> f64| Column {
        key,
        base,
        counter,
        hint,
        x: net.iter().map(f).collect(),
    };
    let columns = [
        column(
            "api_server.cpu_seconds_per_list",
            a.cpu_seconds_per_list,
            "pod_lists",
            "",
            |n| n.lists,
        ),
        column(
            "api_server.cpu_seconds_per_object_listed_from_etcd",
            a.cpu_seconds_per_object_listed_from_etcd,
            "pods_listed_from_etcd",
            ": no pod LIST was served from etcd (recent kube-apiservers serve LISTs without a \
             resourceVersion from the watch cache)",
            |n| n.from_etcd,
        ),
        column(
            "api_server.cpu_seconds_per_object_listed_from_cache",
            a.cpu_seconds_per_object_listed_from_cache,
            "pods_listed − pods_listed_from_etcd",
            ": no pod LIST was served from the watch cache",
            |n| n.from_cache,
        ),
        column(
            "api_server.cpu_seconds_per_watch_event",
            a.cpu_seconds_per_watch_event,
            "watch_events_sent",
            "",
            |n| n.events,
        ),
    ];
    let runs = net.len();
    let y: Vec<f64> = net.iter().map(|n| n.cpu).collect();
    let mut reasons: [Option<String>; 4] = Default::default();
    for (c, reason) in columns.iter().zip(&mut reasons) {
        if runs == 0 {
            *reason = Some("no run besides idle".to_owned());
        } else if c.x.iter().all(|v| v.abs() < NOT_MOVED) {
            *reason = Some(format!(
                "`{}` is 0 net of idle in all {runs} runs, so they say nothing about its cost{}",
                c.counter, c.hint
            ));
        }
    }
    // Each run weighs by 1 / its total CPU: measurement noise grows with a run's CPU, so
    // unweighted, the noise of the largest runs would drown the small costs (an etcd-served
    // node-scoped LIST beside a cluster-wide one). Then each column is scaled to unit length:
    // their magnitudes differ by six orders (lists against objects).
    let weights: Vec<f64> = net.iter().map(|n| 1.0 / n.total_cpu.max(1e-3)).collect();
    let weighted = |v: &[f64]| -> Vec<f64> { v.iter().zip(&weights).map(|(v, w)| v * w).collect() };
    let weighted_columns: Vec<Vec<f64>> = columns.iter().map(|c| weighted(&c.x)).collect();
    let scales: Vec<f64> = weighted_columns.iter().map(|c| norm(c)).collect();
    let scaled: Vec<Vec<f64>> = weighted_columns
        .iter()
        .zip(&scales)
        .map(|(c, s)| c.iter().map(|v| v / s).collect())
        .collect();
    // A column that is a combination of the ones already in cannot be told apart from them.
    let mut free: Vec<usize> = Vec::new();
    for j in 0..columns.len() {
        if reasons[j].is_some() {
            continue;
        }
        if free.len() == runs {
            reasons[j] = Some(format!(
                "{runs} runs cannot separate more than {runs} costs"
            ));
            continue;
        }
        let mut trial: Vec<&[f64]> = free.iter().map(|&i| scaled[i].as_slice()).collect();
        trial.push(&scaled[j]);
        if qr(&trial, &y).is_some() {
            free.push(j);
        } else {
            let others: Vec<&str> = free.iter().map(|&i| columns[i].counter).collect();
            reasons[j] = Some(format!(
                "`{}` moves in step with `{}` across these {runs} runs, so their costs cannot \
                 be told apart",
                columns[j].counter,
                others.join("`, `")
            ));
        }
    }
    // Columns held at their base value contribute their base cost; the rest is fitted.
    let held: Vec<f64> = (0..runs)
        .map(|i| {
            (0..columns.len())
                .filter(|j| !free.contains(j))
                .map(|j| columns[j].base * columns[j].x[i])
                .sum()
        })
        .collect();
    let target: Vec<f64> = y.iter().zip(&held).map(|(y, h)| y - h).collect();
    let free_columns: Vec<Vec<f64>> = free.iter().map(|&j| scaled[j].clone()).collect();
    let solution = if free.is_empty() {
        Vec::new()
    } else {
        nnls(&free_columns, &weighted(&target))
    };
    // A coefficient at the bound 0 is below what these runs resolve: keep the base value (the
    // simulator needs some cost there), and leave the others as fitted with it at 0.
    for (&j, &x) in free.iter().zip(&solution) {
        if x <= 0.0 {
            reasons[j] = Some(format!(
                "the best non-negative fit puts it at 0 over these {runs} runs: its cost is \
                 below what they resolve"
            ));
        }
    }
    // Residuals in CPU seconds, for the report; weighted, for the standard errors.
    let residuals: Vec<f64> = (0..runs)
        .map(|i| {
            let fitted: f64 = free
                .iter()
                .zip(&solution)
                .map(|(&j, &x)| x / scales[j] * columns[j].x[i])
                .sum();
            target[i] - fitted
        })
        .collect();
    let in_fit: Vec<usize> = free
        .iter()
        .zip(&solution)
        .filter(|&(_, &x)| x > 0.0)
        .map(|(&j, _)| j)
        .collect();
    let errors = standard_errors(
        &in_fit
            .iter()
            .map(|&j| scaled[j].as_slice())
            .collect::<Vec<_>>(),
        &weighted(&residuals),
    );
    let relative_rms = relative_rms(&residuals, &y);
    let r_squared = r_squared(&residuals, &y);
    let counters = columns.each_ref().map(|c| c.counter);
    let mut out = columns.map(|c| Coefficient {
        key: c.key,
        base: c.base,
        runs,
        outcome: Outcome::NotMeasured {
            reason: String::new(),
        },
    });
    for (j, coefficient) in out.iter_mut().enumerate() {
        coefficient.outcome = match reasons[j].take() {
            Some(reason) => Outcome::NotMeasured { reason },
            None => {
                let position = free.iter().position(|&f| f == j).unwrap_or(0);
                let x = solution.get(position).copied().unwrap_or(0.0);
                let se = in_fit
                    .iter()
                    .position(|&f| f == j)
                    .and_then(|p| errors.as_ref().map(|e| e[p] / x));
                if let Some(se) = se.filter(|&se| se > MAX_RELATIVE_STANDARD_ERROR) {
                    coefficient.outcome = Outcome::NotMeasured {
                        reason: format!(
                            "the runs leave it uncertain (±{}% standard error over {runs} \
                             runs; few of them move `{}`)",
                            percent(se),
                            counters[j]
                        ),
                    };
                    continue;
                }
                measured(
                    x / scales[j],
                    Quality {
                        relative_rms,
                        r_squared,
                        relative_standard_error: se,
                        note: None,
                    },
                )
            }
        };
    }
    out
}

/// The memory a LIST holds per object, from runs that LIST pods: net peak RSS against the mean
/// number of LISTs in flight (Little's law: summed LIST seconds over the run's seconds) times
/// the objects per LIST, by least squares through the origin. The peak over a run set against
/// the mean in flight makes this an upper bound.
fn fit_listed_memory(net: &[Net], base: &Calibration) -> Coefficient {
    let key = "api_server.memory_bytes_per_object_listed";
    let base = base.api_server.memory_bytes_per_object_listed;
    let rows: Vec<(f64, f64)> = net
        .iter()
        .filter(|n| n.lists >= NOT_MOVED && n.from_cache + n.from_etcd > 0.0)
        .map(|n| {
            let in_flight = n.list_seconds.max(0.0) / n.seconds;
            let per_list = (n.from_cache + n.from_etcd) / n.lists;
            (in_flight * per_list, n.rss)
        })
        .collect();
    let runs = rows.len();
    let not_measured = |reason: String| Coefficient {
        key,
        base,
        runs,
        outcome: Outcome::NotMeasured { reason },
    };
    if rows.is_empty() {
        return not_measured("no run LISTed pods (net of idle)".to_owned());
    }
    let (x, y): (Vec<f64>, Vec<f64>) = rows.into_iter().unzip();
    let Some((slope, quality)) = slope_through_origin(&x, &y) else {
        return not_measured(format!(
            "the {runs} runs that LIST pods report no LIST time in flight (pod_list_seconds)"
        ));
    };
    if !(slope.is_finite() && slope > 0.0) {
        return not_measured(format!(
            "net peak RSS does not grow with the objects of LISTs in flight over these {runs} \
             runs (slope {})",
            sci(slope)
        ));
    }
    if let Some(r_squared) = quality.r_squared.filter(|&r2| r2 < MIN_R_SQUARED) {
        return not_measured(format!(
            "net peak RSS does not follow the objects of LISTs in flight over these {runs} runs \
             (R² {r_squared:.2}; the slope would be {} bytes per object)",
            sci(slope)
        ));
    }
    Coefficient {
        key,
        base,
        runs,
        outcome: measured(
            slope,
            Quality {
                note: Some("upper bound: peak RSS over mean LISTs in flight"),
                ..quality
            },
        ),
    }
}

/// Watch-cache memory per object: the slope of the idle runs' peak RSS against the objects the
/// cache holds (pods + nodes), by least squares with an intercept. (The simulator charges it
/// per pod; nodes add one object per pods-per-node pods.)
fn fit_cached_memory(measurements: &[Measurement], base: &Calibration) -> Coefficient {
    let key = "api_server.memory_bytes_per_cached_object";
    let base = base.api_server.memory_bytes_per_cached_object;
    let (x, y): (Vec<f64>, Vec<f64>) = measurements
        .iter()
        .filter(|m| m.pattern == IDLE)
        .map(|m| ((m.pods + m.nodes) as f64, m.apiserver_peak_rss_bytes as f64))
        .unzip();
    let runs = x.len();
    let mut sizes = x.clone();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let not_measured = |reason: String| Coefficient {
        key,
        base,
        runs,
        outcome: Outcome::NotMeasured { reason },
    };
    if sizes.len() < 2 {
        return not_measured(format!(
            "needs idle runs at two or more cluster sizes, found {}",
            sizes.len()
        ));
    }
    let Some((slope, quality)) = slope_with_intercept(&x, &y) else {
        return not_measured("the idle runs' sizes do not vary".to_owned());
    };
    if !(slope.is_finite() && slope > 0.0) {
        return not_measured(format!(
            "idle peak RSS does not grow with cluster size over these {runs} runs (slope {})",
            sci(slope)
        ));
    }
    Coefficient {
        key,
        base,
        runs,
        outcome: measured(
            slope,
            Quality {
                note: Some("idle peak RSS against pods + nodes"),
                ..quality
            },
        ),
    }
}

/// APF's seats per LIST, from the `naive-list` runs (their LISTs return every pod, and APF
/// charges a LIST by the objects it may return). Requests of the level other than pod LISTs
/// (the probe's GETs) take one seat each.
///
/// If every run's LISTs are large enough to hit the cap at the measured maximum, that maximum
/// is the cap and objects per seat cannot be seen. Otherwise objects per seat is fitted from
/// the runs between 2 seats and the maximum (the simulator's linear model `objects /
/// objects_per_list_seat`, fitted to APF's rounded-up seats), and the maximum is the cap only
/// if some run's LISTs clearly exceed it.
fn fit_seats(measurements: &[Measurement], base: &Calibration) -> [Coefficient; 2] {
    let ops_key = "apf.objects_per_list_seat";
    let max_key = "apf.max_seats_per_request";
    let base_ops = base.apf.objects_per_list_seat;
    let base_max = base.apf.max_seats_per_request;
    let rows: Vec<(f64, f64)> = measurements
        .iter()
        .filter(|m| m.pattern == NAIVE_LIST && m.pod_lists > 0)
        .map(|m| {
            // APF estimates a LIST's seats before it queues or rejects it, so rejected LISTs
            // count as LISTs here (each asked for every pod).
            let attempts = m.pod_lists + m.throttled_429;
            let others = m.agent_level_requests.saturating_sub(attempts) as f64;
            (
                m.pods_listed as f64 / m.pod_lists as f64,
                (m.agent_level_seats - others) / attempts as f64,
            )
        })
        .filter(|&(o, s)| o.is_finite() && s.is_finite() && s > 0.0)
        .collect();
    let coefficient = |key, base, runs, outcome| Coefficient {
        key,
        base,
        runs,
        outcome,
    };
    let not_measured = |reason: &str| Outcome::NotMeasured {
        reason: reason.to_owned(),
    };
    let runs = rows.len();
    let max_seats = rows.iter().map(|&(_, s)| s).fold(0.0, f64::max).round();
    if rows.is_empty() || max_seats < 1.0 {
        let reason = if rows.is_empty() {
            "no naive-list run with pod LISTs and APF seats in the agents' level"
        } else {
            "the naive-list runs' LISTs average under one APF seat"
        };
        return [
            coefficient(ops_key, base_ops, runs, not_measured(reason)),
            coefficient(max_key, base_max, runs, not_measured(reason)),
        ];
    }
    let (o_min, o_max) = rows
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &(o, _)| {
            (lo.min(o), hi.max(o))
        });
    let cap_quality = |capped: &[(f64, f64)], note| {
        let residuals: Vec<f64> = capped.iter().map(|&(_, s)| s - max_seats).collect();
        let values: Vec<f64> = capped.iter().map(|&(_, s)| s).collect();
        Quality {
            relative_rms: relative_rms(&residuals, &values),
            r_squared: None,
            relative_standard_error: None,
            note,
        }
    };
    if rows.iter().all(|&(o, _)| o >= base_ops * max_seats) {
        let reason = format!(
            "every naive-list run's LISTs ({:.0}–{:.0} objects) reach the cap ({max_seats} \
             seats at {} objects per seat), so seats do not show objects per seat; smaller \
             clusters would",
            o_min, o_max, base_ops
        );
        return [
            coefficient(ops_key, base_ops, runs, not_measured(&reason)),
            coefficient(
                max_key,
                base_max,
                runs,
                measured(
                    max_seats,
                    cap_quality(&rows, Some("every naive-list LIST at the cap")),
                ),
            ),
        ];
    }
    let between: Vec<(f64, f64)> = rows
        .iter()
        .copied()
        .filter(|&(_, s)| s.round() >= 2.0 && s.round() < max_seats)
        .collect();
    let ops = if between.is_empty() {
        coefficient(
            ops_key,
            base_ops,
            0,
            not_measured(&format!(
                "no naive-list run's LISTs got between 2 and {} seats, where seats grow with \
                 objects",
                max_seats - 1.0
            )),
        )
    } else {
        let (o, s): (Vec<f64>, Vec<f64>) = between.iter().copied().unzip();
        let outcome = match slope_through_origin(&o, &s) {
            Some((slope, quality)) if slope > 0.0 => {
                let mut quality = quality;
                // The standard error of 1/k relative to 1/k is that of k relative to k.
                quality.note = Some("seats per LIST against objects per LIST");
                measured(1.0 / slope, quality)
            }
            _ => not_measured("seats per LIST do not grow with objects per LIST"),
        };
        coefficient(ops_key, base_ops, between.len(), outcome)
    };
    let ops_used = ops.value();
    let capped: Vec<(f64, f64)> = rows
        .iter()
        .copied()
        .filter(|&(o, s)| s.round() >= max_seats && o / ops_used >= max_seats + 0.5)
        .collect();
    let max = if capped.is_empty() {
        let largest = rows
            .iter()
            .filter(|&&(_, s)| s.round() >= max_seats)
            .map(|&(o, _)| o)
            .fold(0.0, f64::max);
        coefficient(
            max_key,
            base_max,
            0,
            not_measured(&format!(
                "no naive-list run's LISTs clearly hit a cap: the most was {max_seats} seats \
                 for {largest:.0} objects, which {} objects per seat explain without one",
                sig(ops_used)
            )),
        )
    } else {
        coefficient(
            max_key,
            base_max,
            capped.len(),
            measured(max_seats, cap_quality(&capped, None)),
        )
    };
    [ops, max]
}

/// A measured outcome with `value` rounded for the file, or not measured if it is not a
/// positive finite number.
fn measured(value: f64, quality: Quality) -> Outcome {
    let rounded = sig(value);
    if rounded.is_finite() && rounded > 0.0 {
        Outcome::Measured {
            value: rounded,
            quality,
        }
    } else {
        Outcome::NotMeasured {
            reason: format!("the fit gave {value}, not a positive number"),
        }
    }
}

/// `value` rounded to [`SIGNIFICANT_DIGITS`] (through its decimal text: no binary residue).
fn sig(value: f64) -> f64 {
    format!("{value:.prec$e}", prec = SIGNIFICANT_DIGITS - 1)
        .parse()
        .unwrap_or(value)
}

/// `3.10e-06`: a value in scientific notation, three significant digits, as in the comments
/// this module writes.
#[must_use]
pub fn sci(value: f64) -> String {
    let text = format!("{value:.prec$e}", prec = SIGNIFICANT_DIGITS - 1);
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let exponent: i32 = exponent.parse().unwrap_or(0);
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.abs())
        }
        None => text,
    }
}

// --- Writing the file ---------------------------------------------------------------------

/// The prefix of the comment line this module writes above a fitted key.
const MEASURED: &str = "# measured:";

/// The base text with `source` and every measured key replaced, each measured key under a
/// `# measured:` comment (replacing an earlier one); everything else, comments included, as it
/// was.
fn write_toml(base_toml: &str, source: &str, coefficients: &[Coefficient]) -> Result<String> {
    let syntax = |message: String| FitError::Base(SimError::invalid("base calibration", message));
    let mut doc: DocumentMut = base_toml.parse().map_err(|e| syntax(format!("{e}")))?;
    replace_value(doc.as_table_mut(), "source", Value::from(source))
        .ok_or_else(|| syntax("no key `source`".to_owned()))?;
    for c in coefficients {
        let Outcome::Measured { value, quality } = &c.outcome else {
            continue;
        };
        let missing = || syntax(format!("no key `{}`", c.key));
        let (section, name) = c.key.split_once('.').ok_or_else(missing)?;
        let table = doc
            .as_table_mut()
            .get_mut(section)
            .and_then(Item::as_table_mut)
            .ok_or_else(missing)?;
        replace_value(table, name, float(*value)).ok_or_else(missing)?;
        let mut key = table.key_mut(name).ok_or_else(missing)?;
        let decor = key.leaf_decor_mut();
        let prefix = decor
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned();
        let mut kept: String = prefix
            .split_inclusive('\n')
            .filter(|line| !line.trim_start().starts_with(MEASURED))
            .collect();
        // A prefix ends in the key's indentation (after its last newline): the comment goes
        // on a line of its own just above the key.
        let indent_at = kept.rfind('\n').map_or(0, |i| i + 1);
        let indent = kept.split_off(indent_at);
        kept += &measured_comment(*value, quality, c.runs);
        kept.push('\n');
        kept += &indent;
        decor.set_prefix(kept);
    }
    Ok(doc.to_string())
}

/// A TOML float written as people write them: `8.03e-6` rather than `0.00000803`.
fn float(value: f64) -> Value {
    let magnitude = value.abs();
    let text = if magnitude != 0.0 && !(1e-3..1e7).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value:?}")
    };
    text.parse().unwrap_or_else(|_| Value::from(value))
}

/// Replaces the value of `name` in `table`, keeping the whitespace and comment around it.
fn replace_value(table: &mut toml_edit::Table, name: &str, mut value: Value) -> Option<()> {
    let old = table.get_mut(name)?.as_value_mut()?;
    *value.decor_mut() = old.decor().clone();
    *old = value;
    Some(())
}

/// `# measured: 3.10e-06 ±12% rms residual (14 runs)`, plus the fit's caveat.
fn measured_comment(value: f64, quality: &Quality, runs: usize) -> String {
    let plural = if runs == 1 { "" } else { "s" };
    let mut text = format!(
        "{MEASURED} {} ±{}% rms residual ({runs} run{plural})",
        sci(value),
        percent(quality.relative_rms)
    );
    if let Some(note) = quality.note {
        text += "; ";
        text += note;
    }
    text
}

/// A fraction as a percentage for people: `0.123` → `12`, `0.0042` → `0.4`.
#[must_use]
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if !p.is_finite() {
        "?".to_owned()
    } else if p < 1.0 {
        format!("{p:.1}")
    } else {
        format!("{p:.0}")
    }
}

// --- Least squares ------------------------------------------------------------------------

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `‖residuals‖ / ‖values‖`: the RMS of the residuals over the RMS of what was fitted.
fn relative_rms(residuals: &[f64], values: &[f64]) -> f64 {
    let (r, v) = (norm(residuals), norm(values));
    if r == 0.0 {
        0.0
    } else if v > 0.0 {
        r / v
    } else {
        f64::INFINITY
    }
}

/// `1 − SS_res / SS_tot` (about the mean), for two or more values that vary.
fn r_squared(residuals: &[f64], values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let total: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    (total > 0.0).then(|| 1.0 - dot(residuals, residuals) / total)
}

/// Least squares `y ≈ k·x`: `k` and the fit's quality, or `None` if every `x` is 0.
fn slope_through_origin(x: &[f64], y: &[f64]) -> Option<(f64, Quality)> {
    let xx = dot(x, x);
    if !(xx.is_finite() && xx > 0.0) {
        return None;
    }
    let k = dot(x, y) / xx;
    let residuals: Vec<f64> = x.iter().zip(y).map(|(x, y)| y - k * x).collect();
    let dof = x.len().saturating_sub(1);
    let se = (dof > 0 && k != 0.0)
        .then(|| (dot(&residuals, &residuals) / dof as f64 / xx).sqrt() / k.abs());
    Some((
        k,
        Quality {
            relative_rms: relative_rms(&residuals, y),
            r_squared: r_squared(&residuals, y),
            relative_standard_error: se,
            note: None,
        },
    ))
}

/// Least squares `y ≈ a + k·x`: `k` and the fit's quality, or `None` unless `x` varies.
fn slope_with_intercept(x: &[f64], y: &[f64]) -> Option<(f64, Quality)> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|x| (x - mx).powi(2)).sum();
    if !(sxx.is_finite() && sxx > 0.0) {
        return None;
    }
    let k = x
        .iter()
        .zip(y)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / sxx;
    let a = my - k * mx;
    let residuals: Vec<f64> = x.iter().zip(y).map(|(x, y)| y - a - k * x).collect();
    let dof = x.len().saturating_sub(2);
    let se = (dof > 0 && k != 0.0)
        .then(|| (dot(&residuals, &residuals) / dof as f64 / sxx).sqrt() / k.abs());
    Some((
        k,
        Quality {
            relative_rms: relative_rms(&residuals, y),
            r_squared: r_squared(&residuals, y),
            relative_standard_error: se,
            note: None,
        },
    ))
}

/// Householder QR of the columns `a` (each as long as `b`), applied to `b` as well: returns the
/// upper-triangular `R` (row-major) and the first `a.len()` entries of `Qᵀb`, or `None` when a
/// column is, to rounding, a combination of the ones before it (or there are more columns than
/// rows).
fn qr(a: &[&[f64]], b: &[f64]) -> Option<(Vec<Vec<f64>>, Vec<f64>)> {
    let (k, m) = (a.len(), b.len());
    if k > m {
        return None;
    }
    let mut w: Vec<Vec<f64>> = a.iter().map(|c| c.to_vec()).collect();
    let mut qb = b.to_vec();
    for j in 0..k {
        let original = norm(a[j]);
        let length = norm(&w[j][j..]);
        if !(original > 0.0 && length > 1e-9 * original) {
            return None;
        }
        let alpha = if w[j][j] > 0.0 { -length } else { length };
        let mut v = w[j][j..].to_vec();
        v[0] -= alpha;
        let vv = dot(&v, &v);
        let reflect = |target: &mut [f64]| {
            let f = 2.0 * dot(&v, target) / vv;
            for (t, vi) in target.iter_mut().zip(&v) {
                *t -= f * vi;
            }
        };
        for column in &mut w[j..] {
            reflect(&mut column[j..]);
        }
        reflect(&mut qb[j..]);
    }
    let r = (0..k)
        .map(|row| {
            (0..k)
                .map(|col| if col >= row { w[col][row] } else { 0.0 })
                .collect()
        })
        .collect();
    qb.truncate(k);
    Some((r, qb))
}

/// Solves `R x = y` for upper-triangular `R`.
fn back_substitute(r: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let k = y.len();
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let known: f64 = (i + 1..k).map(|j| r[i][j] * x[j]).sum();
        x[i] = (y[i] - known) / r[i][i];
    }
    x
}

/// Least squares `min ‖A x − b‖` over the columns `a`, or `None` if they are dependent.
fn lstsq(a: &[&[f64]], b: &[f64]) -> Option<Vec<f64>> {
    let (r, qb) = qr(a, b)?;
    Some(back_substitute(&r, &qb))
}

/// Standard errors of a least-squares fit over the columns `a` with these residuals:
/// `sqrt(σ² · diag((AᵀA)⁻¹))`, `σ² = ‖r‖² / (m − k)`; `None` without spare runs.
fn standard_errors(a: &[&[f64]], residuals: &[f64]) -> Option<Vec<f64>> {
    let (k, m) = (a.len(), residuals.len());
    if k == 0 || m <= k {
        return None;
    }
    let (r, _) = qr(a, residuals)?;
    let sigma2 = dot(residuals, residuals) / (m - k) as f64;
    // (AᵀA)⁻¹ = R⁻¹ R⁻ᵀ: its diagonal is the squared row norms of R⁻¹.
    let columns: Vec<Vec<f64>> = (0..k)
        .map(|c| {
            let unit: Vec<f64> = (0..k).map(|i| if i == c { 1.0 } else { 0.0 }).collect();
            back_substitute(&r, &unit)
        })
        .collect();
    Some(
        (0..k)
            .map(|i| (sigma2 * columns.iter().map(|c| c[i] * c[i]).sum::<f64>()).sqrt())
            .collect(),
    )
}

/// Non-negative least squares, `min ‖A x − b‖` subject to `x ≥ 0`, over the columns `a`
/// (Lawson & Hanson's active-set method, *Solving Least Squares Problems*, 1974, ch. 23).
///
/// Hand-written rather than a dependency: the CPU fit has at most four unknowns, and a linear
/// algebra crate plus an NNLS crate on top would outweigh these lines in a crate that otherwise
/// needs neither. The columns must be independent (the caller checks).
fn nnls(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let k = a.len();
    let mut x = vec![0.0; k];
    let mut passive = vec![false; k];
    let tolerance = 1e-12 * norm(b).max(f64::MIN_POSITIVE);
    let residual = |x: &[f64]| -> Vec<f64> {
        (0..b.len())
            .map(|i| b[i] - (0..k).map(|j| a[j][i] * x[j]).sum::<f64>())
            .collect()
    };
    // Each outer step frees one coefficient; the bound only guards against rounding cycles.
    for _ in 0..3 * k + 3 {
        let r = residual(&x);
        let gradient: Vec<f64> = a.iter().map(|column| dot(column, &r)).collect();
        let Some(t) = (0..k)
            .filter(|&j| !passive[j] && gradient[j] > tolerance)
            .max_by(|&i, &j| gradient[i].total_cmp(&gradient[j]))
        else {
            break;
        };
        passive[t] = true;
        for _ in 0..=k {
            let p: Vec<usize> = (0..k).filter(|&j| passive[j]).collect();
            let columns: Vec<&[f64]> = p.iter().map(|&j| a[j].as_slice()).collect();
            let Some(solution) = lstsq(&columns, b) else {
                passive[t] = false;
                return x;
            };
            let mut s = vec![0.0; k];
            for (&j, v) in p.iter().zip(solution) {
                s[j] = v;
            }
            if p.iter().all(|&j| s[j] > 0.0) {
                x = s;
                break;
            }
            // Step from x towards s until the first coefficient reaches 0, and drop it.
            let alpha = p
                .iter()
                .filter(|&&j| s[j] <= 0.0)
                .map(|&j| x[j] / (x[j] - s[j]))
                .fold(1.0, f64::min);
            for j in 0..k {
                x[j] += alpha * (s[j] - x[j]);
            }
            for &j in &p {
                if x[j] <= 1e-15 * norm(&x).max(f64::MIN_POSITIVE) {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::DEFAULT_TOML;
    use crate::rng;
    use proptest::prelude::*;

    /// The costs a synthetic API server charges.
    #[derive(Debug, Clone, Copy)]
    struct Truth {
        per_list: f64,
        per_object_from_cache: f64,
        per_object_from_etcd: f64,
        per_watch_event: f64,
        bytes_per_object_listed: f64,
        bytes_per_cached_object: f64,
        objects_per_seat: f64,
        max_seats: f64,
    }

    impl Default for Truth {
        fn default() -> Self {
            Truth {
                per_list: 2e-3,
                per_object_from_cache: 4e-6,
                per_object_from_etcd: 15e-6,
                per_watch_event: 8e-6,
                bytes_per_object_listed: 30_000.0,
                bytes_per_cached_object: 6_000.0,
                objects_per_seat: 100.0,
                max_seats: 10.0,
            }
        }
    }

    /// How the synthetic sweep runs.
    #[derive(Debug, Clone)]
    struct Sweep {
        sizes: Vec<usize>,
        pods_per_node: usize,
        /// Whether the node-scoped LISTs read etcd (else every LIST is served from the cache).
        node_lists_from_etcd: bool,
        /// Relative noise on CPU and RSS, uniform in ±noise.
        noise: f64,
        seed: u64,
    }

    impl Default for Sweep {
        fn default() -> Self {
            Sweep {
                sizes: vec![50, 100, 200, 500, 1000],
                pods_per_node: 30,
                node_lists_from_etcd: false,
                noise: 0.0,
                seed: 1,
            }
        }
    }

    /// The rows a sweep would measure on an API server that charges `t`.
    fn synthetic(t: &Truth, sweep: &Sweep) -> Vec<Measurement> {
        let mut rng = rng::stream(sweep.seed, 0);
        let mut jitter = move || 1.0 + rng::uniform(&mut rng, -sweep.noise, sweep.noise);
        let seconds = 60.0;
        let mut rows = Vec::new();
        for &nodes in &sweep.sizes {
            let ppn = sweep.pods_per_node;
            let pods = nodes * ppn;
            let (n, p) = (nodes as f64, pods as f64);
            let probe = 10.0 * seconds;
            let churn_events = 2.0 * seconds * 3.0;
            let background_cpu = 0.002 * n * seconds / 60.0 + probe * 1e-3;
            let idle_rss = 3e8 + t.bytes_per_cached_object * (p + n);
            for pattern in [
                IDLE,
                NAIVE_LIST,
                "naive-list-node",
                "watch-all",
                "watch-node",
                "fleetwatch",
            ] {
                // (lists, objects per list, from etcd, watch events) the agents cause.
                let events_per_pod = 0.01 * seconds;
                let (lists, per_list, etcd, events) = match pattern {
                    NAIVE_LIST => (n * seconds / 10.0, p, false, 0.0),
                    "naive-list-node" => (
                        n * seconds / 10.0,
                        ppn as f64,
                        sweep.node_lists_from_etcd,
                        0.0,
                    ),
                    "watch-all" => (n, p, false, n * p * events_per_pod),
                    "watch-node" => (n, ppn as f64, false, p * events_per_pod),
                    "fleetwatch" => (1.0, p, false, p * events_per_pod),
                    _ => (0.0, 0.0, false, 0.0),
                };
                let listed = lists * per_list;
                let from_etcd = if etcd { listed } else { 0.0 };
                let list_seconds = lists * (0.001 + per_list * 2e-6);
                let in_flight = list_seconds / seconds;
                let cpu = background_cpu
                    + t.per_list * lists
                    + t.per_object_from_cache * (listed - from_etcd)
                    + t.per_object_from_etcd * from_etcd
                    + t.per_watch_event * (events + churn_events);
                let rss = idle_rss + t.bytes_per_object_listed * in_flight * per_list;
                let seats_per_list = if pattern == NAIVE_LIST {
                    (per_list / t.objects_per_seat)
                        .ceil()
                        .clamp(1.0, t.max_seats)
                } else {
                    t.max_seats
                };
                rows.push(Measurement {
                    pattern: pattern.to_owned(),
                    nodes,
                    pods,
                    seconds,
                    apiserver_cpu_seconds: cpu * jitter(),
                    apiserver_peak_rss_bytes: (rss * jitter()).round() as u64,
                    pod_lists: lists.round() as u64,
                    pods_listed: listed.round() as u64,
                    pods_listed_from_etcd: from_etcd.round() as u64,
                    pod_list_seconds: list_seconds,
                    watch_events_sent: (events + churn_events).round() as u64,
                    agent_level_seats: probe + lists * seats_per_list,
                    agent_level_requests: (probe + lists).round() as u64,
                    throttled_429: 0,
                });
            }
        }
        rows
    }

    fn coefficient<'a>(fitted: &'a Fitted, key: &str) -> &'a Coefficient {
        fitted
            .coefficients
            .iter()
            .find(|c| c.key == key)
            .unwrap_or_else(|| panic!("no coefficient {key}"))
    }

    fn measured_value(fitted: &Fitted, key: &str) -> f64 {
        match &coefficient(fitted, key).outcome {
            Outcome::Measured { value, .. } => *value,
            Outcome::NotMeasured { reason } => panic!("{key} not measured: {reason}"),
        }
    }

    fn assert_close(fitted: &Fitted, key: &str, truth: f64, tolerance: f64) {
        let value = measured_value(fitted, key);
        assert!(
            ((value - truth) / truth).abs() <= tolerance,
            "{key}: fitted {value}, truth {truth} (tolerance {tolerance})\n{:#?}",
            fitted.coefficients
        );
    }

    #[test]
    fn recovers_known_coefficients_from_a_noiseless_sweep() {
        let truth = Truth::default();
        let sweep = Sweep {
            node_lists_from_etcd: true,
            ..Sweep::default()
        };
        let fitted = fit(&synthetic(&truth, &sweep), DEFAULT_TOML, "test").expect("fit");
        // Exact data: only the rounding to three digits (and of counts to integers) remains.
        let tolerance = 0.01;
        assert_close(
            &fitted,
            "api_server.cpu_seconds_per_list",
            truth.per_list,
            tolerance,
        );
        assert_close(
            &fitted,
            "api_server.cpu_seconds_per_object_listed_from_cache",
            truth.per_object_from_cache,
            tolerance,
        );
        assert_close(
            &fitted,
            "api_server.cpu_seconds_per_object_listed_from_etcd",
            truth.per_object_from_etcd,
            tolerance,
        );
        assert_close(
            &fitted,
            "api_server.cpu_seconds_per_watch_event",
            truth.per_watch_event,
            tolerance,
        );
        assert_close(
            &fitted,
            "api_server.memory_bytes_per_object_listed",
            truth.bytes_per_object_listed,
            tolerance,
        );
        assert_close(
            &fitted,
            "api_server.memory_bytes_per_cached_object",
            truth.bytes_per_cached_object,
            tolerance,
        );
        assert_close(&fitted, "apf.max_seats_per_request", truth.max_seats, 0.0);
        let cal = &fitted.calibration;
        assert_eq!(
            cal.api_server.cpu_seconds_per_list,
            measured_value(&fitted, "api_server.cpu_seconds_per_list")
        );
        assert_eq!(cal.apf.max_seats_per_request, truth.max_seats);
        let Outcome::Measured { quality, .. } =
            &coefficient(&fitted, "api_server.cpu_seconds_per_list").outcome
        else {
            unreachable!("checked above")
        };
        assert!(quality.relative_rms < 1e-3, "{quality:?}");
        assert!(
            quality.r_squared.is_some_and(|r2| r2 > 0.999),
            "{quality:?}"
        );
    }

    #[test]
    fn a_counter_that_never_moves_is_not_measured_and_keeps_the_base_value() {
        let base = Calibration::default();
        // kube-apiserver 1.37 serves every LIST from the watch cache: no etcd-served objects.
        let fitted = fit(
            &synthetic(&Truth::default(), &Sweep::default()),
            DEFAULT_TOML,
            "test",
        )
        .expect("fit");
        let etcd = coefficient(
            &fitted,
            "api_server.cpu_seconds_per_object_listed_from_etcd",
        );
        match &etcd.outcome {
            Outcome::NotMeasured { reason } => {
                assert!(reason.contains("pods_listed_from_etcd"), "{reason}");
                assert!(
                    reason.contains("is 0 net of idle in all 25 runs"),
                    "{reason}"
                );
            }
            Outcome::Measured { .. } => panic!("etcd cost fitted from no etcd LIST: {etcd:?}"),
        }
        assert_eq!(
            etcd.value(),
            base.api_server.cpu_seconds_per_object_listed_from_etcd
        );
        assert_eq!(
            fitted
                .calibration
                .api_server
                .cpu_seconds_per_object_listed_from_etcd,
            base.api_server.cpu_seconds_per_object_listed_from_etcd
        );
        // The other CPU coefficients are still recovered without it.
        assert_close(
            &fitted,
            "api_server.cpu_seconds_per_object_listed_from_cache",
            Truth::default().per_object_from_cache,
            0.01,
        );
        // Large clusters: every naive-list LIST hits the cap, objects per seat is invisible.
        let ops = coefficient(&fitted, "apf.objects_per_list_seat");
        assert!(
            matches!(&ops.outcome, Outcome::NotMeasured { reason } if reason.contains("cap")),
            "{ops:?}"
        );
        assert_eq!(fitted.calibration.apf.objects_per_list_seat, 100.0);
        assert!(!fitted.toml.contains("# measured: 1.00e+02"));
    }

    #[test]
    fn small_clusters_show_objects_per_seat_and_the_cap() {
        let truth = Truth {
            objects_per_seat: 120.0,
            max_seats: 8.0,
            ..Truth::default()
        };
        let sweep = Sweep {
            sizes: vec![5, 10, 15, 20, 40, 80],
            ..Sweep::default()
        };
        let fitted = fit(&synthetic(&truth, &sweep), DEFAULT_TOML, "test").expect("fit");
        // APF rounds seats up; the simulator's model is linear: within one seat's worth.
        assert_close(&fitted, "apf.objects_per_list_seat", 120.0, 0.15);
        assert_close(&fitted, "apf.max_seats_per_request", 8.0, 0.0);
    }

    #[test]
    fn rejected_lists_count_with_the_seats_apf_estimated_for_them() {
        let truth = Truth {
            max_seats: 8.0,
            ..Truth::default()
        };
        let mut runs = synthetic(&truth, &Sweep::default());
        for run in runs.iter_mut().filter(|m| m.pattern == NAIVE_LIST) {
            // 200 more LISTs, estimated at the cap, then rejected with 429.
            run.throttled_429 = 200;
            run.agent_level_requests += 200;
            run.agent_level_seats += 200.0 * truth.max_seats;
        }
        let fitted = fit(&runs, DEFAULT_TOML, "test").expect("fit");
        assert_close(&fitted, "apf.max_seats_per_request", 8.0, 0.0);
    }

    #[test]
    fn without_a_capped_list_the_cap_is_not_measured() {
        let sweep = Sweep {
            sizes: vec![5, 10, 20],
            ..Sweep::default()
        };
        let fitted = fit(&synthetic(&Truth::default(), &sweep), DEFAULT_TOML, "test").expect("fit");
        let max = coefficient(&fitted, "apf.max_seats_per_request");
        let clearly = "no naive-list run's LISTs clearly hit a cap";
        assert!(
            matches!(&max.outcome, Outcome::NotMeasured { reason } if reason.contains(clearly)),
            "{max:?}"
        );
        assert_eq!(fitted.calibration.apf.max_seats_per_request, max.base);
        assert!(matches!(
            coefficient(&fitted, "apf.objects_per_list_seat").outcome,
            Outcome::Measured { .. }
        ));
    }

    #[test]
    fn missing_idle_runs_are_a_clear_error() {
        let mut rows = synthetic(&Truth::default(), &Sweep::default());
        rows.retain(|m| !(m.pattern == IDLE && (m.nodes == 200 || m.nodes == 1000)));
        let err = fit(&rows, DEFAULT_TOML, "test").expect_err("no idle at 200 and 1000");
        assert!(
            matches!(&err, FitError::MissingIdle { nodes, .. } if nodes == &[200, 1000]),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("no idle run at 200, 1000 nodes, which the fleetwatch, naive-list"),
            "{message}"
        );
        assert!(message.contains("every size needs one"), "{message}");

        let only_agents: Vec<Measurement> =
            rows.into_iter().filter(|m| m.pattern != IDLE).collect();
        assert!(matches!(
            fit(&only_agents, DEFAULT_TOML, "test"),
            Err(FitError::MissingIdle { .. })
        ));
        assert_eq!(fit(&[], DEFAULT_TOML, "t"), Err(FitError::NoMeasurements));
    }

    #[test]
    fn bad_values_and_a_bad_base_are_errors_not_panics() {
        let mut rows = synthetic(&Truth::default(), &Sweep::default());
        rows[3].apiserver_cpu_seconds = f64::NAN;
        let err = fit(&rows, DEFAULT_TOML, "t").expect_err("NaN CPU");
        assert!(
            matches!(&err, FitError::BadMeasurement { index: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("apiserver_cpu_seconds"), "{err}");
        rows[3].apiserver_cpu_seconds = 1.0;
        rows[4].seconds = 0.0;
        assert!(matches!(
            fit(&rows, DEFAULT_TOML, "t"),
            Err(FitError::BadMeasurement { index: 4, .. })
        ));
        assert!(matches!(
            fit(&rows, "format_version = 1", "t"),
            Err(FitError::Base(_))
        ));
    }

    #[test]
    fn output_round_trips_and_keeps_the_base_files_comments() {
        let source = "measured by a test on 2026-01-02 (\"quoted\", `ticks`)";
        let rows = synthetic(&Truth::default(), &Sweep::default());
        let fitted = fit(&rows, DEFAULT_TOML, source).expect("fit");
        let parsed = Calibration::parse("out", &fitted.toml).expect("output parses");
        assert_eq!(parsed, fitted.calibration);
        assert_eq!(parsed.source, source);
        // (A base's own `# measured:` lines are replaced where the key is fitted again.)
        for line in DEFAULT_TOML
            .lines()
            .filter(|l| l.trim_start().starts_with('#') && !l.starts_with(MEASURED))
        {
            assert!(fitted.toml.contains(line), "lost comment line {line:?}");
        }
        // Every measured key has its comment right above it, and holds the reported value.
        let lines: Vec<&str> = fitted.toml.lines().collect();
        let mut measured_keys = 0;
        for c in &fitted.coefficients {
            let name = c.key.split_once('.').map_or(c.key, |(_, n)| n);
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("{name} =")))
                .expect("key in output");
            let above_is_measured = lines[at - 1].starts_with(MEASURED);
            assert_eq!(
                above_is_measured,
                matches!(c.outcome, Outcome::Measured { .. }),
                "{}: {:?}",
                c.key,
                lines[at - 1]
            );
            measured_keys += usize::from(above_is_measured);
        }
        assert!(measured_keys >= 5, "{measured_keys}");
        assert!(
            fitted.toml.contains("# measured: 4.00e-06 ±"),
            "{}",
            fitted.toml
        );
        assert!(fitted.toml.contains("upper bound"));
        // Fitting again on the output replaces the measured comments instead of stacking them.
        let again = fit(&rows, &fitted.toml, source).expect("refit");
        assert_eq!(again.toml, fitted.toml);
        assert_eq!(
            again.toml.matches(MEASURED).count(),
            measured_keys,
            "{}",
            again.toml
        );
    }

    #[test]
    fn nnls_clamps_a_coefficient_the_data_wants_negative() {
        // b = 2·a0 − 1·a1 + tiny: the unconstrained fit has x1 < 0; NNLS sets it to 0 and
        // refits x0 alone.
        let a0 = vec![1.0, 0.0, 1.0, 1.0];
        let a1 = vec![0.0, 1.0, 1.0, 0.0];
        let b: Vec<f64> = a0.iter().zip(&a1).map(|(x, y)| 2.0 * x - y).collect();
        let x = nnls(&[a0.clone(), a1], &b);
        assert_eq!(x[1], 0.0);
        let expected = dot(&a0, &b) / dot(&a0, &a0);
        assert!((x[0] - expected).abs() < 1e-12, "{x:?}");
        // Unconstrained-feasible problems give the ordinary least-squares answer.
        let a = vec![vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 1.0, 1.0, 1.0]];
        let b = vec![3.0, 5.0, 7.0, 9.0];
        let x = nnls(&a, &b);
        assert!(
            (x[0] - 2.0).abs() < 1e-12 && (x[1] - 1.0).abs() < 1e-12,
            "{x:?}"
        );
    }

    #[test]
    fn a_cost_at_zero_keeps_its_base_value() {
        // An API server whose watch events cost nothing: NNLS finds 0, and the file keeps the
        // simulator's base value rather than a cost the runs cannot resolve.
        let truth = Truth {
            per_watch_event: 0.0,
            ..Truth::default()
        };
        let sweep = Sweep {
            noise: 0.002,
            ..Sweep::default()
        };
        let fitted = fit(&synthetic(&truth, &sweep), DEFAULT_TOML, "t").expect("fit");
        let watch = coefficient(&fitted, "api_server.cpu_seconds_per_watch_event");
        if let Outcome::NotMeasured { reason } = &watch.outcome {
            assert!(reason.contains("puts it at 0"), "{reason}");
            assert_eq!(watch.value(), 5e-6);
        } else {
            // Noise may leave it slightly above 0; then it must be tiny.
            assert!(watch.value() < 1e-7, "{watch:?}");
        }
    }

    #[test]
    fn comments_and_numbers_are_formatted_for_people() {
        assert_eq!(sci(3.1e-6), "3.10e-06");
        assert_eq!(sci(65536.0), "6.55e+04");
        assert_eq!(sig(65536.0), 65500.0);
        assert_eq!(sig(3.14159e-6), 3.14e-6);
        assert_eq!(percent(0.123), "12");
        assert_eq!(percent(0.0042), "0.4");
        for (value, text) in [
            (8.03e-6, "8.03e-6"),
            (0.00203, "0.00203"),
            (30500.0, "30500.0"),
            (10.0, "10.0"),
            (2.5e9, "2.5e9"),
        ] {
            let written = float(value);
            assert_eq!(written.to_string().trim(), text);
            assert_eq!(written.as_float(), Some(value));
        }
        let quality = Quality {
            relative_rms: 0.12,
            r_squared: None,
            relative_standard_error: None,
            note: None,
        };
        assert_eq!(
            measured_comment(3.1e-6, &quality, 14),
            "# measured: 3.10e-06 ±12% rms residual (14 runs)"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Coefficients anywhere in a plausible range come back from a slightly noisy sweep.
        #[test]
        fn fit_recovers_random_coefficients(
            per_list in 5e-4f64..1e-2,
            per_object_from_cache in 1e-6f64..3e-5,
            per_object_from_etcd in 5e-6f64..1e-4,
            per_watch_event in 2e-6f64..5e-5,
            bytes_per_object_listed in 5e3f64..1e5,
            bytes_per_cached_object in 2e3f64..5e4,
            noise in 0.0f64..0.001,
            seed in any::<u64>(),
        ) {
            let truth = Truth {
                per_list,
                per_object_from_cache,
                per_object_from_etcd,
                per_watch_event,
                bytes_per_object_listed,
                bytes_per_cached_object,
                ..Truth::default()
            };
            let sweep = Sweep { node_lists_from_etcd: true, noise, seed, ..Sweep::default() };
            let fitted = fit(&synthetic(&truth, &sweep), DEFAULT_TOML, "p");
            prop_assert!(fitted.is_ok(), "{fitted:?}");
            let fitted = fitted.expect("checked");
            for (key, want, tolerance) in [
                ("api_server.cpu_seconds_per_list", per_list, 0.10),
                (
                    "api_server.cpu_seconds_per_object_listed_from_cache",
                    per_object_from_cache,
                    0.05,
                ),
                ("api_server.cpu_seconds_per_object_listed_from_etcd", per_object_from_etcd, 0.10),
                ("api_server.cpu_seconds_per_watch_event", per_watch_event, 0.05),
                ("api_server.memory_bytes_per_object_listed", bytes_per_object_listed, 0.05),
                ("api_server.memory_bytes_per_cached_object", bytes_per_cached_object, 0.10),
            ] {
                let c = coefficient(&fitted, key);
                let got = c.value();
                let measured = matches!(c.outcome, Outcome::Measured { .. });
                prop_assert!(
                    measured && ((got - want) / want).abs() <= tolerance,
                    "{key}: got {got}, want {want}: {c:?}"
                );
            }
            prop_assert_eq!(
                &Calibration::parse("out", &fitted.toml).expect("parses"),
                &fitted.calibration
            );
        }
    }
}
