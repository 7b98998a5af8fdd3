//! Reading a sweep: the rows of the CSV `fleetwatch lab sweep` writes, by header name.
//!
//! The column names are the contract with the load lab (they are the fields of its
//! `LoadReport`): a [`Run`] is read from the columns in [`Run::COLUMNS`], wherever they stand,
//! and any other column is ignored, so the lab can add columns without breaking the fit. Every
//! row is checked as it is read — a known [`Pattern`], numbers that parse, are finite and in
//! range — so the fits see only valid runs, and every error says where:
//! `FILE:LINE: column `name`: what is wrong`.
//!
//! [`Sweep::read`] opening and reading the file it is given is the crate's only I/O.
//! Imports nothing from the crate.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The client pattern of a run, under the names the load lab writes in the `pattern` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// No agents: the background every other run at the same cluster size carries too.
    Idle,
    /// Every node LISTs all pods on a timer (the incident).
    NaiveList,
    /// Every node LISTs its own pods on a timer.
    NaiveListNode,
    /// Every node runs an informer on all pods.
    WatchAll,
    /// Every node runs an informer on its own pods.
    WatchNode,
    /// One fleetwatch collector per cluster.
    Fleetwatch,
}

impl Pattern {
    /// Every pattern, in the order a sweep runs them.
    pub const ALL: [Pattern; 6] = [
        Pattern::Idle,
        Pattern::NaiveList,
        Pattern::NaiveListNode,
        Pattern::WatchAll,
        Pattern::WatchNode,
        Pattern::Fleetwatch,
    ];

    /// The name in the CSV.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Idle => "idle",
            Pattern::NaiveList => "naive-list",
            Pattern::NaiveListNode => "naive-list-node",
            Pattern::WatchAll => "watch-all",
            Pattern::WatchNode => "watch-node",
            Pattern::Fleetwatch => "fleetwatch",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Pattern::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown pattern `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One run of the sweep, from the CSV columns of the same names: the cluster, how long the run
/// lasted, and what it cost the API server. Counters are increases over the run's `seconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Which client pattern ran; the idle runs are the background the others are taken net of.
    pub pattern: Pattern,
    /// The cluster: nodes (at least one) and pods; pods + nodes is what the watch cache holds.
    pub nodes: usize,
    pub pods: usize,
    /// The run's length in seconds (positive): rates of runs of different lengths compare.
    pub seconds: f64,
    /// What the CPU fit explains (CPU seconds) and the memory fits' peak RSS (bytes).
    pub apiserver_cpu_seconds: f64,
    pub apiserver_peak_rss_bytes: u64,
    /// The CPU fit's unknowns' counters: LISTs, the pods they returned, those of them read
    /// from etcd (never more than returned; the rest came from the watch cache), and the watch
    /// events sent.
    pub pod_lists: u64,
    pub pods_listed: u64,
    pub pods_listed_from_etcd: u64,
    pub watch_events_sent: u64,
    /// Summed seconds LISTs were in flight: over `seconds`, the mean LISTs in flight.
    pub pod_list_seconds: f64,
    /// The seat fit's inputs: APF's seats summed over the agents' priority level, the requests
    /// they were for (LISTs and the probe's GETs), and the requests rejected with 429 (in
    /// naive-list runs the agents' LISTs, whose seats APF estimated before rejecting them).
    pub agent_level_seats: f64,
    pub agent_level_requests: u64,
    pub throttled_429: u64,
}

impl Run {
    /// The columns a run is read from: the header must have each of them once.
    pub const COLUMNS: [&'static str; 14] = [
        "pattern",
        "nodes",
        "pods",
        "seconds",
        "apiserver_cpu_seconds",
        "apiserver_peak_rss_bytes",
        "pod_lists",
        "pods_listed",
        "pods_listed_from_etcd",
        "watch_events_sent",
        "pod_list_seconds",
        "agent_level_seats",
        "agent_level_requests",
        "throttled_429",
    ];

