//! `/proc/meminfo`: the node's memory and swap. Read by procfs's `Meminfo`, once every line has
//! been checked here.
//!
//! One family per quantity (`…_memory_total_bytes`, `…_memory_available_bytes`, …), not one
//! family with a `kind` label: the quantities overlap (cached memory is also available memory),
//! so a sum over `kind` would mean nothing.

use std::collections::HashSet;

use fleetwatch_telemetry::page::Kind;
use procfs::{FromRead as _, Meminfo};

use super::files::{self, Malformed};
use crate::snapshot::{Family, LabelSet};

/// The lines procfs's `Meminfo` requires. Only some are served, but without any of them it
/// reads nothing; checking here names the missing one.
const REQUIRED: [&str; 17] = [
    "MemTotal",
    "MemFree",
    "Buffers",
    "Cached",
    "SwapCached",
    "Active",
    "Inactive",
    "SwapTotal",
    "SwapFree",
    "Dirty",
    "Writeback",
    "Mapped",
    "Slab",
    "Committed_AS",
    "VmallocTotal",
    "VmallocUsed",
    "VmallocChunk",
];

const EXPECTED: &str = "expected `Name: value kB` or `Name: value`";

/// Parses `/proc/meminfo`.
pub(super) fn parse(text: &str) -> Result<Meminfo, Malformed> {
    let mut canonical = String::with_capacity(text.len());
    let mut seen = HashSet::new();
    for (line, fields) in files::fields(text) {
        let name = check(&fields).map_err(|message| Malformed::line(line, message))?;
        if !seen.insert(name) {
            return Err(Malformed::line(
                line,
                format!("a second {} line", files::quoted(&format!("{name}:"))),
            ));
        }
        files::push_line(&mut canonical, &fields);
    }
    if let Some(missing) = REQUIRED.iter().find(|name| !seen.contains(*name)) {
        return Err(Malformed::file(format!("no `{missing}:` line")));
    }
    Meminfo::from_read(canonical.as_bytes())
        .map_err(|e| Malformed::file(format!("procfs could not read it: {e}")))
}

/// Checks one line's fields and returns its name. Besides the form, this keeps procfs to what
/// it handles: it cuts the name's last byte off (which must be the ASCII `:`, or it panics on
/// a character boundary) and multiplies kB by 1024 unchecked.
fn check<'a>(fields: &[&'a str]) -> Result<&'a str, String> {
    let (name, value, unit) = match fields {
        [name, value] => (*name, *value, None),
        [name, value, unit] => (*name, *value, Some(*unit)),
        _ => return Err(format!("{EXPECTED}, not {} fields", fields.len())),
    };
    let name = name
        .strip_suffix(':')
        .filter(|n| !n.is_empty())
        .filter(|n| {
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_()".contains(&b))
        })
        .ok_or_else(|| {
            format!(
                "{EXPECTED} (a name of letters, digits, `_()`), not {}",
                files::quoted(name)
            )
        })?;
    let value =
        files::number(value).ok_or_else(|| format!("{EXPECTED}, not {}", files::quoted(value)))?;
    match unit {
        None => Ok(name),
        Some("kB") if value <= u64::MAX / 1024 => Ok(name),
        Some("kB") => Err(format!("{value} kB is more bytes than a u64 holds")),
        Some(unit) => Err(format!("{EXPECTED}, not the unit {}", files::quoted(unit))),
    }
}

