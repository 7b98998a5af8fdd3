//! `/proc/stat`: CPU time by mode, online CPUs, context switches, forks, boot time and tasks
//! blocked on I/O. Read by procfs's `KernelStats`, once every line has been checked here.

use std::collections::HashSet;

use fleetwatch_telemetry::page::Kind;
use procfs::{ExplicitSystemInfo, FromReadSI as _, KernelStats};

use super::files::{self, Malformed};
use crate::snapshot::{Family, LabelSet};

/// The lines procfs requires (it reads `btime` and `processes` whether or not they are served).
const REQUIRED: [&str; 4] = ["cpu", "ctxt", "btime", "processes"];

/// The lines of one count that procfs reads, and the largest count each may hold.
const SINGLE: [(&str, u64); 5] = [
    ("ctxt", u64::MAX),
    ("btime", u64::MAX),
    ("processes", u64::MAX),
    ("procs_running", u32::MAX as u64),
    ("procs_blocked", u32::MAX as u64),
];

/// Parses `/proc/stat`; `ticks_per_second` is the kernel's `USER_HZ`, the unit of its CPU times.
pub(super) fn parse(text: &str, ticks_per_second: u64) -> Result<KernelStats, Malformed> {
    let mut canonical = String::with_capacity(text.len());
    let mut seen = HashSet::new();
    for (line, fields) in files::fields(text) {
        check(&fields).map_err(|message| Malformed::line(line, message))?;
        if !seen.insert(fields[0]) {
            return Err(Malformed::line(
                line,
                format!("a second {} line", files::quoted(fields[0])),
            ));
        }
        files::push_line(&mut canonical, &fields);
    }
    if let Some(missing) = REQUIRED.iter().find(|key| !seen.contains(*key)) {
        return Err(Malformed::file(format!("no `{missing}` line")));
    }
    // Only the ticks are read from this: the rest is for procfs's other files.
    let system = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    KernelStats::from_read(canonical.as_bytes(), &system)
        .map_err(|e| Malformed::file(format!("procfs could not read it: {e}")))
}

/// Checks one line's fields (never empty): a lower-case name and counts, with what procfs
/// needs of the lines it reads.
fn check(fields: &[&str]) -> Result<(), String> {
    let Some((name, values)) = fields.split_first() else {
        return Err("expected `name count…`".to_owned());
    };
    let lower = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    if !name.bytes().all(lower) || values.is_empty() {
        return Err(format!(
            "expected `name count…` (a lower-case name, then counts), not {}",
            files::quoted(&fields.join(" "))
        ));
    }
    if let Some(position) = values.iter().position(|v| files::number(v).is_none()) {
        return Err(format!(
            "expected counts after {}, not {}",
            files::quoted(name),
            files::quoted(values[position])
        ));
    }
    if let Some(cpu) = name.strip_prefix("cpu") {
        // procfs reads every line that starts with `cpu` as a CPU's.
        if !cpu.is_empty() && files::number(cpu).is_none() {
            return Err(format!(
                "expected `cpu` or `cpuN`, not {}",
                files::quoted(name)
            ));
        }
        if !(4..=10).contains(&values.len()) {
            return Err(format!(
                "expected `{name} user nice system idle [iowait irq softirq steal guest \
                 guest_nice]` (4 to 10 tick counts), not {}",
                values.len()
            ));
        }
    } else if let Some((_, max)) = SINGLE.iter().find(|(single, _)| single == name) {
        let fits = files::number(values[0]).is_some_and(|v| v <= *max);
        if values.len() != 1 || !fits {
            return Err(format!("expected `{name} N` (one count, at most {max})"));
        }
    }
    Ok(())
}

