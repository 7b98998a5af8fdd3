#!/usr/bin/env bash
# Load-lab sweep (not a test): every client pattern at 50, 100, 200, 500 and 1,000 nodes × 30
# pods against a real kube-apiserver the sweep starts and stops itself, then the simulator's cost
# model fitted to it. About 45 minutes on two cores; the load only ever targets that loopback lab.
# Writes bench/sweep/{sweep.csv,sweep.svg,sweep.png,calibration.toml,fit.txt} and prints the
# table. Install the result as the simulator's default with
#   cp bench/sweep/calibration.toml crates/sim/src/calibration.toml
# Usage: bench/sweep.sh [extra `fleetwatch lab sweep` flags, e.g. --sizes 50,100]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p fleetwatch
bin="$CARGO_TARGET_DIR/release/fleetwatch"
out=bench/sweep
mkdir -p "$out"
uptime
"$bin" lab sweep --out "$out" --max-duration 30s --list-interval 10s --churn 5 "$@"
uptime
"$bin" lab calibrate --sweep "$out/sweep.csv" --out "$out/calibration.toml" | tee "$out/fit.txt"
