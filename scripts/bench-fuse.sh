#!/usr/bin/env bash
# bench-fuse.sh: the FUSE view against the same bytes without it, side by side in one run
# (issue 3, "Benchmark"). Prints every sample, then a summary table of medians and ratios.
#
#   1. 1 GiB file, dd bs=1M, cold and warm: through the mount vs the pool file itself (≥ 0.95).
#   2. nginx + wrk on 127.0.0.1, 10,000 files of 4–64 KiB in random order, the shipped server
#      block (scripts/nginx/pmirror-fs.conf): root = the mount vs root = a plain directory holding
#      the same files (≥ 0.95). Two layouts, because the shipped config treats them differently:
#      Debian style (package files under pool/, open_file_cache on) and Proxmox style (.debs
#      inside dists/, open_file_cache off).
#   3. A catalog of 1,000,000 entries (examples/bench-catalog.rs): mount → first lookup (≤ 1 s),
#      daemon RSS per entry over an empty-catalog mount (≤ 120 bytes).
#   4. publish → visible to a new open (≤ 100 ms), from the moment `pmirror-fs snapshot publish`
#      returns; on the synced store and on the 1M-entry catalog.
#
# Everything in 1 and 2 gets into the store the real way: signed repositories written by
# scripts/bench/make-repo.py, served by a plain nginx, mirrored by `pmirror-fs sync`.
#
# Run as root on an otherwise idle machine (drop_caches, FUSE passthrough, nginx as www-data).
# Knobs (environment): BENCH_DIR (work dir, default /var/tmp/pmirror-fs-bench, removed at the
# end unless BENCH_KEEP=1), BENCH_REPEAT (3), BENCH_FILES (10000), BENCH_BIG_MIB (1024),
# BENCH_ENTRIES (1000000), BENCH_WRK_SECONDS (10), BENCH_PUBLISHES (10), BENCH_NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
export LC_ALL=C

W=${BENCH_DIR:-/var/tmp/pmirror-fs-bench}
REPEAT=${BENCH_REPEAT:-3}
FILES=${BENCH_FILES:-10000}
BIG_MIB=${BENCH_BIG_MIB:-1024}
ENTRIES=${BENCH_ENTRIES:-1000000}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
# dd runs are cheap (a second each) and cold reads are the noisiest figure: take more of them.
DD_REPEAT=${BENCH_DD_REPEAT:-5}
# Also run nginx with a variant of the shipped block (see whatif_block); 0 skips it.
WHATIF=${BENCH_WHATIF:-0}
PUBLISHES=${BENCH_PUBLISHES:-10}
# wrk: one thread per core, enough connections to keep both nginx workers busy.
WRK_THREADS=2
WRK_CONNECTIONS=32
# Copied into $W/bin after the build: other builds of this checkout must not swap them mid-run.
BIN=$W/bin/pmirror-fs
CATALOG_BIN=$W/bin/bench-catalog
HELPERS=$SRC/scripts/bench
# log, die, wait_gone, stop_nginx, free_port, median, paired_ratio, elapsed_ms, now, rss_kib, cpu_ticks
# shellcheck source=bench/lib.sh
source "$HELPERS/lib.sh"


# ---------------------------------------------------------------- processes we own, and cleanup
PIDS_NGINX=()
MOUNT_PID=""
MOUNT_DIR=""



stop_mount() {
    [ -n "$MOUNT_PID" ] || return 0
    kill -TERM "$MOUNT_PID" 2>/dev/null || true
    wait_gone "$MOUNT_PID" 100 || { log "mount daemon $MOUNT_PID ignored SIGTERM; killing it"; kill -KILL "$MOUNT_PID" 2>/dev/null || true; }
    if mountpoint -q "$MOUNT_DIR" 2>/dev/null; then
        fusermount3 -u -z "$MOUNT_DIR" 2>/dev/null || umount -l "$MOUNT_DIR" 2>/dev/null || true
    fi
    MOUNT_PID=""
}

