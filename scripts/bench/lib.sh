# Helpers the benchmark scripts share (sourced by bench-fuse.sh and bench-pin.sh): logging,
# process waits, nginx shutdown, ports, medians and paired ratios, timing, /proc readings.
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
