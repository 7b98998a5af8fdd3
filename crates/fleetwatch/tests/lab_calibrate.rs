//! `fleetwatch lab calibrate` as a user runs it: a sweep CSV in, a calibration file out.
//!
//! The CSV is written by the load lab's own sweep writer from `LoadReport` rows of every lab
//! pattern (so its header and pattern names are what `lab sweep` writes), generated from known
//! costs; the fitted file must give those costs back.

use std::path::Path;
use std::process::{Command, Output};

use fleetwatch_load_lab::sweep_file::SweepWriter;
use fleetwatch_load_lab::{LoadReport, Pattern};
use fleetwatch_sim::calibration::{Calibration, PLAUSIBLE_TOML};

const PER_LIST: f64 = 2e-3;
const PER_OBJECT_FROM_CACHE: f64 = 4e-6;
const PER_WATCH_EVENT: f64 = 8e-6;
const BYTES_PER_OBJECT_LISTED: f64 = 30_000.0;
const BYTES_PER_CACHED_OBJECT: f64 = 6_000.0;
const OBJECTS_PER_SEAT: f64 = 100.0;
const MAX_SEATS: f64 = 10.0;
const PODS_PER_NODE: usize = 30;
const SIZES: [usize; 5] = [50, 100, 200, 500, 1000];
/// 2026-01-02T03:04:05Z.
const EPOCH: &str = "1767323045";
const EPOCH_DATE: &str = "2026-01-02";

/// `fleetwatch lab calibrate --sweep SWEEP` with `more` flags and paths.
fn calibrate(sweep: &Path, more: &[(&str, &Path)]) -> Output {
    let mut args = vec!["lab", "calibrate", "--sweep", path(sweep)];
    for (flag, value) in more {
        args.extend([*flag, path(value)]);
    }
    fleetwatch(&args)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn fleetwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetwatch"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env_remove("RUST_LOG")
        .output()
        .expect("run fleetwatch")
}

/// One run of `pattern` at `nodes` nodes on an API server that charges the costs above.
/// The release the synthetic sweep says it ran: not the default, so that the calibration's
/// `source` is seen to come from the sweep's column.
const SWEPT_RELEASE: &str = "v1.30.14";

fn report(pattern: Pattern, nodes: usize) -> LoadReport {
    let pods = nodes * PODS_PER_NODE;
    let (n, p) = (nodes as f64, pods as f64);
    let seconds = 60.0;
    let probe = 10.0 * seconds;
    let churn_events = 360.0;
    // (lists, objects per list, watch events the agents cause)
    let (lists, per_list, events) = match pattern {
        Pattern::Idle => (0.0, 0.0, 0.0),
        Pattern::NaiveList => (n * 6.0, p, 0.0),
        Pattern::NaiveListNode => (n * 6.0, PODS_PER_NODE as f64, 0.0),
        Pattern::WatchAll => (n, p, n * p * 0.6),
        Pattern::WatchNode => (n, PODS_PER_NODE as f64, p * 0.6),
        Pattern::Fleetwatch => (1.0, p, p * 0.6),
    };
    let listed = lists * per_list;
    let list_seconds = lists * (0.001 + per_list * 2e-6);
    let cpu = 0.002 * n
        + probe * 1e-3
        + PER_LIST * lists
        + PER_OBJECT_FROM_CACHE * listed
        + PER_WATCH_EVENT * (events + churn_events);
    let rss = 3e8
        + BYTES_PER_CACHED_OBJECT * (p + n)
        + BYTES_PER_OBJECT_LISTED * list_seconds / seconds * per_list;
    let seats = if pattern == Pattern::NaiveList {
        (per_list / OBJECTS_PER_SEAT).ceil().min(MAX_SEATS)
    } else {
        MAX_SEATS
    };
    LoadReport {
        kubernetes_version: SWEPT_RELEASE.to_owned(),
        pattern: pattern.to_string(),
        nodes,
        pods,
        agents: if pattern == Pattern::Idle { 0 } else { nodes },
        seconds,
        apiserver_cpu_seconds: cpu,
        apiserver_cpu_seconds_reported: cpu,
        apiserver_cpu_ms_per_node_second: cpu * 1e3 / (n * seconds),
        apiserver_peak_rss_bytes: rss.round() as u64,
        etcd_cpu_seconds: 1.0,
        apiserver_bytes_written: (listed * 2_000.0) as u64,
        throttled_429: 0,
        pod_lists: lists.round() as u64,
        pods_listed: listed.round() as u64,
        pods_listed_from_etcd: 0,
        pod_list_seconds: list_seconds,
        watch_events_sent: (events + churn_events).round() as u64,
        agent_level_seats: probe + lists * seats,
        agent_level_requests: (probe + lists).round() as u64,
        probe_p50_ms: Some(2.0),
        probe_p99_ms: if pattern == Pattern::Idle {
            None
        } else {
            Some(9.5)
        },
        probe_samples: 600,
        probe_errors: 0,
        agent_requests: lists.round() as u64,
        agent_errors: 0,
        ..LoadReport::default()
    }
}

