#!/usr/bin/env bash
# bench-pin.sh: what pinned index paths (issue 13) cost, before vs after side by side in one run.
#
#   scripts/bench-pin.sh BEFORE_BIN AFTER_BIN
#
# BEFORE_BIN is a release pmirror-fs without pins (004d30f), served with that commit's nginx site;
# AFTER_BIN one with them, served with this checkout's site (scripts/nginx/pmirror-fs.conf: index
# paths under dists/ and checksum lists opened as <mount>/.pin/$pmirror_pin/<path>). The issue's
# requirement: small-file req/s through the shipped site (bench-fuse's wrk rows) ≥ 0.95 of
# today's; memory per pinned token bounded and reported; the token table expires.
#
#   1. nginx + wrk on 127.0.0.1: the same store (synced once, then copied: one copy per daemon),
#      two mounts, two nginx instances, the same path lists, runs interleaved (order alternates),
#      ratio = median of per-run ratios after/before. Rows: bench-fuse's two layouts (.debs under
#      pool/, Debian style; .debs inside dists/, Proxmox style: both still on the plain root with
#      open_file_cache), then the rows pins do touch: the index files under dists/ (listed from the
#      mount; opened fresh on both sides, open_file_cache off), over keep-alive connections (one
#      token per wrk connection), the small ones alone (InRelease, Release, Release.gpg: the
#      per-open cost, not copying Packages, sets their rate), and all of them with
#      `Connection: close` (every request a new connection, so a new token whose path walk
#      starts cold: the worst case). The index rows have no target; they show what pins cost.
#   2. Memory per token: a fresh AFTER daemon (shipped bounds); its RSS before and after N tokens
#      were looked up (`os.stat(<mnt>/.pin/<token>/<index path>)`, the walk nginx's open does), and
#      on past the table's bound (MAX_TOKENS, src/fuse/pin.rs): the daemon's RSS should stop
#      growing there. The kernel's share (dentries and FUSE inodes of each token's subtree,
#      outside the daemon's RSS) from /proc/slabinfo, at every step.
#   3. Expiry: a fresh AFTER daemon with `[mount] pin-idle = "5s"`; N tokens, then idle + 2 s: the
#      daemon's `pin tokens expired` debug lines (tokens left), RSS and slab figures again.
#
# Everything gets into the store the real way: signed repositories written by
# scripts/bench/make-repo.py, served by a plain nginx, mirrored by `pmirror-fs sync` (AFTER_BIN;
# 004d30f..5a43aa3 change no sync, store or catalog code and no view image format).
#
# Run as root on an otherwise idle machine (FUSE, nginx as www-data, /proc/slabinfo); runs that
# started while a cargo or rustc process was up are named in a warning under the table.
# Knobs (environment): BENCH_DIR (work dir, default /var/tmp/pmirror-fs-bench-pin, removed at the
# end unless BENCH_KEEP=1), BENCH_REPEAT (3), BENCH_FILES (10000), BENCH_WRK_SECONDS (10),
# BENCH_TOKENS (20000), BENCH_OVER (10000: tokens past the bound; 0 skips that step),
# BENCH_CLOSE (1: the Connection: close row), BENCH_BEFORE_REV (004d30f: the site of BEFORE, read
# with git show) or BENCH_BEFORE_SITE / BENCH_AFTER_SITE (site files).
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 BEFORE_BIN AFTER_BIN" >&2; exit 2; }
BEFORE_ARG=$(realpath "$1")
AFTER_ARG=$(realpath "$2")
cd "$(dirname "$0")/.."
SRC=$PWD
export LC_ALL=C

