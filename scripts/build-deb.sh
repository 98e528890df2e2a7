#!/usr/bin/env bash
# Builds target/debian/pmirror-fs_<version>-1_<arch>.deb with cargo-deb: the release binary, man
# pages (section 1 and pmirror-fs.toml(5)) and shell completions generated from the clap
# definitions, systemd units, the nginx example and the default config.
# Usage: scripts/build-deb.sh [--profile PROFILE] [--no-build]
# (--no-build packages an existing target/<profile>/pmirror-fs; the tests use the dev profile).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "usage: $0 [--profile PROFILE] [--no-build]" >&2; exit 2 ;;
    esac
done
dir=$profile
[ "$profile" = dev ] && dir=debug

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
[ "$build" = 1 ] && cargo build --profile "$profile" --bin pmirror-fs
bin="target/$dir/pmirror-fs"
[ -x "$bin" ] || { echo "FATAL: $bin missing (build it, or drop --no-build)" >&2; exit 1; }

assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" gen man --dir "$assets/man"
gzip -9n "$assets"/man/*.1 "$assets"/man/*.5
"$bin" gen completions bash >"$assets/completions/pmirror-fs.bash"
"$bin" gen completions zsh >"$assets/completions/_pmirror-fs"
"$bin" gen completions fish >"$assets/completions/pmirror-fs.fish"

args=(--no-build --profile "$profile")
# A dev binary carries ~250 MB of debug info: strip it and compress fast (test packages only).
[ "$profile" = dev ] && args+=(--strip --fast)
cargo deb "${args[@]}"
