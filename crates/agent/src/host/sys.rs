//! Files of `/proc/sys`: open files (`fs/file-nr`) and connection tracking
//! (`net/netfilter/nf_conntrack_{count,max}`).
//!
//! Parsed here: procfs reads `file-nr` only from the real `/proc` (`procfs::sys::fs::file_nr`),
//! not under the configured root, and conntrack not at all. Each is one line of fixed fields,
//! checked exactly.

use fleetwatch_telemetry::page::Kind;

use super::files::{self, Malformed};
use crate::snapshot::{Family, LabelSet};

/// `fs/file-nr`: file handles allocated, and the most there may be (`fs.file-max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileNr {
    pub allocated: u64,
    pub max: u64,
}

/// The counts of a file of one line of `N` counts.
fn counts<const N: usize>(text: &str, expected: &str) -> Result<[u64; N], Malformed> {
    let mut lines = files::fields(text);
    let Some((line, fields)) = lines.next() else {
        return Err(Malformed::file(format!("empty: expected {expected}")));
    };
    if let Some((line, _)) = lines.next() {
        return Err(Malformed::line(line, "expected one line only"));
    }
    let wrong = || {
        Malformed::line(
            line,
            format!(
                "expected {expected}, not {}",
                files::quoted(&fields.join(" "))
            ),
        )
    };
    if fields.len() != N {
        return Err(wrong());
    }
    let mut counts = [0; N];
    for (count, field) in counts.iter_mut().zip(&fields) {
        *count = files::number(field).ok_or_else(wrong)?;
    }
    Ok(counts)
}

/// Parses `fs/file-nr`: `allocated unused max`, where `unused` has been 0 since Linux 2.6.
pub(super) fn file_nr(text: &str) -> Result<FileNr, Malformed> {
    let [allocated, _unused, max] = counts::<3>(text, "`allocated unused max`")?;
    Ok(FileNr { allocated, max })
}

/// Parses a file of one count, such as `nf_conntrack_count`.
pub(super) fn count(text: &str) -> Result<u64, Malformed> {
    let [count] = counts::<1>(text, "one count")?;
    Ok(count)
}

/// The families of `file_nr` and of the conntrack counts that are there (the module may not be
/// loaded), each sample labelled `node`.
pub(super) fn families(
    file_nr: FileNr,
    conntrack: (Option<u64>, Option<u64>),
    node: &str,
) -> Vec<Family> {
    let gauges = [
        (
            "fleetwatch_agent_node_file_descriptors_allocated",
            "File handles the kernel has allocated (fs/file-nr)",
            Some(file_nr.allocated),
        ),
        (
            "fleetwatch_agent_node_file_descriptors_max",
            "The most file handles the kernel allocates (fs.file-max)",
            Some(file_nr.max),
        ),
        (
            "fleetwatch_agent_node_conntrack_entries",
            "Connections the netfilter conntrack table holds",
            conntrack.0,
        ),
        (
            "fleetwatch_agent_node_conntrack_entries_max",
            "The most connections the conntrack table holds before it drops packets",
            conntrack.1,
        ),
    ];
    let labels = LabelSet::of([("node", node)]);
    gauges
        .into_iter()
        .filter_map(|(name, help, value)| {
            let mut family = Family::new(name, help, Kind::Gauge);
            family.push(labels.clone(), value? as f64);
            Some(family)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn file_nr_is_three_counts() {
        assert_eq!(
            file_nr("548\t0\t9223372036854775807\n"),
            Ok(FileNr {
                allocated: 548,
                max: 9_223_372_036_854_775_807
            })
        );
        assert_eq!(count("  262144  \n\n"), Ok(262_144));
    }

    #[test]
    fn a_malformed_line_is_named() {
        let cases = [
            (
                file_nr("").map(|_| ()),
                None,
                "empty: expected `allocated unused max`",
            ),
            (
                file_nr("548 0\n").map(|_| ()),
                Some(1),
                "expected `allocated unused max`, not `548 0`",
            ),
            (
                file_nr("548 0 1 2\n").map(|_| ()),
                Some(1),
                "not `548 0 1 2`",
            ),
            (file_nr("548 0 -1\n").map(|_| ()), Some(1), "not `548 0 -1`"),
            (
                file_nr("1 0 1\n1 0 1\n").map(|_| ()),
                Some(2),
                "expected one line only",
            ),
            (
                count("\n\n12a\n").map(|_| ()),
                Some(3),
                "expected one count, not `12a`",
            ),
            (
                count("18446744073709551616\n").map(|_| ()),
                Some(1),
                "expected one count",
            ),
        ];
        for (result, line, message) in cases {
            let error = result.expect_err(message);
            assert_eq!(error.line, line, "{error}");
            assert!(error.message.contains(message), "{error}");
        }
    }

    #[test]
    fn absent_conntrack_leaves_its_families_out() {
        let file_nr = FileNr {
            allocated: 5,
            max: 10,
        };
        let names = |conntrack| -> Vec<&str> {
            families(file_nr, conntrack, "n")
                .iter()
                .map(|f| f.name)
                .collect()
        };
        assert_eq!(names((None, None)).len(), 2);
        assert_eq!(names((Some(1), Some(9))).len(), 4);
        let families = families(file_nr, (Some(1), None), "n");
        assert_eq!(families[2].name, "fleetwatch_agent_node_conntrack_entries");
        assert_eq!(
            families[2].samples,
            vec![(LabelSet::of([("node", "n")]), 1.0)]
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in "([0-9]{1,21}|[ \t\n]|.){0,12}") {
            let _ = file_nr(&text);
            let _ = count(&text);
        }
    }
}
