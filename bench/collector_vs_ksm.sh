#!/usr/bin/env bash
# The collector beside kube-state-metrics v2.20.0 (not a test): one lab per size, both started at
# once against the same objects and pod churn, each under a user and FlowSchema of its own
# (crates/fleetwatch/benches/versus_ksm.rs says what is measured). About 35 minutes on two
# cores: 500 nodes with 3 minutes of steady state, then 2,000 nodes with 10. The load only ever
# targets the loopback lab the benchmark starts and stops itself.
# Usage: bench/collector_vs_ksm.sh            (both sizes)
#        NODES=2000 MINUTES=10 cargo bench -p fleetwatch --bench versus_ksm   (one size)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p fleetwatch
target/release/fleetwatch lab build
uptime
NODES=500 MINUTES=3 cargo bench --locked -p fleetwatch --bench versus_ksm
uptime
NODES=2000 MINUTES=10 cargo bench --locked -p fleetwatch --bench versus_ksm
uptime
