#!/usr/bin/env bash
# bench-cluster.sh: pmirror-fs on a shared store (issue: `[store] shared`, `[mount] cache-dir`),
# on a real Ceph cluster, side by side in one run. Prints every sample, then one table of medians
# and ratios at the end.
#
# The cluster is scripts/ceph-single.sh (MON, MGR, MDS, one bluestore OSD on 127.0.0.1, pool
# size 1, one CephFS). A node is a mount namespace (`unshare --mount --propagation private sleep
# infinity`, entered with `nsenter -t <holder> -m`) with its own ceph-fuse client mounting the
# CephFS at /mnt/pmirror-ceph: the same path on every node, as on a Proxmox cluster. Three nodes:
# W (the writer: `pmirror-fs sync` into /mnt/pmirror-ceph/store, `[store] shared = true`,
# gc-delay 15m) and the serving nodes S1 and S2 (each `pmirror-fs mount` of that store on a local
# mountpoint, `[mount] cache-dir` on local disk, cache-size 20G, and nginx in the node's namespace
# with the shipped site scripts/nginx/pmirror-fs.conf). The network is loopback: every Ceph figure
# here is a best case for Ceph (no wire, no second host).
#
# Upstream: one signed apt repository written by scripts/bench/make-repo.py — SMALL_FILES (5000)
# packages of 4–64 KiB (random, nothing deduplicates) plus one BIG_MB (1024) MiB package — served
# by a plain nginx on 127.0.0.1, synced once by W.
#
#   a. small files: nginx req/s, wrk (-t2 -c32, WRK_SECONDS 10 s per sample, random paths over the
#      SMALL_FILES .debs, scripts/bench/random-paths.lua), three nginx instances in S1's namespace,
#      all with the same shipped site (only `listen` and `root` differ; the .debs match
#      `location ~ \.u?deb$`, i.e. the server-level open_file_cache max=12000 inactive=120s
#      valid=30s min_uses=1, sendfile on, worker_rlimit_nofile 16384, access_log off):
#        view   root = S1's pmirror-fs mount, read cache WARM (every file read through the view
#               once first, which copies it into cache-dir);
#        local  root = a plain local directory holding the same files at the same paths (the
#               upstream fixture directory on local disk);
#        ceph   root = the same files written by W under /mnt/pmirror-ceph/direct, read straight
#               from S1's ceph-fuse (also read once first).
#      Before the wrk rounds, each side gets a 3 s unrecorded wrk warm-up (fills nginx's fd cache).
#      RUNS rounds, the order rotated every round. Ratios: view/local (target >= 0.9), view/ceph
#      (median of the per-round ratios, lib.sh paired_ratio). Before all that, the first, cold
#      read (page cache dropped, files that node's ceph-fuse never read) of min(1000, SMALL_FILES)
#      files, one at a time, each timed (median, p90, max and the slowest logged): on S1 through
#      the view first (the cache filling) then from ceph-fuse, on S2 the other way round.
#   b. a BIG_MB MiB file, `dd bs=1M` to /dev/null, page cache dropped before every read, and a
#      fresh ceph-fuse on S1 (unmounted and mounted again: ceph-fuse has its own object cache)
#      before every cold read, RUNS rounds:
#        view, cold     first read through the view with that object not in the cache: served
#                       from the pool (passthrough to ceph-fuse) while one background thread
#                       copies it into cache-dir;
#        view, cached   after the background copy finished: from the local cache (passthrough);
#        ceph direct    the pool object itself, read through ceph-fuse;
#        local          the same bytes in the upstream directory on local disk.
#      During each read: the bytes S1's ceph-fuse received (/proc/<pid>/io rchar: ~0 means the
#      bytes came from local disk) and the object's files S1's daemon has open 0.2 s in
#      (/proc/<daemon>/fd: pool, copy = a cache copy being written, cache; a passthrough open's
#      backing file does not stay open in the daemon, so "-" is normal for cache hits). The OSD keeps its own cache (bluestore, osd_memory_target 1 GiB), which a fresh
#      ceph-fuse does not clear: "cold" Ceph reads may be partly served from OSD memory.
#   c. publish → visible: PUBLISHES (5) times, the upstream moves one generation (Release
#      re-signed with a new Date: InRelease changes, packages do not), W syncs; from the moment
#      the sync command returns, S1's and S2's nginx are polled (curl in a tight loop, a new
#      connection each time: a new pin token, so the newest view) until both serve the new
#      InRelease byte for byte. Latency per node, median and max; the sync's own time beside.
#
# Knobs (environment): PMIRROR_BIN (a pmirror-fs binary; default: `cargo build --release --bin
# pmirror-fs` of this checkout, CARGO_TARGET_DIR reused, the binary copied into the work dir),
# RUNS (3), SMALL_FILES (5000), BIG_MB (1024), WRK_SECONDS (10), PUBLISHES (5), BENCH_FSYNC
# (true: the writer's [store] fsync), BENCH_DIR (work dir, default a fresh
# /var/tmp/pmirror-fs-bench-cluster.XXXXXX; must be absent or empty), BENCH_KEEP=1 (keep the work
# dir; the cluster and every process are stopped anyway), BENCH_INSTALL (1: apt-get install what
# is missing; 0: fail instead).
#
# Run as root (ceph daemons, FUSE, mount namespaces, drop_caches, nginx as www-data). Needs
# Debian's ceph-mon ceph-mgr ceph-mds ceph-osd ceph-fuse ceph-common, nginx, wrk, fuse3, gpg,
# python3, curl, util-linux. A default run took 5.5 minutes on 2 cores (the initial sync of 1.2 GB
# into CephFS about 1 minute of it).
#
# Usage: scripts/bench-cluster.sh          (RUNS=1 SMALL_FILES=1000 BIG_MB=256 … for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
export LC_ALL=C
HELPERS=$SRC/scripts/bench
# shellcheck source=scripts/bench/lib.sh
. "$HELPERS/lib.sh"