/// The families of `stat`, each sample labelled `node`.
pub(super) fn families(stat: &KernelStats, node: &str, ticks_per_second: u64) -> Vec<Family> {
    let labels = LabelSet::of([("node", node)]);
    let mut cpu = Family::new(
        "fleetwatch_agent_node_cpu_seconds_total",
        "Seconds the node's CPUs spent in each mode, summed over CPUs (/proc/stat)",
        Kind::Counter,
    );
    let total = &stat.total;
    let modes = [
        ("user", Some(total.user)),
        ("nice", Some(total.nice)),
        ("system", Some(total.system)),
        ("idle", Some(total.idle)),
        ("iowait", total.iowait),
        ("irq", total.irq),
        ("softirq", total.softirq),
        ("steal", total.steal),
    ];
    // Guest time is left out: the kernel counts it in `user` and `nice` already.
    for (mode, ticks) in modes {
        if let Some(ticks) = ticks {
            let seconds = ticks as f64 / ticks_per_second.max(1) as f64;
            cpu.push(LabelSet::of([("node", node), ("mode", mode)]), seconds);
        }
    }
    let mut families = vec![cpu];
    let gauges = [
        (
            "fleetwatch_agent_node_cpus",
            "The node's online CPUs (the per-CPU lines of /proc/stat)",
            Kind::Gauge,
            Some(stat.cpu_time.len() as f64),
        ),
        (
            "fleetwatch_agent_node_context_switches_total",
            "Context switches on the node since boot",
            Kind::Counter,
            Some(stat.ctxt as f64),
        ),
        (
            "fleetwatch_agent_node_forks_total",
            "Processes and threads created on the node since boot",
            Kind::Counter,
            Some(stat.processes as f64),
        ),
        (
            "fleetwatch_agent_node_boot_time_seconds",
            "When the node booted (Unix time)",
            Kind::Gauge,
            Some(stat.btime as f64),
        ),
        (
            "fleetwatch_agent_node_tasks_blocked",
            "Tasks waiting for I/O to complete (state D)",
            Kind::Gauge,
            stat.procs_blocked.map(f64::from),
        ),
    ];
    for (name, help, kind, value) in gauges {
        if let Some(value) = value {
            let mut family = Family::new(name, help, kind);
            family.push(labels.clone(), value);
            families.push(family);
        }
    }
    families
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIVE: &str = "cpu  300439 106861 47894 557483 2170 0 548 3889 0 0
cpu0 148570 53264 23161 281994 587 0 120 1897 0 0
cpu1 151868 53597 24733 275489 1582 0 427 1991 0 0
intr 2702967 0 0 0 1020 253 0 95
ctxt 2730229
btime 1796312222
processes 37439
procs_running 5
procs_blocked 0
softirq 1529785 2 219066 8 16370 0 0 1147 671573 0 621619
";

    fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = families.iter().find(|f| f.name == name)?;
        let labels: Vec<_> = labels.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
        family
            .samples
            .iter()
            .find(|(set, _)| set.0 == labels)
            .map(|(_, v)| *v)
    }

    #[test]
    fn cpu_time_is_the_summary_line_in_seconds() {
        let stat = parse(LIVE, 100).expect("parses");
        let families = families(&stat, "n1", 100);
        let cpu = |mode| {
            value(
                &families,
                "fleetwatch_agent_node_cpu_seconds_total",
                &[("node", "n1"), ("mode", mode)],
            )
        };
        assert_eq!(cpu("user"), Some(3004.39));
        assert_eq!(cpu("idle"), Some(5574.83));
        assert_eq!(cpu("steal"), Some(38.89));
        assert_eq!(cpu("guest"), None);
        let node = [("node", "n1")];
        assert_eq!(
            value(&families, "fleetwatch_agent_node_cpus", &node),
            Some(2.0)
        );
        assert_eq!(
            value(
                &families,
                "fleetwatch_agent_node_context_switches_total",
                &node
            ),
            Some(2_730_229.0)
        );
        assert_eq!(
            value(&families, "fleetwatch_agent_node_boot_time_seconds", &node),
            Some(1_796_312_222.0)
        );
        assert_eq!(
            value(&families, "fleetwatch_agent_node_forks_total", &node),
            Some(37_439.0)
        );
        assert_eq!(
            value(&families, "fleetwatch_agent_node_tasks_blocked", &node),
            Some(0.0)
        );
    }

    #[test]
    fn many_cpus_extra_white_space_and_unknown_lines_are_fine() {
        let mut text = String::from("  cpu   10 0 5 100 \n");
        for cpu in 0..96 {
            text.push_str(&format!("cpu{cpu}\t1 0 1 2\n"));
        }
        text.push_str("ctxt   7\nbtime 1\nprocesses 2\nnew_line_of_2031 1 2 3\n\n");
        let stat = parse(&text, 100).expect("parses");
        assert_eq!(stat.cpu_time.len(), 96);
        assert_eq!(stat.ctxt, 7);
        // Old kernels' four modes: the others are left out, not zero.
        let families = families(&stat, "n", 100);
        assert_eq!(families[0].samples.len(), 4);
        assert!(
            value(
                &families,
                "fleetwatch_agent_node_tasks_blocked",
                &[("node", "n")]
            )
            .is_none()
        );
    }

    #[test]
    fn a_malformed_line_is_named() {
        let cases = [
            (
                "cpu 1 2 3\nctxt 1\nbtime 1\nprocesses 1\n",
                Some(1),
                "4 to 10 tick counts",
            ),
            (
                "cpu 1 2 3 4\nctxt x\n",
                Some(2),
                "expected counts after `ctxt`, not `x`",
            ),
            ("cpu 1 2 3 4\nctxt 1 2\n", Some(2), "expected `ctxt N`"),
            (
                "cpu 1 2 3 4\ncpux 1 2 3 4\n",
                Some(2),
                "expected `cpu` or `cpuN`",
            ),
            ("cpu 1 2 3 4\nCPU 1 2 3 4\n", Some(2), "a lower-case name"),
            ("cpu 1 2 3 4\ncpu 1 2 3 4\n", Some(2), "a second `cpu` line"),
            (
                "cpu 1 2 3 4\nprocs_running 4294967296\n",
                Some(2),
                "at most 4294967295",
            ),
            (
                "cpu 1 2 3 4\nctxt 1\nprocesses 1\n",
                None,
                "no `btime` line",
            ),
            ("", None, "no `cpu` line"),
        ];
        for (text, line, message) in cases {
            let error = parse(text, 100).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(message), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "(cpu[0-9]?|ctxt|btime|processes|procs_blocked| |[0-9]{1,21}|\n|.){0,80}") {
            let _ = parse(&text, 100);
        }

        #[test]
        fn never_panics_on_anything(text in any::<String>()) {
            let _ = parse(&text, 100);
        }

        /// With the required lines there, procfs reads what passed the checks.
        #[test]
        fn never_panics_with_the_required_lines(
            extra in "(cpu[0-9]{0,3}|ctxt|btime|processes|procs_(running|blocked)|[a-z_]{1,8})( +[0-9]{1,21}){0,11}",
            at in 0usize..6,
        ) {
            let mut lines = vec!["cpu 1 2 3 4", "cpu0 1 2 3 4", "ctxt 1", "btime 1", "processes 1"];
            lines.insert(at.min(lines.len()), &extra);
            let _ = parse(&lines.join("\n"), 100);
        }
    }
}
