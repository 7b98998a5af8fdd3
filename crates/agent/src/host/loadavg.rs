//! `/proc/loadavg`: load averages and tasks. Read by procfs's `LoadAverage`, once its one line
//! has been checked here.

use fleetwatch_telemetry::page::Kind;
use procfs::{FromRead as _, LoadAverage};

use super::files::{self, Malformed};
use crate::snapshot::{Family, LabelSet};

const EXPECTED: &str = "expected `load1 load5 load15 running/total last_pid`";

/// Parses `/proc/loadavg`.
pub(super) fn parse(text: &str) -> Result<LoadAverage, Malformed> {
    let mut lines = files::fields(text);
    let Some((line, fields)) = lines.next() else {
        return Err(Malformed::file(format!("empty: {EXPECTED}")));
    };
    check(&fields).map_err(|message| Malformed::line(line, message))?;
    if let Some((line, _)) = lines.next() {
        return Err(Malformed::line(line, "expected one line only"));
    }
    LoadAverage::from_read(text.as_bytes())
        .map_err(|e| Malformed::file(format!("procfs could not read it: {e}")))
}

/// Checks the fields: three decimals, then `running/total` and a PID, each within `u32` (which
/// procfs reads them as; it reads floats with Rust's parser, which takes `inf` and `NaN`).
fn check(fields: &[&str]) -> Result<(), String> {
    let small = |s: &str| files::number(s).is_some_and(|n| u32::try_from(n).is_ok());
    let [one, five, fifteen, tasks, pid] = fields else {
        return Err(format!("{EXPECTED}, not {} fields", fields.len()));
    };
    let loads = [one, five, fifteen]
        .into_iter()
        .all(|l| files::is_decimal(l));
    let tasks = tasks
        .split_once('/')
        .is_some_and(|(running, total)| small(running) && small(total));
    if loads && tasks && small(pid) {
        Ok(())
    } else {
        Err(format!(
            "{EXPECTED}, not {}",
            files::quoted(&fields.join(" "))
        ))
    }
}

/// The families of `load`, each sample labelled `node`.
pub(super) fn families(load: &LoadAverage, node: &str) -> Vec<Family> {
    let gauges = [
        (
            "fleetwatch_agent_node_load1",
            "Tasks running or waiting for I/O, averaged over 1 minute",
            average(load.one),
        ),
        (
            "fleetwatch_agent_node_load5",
            "Tasks running or waiting for I/O, averaged over 5 minutes",
            average(load.five),
        ),
        (
            "fleetwatch_agent_node_load15",
            "Tasks running or waiting for I/O, averaged over 15 minutes",
            average(load.fifteen),
        ),
        (
            "fleetwatch_agent_node_tasks_running",
            "Tasks (processes and threads) runnable now",
            f64::from(load.cur),
        ),
        (
            "fleetwatch_agent_node_tasks",
            "Tasks (processes and threads) that exist now",
            f64::from(load.max),
        ),
    ];
    let labels = LabelSet::of([("node", node)]);
    gauges
        .into_iter()
        .map(|(name, help, value)| {
            let mut family = Family::new(name, help, Kind::Gauge);
            family.push(labels.clone(), value);
            family
        })
        .collect()
}

/// A load average as the kernel printed it. The kernel prints two decimals and procfs reads an
/// `f32`, whose nearest `f64` would show `0.52` as `0.5199999809265137`: rounding back to two
/// decimals gives the printed value (exactly, for loads below 2^17).
fn average(load: f32) -> f64 {
    (f64::from(load) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn loads_are_as_printed() {
        let load = parse("3.33 0.52 2.43 6/107 4881\n").expect("parses");
        let families = families(&load, "n1");
        let values: Vec<_> = families.iter().map(|f| (f.name, f.samples[0].1)).collect();
        assert_eq!(
            values,
            vec![
                ("fleetwatch_agent_node_load1", 3.33),
                ("fleetwatch_agent_node_load5", 0.52),
                ("fleetwatch_agent_node_load15", 2.43),
                ("fleetwatch_agent_node_tasks_running", 6.0),
                ("fleetwatch_agent_node_tasks", 107.0),
            ]
        );
        assert_eq!(average(131_071.99), 131_071.99);
        let spaced = parse("\n  0.00   0.01\t0.05  1/99   4294967295  \n\n").expect("parses");
        assert_eq!(spaced.max, 99);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let cases = [
            ("", None, "empty"),
            ("0.00 0.01 0.05 1/99\n", Some(1), "not 4 fields"),
            (
                "0.00 0.01 inf 1/99 5\n",
                Some(1),
                "not `0.00 0.01 inf 1/99 5`",
            ),
            ("0.00 0.01 1 1/99 5\n", Some(1), "expected `load1"),
            ("0.00 0.01 0.05 1-99 5\n", Some(1), "expected `load1"),
            (
                "0.00 0.01 0.05 1/4294967296 5\n",
                Some(1),
                "expected `load1",
            ),
            (
                "0.00 0.01 0.05 1/99 5\n1.0 1.0 1.0 1/1 1\n",
                Some(2),
                "one line only",
            ),
        ];
        for (text, line, message) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(message), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "([0-9]{1,11}(\\.[0-9]{0,3})?|/| +|\n|.){0,20}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_anything(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
