#!/usr/bin/env bash
# bench-lifecycle.sh: the snapshot lifecycle on a big store (issue 5, "Benchmark").
#
#   1. examples/bench-lifecycle.rs builds mirror `bench`: 25 snapshots of 50,000 entries (a real
#      Packages.gz index + 49,999 packages of 1–64 KiB, 5 % new versions per snapshot), published
#      with keep = 20: 20 snapshots = 1,000,000 entries stay, 5 are pruned; plus 1,000 orphaned
#      pool files. Every object is a real pool file.
#   2. `snapshot diff bench FIRST LAST` (oldest vs newest retained: the most changes) <= 10 s,
#      text and --json; also the two newest.
#   3. `gc --dry-run`, then `gc` (deletes what only the pruned snapshots and the orphans held) <= 10 s.
#   4. `verify` against `sha256sum` run in parallel (xargs -P nproc) on the same pool files:
#      throughput >= 0.9×. Warm page cache always; cold too when /proc/sys/vm/drop_caches is
#      writable (root outside a container).
#
# Knobs (environment): BENCH_DIR (default /var/tmp/pmirror-fs-bench-lifecycle, removed at the end
# unless BENCH_KEEP=1), BENCH_REPEAT (3), BENCH_SNAPSHOTS (25), BENCH_KEEP_SNAPSHOTS (20),
# BENCH_PER_SNAPSHOT (50000), BENCH_MAX_KIB (64), BENCH_NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
export LC_ALL=C

W=${BENCH_DIR:-/var/tmp/pmirror-fs-bench-lifecycle}
REPEAT=${BENCH_REPEAT:-3}
SNAPSHOTS=${BENCH_SNAPSHOTS:-25}
KEEP=${BENCH_KEEP_SNAPSHOTS:-20}
PER_SNAPSHOT=${BENCH_PER_SNAPSHOT:-50000}
MAX_KIB=${BENCH_MAX_KIB:-64}
BIN=$SRC/target/release/pmirror-fs
BUILDER=$SRC/target/release/examples/bench-lifecycle
NPROC=$(nproc)
# sha256sum invocations get this many files each (amortizes process start-up like a real run).
XARGS_BATCH=500