    fn read(row: &Row<'_>) -> Result<Run, Problem> {
        let run = Run {
            pattern: row.parse("pattern")?,
            nodes: row.checked("nodes", "a positive count", |n: usize| n > 0)?,
            pods: row.parse("pods")?,
            seconds: row.checked("seconds", "a positive number", |v: f64| {
                v.is_finite() && v > 0.0
            })?,
            apiserver_cpu_seconds: row.non_negative("apiserver_cpu_seconds")?,
            apiserver_peak_rss_bytes: row.parse("apiserver_peak_rss_bytes")?,
            pod_lists: row.parse("pod_lists")?,
            pods_listed: row.parse("pods_listed")?,
            pods_listed_from_etcd: row.parse("pods_listed_from_etcd")?,
            watch_events_sent: row.parse("watch_events_sent")?,
            pod_list_seconds: row.non_negative("pod_list_seconds")?,
            agent_level_seats: row.non_negative("agent_level_seats")?,
            agent_level_requests: row.parse("agent_level_requests")?,
            throttled_429: row.parse("throttled_429")?,
        };
        if run.pods_listed_from_etcd > run.pods_listed {
            return Err(Problem {
                column: "pods_listed_from_etcd",
                message: format!(
                    "{} exceeds pods_listed ({})",
                    run.pods_listed_from_etcd, run.pods_listed
                ),
            });
        }
        Ok(run)
    }
}

/// The runs of one sweep file, every one valid, at least one.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    path: PathBuf,
    runs: Vec<Run>,
    kubernetes_version: Option<String>,
}

/// The optional column naming the API server's release; every row of a sweep has the same.
const VERSION_COLUMN: &str = "kubernetes_version";

impl Sweep {
    /// Reads and checks the sweep CSV at `path`.
    ///
    /// # Errors
    /// [`InputError::Open`] if the file cannot be opened; otherwise as [`Sweep::parse`].
    pub fn read(path: &Path) -> Result<Sweep, InputError> {
        let file = std::fs::File::open(path).map_err(|error| InputError::Open {
            path: path.to_owned(),
            error,
        })?;
        Sweep::parse(path, file)
    }

    /// Reads and checks a sweep CSV from `reader`; `path` names it in errors and in the
    /// calibration's `source`.
    ///
    /// # Errors
    /// [`InputError::MissingColumns`] for a header without some of [`Run::COLUMNS`],
    /// [`InputError::Bad`] for a row (or header) that does not read or check, with its line and
    /// column, [`InputError::Empty`] for a file without rows.
    pub fn parse(path: &Path, reader: impl Read) -> Result<Sweep, InputError> {
        let mut csv = csv::Reader::from_reader(reader);
        let names = csv
            .headers()
            .map_err(|e| csv_error(path, None, &e))?
            .clone();
        let empty = || InputError::Empty {
            path: path.to_owned(),
        };
        if names.is_empty() {
            return Err(empty());
        }
        let header = Header::new(path, &names)?;
        let version_at = names.iter().position(|name| name == VERSION_COLUMN);
        let mut kubernetes_version: Option<String> = None;
        let mut runs = Vec::new();
        for record in csv.records() {
            let record = record.map_err(|e| csv_error(path, Some(&names), &e))?;
            if let Some(version) = version_at.and_then(|i| record.get(i)) {
                match &kubernetes_version {
                    Some(first) if first != version => {
                        return Err(InputError::Bad {
                            path: path.to_owned(),
                            line: record.position().map(csv::Position::line),
                            column: Some(VERSION_COLUMN.to_owned()),
                            message: format!(
                                "`{version}` after `{first}`: a sweep fits one Kubernetes release"
                            ),
                        });
                    }
                    Some(_) => {}
                    None => kubernetes_version = Some(version.to_owned()),
                }
            }
            let run = Run::read(&Row {
                header: &header,
                record: &record,
            })
            .map_err(|problem| InputError::Bad {
                path: path.to_owned(),
                line: record.position().map(csv::Position::line),
                column: Some(problem.column.to_owned()),
                message: problem.message,
            })?;
            runs.push(run);
        }
        if runs.is_empty() {
            return Err(empty());
        }
        Ok(Sweep {
            path: path.to_owned(),
            runs,
            kubernetes_version,
        })
    }