cleanup() {
    local rc=$?
    stop_nginx
    stop_mount
    if [ "${BENCH_KEEP:-0}" != 1 ] && [ -d "$W" ]; then
        rm -rf "$W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
maximum() { sort -g | tail -n 1; }

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# The shipped server block with `listen` (first one only) and `/srv/pmirror-fs` in its `root` lines
# replaced: nothing else differs between the two nginx instances that item 2 compares. A plain
# directory (no .pin: not the mount) has no pinned index paths, so there the pinned roots lose
# their `/.pin/$pmirror_pin` (the .deb rows measured here do not use them either way).
server_block() { # PORT ROOT
    local pinned=1
    [ -d "$2/.pin" ] || pinned=0
    awk -v listen="127.0.0.1:$1" -v root="$2" -v pinned="$pinned" '
        /^[ \t]*listen[ \t]/ { if (!seen++) { sub(/listen[ \t].*;/, "listen " listen ";"); print } next }
        /^[ \t]*root[ \t]/   { if (!pinned) sub(/\/\.pin\/\$pmirror_pin/, ""); sub(/\/srv\/pmirror-fs/, root); print; next }
        { print }' "$SRC/scripts/nginx/pmirror-fs.conf"
}

# The shipped block with two changes, to show what the misses of item 2 come from (not the
# shipped config): open_file_cache max sized to the working set (12000 > 10,000 files), and
# .deb/.udeb files — immutable per path in pool/ and, Proxmox style, inside dists/ — matched by a
# regex location placed before `location ~ /dists/`, so they use the server-level cache too (a
# location that sets open_file_cache itself gets a second cache, and twice the fds).
whatif_block() { # PORT ROOT
    server_block "$1" "$2" | awk '
        /open_file_cache max=1000 / { sub(/max=1000/, "max=12000") }
        /^[ \t]*location ~ \/dists\/ \{/ { print "    location ~ \\.u?deb$ {\n    }\n" }
        { print }'
}
# As the shipped config's header asks.
NOFILE_SHIPPED=16384
# 12000 cached fds + 2 per connection (768) + logs and listeners.
NOFILE_WHATIF=16384

# start_nginx NAME PORT SERVER_BLOCK [NOFILE]: nginx in the foreground of a background job (its pid is ours).
# Main context as the shipped config's header asks (worker_rlimit_nofile 4096), workers as
# www-data like Debian's; access_log off on both sides (it would only add equal noise).
start_nginx() {
    local dir=$W/nginx-$1 port=$2 nofile=${4:-$NOFILE_SHIPPED}
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<EOF
daemon off;
user www-data;
worker_processes auto;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 768; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    default_type application/octet-stream;
$3
}
EOF
    /usr/sbin/nginx -c "$dir/nginx.conf" -p "$dir" &
    PIDS_NGINX+=("$!")
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
        sleep 0.1
    done
    cat "$dir/error.log" >&2
    die "nginx $1 did not come up on port $port"
}

# start_mount CONFIG LOG: the daemon in the foreground of a background job; returns at once.
start_mount() {
    MOUNT_DIR=$W/mnt
    mkdir -p "$MOUNT_DIR"
    PMIRROR_FS_LOG=info "$BIN" --config "$1" mount "$MOUNT_DIR" --foreground --allow-other 2>"$2" &
    MOUNT_PID=$!
}

wait_mounted() {
    local i
    for ((i = 0; i < 600; i++)); do
        mountpoint -q "$MOUNT_DIR" && return 0
        kill -0 "$MOUNT_PID" 2>/dev/null || die "mount daemon exited: $(tail -n 5 "$1")"
        sleep 0.1
    done
    die "mount did not come up"
}


# run_probe MODE PATH TIMEOUT: starts probe.py in the background; sets PROBE_PID and PROBE_OUT once
# it is polling.
run_probe() {
    PROBE_OUT=$W/probe.out
    local ready=$W/probe.ready
    rm -f "$ready" "$PROBE_OUT"
    python3 "$HELPERS/probe.py" "$1" "$2" "$ready" "$3" > "$PROBE_OUT" &
    PROBE_PID=$!
    while [ ! -e "$ready" ]; do
        kill -0 "$PROBE_PID" 2>/dev/null || die "probe.py $1 $2 failed"
        sleep 0.005
    done
}

# probe_wait: waits for the probe (in this shell: `wait` cannot reap it from a subshell) and sets
# PROBE_SEEN to the time it printed.
probe_wait() { wait "$PROBE_PID" || die "probe timed out"; PROBE_SEEN=$(cat "$PROBE_OUT"); }

# ---------------------------------------------------------------- preflight and build
preflight() {
    [ "$(id -u)" = 0 ] || die "run as root (drop_caches, FUSE passthrough, nginx)"
    [ -c /dev/fuse ] || die "/dev/fuse is missing"
    local tool
    for tool in /usr/sbin/nginx wrk gpg python3 fusermount3 curl mountpoint; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx wrk gpg python3 fuse3 curl util-linux)"
    done
    id www-data >/dev/null 2>&1 || die "user www-data is missing (the nginx package creates it)"
    if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
        log "building (release)…"
        cargo build --release --quiet --bin pmirror-fs --example bench-catalog
    fi
    [ ! -e "$W" ] || die "$W exists (a previous run kept with BENCH_KEEP=1?); remove it first"
    mkdir -p "$W/bin"
    chmod 755 "$W"
    cp "$SRC/target/release/pmirror-fs" "$BIN" || die "target/release/pmirror-fs missing"
    cp "$SRC/target/release/examples/bench-catalog" "$CATALOG_BIN" || die "bench-catalog missing"
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
}

