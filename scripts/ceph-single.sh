#!/usr/bin/env bash
# ceph-single.sh: a real single-node Ceph cluster (MON, MGR, MDS, one bluestore OSD on a sparse
# file, pool size 1) with one CephFS, on 127.0.0.1, without systemd. For the multi-node tests
# (tests/integration/support/ceph.rs) and the cluster benchmarks; usable by hand.
#
#   scripts/ceph-single.sh start DIR   create and start a cluster under DIR (absent or empty),
#                                      wait until CephFS is active, then print exactly two lines
#                                      on stdout:
#                                        CEPH_CONF=DIR/ceph.conf
#                                        CEPH_KEYRING=DIR/ceph.client.admin.keyring
#                                      Progress goes to stderr. On failure: one line naming what
#                                      failed, the tail of the relevant log, everything started
#                                      so far stopped, exit status 1.
#   scripts/ceph-single.sh stop DIR    stop every daemon started under DIR (its pid files) and
#                                      wait for them to exit (SIGKILL after CEPH_STOP_GRACE
#                                      seconds, default 3). Idempotent.
#
# Then, for example:
#   eval "$(scripts/ceph-single.sh start /var/tmp/ceph)"
#   ceph -c "$CEPH_CONF" -s
#   ceph-fuse -c "$CEPH_CONF" -n client.admin --keyring "$CEPH_KEYRING" /mnt/cephfs
#   fusermount3 -u /mnt/cephfs; scripts/ceph-single.sh stop /var/tmp/ceph
#
# Everything (config, keyrings, mon/mgr/mds/osd data, pid files, admin sockets, logs, crash dumps)
# stays under DIR, and the monitor listens on two free ports picked at start, so several clusters
# can run at once. Run as root. Needs Debian's ceph-mon ceph-mgr ceph-mds ceph-osd ceph-common
# (ceph-base comes with them); ceph-fuse to mount. About 12 s to start, ~1.5 GiB RSS.
#
# `mds_early_reply = false` matters: with early replies, a rename made through one client stays
# invisible to another client for seconds; without them it shows up in a few milliseconds.
set -euo pipefail

log() { echo "ceph-single: $*" >&2; }
usage() {
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
}

