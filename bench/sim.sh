#!/usr/bin/env bash
# Simulator benchmark (not a timed test): 500 clusters, 1,000,000 nodes in all, 6 virtual hours,
# the 2024-12-11 change rolled out unguarded (the busiest case: crash-looping control planes).
# Prints wall time and peak memory of `fleetwatch sim`, then the same fleet with 10x the nodes
# (memory must not grow: nodes are aggregated by state), then the criterion benchmark.
# Usage: bench/sim.sh [--no-criterion]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p fleetwatch
bin="$CARGO_TARGET_DIR/release/fleetwatch"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

# fleet FILE CLUSTERS TOTAL_NODES: one staging cluster, sizes log-spaced from 40 to 10,000 nodes,
# scaled to add up to TOTAL_NODES.
fleet() {
  awk -v n="$2" -v total="$3" 'BEGIN {
    for (i = 0; i < n; i++) { raw[i] = 40 * exp(log(250) * i / (n - 1)); sum += raw[i] }
    print "clusters:"
    for (i = 0; i < n; i++) {
      nodes = int(raw[i] * total / sum + 0.5); if (nodes < 1) nodes = 1
      printf "  - name: c%03d\n    nodes: %d\n", i, nodes
      if (i == 0) print "    staging: true"
    }
  }' > "$1"
}
fleet "$dir/1m.yaml" 500 1000000
fleet "$dir/10m.yaml" 500 10000000

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u '+%Y-%m-%d %H:%M UTC')"
for f in 1m 10m; do
  echo "== fleetwatch sim, 500 clusters, ${f} nodes, 6 virtual hours, guard off"
  /usr/bin/time -f "   %e s wall, %U s user, %M KiB peak RSS" \
    "$bin" sim --fleet "$dir/$f.yaml" --change examples/change-naive-list.yaml \
    --policy examples/policy-unguarded.yaml --hours 6 --format json > "$dir/$f.json"
done
if [[ "${1:-}" != "--no-criterion" ]]; then
  cargo bench --locked -p fleetwatch-sim --bench fleet
fi
