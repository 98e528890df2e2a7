#!/usr/bin/env bash
# bench-sync.sh: the sync of a big repository by two pmirror-fs binaries, side by side in one run
# (issue 12, "benchmarks before/after" of the one-engine reshaping).
#
#   scripts/bench-sync.sh BEFORE_BIN AFTER_BIN
#
# One signed repository of BENCH_PACKAGES (10,000) package files of 4–64 KiB (random, so nothing
# deduplicates), written by scripts/bench/make-repo.py — the Debian-style fixture bench-fuse.sh
# syncs — is served by a plain nginx on 127.0.0.1. Then, for RUNS rounds (default 3), each
# measurement is taken by BEFORE and AFTER one right after the other (the order alternates per
# round, so neither always runs second on a warmer machine):
#   1. full:   `sync` into a fresh, empty store (downloads, hashes and publishes every package);
#   2. no-op:  `sync` again, upstream unchanged;
#   3. verify: `sync --verify` (re-hashes every reused pool object).
# Prints every sample, then per measurement the medians and AFTER/BEFORE (ratio of the medians;
# also the median of the per-round ratios, steadier under background load). The stores use the
# shipped defaults (fsync on, default concurrency). Builds nothing: pass release binaries.
#
# Knobs (environment): RUNS (3), BENCH_PACKAGES (10000), BENCH_DIR (work dir, default a fresh
# /var/tmp/pmirror-fs-bench-sync.XXXXXX, removed at the end unless BENCH_KEEP=1), BENCH_FSYNC
# (true). Needs nginx, gpg, python3 and curl; as root nginx's workers run as www-data.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
export LC_ALL=C

[ $# = 2 ] || { echo "usage: $0 BEFORE_BIN AFTER_BIN" >&2; exit 2; }
declare -A BIN=([before]=$(realpath "$1") [after]=$(realpath "$2"))
RUNS=${RUNS:-3}
PACKAGES=${BENCH_PACKAGES:-10000}
FSYNC=${BENCH_FSYNC:-true}
SIDES=(before after)
MEASURES=(full noop verify)

log() { printf '%s\n' "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

for side in "${SIDES[@]}"; do
    [ -x "${BIN[$side]}" ] || die "$side binary ${BIN[$side]} is not executable"
done
for tool in /usr/sbin/nginx gpg python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx gpg python3 curl)"
done

W=${BENCH_DIR:-$(mktemp -d /var/tmp/pmirror-fs-bench-sync.XXXXXX)}
mkdir -p "$W"
NGINX_PID=""
cleanup() {
    local rc=$?
    if [ -n "$NGINX_PID" ]; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    [ -d "$W/gnupg" ] && { gpgconf --kill gpg-agent 2>/dev/null || true; }
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$W"; else log "kept $W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f\n", (b - a) * 1000 }'; }

# ---------------------------------------------------------------- the upstream repository
export GNUPGHOME=$W/gnupg
mkdir -p -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'pmirror-fs bench <bench@pmirror-fs.invalid>' ed25519 sign never 2>/dev/null
gpg --batch --export >"$W/key.gpg"
t0=$(now)
python3 "$SRC/scripts/bench/make-repo.py" --out "$W/up" --root bench/deb --layout pool --count "$PACKAGES" \
    --seed 1 --gnupghome "$GNUPGHOME"
gpgconf --kill gpg-agent 2>/dev/null || true # signing is done; leave no agent behind
chmod -R a+rX "$W"
log "upstream: $PACKAGES packages, $(du -sm "$W/up" | cut -f1) MiB, written in $(elapsed_ms "$t0" "$(now)") ms"

PORT=$(free_port)
mkdir -p "$W/nginx"
{
    echo "daemon off;"
    [ "$(id -u)" = 0 ] && id www-data >/dev/null 2>&1 && echo "user www-data;"
    cat <<EOF
worker_processes auto;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 768; }
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    fastcgi_temp_path $W/nginx/fastcgi;
    uwsgi_temp_path $W/nginx/uwsgi;
    scgi_temp_path $W/nginx/scgi;
    default_type application/octet-stream;
    server { listen 127.0.0.1:$PORT; root $W/up; sendfile on; }
}
EOF
} >"$W/nginx/nginx.conf"
/usr/sbin/nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" &
NGINX_PID=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/bench/deb/dists/bookworm/InRelease" && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$W/nginx/error.log" >&2; die "nginx exited"; }
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/bench/deb/dists/bookworm/InRelease" || die "nginx did not come up on $PORT"

for side in "${SIDES[@]}"; do
    cat >"$W/$side.toml" <<EOF
[store]
dir = "$W/store-$side"
fsync = $FSYNC

[[mirror]]
id = "bench"
repository = "deb http://127.0.0.1:$PORT/bench/deb bookworm main"
architectures = ["amd64"]
key = "$W/key.gpg"
EOF
done

# ---------------------------------------------------------------- measurements
# run SIDE MEASURE ROUND: one timed sync; its milliseconds go to $W/MEASURE-SIDE.
run() {
    local side=$1 measure=$2 round=$3 args=() t0 t1 ms
    case $measure in
        full) rm -rf "$W/store-$side" ;;
        verify) args=(--verify) ;;
    esac
    t0=$(now)
    "${BIN[$side]}" --config "$W/$side.toml" sync "${args[@]}" >"$W/last-$side.log" 2>&1 \
        || { cat "$W/last-$side.log" >&2; die "$side: sync $measure failed (round $round)"; }
    t1=$(now)
    ms=$(elapsed_ms "$t0" "$t1")
    echo "$ms" >>"$W/$measure-$side"
    printf 'round %d  %-6s  %-6s  %8s ms   %s\n' "$round" "$measure" "$side" "$ms" "$(grep -m 1 '^bench:' "$W/last-$side.log" || tail -n 1 "$W/last-$side.log")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= RUNS; r++)); do
    order=(before after)
    ((r % 2)) || order=(after before)
    for measure in "${MEASURES[@]}"; do
        for side in "${order[@]}"; do run "$side" "$measure" "$r"; done
    done
done
pool_files=$(find "$W/store-after/pool" -type f | wc -l)

# ---------------------------------------------------------------- summary
echo
echo "sync of $PACKAGES packages ($pool_files pool files), $RUNS rounds, fsync=$FSYNC"
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores)"
echo "  before: ${BIN[before]}"
echo "  after:  ${BIN[after]}"
printf '%-8s %14s %14s %14s %20s\n' measure "before (ms)" "after (ms)" "after/before" "median round ratio"
for measure in "${MEASURES[@]}"; do
    b=$(median <"$W/$measure-before")
    a=$(median <"$W/$measure-after")
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')
    paired=$(paste "$W/$measure-after" "$W/$measure-before" | awk '$2 > 0 { print $1 / $2 }' | median | awk '{ printf "%.3f", $1 }')
    printf '%-8s %14s %14s %14s %20s\n' "$measure" "$b" "$a" "$ratio" "$paired"
done
