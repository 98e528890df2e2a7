#!/usr/bin/env bash
# bench-network.sh: pmirror-fs on a bad or far network (issue 15), in three sections, each printing
# its figures and ratios in one run. The network is examples/delay-proxy.rs, a userspace TCP relay
# in front of a real nginx on 127.0.0.1 (this kernel has no netem): a one-way delay per
# direction (handshake charged too), a per-connection rate cap, connections cut after N bytes.
#
#   A. resume   — one ISO_MIB (1024) MiB ISO + SHA256SUMS as a [[tree]]. (a) `sync` through a
#                 proxy that cuts nothing; (b) through one that cuts the ISO's connection at 50 %
#                 of the file, then the resumed connection after 40 % more (at 90 %). pmirror-fs
#                 resumes with Range requests. Targets: bytes nginx sent / file size <= 1.05,
#                 time(b) / time(a) <= 1.10.
#   B. sources  — one apt repository (SRC_PACKAGES 6000 packages of 16–256 KiB, ~820 MB, written
#                 by make-repo.py) behind two proxies to the same nginx: slow (SLOW_RATE 5 MB/s per
#                 connection) and fast (FAST_RATE 50 MB/s). Full sync into a fresh store with (a) fast
#                 alone, (b) slow as `repository` + fast in `sources`, (c) fast first + slow in
#                 `sources`. Targets: (b)/(a) <= 1.2, (c)/(a) <= 1.2. Prints SKIPPED when the
#                 binary refuses the `sources` key.
#   C. latency  — 4 Proxmox-style repositories (LAT_PACKAGES 390 packages each of 16–512 KiB,
#                 ~270 KiB average: ~1,570 files, ~430 MB) synced direct and through proxies of
#                 LAT_DELAYS (50 150) ms one way (100 and 300 ms RTT) by pmirror-fs over http (the
#                 default config), pmirror-fs over https + HTTP/2 (nginx `ssl http2`, a throwaway
#                 CA given as `[sync] ca-file`; SKIPPED when the key is refused), aptly (mirror
#                 create + update of each repository, its default downloadConcurrency 4) and
#                 apt-mirror (one run, nthreads 20), all over plain http.
#                 Floor = direct pmirror-fs time (same protocol) + 4 RTT (handshake, Release,
#                 indices, packages). Target for pmirror-fs https+h2: <= 3x the floor at both
#                 RTTs and <= 8 connections to the host. Connections are counted as distinct
#                 nginx $connection values in the access log.
#
# Every measurement runs RUNS (3) rounds; inside a section the variants of one round run one right
# after the other, in an order reversed every other round (so none always runs on a warmer
# machine). Medians are printed, and ratios as the median of per-round ratios (lib.sh
# paired_ratio). The stores use `fsync = false` (BENCH_FSYNC): the sections measure the network,
# and neither curl, aptly nor apt-mirror fsync each file; bench-iso.sh has the fsync figures.
#
# Binaries: by default committed HEAD is cloned into the work dir and `pmirror-fs` and the
# delay-proxy example are built in release mode (CARGO_TARGET_DIR, default ./target, is reused; the
# binaries are copied out at once). delay-proxy.rs is always the working tree's (it is the network,
# not what is measured; plain std code). PMIRROR_BIN and PROXY_BIN skip the build.
#
# Knobs (environment): RUNS (3), SECTIONS ("resume sources latency"), BENCH_DIR (work dir, default a
# fresh /var/tmp/pmirror-fs-bench-network.XXXXXX, removed at the end unless BENCH_KEEP=1; fixtures
# already in a kept BENCH_DIR are reused), ISO_MIB (1024), SRC_PACKAGES (6000), SLOW_RATE, FAST_RATE,
# LAT_SUITES (4), LAT_PACKAGES (390), LAT_DELAYS ("50 150"), LAT_TOOLS ("pmirror-http pmirror-https
# aptly apt-mirror"), BENCH_FSYNC (false). Needs nginx (with ssl and http2), gpg, gpgv, openssl,
# python3, curl; aptly and apt-mirror (apt-get install aptly apt-mirror) or their runs are SKIPPED.
#
# Usage: scripts/bench-network.sh            (RUNS=1 SECTIONS=latency … to narrow it)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
export LC_ALL=C
# shellcheck source=scripts/bench/lib.sh
. "$SRC/scripts/bench/lib.sh"