/// The families of `meminfo`, each sample labelled `node`. `MemAvailable` (Linux 3.14+) is left
/// out when the kernel does not show it.
pub(super) fn families(meminfo: &Meminfo, node: &str) -> Vec<Family> {
    let quantities = [
        (
            "fleetwatch_agent_node_memory_total_bytes",
            "Usable RAM: physical memory less the kernel's reserved (MemTotal)",
            Some(meminfo.mem_total),
        ),
        (
            "fleetwatch_agent_node_memory_available_bytes",
            "The kernel's estimate of memory available to start new work without swapping \
             (MemAvailable)",
            meminfo.mem_available,
        ),
        (
            "fleetwatch_agent_node_memory_free_bytes",
            "Memory not used at all (MemFree)",
            Some(meminfo.mem_free),
        ),
        (
            "fleetwatch_agent_node_memory_buffers_bytes",
            "Memory in block-device buffers (Buffers)",
            Some(meminfo.buffers),
        ),
        (
            "fleetwatch_agent_node_memory_cached_bytes",
            "Memory in the page cache, less swap cache (Cached)",
            Some(meminfo.cached),
        ),
        (
            "fleetwatch_agent_node_memory_swap_total_bytes",
            "Swap space (SwapTotal)",
            Some(meminfo.swap_total),
        ),
        (
            "fleetwatch_agent_node_memory_swap_free_bytes",
            "Swap space not used (SwapFree)",
            Some(meminfo.swap_free),
        ),
    ];
    let labels = LabelSet::of([("node", node)]);
    quantities
        .into_iter()
        .filter_map(|(name, help, bytes)| {
            let mut family = Family::new(name, help, Kind::Gauge);
            family.push(labels.clone(), bytes? as f64);
            Some(family)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every line procfs requires, with values in kB.
    fn required(values: &[(&str, u64)]) -> String {
        REQUIRED
            .iter()
            .map(|name| {
                let kb = values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, v)| *v);
                format!("{name}:{:>16} kB\n", kb)
            })
            .collect()
    }

    fn bytes(families: &[Family], name: &str) -> Option<f64> {
        let family = families.iter().find(|f| f.name == name)?;
        assert_eq!(family.samples.len(), 1);
        Some(family.samples[0].1)
    }

    #[test]
    fn quantities_are_in_bytes() {
        let mut text = required(&[("MemTotal", 24_683_664), ("MemFree", 18_425_256)]);
        text.push_str("MemAvailable:   24041604 kB\nHugePages_Total:       0\n");
        text.push_str("Active(anon):       1544 kB\nSomeFutureThing_2040:  9 kB\n");
        let meminfo = parse(&text).expect("parses");
        let families = families(&meminfo, "n1");
        assert_eq!(
            bytes(&families, "fleetwatch_agent_node_memory_total_bytes"),
            Some(24_683_664.0 * 1024.0)
        );
        assert_eq!(
            bytes(&families, "fleetwatch_agent_node_memory_available_bytes"),
            Some(24_041_604.0 * 1024.0)
        );
        assert_eq!(
            bytes(&families, "fleetwatch_agent_node_memory_free_bytes"),
            Some(18_425_256.0 * 1024.0)
        );
        assert_eq!(families.len(), 7);
        assert_eq!(families[0].samples[0].0, LabelSet::of([("node", "n1")]));
    }

    #[test]
    fn without_mem_available_its_family_is_left_out() {
        let families = families(&parse(&required(&[])).expect("parses"), "n");
        assert_eq!(families.len(), 6);
        assert!(bytes(&families, "fleetwatch_agent_node_memory_available_bytes").is_none());
    }

    #[test]
    fn a_malformed_line_is_named() {
        let cases = [
            ("MemTotal 5 kB\n", Some(1), "expected `Name: value kB`"),
            ("MemTotal: 5 kB\nMemFree: five kB\n", Some(2), "not `five`"),
            ("MemTotal: 5 MB\n", Some(1), "not the unit `MB`"),
            ("MemTotal: 5 kB extra\n", Some(1), "not 4 fields"),
            ("\n\nMemTotal:\n", Some(3), "not 1 fields"),
            ("Mémoire: 5 kB\n", Some(1), "not `Mémoire:`"),
            ("é: 5 kB\n", Some(1), "a name of letters"),
            (": 5 kB\n", Some(1), "a name of letters"),
            ("MemTotal: -5 kB\n", Some(1), "not `-5`"),
            (
                "MemTotal: 18014398509481984 kB\n",
                Some(1),
                "more bytes than a u64 holds",
            ),
            (
                "MemTotal: 1 kB\nMemTotal: 2 kB\n",
                Some(2),
                "a second `MemTotal:` line",
            ),
            ("MemTotal: 1 kB\n", None, "no `MemFree:` line"),
        ];
        for (text, line, message) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(message), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "([A-Za-z_()é]{0,12}:?|[0-9]{1,21}| +|kB|\n){0,60}") {
            let _ = parse(&text);
        }

        /// With every required line there, procfs reads what passed the checks.
        #[test]
        fn never_panics_with_every_required_line(
            line in prop_oneof!["[A-Za-zé_()]{0,6}[:é]? +[0-9]{1,20}( kB| MB)?", "[^\n]{0,40}"],
            at in 0usize..18,
        ) {
            let mut lines: Vec<String> = required(&[]).lines().map(str::to_owned).collect();
            lines.insert(at.min(lines.len()), line);
            let _ = parse(&lines.join("\n"));
        }
    }
}