# ---------------------------------------------------------------- fixture repositories and sync
make_key() {
    export GNUPGHOME=$W/gnupg
    mkdir -p -m 700 "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-gen-key 'pmirror-fs bench <bench@pmirror-fs.invalid>' ed25519 sign never 2>/dev/null
    gpg --batch --export > "$W/key.gpg"
}

make_repos() {
    local t0
    t0=$(now)
    python3 "$HELPERS/make-repo.py" --out "$W/up" --root bench/deb --layout pool --count "$FILES" \
        --big-size $((BIG_MIB * 1024 * 1024)) --seed 1 --gnupghome "$GNUPGHOME" --list "$W/paths-pool.txt"
    python3 "$HELPERS/make-repo.py" --out "$W/up" --root bench/pve --layout dists --count "$FILES" \
        --seed 2 --gnupghome "$GNUPGHOME" --list "$W/paths-dists.txt"
    chmod -R a+rX "$W/up"
    log "upstream repositories written in $(elapsed_ms "$t0" "$(now)") ms"
}

write_config() { # FILE STORE [MIRRORS...]
    local file=$1 store=$2
    shift 2
    {
        printf '[store]\ndir = "%s"\nfsync = false\n\n[sync]\nconcurrency = 8\nkeep = 5\n' "$store"
        local m
        for m in "$@"; do printf '\n%s\n' "$m"; done
    } > "$file"
}

mirror_entry() { # ID ROOT COMPONENT
    printf '[[mirror]]\nid = "%s"\nrepository = "deb http://127.0.0.1:%s/%s bookworm %s"\narchitectures = ["amd64"]\nkey = "%s"\n' \
        "$1" "$UP_PORT" "$2" "$3" "$W/key.gpg"
}

timed_sync() { # LABEL ARGS...
    local label=$1 t0 t1
    shift
    t0=$(now)
    "$BIN" --config "$W/config.toml" sync "$@" > "$W/sync-$label.log" 2>&1 || { cat "$W/sync-$label.log" >&2; die "sync $label failed"; }
    t1=$(now)
    log "sync $label: $(elapsed_ms "$t0" "$t1") ms"
    SYNC_MS[$label]=$(elapsed_ms "$t0" "$t1")
}

