#!/usr/bin/env bash
# pmirror-fs end to end, offline, on this machine (Debian bookworm, as root):
#   a local signed Proxmox-style upstream (served by nginx on 127.0.0.1) → config add → sync →
#   mount → nginx serving the mount → apt-get update/download against it → upstream moves on →
#   sync again → the mount switches. Prints the URLs and what to try next; cleans up on exit and
#   on Ctrl-C (unmount, stop nginx, remove the work directory).
#
# usage: scripts/demo.sh [--no-wait] [--wait] [--keep]
#   --no-wait  exit after the walkthrough (default when stdin is not a terminal)
#   --wait     wait for Ctrl-C even without a terminal
#   --keep     leave the work directory ($DEMO_DIR or /tmp/pmirror-fs-demo.*)
# Prebuilt binaries: PMIRROR_FS_BIN=… MAKE_UPSTREAM=… (default: cargo build, the dev profile the
# tests use — its dependencies are optimized — so scripts/test.sh afterwards builds only the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

wait_for_ctrl_c=0
[ -t 0 ] && wait_for_ctrl_c=1
keep=0
for arg in "$@"; do
    case "$arg" in
        --no-wait) wait_for_ctrl_c=0 ;;
        --wait) wait_for_ctrl_c=1 ;;
        --keep) keep=1 ;;
        *) echo "usage: $0 [--no-wait] [--wait] [--keep]" >&2; exit 2 ;;
    esac
done

step() { printf '\n==> %s\n' "$*"; }
# Show a command the way an operator types it, then run it.
run() { printf '$ %s\n' "$*"; "$@"; }
die() { echo "demo: FATAL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (FUSE mount, nginx, apt)"
[ -c /dev/fuse ] || die "/dev/fuse is missing (in a container: --device /dev/fuse --cap-add SYS_ADMIN)"

step "Installing what the demo needs (if missing)"
need=(fuse3 nginx apt ca-certificates)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -qq
    run apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "all present: ${need[*]}"
fi

step "Building pmirror-fs and the fixture generator"
if [ -z "${PMIRROR_FS_BIN:-}" ] || [ -z "${MAKE_UPSTREAM:-}" ]; then
    command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) or set PMIRROR_FS_BIN and MAKE_UPSTREAM"
    run cargo build --bin pmirror-fs --example make-upstream
    PMIRROR_FS_BIN=$ROOT/target/debug/pmirror-fs
    MAKE_UPSTREAM=$ROOT/target/debug/examples/make-upstream
fi
[ -x "$PMIRROR_FS_BIN" ] || die "$PMIRROR_FS_BIN is not executable"
[ -x "$MAKE_UPSTREAM" ] || die "$MAKE_UPSTREAM is not executable"

