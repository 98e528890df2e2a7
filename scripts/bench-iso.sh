#!/usr/bin/env bash
# Benchmark of a [[tree]] sync (issue 4): one 1 GiB ISO with a SHA256SUMS beside it, served by
# nginx (autoindex on) on 127.0.0.1. Compares the wall time of `pmirror-fs sync` (listing,
# download streamed into the pool, sha256 checked while streaming, rename) with `curl -o` of the
# same file to the same filesystem, and reports the sync's peak RSS.
#
# Targets: sync ≤ 1.1 × curl, peak RSS < 100 MB.
#
# Each measurement runs RUNS times (median reported) with the file in the page cache (a warm-up
# GET first), so both sides measure HTTP + write + (for the sync) hashing, not the disk under
# nginx. The sync is measured with `fsync = false` (what curl does: no fsync) and, for the
# record, with `fsync = true` (the default: every object synced before it is referenced).
#
# Usage: scripts/bench-iso.sh            (SIZE_MIB=1024 RUNS=3 BENCH_DIR=<tmp> to override)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
NGINX=${NGINX:-/usr/sbin/nginx}
for tool in curl "$NGINX" /usr/bin/time sha256sum; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool missing" >&2; exit 1; }
done

cargo build --release --quiet
BIN=$PWD/target/release/pmirror-fs

DIR=${BENCH_DIR:-$(mktemp -d /var/tmp/pmirror-bench.XXXXXX)}
NGINX_PID=
cleanup() {
    if [ -n "$NGINX_PID" ]; then kill -QUIT "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
    [ -n "${BENCH_DIR:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR/root/iso" "$DIR/nginx"
chmod 755 "$DIR" # nginx workers (not root) read the ISO
ISO=$DIR/root/iso/bench.iso
echo "generating a ${SIZE_MIB} MiB ISO in $DIR"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$ISO"
(cd "$DIR/root/iso" && sha256sum bench.iso >SHA256SUMS)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$DIR/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $DIR/nginx/body;
    proxy_temp_path $DIR/nginx/proxy;
    fastcgi_temp_path $DIR/nginx/fastcgi;
    uwsgi_temp_path $DIR/nginx/uwsgi;
    scgi_temp_path $DIR/nginx/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {
        listen 127.0.0.1:$PORT;
        root $DIR/root;
        autoindex on;
    }
}
EOF
"$NGINX" -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" &
NGINX_PID=$!
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/iso/" && break; sleep 0.05; done
URL=http://127.0.0.1:$PORT/iso/bench.iso
# Warm-up: the ISO is in the page cache for every run below.
curl -fsS -o /dev/null "$URL" || { echo "FATAL: nginx does not serve $URL:" >&2; cat "$DIR/nginx/error.log" >&2; exit 1; }

write_config() { # $1 = fsync
    cat >"$DIR/config.toml" <<EOF
[store]
dir = "$DIR/store"
fsync = $1

[sync]
concurrency = 8
retries = 0
timeout = "60s"

[[tree]]
id = "iso"
url = "http://127.0.0.1:$PORT/iso/"
EOF
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# "<seconds> <max RSS KiB>" of one command.
measure() {
    /usr/bin/time -f '%e %M' -o "$DIR/time.out" "$@" >/dev/null 2>"$DIR/cmd.err" || {
        cat "$DIR/cmd.err" >&2
        exit 1
    }
    cat "$DIR/time.out"
}

curl_times=()
for _ in $(seq "$RUNS"); do
    rm -f "$DIR/curl.iso"
    curl_times+=("$(measure curl -fs -o "$DIR/curl.iso" "$URL" | cut -d' ' -f1)")
done
cmp -s "$DIR/curl.iso" "$ISO" || { echo "FATAL: curl copy differs" >&2; exit 1; }
rm -f "$DIR/curl.iso"

sync_runs() { # $1 = fsync → lines "<seconds> <rss KiB>"
    write_config "$1"
    for _ in $(seq "$RUNS"); do
        rm -rf "$DIR/store"
        measure "$BIN" --config "$DIR/config.toml" sync
        local obj
        obj=$DIR/store/pool/sha256/$(cut -c1-2 "$DIR/root/iso/SHA256SUMS")/$(cut -d' ' -f1 "$DIR/root/iso/SHA256SUMS")
        cmp -s "$obj" "$ISO" || { echo "FATAL: pool object differs from the ISO" >&2; exit 1; }
    done
}

fast=$(sync_runs false)
safe=$(sync_runs true)
rm -rf "$DIR/store"

curl_s=$(printf '%s\n' "${curl_times[@]}" | median)
sync_s=$(cut -d' ' -f1 <<<"$fast" | median)
safe_s=$(cut -d' ' -f1 <<<"$safe" | median)
rss_kib=$(cat <(cut -d' ' -f2 <<<"$fast") <(cut -d' ' -f2 <<<"$safe") | sort -g | tail -1)

echo
echo "ISO: ${SIZE_MIB} MiB from nginx on 127.0.0.1, median of $RUNS runs"
printf 'curl -o                     %6.2f s   (runs: %s)\n' "$curl_s" "${curl_times[*]}"
printf 'pmirror-fs sync, fsync=off  %6.2f s   (runs: %s)   ratio %.2fx (target <= 1.10)\n' \
    "$sync_s" "$(cut -d' ' -f1 <<<"$fast" | tr '\n' ' ')" "$(echo "$sync_s / $curl_s" | bc -l)"
printf 'pmirror-fs sync, fsync=on   %6.2f s   (runs: %s)   ratio %.2fx\n' \
    "$safe_s" "$(cut -d' ' -f1 <<<"$safe" | tr '\n' ' ')" "$(echo "$safe_s / $curl_s" | bc -l)"
printf 'peak RSS of the sync        %6.1f MB  (target < 100)\n' "$(echo "$rss_kib / 1024" | bc -l)"