RUNS=${RUNS:-3}
SECTIONS=${SECTIONS:-resume sources latency}
ISO_MIB=${ISO_MIB:-1024}
SRC_PACKAGES=${SRC_PACKAGES:-6000}
SLOW_RATE=${SLOW_RATE:-5000000}
FAST_RATE=${FAST_RATE:-50000000}
LAT_SUITES=${LAT_SUITES:-4}
LAT_PACKAGES=${LAT_PACKAGES:-390}
LAT_DELAYS=${LAT_DELAYS:-50 150}
LAT_TOOLS=${LAT_TOOLS:-pmirror-http pmirror-https aptly apt-mirror}
FSYNC=${BENCH_FSYNC:-false}
NGINX=${NGINX:-/usr/sbin/nginx}

for tool in "$NGINX" gpg gpgv openssl python3 curl git; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx gpg gpgv openssl python3 curl git)"
done

W=${BENCH_DIR:-$(mktemp -d /var/tmp/pmirror-fs-bench-network.XXXXXX)}
mkdir -p "$W"
chmod 755 "$W" # nginx workers (www-data) read the fixtures
PIDS_NGINX=()
declare -A PIDS_PROXY=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS_PROXY[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS_PROXY[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_nginx
    [ -d "$W/gnupg" ] && { GNUPGHOME=$W/gnupg gpgconf --kill gpg-agent 2>/dev/null || true; }
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$W"; else log "kept $W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section_on() { [[ " $SECTIONS " == *" $1 "* ]]; }
# ratio A B: A / B with 3 decimals ("nan" when B is 0 or missing).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else printf "nan" }'; }
med3() { median <"$1" | awk '{ printf "%.3f", $1 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }

# ---------------------------------------------------------------- binaries
if [ -n "${PMIRROR_BIN:-}" ] && [ -n "${PROXY_BIN:-}" ]; then
    BIN=$(realpath "$PMIRROR_BIN")
    PROXY=$(realpath "$PROXY_BIN")
    BUILT="given: $BIN"
else
    rm -rf "$W/src"
    git clone -q "$SRC" "$W/src"
    cp "$SRC/examples/delay-proxy.rs" "$W/src/examples/" # the network, not what is measured
    log "building $(git -C "$W/src" log -1 --format='%h %s') (release)"
    (cd "$W/src" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SRC/target} \
        cargo build --release --quiet --bin pmirror-fs --example delay-proxy)
    mkdir -p "$W/bin"
    out=${CARGO_TARGET_DIR:-$SRC/target}/release
    cp "$out/pmirror-fs" "$out/examples/delay-proxy" "$W/bin/"
    BIN=$W/bin/pmirror-fs
    PROXY=$W/bin/delay-proxy
    BUILT="committed $(git -C "$W/src" log -1 --format='%h %s')"
fi

# ---------------------------------------------------------------- nginx
# One nginx for every section: plain http on HTTP_PORT, https + HTTP/2 on HTTPS_PORT (a throwaway
# CA signs a certificate for 127.0.0.1), the access log naming each request's connection.
mkdir -p "$W/www" "$W/nginx" "$W/tls"
HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
make_tls() {
    local t=$W/tls
    [ -f "$t/server.pem" ] && return 0
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pmirror-fs bench CA" \
        -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
    printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n' >"$t/ext.cnf"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 2 \
        -extfile "$t/ext.cnf" -out "$t/server.pem" 2>/dev/null
}
make_tls
chmod 644 "$W/tls/server.key"
{
    nginx_conf_head "$W/nginx" 2048
    cat <<EOF
    log_format bench '\$connection \$server_port \$status \$body_bytes_sent \$server_protocol \$request_uri'
                     ' \$msec \$request_time';
    access_log $W/nginx/access.log bench;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        listen 127.0.0.1:$HTTPS_PORT ssl http2;
        ssl_certificate $W/tls/server.pem;
        ssl_certificate_key $W/tls/server.key;
        root $W/www;
        autoindex on;
    }
}
EOF
} >"$W/nginx/nginx.conf"
start_nginx "$W/nginx" "http://127.0.0.1:$HTTP_PORT/"
curl -sf -o /dev/null --cacert "$W/tls/ca.pem" "https://127.0.0.1:$HTTPS_PORT/" || die "nginx is not up on $HTTPS_PORT"
ACCESS=$W/nginx/access.log
# nginx appends (O_APPEND): truncating between runs leaves each run's requests alone in it.
reset_access() { : >"$ACCESS"; }
# access_summary: "<distinct connections> <requests> <body bytes>" of the log since reset_access.
access_summary() { awk '{ c[$1] = 1; n++; b += $4 } END { printf "%d %d %d\n", length(c), n, b }' "$ACCESS"; }

