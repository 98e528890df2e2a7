#!/usr/bin/env bash
# What the README's two commands cost to build and run (issue 11, item 10): for each of two
# revisions, a fresh clone runs `scripts/demo.sh --no-wait`, then `scripts/test.sh`, then
# `scripts/build-deb.sh`; the script prints their wall times, the size of target/ after each,
# the release binary and the .deb, and the ratio of the two commands' totals.
#
# The revisions run one after the other (a cold build uses both cores; running them side by side
# would measure the contention), so run it on an otherwise idle machine. Each run takes 15–30 min.
#
# Usage: scripts/bench-build.sh [BEFORE [AFTER]]   (default: 421c059 — before item 10 — and HEAD;
#        BENCH_DIR=<dir> to keep the clones; needs root, as the demo and the tests do)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BEFORE=${1:-421c059}
AFTER=${2:-HEAD}
DIR=${BENCH_DIR:-$(mktemp -d /var/tmp/pmirror-bench-build.XXXXXX)}
unset CARGO_TARGET_DIR
[ "$(id -u)" = 0 ] || { echo "FATAL: run as root (the demo and the tests mount FUSE)" >&2; exit 1; }

# run REV: prints "demo test total target_demo target_test binary deb deb_build" (seconds, bytes).
run() {
    local rev=$1 clone=$DIR/$1
    rm -rf "$clone"
    git clone -q "$REPO" "$clone"
    git -C "$clone" checkout -q "$rev"
    cd "$clone"
    local s demo test deb_build target_demo target_test
    s=$(date +%s); scripts/demo.sh --no-wait >"$DIR/$rev-demo.log" 2>&1 || { echo "FATAL: demo failed at $rev (see $DIR/$rev-demo.log)" >&2; exit 1; }
    demo=$(($(date +%s) - s)); target_demo=$(du -sb target | cut -f1)
    s=$(date +%s); scripts/test.sh >"$DIR/$rev-test.log" 2>&1 || { echo "FATAL: tests failed at $rev (see $DIR/$rev-test.log)" >&2; exit 1; }
    test=$(($(date +%s) - s)); target_test=$(du -sb target | cut -f1)
    # The release binary: the demo built it before item 10; build it where it is missing.
    s=$(date +%s)
    if [ -x target/release/pmirror-fs ]; then scripts/build-deb.sh --no-build; else scripts/build-deb.sh; fi >"$DIR/$rev-deb.log" 2>&1
    deb_build=$(($(date +%s) - s))
    echo "$demo $test $((demo + test)) $target_demo $target_test $(stat -c %s target/release/pmirror-fs) $(stat -c %s target/debian/*.deb) $deb_build"
    cd "$REPO"
}

b=$(run "$BEFORE")
a=$(run "$AFTER")
gb() { awk -v n="$1" 'BEGIN { printf "%.2f GB", n / 1e9 }'; }
mb() { awk -v n="$1" 'BEGIN { printf "%.1f MB", n / 1e6 }'; }
printf '%-10s %8s %8s %8s %12s %12s %12s %10s %9s\n' rev demo test total target/demo target/test binary .deb deb-build
for row in "$BEFORE $b" "$AFTER $a"; do
    set -- $row
    printf '%-10s %7ss %7ss %7ss %12s %12s %12s %10s %8ss\n' "$1" "$2" "$3" "$4" "$(gb "$5")" "$(gb "$6")" "$(mb "$7")" "$(mb "$8")" "$9"
done
set -- $b; bt=$3; set -- $a
awk -v b="$bt" -v a="$3" 'BEGIN { printf "demo + test: after / before = %.2f\n", a / b }'
echo "clones and logs: $DIR"
