#!/usr/bin/env bash
# bench-medium.sh: what writing an offline medium costs (issue 14), next to plain tools in one run.
#
#   scripts/bench-medium.sh BIN
#
# BIN is a release pmirror-fs with the `medium` commands. One signed repository of BENCH_PACKAGES
# (10,000) package files of 4–64 KiB (random, so nothing deduplicates), written by
# scripts/bench/make-repo.py — the Debian-style fixture bench-sync.sh syncs — is served by a
# plain nginx on 127.0.0.1 and mirrored once by `pmirror-fs sync` into a store. Then:
#
#   1. Export: for RUNS rounds (default 3), each side onto a freshly made ext4 (a BENCH_IMAGE
#      (2G) image on its own loop device; `mkfs.ext4` again before every sample, inode tables and
#      journal initialised up front so no background ext4lazyinit writes into a sample), the order
#      alternating per round so neither always runs second on a warmer machine:
#        medium   `medium sync bench` of the published snapshot (copies every object, hashing
#                 it, renames it; all of them made durable together — syncfs, then an fsync per
#                 object and directory — before the catalog, view image and README);
#        cp       `cp -r` of the store's pool/ (exactly the same objects, checked below), then
#                 `sync -f` of that filesystem; the cp alone is reported too (no durability).
#      The page cache holds the store for both (it is read once before the first round). Prints
#      every sample (with the bytes the loop device saw), then the medians, MB/s of the unique
#      object bytes, medium/cp (ratio of the medians; also the median of the per-round ratios,
#      steadier under background load).
#   2. Incremental: the upstream moves one generation (BENCH_GROWTH, 2 %, more packages: the same
#      seed rewrites the first BENCH_PACKAGES byte for byte; new indices, Release re-signed), the
#      store syncs it, `medium diff` says what the medium lacks (.add.bytes: the delta's unique
#      bytes), `medium sync` writes it onto the last round's medium. Prints written_bytes / delta
#      (the issue's target: ≤ 1.05×, PASS or MISS), copied.bytes against the diff, and the bytes
#      the loop device saw (/sys/block/loopN/stat, sectors written, after a `sync -f`) / delta.
#
# Everything (mounts, loop devices, nginx, the work dir) goes at the end, also on failure.
# Knobs (environment): RUNS (3), BENCH_PACKAGES (10000), BENCH_GROWTH (2: percent of new
# packages in the next generation), BENCH_IMAGE (2G: each ext4 image), BENCH_DIR (work dir,
# default a fresh /var/tmp/pmirror-fs-bench-medium.XXXXXX, removed at the end unless BENCH_KEEP=1).
# Needs root (loop devices, mount), nginx, gpg, python3, curl, mkfs.ext4, losetup; jq if there
# (else python3 reads the JSON). Builds nothing: pass a release binary.
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 BIN" >&2; exit 2; }
BIN_ARG=$(realpath "$1")
cd "$(dirname "$0")/.."
SRC=$PWD
export LC_ALL=C

RUNS=${RUNS:-3}
PACKAGES=${BENCH_PACKAGES:-10000}
GROWTH=${BENCH_GROWTH:-2}
IMAGE_SIZE=${BENCH_IMAGE:-2G}
TARGET=1.05 # issue 14: an incremental medium sync writes at most 1.05 × the delta's unique bytes
SIDES=(medium cp)
# log, die, wait_gone, stop_nginx, free_port, median, paired_ratio, elapsed_ms, now, …
# shellcheck source=bench/lib.sh
source "$SRC/scripts/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (loop devices, mount)"
[ -x "$BIN_ARG" ] || die "$BIN_ARG is not an executable"
for tool in /usr/sbin/nginx gpg python3 curl mkfs.ext4 losetup mountpoint; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx gpg python3 curl e2fsprogs util-linux)"
done
# jget FILE PATH: one value of a JSON document, PATH like .copied.bytes (jq, else python3).
if command -v jq >/dev/null; then
    jget() { jq -r "$2" "$1"; }
else
    jget() {
        python3 -c 'import functools, json, sys
doc = json.load(open(sys.argv[1]))
print(functools.reduce(lambda d, k: d[k], [k for k in sys.argv[2].split(".") if k], doc))' "$1" "$2"
    }