# ---------------------------------------------------------------- proxies
# start_proxy NAME TARGET_PORT ARGS…: a delay-proxy logging to $W/proxy-NAME.log; sets PROXY_PORT.
start_proxy() {
    local name=$1 to=$2 i
    shift 2
    rm -f "$W/proxy-$name.log"
    : >"$W/proxy-$name.out"
    "$PROXY" --listen 127.0.0.1:0 --to "127.0.0.1:$to" --log "$W/proxy-$name.log" "$@" \
        >"$W/proxy-$name.out" 2>"$W/proxy-$name.err" &
    PIDS_PROXY[$name]=$!
    for ((i = 0; i < 100; i++)); do
        PROXY_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$W/proxy-$name.out")
        [ -n "$PROXY_PORT" ] && return 0
        sleep 0.05
    done
    cat "$W/proxy-$name.err" >&2
    die "delay-proxy $name did not start"
}
# stop_proxy NAME LINGER_S: lets closing connections finish (and log) for LINGER_S, then stops it.
stop_proxy() {
    sleep "$2"
    kill "${PIDS_PROXY[$1]}" 2>/dev/null || true
    wait "${PIDS_PROXY[$1]}" 2>/dev/null || true
    unset "PIDS_PROXY[$1]"
}
# proxy_summary NAME: "<connections> <down bytes> <cuts>" from a proxy's log.
proxy_summary() {
    awk '{ n++; sub("down=", "", $4); d += $4; if ($5 == "cut=yes") c++ } END { printf "%d %d %d\n", n, d, c }' \
        "$W/proxy-$1.log" 2>/dev/null || echo "0 0 0"
}

# sync_run CONFIG → milliseconds of one `pmirror-fs sync` into a fresh store (dies on failure).
sync_run() {
    local t0 t1
    rm -rf "$W/store"
    t0=$(now)
    "$BIN" --config "$1" sync >"$W/sync.log" 2>&1 || { tail -n 30 "$W/sync.log" >&2; die "sync $1 failed"; }
    t1=$(now)
    elapsed_ms "$t0" "$t1"
}

# ---------------------------------------------------------------- signing key (B, C)
export GNUPGHOME=$W/gnupg
if section_on sources || section_on latency; then
    if [ ! -s "$W/key.gpg" ]; then
        rm -rf "$GNUPGHOME"
        mkdir -m 700 "$GNUPGHOME"
        gpg --batch --quiet --passphrase '' --quick-gen-key 'pmirror-fs bench <bench@pmirror-fs.invalid>' \
            ed25519 sign never 2>/dev/null
        gpg --batch --export >"$W/key.gpg"
    fi
fi

echo "pmirror-fs: $BUILT"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); RUNS=$RUNS, fsync=$FSYNC"

# ================================================================ A. resume
resume_config() { # PORT
    cat >"$W/resume.toml" <<EOF
[store]
dir = "$W/store"
fsync = $FSYNC

[[tree]]
id = "iso"
url = "http://127.0.0.1:$1/iso/"
include = ["*.iso", "SHA256SUMS"]
EOF
}