setup_store() {
    make_key
    make_repos
    UP_PORT=$(free_port)
    start_nginx upstream "$UP_PORT" "server { listen 127.0.0.1:$UP_PORT; root $W/up; sendfile on; }"
    write_config "$W/config.toml" "$W/store" \
        "$(mirror_entry bench-deb bench/deb main)" "$(mirror_entry bench-pve bench/pve pve-no-subscription)"
    timed_sync initial
    # A second upstream generation of bench/deb (new Release, same packages): two snapshots to
    # switch between in item 4. Dated now: later than the first (written before the initial sync),
    # and not in the future, which a sync refuses past 10 s as apt does ("not valid yet").
    sleep 1
    python3 "$HELPERS/make-repo.py" --out "$W/up" --root bench/deb --layout pool --resign-only \
        --date "$(date +%s)" --gnupghome "$GNUPGHOME"
    timed_sync resync bench-deb
    local packages=$W/up/bench/deb/dists/bookworm/main/binary-amd64/Packages
    BIG_SHA=$(awk '/^Package: big$/ { b = 1 } b && /^SHA256:/ { print $2; exit }' "$packages")
    BIG_POOL=$W/store/pool/sha256/${BIG_SHA:0:2}/$BIG_SHA
    BIG_MNT=$W/mnt/bench/deb/$(awk '/^Package: big$/ { b = 1 } b && /^Filename:/ { print $2; exit }' "$packages")
    [ -f "$BIG_POOL" ] || die "the big file is not in the pool ($BIG_POOL)"
}

# ---------------------------------------------------------------- 1. dd
dd_mibs() { # FILE → MiB/s
    dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { printf "%.1f\n", $1 / 1048576 / $(NF - 3) }'
}

# Warm reads take a fraction of a second: several interleaved pairs per run.
DD_WARM_PAIRS=3

bench_dd() {
    cmp -s <(head -c 1048576 "$BIG_MNT") <(head -c 1048576 "$BIG_POOL") || die "the big file through the mount differs from the pool object"
    # One unrecorded cold read of each first: writeback left by the sync must not land in run 1.
    drop_caches
    dd_mibs "$BIG_POOL" > /dev/null
    drop_caches
    dd_mibs "$BIG_MNT" > /dev/null
    local r p side order
    for ((r = 1; r <= DD_REPEAT; r++)); do
        order="mount pool"
        ((r % 2)) || order="pool mount"
        for side in $order; do
            drop_caches
            dd_mibs "$(dd_file "$side")" >> "$W/dd-cold-$side"
        done
        cat "$BIG_POOL" > /dev/null
        for ((p = 1; p <= DD_WARM_PAIRS; p++)); do
            for side in $order; do
                dd_mibs "$(dd_file "$side")" >> "$W/dd-warm-$side"
            done
        done
        log "dd run $r: cold mount $(tail -n 1 "$W/dd-cold-mount") pool $(tail -n 1 "$W/dd-cold-pool") MiB/s; warm mount $(tail -n "$DD_WARM_PAIRS" "$W/dd-warm-mount" | tr '\n' ' ')pool $(tail -n "$DD_WARM_PAIRS" "$W/dd-warm-pool" | tr '\n' ' ')MiB/s"
    done
}

dd_file() { if [ "$1" = mount ]; then echo "$BIG_MNT"; else echo "$BIG_POOL"; fi; }

# ---------------------------------------------------------------- 2. nginx + wrk
wrk_rps() { # PORT LIST LABEL
    local out
    out=$(PATHS="$2" wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" -s "$HELPERS/random-paths.lua" "http://127.0.0.1:$1")
    local line
    line=$(grep '^BENCH ' <<< "$out") || die "wrk printed no summary: $out"
    log "wrk $3: ${line#BENCH }"
    local errors
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<< "$line")
    [ "$errors" = 0 ] || WRK_ERRORS="$WRK_ERRORS $3:$errors"
    sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<< "$line"
}

warm_files() { # ROOT LIST
    sed "s|^|$1|" "$2" | xargs -d '\n' cat > /dev/null
}

