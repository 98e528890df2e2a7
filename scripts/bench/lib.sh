# Helpers the benchmark scripts share (sourced by bench-fuse.sh, bench-pin.sh, bench-medium.sh and
# bench-network.sh): logging, process waits, an nginx config head, nginx start and shutdown, ports,
# medians and paired ratios, timing, /proc readings.
# The sourcing script owns PIDS_NGINX (the nginx masters it started).

log() { printf '%s\n' "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# wait_gone PID TENTHS: true once PID has exited.
wait_gone() {
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    return 1
}

# stop_nginx: SIGQUIT every master in PIDS_NGINX, SIGKILL one that lingers 5 s.
stop_nginx() {
    local pid
    for pid in "${PIDS_NGINX[@]}"; do
        kill -QUIT "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS_NGINX[@]}"; do
        wait_gone "$pid" 50 || kill -KILL "$pid" 2>/dev/null || true
    done
    PIDS_NGINX=()
}

# nginx_conf_head DIR CONNECTIONS [MAIN]: an nginx.conf up to the inside of `http {` (daemon off,
# www-data workers when run as root, pid/logs/temp paths under DIR, MAIN lines in the main
# context); the caller adds its log and server blocks and the closing brace.
nginx_conf_head() {
    echo "daemon off;"
    [ "$(id -u)" = 0 ] && id www-data >/dev/null 2>&1 && echo "user www-data;"
    [ -n "${3:-}" ] && printf '%s\n' "$3"
    cat <<EOF
worker_processes auto;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $2; }
http {
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    default_type application/octet-stream;
    sendfile on;
EOF
}

# start_nginx DIR URL [WRAPPER...]: nginx on DIR/nginx.conf (its master added to PIDS_NGINX; run
# through WRAPPER, e.g. `nsenter -t PID -m --`, which must exec it), waited for until URL answers;
# dies with its error log if it exits or does not come up within 10 s.
start_nginx() {
    "${@:3}" "${NGINX:-/usr/sbin/nginx}" -c "$1/nginx.conf" -p "$1" &
    local pid=$! _
    PIDS_NGINX+=("$pid")
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$2" && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$1/error.log" >&2; die "nginx exited"; }
        sleep 0.1
    done
    die "nginx did not answer $2 within 10 s"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# paired_ratio FILE_A FILE_B: median over runs of A[i] / B[i] (runs next to each other in time see
# the same background load; the median of their ratios is steadier than a ratio of medians).
paired_ratio() { paste "$1" "$2" | awk '$2 > 0 { print $1 / $2 }' | median | awk '{ printf "%.3f", $1 }'; }
# elapsed_ms FROM TO (unix seconds, floats)
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'; }
now() { printf '%s' "$EPOCHREALTIME"; }
# rss_kib PID FIELD (VmRSS | RssAnon | VmHWM)
rss_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# cpu_ticks PID: user + system clock ticks of a process (all threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