# resume_run VARIANT ROUND: one sync through a fresh proxy, cut (VARIANT cut) or not (whole).
resume_run() {
    local variant=$1 round=$2 args=() ms nginx_bytes conns down cuts obj
    # Whichever connection carries the ISO is cut when it has forwarded 50 % of it, then the one
    # that carries the resumed download (a new one, or a pooled one that carried the listing) 40 %
    # later: --cut-any, since the sync's connection order varies.
    [ "$variant" = whole ] || args=(--cut-any "$((ISO_SIZE / 2)),$((ISO_SIZE * 2 / 5))")
    start_proxy resume "$HTTP_PORT" "${args[@]}"
    resume_config "$PROXY_PORT"
    reset_access
    ms=$(sync_run "$W/resume.toml")
    stop_proxy resume 0.3
    read -r _ _ nginx_bytes < <(access_summary)
    read -r conns down cuts < <(proxy_summary resume)
    obj=$W/store/pool/sha256/${ISO_SHA:0:2}/$ISO_SHA
    cmp -s "$obj" "$W/www/iso/bench.iso" || die "resume $variant: the pool object differs from the ISO"
    [ "$variant" = whole ] || [ "$cuts" = 2 ] || log "WARNING: round $round: the proxy cut $cuts connection(s), not 2"
    echo "$ms" >>"$W/A-$variant"
    ratio "$nginx_bytes" "$ISO_SIZE" >>"$W/A-$variant-sent"
    echo >>"$W/A-$variant-sent"
    ratio "$down" "$ISO_SIZE" >>"$W/A-$variant-got"
    echo >>"$W/A-$variant-got"
    printf 'round %d  %-5s  %7s s   nginx sent %s x the ISO, client got %s x   %d connections, %d cut\n' "$round" \
        "$variant" "$(secs "$ms")" "$(ratio "$nginx_bytes" "$ISO_SIZE")" "$(ratio "$down" "$ISO_SIZE")" "$conns" "$cuts"
}

resume_section() {
    local r v order
    ISO_SIZE=$((ISO_MIB << 20))
    mkdir -p "$W/www/iso"
    if [ "$(stat -c %s "$W/www/iso/bench.iso" 2>/dev/null || echo 0)" != "$ISO_SIZE" ] \
        || [ ! -s "$W/www/iso/SHA256SUMS" ]; then
        log "generating a $ISO_MIB MiB ISO"
        head -c "$ISO_SIZE" /dev/urandom >"$W/www/iso/bench.iso"
        (cd "$W/www/iso" && sha256sum bench.iso >SHA256SUMS)
        chmod -R a+rX "$W/www"
    fi
    ISO_SHA=$(cut -d' ' -f1 "$W/www/iso/SHA256SUMS")
    cat "$W/www/iso/bench.iso" >/dev/null # in the page cache for every run
    rm -f "$W"/A-*
    echo
    echo "== A. resume: a $ISO_MIB MiB ISO as a [[tree]], through delay-proxy (no delay), default [sync]"
    for ((r = 1; r <= RUNS; r++)); do
        order=(whole cut)
        ((r % 2)) || order=(cut whole)
        for v in "${order[@]}"; do resume_run "$v" "$r"; done
    done
    printf 'whole (no cut)       median %7s s   nginx sent %s x the ISO, client got %s x\n' \
        "$(secs "$(median <"$W/A-whole")")" "$(med3 "$W/A-whole-sent")" "$(med3 "$W/A-whole-got")"
    printf 'cut at 50 %% and 90 %% median %7s s   nginx sent %s x the ISO (target <= 1.05), client got %s x\n' \
        "$(secs "$(median <"$W/A-cut")")" "$(med3 "$W/A-cut-sent")" "$(med3 "$W/A-cut-got")"
    echo "(nginx sent = its \$body_bytes_sent, including what sat in the proxy's queue and socket buffers at a cut)"
    printf 'time(cut) / time(whole): %s (median of the rounds; target <= 1.10)\n' "$(paired_ratio "$W/A-cut" "$W/A-whole")"
    rm -rf "$W/store"
}

