#!/usr/bin/env bash
# switch-load.sh: the switch load test (tests/integration/switch_load.rs, issue 13) for longer
# runs, repeated, with a summary. Real apt clients loop `apt-get update` + `apt-get download`
# through the shipped nginx site and the mount while the upstream moves on, each generation
# synced and published; per mode it counts apt runs and failed runs:
#
#   direct                               Debian + Proxmox layouts, one client forcing by-hash
#   proxy                                through the shipped front proxy (keep-alive pool,
#                                        X-Pmirror-Pin)
#   keepalive-off                        nginx `keepalive_timeout 0` (measured: pins cannot help)
#   connection-closed-every-2-requests   nginx `keepalive_requests 2`: apt reconnects mid-update
#   proxy-without-pin-header             a front proxy that does not name the client
#
# The first two must show 0 failed runs (the tests fail otherwise); the last three are measured,
# and their tests fail only on a failure other than the index race pins close.
#
#   scripts/switch-load.sh [RUNS] [GENERATIONS]     defaults: 3 runs, 50 generations
#
# Run as root (FUSE) with nginx and apt installed, like the test suite (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
GENERATIONS=${2:-50}
export LC_ALL=C
[ "$(id -u)" = 0 ] || { echo "switch-load.sh: run as root (the tests mount FUSE)" >&2; exit 1; }

cargo test --quiet --test integration --no-run 2>&1 | grep -v '^ *Executable' >&2 || true
log=$(mktemp /tmp/switch-load.XXXXXX)
trap 'rm -f "$log"' EXIT
failed_runs=0
for run in $(seq 1 "$RUNS"); do
    started=$(date +%s)
    if PMIRROR_LOAD_GENERATIONS=$GENERATIONS cargo test --quiet --test integration switch_load -- \
        --nocapture --test-threads 1 > "$log.out" 2>&1; then
        verdict=passed
    else
        verdict=FAILED
        failed_runs=$((failed_runs + 1))
        grep -E "panicked|failed, first" "$log.out" | head -n 5 >&2 || true
    fi
    grep '^SWITCH-LOAD ' "$log.out" | sed "s/^/run=$run /" >> "$log"
    echo "run $run: $verdict in $(( $(date +%s) - started )) s" >&2
done
rm -f "$log.out"

echo
echo "switch load: $RUNS runs of the switch_load tests, $GENERATIONS generations each (measured modes: half each)"
printf '%-38s %6s %9s %8s %9s %8s\n' mode runs switches "apt runs" failed "failed %"
awk '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      m = v["mode"]; order[m] = order[m] ? order[m] : ++n; name[order[m]] = m
      runs[m]++; sw[m] += v["switches"]; apt[m] += v["runs"]; bad[m] += v["failed"] }
    END { for (i = 1; i <= n; i++) { m = name[i]
            printf "%-38s %6d %9d %8d %9d %7.1f%%\n", m, runs[m], sw[m], apt[m], bad[m], apt[m] ? 100 * bad[m] / apt[m] : 0 } }
' "$log"
echo
[ "$failed_runs" = 0 ] && echo "all $RUNS runs passed" || { echo "$failed_runs of $RUNS runs FAILED"; exit 1; }
