//! bench-lifecycle: build a big, realistic store through the library API for
//! `scripts/bench-lifecycle.sh` (`gc`, `snapshot diff` and `verify` on 1,000,000 entries).
//!
//! ```text
//! cargo run --release --example bench-lifecycle -- --store DIR [--snapshots 25] [--keep 20]
//!     [--per-snapshot 50000] [--max-kib 64] [--orphans 1000]
//! ```
//!
//! Mirror `bench` (view `bench`) gets `--snapshots` snapshots of `--per-snapshot` entries each:
//! `dists/bench/main/binary-amd64/Packages.gz` (a real index naming every package) and
//! `per-snapshot − 1` packages `pool/main/p/pkg<i>/pkg<i>_1.<v>_amd64.deb`. From one snapshot to
//! the next, 5 % of the packages get a new version (a new object), the 100 lowest-numbered are
//! dropped and 100 new ones appear — so snapshots share most objects, as an archive's do. Each
//! object is a real pool file of 1 KiB … `--max-kib` KiB of pseudo-random bytes. Then the newest
//! snapshot is published with retention `keep = --keep`, no grace: the oldest `snapshots − keep`
//! snapshots are pruned (their unique objects are gc's work), leaving `keep × per-snapshot`
//! entries. `--orphans` extra pool files no snapshot ever recorded (a crashed sync's leftovers).
//!
//! Prints `first=<name>` and `last=<name>` (the oldest and newest retained snapshots) and
//! `entries=<n>` for the script.

use anyhow::{bail, Context, Result};
use pmirror_fs::catalog::{Catalog, NewEntry, NewSnapshot, Retention};
use pmirror_fs::digest::Sha256;
use pmirror_fs::pool::Pool;
use pmirror_fs::tree::source::EntryKind;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

const USAGE: &str = "usage: bench-lifecycle --store DIR [--snapshots N] [--keep N] [--per-snapshot N] \
                     [--max-kib N] [--orphans N]";
/// Snapshot s is created at BASE + s hours (distinct names, oldest first).
const BASE_SECS: i64 = 1_704_067_200;
const HOUR: i64 = 3_600;
/// One package in this many gets a new version per snapshot (5 %).
const CHURN_ONE_IN: u64 = 20;
/// Packages dropped (lowest ids) and added (new ids) per snapshot.
const TURNOVER: u64 = 100;
const INDEX_PATH: &str = "dists/bench/main/binary-amd64/Packages.gz";

struct Args {
    store: PathBuf,
    snapshots: u64,
    keep: usize,
    per_snapshot: u64,
    max_kib: u64,
    orphans: u64,
}

