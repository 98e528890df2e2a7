#!/usr/bin/env python3
"""probe.py: wait for something to happen on a path and print when (unix seconds, float).

    probe.py exists  PATH READY_FILE TIMEOUT   first moment stat(PATH) succeeds
    probe.py changed PATH READY_FILE TIMEOUT   first moment a fresh open+read of PATH returns
                                               other bytes than the first read did

Touches READY_FILE once it is polling (bench-fuse.sh starts the timed action only then), prints
the time on stdout and exits 0; exits 1 after TIMEOUT seconds. Polls every POLL seconds: fine
enough for the 1 s and 100 ms targets, and it leaves CPU to the daemon on a 2-core machine.
Every poll is a new open (no fd kept), as a new client would do.
"""

import os
import sys
import time

POLL = 0.001


def read(path):
    # os.open, not open(): Python's open() asks isatty(), one more FUSE upcall (ioctl) per poll.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("exists", "changed"):
        sys.stderr.write(__doc__)
        return 2
    mode, path, ready, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    first = read(path) if mode == "changed" else None
    if mode == "changed" and first is None:
        sys.stderr.write(f"probe.py: cannot read {path}\n")
        return 1
    open(ready, "w").close()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if mode == "exists":
            try:
                os.stat(path)
                hit = True
            except OSError:
                hit = False
        else:
            now = read(path)
            hit = now is not None and now != first
        if hit:
            print(f"{time.time():.6f}")
            return 0
        time.sleep(POLL)
    sys.stderr.write(f"probe.py: {mode} {path}: nothing after {timeout} s\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