# ================================================================ B. sources
sources_config() { # REPOSITORY_PORT [SOURCE_PORT]
    {
        cat <<EOF
[store]
dir = "$W/store"
fsync = $FSYNC

[[mirror]]
id = "bench"
repository = "deb http://127.0.0.1:$1/bench/deb bookworm main"
architectures = ["amd64"]
key = "$W/key.gpg"
EOF
        [ -z "${2:-}" ] || echo "sources = [\"http://127.0.0.1:$2/bench/deb\"]"
    } >"$W/sources.toml"
}

# sources_run VARIANT ROUND: VARIANT fast (alone), slow-first or fast-first.
sources_run() {
    local variant=$1 round=$2 ms slow_down fast_down slow_port fast_port
    start_proxy src-slow "$HTTP_PORT" --rate "$SLOW_RATE"
    slow_port=$PROXY_PORT
    start_proxy src-fast "$HTTP_PORT" --rate "$FAST_RATE"
    fast_port=$PROXY_PORT
    case $variant in
        fast) sources_config "$fast_port" ;;
        slow-first) sources_config "$slow_port" "$fast_port" ;;
        fast-first) sources_config "$fast_port" "$slow_port" ;;
    esac
    ms=$(sync_run "$W/sources.toml")
    stop_proxy src-slow 0.2
    stop_proxy src-fast 0
    read -r _ slow_down _ < <(proxy_summary src-slow)
    read -r _ fast_down _ < <(proxy_summary src-fast)
    echo "$ms" >>"$W/B-$variant"
    printf 'round %d  %-10s  %7s s   from slow %6s MB, from fast %6s MB\n' "$round" "$variant" "$(secs "$ms")" \
        "$(mb "$slow_down")" "$(mb "$fast_down")"
}

sources_section() {
    local r v order marker=$W/www/bench/.made-$SRC_PACKAGES
    if [ ! -f "$marker" ]; then
        log "writing an apt repository of $SRC_PACKAGES packages"
        rm -rf "$W/www/bench"
        python3 "$SRC/scripts/bench/make-repo.py" --out "$W/www" --root bench/deb --layout pool --count "$SRC_PACKAGES" \
            --min-size 16384 --max-size 262144 --seed 2 --gnupghome "$GNUPGHOME"
        chmod -R a+rX "$W/www"
        touch "$marker"
    fi
    find "$W/www/bench" -type f -exec cat {} + >/dev/null # page cache
    echo
    echo "== B. sources: $SRC_PACKAGES packages, $(du -sm "$W/www/bench" | cut -f1) MiB;" \
        "slow source $SLOW_RATE B/s and fast $FAST_RATE B/s per connection"
    sources_config 1 2
    if ! "$BIN" --config "$W/sources.toml" config show >/dev/null 2>"$W/probe.err"; then
        echo "SKIPPED: this pmirror-fs has no \`sources\` key ($(grep -m 1 . "$W/probe.err"))"
        return 0
    fi
    rm -f "$W"/B-*
    for ((r = 1; r <= RUNS; r++)); do
        order=(fast slow-first fast-first)
        ((r % 2)) || order=(fast-first slow-first fast)
        for v in "${order[@]}"; do sources_run "$v" "$r"; done
    done
    for v in fast slow-first fast-first; do
        printf '%-10s  median %7s s\n' "$v" "$(secs "$(median <"$W/B-$v")")"
    done
    printf '(b) slow first / fast alone: %s   (c) fast first / fast alone: %s   (median of the rounds; targets <= 1.2)\n' \
        "$(paired_ratio "$W/B-slow-first" "$W/B-fast")" "$(paired_ratio "$W/B-fast-first" "$W/B-fast")"
    rm -rf "$W/store"
}

# ================================================================ C. latency
# lat_pmirror SCHEME PORT: a config with one mirror per suite (default [sync], plus the CA for https).
lat_pmirror_config() {
    local s
    {
        printf '[store]\ndir = "%s"\nfsync = %s\n\n' "$W/store" "$FSYNC"
        [ "$1" = http ] || printf '[sync]\nca-file = "%s"\n\n' "$W/tls/ca.pem"
        for ((s = 1; s <= LAT_SUITES; s++)); do
            printf '[[mirror]]\nid = "pve%d"\nrepository = "deb %s://127.0.0.1:%s/lat/pve%d bookworm pve-no-subscription"\n' \
                "$s" "$1" "$2" "$s"
            printf 'architectures = ["amd64"]\nkey = "%s"\n\n' "$W/key.gpg"
        done
    } >"$W/lat-$1.toml"
}