fi
# ratio A B [DIGITS]: A / B (0 when B is 0).
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-3}" 'BEGIN { printf "%.*f", d, (b > 0) ? a / b : 0 }'; }
# mbps BYTES MS: 10^6 bytes per second.
mbps() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.1f", (ms > 0) ? b / ms / 1000 : 0 }'; }
med() { median | awk '{ printf "%.1f", $1 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }

W=${BENCH_DIR:-$(mktemp -d /var/tmp/pmirror-fs-bench-medium.XXXXXX)}
mkdir -p "$W/bin"
chmod 755 "$W" # nginx's workers (www-data) read the upstream under it
cp "$BIN_ARG" "$W/bin/pmirror-fs" # a copy: a rebuild elsewhere must not swap it mid-run
BIN=$W/bin/pmirror-fs

# ---------------------------------------------------------------- what we own, and cleanup
PIDS_NGINX=()
declare -A LOOP # SIDE → /dev/loopN, attached to $W/img-SIDE

cleanup() {
    local rc=$? side
    set +e
    stop_nginx
    for side in "${SIDES[@]}"; do
        mountpoint -q "$W/mnt-$side" 2>/dev/null && { umount "$W/mnt-$side" || umount -l "$W/mnt-$side"; }
        [ -n "${LOOP[$side]:-}" ] && losetup -d "${LOOP[$side]}"
    done
    [ -d "$W/gnupg" ] && { GNUPGHOME=$W/gnupg gpgconf --kill gpg-agent 2>/dev/null; }
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$W"; else log "kept $W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- filesystems
# fresh_fs SIDE: a new, empty ext4 on SIDE's loop device, mounted on $W/mnt-SIDE.
fresh_fs() {
    local side=$1 mnt=$W/mnt-$1
    mountpoint -q "$mnt" && umount "$mnt"
    if [ -z "${LOOP[$side]:-}" ]; then
        truncate -s "$IMAGE_SIZE" "$W/img-$side"
        LOOP[$side]=$(losetup -f --show "$W/img-$side")
    fi
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "${LOOP[$side]}"
    mkdir -p "$mnt"
    mount "${LOOP[$side]}" "$mnt"
}
# written_sectors SIDE: sectors written to SIDE's loop device so far (field 7 of its stat).
written_sectors() { awk '{ print $7 }' "/sys/block/${LOOP[$1]#/dev/}/stat"; }

# ---------------------------------------------------------------- the upstream repository
export GNUPGHOME=$W/gnupg
mkdir -p -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'pmirror-fs bench <bench@pmirror-fs.invalid>' ed25519 sign never 2>/dev/null
gpg --batch --export >"$W/key.gpg"
# make_repo COUNT: the upstream with COUNT packages (seed 1: a larger COUNT keeps the first ones).
make_repo() {
    python3 "$SRC/scripts/bench/make-repo.py" --out "$W/up" --root bench/deb --layout pool --count "$1" \
        --seed 1 --gnupghome "$GNUPGHOME"
    gpgconf --kill gpg-agent 2>/dev/null || true # signing is done; leave no agent behind
    chmod -R a+rX "$W/up"
}
t0=$(now)
make_repo "$PACKAGES"
log "upstream: $PACKAGES packages, $(du -sm "$W/up" | cut -f1) MiB, written in $(elapsed_ms "$t0" "$(now)") ms"

PORT=$(free_port)
mkdir -p "$W/nginx"
{
    nginx_conf_head "$W/nginx" 768
    cat <<EOF
    access_log off;
    server { listen 127.0.0.1:$PORT; root $W/up; }
}
EOF
} >"$W/nginx/nginx.conf"
INRELEASE=http://127.0.0.1:$PORT/bench/deb/dists/bookworm/InRelease
start_nginx "$W/nginx" "$INRELEASE"

cat >"$W/config.toml" <<EOF
[store]
dir = "$W/store"

[[mirror]]
id = "bench"
repository = "deb http://127.0.0.1:$PORT/bench/deb bookworm main"
architectures = ["amd64"]
key = "$W/key.gpg"

[[medium]]
id = "bench"
path = "$W/mnt-medium"
mirrors = ["bench"]
EOF

# pm ARGS…: the binary on this config; stderr to $W/last.log, shown on failure.
pm() { "$BIN" --config "$W/config.toml" "$@" 2>"$W/last.log" || { cat "$W/last.log" >&2; die "pmirror-fs $* failed"; }; }

t0=$(now)
pm sync >"$W/sync-1.log"
log "store: first sync in $(elapsed_ms "$t0" "$(now)") ms"

# ---------------------------------------------------------------- 1. export
for side in "${SIDES[@]}"; do fresh_fs "$side"; done
pm medium diff bench --json >"$W/diff-0.json"
OBJECTS=$(jget "$W/diff-0.json" .total.files)
UNIQUE=$(jget "$W/diff-0.json" .total.bytes)
read -r POOL_FILES POOL_BYTES < <(find "$W/store/pool" -type f -printf '%s\n' | awk '{ n++; b += $1 } END { print n + 0, b + 0 }')
[ "$POOL_FILES" = "$OBJECTS" ] && [ "$POOL_BYTES" = "$UNIQUE" ] \
    || die "the store's pool ($POOL_FILES files, $POOL_BYTES bytes) is not the snapshot's objects ($OBJECTS, $UNIQUE): cp would copy other bytes"
[ "$(jget "$W/diff-0.json" .add.bytes)" = "$UNIQUE" ] || die "a fresh medium already holds objects?"
# The image must hold the objects with room for the medium's catalog, image and metadata.
IMAGE_BYTES=$(stat -c %s "$W/img-medium")
((UNIQUE * 10 < IMAGE_BYTES * 7)) || die "BENCH_IMAGE=$IMAGE_SIZE is too small for $(mb "$UNIQUE") MB of objects"
log "export: $OBJECTS objects, $(mb "$UNIQUE") MB unique; warming the page cache"
find "$W/store/pool" -type f -exec cat {} + >/dev/null

# run SIDE ROUND: one sample onto a fresh filesystem.
run() {
    local side=$1 round=$2 mnt=$W/mnt-$1 s0 s1 t0 t1 t2 ms ms_sync dev note
    fresh_fs "$side"
    sync
    s0=$(written_sectors "$side")
    t0=$(now)
    case $side in
        medium) pm medium sync bench --json >"$W/export-$round.json" ;;
        cp) cp -r "$W/store/pool" "$mnt/" ;;
    esac
    t1=$(now)
    sync -f "$mnt"
    t2=$(now)
    s1=$(written_sectors "$side")
    ms=$(elapsed_ms "$t0" "$t1")
    ms_sync=$(elapsed_ms "$t0" "$t2")
    dev=$(((s1 - s0) * 512))
    case $side in
        medium)
            echo "$ms" >>"$W/ms-medium"
            note="copied $(jget "$W/export-$round.json" .copied.files) objects, written_bytes $(mb "$(jget "$W/export-$round.json" .written_bytes)") MB, elapsed_secs $(jget "$W/export-$round.json" .elapsed_secs | awk '{ printf "%.2f", $1 }'); sync -f after it: $(elapsed_ms "$t1" "$t2") ms"
            [ "$(jget "$W/export-$round.json" .copied.bytes)" = "$UNIQUE" ] || die "round $round: medium sync copied $(jget "$W/export-$round.json" .copied.bytes) bytes, not $UNIQUE"
            ;;
        cp)
            echo "$ms" >>"$W/ms-cp-nosync"
            echo "$ms_sync" >>"$W/ms-cp"
            note="cp -r alone: $ms ms"
            ms=$ms_sync
            ;;
    esac
    echo "$dev" >>"$W/dev-$side"
    printf 'round %d  %-6s  %9s ms  %7s MB/s  device wrote %8s MB   %s\n' "$round" "$side" "$ms" "$(mbps "$UNIQUE" "$ms")" "$(mb "$dev")" "$note"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= RUNS; r++)); do
    order=(medium cp)
    ((r % 2)) || order=(cp medium)
    for side in "${order[@]}"; do run "$side" "$r"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- 2. incremental