/// `runs` written as `lab sweep` writes them.
fn write_runs(path: &Path, runs: &[(Pattern, usize)]) {
    let writer = SweepWriter::create(path).expect("create sweep csv");
    for &(pattern, nodes) in runs {
        writer.append(&report(pattern, nodes)).expect("write row");
    }
}

/// Every pattern at every size.
fn write_sweep(path: &Path) {
    let runs: Vec<(Pattern, usize)> = SIZES
        .into_iter()
        .flat_map(|nodes| Pattern::ALL.map(|pattern| (pattern, nodes)))
        .collect();
    write_runs(path, &runs);
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        ((got - want) / want).abs() < 0.01,
        "{what}: got {got}, want {want}"
    );
}

/// Whether `key = …` in `toml` has a `# measured:` comment line right above it.
fn has_measured_comment(toml: &str, key: &str) -> bool {
    let key_line = format!("{key} = ");
    toml.lines()
        .zip(toml.lines().skip(1))
        .any(|(above, line)| above.starts_with("# measured: ") && line.starts_with(&key_line))
}

#[test]
fn a_sweep_gives_back_the_costs_it_was_made_from() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tmp.path().join("sweep.csv");
    let out = tmp.path().join("calibration.toml");
    write_sweep(&sweep);
    let run = calibrate(&sweep, &[("--out", &out)]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "failed: {stderr}");

    let text = std::fs::read_to_string(&out).expect("calibration written");
    let cal = Calibration::parse("calibration.toml", &text).expect("output parses");
    let base = Calibration::parse("plausible", PLAUSIBLE_TOML).expect("the plausible base parses");
    let a = &cal.api_server;
    let measured = [
        ("cpu_seconds_per_list", a.cpu_seconds_per_list, PER_LIST),
        (
            "cpu_seconds_per_object_listed_from_cache",
            a.cpu_seconds_per_object_listed_from_cache,
            PER_OBJECT_FROM_CACHE,
        ),
        (
            "cpu_seconds_per_watch_event",
            a.cpu_seconds_per_watch_event,
            PER_WATCH_EVENT,
        ),
        (
            "memory_bytes_per_object_listed",
            a.memory_bytes_per_object_listed,
            BYTES_PER_OBJECT_LISTED,
        ),
        (
            "memory_bytes_per_cached_object",
            a.memory_bytes_per_cached_object,
            BYTES_PER_CACHED_OBJECT,
        ),
    ];
    for (key, got, want) in measured {
        assert_close(key, got, want);
        assert!(has_measured_comment(&text, key), "{key}:\n{text}");
    }
    assert_eq!(cal.apf.max_seats_per_request, MAX_SEATS);
    // No LIST read etcd and every LIST hit the seat cap: those keep the base values.
    assert_eq!(
        a.cpu_seconds_per_object_listed_from_etcd,
        base.api_server.cpu_seconds_per_object_listed_from_etcd
    );
    assert_eq!(
        cal.apf.objects_per_list_seat,
        base.apf.objects_per_list_seat
    );
    for key in [
        "cpu_seconds_per_object_listed_from_etcd",
        "objects_per_list_seat",
    ] {
        assert!(!has_measured_comment(&text, key), "{key}:\n{text}");
    }
    // Untouched keys keep the base values, and the base file's comments stay.
    assert_eq!(cal.dns, base.dns);
    assert_eq!(
        cal.api_server.restart_seconds,
        base.api_server.restart_seconds
    );
    for line in PLAUSIBLE_TOML
        .lines()
        .filter(|l| l.starts_with('#') && !l.starts_with("# measured:"))
    {
        assert!(text.contains(line), "lost {line:?}");
    }
    assert_eq!(
        cal.source,
        format!(
            "measured by `fleetwatch lab calibrate` from sweep.csv (kube-apiserver \
             {SWEPT_RELEASE}, nodes {}–{}, {PODS_PER_NODE} pods per node) on {EPOCH_DATE}",
            SIZES[0],
            SIZES[SIZES.len() - 1]
        )
    );

    // The report: every coefficient, measured or not and why.
    assert!(
        stdout.contains("api_server.cpu_seconds_per_list") && stdout.contains("R² "),
        "{stdout}"
    );
    let etcd_line = stdout
        .lines()
        .find(|l| l.starts_with("api_server.cpu_seconds_per_object_listed_from_etcd"))
        .expect("etcd line in the report");
    assert!(
        etcd_line.contains("not measured: `pods_listed_from_etcd` is 0"),
        "{etcd_line}"
    );
}