lat_aptly() { # PORT
    local s url
    rm -rf "$W/aptly"
    printf '{ "rootDir": "%s", "architectures": ["amd64"] }\n' "$W/aptly" >"$W/aptly.conf"
    for ((s = 1; s <= LAT_SUITES; s++)); do
        url=http://127.0.0.1:$1/lat/pve$s
        aptly -config="$W/aptly.conf" mirror create -keyring="$W/key.gpg" -architectures=amd64 \
            "pve$s" "$url" bookworm pve-no-subscription
        aptly -config="$W/aptly.conf" mirror update -keyring="$W/key.gpg" "pve$s"
    done
}

lat_apt_mirror() { # PORT
    local s
    rm -rf "$W/apt-mirror"
    # apt-mirror 0.5.4 strips the port from a URL (sanitise_uri) where wget keeps it in the
    # directory it writes ("127.0.0.1:PORT/"): without these links it finds no Release file and
    # downloads nothing.
    mkdir -p "$W/apt-mirror/skel" "$W/apt-mirror/mirror"
    ln -s "127.0.0.1:$1" "$W/apt-mirror/skel/127.0.0.1"
    ln -s "127.0.0.1:$1" "$W/apt-mirror/mirror/127.0.0.1"
    {
        printf 'set base_path %s\nset nthreads 20\nset _tilde 0\n' "$W/apt-mirror"
        for ((s = 1; s <= LAT_SUITES; s++)); do
            printf 'deb-amd64 http://127.0.0.1:%s/lat/pve%d bookworm pve-no-subscription\n' "$1" "$s"
        done
    } >"$W/mirror.list"
    apt-mirror "$W/mirror.list"
}

# lat_skip TOOL: why TOOL cannot run here (empty: it can).
lat_skip() {
    case $1 in
        pmirror-http) ;;
        pmirror-https)
            lat_pmirror_config https "$HTTPS_PORT"
            "$BIN" --config "$W/lat-https.toml" config show >/dev/null 2>"$W/probe.err" \
                || echo "this pmirror-fs refuses [sync] ca-file: $(grep -m 1 . "$W/probe.err")" ;;
        aptly | apt-mirror) command -v "$1" >/dev/null || echo "$1 is not installed (apt-get install -y $1)" ;;
        *) echo "unknown tool $1" ;;
    esac
}

# lat_run TOOL DELAY_MS ROUND (DELAY_MS 0: direct, no proxy).
lat_run() {
    local tool=$1 delay=$2 round=$3 port t0 t1 ms conns reqs bytes files
    port=$HTTP_PORT
    [ "$tool" != pmirror-https ] || port=$HTTPS_PORT
    if [ "$delay" != 0 ]; then
        start_proxy lat "$port" --delay-ms "$delay"
        port=$PROXY_PORT
    fi
    reset_access
    t0=$(now)
    case $tool in
        pmirror-http | pmirror-https)
            rm -rf "$W/store"
            lat_pmirror_config "${tool#pmirror-}" "$port"
            "$BIN" --config "$W/lat-${tool#pmirror-}.toml" sync >"$W/tool.log" 2>&1 ;;
        aptly) lat_aptly "$port" >"$W/tool.log" 2>&1 ;;
        apt-mirror) lat_apt_mirror "$port" >"$W/tool.log" 2>&1 ;;
    esac || { tail -n 30 "$W/tool.log" >&2; die "$tool failed (delay $delay ms, round $round)"; }
    t1=$(now)
    [ "$delay" = 0 ] || stop_proxy lat 0
    ms=$(elapsed_ms "$t0" "$t1")
    read -r conns reqs bytes < <(access_summary)
    case $tool in
        pmirror-*) files=$(find "$W/store/pool" -type f | wc -l) ;;
        aptly) files=$(find "$W/aptly/pool" -type f -name '*.deb' | wc -l) ;;
        apt-mirror) files=$(find "$W/apt-mirror/mirror" -type f -name '*.deb' | wc -l) ;;
    esac
    echo "$ms" >>"$W/C-$tool-$delay"
    echo "$conns" >>"$W/C-$tool-$delay-conns"
    echo "$reqs" >>"$W/C-$tool-$delay-reqs"
    printf 'round %d  %-13s  rtt %3d ms  %7s s   %3d connections, %4d requests, %6.1f MB, %4d files kept\n' "$round" \
        "$tool" $((2 * delay)) "$(secs "$ms")" "$conns" "$reqs" "$(mb "$bytes")" "$files"
}