WORK=${DEMO_DIR:-$(mktemp -d /tmp/pmirror-fs-demo.XXXXXX)}
mkdir -p "$WORK"/{bin,nginx,mnt,metrics,apt}
# nginx workers run as www-data: they must reach the upstream tree and the mountpoint.
chmod 755 "$WORK"
MOUNT_PID=""
NGINX_STARTED=0

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    echo
    echo "==> Cleaning up"
    if [ "$NGINX_STARTED" = 1 ] && [ -f "$WORK/nginx/nginx.pid" ]; then
        nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -s quit 2>/dev/null
        for _ in $(seq 50); do [ -f "$WORK/nginx/nginx.pid" ] || break; sleep 0.1; done
    fi
    if [ -n "$MOUNT_PID" ]; then
        kill -TERM "$MOUNT_PID" 2>/dev/null
        wait "$MOUNT_PID" 2>/dev/null
    fi
    mountpoint -q "$WORK/mnt" && fusermount3 -u -z "$WORK/mnt"
    if [ "$keep" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# First port at or above $1 where nothing listens on 127.0.0.1.
free_port() {
    local p
    for p in $(seq "$1" $(($1 + 200))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    die "no free port near $1"
}
UP_PORT=$(free_port 18080)
MIRROR_PORT=$(free_port $((UP_PORT + 1)))
UPSTREAM=http://127.0.0.1:$UP_PORT
MIRROR=http://127.0.0.1:$MIRROR_PORT

# The commands below read exactly as in the README: `pmirror-fs` on PATH, config from the env.
ln -sf "$PMIRROR_FS_BIN" "$WORK/bin/pmirror-fs"
export PATH="$WORK/bin:$PATH" PMIRROR_FS_CONFIG="$WORK/config.toml"
for v in http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY; do unset "$v"; done
# Plain log lines from the fixture generator (its logs are colored on a terminal otherwise).
export NO_COLOR=1

step "A signed Proxmox-style upstream (pve bookworm: pve-no-subscription + pvetest; pbs-client)"
run "$MAKE_UPSTREAM" --out "$WORK/upstream" --flavor proxmox --generation 0
find "$WORK/upstream/debian" -maxdepth 4 -path '*/dists/*' -type d | sed "s#$WORK/##" | sort

step "nginx on 127.0.0.1: the upstream on :$UP_PORT, the mirror (scripts/nginx/pmirror-fs.conf) on :$MIRROR_PORT"
# The shipped server block, with this demo's listen address and root.
sed -e "s#^\(\s*\)listen 80;#\1listen 127.0.0.1:$MIRROR_PORT;#" -e '/listen \[::\]:80;/d' \
    -e "s#^\(\s*\)root /srv/pmirror-fs#\1root $WORK/mnt#" scripts/nginx/pmirror-fs.conf >"$WORK/nginx/mirror.conf"
cat >"$WORK/nginx/nginx.conf" <<EOF
user www-data;
worker_processes 1;
worker_rlimit_nofile 4096;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 256; }
http {
    access_log $WORK/nginx/access.log;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server { listen 127.0.0.1:$UP_PORT; root $WORK/upstream; autoindex on; }
    include $WORK/nginx/mirror.conf;
}
EOF
nginx -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
NGINX_STARTED=1

step "A config: store, metrics textfile, and three presets pointed at the local upstream"
cat >"$WORK/config.toml" <<EOF
[store]
dir = "$WORK/store"
metrics-textfile = "$WORK/metrics/pmirror_fs.prom"

[sync]
concurrency = 4
EOF
KEY=$WORK/upstream/key.gpg
run pmirror-fs config add --preset pve:bookworm:no-subscription --url "$UPSTREAM/debian/pve" --key "$KEY"
run pmirror-fs config add --preset pve:bookworm:test --url "$UPSTREAM/debian/pve" --key "$KEY"
run pmirror-fs config add --preset pbs-client:bookworm:no-subscription --url "$UPSTREAM/debian/pbs-client" --key "$KEY"
run pmirror-fs config check
run cat "$WORK/config.toml"

step "Sync: verify signatures and hashes, fill the pool, publish snapshots"
run pmirror-fs sync
run pmirror-fs status

step "Mount the view (the daemon systemd runs as pmirror-fs-mount.service)"
printf '$ %s\n' "pmirror-fs mount $WORK/mnt --allow-other --foreground &"
pmirror-fs mount "$WORK/mnt" --allow-other --foreground &
MOUNT_PID=$!
for _ in $(seq 200); do
    mountpoint -q "$WORK/mnt" && [ -e "$WORK/mnt/status.json" ] && break
    kill -0 "$MOUNT_PID" 2>/dev/null || die "the mount daemon exited"
    sleep 0.1
done
mountpoint -q "$WORK/mnt" || die "the mount did not come up"
run ls "$WORK/mnt" "$WORK/mnt/debian/pve/dists/bookworm"

step "apt-get against the mirror, with its own state directories (the system's apt is untouched)"
A=$WORK/apt
mkdir -p "$A"/{etc/sources.list.d,etc/apt.conf.d,etc/preferences.d,etc/trusted.gpg.d,state/lists/partial,cache/archives/partial,log,downloads}
: >"$A/state/status"
: >"$A/etc/sources.list"
cat >"$A/apt.conf" <<EOF
Dir::State "$A/state"; Dir::State::status "$A/state/status"; Dir::Cache "$A/cache";
Dir::Etc "$A/etc"; Dir::Etc::sourcelist "sources.list"; Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::parts "apt.conf.d"; Dir::Etc::preferencesparts "preferences.d"; Dir::Etc::trustedparts "trusted.gpg.d";
Dir::Log "$A/log"; APT::Architecture "amd64"; APT::Architectures { "amd64"; }; APT::Sandbox::User "root";
Acquire::Languages { "en"; };
EOF
cat >"$A/etc/sources.list.d/mirror.list" <<EOF
deb [signed-by=$KEY] $MIRROR/debian/pve bookworm pve-no-subscription pvetest
deb [signed-by=$KEY] $MIRROR/debian/pbs-client bookworm main
EOF
export APT_CONFIG=$A/apt.conf
cat "$A/etc/sources.list.d/mirror.list"
apt_update() {
    run apt-get update 2>&1 | tee "$A/update.log"
    if grep -Eq '^(W|E):|^Err:' "$A/update.log"; then die "apt-get update was not clean"; fi
}
apt_update
PKG=$(apt-cache pkgnames | sort | head -n 1)
(cd "$A/downloads" && run apt-get download "$PKG")
run ls -l "$A/downloads"

step "Upstream moves on (generation 1): sync again; the mount switches atomically"
run "$MAKE_UPSTREAM" --out "$WORK/upstream" --flavor proxmox --generation 1
before=$(grep '^Date:' "$WORK/mnt/debian/pve/dists/bookworm/InRelease")
run pmirror-fs sync
for _ in $(seq 100); do
    [ "$(grep '^Date:' "$WORK/mnt/debian/pve/dists/bookworm/InRelease")" != "$before" ] && break
    sleep 0.1
done
echo "InRelease before: $before"
echo "InRelease now:    $(grep '^Date:' "$WORK/mnt/debian/pve/dists/bookworm/InRelease")"
run pmirror-fs snapshot list
apt_update

step "status.json through nginx (tunasync's fields), and the Prometheus textfile"
/usr/lib/apt/apt-helper -qq download-file "$MIRROR/status.json" "$WORK/status.json" >/dev/null
run cat "$WORK/status.json"
run grep -E '^pmirror_fs_(sync_success|last_sync_fetched_bytes|pool_bytes)' "$WORK/metrics/pmirror_fs.prom"

cat <<EOF

==> pmirror-fs demo is running
  upstream (fixture)   $UPSTREAM/debian/
  mirror               $MIRROR/
  apt line             deb [signed-by=$KEY] $MIRROR/debian/pve bookworm pve-no-subscription pvetest
  status (tunasync)    $MIRROR/status.json
  frozen snapshots     $MIRROR/snapshots/
  work directory       $WORK

Try next (in another shell):
  export PATH=$WORK/bin:\$PATH PMIRROR_FS_CONFIG=$WORK/config.toml
  pmirror-fs status --json
  pmirror-fs snapshot list pve_bookworm
  $MAKE_UPSTREAM --out $WORK/upstream --flavor proxmox --generation 2 && pmirror-fs sync
  APT_CONFIG=$A/apt.conf apt-get update
  cat $WORK/metrics/pmirror_fs.prom
EOF
if [ "$wait_for_ctrl_c" = 1 ]; then
    echo
    echo "Press Ctrl-C to stop the demo and clean up."
    while :; do sleep 1; done
fi