fn parse_args() -> Result<Args> {
    let mut a =
        Args { store: PathBuf::new(), snapshots: 25, keep: 20, per_snapshot: 50_000, max_kib: 64, orphans: 1_000 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
        let number = || value.parse::<u64>().with_context(|| format!("{arg} must be a number"));
        match arg.as_str() {
            "--store" => a.store = PathBuf::from(&value),
            "--snapshots" => a.snapshots = number()?,
            "--keep" => a.keep = number()? as usize,
            "--per-snapshot" => a.per_snapshot = number()?,
            "--max-kib" => a.max_kib = number()?,
            "--orphans" => a.orphans = number()?,
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    if a.store.as_os_str().is_empty() || a.per_snapshot < 2 || a.max_kib < 1 {
        bail!("{USAGE}");
    }
    Ok(a)
}

/// splitmix64: a well-mixed hash of small integers, the generator of everything random here.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The bytes of package `id` at version `v`.
fn content(id: u64, v: u64, max_kib: u64) -> Vec<u8> {
    let seed = mix((id << 20) ^ v);
    let len = 1024 + (seed % (max_kib * 1024).saturating_sub(1024).max(1)) as usize;
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed;
    while out.len() < len {
        x = mix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Packages of snapshot `s`: ids `s·TURNOVER .. s·TURNOVER + count`, each with its version.
fn packages(s: u64, count: u64, versions: &mut HashMap<u64, u64>) -> Vec<(u64, u64)> {
    let first = s * TURNOVER;
    (first..first + count)
        .map(|id| {
            let v = versions.entry(id).or_insert(0);
            if s > 0 && mix(id ^ (s << 40)) % CHURN_ONE_IN == 0 {
                *v += 1;
            }
            (id, *v)
        })
        .collect()
}

fn package_path(id: u64, v: u64) -> String {
    format!("pool/main/p/pkg{id}/pkg{id}_1.{v}_amd64.deb")
}

/// Objects in the pool and their digests, written once however many snapshots name them.
struct Objects {
    pool: Pool,
    known: HashMap<(u64, u64), (Sha256, u64)>,
    max_kib: u64,
}

impl Objects {
    fn get(&mut self, id: u64, v: u64) -> Result<(Sha256, u64)> {
        if let Some(hit) = self.known.get(&(id, v)) {
            return Ok(*hit);
        }
        let bytes = content(id, v, self.max_kib);
        let sha = Sha256::of(&bytes);
        self.pool.put_bytes(&bytes, &sha)?;
        self.known.insert((id, v), (sha, bytes.len() as u64));
        Ok((sha, bytes.len() as u64))
    }
}

fn snapshot(objects: &mut Objects, s: u64, pkgs: &[(u64, u64)]) -> Result<NewSnapshot> {
    let created_at = BASE_SECS + s as i64 * HOUR;
    let mut entries = Vec::with_capacity(pkgs.len() + 1);
    let mut index = String::with_capacity(pkgs.len() * 200);
    for &(id, v) in pkgs {
        let (sha256, size) = objects.get(id, v)?;
        let path = package_path(id, v);
        write!(
            index,
            "Package: pkg{id}\nVersion: 1.{v}\nArchitecture: amd64\nSection: misc\nFilename: {path}\nSize: {size}\nSHA256: {sha256}\n\n"
        )?;
        entries.push(NewEntry {
            path,
            sha256,
            size,
            mtime: created_at,
            kind: EntryKind::Package,
            other_hashes: vec![],
        });
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, index.as_bytes())?;
    let gz = gz.finish()?;
    let sha256 = Sha256::of(&gz);
    objects.pool.put_bytes(&gz, &sha256)?;
    let size = gz.len() as u64;
    entries.push(NewEntry {
        path: INDEX_PATH.into(),
        sha256,
        size,
        mtime: created_at,
        kind: EntryKind::Index,
        other_hashes: vec![],
    });
    Ok(NewSnapshot {
        mirror_id: "bench".into(),
        created_at,
        release_sha256: None,
        release_last_modified: None,
        entries,
    })
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let pool = Pool::open(&a.store, false)?;
    let mut catalog = Catalog::open(&a.store)?;
    catalog.upsert_mirror("bench", "mirror", "bench", "http://bench.invalid/bench")?;
    let mut objects = Objects { pool, known: HashMap::new(), max_kib: a.max_kib };
    let mut versions = HashMap::new();
    let mut last = 0;
    let started = std::time::Instant::now();
    for s in 0..a.snapshots {
        let pkgs = packages(s, a.per_snapshot - 1, &mut versions);
        let snap = snapshot(&mut objects, s, &pkgs)?;
        last = catalog.record_snapshot(&snap)?.0;
        eprintln!("snapshot {s}: {} objects so far, {:.1}s", objects.known.len(), started.elapsed().as_secs_f64());
    }
    let now = BASE_SECS + (a.snapshots as i64 + 1) * HOUR;
    let out = catalog.publish(&[last], now, Retention { keep: a.keep, grace_secs: 0 }, |_| Ok(None))?;
    for i in 0..a.orphans {
        let bytes = content(u64::MAX - i, 0, a.max_kib);
        objects.pool.put_bytes(&bytes, &Sha256::of(&bytes))?;
    }
    let kept = catalog.snapshots(Some("bench"))?;
    let entries: u64 = kept.iter().map(|s| s.files).sum();
    eprintln!("pruned {} snapshots; {} retained, {entries} entries", out.pruned.len(), kept.len());
    let (first, newest) = (kept.first().context("no snapshot")?, kept.last().context("no snapshot")?);
    println!("first={}\nlast={}\nentries={entries}", first.name, newest.name);
    Ok(())
}
