//! `/proc/pressure/{cpu,memory,io}`: pressure stall information (Linux 4.20+, `CONFIG_PSI`).
//!
//! Parsed here, not by procfs: its `CpuPressure` requires a `full` line, which the cpu file
//! has only since Linux 5.13, and its record parser slices `line[5..]`, which panics on a line
//! of four bytes. Only the totals are served: the `avg*` figures are the kernel's own rates of
//! them, which Prometheus computes better over any window.

use std::collections::HashSet;

use fleetwatch_telemetry::page::Kind;

use super::files::{self, Malformed};
use crate::snapshot::{Family, LabelSet};

/// The resources, as the files and the `resource` label name them.
pub(super) const RESOURCES: [&str; 3] = ["cpu", "memory", "io"];

/// One file's totals, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pressure {
    /// Time at least some tasks were stalled on the resource.
    pub some: u64,
    /// Time all non-idle tasks were stalled at once; not shown for cpu before Linux 5.13 (and
    /// always 0 for cpu at the node's level since).
    pub full: Option<u64>,
}

const EXPECTED: &str = "expected `some|full avg10=D avg60=D avg300=D total=N`";

/// Parses a pressure file: a `some` line and an optional `full` line.
pub(super) fn parse(text: &str) -> Result<Pressure, Malformed> {
    let (mut some, mut full) = (None, None);
    let mut seen = HashSet::new();
    for (line, fields) in files::fields(text) {
        let (kind, total) = record(&fields).map_err(|message| Malformed::line(line, message))?;
        if !seen.insert(kind) {
            return Err(Malformed::line(line, format!("a second `{kind}` line")));
        }
        match kind {
            "some" => some = Some(total),
            _ => full = Some(total),
        }
    }
    let some = some.ok_or_else(|| Malformed::file("no `some` line"))?;
    Ok(Pressure { some, full })
}

/// One line's kind and total: exactly the five fields, in the kernel's order.
fn record<'a>(fields: &[&'a str]) -> Result<(&'a str, u64), String> {
    let wrong = || format!("{EXPECTED}, not {}", files::quoted(&fields.join(" ")));
    let [kind, avg10, avg60, avg300, total] = fields else {
        return Err(wrong());
    };
    if !matches!(*kind, "some" | "full") {
        return Err(wrong());
    }
    let averages = [("avg10=", avg10), ("avg60=", avg60), ("avg300=", avg300)];
    let averages = averages
        .iter()
        .all(|(key, field)| field.strip_prefix(key).is_some_and(files::is_decimal));
    let total = total.strip_prefix("total=").and_then(files::number);
    match total {
        Some(total) if averages => Ok((kind, total)),
        _ => Err(wrong()),
    }
}

/// The family of the resources whose file is there, labelled `node`, `resource` and `kind`.
pub(super) fn families(pressures: &[(&'static str, Option<Pressure>)], node: &str) -> Vec<Family> {
    let mut family = Family::new(
        "fleetwatch_agent_node_pressure_stall_seconds_total",
        "Seconds tasks were stalled on the resource: kind=some, at least one task; kind=full, \
         all non-idle tasks at once (/proc/pressure)",
        Kind::Counter,
    );
    for (resource, pressure) in pressures {
        let Some(pressure) = pressure else { continue };
        let kinds = [("some", Some(pressure.some)), ("full", pressure.full)];
        for (kind, micros) in kinds {
            if let Some(micros) = micros {
                let labels = LabelSet::of([("node", node), ("resource", resource), ("kind", kind)]);
                family.push(labels, micros as f64 / 1e6);
            }
        }
    }
    vec![family]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn totals_are_read_and_full_may_be_missing() {
        let both = "some avg10=58.06 avg60=54.66 avg300=51.20 total=584922021\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(
            parse(both),
            Ok(Pressure {
                some: 584_922_021,
                full: Some(0)
            })
        );
        // The cpu file before Linux 5.13, with odd spacing.
        let old = "  some  avg10=0.00\tavg60=0.12 avg300=0.30   total=1234567 \n";
        let old = parse(old).expect("parses");
        assert_eq!(
            old,
            Pressure {
                some: 1_234_567,
                full: None
            }
        );
        let families = families(&[("cpu", Some(old)), ("memory", None)], "n1");
        assert_eq!(
            families[0].samples,
            vec![(
                LabelSet::of([("node", "n1"), ("resource", "cpu"), ("kind", "some")]),
                1.234567
            )]
        );
    }

    #[test]
    fn a_malformed_line_is_named() {
        let line = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1";
        let cases = [
            ("".to_owned(), None, "no `some` line"),
            (
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n".to_owned(),
                None,
                "no `some`",
            ),
            ("some\n".to_owned(), Some(1), EXPECTED),
            (format!("{line}\n{line}\n"), Some(2), "a second `some` line"),
            (format!("{line} extra=1\n"), Some(1), EXPECTED),
            (line.replace("total=1", "total=-1"), Some(1), EXPECTED),
            (line.replace("avg60", "avg90"), Some(1), EXPECTED),
            (line.replace("0.00 avg300", "nan avg300"), Some(1), EXPECTED),
            (line.replace("some", "most"), Some(1), EXPECTED),
            (
                format!("\n{line}\nfull total=3\n"),
                Some(3),
                "not `full total=3`",
            ),
        ];
        for (text, line, message) in cases {
            let error = parse(&text).expect_err(&text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(message), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "(some|full|avg(10|60|300)=|total=|[0-9]{1,21}|\\.| +|\n|.){0,30}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_anything(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
