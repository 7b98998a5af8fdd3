//! `/proc/net/dev`: bytes, packets, errors and drops of each network device. Read by procfs's
//! `InterfaceDeviceStatus`, once every line has been checked here.
//!
//! The file is the reader's network namespace: the agent sees the node's devices only with the
//! host's network (`hostNetwork: true`), as node-exporter does. A busy node has a device per
//! pod; [`MAX_DEVICES`] bounds the series.

use std::collections::HashSet;

use fleetwatch_telemetry::page::Kind;
use procfs::FromRead as _;
use procfs::net::{DeviceStatus, InterfaceDeviceStatus};

use super::files::{self, Malformed};
use crate::snapshot::{Family, LabelSet};

/// At most this many devices are served, the first in the file's order: the kernel lists
/// devices as they were created, so the node's own (`lo`, its NICs, bridges) come before the
/// pods' veths. The rest are counted in `fleetwatch_agent_node_network_devices`.
pub const MAX_DEVICES: usize = 256;

const EXPECTED: &str = "expected `device: ` and 16 counts";

/// The devices of `/proc/net/dev`.
#[derive(Debug)]
pub(super) struct NetDev {
    /// In the file's order, at most [`MAX_DEVICES`].
    pub devices: Vec<DeviceStatus>,
    /// How many devices the file lists, served or not.
    pub listed: usize,
}