# The last round's medium holds the export; the upstream moves one generation.
NEW_COUNT=$((PACKAGES + (PACKAGES * GROWTH + 99) / 100))
t0=$(now)
make_repo "$NEW_COUNT"
log "upstream: next generation, $NEW_COUNT packages, written in $(elapsed_ms "$t0" "$(now)") ms"
t0=$(now)
pm sync >"$W/sync-2.log"
log "store: second sync in $(elapsed_ms "$t0" "$(now)") ms"
pm medium diff bench --json >"$W/diff-1.json"
ADD_FILES=$(jget "$W/diff-1.json" .add.files)
DELTA=$(jget "$W/diff-1.json" .add.bytes)
REMOVE_FILES=$(jget "$W/diff-1.json" .remove.files)
REMOVE_BYTES=$(jget "$W/diff-1.json" .remove.bytes)
sync
s0=$(written_sectors medium)
t0=$(now)
pm medium sync bench --json >"$W/incr.json"
t1=$(now)
sync -f "$W/mnt-medium"
s1=$(written_sectors medium)
INCR_MS=$(elapsed_ms "$t0" "$t1")
INCR_DEV=$(((s1 - s0) * 512))
COPIED=$(jget "$W/incr.json" .copied.bytes)
WRITTEN=$(jget "$W/incr.json" .written_bytes)
INCR_RATIO=$(ratio "$WRITTEN" "$DELTA")
# What besides the objects it wrote: the whole catalog and the new generation's view image.
CATALOG_BYTES=$(stat -c %s "$W/mnt-medium/catalog.db")
IMAGE_NEW=$(find "$W/mnt-medium/views" -maxdepth 1 -name "$(printf '%012d' "$(jget "$W/incr.json" .generation)")-*" -printf '%s\n' | awk '{ b += $1 } END { print b + 0 }')
VERDICT=$(awk -v r="$INCR_RATIO" -v t="$TARGET" 'BEGIN { print (r <= t) ? "PASS" : "MISS" }')

