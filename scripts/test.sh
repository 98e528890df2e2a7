#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that mount FUSE for real, start
# nginx on 127.0.0.1 and drive apt-get. Installs what those need first (Debian bookworm, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# systemd: systemd-analyze verifies the shipped units (tests/integration/ops.rs).
# debian-archive-keyring: the real-upstream tier verifies deb.debian.org with it, and the Debian
# presets' test loads it. groff-base: the man pages must render without a warning.
# exfatprogs, exfat-fuse: the offline-media tests write a real exFAT medium. tinyproxy: the
# proxy tests sync through a real HTTP proxy. openssl: the HTTP/2 test makes a CA and a
# certificate for its TLS nginx. ceph-*: the cluster tier (tests/integration/cluster.rs) starts a
# real single-node Ceph and mounts its CephFS with ceph-fuse (scripts/ceph-single.sh). chromium:
# the front-page test (tests/integration/web.rs) loads the page in a real headless browser.
need=(fuse3 nginx gpg gpgv dpkg-dev apt-utils ca-certificates systemd debian-archive-keyring groff-base
      exfatprogs exfat-fuse tinyproxy openssl ceph-mon ceph-mgr ceph-mds ceph-osd ceph-fuse ceph-common
      chromium)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The FUSE, nginx and apt tests are the product: fail loudly when they cannot run.
[ -c /dev/fuse ] || { echo "FATAL: /dev/fuse is missing; the FUSE tests cannot run" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "FATAL: run as root (FUSE passthrough and nginx need it)" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "FATAL: nginx missing" >&2; exit 1; }
command -v fusermount3 >/dev/null || { echo "FATAL: fusermount3 missing" >&2; exit 1; }
# The .deb test packages the built binary with cargo-deb.
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb

# The real-upstream tier (tests/integration/real_upstream.rs) mirrors deb.debian.org's
# bookworm-updates; without network it skips, and says so in $PMIRROR_SKIP_REPORT. Its summary
# goes to $PMIRROR_SUMMARY_REPORT (the cluster tier adds its front-page timing). Both are printed at
# the very end, whatever the outcome.
reports=$(mktemp -d)
inst=
export PMIRROR_SKIP_REPORT="$reports/skipped" PMIRROR_SUMMARY_REPORT="$reports/summary"
: >"$PMIRROR_SKIP_REPORT"
: >"$PMIRROR_SUMMARY_REPORT"
report() {
    if [ -s "$PMIRROR_SUMMARY_REPORT" ]; then
        echo "=== TIER SUMMARIES (real upstream, cluster) ===" >&2
        cat "$PMIRROR_SUMMARY_REPORT" >&2
    fi
    if [ -s "$PMIRROR_SKIP_REPORT" ]; then
        echo "=== SKIPPED TIERS ===" >&2
        cat "$PMIRROR_SKIP_REPORT" >&2
        echo "=== (these tests passed without running: see the lines above) ===" >&2
    fi
    rm -rf "$reports" ${inst:+"$inst"}
}
trap report EXIT

# The demo test runs the make-upstream example: `cargo test` builds examples only as test
# harnesses, so build the real example binary first.
cargo build --examples
cargo test --all-targets "$@"

# The README's `cargo install --path .` (debug profile here, reusing this build's artifacts).
inst=$(mktemp -d)
CARGO_TARGET_DIR="$PWD/target" cargo install --path . --debug --locked --root "$inst" --quiet
"$inst/bin/pmirror-fs" --version