# wrk_side SIDE LAYOUT RUN: one measured wrk run against nginx SIDE (plain | mount | wplain |
# wmount); for mount sides also the daemon's CPU time per request.
wrk_side() {
    local side=$1 layout=$2 list=$W/paths-$2.txt c0 c1 rps
    [[ $side == *mount ]] && c0=$(cpu_ticks "$MOUNT_PID")
    wrk_rps "${PORTS[$side]}" "$list" "run$3-$side-$layout" >> "$W/wrk-$layout-$side"
    [[ $side == *mount ]] || return 0
    c1=$(cpu_ticks "$MOUNT_PID")
    rps=$(tail -n 1 "$W/wrk-$layout-$side")
    # daemon CPU µs per request = ticks × (1e6 / CLK_TCK) / (rps × seconds)
    awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v rps="$rps" -v s="$WRK_SECONDS" \
        'BEGIN { printf "%.1f\n", d * 1e6 / hz / (rps * s) }' >> "$W/wrk-$layout-$side-daemon-us"
}

bench_nginx() {
    declare -gA PORTS
    local sides=(plain mount) side
    [ "$WHATIF" = 1 ] && sides+=(wplain wmount)
    for side in "${sides[@]}"; do
        PORTS[$side]=$(free_port)
        local root=$W/up
        [[ $side == *mount ]] && root=$W/mnt
        case $side in
            w*) start_nginx "$side" "${PORTS[$side]}" "$(whatif_block "${PORTS[$side]}" "$root")" "$NOFILE_WHATIF" ;;
            *) start_nginx "$side" "${PORTS[$side]}" "$(server_block "${PORTS[$side]}" "$root")" ;;
        esac
    done
    # One layout at a time: its warm-up fills every nginx's fd cache with its files, and no run
    # starts by re-opening files the other layout's runs evicted.
    local layout r i n=${#sides[@]}
    for layout in pool dists; do
        local list=$W/paths-$layout.txt
        curl -sf -o /dev/null "http://127.0.0.1:${PORTS[mount]}$(head -n 1 "$list")" || die "nginx cannot read the mount"
        warm_files "$W/up" "$list"
        warm_files "$W/mnt" "$list"
        # Short warm-up runs fill nginx's open_file_cache and the kernel's dentry cache.
        for side in "${sides[@]}"; do
            WRK_SECONDS=3 wrk_rps "${PORTS[$side]}" "$list" "warmup-$side-$layout" > /dev/null
        done
        for ((r = 1; r <= REPEAT; r++)); do
            # Rotate the order every run: no side always runs right after another.
            for ((i = 0; i < n; i++)); do
                wrk_side "${sides[$(((i + r) % n))]}" "$layout" "$r"
            done
        done
    done
    stop_nginx
}

# ---------------------------------------------------------------- 3. 1M-entry catalog
# Two shapes of N catalog entries (examples/bench-catalog.rs): `single` — one published snapshot,
# an object per entry (worst case per entry); `history` — three hourly snapshots of N/3 entries
# sharing 95 % of their objects, the older two inside the grace window (a real mirror's catalog).

# mount_big SHAPE TEMP RUN: mounts that catalog; records exec → first successful lookup (the view is
# complete before the mount answers anything) and the daemon's RSS then. Leaves the mount up.
mount_big() {
    local t0 key=$1-$2
    run_probe exists "$W/mnt/bench/big/dists/bookworm/Release" 60
    t0=$(now)
    start_mount "$W/config-$1.toml" "$W/mount-$key-$3.log"
    probe_wait
    elapsed_ms "$t0" "$PROBE_SEEN" >> "$W/first-lookup-$key"
    rss_kib "$MOUNT_PID" VmRSS >> "$W/rss-$1"
    rss_kib "$MOUNT_PID" VmHWM >> "$W/hwm-$1"
    grep -q '^bench release' "$W/mnt/bench/big/dists/bookworm/Release" || die "$1 catalog: Release reads wrong"
    log "$ENTRIES entries ($1, $2) run $3: first lookup $(tail -n 1 "$W/first-lookup-$key") ms, RSS $(tail -n 1 "$W/rss-$1") KiB (peak $(tail -n 1 "$W/hwm-$1") KiB)"
}