W=${BENCH_DIR:-/var/tmp/pmirror-fs-bench-pin}
REPEAT=${BENCH_REPEAT:-3}
FILES=${BENCH_FILES:-10000}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
TOKENS=${BENCH_TOKENS:-20000}
OVER=${BENCH_OVER:-10000}
CLOSE_ROW=${BENCH_CLOSE:-1}
BEFORE_REV=${BENCH_BEFORE_REV:-004d30f}
# The expiry step's bounds (the shipped ones are 120s / 10m).
EXPIRY_IDLE_S=5
# As bench-fuse: one wrk thread per core, enough connections to keep both nginx workers busy.
WRK_THREADS=2
WRK_CONNECTIONS=32
NOFILE_SHIPPED=16384
HELPERS=$SRC/scripts/bench
# log, die, wait_gone, stop_nginx, free_port, median, paired_ratio, elapsed_ms, now, rss_kib, cpu_ticks
# shellcheck source=bench/lib.sh
source "$HELPERS/lib.sh"
SIDES=(before after)
# The table's bound, as the AFTER source states it (only used for the step past it).
MAX_TOKENS=$(sed -n 's/^pub const MAX_TOKENS: usize = \([0-9_]*\);.*/\1/p' "$SRC/src/fuse/pin.rs" 2>/dev/null | tr -d _)
MAX_TOKENS=${MAX_TOKENS:-16384}
# The index path the token steps look up (Proxmox style: the repository pins are for).
PIN_PROBE_PATH=bench/pve/dists/bookworm/pve-no-subscription/binary-amd64/Packages


# ---------------------------------------------------------------- processes we own, and cleanup
PIDS_NGINX=()
declare -A MOUNT_PID MOUNT_DIR



