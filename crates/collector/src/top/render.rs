//! A [`View`] as plain text: a header, then four aligned tables with humanized units.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::view::{Audit, ClientRow, FlowRow, Folded, LevelRow, ReplicaRow, State, View};

/// Shown instead of the audit table when the collector exports no audit series.
pub const AUDIT_NOT_CONFIGURED: &str = "audit webhook not configured";
/// Shown for a value the page does not have.
const MISSING: &str = "-";

/// The whole screen.
pub fn render(view: &View) -> String {
    let mut out = header(view);
    section(
        &mut out,
        "API server replicas (collector's window)",
        replica_table(&view.replicas),
    );
    section(
        &mut out,
        "APF priority levels, most saturated first",
        level_table(&view.levels),
    );
    section(
        &mut out,
        "Top flow schemas by execution time",
        flow_table(&view.flows),
    );
    match &view.audit {
        Audit::NotConfigured => section(
            &mut out,
            "Top audit clients",
            format!("{AUDIT_NOT_CONFIGURED}\n"),
        ),
        Audit::Clients(clients) => section(
            &mut out,
            &format!("Top audit clients over the last {:.1} s", view.seconds),
            client_table(clients),
        ),
    }
    out
}

fn header(view: &View) -> String {
    let mut out = format!(
        "fleetwatch top  {}  at {} UTC\n",
        view.url,
        clock(view.read_at)
    );
    if view.bad_lines > 0 {
        let first = view.first_bad.as_deref().unwrap_or_default();
        let _ = writeln!(
            out,
            "warning: {} of {} lines of the page did not parse and were skipped (first: {first})",
            view.bad_lines, view.lines
        );
    }
    out
}

fn section(out: &mut String, title: &str, body: String) {
    let _ = write!(out, "\n{title}\n{body}");
}

