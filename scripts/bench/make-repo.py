#!/usr/bin/env python3
"""make-repo.py: write a signed apt repository of N random "package" files for bench-fuse.sh.

    make-repo.py --out UPSTREAM --root bench/deb --layout pool|dists --count N
                 [--min-size 4096] [--max-size 65536] [--big-size BYTES] [--seed S]
                 --gnupghome DIR [--date UNIX] [--list FILE] [--resign-only]

Writes UPSTREAM/<root>/dists/bookworm/{Release,InRelease,Release.gpg} and the Packages index of
one component (`main` for --layout pool, Debian style: files under pool/main/…; `pve-no-subscription`
for --layout dists, Proxmox style: files inside dists/bookworm/<comp>/binary-amd64/). File
contents are random (seeded), so nothing deduplicates. --big-size adds one package of that many
bytes (written sparse-free from /dev/urandom). --list writes the URL path of every small file, one a
line, for wrk. --resign-only rewrites only Release/InRelease/Release.gpg with a new --date (a new
upstream generation whose packages are unchanged).

Signing uses the first secret key in --gnupghome (a throwaway home made by bench-fuse.sh).
Stdlib only: it runs on a bare Debian python3.
"""

import argparse
import gzip
import hashlib
import os
import random
import subprocess
import sys
import time

CODENAME = "bookworm"
ARCH = "amd64"
# Packages per source directory under pool/main/b/ (Debian groups a source's binaries).
PER_SOURCE_DIR = 4
# Chunk size for writing and hashing the big file.
CHUNK = 1 << 20


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--root", required=True, help="server path of the repository root, e.g. bench/deb")
    p.add_argument("--layout", choices=["pool", "dists"], required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--min-size", type=int, default=4096)
    p.add_argument("--max-size", type=int, default=65536)
    p.add_argument("--big-size", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gnupghome", required=True)
    p.add_argument("--date", type=int, default=None, help="Release Date, unix seconds (default: now)")
    p.add_argument("--list", default=None)
    p.add_argument("--resign-only", action="store_true")
    return p.parse_args()


def component(layout):
    return "main" if layout == "pool" else "pve-no-subscription"


def filename(layout, name):
    """Repository-relative path of package `name`."""
    if layout == "pool":
        return f"pool/main/b/{name.rsplit('-', 1)[0]}/{name}_1.0_{ARCH}.deb"
    return f"dists/{CODENAME}/{component(layout)}/binary-{ARCH}/{name}_1.0_{ARCH}.deb"


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def stanza(name, fname, size, sha):
    return (f"Package: {name}\nVersion: 1.0\nArchitecture: {ARCH}\nMaintainer: bench <bench@invalid>\n"
            f"Filename: {fname}\nSize: {size}\nSHA256: {sha}\nSection: misc\nPriority: optional\n"
            f"Description: benchmark file {name}\n\n")


def small_packages(args, repo, rng):
    stanzas, urls = [], []
    for i in range(args.count):
        name = f"bench{i // PER_SOURCE_DIR:05d}-{i:06d}" if args.layout == "pool" else f"bench-{i:06d}"
        data = rng.randbytes(rng.randint(args.min_size, args.max_size))
        fname = filename(args.layout, name)
        write_file(os.path.join(repo, fname), data)
        stanzas.append(stanza(name, fname, len(data), hashlib.sha256(data).hexdigest()))
        urls.append(f"/{args.root}/{fname}")
    return stanzas, urls


def big_package(args, repo):
    fname = filename(args.layout, "big-000000")
    path = os.path.join(repo, fname)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h = hashlib.sha256()
    with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
        left = args.big_size
        while left > 0:
            block = src.read(min(CHUNK, left))
            h.update(block)
            dst.write(block)
            left -= len(block)
    return stanza("big", fname, args.big_size, h.hexdigest()), f"/{args.root}/{fname}"


def write_indices(args, dists, stanzas):
    text = "".join(stanzas).encode()
    rel = f"{component(args.layout)}/binary-{ARCH}/Packages"
    write_file(os.path.join(dists, rel), text)
    write_file(os.path.join(dists, rel + ".gz"), gzip.compress(text, mtime=0))


def release_text(args, dists, date):
    comp = component(args.layout)
    lines = []
    for rel in (f"{comp}/binary-{ARCH}/Packages", f"{comp}/binary-{ARCH}/Packages.gz"):
        with open(os.path.join(dists, rel), "rb") as f:
            data = f.read()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {rel}")
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(date))
    return (f"Origin: bench\nLabel: bench\nSuite: stable\nCodename: {CODENAME}\nDate: {stamp}\n"
            f"Architectures: {ARCH}\nComponents: {comp}\nDescription: pmirror-fs benchmark repository\n"
            "SHA256:\n" + "\n".join(lines) + "\n")


def sign(args, dists, date):
    release = os.path.join(dists, "Release")
    write_file(release, release_text(args, dists, date).encode())
    gpg = ["gpg", "--homedir", args.gnupghome, "--batch", "--yes", "--quiet", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    subprocess.run(gpg + ["--clearsign", "-o", os.path.join(dists, "InRelease"), release], check=True)
    subprocess.run(gpg + ["--armor", "--detach-sign", "-o", os.path.join(dists, "Release.gpg"), release],
                   check=True)
    for name in ("Release", "InRelease", "Release.gpg"):
        os.utime(os.path.join(dists, name), (date, date))


def main():
    args = parse_args()
    repo = os.path.join(args.out, args.root)
    dists = os.path.join(repo, "dists", CODENAME)
    date = args.date if args.date is not None else int(time.time())
    if not args.resign_only:
        rng = random.Random(args.seed)
        stanzas, urls = small_packages(args, repo, rng)
        if args.big_size:
            big, _ = big_package(args, repo)
            stanzas.append(big)
        write_indices(args, dists, stanzas)
        if args.list:
            with open(args.list, "w") as f:
                f.write("\n".join(urls) + "\n")
    sign(args, dists, date)
    return 0


if __name__ == "__main__":
    sys.exit(main())