stop_mount() { # SIDE
    local pid=${MOUNT_PID[$1]:-} dir=${MOUNT_DIR[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 100 || { log "mount daemon $pid ignored SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
    if mountpoint -q "$dir" 2>/dev/null; then
        fusermount3 -u -z "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
    fi
    MOUNT_PID[$1]=""
}

cleanup() {
    local rc=$? side
    stop_nginx
    for side in "${!MOUNT_PID[@]}"; do stop_mount "$side"; done
    if [ "${BENCH_KEEP:-0}" != 1 ] && [ -d "$W" ]; then
        rm -rf "$W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
# slab NAME → "active_objs objsize" from /proc/slabinfo ("0 0" when the cache is not listed:
# merged into another one, or slabinfo unreadable).
slab() { awk -v n="$1" '$1 == n { print $2, $4; f = 1 } END { if (!f) print 0, 0 }' /proc/slabinfo 2>/dev/null || echo 0 0; }
# → "dentry OBJECTS SIZE fuse_inode OBJECTS SIZE"
slab_snapshot() { printf 'dentry %s fuse_inode %s\n' "$(slab dentry)" "$(slab fuse_inode)"; }

# The shipped server block (SITE) with `listen` (first one only; the others dropped) replaced, and
# in every `root` the /srv/pmirror-fs prefix replaced by MNT: the AFTER site's pinned roots become
# MNT/.pin/$pmirror_pin (replacing root lines wholesale, as bench-fuse does, would serve index
# paths from the plain root and not exercise pins). Whatever sits outside `server` (the AFTER
# site's `map`) is kept.
server_block() { # PORT MNT SITE
    awk -v listen="127.0.0.1:$1" -v mnt="$2" '
        /^[ \t]*listen[ \t]/ { if (!seen++) { sub(/listen[ \t].*;/, "listen " listen ";"); print } next }
        /^[ \t]*root[ \t]/ {
            n = index($0, "/srv/pmirror-fs")
            if (!n) { print "server_block: a root without /srv/pmirror-fs: " $0 > "/dev/stderr"; exit 1 }
            $0 = substr($0, 1, n - 1) mnt substr($0, n + length("/srv/pmirror-fs")); print; next
        }
        { print }' "$3"
}

# start_nginx NAME PORT CONFIG_BODY: as bench-fuse (main context as the shipped config's header
# asks, workers as www-data, access_log off on every side).
start_nginx() {
    local dir=$W/nginx-$1 port=$2
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<EOF
daemon off;
user www-data;
worker_processes auto;
worker_rlimit_nofile $NOFILE_SHIPPED;
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

# start_mount SIDE CONFIG LOG [LOG_FILTER]: the SIDE's binary on its mount point; waits until mounted.
start_mount() {
    local side=$1 dir=$W/mnt-$1 i
    MOUNT_DIR[$side]=$dir
    mkdir -p "$dir"
    PMIRROR_FS_LOG=${4:-info} "$W/bin/$side" --config "$2" mount "$dir" --foreground --allow-other 2>"$3" &
    MOUNT_PID[$side]=$!
    for ((i = 0; i < 600; i++)); do
        mountpoint -q "$dir" && return 0
        kill -0 "${MOUNT_PID[$side]}" 2>/dev/null || die "mount daemon $side exited: $(tail -n 5 "$3")"
        sleep 0.1
    done
    die "mount $side did not come up"
}

# ---------------------------------------------------------------- preflight
preflight() {
    [ "$(id -u)" = 0 ] || die "run as root (FUSE, nginx as www-data, /proc/slabinfo)"
    [ -c /dev/fuse ] || die "/dev/fuse is missing"
    local tool
    for tool in /usr/sbin/nginx wrk gpg python3 fusermount3 curl mountpoint; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx wrk gpg python3 fuse3 curl util-linux)"
    done
    id www-data >/dev/null 2>&1 || die "user www-data is missing (the nginx package creates it)"
    [ -x "$BEFORE_ARG" ] || die "BEFORE_BIN $BEFORE_ARG is not an executable"
    [ -x "$AFTER_ARG" ] || die "AFTER_BIN $AFTER_ARG is not an executable"
    [ ! -e "$W" ] || die "$W exists (a previous run kept with BENCH_KEEP=1?); remove it first"
    mkdir -p "$W/bin"
    chmod 755 "$W"
    # Copies: a rebuild elsewhere must not swap them mid-run.
    cp "$BEFORE_ARG" "$W/bin/before"
    cp "$AFTER_ARG" "$W/bin/after"
    if [ -n "${BENCH_BEFORE_SITE:-}" ]; then
        cp "$BENCH_BEFORE_SITE" "$W/site-before.conf"
    else
        git -C "$SRC" show "$BEFORE_REV:scripts/nginx/pmirror-fs.conf" > "$W/site-before.conf" || die "cannot read the site of $BEFORE_REV"
    fi
    cp "${BENCH_AFTER_SITE:-$SRC/scripts/nginx/pmirror-fs.conf}" "$W/site-after.conf"
    grep -q '\.pin/\$pmirror_pin' "$W/site-after.conf" || die "the AFTER site has no root under .pin/\$pmirror_pin"
    ! grep -q '\.pin/' "$W/site-before.conf" || die "the BEFORE site already uses .pin/"
    if [ ! -r /proc/slabinfo ]; then log "note: /proc/slabinfo is not readable: kernel figures will read 0"; fi
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
}

# ---------------------------------------------------------------- fixture repositories and sync
setup_store() {
    export GNUPGHOME=$W/gnupg
    mkdir -p -m 700 "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-gen-key 'pmirror-fs bench <bench@pmirror-fs.invalid>' ed25519 sign never 2>/dev/null
    gpg --batch --export > "$W/key.gpg"
    python3 "$HELPERS/make-repo.py" --out "$W/up" --root bench/deb --layout pool --count "$FILES" \
        --seed 1 --gnupghome "$GNUPGHOME" --list "$W/paths-pool.txt"
    python3 "$HELPERS/make-repo.py" --out "$W/up" --root bench/pve --layout dists --count "$FILES" \
        --seed 2 --gnupghome "$GNUPGHOME" --list "$W/paths-dists.txt"
    chmod -R a+rX "$W/up"
    UP_PORT=$(free_port)
    start_nginx upstream "$UP_PORT" "server { listen 127.0.0.1:$UP_PORT; root $W/up; sendfile on; }"
    local side
    for side in "${SIDES[@]}"; do
        write_config "$W/config-$side.toml" "$W/store-$side"
    done
    local t0
    t0=$(now)
    "$W/bin/after" --config "$W/config-after.toml" sync > "$W/sync.log" 2>&1 || { cat "$W/sync.log" >&2; die "sync failed"; }
    SYNC_MS=$(elapsed_ms "$t0" "$(now)")
    log "sync of $FILES+$FILES files: $SYNC_MS ms"
    stop_nginx
    # One store per daemon: a byte copy of the synced one (no writer is left on it).
    cp -a "$W/store-after" "$W/store-before"
    # Expiry step: the AFTER store with short pin bounds.
    write_config "$W/config-expiry.toml" "$W/store-after" \
        "$(printf '[mount]\npin-idle = "%ss"\npin-lifetime = "10m"\n' "$EXPIRY_IDLE_S")"
}

write_config() { # FILE STORE [EXTRA]
    {
        printf '[store]\ndir = "%s"\nfsync = false\n\n[sync]\nconcurrency = 8\nkeep = 5\n' "$2"
        [ -z "${3:-}" ] || printf '\n%s\n' "$3"
        mirror_entry bench-deb bench/deb main
        mirror_entry bench-pve bench/pve pve-no-subscription
    } > "$1"
}

mirror_entry() { # ID ROOT COMPONENT
    printf '\n[[mirror]]\nid = "%s"\nrepository = "deb http://127.0.0.1:%s/%s bookworm %s"\narchitectures = ["amd64"]\nkey = "%s"\n' \
        "$1" "$UP_PORT" "$2" "$3" "$W/key.gpg"
}

# ---------------------------------------------------------------- 1. nginx + wrk
ROWS=(pool dists index release)
declare -A ROW_LABEL=(
    [pool]="pool/ .debs (Debian style)"
    [dists]="dists/ .debs (Proxmox style)"
    [index]="dists/ index files, keep-alive"
    [release]="  of which InRelease/Release/.gpg only"
    [close]="dists/ index files, Connection: close"
)

# The index files under dists/ the mount shows, as URL paths (the same list for both sides).
list_index_files() {
    (cd "$W/mnt-after" && find bench -path '*/dists/*' -type f ! -name '*.deb' ! -name '*.udeb' ! -path '*/by-hash/*' -printf '/%p\n') | sort > "$W/paths-index.txt"
    [ -s "$W/paths-index.txt" ] || die "the mount shows no index files under dists/"
    cp "$W/paths-index.txt" "$W/paths-close.txt"
    # The small ones alone: the per-open cost, not the copying of Packages, sets their rate.
    grep -E '/(InRelease|Release|Release\.gpg)$' "$W/paths-index.txt" > "$W/paths-release.txt" || die "no Release files under dists/"
    local p
    while read -r p; do
        [ -f "$W/mnt-before$p" ] || die "$p is on the AFTER mount, not on the BEFORE one"
        INDEX_SIZES="${INDEX_SIZES:-}  $(stat -c '%s' "$W/mnt-after$p") B $p"$'\n'
    done < "$W/paths-index.txt"
}

wrk_rps() { # PORT LIST LABEL [WRK_ARGS...]
    local port=$1 list=$2 label=$3 out line errors
    shift 3
    out=$(PATHS="$list" wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" "$@" -s "$HELPERS/random-paths.lua" "http://127.0.0.1:$port")
    line=$(grep '^BENCH ' <<< "$out") || die "wrk printed no summary: $out"
    log "wrk $label: ${line#BENCH }"
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<< "$line")
    [ "$errors" = 0 ] || WRK_ERRORS="$WRK_ERRORS $label:$errors"
    sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<< "$line"
}

# wrk_side SIDE ROW RUN: one measured run, and the daemon's CPU time per request.
wrk_side() {
    local side=$1 row=$2 c0 c1 rps args=()
    [ "$row" = close ] && args=(-H "Connection: close")
    # A build on this machine during a run skews it: named in the summary, not hidden.
    pgrep -x 'cargo|rustc' > /dev/null && BUSY_RUNS="$BUSY_RUNS run$3-$side-$row"
    c0=$(cpu_ticks "${MOUNT_PID[$side]}")
    wrk_rps "${PORTS[$side]}" "$W/paths-$row.txt" "run$3-$side-$row" "${args[@]}" >> "$W/wrk-$row-$side"
    c1=$(cpu_ticks "${MOUNT_PID[$side]}")
    rps=$(tail -n 1 "$W/wrk-$row-$side")
    awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v rps="$rps" -v s="$WRK_SECONDS" \
        'BEGIN { printf "%.1f\n", d * 1e6 / hz / (rps * s) }' >> "$W/wrk-$row-$side-daemon-us"
}

# Evidence that the AFTER site walks .pin/<token>/ and the BEFORE site does not: a missing index
# path makes nginx log the file it tried to open.
check_sites() {
    local side p code
    p=$(head -n 1 "$W/paths-index.txt")
    for side in "${SIDES[@]}"; do
        code=$(curl -s -o "$W/check-$side.body" -w '%{http_code}' "http://127.0.0.1:${PORTS[$side]}$p")
        [ "$code" = 200 ] || die "$side nginx answers $code for $p"
        cmp -s "$W/check-$side.body" "$W/mnt-$side$p" || die "$side nginx serves other bytes than the mount for $p"
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORTS[$side]}$(head -n 1 "$W/paths-dists.txt")")
        [ "$code" = 200 ] || die "$side nginx answers $code for a .deb in dists/"
        curl -s -o /dev/null "http://127.0.0.1:${PORTS[$side]}/bench/pve/dists/bookworm/bench-pin-missing"
        curl -s -o /dev/null -H 'X-Pmirror-Pin: bench-check' "http://127.0.0.1:${PORTS[$side]}/bench/pve/dists/bookworm/bench-pin-missing"
    done
    sleep 0.2
    for side in "${SIDES[@]}"; do
        PIN_EVIDENCE+="  $side: $(grep -o 'open() "[^"]*bench-pin-missing"' "$W/nginx-$side/error.log" | sed "s|$W/||" | tr '\n' ' ')"$'\n'
    done
    grep -q "open() \"$W/mnt-after/.pin/[0-9]*-[0-9]*/bench/pve/dists/bookworm/bench-pin-missing\"" "$W/nginx-after/error.log" \
        || die "the AFTER nginx did not open index paths under .pin/\$pid-\$connection/: $(cat "$W/nginx-after/error.log")"
    grep -q "open() \"$W/mnt-after/.pin/p-bench-check/" "$W/nginx-after/error.log" || die "the AFTER nginx ignored X-Pmirror-Pin"
    ! grep -q '\.pin/' "$W/nginx-before/error.log" || die "the BEFORE nginx opened something under .pin/"
    # The mount side of it: a token answers (stat), and .pin lists nothing.
    stat "$W/mnt-after/.pin/bench-check-stat$p" > /dev/null || die "stat .pin/<token>$p fails on the AFTER mount"
    [ -z "$(ls -A "$W/mnt-after/.pin")" ] || die ".pin lists something"
}

bench_nginx() {
    declare -gA PORTS
    local side
    for side in "${SIDES[@]}"; do
        start_mount "$side" "$W/config-$side.toml" "$W/mount-$side.log" "info,pmirror_fs::fuse=debug"
    done
    list_index_files
    for side in "${SIDES[@]}"; do
        PORTS[$side]=$(free_port)
        server_block "${PORTS[$side]}" "$W/mnt-$side" "$W/site-$side.conf" > "$W/server-$side.conf" || die "server_block $side"
        start_nginx "$side" "${PORTS[$side]}" "$(cat "$W/server-$side.conf")"
    done
    PIN_EVIDENCE=""
    check_sites
    [ "$CLOSE_ROW" = 1 ] && ROWS+=(close)
    local row r i
    for row in "${ROWS[@]}"; do
        local list=$W/paths-$row.txt
        for side in "${SIDES[@]}"; do
            sed "s|^|$W/mnt-$side|" "$list" | xargs -d '\n' cat > /dev/null
        done
        # Short warm-up runs fill nginx's open_file_cache and the kernel's dentry cache.
        for side in "${SIDES[@]}"; do
            local args=()
            [ "$row" = close ] && args=(-H "Connection: close")
            WRK_SECONDS=3 wrk_rps "${PORTS[$side]}" "$list" "warmup-$side-$row" "${args[@]}" > /dev/null
        done
        for ((r = 1; r <= REPEAT; r++)); do
            # Alternate the order every run: neither side always runs first.
            for ((i = 0; i < 2; i++)); do
                wrk_side "${SIDES[$(((i + r) % 2))]}" "$row" "$r"
            done
        done
    done
    stop_nginx
    for side in "${SIDES[@]}"; do stop_mount "$side"; done
}

# ---------------------------------------------------------------- 2. and 3. tokens
# make_tokens MNT PREFIX FROM TO: looks up .pin/<PREFIX><i>/<PIN_PROBE_PATH> for i in [FROM, TO);
# prints the rate (tokens/s).
make_tokens() {
    python3 - "$@" "$PIN_PROBE_PATH" <<'EOF'
import os, sys, time
mnt, prefix, lo, hi, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t0 = time.monotonic()
for i in range(lo, hi):
    os.stat(f"{mnt}/.pin/{prefix}{i}/{path}")
print(f"{(hi - lo) / (time.monotonic() - t0):.0f}")
EOF
}

# mem_point NAME PID: records the daemon's VmRSS and RssAnon (KiB) and the slab figures.
mem_point() {
    local f=$W/mem-$1
    printf '%s %s %s\n' "$(rss_kib "$2" VmRSS)" "$(rss_kib "$2" RssAnon)" "$(slab_snapshot)" > "$f"
    log "$1: VmRSS $(cut -d' ' -f1 "$f") KiB, RssAnon $(cut -d' ' -f2 "$f") KiB, slab $(cut -d' ' -f3- "$f")"
}

# A point's file: VmRSS RssAnon dentry OBJECTS SIZE fuse_inode OBJECTS SIZE (8 fields).
# per_token A B N FIELD → bytes per token between points A and B (FIELD 1 = VmRSS, 2 = RssAnon,
# k = the kernel's dentry + fuse_inode bytes)
per_token() {
    paste -d' ' "$W/mem-$1" "$W/mem-$2" | awk -v n="$3" -v f="$4" '
        function kernel(off) { return $(off + 4) * $(off + 5) + $(off + 7) * $(off + 8) }
        { if (f == "k") d = kernel(8) - kernel(0); else d = ($(f + 8) - $f) * 1024; printf "%.0f", d / n }'
}
# slab_delta A B NAME → "Δobjects"
slab_delta() {
    paste -d' ' "$W/mem-$1" "$W/mem-$2" | awk -v name="$3" '{ o = (name == "dentry") ? 4 : 7; printf "%+d", $(o + 8) - $o }'
}

bench_tokens() {
    local mnt=$W/mnt-after pid
    start_mount after "$W/config-after.toml" "$W/mount-mem.log" "info,pmirror_fs::fuse=debug"
    pid=${MOUNT_PID[after]}
    # The code paths and the view pages a token touches, once, before the baseline.
    stat "$mnt/$PIN_PROBE_PATH" "$mnt/.pin/warm/$PIN_PROBE_PATH" > /dev/null
    sleep 1
    mem_point base "$pid"
    RATE_N=$(make_tokens "$mnt" tok 0 "$TOKENS")
    mem_point n "$pid"
    log "$TOKENS tokens at $RATE_N tokens/s"
    if [ "$OVER" -gt 0 ]; then
        # Up to the bound, then OVER past it: new tokens replace the least recently used.
        [ "$TOKENS" -lt "$MAX_TOKENS" ] && RATE_FILL=$(make_tokens "$mnt" tok "$TOKENS" "$MAX_TOKENS")
        mem_point bound "$pid"
        RATE_OVER=$(make_tokens "$mnt" tok "$MAX_TOKENS" $((MAX_TOKENS + OVER)))
        mem_point over "$pid"
        log "to the bound at ${RATE_FILL:-?} tokens/s, $OVER past it at $RATE_OVER tokens/s"
    fi
    stop_mount after

    # 3. Expiry.
    start_mount after "$W/config-expiry.toml" "$W/mount-expiry.log" "info,pmirror_fs::fuse=debug"
    pid=${MOUNT_PID[after]}
    stat "$mnt/$PIN_PROBE_PATH" "$mnt/.pin/warm/$PIN_PROBE_PATH" > /dev/null
    sleep 1
    mem_point xbase "$pid"
    local t0 t_made
    t0=$(now)
    RATE_X=$(make_tokens "$mnt" exp 0 "$TOKENS")
    t_made=$(now)
    mem_point xmade "$pid"
    sleep $((EXPIRY_IDLE_S + 2))
    mem_point xidle "$pid"
    # If the last sweep had not come yet, wait for it (reported, not hidden).
    local i
    for ((i = 0; i < 100; i++)); do
        last_expiry_line | grep -q ' tokens=0 ' && break
        sleep 0.1
    done
    EXPIRED_AT_MS=$(elapsed_ms "$t_made" "$(now)")
    mem_point xgone "$pid"
    EXPIRY_LINES=$(grep -c 'pin tokens expired' "$W/mount-expiry.log" || true)
    EXPIRY_FORGOTTEN=$(grep 'pin tokens expired' "$W/mount-expiry.log" | sed -n 's/.*forgotten=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    EXPIRY_LAST=$(last_expiry_line)
    log "expiry: $EXPIRY_LINES sweeps logged, $EXPIRY_FORGOTTEN tokens forgotten; last: $EXPIRY_LAST"
    MAKE_X_MS=$(elapsed_ms "$t0" "$t_made")
    stop_mount after
}

# The daemon's last sweep line, without colours and timestamp.
last_expiry_line() {
    grep 'pin tokens expired' "$W/mount-expiry.log" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g; s/^.*pin tokens expired/pin tokens expired/'
}

# ---------------------------------------------------------------- summary
row() { printf '%-42s %13s %13s %8s %8s %s\n' "$@"; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "nan") print "?"; else if (v >= t) print "MET"; else print "MISSED" }'; }
kib() { cut -d' ' -f"$2" "$W/mem-$1"; }

summary() {
    echo
    echo "== pmirror-fs pin benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs =="
    echo "   before: $BEFORE_ARG with the site of ${BENCH_BEFORE_SITE:-$BEFORE_REV}; after: $AFTER_ARG with ${BENCH_AFTER_SITE:-scripts/nginx/pmirror-fs.conf}"
    echo "   wrk -t$WRK_THREADS -c$WRK_CONNECTIONS ${WRK_SECONDS}s, medians of $REPEAT runs; ratio = median of per-run after/before (run back to back, order alternating)"
    echo "   load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    row "layout" "before req/s" "after req/s" "ratio" "target" "verdict"
    local r a b
    for r in "${ROWS[@]}"; do
        a=$(median < "$W/wrk-$r-before"); b=$(median < "$W/wrk-$r-after")
        local ratio target="≥ 0.95" v
        ratio=$(paired_ratio "$W/wrk-$r-after" "$W/wrk-$r-before")
        v=$(verdict "$ratio" 0.95)
        case $r in index | release | close) target="-"; v="(no target)" ;; esac
        row "${ROW_LABEL[$r]}" "$a" "$b" "$ratio" "$target" "$v"
        row "  daemon CPU per request (µs)" "$(median < "$W/wrk-$r-before-daemon-us")" "$(median < "$W/wrk-$r-after-daemon-us")" "" "" ""
    done
    echo "  $FILES .debs per layout, 4-64 KiB; index files (from the mount, on both sides):"
    printf '%s' "$INDEX_SIZES"
    echo "  the sites at work (nginx's error log for a missing dists/ path, plain and with X-Pmirror-Pin):"
    printf '%s' "$PIN_EVIDENCE"
    echo
    echo "-- memory per pinned token (AFTER daemon, shipped bounds; lookups of .pin/<token>/$PIN_PROBE_PATH)"
    echo "   RSS KiB = the daemon's VmRSS / RssAnon; kernel = /proc/slabinfo active objects × object size"
    printf '   %-34s %9s %9s %12s %12s\n' "point" "VmRSS KiB" "RssAnon" "dentry objs" "fuse_inodes"
    local p
    for p in base n bound over; do
        [ -f "$W/mem-$p" ] || continue
        local label
        case $p in
            base) label="mounted, 1 token" ;;
            n) label="+ $TOKENS tokens ($RATE_N/s)" ;;
            bound) label="$MAX_TOKENS tokens (the bound; ${RATE_FILL:-?}/s)" ;;
            over) label="+ $OVER past the bound ($RATE_OVER/s)" ;;
        esac
        printf '   %-34s %9s %9s %12s %12s\n' "$label" "$(kib "$p" 1)" "$(kib "$p" 2)" "$(kib "$p" 4)" "$(kib "$p" 7)"
    done
    echo "   daemon bytes per token ($TOKENS tokens): VmRSS $(per_token base n "$TOKENS" 1), RssAnon $(per_token base n "$TOKENS" 2)"
    echo "   kernel bytes per token ($TOKENS tokens): $(per_token base n "$TOKENS" k) (dentry $(slab_delta base n dentry), fuse_inode $(slab_delta base n fuse_inode) objects; object sizes $(slab dentry | cut -d' ' -f2) / $(slab fuse_inode | cut -d' ' -f2) B)"
    if [ -f "$W/mem-over" ]; then
        echo "   daemon bytes per token at the bound ($MAX_TOKENS): VmRSS $(per_token base bound "$MAX_TOKENS" 1), RssAnon $(per_token base bound "$MAX_TOKENS" 2)"
        echo "   growth past the bound ($OVER more tokens): VmRSS $(( $(kib over 1) - $(kib bound 1) )) KiB, RssAnon $(( $(kib over 2) - $(kib bound 2) )) KiB; kernel dentry $(slab_delta bound over dentry), fuse_inode $(slab_delta bound over fuse_inode) objects"
    fi
    echo
    echo "-- expiry (AFTER daemon, [mount] pin-idle = \"${EXPIRY_IDLE_S}s\", pin-lifetime = \"10m\")"
    printf '   %-34s %9s %9s %12s %12s\n' "point" "VmRSS KiB" "RssAnon" "dentry objs" "fuse_inodes"
    for p in xbase xmade xidle xgone; do
        case $p in
            xbase) label="mounted, 1 token" ;;
            xmade) label="+ $TOKENS tokens (${MAKE_X_MS} ms)" ;;
            xidle) label="idle + 2 s later" ;;
            xgone) label="last sweep seen (+${EXPIRED_AT_MS} ms)" ;;
        esac
        printf '   %-34s %9s %9s %12s %12s\n' "$label" "$(kib "$p" 1)" "$(kib "$p" 2)" "$(kib "$p" 4)" "$(kib "$p" 7)"
    done
    echo "   daemon log: $EXPIRY_LINES \"pin tokens expired\" lines, forgotten=$EXPIRY_FORGOTTEN in all; the last: $EXPIRY_LAST"
    echo "setup: sync of $FILES+$FILES files $SYNC_MS ms"
    [ -z "${WRK_ERRORS:-}" ] || echo "WARNING: wrk saw errors (non-2xx or socket):$WRK_ERRORS"
    [ -z "${BUSY_RUNS:-}" ] || echo "WARNING: cargo or rustc was running at the start of:$BUSY_RUNS"
}

# ---------------------------------------------------------------- main
WRK_ERRORS=""
BUSY_RUNS=""
T_START=$(now)
preflight
setup_store
log "== 1. nginx + wrk, before vs after"
bench_nginx
log "== 2. memory per token, 3. expiry"
bench_tokens
summary
echo "total time: $(elapsed_ms "$T_START" "$(now)" | awk '{ printf "%.0f s", $1 / 1000 }')"
