#!/usr/bin/env bash
# ceph-first-read.sh [FAN_OUT=1|0]: CephFS alone, no pmirror-fs: one ceph-fuse client writes 1,000
# 8 KiB files the way the pool does (written and fsync'd in tmp/, renamed into sha256/<2 hex>/
# directories it creates, each directory fsync'd; FAN_OUT=0: all renamed into one directory), a
# second client (its own mount namespace) reads them first, one at a time, and the total, median
# and longest read are printed.
# Shows the first-reader stalls docs/cluster.md reports. Needs root and Ceph's packages.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DIR=$(mktemp -d /tmp/ceph-first-read.XXXXXX)
trap 'kill ${W:-} ${S:-} 2>/dev/null; pkill -f "ceph-fuse -c $DIR" || true; "$SRC/scripts/ceph-single.sh" stop "$DIR/ceph" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
eval "$("$SRC/scripts/ceph-single.sh" start "$DIR/ceph" 2>"$DIR/start.log")"
export FAN_OUT=${FAN_OUT:-1}
CONF=$CEPH_CONF; KEY=$CEPH_KEYRING
mk() { unshare --mount --propagation private sleep infinity >/dev/null 2>&1 & echo $!; }
W=$(mk); S=$(mk); sleep 0.5
for p in $W $S; do nsenter -t $p -m -- sh -c "mkdir -p /mnt/pmirror-ceph; ceph-fuse -c $CONF -n client.admin --keyring $KEY /mnt/pmirror-ceph >/dev/null 2>&1"; done
sleep 1
nsenter -t $W -m -- python3 - <<'PY'
import os, hashlib
root='/mnt/pmirror-ceph/pool'
os.makedirs(root+'/tmp', exist_ok=True)
for i in range(1000):
    b=os.urandom(8192); h=hashlib.sha256(b).hexdigest()
    d=f'{root}/sha256/{h[:2]}' if os.environ['FAN_OUT'] == '1' else f'{root}/sha256/flat'; os.makedirs(d, exist_ok=True)
    t=f'{root}/tmp/{h}'
    with open(t,'wb') as f: f.write(b); f.flush(); os.fsync(f.fileno())
    os.rename(t, f'{d}/{h}')
    fd=os.open(d, os.O_RDONLY); os.fsync(fd); os.close(fd)
open('/mnt/pmirror-ceph/list','w').write('\n'.join(f'{r}/{n}' for r,_,ns in os.walk(root+'/sha256') for n in ns))
PY
nsenter -t $S -m -- python3 - <<'PY'
import os, time
paths=open('/mnt/pmirror-ceph/list').read().split()
ts=[]
for p in paths:
    t=time.time(); open(p,'rb').read(); ts.append(time.time()-t)
s=sorted(ts); print(f"first reader, FAN_OUT={os.environ['FAN_OUT']}: total {sum(ts):.2f}s median {s[len(s)//2]*1000:.1f}ms max {s[-1]*1000:.0f}ms over-1s {sum(1 for t in ts if t>1)}")
PY
for p in $W $S; do nsenter -t $p -m -- umount -l /mnt/pmirror-ceph || true; kill $p; done