    /// The API server's release the runs measured, if the file says (sweeps written before the
    /// column existed do not).
    #[must_use]
    pub fn kubernetes_version(&self) -> Option<&str> {
        self.kubernetes_version.as_deref()
    }

    /// The file the runs came from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The runs, in the file's order.
    #[must_use]
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }
}

/// Why a sweep cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("reading the sweep {}: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}column{} {}: missing from the header; expected the CSV `fleetwatch lab sweep` writes",
        location(path, *line, None),
        if columns.len() == 1 { "" } else { "s" },
        columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
    )]
    MissingColumns {
        path: PathBuf,
        line: Option<u64>,
        columns: Vec<&'static str>,
    },
    /// A row (or the header) that does not read or check: `FILE:LINE: column `name`: what`.
    #[error("{}{message}", location(path, *line, column.as_deref()))]
    Bad {
        path: PathBuf,
        line: Option<u64>,
        column: Option<String>,
        message: String,
    },
    #[error("{}: no rows; expected the CSV `fleetwatch lab sweep` writes", path.display())]
    Empty { path: PathBuf },
}

/// `FILE:LINE: column `name`: `, without the parts that are not known.
fn location(path: &Path, line: Option<u64>, column: Option<&str>) -> String {
    let mut text = path.display().to_string();
    if let Some(line) = line {
        text += &format!(":{line}");
    }
    text += ": ";
    if let Some(column) = column {
        text += &format!("column `{column}`: ");
    }
    text
}

/// A CSV-level error (a row of the wrong length, bytes that are not UTF-8, a read error) as
/// [`InputError::Bad`], naming the column where `names` (the header) tells it.
fn csv_error(path: &Path, names: Option<&csv::StringRecord>, e: &csv::Error) -> InputError {
    let (column, message) = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => (
            None,
            format!("{len} fields, but the header has {expected_len}"),
        ),
        csv::ErrorKind::Utf8 { err, .. } => (
            names
                .and_then(|names| names.get(err.field()))
                .map(str::to_owned),
            format!("not UTF-8 (byte {} of the field)", err.valid_up_to()),
        ),
        csv::ErrorKind::Io(err) => (None, err.to_string()),
        _ => (None, e.to_string()),
    };
    InputError::Bad {
        path: path.to_owned(),
        line: e.position().map(csv::Position::line),
        column,
        message,
    }
}

/// Where each of [`Run::COLUMNS`] stands in the header.
#[derive(Debug)]
struct Header {
    index: HashMap<&'static str, usize>,
}

impl Header {
    fn new(path: &Path, names: &csv::StringRecord) -> Result<Header, InputError> {
        let mut index = HashMap::new();
        let mut missing = Vec::new();
        for column in Run::COLUMNS {
            let mut at = names.iter().enumerate().filter(|&(_, name)| name == column);
            match (at.next(), at.next()) {
                (Some((i, _)), None) => {
                    index.insert(column, i);
                }
                (None, _) => missing.push(column),
                (Some(_), Some(_)) => {
                    return Err(InputError::Bad {
                        path: path.to_owned(),
                        line: names.position().map(csv::Position::line),
                        column: Some(column.to_owned()),
                        message: "appears more than once in the header".to_owned(),
                    });
                }
            }
        }
        if missing.is_empty() {
            Ok(Header { index })
        } else {
            Err(InputError::MissingColumns {
                path: path.to_owned(),
                line: names.position().map(csv::Position::line),
                columns: missing,
            })
        }
    }
}

/// One record, read by column name.
struct Row<'a> {
    header: &'a Header,
    record: &'a csv::StringRecord,
}

/// What is wrong with one field of a row.
#[derive(Debug)]
struct Problem {
    column: &'static str,
    message: String,
}