# walk_big SHAPE: stat every entry of the mounted view (find), then the daemon's RSS: the worst
# case, every page of the view image touched (mapped file pages count in RSS; they are page cache
# the kernel can drop again, not heap).
walk_big() {
    local t0 n
    t0=$(now)
    n=$(find "$W/mnt" -printf x | wc -c)
    log "$1: walked $n entries in $(elapsed_ms "$t0" "$(now)") ms"
    rss_kib "$MOUNT_PID" VmRSS > "$W/rss-walk-$1"
    awk '$1 == "RssAnon:" || $1 == "RssFile:" { printf "%s %s ", $1, $2 } END { print "" }' "/proc/$MOUNT_PID/status" > "$W/rss-split-walk-$1"
    log "$1: after the walk RSS $(cat "$W/rss-walk-$1") KiB ($(cat "$W/rss-split-walk-$1"))"
}

make_catalog() { # SHAPE
    local t0
    t0=$(now)
    "$CATALOG_BIN" --store "$W/store-$1" --entries "$ENTRIES" --shape "$1" 2> "$W/bench-catalog-$1.log" || { cat "$W/bench-catalog-$1.log" >&2; die "bench-catalog failed"; }
    CATALOG_BUILD_MS[$1]=$(elapsed_ms "$t0" "$(now)")
    write_config "$W/config-$1.toml" "$W/store-$1"
    log "catalog ($1) of $ENTRIES entries built in ${CATALOG_BUILD_MS[$1]} ms ($(du -sh "$W/store-$1/catalog.db" | cut -f1))"
    # Where start-up goes: catalog load vs tree build, view heap vs RSS (the daemon's own steps).
    "$CATALOG_BIN" --store "$W/store-$1" --measure 2>&1 | sed -n 's/.*view measured //p' > "$W/measure-$1"
    log "view ($1): $(cat "$W/measure-$1")"
}

bench_catalog() {
    make_catalog single
    make_catalog history
    write_config "$W/config0.toml" "$W/store0"
    mkdir -p "$W/store0"
    local r shape temp
    for ((r = 1; r <= REPEAT; r++)); do
        # Empty catalog: the baseline RSS once the mount answers.
        start_mount "$W/config0.toml" "$W/mount0-$r.log"
        wait_mounted "$W/mount0-$r.log"
        stat "$W/mnt/." > /dev/null
        rss_kib "$MOUNT_PID" VmRSS >> "$W/rss-empty"
        log "empty mount run $r: RSS $(tail -n 1 "$W/rss-empty") KiB"
        stop_mount
        for shape in history single; do
            for temp in cold warm; do
                # Cold: catalog.db and the binary come from disk, as at boot.
                [ "$temp" = warm ] || drop_caches
                mount_big "$shape" "$temp" "$r"
                [ "$r" = "$REPEAT" ] && [ "$temp" = warm ] && walk_big "$shape"
                [ "$r" = "$REPEAT" ] && [ "$shape" = single ] && [ "$temp" = warm ] || stop_mount
            done
        done
    done
    # Item 4 on the big view (single shape), with the last mount still up.
    bench_publish "$W/config-single.toml" flip "$W/mnt/bench/flip/dists/bookworm/Release" "$REPEAT" publish-1m
    rss_kib "$MOUNT_PID" VmHWM > "$W/hwm-after-switch"
    rss_kib "$MOUNT_PID" VmRSS > "$W/rss-after-switch"
    stop_mount
}

# ---------------------------------------------------------------- 4. publish → visible
# snapshot_names CONFIG MIRROR → "PUBLISHED OTHER" (the newest other snapshot).
snapshot_names() {
    "$BIN" --config "$1" snapshot list "$2" --json | python3 -c '
import json, sys
snaps = json.load(sys.stdin)
published = [s["name"] for s in snaps if s["published"]]
others = [s["name"] for s in snaps if not s["published"]]
if len(published) != 1 or not others:
    sys.exit("need one published and one other snapshot, have: %r" % snaps)
print(published[0], others[-1])'
}