latency_section() {
    local s r d t tools=() order=() marker=$W/www/lat/.made-$LAT_SUITES-$LAT_PACKAGES why floor direct med nfiles size
    if [ ! -f "$marker" ]; then
        log "writing $LAT_SUITES Proxmox-style repositories of $LAT_PACKAGES packages"
        rm -rf "$W/www/lat"
        for ((s = 1; s <= LAT_SUITES; s++)); do
            python3 "$SRC/scripts/bench/make-repo.py" --out "$W/www" --root "lat/pve$s" --layout dists \
                --count "$LAT_PACKAGES" --min-size 16384 --max-size 524288 --seed $((10 + s)) --gnupghome "$GNUPGHOME"
        done
        chmod -R a+rX "$W/www"
        touch "$marker"
    fi
    find "$W/www/lat" -type f -exec cat {} + >/dev/null # page cache
    nfiles=$(find "$W/www/lat" -type f ! -name '.made-*' | wc -l)
    size=$(find "$W/www/lat" -type f ! -name '.made-*' -printf '%s\n' | awk '{ b += $1 } END { print b }')
    echo
    echo "== C. latency: $LAT_SUITES Proxmox-style suites, $nfiles files, $(mb "$size") MB upstream;" \
        "RTTs 0 (direct) $(for d in $LAT_DELAYS; do printf '%d ' $((2 * d)); done)ms"
    for t in $LAT_TOOLS; do
        why=$(lat_skip "$t")
        if [ -n "$why" ]; then
            echo "SKIPPED: $t — $why"
        else
            tools+=("$t")
        fi
    done
    [ ${#tools[@]} -gt 0 ] || return 0
    rm -f "$W"/C-*
    for ((r = 1; r <= RUNS; r++)); do
        order=("${tools[@]}")
        ((r % 2)) || mapfile -t order < <(printf '%s\n' "${tools[@]}" | tac)
        for d in 0 $LAT_DELAYS; do
            for t in "${order[@]}"; do lat_run "$t" "$d" "$r"; done
        done
    done
    echo
    echo "floor = direct pmirror-fs time (https for pmirror-https, else http) + 4 RTT"
    printf '%-13s %7s %9s %9s %9s %7s %9s\n' tool "rtt ms" "median s" "floor s" "x floor" conns requests
    for t in "${tools[@]}"; do
        direct=pmirror-http
        [ "$t" != pmirror-https ] || direct=pmirror-https
        for d in 0 $LAT_DELAYS; do
            med=$(median <"$W/C-$t-$d")
            if [ -f "$W/C-$direct-0" ]; then
                floor=$(awk -v m="$(median <"$W/C-$direct-0")" -v d="$d" 'BEGIN { printf "%.0f", m + 8 * d }')
            else
                floor=0
            fi
            printf '%-13s %7d %9s %9s %9s %7s %9s\n' "$t" $((2 * d)) "$(secs "$med")" "$(secs "$floor")" \
                "$(ratio "$med" "$floor")" "$(median <"$W/C-$t-$d-conns")" "$(median <"$W/C-$t-$d-reqs")"
        done
    done
    echo "targets: pmirror-https <= 3.0 x floor at every RTT, <= 8 connections"
    rm -rf "$W/store" "$W/aptly" "$W/apt-mirror"
}

for s in resume sources latency; do
    if section_on "$s"; then "${s}_section"; fi
done