impl Row<'_> {
    fn parse<T>(&self, column: &'static str) -> Result<T, Problem>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let problem = |message: String| Problem { column, message };
        let text = self
            .header
            .index
            .get(column)
            .and_then(|&i| self.record.get(i))
            .ok_or_else(|| problem("not in the header".to_owned()))?;
        text.parse().map_err(|e| problem(format!("`{text}`: {e}")))
    }

    /// A finite number, 0 or more.
    fn non_negative(&self, column: &'static str) -> Result<f64, Problem> {
        self.checked(column, "a non-negative number", |v: f64| {
            v.is_finite() && v >= 0.0
        })
    }

    /// The field, which must pass `ok`: `must_be` says what it must be.
    fn checked<T>(
        &self,
        column: &'static str,
        must_be: &str,
        ok: fn(T) -> bool,
    ) -> Result<T, Problem>
    where
        T: FromStr + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value: T = self.parse(column)?;
        if ok(value) {
            Ok(value)
        } else {
            Err(Problem {
                column,
                message: format!("must be {must_be}, got {value}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{csv_text, run};
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Sweep, InputError> {
        Sweep::parse(Path::new("dir/sweep.csv"), text.as_bytes())
    }

    /// The header `fleetwatch lab sweep` writes today (`LoadReport`'s fields).
    const LAB_HEADER: &str = "pattern,nodes,pods,agents,seconds,startup_seconds,startup_synced,\
        startup_apiserver_cpu_seconds,apiserver_cpu_seconds,apiserver_cpu_seconds_reported,\
        apiserver_cpu_ms_per_node_second,apiserver_peak_rss_bytes,etcd_cpu_seconds,\
        apiserver_bytes_written,throttled_429,pod_lists,pods_listed,pods_listed_from_etcd,\
        pod_list_seconds,watch_events_sent,agent_level_seats,agent_level_requests,probe_p50_ms,\
        probe_p99_ms,probe_samples,probe_errors,agent_requests,agent_errors";

    #[test]
    fn the_release_column_is_read_and_must_not_change_between_rows() {
        let columns: Vec<&str> = Run::COLUMNS.into_iter().chain([VERSION_COLUMN]).collect();
        let text = csv_text(&columns, &[run(Pattern::Idle, 50), run(Pattern::Idle, 100)]);
        // `csv_text` writes `x` for a column it does not know: give each row a release.
        let with = |second: &str| {
            let mut lines = text.lines().map(str::to_owned).collect::<Vec<_>>();
            lines[1] = lines[1].replace(",x", ",v1.30.14");
            lines[2] = lines[2].replace(",x", &format!(",{second}"));
            lines.join("\n") + "\n"
        };
        let sweep = parse(&with("v1.30.14")).expect("one release");
        assert_eq!(sweep.kubernetes_version(), Some("v1.30.14"));
        let message = parse(&with("v1.37.2"))
            .expect_err("two releases")
            .to_string();
        assert!(
            message.contains("dir/sweep.csv:3: column `kubernetes_version`"),
            "{message}"
        );
        let old = csv_text(&Run::COLUMNS, &[run(Pattern::Idle, 50)]);
        assert_eq!(parse(&old).expect("reads").kubernetes_version(), None);
    }

    #[test]
    fn a_lab_row_reads_each_field_from_its_own_column() {
        // A row of bench/sweep/sweep.csv, its counters made distinct so that no two fields
        // could be swapped unnoticed.
        let row = "naive-list,50,1500,50,30.203394402,0.006133666,true,0.17,20.81,20.78,\
                   13.78,504307712,0.96,1492938256,7,151,227360,11,17.843262970000016,476,\
                   650.5,454,3.34625,11.552291,303,0,151,0";
        let sweep = parse(&format!("{LAB_HEADER}\n{row}\n")).expect("reads");
        assert_eq!(
            sweep.runs(),
            [Run {
                pattern: Pattern::NaiveList,
                nodes: 50,
                pods: 1500,
                seconds: 30.203394402,
                apiserver_cpu_seconds: 20.81,
                apiserver_peak_rss_bytes: 504_307_712,
                pod_lists: 151,
                pods_listed: 227_360,
                pods_listed_from_etcd: 11,
                pod_list_seconds: 17.843262970000016,
                watch_events_sent: 476,
                agent_level_seats: 650.5,
                agent_level_requests: 454,
                throttled_429: 7,
            }]
        );
        assert_eq!(sweep.path(), Path::new("dir/sweep.csv"));
    }

    #[test]
    fn every_pattern_reads_back_from_its_name() {
        for pattern in Pattern::ALL {
            assert_eq!(pattern.name().parse::<Pattern>(), Ok(pattern));
            assert_eq!(pattern.to_string(), pattern.name());
        }
        let err = "naive".parse::<Pattern>().expect_err("unknown");
        assert_eq!(
            err,
            "unknown pattern `naive`; expected one of idle, naive-list, naive-list-node, \
             watch-all, watch-node, fleetwatch"
        );
    }

    #[test]
    fn missing_columns_are_named() {
        let columns: Vec<&str> = Run::COLUMNS
            .into_iter()
            .filter(|c| *c != "pod_lists" && *c != "throttled_429")
            .collect();
        let err = parse(&csv_text(&columns, &[run(Pattern::Idle, 50)])).expect_err("missing");
        assert!(
            matches!(&err, InputError::MissingColumns { columns, .. }
                if columns == &["pod_lists", "throttled_429"]),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "dir/sweep.csv:1: columns `pod_lists`, `throttled_429`: missing from the header; \
             expected the CSV `fleetwatch lab sweep` writes"
        );
        let one: Vec<&str> = Run::COLUMNS.into_iter().skip(1).collect();
        let err = parse(&csv_text(&one, &[run(Pattern::Idle, 50)])).expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("dir/sweep.csv:1: column `pattern`: missing"),
            "{err}"
        );
    }

    #[test]
    fn a_column_twice_is_ambiguous() {
        let mut columns = Run::COLUMNS.to_vec();
        columns.push("nodes");
        let err = parse(&csv_text(&columns, &[run(Pattern::Idle, 50)])).expect_err("twice");
        assert_eq!(
            err.to_string(),
            "dir/sweep.csv:1: column `nodes`: appears more than once in the header"
        );
    }

    #[test]
    fn a_bad_field_names_its_line_and_column() {
        for (column, value, message) in [
            (
                "pattern",
                "naive",
                "`naive`: unknown pattern `naive`; expected one of idle,",
            ),
            ("nodes", "0", "must be a positive count, got 0"),
            ("nodes", "-5", "`-5`: invalid digit found in string"),
            ("pods", "", "``: cannot parse integer from empty string"),
            ("seconds", "0", "must be a positive number, got 0"),
            ("seconds", "inf", "must be a positive number, got inf"),
            (
                "apiserver_cpu_seconds",
                "fast",
                "`fast`: invalid float literal",
            ),
            (
                "apiserver_cpu_seconds",
                "NaN",
                "must be a non-negative number, got NaN",
            ),
            (
                "pod_list_seconds",
                "-0.5",
                "must be a non-negative number, got -0.5",
            ),
            (
                "agent_level_seats",
                "-inf",
                "must be a non-negative number, got -inf",
            ),
            (
                "apiserver_peak_rss_bytes",
                "1.5e9",
                "`1.5e9`: invalid digit found in string",
            ),
            (
                "pods_listed_from_etcd",
                "999999999",
                "999999999 exceeds pods_listed (",
            ),
        ] {
            let runs = [run(Pattern::Idle, 50), run(Pattern::NaiveList, 50)];
            let text = csv_text(&Run::COLUMNS, &runs);
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let at = Run::COLUMNS
                .iter()
                .position(|c| *c == column)
                .expect("column");
            let mut fields: Vec<&str> = lines[2].split(',').collect();
            fields[at] = value;
            lines[2] = fields.join(",");
            let err = parse(&(lines.join("\n") + "\n")).expect_err(column);
            let text = err.to_string();
            let want = format!("dir/sweep.csv:3: column `{column}`: {message}");
            assert!(text.starts_with(&want), "{text}\nwant {want}");
        }
    }

    #[test]
    fn a_row_of_the_wrong_length_or_encoding_names_its_line() {
        let mut columns = Run::COLUMNS.to_vec();
        columns.insert(3, "agents");
        let runs = [run(Pattern::Idle, 50), run(Pattern::WatchAll, 50)];
        let text = csv_text(&columns, &runs);
        let short = text.lines().collect::<Vec<_>>()[..2].join("\n") + "\nidle,50\n";
        assert_eq!(
            parse(&short).expect_err("short").to_string(),
            "dir/sweep.csv:3: 2 fields, but the header has 15"
        );
        let mut bytes = text.into_bytes();
        let at = bytes.len() - 2;
        bytes[at] = 0xff; // in the last column of line 3
        let err = Sweep::parse(Path::new("s.csv"), bytes.as_slice()).expect_err("not UTF-8");
        assert!(
            err.to_string()
                .starts_with("s.csv:3: column `throttled_429`: not UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn a_sweep_without_rows_or_file_is_an_error() {
        let empty = "dir/sweep.csv: no rows; expected the CSV `fleetwatch lab sweep` writes";
        assert_eq!(parse("").expect_err("empty").to_string(), empty);
        let header = csv_text(&Run::COLUMNS, &[]);
        assert_eq!(parse(&header).expect_err("no rows").to_string(), empty);
        let missing = Path::new("/nonexistent/sweep.csv");
        let err = Sweep::read(missing).expect_err("no file");
        assert!(
            matches!(&err, InputError::Open { path, .. } if path == missing),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("reading the sweep /nonexistent/sweep.csv: "),
            "{err}"
        );
    }

    fn any_run() -> impl Strategy<Value = Run> {
        let pattern = proptest::sample::select(Pattern::ALL.to_vec());
        let size = (pattern, 1usize..1_000_000, any::<usize>(), 1e-9f64..1e9);
        let cost = (0f64..1e6, any::<u64>(), 0f64..1e6, 0f64..1e9);
        let counts = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
        (size, cost, counts, any::<u64>(), any::<u64>()).prop_map(
            |(
                (pattern, nodes, pods, seconds),
                (cpu, rss, list_seconds, seats),
                (lists, listed, events, requests),
                throttled,
                from_etcd,
            )| Run {
                pattern,
                nodes,
                pods,
                seconds,
                apiserver_cpu_seconds: cpu,
                apiserver_peak_rss_bytes: rss,
                pod_lists: lists,
                pods_listed: listed,
                pods_listed_from_etcd: from_etcd.min(listed),
                pod_list_seconds: list_seconds,
                watch_events_sent: events,
                agent_level_seats: seats,
                agent_level_requests: requests,
                throttled_429: throttled,
            },
        )
    }

    /// The needed columns in any order, among extra columns the sweep does not need.
    fn any_layout() -> impl Strategy<Value = Vec<&'static str>> {
        let extras = proptest::sample::subsequence(
            vec![
                "agents",
                "etcd_cpu_seconds",
                "probe_p99_ms",
                "startup_synced",
            ],
            0..=4,
        );
        (Just(Run::COLUMNS.to_vec()).prop_shuffle(), extras).prop_flat_map(|(needed, extras)| {
            let mut columns = needed;
            columns.extend(extras);
            Just(columns).prop_shuffle()
        })
    }

    proptest! {
        /// Outside input: whatever the bytes, reading gives runs or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Sweep::parse(Path::new("p.csv"), bytes.as_slice());
        }

        /// The same after a valid header, so that the bytes reach the rows.
        #[test]
        fn arbitrary_rows_never_panic(rows in "[-a-z0-9.,eE\"\n]{0,400}") {
            let text = csv_text(&Run::COLUMNS, &[]) + &rows;
            if let Ok(sweep) = parse(&text) {
                prop_assert!(!sweep.runs().is_empty());
            }
        }

        /// Well-formed rows read back as they were written, whatever the columns' order and
        /// whatever other columns stand beside them.
        #[test]
        fn well_formed_rows_round_trip(
            runs in proptest::collection::vec(any_run(), 1..8),
            columns in any_layout(),
        ) {
            let sweep = parse(&csv_text(&columns, &runs));
            prop_assert!(sweep.is_ok(), "{sweep:?}");
            let sweep = sweep.expect("checked");
            prop_assert_eq!(sweep.runs(), runs.as_slice());
        }
    }
}