# bench_publish CONFIG MIRROR PATH COUNT LABEL: publishes the mirror's two snapshots in turn; each
# time measures from the publish command's return (and its start) to the first new open of PATH
# that reads the other content.
bench_publish() {
    local config=$1 mirror=$2 path=$3 count=$4 label=$5 i current other
    read -r current other <<< "$(snapshot_names "$config" "$mirror")" || die "$mirror: no two snapshots"
    for ((i = 1; i <= count; i++)); do
        run_probe changed "$path" 30
        local t0 t1
        t0=$(now)
        "$BIN" --config "$config" snapshot publish "$mirror" "$other" > /dev/null 2>> "$W/$label.log" || die "publish $mirror $other failed"
        t1=$(now)
        probe_wait
        elapsed_ms "$t1" "$PROBE_SEEN" >> "$W/$label-from-return"
        elapsed_ms "$t0" "$PROBE_SEEN" >> "$W/$label-from-start"
        elapsed_ms "$t0" "$t1" >> "$W/$label-command"
        log "$label $i: visible $(tail -n 1 "$W/$label-from-return") ms after publish returned (command took $(tail -n 1 "$W/$label-command") ms)"
        read -r current other <<< "$other $current"
    done
}

bench_publish_store() {
    bench_publish "$W/config.toml" bench-deb "$W/mnt/bench/deb/dists/bookworm/Release" "$PUBLISHES" publish
}

