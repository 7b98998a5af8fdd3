#!/usr/bin/env bash
# Load-lab sweep (not a test): every client pattern at 50, 100, 200, 500 and 1,000 nodes × 30
# pods against a real kube-apiserver the sweep starts and stops itself, then the simulator's cost
# model fitted to it. About 45 minutes on two cores; the load only ever targets that loopback lab.
# Writes <out>/{sweep.csv,sweep.svg,sweep.png,calibration.toml,fit.txt} and prints the table;
# <out> is bench/sweep for the default release (v1.37.2) and bench/sweep-<release> for another.
# Install the result as the simulator's calibration for that release, e.g.
#   cp bench/sweep/calibration.toml crates/sim/src/calibration.toml
# Usage: bench/sweep.sh [--kube-version V] [extra `fleetwatch lab sweep` flags, e.g. --sizes 50,100]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
out=bench/sweep
release=()
if [[ "${1:-}" == "--kube-version" ]]; then
  release=(--kube-version "$2")
  shift 2
  case "${release[1]#v}" in
    1.37|1.37.2) ;;
    1.30|1.30.14) out=bench/sweep-v1.30.14 ;;
    *) echo "unknown release ${release[1]}; expected 1.37 or 1.30" >&2; exit 2 ;;
  esac
fi
cargo build --release --locked -p fleetwatch
bin="$CARGO_TARGET_DIR/release/fleetwatch"
mkdir -p "$out"
uptime
"$bin" lab sweep "${release[@]}" --out "$out" --max-duration 30s --list-interval 10s --churn 5 "$@"
uptime
"$bin" lab calibrate --sweep "$out/sweep.csv" --out "$out/calibration.toml" | tee "$out/fit.txt"