RUNS=${RUNS:-3}
SMALL_FILES=${SMALL_FILES:-5000}
BIG_MB=${BIG_MB:-1024}
WRK_SECONDS=${WRK_SECONDS:-10}
PUBLISHES=${PUBLISHES:-5}
FSYNC=${BENCH_FSYNC:-true}
INSTALL=${BENCH_INSTALL:-1}
NGINX=/usr/sbin/nginx
CEPH_MOUNT=/mnt/pmirror-ceph
STORE=$CEPH_MOUNT/store
DIRECT=$CEPH_MOUNT/direct
TARGET_LOCAL=0.9
# As bench-fuse.sh: one wrk thread per core, enough connections to keep both nginx workers busy.
WRK_THREADS=2
WRK_CONNECTIONS=32
# The shipped site's header asks for this (open_file_cache max=12000 + connections + logs).
NOFILE=16384

# ---------------------------------------------------------------- preflight
[ "$(id -u)" = 0 ] || die "run as root (ceph daemons, FUSE, mount namespaces, drop_caches, nginx)"
[ -c /dev/fuse ] || die "/dev/fuse is missing"
# binary:package pairs.
NEED=(ceph-mon:ceph-mon ceph-mgr:ceph-mgr ceph-mds:ceph-mds ceph-osd:ceph-osd ceph-fuse:ceph-fuse
    ceph:ceph-common monmaptool:ceph-base uuidgen:uuid-runtime "$NGINX":nginx wrk:wrk fusermount3:fuse3
    gpg:gpg curl:curl python3:python3 unshare:util-linux nsenter:util-linux)
missing=()
for pair in "${NEED[@]}"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (apt-get install ${missing[*]})"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
id www-data >/dev/null 2>&1 || die "user www-data is missing (the nginx package creates it)"

W=${BENCH_DIR:-$(mktemp -d /var/tmp/pmirror-fs-bench-cluster.XXXXXX)}
mkdir -p "$W"
[ -z "$(ls -A "$W")" ] || die "$W is not empty (a kept earlier run?): remove it or pick another BENCH_DIR"
W=$(cd "$W" && pwd)
chmod 755 "$W" # nginx workers (www-data) read the fixtures and the local side under it

# ---------------------------------------------------------------- what we own, and cleanup
PIDS_NGINX=()
declare -A HOLDER=() CEPHFUSE=() PMOUNT=() PMOUNT_DIR=()
CEPH_STARTED=0

# in_node NODE CMD…: CMD inside NODE's mount namespace (nsenter execs it: same pid).
in_node() {
    local node=$1
    shift
    nsenter -t "${HOLDER[$node]}" -m -- "$@"
}
# node_mounted NODE PATH: NODE's namespace has a mount at PATH.
node_mounted() { awk -v p="$2" '$2 == p { f = 1 } END { exit !f }' "/proc/${HOLDER[$1]}/mounts" 2>/dev/null; }

