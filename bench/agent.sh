#!/usr/bin/env bash
# The node agent's own cost beside the per-node alternative (not a test): `fleetwatch agent`
# against the fixture kubelet at 110 pods (crates/agent/examples/fixture_kubelet.rs, the
# kubelet's v1.37 formats), a 30 s interval, DNS probed every 10 s through a real dnsmasq cache
# and directly against the real dnsmasq behind it, and
# /metrics scraped every 30 s as Prometheus would; beside it, in the same run, the load lab's
# `watch-node` pattern (one informer on its node's pods, the usual per-node agent design) against
# a 1-node, 110-pod lab with pod churn, measured as `lab load` with that pattern minus `lab load`
# with no agent (`idle`), the probe and churn being the same in both.
#
# Prints a table of RSS (median and max of samples every 5 s) and CPU (% of one core over the
# window, from /proc/<pid>/stat). Only loopback: the lab is the one this script starts and stops.
# Usage: bench/agent.sh [SECONDS]    (default 600: the issue's 10 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
cache="${FLEETWATCH_CACHE:-$HOME/.cache/fleetwatch}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  target/release/fleetwatch lab down --dir "$work/lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked -p fleetwatch --bin fleetwatch -p fleetwatch-agent --example fixture_kubelet
scripts/dnsmasq >/dev/null
target/release/fleetwatch lab build >/dev/null
fleetwatch=target/release/fleetwatch

# Samples the RSS (kB) of pid $1 every 5 s for $2 seconds into $3, then appends the CPU seconds
# (utime + stime) it used over the window as the last line, prefixed "cpu".
sample() {
  local pid=$1 duration=$2 out=$3 ticks start end
  ticks=$(getconf CLK_TCK)
  start=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  local until=$((SECONDS + duration))
  while ((SECONDS < until)); do
    awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" >> "$out"
    sleep 5
  done
  end=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  echo "cpu $(( end - start )) $ticks $duration" >> "$out"
}

# "median_MiB max_MiB cpu_percent" of a sample file.
summarize() {
  python3 - "$1" <<'PY'
import statistics, sys
lines = open(sys.argv[1]).read().split("\n")
rss = [int(l) for l in lines if l.strip().isdigit()]
_, used, ticks, duration = next(l for l in lines if l.startswith("cpu")).split()
cpu = int(used) / int(ticks) / int(duration) * 100
print(f"{statistics.median(rss) / 1024:.1f} {max(rss) / 1024:.1f} {cpu:.3f}")
PY
}

# --- the agent -------------------------------------------------------------------------------
target/release/examples/fixture_kubelet --pods 110 --node node-1 --listen 127.0.0.1:0 \
  --cert-dir "$work/kubelet" > "$work/kubelet.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^node=' "$work/kubelet.out" 2>/dev/null && break; sleep 0.2; done
kubelet_url=$(sed -n 's/^url=//p' "$work/kubelet.out")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port)
cache_port=$(free_port)
dnsmasq=("$cache/bin/dnsmasq-2.90/dnsmasq" --keep-in-foreground --conf-file=/dev/null --no-resolv
  --no-hosts --bind-interfaces --listen-address=127.0.0.1 --user="$(id -un)" --pid-file=)
# The cluster DNS, and a node-local cache in front of it.
"${dnsmasq[@]}" --port="$upstream_port" --local-ttl=30 \
  --host-record=kubernetes.default.svc.cluster.local,10.96.0.1 --log-facility="$work/upstream.log" &
pids+=($!)
"${dnsmasq[@]}" --port="$cache_port" --server="127.0.0.1#$upstream_port" --use-stale-cache \
  --log-facility="$work/cache.log" &
pids+=($!)
$fleetwatch agent --node-name node-1 --kubelet "$kubelet_url" --kubelet-ca "$work/kubelet/ca.crt" \
  --kubelet-token-file "$work/kubelet/token" --interval 30 \
  --dns-resolver "127.0.0.1:$cache_port" --cluster-dns "127.0.0.1:$upstream_port" \
  --listen 127.0.0.1:19479 > "$work/agent.log" 2>&1 &
agent=$!
pids+=($agent)
sleep 2
kill -0 "$agent" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
# Prometheus's scrape, every 30 s.
( while sleep 30; do curl -s -o /dev/null 127.0.0.1:19479/metrics; done ) &
pids+=($!)

# --- the lab's watch-node agent, at the same time -------------------------------------------
$fleetwatch lab up --dir "$work/lab" --nodes 1 --pods-per-node 110 > "$work/lab-up.log" 2>&1
lab_seconds=$(( (seconds - 60) / 2 ))
lab_load() {
  $fleetwatch lab load --dir "$work/lab" --pattern "$1" --max-duration "${lab_seconds}s" \
    --churn 1 --format json > "$work/load-$1.json" 2> "$work/load-$1.log" &
  local pid=$!
  sample "$pid" "$lab_seconds" "$work/$1.samples"
  wait "$pid"
}
sample "$agent" "$seconds" "$work/agent.samples" &
sampler=$!
lab_load idle
lab_load watch-node
wait "$sampler"
grep -q . "$work/agent.samples" || { echo "no agent samples" >&2; exit 1; }
curl -s 127.0.0.1:19479/metrics | grep -E '^fleetwatch_agent_source_up' >&2

read -r agent_median agent_max agent_cpu <<< "$(summarize "$work/agent.samples")"
read -r idle_median idle_max idle_cpu <<< "$(summarize "$work/idle.samples")"
read -r watch_median watch_max watch_cpu <<< "$(summarize "$work/watch-node.samples")"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $seconds s (lab rows: $lab_seconds s each)"
printf '| %-48s | %10s | %8s | %12s |\n' "process" "RSS MiB p50" "RSS max" "CPU % core"
printf '| %-48s | %10s | %8s | %12s |\n' "fleetwatch agent (110 pods, 30 s)" "$agent_median" "$agent_max" "$agent_cpu"
printf '| %-48s | %10s | %8s | %12s |\n' "lab load --pattern idle (probe, churn)" "$idle_median" "$idle_max" "$idle_cpu"
printf '| %-48s | %10s | %8s | %12s |\n' "lab load --pattern watch-node (1 agent)" "$watch_median" "$watch_max" "$watch_cpu"
python3 - "$watch_median" "$idle_median" "$watch_cpu" "$idle_cpu" <<'PY'
import sys
wm, im, wc, ic = map(float, sys.argv[1:])
print(f"| {'watch-node agent alone (difference)':<48} | {wm - im:10.1f} | {'':>8} | {wc - ic:12.3f} |")
PY