# ---------------------------------------------------------------- summary
row() { printf '%-44s %12s %12s %8s %9s %s\n' "$@"; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { if (v == "nan") print "?"; else if ((op == "ge" && v >= t) || (op == "le" && v <= t)) print "MET"; else print "MISSED" }'; }

summary() {
    local m_cm m_cp m_wm m_wp
    m_cm=$(median < "$W/dd-cold-mount"); m_cp=$(median < "$W/dd-cold-pool")
    m_wm=$(median < "$W/dd-warm-mount"); m_wp=$(median < "$W/dd-warm-pool")
    local passthrough=no
    grep -q 'passthrough=true' "$W/mount-main.log" && passthrough=yes
    echo
    echo "== pmirror-fs FUSE benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs, passthrough: $passthrough =="
    echo "   medians of $REPEAT runs (dd: $DD_REPEAT, warm ×$DD_WARM_PAIRS; publish: $PUBLISHES switches); ratio = median of"
    echo "   per-run ratios (mount and baseline measured back to back); every sample is in the log above"
    echo "   load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews absolute figures)"
    row "measure" "mount" "baseline" "ratio" "target" "verdict"
    local r
    r=$(paired_ratio "$W/dd-cold-mount" "$W/dd-cold-pool"); row "$BIG_MIB MiB dd bs=1M cold (MiB/s; base: pool)" "$m_cm" "$m_cp" "$r" "≥ 0.95" "$(verdict "$r" 0.95 ge)"
    r=$(paired_ratio "$W/dd-warm-mount" "$W/dd-warm-pool"); row "$BIG_MIB MiB dd bs=1M warm (MiB/s; base: pool)" "$m_wm" "$m_wp" "$r" "≥ 0.95" "$(verdict "$r" 0.95 ge)"
    local layout
    for layout in pool dists; do
        local a b
        a=$(median < "$W/wrk-$layout-mount"); b=$(median < "$W/wrk-$layout-plain")
        r=$(paired_ratio "$W/wrk-$layout-mount" "$W/wrk-$layout-plain")
        row "nginx $FILES files in $layout/, shipped (req/s)" "$a" "$b" "$r" "≥ 0.95" "$(verdict "$r" 0.95 ge)"
        row "  daemon CPU per request (µs)" "$(median < "$W/wrk-$layout-mount-daemon-us")" "" "" "" ""
    done
    if [ "$WHATIF" = 1 ]; then
        for layout in pool dists; do
            a=$(median < "$W/wrk-$layout-wmount"); b=$(median < "$W/wrk-$layout-wplain")
            r=$(paired_ratio "$W/wrk-$layout-wmount" "$W/wrk-$layout-wplain")
            row "  what-if config, $layout/ (req/s)" "$a" "$b" "$r" "(≥ 0.95)" "$(verdict "$r" 0.95 ge)"
            row "    daemon CPU per request (µs)" "$(median < "$W/wrk-$layout-wmount-daemon-us")" "" "" "" ""
        done
        echo "  what-if = shipped block + open_file_cache max=12000 (worker_rlimit_nofile $NOFILE_WHATIF) + \`location ~ \\.u?deb\$ {}\` before /dists/"
    fi
    local rss0 shape
    rss0=$(median < "$W/rss-empty")
    for shape in single history; do
        local fl rss1 per hwm
        fl=$(median < "$W/first-lookup-$shape-cold")
        row "$ENTRIES entries ($shape): mount → lookup (ms)" "$fl" "" "" "≤ 1000" "$(verdict "$fl" 1000 le)"
        fl=$(median < "$W/first-lookup-$shape-warm")
        row "  same, catalog in page cache (ms)" "$fl" "" "" "≤ 1000" "$(verdict "$fl" 1000 le)"
        rss1=$(median < "$W/rss-$shape"); hwm=$(median < "$W/hwm-$shape")
        per=$(awk -v a="$rss1" -v b="$rss0" -v n="$ENTRIES" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
        row "  daemon RSS (KiB; base: empty catalog)" "$rss1" "$rss0" "" "" ""
        row "  RSS per entry (bytes)" "$per" "" "" "≤ 120" "$(verdict "$per" 120 le)"
        row "  peak RSS during start (KiB)" "$hwm" "" "" "" ""
        rss1=$(cat "$W/rss-walk-$shape")
        per=$(awk -v a="$rss1" -v b="$rss0" -v n="$ENTRIES" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
        row "  RSS per entry after a full walk (bytes)" "$per" "" "" "≤ 120" "$(verdict "$per" 120 le)"
        row "    (of which KiB)" "$(cat "$W/rss-split-walk-$shape")" "" "" "" ""
        echo "  view ($shape): $(cat "$W/measure-$shape")"
    done
    local p pm
    p=$(median < "$W/publish-from-return"); pm=$(maximum < "$W/publish-from-return")
    row "publish → visible, synced store (ms)" "$p" "max $pm" "" "≤ 100" "$(verdict "$p" 100 le)"
    row "  from publish start / command time (ms)" "$(median < "$W/publish-from-start")" "$(median < "$W/publish-command")" "" "" ""
    p=$(median < "$W/publish-1m-from-return"); pm=$(maximum < "$W/publish-1m-from-return")
    row "publish → visible, $ENTRIES entries single (ms)" "$p" "max $pm" "" "≤ 100" "$(verdict "$p" 100 le)"
    row "  from publish start / command time (ms)" "$(median < "$W/publish-1m-from-start")" "$(median < "$W/publish-1m-command")" "" "" ""
    row "  daemon RSS / peak after $REPEAT switches (KiB)" "$(cat "$W/rss-after-switch")" "$(cat "$W/hwm-after-switch")" "" "" ""
    echo "setup: sync of $FILES+$FILES files + $BIG_MIB MiB ${SYNC_MS[initial]} ms, re-sync ${SYNC_MS[resync]} ms; $ENTRIES-entry catalogs built in ${CATALOG_BUILD_MS[single]} ms (single), ${CATALOG_BUILD_MS[history]} ms (history)"
    [ -z "${WRK_ERRORS:-}" ] || echo "WARNING: wrk saw errors (non-2xx or socket):$WRK_ERRORS"
}

# ---------------------------------------------------------------- main
declare -A SYNC_MS CATALOG_BUILD_MS
WRK_ERRORS=""
T_START=$(now)
preflight
setup_store
start_mount "$W/config.toml" "$W/mount-main.log"
wait_mounted "$W/mount-main.log"
log "== 1. dd"
bench_dd
log "== 2. nginx + wrk"
bench_nginx
log "== 4. publish → visible (synced store)"
bench_publish_store
stop_mount
log "== 3. $ENTRIES-entry catalog (and 4. on it)"
bench_catalog
summary
echo "total time: $(elapsed_ms "$T_START" "$(now)" | awk '{ printf "%.0f s", $1 / 1000 }')"