#[test]
fn without_out_the_calibration_goes_to_stdout_and_the_report_to_stderr() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tmp.path().join("sweep.csv");
    write_sweep(&sweep);
    let base = tmp.path().join("base.toml");
    let restart = Calibration::parse("built-in", PLAUSIBLE_TOML)
        .expect("built-in parses")
        .api_server
        .restart_seconds;
    let ours = restart / 2.0;
    let base_text = PLAUSIBLE_TOML.replace(
        &format!("restart_seconds = {restart:?}"),
        &format!("# A comment only this base has.\nrestart_seconds = {ours:?}"),
    );
    assert_ne!(base_text, PLAUSIBLE_TOML);
    std::fs::write(&base, base_text).expect("write base");
    let run = calibrate(&sweep, &[("--base", &base)]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "failed: {stderr}");
    let cal = Calibration::parse("stdout", &stdout).expect("stdout is the calibration");
    assert_eq!(cal.api_server.restart_seconds, ours);
    assert!(stdout.contains("# A comment only this base has."));
    assert_close(
        "cpu_seconds_per_list",
        cal.api_server.cpu_seconds_per_list,
        PER_LIST,
    );
    assert!(stderr.contains("not measured"), "{stderr}");
}

/// `sweep` with line `line` (1-based) changed by `edit`.
fn edit_line(sweep: &Path, line: usize, edit: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(sweep).expect("read sweep");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[line - 1] = edit(&lines[line - 1]);
    std::fs::write(sweep, lines.join("\n") + "\n").expect("write broken sweep");
}

/// `row` with the field of `column` set to `value`.
fn set_field(header: &str, row: &str, column: &str, value: &str) -> String {
    let at = header
        .split(',')
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    let mut fields: Vec<&str> = row.split(',').collect();
    fields[at] = value;
    fields.join(",")
}

#[test]
fn a_malformed_row_names_the_file_line_and_column() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tmp.path().join("broken-sweep.csv");
    let fails_with = |want: &str| {
        let run = calibrate(&sweep, &[]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "a broken sweep must fail");
        assert!(run.stdout.is_empty(), "no calibration on failure");
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
    };
    let header = || {
        let text = std::fs::read_to_string(&sweep).expect("read sweep");
        text.lines().next().expect("header").to_owned()
    };
    for (line, column, value, want) in [
        (
            4,
            "apiserver_cpu_seconds",
            "fast",
            "broken-sweep.csv:4: column `apiserver_cpu_seconds`: `fast`: invalid float literal",
        ),
        (
            3,
            "pattern",
            "naive",
            "broken-sweep.csv:3: column `pattern`: `naive`: unknown pattern `naive`",
        ),
        (
            5,
            "seconds",
            "0",
            "broken-sweep.csv:5: column `seconds`: must be a positive number, got 0",
        ),
    ] {
        write_sweep(&sweep);
        let header = header();
        edit_line(&sweep, line, |row| set_field(&header, row, column, value));
        fails_with(want);
    }

    // Line 6: a field short.
    write_sweep(&sweep);
    let fields = header().split(',').count();
    edit_line(&sweep, 6, |row| {
        row.rsplit_once(',').expect("fields").0.to_owned()
    });
    fails_with(&format!(
        "broken-sweep.csv:6: {} fields, but the header has {fields}",
        fields - 1
    ));

    // A header without a column the fit reads.
    write_sweep(&sweep);
    edit_line(&sweep, 1, |header| header.replace("pod_lists", "lists"));
    fails_with("broken-sweep.csv:1: column `pod_lists`: missing from the header");
}

#[test]
fn a_sweep_without_idle_runs_says_what_is_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tmp.path().join("sweep.csv");
    write_runs(
        &sweep,
        &[
            (Pattern::Idle, 50),
            (Pattern::NaiveList, 50),
            (Pattern::NaiveList, 100),
        ],
    );
    let run = calibrate(&sweep, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("sweep.csv") && stderr.contains("no idle run at 100 nodes"),
        "{stderr}"
    );
}

#[test]
fn help_explains_what_is_fitted() {
    let run = fleetwatch(&["lab", "calibrate", "--help"]);
    let help = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success());
    for needle in [
        "--sweep <FILE.csv>",
        "--base <FILE.toml>",
        "--out <FILE.toml>",
        "api_server.cpu_seconds_per_watch_event",
        "Non-negative least squares",
        "upper bound",
        "apf.max_seats_per_request",
        "not measured",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