log() { printf '%s\n' "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

cleanup() {
    if [[ ${BENCH_KEEP:-0} != 1 && -d $W ]]; then rm -rf "$W"; fi
}
trap cleanup EXIT

# Milliseconds a command takes (its stdout kept in $W/last.out).
ms() {
    local s e
    s=$(date +%s%N)
    "$@" >"$W/last.out"
    e=$(date +%s%N)
    echo $(((e - s) / 1000000))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

can_drop_caches() { [[ -w /proc/sys/vm/drop_caches ]] && (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ------------------------------------------------------------------------------------ build
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    cargo build --release --bin pmirror-fs --example bench-lifecycle >&2
fi
[[ -x $BIN && -x $BUILDER ]] || die "build $BIN and $BUILDER first"

rm -rf "$W"
mkdir -p "$W"
STORE=$W/store
CONFIG=$W/config.toml
cat >"$CONFIG" <<EOF
[store]
dir = "$STORE"
fsync = true

[sync]
keep = $KEEP
grace = "0s"
EOF
pm() { "$BIN" --config "$CONFIG" "$@"; }

log "building the store ($SNAPSHOTS snapshots × $PER_SNAPSHOT entries, keep $KEEP) in $STORE …"
t0=$(date +%s)
OUT=$("$BUILDER" --store "$STORE" --snapshots "$SNAPSHOTS" --keep "$KEEP" --per-snapshot "$PER_SNAPSHOT" --max-kib "$MAX_KIB")
FIRST=$(sed -n 's/^first=//p' <<<"$OUT")
LAST=$(sed -n 's/^last=//p' <<<"$OUT")
ENTRIES=$(sed -n 's/^entries=//p' <<<"$OUT")
log "built in $(($(date +%s) - t0)) s: $ENTRIES entries, oldest $FIRST, newest $LAST"
PREV=$(pm snapshot list bench --json | grep '"name"' | sed 's/.*"name": "\(.*\)".*/\1/' | tail -2 | head -1)

# ------------------------------------------------------------------------------------- diff
declare -A R
sample() { # name, command…: REPEAT samples, median into R[name]
    local name=$1 i
    shift
    R[$name]=$(for ((i = 0; i < REPEAT; i++)); do ms "$@"; done | median)
    log "$name: ${R[$name]} ms"
}
sample diff_first_last pm snapshot diff bench "$FIRST" "$LAST"
tail -1 "$W/last.out" >&2
sample diff_first_last_json pm snapshot diff bench "$FIRST" "$LAST" --json
sample diff_newest_two pm snapshot diff bench "$PREV" "$LAST"
sample snapshot_list pm snapshot list bench

# --------------------------------------------------------------------------------------- gc
sample gc_dry_run pm gc --dry-run
tail -1 "$W/last.out" >&2
R[gc]=$(ms pm gc)
log "gc: ${R[gc]} ms: $(head -1 "$W/last.out")"
R[gc_nothing]=$(ms pm gc)
log "gc with nothing to delete: ${R[gc_nothing]} ms: $(head -1 "$W/last.out")"

# ----------------------------------------------------------------------------------- verify
POOL_BYTES=$(find "$STORE/pool/sha256" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
POOL_FILES=$(find "$STORE/pool/sha256" -type f | wc -l)
log "pool: $POOL_FILES files, $POOL_BYTES bytes"
sha256sum_all() { find "$STORE/pool/sha256" -type f -print0 | xargs -0 -P "$NPROC" -n "$XARGS_BATCH" sha256sum; }
pm verify | tail -1 >&2
sha256sum_all >/dev/null # warm the page cache
for ((i = 0; i < REPEAT; i++)); do
    echo "$(ms sha256sum_all) $(ms pm verify)"
done >"$W/warm"
R[sha256sum_warm]=$(cut -d' ' -f1 "$W/warm" | median)
R[verify_warm]=$(cut -d' ' -f2 "$W/warm" | median)
COLD=no
if can_drop_caches; then
    COLD=yes
    for ((i = 0; i < REPEAT; i++)); do
        drop_caches
        a=$(ms sha256sum_all)
        drop_caches
        b=$(ms pm verify)
        echo "$a $b"
    done >"$W/cold"
    R[sha256sum_cold]=$(cut -d' ' -f1 "$W/cold" | median)
    R[verify_cold]=$(cut -d' ' -f2 "$W/cold" | median)
fi

# ---------------------------------------------------------------------------------- summary
mibs() { awk -v b="$POOL_BYTES" -v ms="$1" 'BEGIN {printf "%.0f", b / 1048576 / (ms / 1000)}'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {ok = (op == "le") ? v <= t : v >= t; print ok ? "met" : "MISSED"}'; }
printf '\n%-44s %12s %10s %8s\n' "measurement (median of $REPEAT)" "value" "target" "result"
row() { printf '%-44s %12s %10s %8s\n' "$@"; }
row "entries in the catalog" "$ENTRIES" "" ""
row "snapshot diff oldest->newest (ms)" "${R[diff_first_last]}" "<= 10000" "$(verdict "${R[diff_first_last]}" 10000 le)"
row "snapshot diff oldest->newest --json (ms)" "${R[diff_first_last_json]}" "<= 10000" "$(verdict "${R[diff_first_last_json]}" 10000 le)"
row "snapshot diff newest two (ms)" "${R[diff_newest_two]}" "<= 10000" "$(verdict "${R[diff_newest_two]}" 10000 le)"
row "snapshot list, with unique sizes (ms)" "${R[snapshot_list]}" "" ""
row "gc --dry-run (ms)" "${R[gc_dry_run]}" "<= 10000" "$(verdict "${R[gc_dry_run]}" 10000 le)"
row "gc, deleting (ms, one run)" "${R[gc]}" "<= 10000" "$(verdict "${R[gc]}" 10000 le)"
row "gc, nothing to delete (ms, one run)" "${R[gc_nothing]}" "<= 10000" "$(verdict "${R[gc_nothing]}" 10000 le)"
row "pool: files / MiB" "$POOL_FILES" "$((POOL_BYTES / 1048576))" ""
warm_ratio=$(awk -v a="${R[sha256sum_warm]}" -v b="${R[verify_warm]}" 'BEGIN {printf "%.2f", a / b}')
row "sha256sum x$NPROC, warm (MiB/s)" "$(mibs "${R[sha256sum_warm]}")" "" ""
row "verify, warm (MiB/s)" "$(mibs "${R[verify_warm]}")" "" ""
row "verify / sha256sum, warm" "$warm_ratio" ">= 0.9" "$(verdict "$warm_ratio" 0.9 ge)"
if [[ $COLD == yes ]]; then
    cold_ratio=$(awk -v a="${R[sha256sum_cold]}" -v b="${R[verify_cold]}" 'BEGIN {printf "%.2f", a / b}')
    row "sha256sum x$NPROC, cold (MiB/s)" "$(mibs "${R[sha256sum_cold]}")" "" ""
    row "verify, cold (MiB/s)" "$(mibs "${R[verify_cold]}")" "" ""
    row "verify / sha256sum, cold" "$cold_ratio" ">= 0.9" "$(verdict "$cold_ratio" 0.9 ge)"
else
    row "cold cache" "not measured" "" "(no drop_caches)"
fi