/// `HH:MM:SS` of a wall-clock time, in UTC (no time-zone database needed).
pub fn clock(at: SystemTime) -> String {
    let seconds = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Column alignment: text to the left, numbers to the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Lays out a table: columns as wide as their widest cell, two blanks apart.
fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let headers: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&headers).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(columns.iter().zip(&widths))
            .map(|(cell, ((_, align), width))| match align {
                Align::Left => format!("{cell:<width$}"),
                Align::Right => format!("{cell:>width$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

use Align::{Left, Right};

fn replica_table(rows: &[ReplicaRow]) -> String {
    let columns = [
        ("REPLICA", Left),
        ("STATE", Left),
        ("REQ/S", Right),
        ("5XX", Right),
        ("429", Right),
        ("GET P99", Right),
        ("LIST NS P99", Right),
        ("LIST CLUSTER P99", Right),
        ("INFLIGHT", Right),
        ("CPU", Right),
        ("RSS", Right),
        ("RESTARTS", Right),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.replica.clone(),
                state(&r.state),
                opt(r.requests_per_second, rate),
                opt(r.ratio_5xx, percent),
                opt(r.ratio_429, percent),
                opt(r.get_p99, duration),
                opt(r.list_namespace_p99, duration),
                opt(r.list_cluster_p99, duration),
                opt(r.inflight, count),
                opt(r.cpu_cores, cores),
                opt(r.rss_bytes, bytes),
                opt(r.restarts, count),
            ]
        })
        .collect();
    table(&columns, &cells)
}

fn state(state: &State) -> String {
    match state {
        State::Up => "up".to_owned(),
        State::Unready => "unready".to_owned(),
        State::Down => "DOWN".to_owned(),
        State::Cluster { up, of } => format!("{up}/{of} up"),
    }
}

fn level_table(levels: &Folded<LevelRow>) -> String {
    if levels.rows.is_empty() {
        return "no APF series yet (the collector's window needs two scrapes)\n".to_owned();
    }
    let columns = [
        ("PRIORITY LEVEL", Left),
        ("SEATS", Right),
        ("LIMIT", Right),
        ("SATURATION", Right),
        ("QUEUED", Right),
        ("WAIT P99", Right),
        ("REJECTED", Right),
    ];
    let row = |r: &LevelRow, name: String| {
        vec![
            name,
            count(r.seats_in_use),
            opt(r.seat_limit, count),
            opt(r.saturation(), percent),
            count(r.queued),
            opt(r.wait_p99, duration),
            rate(r.rejections_per_second),
        ]
    };
    let mut cells: Vec<Vec<String>> = levels
        .rows
        .iter()
        .map(|r| row(r, r.level.clone()))
        .collect();
    if let Some((n, other)) = &levels.other {
        cells.push(row(other, format!("other ({n} levels)")));
    }
    table(&columns, &cells)
}

fn flow_table(flows: &Folded<FlowRow>) -> String {
    if flows.rows.is_empty() {
        return "no flow-schema series yet (the collector's window needs two scrapes)\n".to_owned();
    }
    let total: f64 = flows
        .rows
        .iter()
        .chain(flows.other.as_ref().map(|(_, r)| r))
        .map(|r| r.execution_seconds_per_second)
        .sum();
    let columns = [
        ("FLOW SCHEMA", Left),
        ("PRIORITY LEVEL", Left),
        ("EXEC S/S", Right),
        ("SHARE", Right),
        ("DISPATCHED", Right),
        ("SEATS/S", Right),
    ];
    let row = |r: &FlowRow, name: String| {
        let share = (total > 0.0).then(|| r.execution_seconds_per_second / total);
        vec![
            name,
            r.priority_level.clone(),
            number(r.execution_seconds_per_second),
            opt(share, percent),
            rate(r.dispatched_per_second),
            number(r.estimated_seats_per_second),
        ]
    };
    let mut cells: Vec<Vec<String>> = flows
        .rows
        .iter()
        .map(|r| row(r, r.flow_schema.clone()))
        .collect();
    if let Some((n, other)) = &flows.other {
        cells.push(row(other, format!("other ({n} flow schemas)")));
    }
    table(&columns, &cells)
}

fn client_table(clients: &Folded<ClientRow>) -> String {
    let (rows, other) = (&clients.rows, clients.other.as_ref());
    if rows.is_empty() {
        return "no audited requests between the two reads\n".to_owned();
    }
    let columns = [
        ("USER", Left),
        ("USER AGENT", Left),
        ("REQ/S", Right),
        ("BUSY S/S", Right),
        ("P99", Right),
        ("4XX", Right),
        ("5XX", Right),
        ("MOSTLY", Left),
    ];
    let row = |r: &ClientRow, user: String| {
        vec![
            user,
            r.user_agent.clone(),
            rate(r.requests_per_second),
            opt(r.busy_seconds_per_second, number),
            opt(r.p99, duration),
            opt(r.ratio_4xx, percent),
            opt(r.ratio_5xx, percent),
            r.top_call
                .as_ref()
                .map_or_else(String::new, |(verb, resource, share)| {
                    format!("{verb} {resource} ({})", percent(*share))
                }),
        ]
    };
    let mut cells: Vec<Vec<String>> = rows.iter().map(|r| row(r, r.user.clone())).collect();
    if let Some((n, other)) = other {
        cells.push(row(other, format!("other ({n} clients)")));
    }
    table(&columns, &cells)
}

fn opt(value: Option<f64>, format: fn(f64) -> String) -> String {
    value
        .filter(|v| v.is_finite())
        .map_or_else(|| MISSING.to_owned(), format)
}

/// A per-second rate: `0.56/s`, `12.3/s`, `4.5k/s`.
pub fn rate(per_second: f64) -> String {
    format!("{}/s", number(per_second))
}

/// A plain number with about three significant digits: `0.0042`, `0.56`, `12.3`, `456`, `4.5k`.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() {
        MISSING.to_owned()
    } else if magnitude == 0.0 {
        "0".to_owned()
    } else if magnitude >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if magnitude >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 0.01 {
        format!("{value:.2}")
    } else if magnitude >= 0.0001 {
        format!("{value:.4}")
    } else {
        // Four decimals would print a non-zero rate as 0.0000.
        format!("{value:.1e}")
    }
}

/// A ratio as a percentage: `0%`, `<0.01%`, `0.25%`, `12.5%`, `100%`.
pub fn percent(ratio: f64) -> String {
    let pct = ratio * 100.0;
    if pct == 0.0 {
        "0%".to_owned()
    } else if pct < 0.01 {
        "<0.01%".to_owned()
    } else if pct < 10.0 {
        format!("{pct:.2}%")
    } else if pct < 99.95 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.0}%")
    }
}

/// Seconds as a latency: `0.42 ms`, `4.9 ms`, `250 ms`, `1.50 s`.
pub fn duration(seconds: f64) -> String {
    let ms = seconds * 1e3;
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Bytes in binary units: `512 KiB`, `277.6 MiB`, `1.50 GiB`.
pub fn bytes(value: f64) -> String {
    const KIB: f64 = 1024.0;
    if value >= KIB * KIB * KIB {
        format!("{:.2} GiB", value / (KIB * KIB * KIB))
    } else if value >= KIB * KIB {
        format!("{:.1} MiB", value / (KIB * KIB))
    } else {
        format!("{:.0} KiB", value / KIB)
    }
}

/// CPU in cores: `0.024 cores` is 2.4% of one core.
pub fn cores(value: f64) -> String {
    format!("{} cores", number(value))
}

/// A count that is usually whole (seats, requests in flight, restarts).
pub fn count(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e4 {
        format!("{value:.0}")
    } else {
        number(value)
    }
}