# Which package provides each binary the start needs.
check_binaries() {
    local bin pkg missing=()
    for pair in ceph-mon:ceph-mon ceph-mgr:ceph-mgr ceph-mds:ceph-mds ceph-osd:ceph-osd \
        ceph:ceph-common ceph-authtool:ceph-common monmaptool:ceph-base uuidgen:uuid-runtime; do
        bin=${pair%%:*} pkg=${pair#*:}
        command -v "$bin" >/dev/null || missing+=("$bin (package $pkg)")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "FAILED: missing binaries: ${missing[*]}"
        exit 1
    fi
}

# stop DIR: TERM every daemon with a pid file under DIR/run, wait up to CEPH_STOP_GRACE seconds
# (default 3), then KILL. Left alone, a daemon takes 2-6 s to stop after SIGTERM (the MDS and
# the OSD wait for the monitor, which is stopping too): too long for a cluster thrown away.
stop_cluster() {
    local dir=$1 grace=${CEPH_STOP_GRACE:-3} pids=() pid f i
    for f in "$dir"/run/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        # A stale pid file may name a reused pid: only a ceph daemon is ours.
        [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == ceph-* ]] && pids+=("$pid")
    done
    [ "${#pids[@]}" -gt 0 ] || { rm -f "$dir"/run/*.pid; return 0; }
    log "stopping ${#pids[@]} daemons under $dir"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        alive=()
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
        [ "${#alive[@]}" -gt 0 ] || { rm -f "$dir"/run/*.pid; return 0; }
        sleep 0.1
    done
    log "killing ${alive[*]} (still there ${grace} s after SIGTERM)"
    kill -KILL "${alive[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive2=()
        for pid in "${alive[@]}"; do kill -0 "$pid" 2>/dev/null && alive2+=("$pid"); done
        [ "${#alive2[@]}" -gt 0 ] || { rm -f "$dir"/run/*.pid; return 0; }
        sleep 0.1
    done
    log "still alive after SIGKILL: ${alive2[*]}"
    return 1
}

# fail WHAT LOGFILE...: the one-line reason, the logs' tails, stop, exit 1.
fail() {
    local what=$1 f
    shift
    log "FAILED: $what"
    for f in "$@"; do
        [ -s "$f" ] || continue
        echo "--- tail of $f" >&2
        tail -n 30 "$f" >&2
    done
    stop_cluster "$DIR" || true
    exit 1
}

# run WHAT LOGFILE CMD...: run CMD with its output appended to LOGFILE; fail on error.
run() {
    local what=$1 logf=$2
    shift 2
    "$@" >>"$logf" 2>&1 </dev/null || fail "$what (exit $?)" "$logf"
}

# A port nobody listens on, below the ephemeral range and away from Ceph's 6800-7300.
free_port() {
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$((10000 + RANDOM % 20000))
        [ "$p" -ge 6700 ] && [ "$p" -le 7400 ] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! ss -Htan "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

cephcli() { timeout 30 ceph -c "$CONF" --connect-timeout 20 "$@"; }

# wait_for WHAT SECONDS LOGFILE CMD...: poll CMD (silently) every 0.3 s until it succeeds.
wait_for() {
    local what=$1 secs=$2 logf=$3 deadline
    shift 3
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1 </dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what (not within ${secs} s)" "$logf"
        sleep 0.3
    done
}

write_conf() {
    local fsid=$1 p2=$2 p1=$3
    cat >"$CONF" <<EOF
# Written by scripts/ceph-single.sh: a single-node test cluster, everything under $DIR.
[global]
fsid = $fsid
mon_initial_members = a
mon_host = [v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]
public_network = 127.0.0.0/8
cluster_network = 127.0.0.0/8
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = $DIR/run
crash_dir = $DIR/crash
mon_cluster_log_file = $DIR/log/cluster.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
auth_allow_insecure_global_id_reclaim = false
# Without this a rename through one client is invisible to the others for seconds.
mds_early_reply = false
# The monitor stops below 5 % free space on the disk its data is on (the host's, here): a
# test cluster holds megabytes, and a nearly full build machine must not fail it for that.
mon_data_avail_crit = 0
mon_data_avail_warn = 0

[mon]
mon_data = $DIR/mon
keyring = $DIR/mon/keyring
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid

[mgr]
mgr_data = $DIR/mgr
keyring = $DIR/mgr/keyring
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid

[mds]
mds_data = $DIR/mds
keyring = $DIR/mds/keyring
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid

[osd]
osd_data = $DIR/osd/\$id
keyring = $DIR/osd/\$id/keyring
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = 10737418240
osd_memory_target = 1073741824

[client]
keyring = $DIR/ceph.client.admin.keyring
EOF
}

# key NAME FILE CAPS...: a new keyring FILE holding a fresh key for NAME, imported into the
# bootstrap keyring the monitor is made from.
key() {
    local name=$1 file=$2
    shift 2
    run "ceph-authtool $name" "$DIR/log/setup.log" ceph-authtool --create-keyring "$file" --gen-key -n "$name" "$@"
    run "ceph-authtool import $name" "$DIR/log/setup.log" ceph-authtool "$DIR/bootstrap.keyring" --import-keyring "$file"
}

make_keys() {
    run "ceph-authtool mon." "$DIR/log/setup.log" \
        ceph-authtool --create-keyring "$DIR/bootstrap.keyring" --gen-key -n mon. --cap mon 'allow *'
    key client.admin "$DIR/ceph.client.admin.keyring" \
        --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
    key mgr.a "$DIR/mgr/keyring" --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *'
    key mds.a "$DIR/mds/keyring" \
        --cap mon 'allow profile mds' --cap osd 'allow rwx' --cap mds 'allow' --cap mgr 'allow profile mds'
    key osd.0 "$DIR/osd/0/keyring" --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
}

start_mon() {
    local fsid=$1 p2=$2 p1=$3
    run "monmaptool" "$DIR/log/setup.log" \
        monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]" "$DIR/monmap"
    run "ceph-mon --mkfs" "$DIR/log/mon.a.log" \
        ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/bootstrap.keyring"
    run "ceph-mon start" "$DIR/log/mon.a.log" ceph-mon -c "$CONF" -i a
    wait_for "ceph-mon answering on 127.0.0.1:$p2" 60 "$DIR/log/mon.a.log" cephcli mon stat
}

osd_up() { cephcli osd stat -f json | grep -q '"num_up_osds":1'; }
mds_active() { cephcli mds stat | grep -q 'up:active'; }
mgr_available() { cephcli mgr stat -f json | grep -Eq '"available": ?true'; }

start_osd() {
    local uuid
    uuid=$(uuidgen)
    run "ceph osd new" "$DIR/log/setup.log" cephcli osd new "$uuid" 0
    run "ceph-osd --mkfs" "$DIR/log/osd.0.log" ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid"
    run "ceph-osd start" "$DIR/log/osd.0.log" ceph-osd -c "$CONF" -i 0
}

make_fs() {
    local pool
    for pool in cephfs_metadata cephfs_data; do
        run "ceph osd pool create $pool" "$DIR/log/setup.log" cephcli osd pool create "$pool" 8 8
        run "ceph osd pool set $pool size 1" "$DIR/log/setup.log" \
            cephcli osd pool set "$pool" size 1 --yes-i-really-mean-it
    done
    run "ceph fs new" "$DIR/log/setup.log" cephcli fs new cephfs cephfs_metadata cephfs_data
}

start_cluster() {
    local fsid p1 p2 t0=$SECONDS
    check_binaries
    [ "$(id -u)" = 0 ] || { log "FAILED: must run as root"; exit 1; }
    if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
        log "FAILED: $DIR is not empty"
        exit 1
    fi
    mkdir -p "$DIR"/{run,log,crash,mgr,mds,osd/0}
    DIR=$(cd "$DIR" && pwd)
    CONF=$DIR/ceph.conf
    fsid=$(uuidgen)
    p2=$(free_port) && p1=$(free_port) || fail "no free port for the monitor"
    [ "$p1" != "$p2" ] || p1=$(free_port) || fail "no free port for the monitor"
    write_conf "$fsid" "$p2" "$p1"
    make_keys
    log "mon on 127.0.0.1:$p2 (v2) and :$p1 (v1), cluster $fsid under $DIR"
    start_mon "$fsid" "$p2" "$p1"
    run "ceph-mgr start" "$DIR/log/mgr.a.log" ceph-mgr -c "$CONF" -i a
    start_osd
    run "ceph-mds start" "$DIR/log/mds.a.log" ceph-mds -c "$CONF" -i a
    make_fs
    log "daemons started ($((SECONDS - t0)) s); waiting for the OSD, the MDS and the MGR"
    wait_for "osd.0 up" 120 "$DIR/log/osd.0.log" osd_up
    wait_for "mds.a up:active" 120 "$DIR/log/mds.a.log" mds_active
    wait_for "mgr.a available" 120 "$DIR/log/mgr.a.log" mgr_available
    log "CephFS active after $((SECONDS - t0)) s"
    echo "CEPH_CONF=$CONF"
    echo "CEPH_KEYRING=$DIR/ceph.client.admin.keyring"
}

[ "$#" = 2 ] || usage
DIR=$2
case $1 in
start) start_cluster ;;
stop) stop_cluster "$DIR" ;;
*) usage ;;
esac