/// Parses `/proc/net/dev`: two header lines, then one line per device.
pub(super) fn parse(text: &str) -> Result<NetDev, Malformed> {
    // procfs skips the first two lines unread, whatever they are.
    let mut canonical = String::from("header\nheader\n");
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    let mut lines = files::lines(text);
    for (expected, start) in [("`Inter-|`", "Inter-|"), ("` face |`", "face |")] {
        match lines.next() {
            Some((_, line)) if line.trim_start().starts_with(start) => {}
            Some((line, _)) => {
                return Err(Malformed::line(
                    line,
                    format!("expected the header {expected}"),
                ));
            }
            None => return Err(Malformed::file("no header lines")),
        }
    }
    for (line, text) in lines {
        let (name, counts) = check(text).map_err(|message| Malformed::line(line, message))?;
        if !seen.insert(name) {
            return Err(Malformed::line(
                line,
                format!("a second {} line", files::quoted(name)),
            ));
        }
        if names.len() < MAX_DEVICES {
            canonical.push_str(name);
            canonical.push_str(": ");
            files::push_line(&mut canonical, &counts);
            names.push(name);
        }
    }
    let mut read = InterfaceDeviceStatus::from_read(canonical.as_bytes())
        .map_err(|e| Malformed::file(format!("procfs could not read it: {e}")))?;
    let devices = names
        .iter()
        .map(|name| {
            read.0.remove(*name).ok_or_else(|| {
                Malformed::file(format!(
                    "procfs did not read device {}",
                    files::quoted(name)
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(NetDev {
        devices,
        listed: seen.len(),
    })
}

/// Checks a device's line and returns its name and counts. The name is what comes before the
/// first `:` (a device's name cannot hold one), so a count written against the colon, as old
/// kernels did, is still read.
fn check(line: &str) -> Result<(&str, Vec<&str>), String> {
    let Some((name, rest)) = line.split_once(':') else {
        return Err(format!("{EXPECTED}, not {}", files::quoted(line.trim())));
    };
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!(
            "{EXPECTED} (a name without white space), not {}",
            files::quoted(&format!("{name}:"))
        ));
    }
    let counts: Vec<&str> = rest.split_whitespace().collect();
    if counts.len() != 16 {
        return Err(format!("{EXPECTED}, not {} counts", counts.len()));
    }
    if let Some(bad) = counts.iter().find(|c| files::number(c).is_none()) {
        return Err(format!("{EXPECTED}, not {}", files::quoted(bad)));
    }
    Ok((name, counts))
}

/// A device's counter: its name, help and value.
type Counter = (&'static str, &'static str, fn(&DeviceStatus) -> u64);

const COUNTERS: [Counter; 8] = [
    (
        "fleetwatch_agent_node_network_receive_bytes_total",
        "Bytes the device received",
        |d| d.recv_bytes,
    ),
    (
        "fleetwatch_agent_node_network_receive_packets_total",
        "Packets the device received",
        |d| d.recv_packets,
    ),
    (
        "fleetwatch_agent_node_network_receive_errors_total",
        "Bad packets the device received",
        |d| d.recv_errs,
    ),
    (
        "fleetwatch_agent_node_network_receive_drops_total",
        "Packets the device received and dropped",
        |d| d.recv_drop,
    ),
    (
        "fleetwatch_agent_node_network_transmit_bytes_total",
        "Bytes the device sent",
        |d| d.sent_bytes,
    ),
    (
        "fleetwatch_agent_node_network_transmit_packets_total",
        "Packets the device sent",
        |d| d.sent_packets,
    ),
    (
        "fleetwatch_agent_node_network_transmit_errors_total",
        "Packets the device failed to send",
        |d| d.sent_errs,
    ),
    (
        "fleetwatch_agent_node_network_transmit_drops_total",
        "Packets the device dropped instead of sending",
        |d| d.sent_drop,
    ),
];

/// The families of `dev`: each counter labelled `node` and `device`, and the devices listed.
pub(super) fn families(dev: &NetDev, node: &str) -> Vec<Family> {
    let mut families: Vec<Family> = COUNTERS
        .iter()
        .map(|(name, help, value)| {
            let mut family = Family::new(name, help, Kind::Counter);
            for device in &dev.devices {
                let labels = LabelSet::of([("node", node), ("device", &device.name)]);
                family.push(labels, value(device) as f64);
            }
            family
        })
        .collect();
    let mut listed = Family::new(
        "fleetwatch_agent_node_network_devices",
        "Network devices /proc/net/dev lists; at most 256 have series",
        Kind::Gauge,
    );
    listed.push(LabelSet::of([("node", node)]), dev.listed as f64);
    families.push(listed);
    families
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
";

    fn device(name: &str, first: u64) -> String {
        let counts: Vec<String> = (first..first + 16).map(|n| n.to_string()).collect();
        format!("{name:>6}: {}\n", counts.join("  "))
    }

    #[test]
    fn devices_keep_their_order_and_odd_names() {
        let mut text = HEADER.to_owned();
        for (name, first) in [
            ("lo", 0),
            ("eth0", 100),
            ("br-3f2a.10", 200),
            ("cali-a.b_c", 300),
        ] {
            text.push_str(&device(name, first));
        }
        // Old kernels wrote the first count against the colon.
        text.push_str("  veth9:1000 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n");
        let dev = parse(&text).expect("parses");
        let names: Vec<_> = dev.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "br-3f2a.10", "cali-a.b_c", "veth9"]);
        let eth0 = &dev.devices[1];
        assert_eq!(
            (
                eth0.recv_bytes,
                eth0.recv_packets,
                eth0.recv_errs,
                eth0.recv_drop
            ),
            (100, 101, 102, 103)
        );
        assert_eq!(
            (
                eth0.sent_bytes,
                eth0.sent_packets,
                eth0.sent_errs,
                eth0.sent_drop
            ),
            (108, 109, 110, 111)
        );
        assert_eq!(dev.devices[4].recv_bytes, 1000);
        let families = families(&dev, "n1");
        let transmit = &families[4];
        assert_eq!(
            transmit.name,
            "fleetwatch_agent_node_network_transmit_bytes_total"
        );
        assert_eq!(
            transmit.samples[2],
            (
                LabelSet::of([("node", "n1"), ("device", "br-3f2a.10")]),
                208.0
            )
        );
        assert_eq!(families[8].samples[0].1, 5.0);
    }

    #[test]
    fn devices_past_the_bound_are_counted_not_served() {
        let mut text = HEADER.to_owned();
        for i in 0..MAX_DEVICES + 44 {
            text.push_str(&device(&format!("veth{i}"), 1));
        }
        let dev = parse(&text).expect("parses");
        assert_eq!(dev.devices.len(), MAX_DEVICES);
        assert_eq!(dev.devices[MAX_DEVICES - 1].name, "veth255");
        assert_eq!(dev.listed, 300);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let cases = [
            (String::new(), None, "no header lines".to_owned()),
            (
                "face |\n".to_owned(),
                Some(1),
                "expected the header `Inter-|`".to_owned(),
            ),
            (
                format!("{HEADER}eth0 1 2\n"),
                Some(3),
                "not `eth0 1 2`".to_owned(),
            ),
            (
                format!("{HEADER}eth0: 1 2\n"),
                Some(3),
                "not 2 counts".to_owned(),
            ),
            (
                format!("{HEADER}: 1\n"),
                Some(3),
                "a name without white space".to_owned(),
            ),
            (
                format!("{HEADER}a b: 1\n"),
                Some(3),
                "not `a b:`".to_owned(),
            ),
            (
                format!(
                    "{HEADER}\n{}",
                    device("eth0", 1).replace("16", "18446744073709551616")
                ),
                Some(4),
                "not `18446744073709551616`".to_owned(),
            ),
            (
                format!("{HEADER}{}{}", device("lo", 0), device("lo", 1)),
                Some(4),
                "a second `lo` line".to_owned(),
            ),
        ];
        for (text, line, message) in cases {
            let error = parse(&text).expect_err(&text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(&message), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(body in "([a-z0-9.-]{0,8}:?| +|[0-9]{1,21}|\n|.){0,80}") {
            let _ = parse(&format!("{HEADER}{body}"));
        }

        #[test]
        fn never_panics_on_anything(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
