#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that mount FUSE for real, start
# nginx on 127.0.0.1 and drive apt-get. Installs what those need first (Debian bookworm, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# systemd: systemd-analyze verifies the shipped units (tests/integration/ops.rs).
need=(fuse3 nginx gpg gpgv dpkg-dev apt-utils ca-certificates systemd)
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

# The demo test runs the make-upstream example: `cargo test` builds examples only as test
# harnesses, so build the real example binary first.
cargo build --examples
cargo test --all-targets "$@"

# The README's `cargo install --path .` (debug profile here, reusing this build's artifacts).
inst=$(mktemp -d)
trap 'rm -rf "$inst"' EXIT
CARGO_TARGET_DIR="$PWD/target" cargo install --path . --debug --locked --root "$inst" --quiet
"$inst/bin/pmirror-fs" --version