# ---------------------------------------------------------------- summary
echo
echo "export of $PACKAGES packages: $OBJECTS objects, $(mb "$UNIQUE") MB unique, onto ext4 ($IMAGE_SIZE loop image), $RUNS rounds"
echo "load average before: $LOAD_BEFORE, after: $LOAD_AFTER (on $(nproc) cores)"
echo "  binary: $BIN_ARG"
printf '%-22s %12s %10s %14s %14s %20s\n' measure "median (ms)" "MB/s" "device (MB)" "medium sync/it" "median round ratio"
m=$(med <"$W/ms-medium")
printf '%-22s %12s %10s %14s %14s %20s\n' "medium sync" "$m" "$(mbps "$UNIQUE" "$m")" "$(mb "$(median <"$W/dev-medium")")" "" ""
for measure in cp cp-nosync; do
    c=$(med <"$W/ms-$measure")
    label="cp -r + sync -f"
    dev=$(mb "$(median <"$W/dev-cp")")
    [ "$measure" = cp-nosync ] && { label="cp -r (no sync)"; dev=""; }
    printf '%-22s %12s %10s %14s %14s %20s\n' "$label" "$c" "$(mbps "$UNIQUE" "$c")" "$dev" "$(ratio "$m" "$c")" "$(paired_ratio "$W/ms-medium" "$W/ms-$measure")"
done
echo
echo "incremental: upstream +$((NEW_COUNT - PACKAGES)) packages ($PACKAGES → $NEW_COUNT), medium sync onto the exported medium"
echo "  medium diff:  add $ADD_FILES files, $DELTA bytes ($(mb "$DELTA") MB: the delta's unique bytes); remove $REMOVE_FILES files, $REMOVE_BYTES bytes"
echo "  medium sync:  copied $(jget "$W/incr.json" .copied.files) files, $COPIED bytes ($([ "$COPIED" = "$DELTA" ] && echo "= the diff" || echo "≠ the diff's $DELTA!")); removed $(jget "$W/incr.json" .removed.files) files; written_bytes $WRITTEN; $INCR_MS ms"
echo "  written_bytes / delta:   $INCR_RATIO  (target ≤ $TARGET: $VERDICT)"
echo "    besides the objects: $((WRITTEN - COPIED)) bytes, of them catalog.db $CATALOG_BYTES (rewritten whole) and the view image $IMAGE_NEW"
echo "  device wrote / delta:    $(ratio "$INCR_DEV" "$DELTA")  ($INCR_DEV bytes to ${LOOP[medium]}, after sync -f: data, metadata, journal)"