# pm_down NODE: the mount daemon stops (SIGTERM unmounts cleanly); a mount left behind is detached.
pm_down() {
    local node=$1 pid=${PMOUNT[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 100 || { log "mount daemon $pid on $node ignored SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 50 || true; }
    if node_mounted "$node" "${PMOUNT_DIR[$node]}"; then
        in_node "$node" fusermount3 -u -z "${PMOUNT_DIR[$node]}" 2>/dev/null || in_node "$node" umount -l "${PMOUNT_DIR[$node]}" 2>/dev/null || true
    fi
    unset "PMOUNT[$node]"
}

# ceph_fuse_down NODE: unmount the CephFS in NODE (ceph-fuse then closes its session and exits).
ceph_fuse_down() {
    local node=$1 pid=${CEPHFUSE[$1]:-}
    [ -n "$pid" ] || return 0
    if node_mounted "$node" "$CEPH_MOUNT"; then
        in_node "$node" umount "$CEPH_MOUNT" 2>/dev/null || in_node "$node" umount -l "$CEPH_MOUNT" 2>/dev/null || true
    fi
    wait_gone "$pid" 100 || { log "ceph-fuse $pid on $node still there 10 s after umount; killing it"; kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 50 || true; }
    unset "CEPHFUSE[$node]"
}

cleanup() {
    local rc=$? node
    set +e
    stop_nginx
    for node in "${!PMOUNT[@]}"; do pm_down "$node"; done
    for node in "${!CEPHFUSE[@]}"; do ceph_fuse_down "$node"; done
    for node in "${!HOLDER[@]}"; do
        kill "${HOLDER[$node]}" 2>/dev/null
        wait_gone "${HOLDER[$node]}" 50 || kill -KILL "${HOLDER[$node]}" 2>/dev/null
    done
    [ "$CEPH_STARTED" = 1 ] && { "$SRC/scripts/ceph-single.sh" stop "$W/ceph" || log "ceph-single.sh stop failed"; }
    [ -d "$W/gnupg" ] && GNUPGHOME=$W/gnupg gpgconf --kill gpg-agent 2>/dev/null
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$W"; else log "kept $W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- small helpers
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
fmt1() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "nan"; else printf "%.1f", v }'; }
med1() { median <"$1" | awk '{ if ($1 == "nan") print "nan"; else printf "%.1f", $1 }'; }
maximum() { sort -g | tail -n 1; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "nan" || v == "") print "?"; else if (v >= t) print "MET"; else print "MISSED" }'; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- binary
if [ -n "${PMIRROR_BIN:-}" ]; then
    BUILT="given: $(realpath "$PMIRROR_BIN")"
    mkdir -p "$W/bin"
    cp "$PMIRROR_BIN" "$W/bin/pmirror-fs"
else
    log "building pmirror-fs (release)"
    cargo build --release --quiet --bin pmirror-fs
    mkdir -p "$W/bin"
    cp "${CARGO_TARGET_DIR:-$SRC/target}/release/pmirror-fs" "$W/bin/pmirror-fs"
    BUILT="built (release) from the working tree"
fi
BIN=$W/bin/pmirror-fs # a copy: a rebuild elsewhere must not swap it mid-run
T_START=$(now)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- the cluster and its nodes
log "starting the Ceph cluster under $W/ceph"
CEPH_STARTED=1
ceph_env=$("$SRC/scripts/ceph-single.sh" start "$W/ceph") || die "scripts/ceph-single.sh start failed (its stderr above)"
CEPH_CONF=$(sed -n 's/^CEPH_CONF=//p' <<<"$ceph_env")
CEPH_KEYRING=$(sed -n 's/^CEPH_KEYRING=//p' <<<"$ceph_env")
[ -f "$CEPH_CONF" ] && [ -f "$CEPH_KEYRING" ] || die "ceph-single.sh printed no CEPH_CONF/CEPH_KEYRING: $ceph_env"
CEPH_UP_S=$(secs_since "$T_START")

# ceph_fuse_up NODE: ceph-fuse (foreground, our child) mounts the CephFS at $CEPH_MOUNT in NODE.
ceph_fuse_up() {
    local node=$1 i
    # nsenter itself, not in_node (a function runs in a subshell): $! is then ceph-fuse's pid.
    nsenter -t "${HOLDER[$node]}" -m -- ceph-fuse -f -c "$CEPH_CONF" -n client.admin --keyring "$CEPH_KEYRING" \
        --log-file "$W/ceph/log/node-$node.log" "$CEPH_MOUNT" </dev/null >>"$W/ceph/log/node-$node.out" 2>&1 &
    CEPHFUSE[$node]=$!
    for ((i = 0; i < 600; i++)); do
        node_mounted "$node" "$CEPH_MOUNT" && stat "/proc/${HOLDER[$node]}/root$CEPH_MOUNT/." >/dev/null 2>&1 && return 0
        kill -0 "${CEPHFUSE[$node]}" 2>/dev/null || { tail -n 20 "$W/ceph/log/node-$node.out" >&2; die "ceph-fuse on $node exited"; }
        sleep 0.1
    done
    die "ceph-fuse on $node did not mount within 60 s"
}

# node_up NODE: a new mount namespace with the CephFS mounted in it.
node_up() {
    local node=$1 host_ns i
    mkdir -p "$CEPH_MOUNT" # the (empty) mount point itself is the host's
    host_ns=$(readlink /proc/self/ns/mnt)
    unshare --mount --propagation private sleep infinity </dev/null >/dev/null 2>&1 &
    HOLDER[$node]=$!
    for ((i = 0; i < 100; i++)); do
        [ "$(cat "/proc/${HOLDER[$node]}/comm" 2>/dev/null)" = sleep ] \
            && [ "$(readlink "/proc/${HOLDER[$node]}/ns/mnt")" != "$host_ns" ] && break
        sleep 0.05
    done
    ((i < 100)) || die "unshare made no mount namespace for $node"
    ceph_fuse_up "$node"
}

for node in W S1 S2; do node_up "$node"; done
log "nodes W, S1, S2 up, each with its own ceph-fuse at $CEPH_MOUNT"

# ---------------------------------------------------------------- upstream
export GNUPGHOME=$W/gnupg
mkdir -p -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'pmirror-fs bench <bench@pmirror-fs.invalid>' ed25519 sign never 2>/dev/null
gpg --batch --export >"$W/key.gpg"
t0=$(now)
python3 "$HELPERS/make-repo.py" --out "$W/up" --root bench/deb --layout pool --count "$SMALL_FILES" \
    --big-size $((BIG_MB << 20)) --seed 1 --gnupghome "$GNUPGHOME" --list "$W/paths.txt"
chmod -R a+rX "$W/up"
PACKAGES=$W/up/bench/deb/dists/bookworm/main/binary-amd64/Packages
BIG_SHA=$(awk '/^Package: big$/ { b = 1 } b && /^SHA256:/ { print $2; exit }' "$PACKAGES")
BIG_REL=bench/deb/$(awk '/^Package: big$/ { b = 1 } b && /^Filename:/ { print $2; exit }' "$PACKAGES")
SMALL_BYTES=$(sed 's|^|'"$W/up"'|' "$W/paths.txt" | xargs -d '\n' stat -c %s | awk '{ b += $1 } END { print b }')
log "upstream: $SMALL_FILES small packages ($((SMALL_BYTES / 1000000)) MB) + one $BIG_MB MiB package, written in $(elapsed_ms "$t0" "$(now)") ms"

UP_PORT=$(free_port)
mkdir -p "$W/nginx-up"
{
    nginx_conf_head "$W/nginx-up" 768
    echo "    access_log off;"
    echo "    server { listen 127.0.0.1:$UP_PORT; root $W/up; }"
    echo "}"
} >"$W/nginx-up/nginx.conf"
start_nginx "$W/nginx-up" "http://127.0.0.1:$UP_PORT/bench/deb/dists/bookworm/InRelease"
UP_NGINX=("${PIDS_NGINX[@]}")

# ---------------------------------------------------------------- configs, sync, mounts
store_section() {
    printf '[store]\ndir = "%s"\nshared = true\ngc-delay = "15m"\nfsync = %s\n\n' "$STORE" "$FSYNC"
}
mirror_section() {
    printf '[[mirror]]\nid = "bench"\nrepository = "deb http://127.0.0.1:%s/bench/deb bookworm main"\n' "$UP_PORT"
    printf 'architectures = ["amd64"]\nkey = "%s"\n' "$W/key.gpg"
}
{ store_section; mirror_section; } >"$W/W.toml"
for node in S1 S2; do
    {
        store_section
        printf '[mount]\ncache-dir = "%s"\ncache-size = "20G"\n\n' "$W/$node-cache"
        mirror_section
    } >"$W/$node.toml"
done

# sync_w LABEL: `pmirror-fs sync` on W; sets SYNC_T0 / SYNC_T1 (start, return).
sync_w() {
    SYNC_T0=$(now)
    in_node W "$BIN" --config "$W/W.toml" sync >"$W/sync-$1.log" 2>&1 || { tail -n 30 "$W/sync-$1.log" >&2; die "sync $1 on W failed"; }
    SYNC_T1=$(now)
}
log "sync on W into $STORE (shared, fsync = $FSYNC)"
sync_w initial
INITIAL_SYNC_MS=$(elapsed_ms "$SYNC_T0" "$SYNC_T1")
log "initial sync: $INITIAL_SYNC_MS ms"
[ -f "/proc/${HOLDER[W]}/root$STORE/views/current" ] || die "the shared store has no views/current after the sync"
BIG_POOL=$STORE/pool/sha256/${BIG_SHA:0:2}/$BIG_SHA
[ -f "/proc/${HOLDER[W]}/root$BIG_POOL" ] || die "the big package is not in the pool ($BIG_POOL)"

# pm_up NODE: the mount daemon (foreground, our child) on $W/NODE-mnt, waited for until it answers.
pm_up() {
    local node=$1 mnt=$W/$1-mnt i
    mkdir -p "$mnt"
    PMOUNT_DIR[$node]=$mnt
    PMIRROR_FS_LOG=info nsenter -t "${HOLDER[$node]}" -m -- "$BIN" --config "$W/$node.toml" mount "$mnt" --foreground \
        </dev/null >>"$W/mount-$node.log" 2>&1 &
    PMOUNT[$node]=$!
    for ((i = 0; i < 600; i++)); do
        node_mounted "$node" "$mnt" && [ -e "/proc/${HOLDER[$node]}/root$mnt/bench/deb/dists/bookworm/InRelease" ] && return 0
        kill -0 "${PMOUNT[$node]}" 2>/dev/null || { tail -n 20 "$W/mount-$node.log" >&2; die "pmirror-fs mount on $node exited"; }
        sleep 0.1
    done
    tail -n 20 "$W/mount-$node.log" >&2
    die "pmirror-fs mount on $node did not answer within 60 s"
}
pm_up S1
pm_up S2
log "mounted on S1 and S2"

# The same small files on the CephFS, written by W (S1's ceph-fuse has never read them).
t0=$(now)
in_node W sh -c "mkdir -p '$DIRECT' && cd '$W/up' && sed 's|^/||' '$W/paths.txt' | xargs -d '\n' cp --parents -t '$DIRECT'"
DIRECT_COPY_MS=$(elapsed_ms "$t0" "$(now)")
log "copied the small files to $DIRECT on W in $DIRECT_COPY_MS ms"

# ---------------------------------------------------------------- nginx in a node
# site_block PORT ROOT PINNED: the shipped server block with `listen` (the first only) and the
# /srv/pmirror-fs of its `root` lines replaced; without PINNED (a plain directory has no .pin)
# the pinned roots lose their `/.pin/$pmirror_pin` (the .deb paths measured do not use them).
site_block() {
    awk -v listen="127.0.0.1:$1" -v root="$2" -v pinned="$3" '
        /^[ \t]*listen[ \t]/ { if (!seen++) { sub(/listen[ \t].*;/, "listen " listen ";"); print } next }
        /^[ \t]*root[ \t]/   { if (!pinned) sub(/\/\.pin\/\$pmirror_pin/, ""); sub(/\/srv\/pmirror-fs/, root); print; next }
        { print }' "$SRC/scripts/nginx/pmirror-fs.conf"
}
# node_nginx NODE NAME PORT ROOT PINNED: nginx (workers www-data, the main context the shipped
# site asks for) inside NODE's namespace, serving ROOT on PORT; its master added to PIDS_NGINX.
node_nginx() {
    local node=$1 dir=$W/nginx-$2 port=$3
    mkdir -p "$dir"
    {
        nginx_conf_head "$dir" 768 "worker_rlimit_nofile $NOFILE;"
        echo "    access_log off;"
        site_block "$port" "$4" "$5"
        echo "}"
    } >"$dir/nginx.conf"
    start_nginx "$dir" "http://127.0.0.1:$port/" nsenter -t "${HOLDER[$node]}" -m --
}

# ================================================================ a. small files
SIDES=(view local ceph)
declare -A PORT=() ROOT=()
ROOT[view]=$W/S1-mnt
ROOT[local]=$W/up
ROOT[ceph]=$DIRECT
for side in "${SIDES[@]}"; do
    PORT[$side]=$(free_port)
    pinned=0
    [ "$side" = view ] && pinned=1
    node_nginx S1 "S1-$side" "${PORT[$side]}" "${ROOT[$side]}" "$pinned"
done
FIRST=$(head -n 1 "$W/paths.txt")
for side in "${SIDES[@]}"; do
    curl -sf -o "$W/first-$side" "http://127.0.0.1:${PORT[$side]}$FIRST" || die "nginx $side cannot serve $FIRST"
    cmp -s "$W/first-$side" "$W/up$FIRST" || die "nginx $side serves other bytes for $FIRST"
done

# read_all NODE ROOT [LIST]: cat every file of LIST (default: all small files) under ROOT inside
# NODE; prints the milliseconds.
read_all() {
    local t0
    t0=$(now)
    in_node "$1" sh -c "sed 's|^|$2|' '${3:-$W/paths.txt}' | xargs -d '\n' cat >/dev/null" || die "reading the files under $2 on $1 failed"
    elapsed_ms "$t0" "$(now)"
}
# timed_read NODE ROOT LIST: like read_all, but one file at a time, each timed (python3); prints the
# total milliseconds, and logs the median, p90, max and the slowest files (with when they were read).
cat >"$W/timed-read.py" <<'PY'
import sys, time
root, listing = sys.argv[1], sys.argv[2]
times, start = [], time.monotonic()
for path in open(listing):
    path = path.strip()
    t0 = time.monotonic()
    with open(root + path, "rb") as f:
        while f.read(1 << 20):
            pass
    times.append((time.monotonic() - t0, t0 - start, path))
total = time.monotonic() - start
s = sorted(t for t, _, _ in times)
slow = ", ".join("%.0f ms at +%.1f s" % (t * 1e3, at) for t, at, _ in sorted(times, reverse=True)[:3])
print("%.1f" % (total * 1e3))
print("%d files: per file median %.1f ms, p90 %.1f ms, max %.1f ms; slowest: %s"
      % (len(s), s[len(s) // 2] * 1e3, s[int(len(s) * 0.9)] * 1e3, s[-1] * 1e3, slow), file=sys.stderr)
PY
timed_read() {
    local out
    out=$(in_node "$1" python3 "$W/timed-read.py" "$2" "$3" 2>"$W/timed-read.err") || { cat "$W/timed-read.err" >&2; die "reading the files under $2 on $1 failed"; }
    log "  $1 $2: $(cat "$W/timed-read.err")"
    echo "$out"
}
# The first, cold read (neither node's ceph-fuse has read these files; page cache dropped) of
# FILL_N files: on S1 through the view first (the cache filling) then straight from ceph-fuse,
# on S2 the other way round. Then the rest through S1's view, which warms S1's cache fully.
FILL_N=$((SMALL_FILES < 1000 ? SMALL_FILES : 1000))
head -n "$FILL_N" "$W/paths.txt" >"$W/paths-fill.txt"
tail -n +$((FILL_N + 1)) "$W/paths.txt" >"$W/paths-rest.txt"
drop_caches
FILL_S1_VIEW=$(timed_read S1 "$W/S1-mnt" "$W/paths-fill.txt")
FILL_S1_CEPH=$(timed_read S1 "$DIRECT" "$W/paths-fill.txt")
drop_caches
FILL_S2_CEPH=$(timed_read S2 "$DIRECT" "$W/paths-fill.txt")
FILL_S2_VIEW=$(timed_read S2 "$W/S2-mnt" "$W/paths-fill.txt")
log "first read of $FILL_N files: S1 view (cache filling) $FILL_S1_VIEW ms, then ceph-fuse $FILL_S1_CEPH ms; S2 ceph-fuse $FILL_S2_CEPH ms, then view $FILL_S2_VIEW ms"
FILL_REST_MS=0
[ ! -s "$W/paths-rest.txt" ] || FILL_REST_MS=$(read_all S1 "$W/S1-mnt" "$W/paths-rest.txt")
CACHE_FILES=$(find "$W/S1-cache/sha256" -type f 2>/dev/null | wc -l)
CACHE_MB=$(du -sm "$W/S1-cache" | cut -f1)
log "the other $((SMALL_FILES - FILL_N)) files through S1's view: $FILL_REST_MS ms; S1's cache now $CACHE_FILES objects, $CACHE_MB MiB"
((CACHE_FILES >= SMALL_FILES)) || log "WARNING: the read cache holds $CACHE_FILES objects after reading $SMALL_FILES files"
# Warm: everything once more (page cache), then nginx's fd caches by a short unrecorded wrk run.
for side in "${SIDES[@]}"; do read_all S1 "${ROOT[$side]}" >/dev/null; done

WRK_ERRORS=""
wrk_rps() { # PORT LABEL [SECONDS]
    local out line errors
    out=$(PATHS="$W/paths.txt" wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${3:-$WRK_SECONDS}s" -s "$HELPERS/random-paths.lua" "http://127.0.0.1:$1")
    line=$(grep '^BENCH ' <<<"$out") || die "wrk printed no summary: $out"
    log "wrk $2: ${line#BENCH }"
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
    [ "$errors" = 0 ] || WRK_ERRORS="$WRK_ERRORS $2:$errors"
    sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line"
}
for side in "${SIDES[@]}"; do wrk_rps "${PORT[$side]}" "warmup-$side" 3 >/dev/null; done
LOAD_A0=$(cut -d' ' -f1 /proc/loadavg)
n=${#SIDES[@]}
for ((r = 1; r <= RUNS; r++)); do
    for ((i = 0; i < n; i++)); do
        side=${SIDES[$(((i + r - 1) % n))]}
        wrk_rps "${PORT[$side]}" "run$r-$side" >>"$W/rps-$side"
    done
done
LOAD_A1=$(cut -d' ' -f1 /proc/loadavg)
CACHE_FILES_AFTER=$(find "$W/S1-cache/sha256" -type f | wc -l)
# S1's three nginx go (they hold files on S1's ceph-fuse, which b. mounts afresh); upstream's stays.
PIDS_NGINX=("${PIDS_NGINX[@]:${#UP_NGINX[@]}}")
stop_nginx
PIDS_NGINX=("${UP_NGINX[@]}")

# ================================================================ b. 1 GiB read
# rchar PID: bytes a process read (read/recv syscalls: for ceph-fuse, what came from the OSD).
rchar() { awk '$1 == "rchar:" { print $2 }' "/proc/$1/io"; }
# dd_mbs NODE FILE [SAMPLE_OUT]: dd bs=1M of FILE inside NODE → 10^6 bytes/s. With SAMPLE_OUT,
# into that file: which files of the object S1's daemon has open 0.2 s in (pool: the pool's
# object, copy: a cache copy being written, cache: the cache's entry; a passthrough open's
# backing file need not stay open in the daemon), and the MB S1's ceph-fuse received during the read.
dd_mbs() {
    local node=$1 file=$2 out=$W/dd.out pid fds what="" rx0
    [ -z "${3:-}" ] || rx0=$(rchar "${CEPHFUSE[S1]}")
    nsenter -t "${HOLDER[$node]}" -m -- dd if="$file" of=/dev/null bs=1M >"$out" 2>&1 &
    pid=$!
    if [ -n "${3:-}" ] && [ -n "${PMOUNT[S1]:-}" ]; then
        sleep 0.2
        fds=$(ls -l "/proc/${PMOUNT[S1]}/fd" 2>/dev/null | grep -o "[^ ]*$BIG_SHA[^ ]*" || true)
        [[ $fds != *"$STORE/pool/"* ]] || what+=pool+
        [[ $fds != *"$W/S1-cache/tmp/"* ]] || what+=copy+
        [[ $fds != *"$W/S1-cache/sha256/"* ]] || what+=cache+
        what=${what%+}
    fi
    wait "$pid" || { cat "$out" >&2; die "dd $file on $node failed"; }
    [ -z "${3:-}" ] || echo "${what:--} $(awk -v a="$rx0" -v b="$(rchar "${CEPHFUSE[S1]}")" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')" >"$3"
    awk '/copied/ { printf "%.1f\n", $1 / $(NF - 3) / 1e6 }' "$out"
}
BIG_CACHE=$W/S1-cache/sha256/${BIG_SHA:0:2}/$BIG_SHA
BIG_VIEW=$W/S1-mnt/$BIG_REL
BIG_LOCAL=$W/up/$BIG_REL
# fresh_s1 [MOUNT]: S1 with a fresh ceph-fuse (its object cache empty) and without the big
# object in its read cache; with MOUNT the mount daemon again (it holds files on the CephFS and
# knows its cache's entries: it stops first).
fresh_s1() {
    pm_down S1
    ceph_fuse_down S1
    rm -f "$BIG_CACHE"
    ceph_fuse_up S1
    [ -z "${1:-}" ] || pm_up S1
}
# bg_copy_wait T0: waits (up to 10 min) until the background copy of the big object is in the
# cache (its entry there, tmp/ empty); prints seconds since T0.
bg_copy_wait() {
    local i
    for ((i = 0; i < 6000; i++)); do
        if [ -f "$BIG_CACHE" ] && [ "$(stat -c %s "$BIG_CACHE")" = $((BIG_MB << 20)) ] && [ -z "$(ls -A "$W/S1-cache/tmp" 2>/dev/null)" ]; then
            secs_since "$1"
            echo
            return 0
        fi
        sleep 0.1
    done
    die "the background copy of the big object into S1's cache did not finish within 10 min"
}
big_view() { # ROUND
    local t0
    fresh_s1 mount
    drop_caches
    t0=$(now)
    dd_mbs S1 "$BIG_VIEW" "$W/backing-cold-$1" >>"$W/dd-view-cold"
    bg_copy_wait "$t0" >>"$W/bgcopy-s"
    drop_caches
    dd_mbs S1 "$BIG_VIEW" "$W/backing-cached-$1" >>"$W/dd-view-cached"
    cmp -s "$BIG_CACHE" "$BIG_LOCAL" || die "the cache's copy of the big object differs from upstream"
    local b_cold b_cached
    read -r b_cold rx_cold <"$W/backing-cold-$1"
    read -r b_cached rx_cached <"$W/backing-cached-$1"
    echo "$rx_cold" >>"$W/rx-view-cold"
    echo "$rx_cached" >>"$W/rx-view-cached"
    log "round $1 view: cold $(tail -n 1 "$W/dd-view-cold") MB/s (daemon had open: $b_cold; S1's ceph-fuse received $rx_cold MB), background copy done $(tail -n 1 "$W/bgcopy-s") s after the read began; cached $(tail -n 1 "$W/dd-view-cached") MB/s (daemon had open: $b_cached; ceph-fuse received $rx_cached MB)"
}
big_ceph() { # ROUND
    fresh_s1
    drop_caches
    dd_mbs S1 "$BIG_POOL" "$W/backing-ceph-$1" >>"$W/dd-ceph"
    local rx
    read -r _ rx <"$W/backing-ceph-$1"
    echo "$rx" >>"$W/rx-ceph"
    log "round $1 ceph direct: $(tail -n 1 "$W/dd-ceph") MB/s (ceph-fuse received $rx MB)"
}
big_local() { # ROUND
    drop_caches
    dd_mbs S1 "$BIG_LOCAL" >>"$W/dd-local"
    log "round $1 local: $(tail -n 1 "$W/dd-local") MB/s"
}
# One unrecorded cold read of each first: writeback left by the sync and the copy must not land in round 1.
drop_caches
dd_mbs S1 "$BIG_LOCAL" >/dev/null
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then big_view "$r"; big_ceph "$r"; else big_ceph "$r"; big_view "$r"; fi
    big_local "$r"
done
[ -n "${PMOUNT[S1]:-}" ] || pm_up S1 # serving again for c.

# ================================================================ c. publish → visible
INRELEASE=bench/deb/dists/bookworm/InRelease
declare -A VPORT=()
for node in S1 S2; do
    VPORT[$node]=$(free_port)
    node_nginx "$node" "$node-pub" "${VPORT[$node]}" "$W/$node-mnt" 1
done
for node in S1 S2; do
    curl -sf "http://127.0.0.1:${VPORT[$node]}/$INRELEASE" | cmp -s - "$W/up/$INRELEASE" || die "$node does not serve the synced InRelease"
done
# poll NODE EXPECTED OUT: curl NODE's nginx until it serves EXPECTED (30 s at most); the time to OUT.
poll() {
    local url=http://127.0.0.1:${VPORT[$1]}/$INRELEASE tmp=$W/poll-$1 deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        if curl -s -o "$tmp" "$url" && cmp -s "$tmp" "$2"; then
            now >"$3"
            return 0
        fi
    done
    echo timeout >"$3"
}
cp "$W/up/$INRELEASE" "$W/expected-0"
last_date=$(date +%s)
for ((p = 1; p <= PUBLISHES; p++)); do
    # A new generation: a later Date (whole seconds), re-signed; the packages stay.
    while [ "$(date +%s)" -le "$last_date" ]; do sleep 0.1; done
    last_date=$(date +%s)
    python3 "$HELPERS/make-repo.py" --out "$W/up" --root bench/deb --layout pool --resign-only \
        --date "$last_date" --gnupghome "$GNUPGHOME"
    chmod -R a+rX "$W/up/bench/deb/dists"
    cp "$W/up/$INRELEASE" "$W/expected-$p"
    ! cmp -s "$W/expected-$p" "$W/expected-$((p - 1))" || die "publish $p: InRelease did not change"
    sync_w "publish-$p"
    t1=$SYNC_T1
    poll S1 "$W/expected-$p" "$W/seen-S1" &
    poll_s1=$!
    poll S2 "$W/expected-$p" "$W/seen-S2" &
    poll_s2=$!
    wait "$poll_s1" "$poll_s2"
    line="publish $p: sync $(elapsed_ms "$SYNC_T0" "$t1") ms;"
    elapsed_ms "$SYNC_T0" "$t1" >>"$W/pub-sync-ms"
    for node in S1 S2; do
        seen=$(cat "$W/seen-$node")
        [ "$seen" != timeout ] || die "publish $p: $node did not serve the new InRelease within 30 s of the sync's return"
        elapsed_ms "$t1" "$seen" >>"$W/pub-$node-ms"
        line+=" $node visible $(tail -n 1 "$W/pub-$node-ms") ms after the sync returned;"
    done
    log "$line"
done

# ================================================================ summary
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
row() { printf '%-52s %12s %12s %9s %s\n' "$@"; }
ver_nginx=$({ "$NGINX" -v 2>&1 || true; } | sed 's/^nginx version: //')
ver_wrk=$({ wrk -v 2>&1 || true; } | head -n 1 | awk '{ print $1, $2 }')
ver_ceph=$({ ceph --version 2>&1 || true; } | awk '{ print $3, $5; exit }')
ver_fuse=$({ ceph-fuse --version 2>&1 || true; } | awk '{ print $3; exit }')
ver_pm=$({ "$BIN" --version 2>&1 || true; } | awk '{ print $NF; exit }')
echo
echo "== pmirror-fs on a shared store (CephFS via ceph-fuse): $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, kernel $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM;" \
    "load average before $LOAD_BEFORE, after $LOAD_AFTER (other work on the machine skews absolute figures)"
echo "pmirror-fs $ver_pm ($BUILT); ceph $ver_ceph (ceph-fuse $ver_fuse); nginx $ver_nginx; $ver_wrk"
echo "cluster: ceph-single.sh on 127.0.0.1 (1 MON, 1 MGR, 1 MDS, 1 bluestore OSD on a sparse file, pool size 1), up in $CEPH_UP_S s;" \
    "nodes W, S1, S2 = mount namespaces, each with its own ceph-fuse at $CEPH_MOUNT"
echo "setup: $SMALL_FILES small packages ($((SMALL_BYTES / 1000000)) MB) + $BIG_MB MiB; initial sync on W $INITIAL_SYNC_MS ms" \
    "(fsync $FSYNC); same files copied to CephFS on W in $DIRECT_COPY_MS ms"
echo "medians of $RUNS rounds; ratio = median of the per-round ratios (sides run back to back); samples in the log above"
echo
echo "a. nginx small-file req/s on S1 (wrk -t$WRK_THREADS -c$WRK_CONNECTIONS ${WRK_SECONDS}s, random over $SMALL_FILES .debs; load ${LOAD_A0} → ${LOAD_A1})"
echo "   every side: the shipped site, .debs in \`location ~ \\.u?deb\$\` → open_file_cache max=12000 inactive=120s valid=30s, sendfile on, worker_rlimit_nofile $NOFILE"
row "measure" "median" "baseline" "ratio" "target / verdict"
rv=$(med1 "$W/rps-view")
rl=$(med1 "$W/rps-local")
rc=$(med1 "$W/rps-ceph")
ratio_vl=$(paired_ratio "$W/rps-view" "$W/rps-local")
ratio_vc=$(paired_ratio "$W/rps-view" "$W/rps-ceph")
row "view, cache warm (req/s)" "$rv" "" "" ""
row "local plain directory (req/s)" "$rl" "" "" ""
row "straight from ceph-fuse (req/s)" "$rc" "" "" ""
row "view warm / local" "$rv" "$rl" "$ratio_vl" "≥ $TARGET_LOCAL $(verdict "$ratio_vl" "$TARGET_LOCAL")"
row "view warm / ceph-fuse direct" "$rv" "$rc" "$ratio_vc" ""
fill_row() { # LABEL VIEW_MS CEPH_MS
    row "$1" "$(awk -v m="$2" 'BEGIN { printf "%.2f", m / 1000 }')" "$(awk -v m="$3" 'BEGIN { printf "%.2f", m / 1000 }')" \
        "$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.3f", a / b }')" "base: the same files from ceph-fuse"
}
echo "   first cold read (cat) of $FILL_N files, page cache dropped, files never read by that node's ceph-fuse (s):"
fill_row "  S1, through the view first (cache filling)" "$FILL_S1_VIEW" "$FILL_S1_CEPH"
fill_row "  S2, from ceph-fuse first, then the view" "$FILL_S2_VIEW" "$FILL_S2_CEPH"
echo "   S1 read cache: $CACHE_FILES objects ($CACHE_MB MiB) before the wrk rounds, $CACHE_FILES_AFTER after"
echo
echo "b. $BIG_MB MiB dd bs=1M on S1, page cache dropped before each read, fresh ceph-fuse before each cold read (MB/s = 10^6 B/s)"
row "measure" "median" "baseline" "ratio" "note"
dvc=$(med1 "$W/dd-view-cold")
dvk=$(med1 "$W/dd-view-cached")
dc=$(med1 "$W/dd-ceph")
dl=$(med1 "$W/dd-local")
opened() { cut -d' ' -f1 "$@" | sort | uniq -c | awk '{ printf "%s%s×%s", (NR > 1 ? ", " : ""), $2, $1 }'; }
row "view, cold (pool by passthrough + background copy)" "$dvc" "$dc" "$(paired_ratio "$W/dd-view-cold" "$W/dd-ceph")" "base: ceph direct; ceph-fuse got $(med1 "$W/rx-view-cold") MB; daemon had open: $(opened "$W"/backing-cold-*)"
row "view, from the local cache" "$dvk" "$dc" "$(paired_ratio "$W/dd-view-cached" "$W/dd-ceph")" "base: ceph direct; ceph-fuse got $(med1 "$W/rx-view-cached") MB; daemon had open: $(opened "$W"/backing-cached-*)"
row "view, from the local cache / local disk" "$dvk" "$dl" "$(paired_ratio "$W/dd-view-cached" "$W/dd-local")" "base: the same bytes on local disk"
row "ceph-fuse direct, cold (the pool object)" "$dc" "" "" "ceph-fuse got $(med1 "$W/rx-ceph") MB"
row "local disk, cold" "$dl" "" "" ""
row "background copy into the cache done after (s)" "$(med1 "$W/bgcopy-s")" "" "" "from the start of the cold read; max $(maximum <"$W/bgcopy-s")"
echo
echo "c. publish → visible: $PUBLISHES syncs on W of a new upstream generation; from the sync's return to nginx serving the new InRelease"
row "measure" "median" "max" "" ""
row "S1 (ms)" "$(med1 "$W/pub-S1-ms")" "$(maximum <"$W/pub-S1-ms")" "" ""
row "S2 (ms)" "$(med1 "$W/pub-S2-ms")" "$(maximum <"$W/pub-S2-ms")" "" ""
row "the sync command itself (ms)" "$(med1 "$W/pub-sync-ms")" "$(maximum <"$W/pub-sync-ms")" "" ""
[ -z "$WRK_ERRORS" ] || echo "WARNING: wrk saw errors (non-2xx or socket):$WRK_ERRORS"
echo "total time: $(secs_since "$T_START") s"
