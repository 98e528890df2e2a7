//! bench-catalog: build a large catalog through the library API, for `scripts/bench-fuse.sh`
//! (mount-to-first-lookup, daemon RSS per entry, publish → visible on a big view).
//!
//! ```text
//! cargo run --release --example bench-catalog -- --store DIR --entries N
//! cargo run --release --example bench-catalog -- --store DIR --measure
//! ```
//!
//! `--measure` writes nothing: it loads the store's view the way the mount daemon does and logs
//! how long the catalog load and the tree build take, the view's own heap size and the process
//! RSS after each step (where the daemon's start-up time and memory go).
//!
//! Writes into `DIR/catalog.db` (and a few objects into `DIR/pool/`) N catalog entries in one of
//! two shapes (`--shape`, default `single`):
//! - `single`: mirror `big` (view `bench/big`) has one published snapshot of N entries, each with
//!   its own object — the worst case per entry: every entry shows twice (canonical path and
//!   `snapshots/`) and brings its own object.
//! - `history`: mirror `big` has [`HISTORY_ROUNDS`] snapshots of N / 3 entries, as a mirror synced
//!   every hour keeps them: each round upgrades [`CHANGED_PER_ROUND`] of the packages (new
//!   version, new path, new object), the rest is shared; the older two are in the grace window.
//!
//! A snapshot of `big`: `dists/bookworm/Release`, one `Packages` index and packages at
//! `pool/main/<letter>/src<i/4>/pkg<i>_<version>_amd64.deb` (four binaries per source directory,
//! as Debian groups them). Only the first [`REAL_OBJECTS`] entries' objects exist in the pool: the
//! mount must not touch objects to start.
//!
//! Mirror `flip` (view `bench/flip`): two snapshots whose `dists/bookworm/Release` differ
//! (`flip A`, `flip B`, real pool objects); the first is published. Publishing the other one with
//! `pmirror-fs snapshot publish flip NAME` changes what that path reads.

use anyhow::{bail, Context, Result};
use pmirror_fs::catalog::{Catalog, NewEntry, NewSnapshot, Retention};
use pmirror_fs::digest::Sha256;
use pmirror_fs::pool::Pool;
use pmirror_fs::store::ViewPublisher;
use pmirror_fs::tree::source::EntryKind;
use pmirror_fs::tree::View;
use std::path::{Path, PathBuf};
use std::time::Instant;

const USAGE: &str = "usage: bench-catalog --store DIR (--entries N [--shape single|history] | --measure)";
/// Objects written to the pool for real (enough to read a few files through the mount).
const REAL_OBJECTS: usize = 16;
/// Binary packages per source directory (Debian groups a source's binaries in one pool dir).
const PER_SOURCE: usize = 4;
/// Snapshots of `big` in the `history` shape (sync.keep's default).
const HISTORY_ROUNDS: usize = 3;
/// One package in this many gets a new version each round (5 %: a busy stable-updates week).
const CHANGED_PER_ROUND: usize = 20;
/// Seconds between the `history` rounds (an hourly sync), all inside the 48 h grace window.
const ROUND_SECS: i64 = 3600;
/// A fixed upstream time (2024-11-09T10:11:12Z), so the catalog is the same on every run.
const MTIME: i64 = 1_731_147_072;
/// Keep every snapshot: the two `flip` snapshots must both stay retained.
const RETENTION: Retention = Retention { keep: 10, grace_secs: 48 * 3600 };

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    History,
}

struct Args {
    store: PathBuf,
    /// `None`: --measure.
    entries: Option<usize>,
    shape: Shape,
}

fn parse_args() -> Result<Args> {
    let (mut store, mut entries, mut measure, mut shape) = (None, None, false, Shape::Single);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--store" => store = Some(PathBuf::from(value()?)),
            "--entries" => entries = Some(value()?.parse::<usize>().context("--entries must be a number")?),
            "--measure" => measure = true,
            "--shape" => {
                shape = match value()?.as_str() {
                    "single" => Shape::Single,
                    "history" => Shape::History,
                    other => bail!("unknown shape {other:?}\n{USAGE}"),
                }
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let store = store.with_context(|| format!("--store is required\n{USAGE}"))?;
    match (entries, measure) {
        (Some(n), false) if n < 3 * HISTORY_ROUNDS => bail!("--entries must be at least {}", 3 * HISTORY_ROUNDS),
        (Some(n), false) => Ok(Args { store, entries: Some(n), shape }),
        (None, true) => Ok(Args { store, entries: None, shape }),
        _ => bail!("give exactly one of --entries and --measure\n{USAGE}"),
    }
}

/// Version of package `i` in round `round`: 1, plus one for every round that upgraded it.
fn version(i: usize, round: usize) -> usize {
    1 + (1..=round).filter(|&k| (i * 7 + k * 13) % CHANGED_PER_ROUND == 0).count()
}

/// Path and content of entry `i` of `big` in round `round`.
fn big_entry(i: usize, round: usize) -> (String, Vec<u8>, EntryKind) {
    match i {
        0 => ("dists/bookworm/Release".into(), format!("bench release {round}\n").into_bytes(), EntryKind::Release),
        1 => (
            "dists/bookworm/main/binary-amd64/Packages".into(),
            format!("bench packages {round}\n").into_bytes(),
            EntryKind::Index,
        ),
        _ => {
            let (source, v) = (i / PER_SOURCE, version(i, round));
            let letter = char::from(b'a' + (source % 26) as u8);
            let path = format!("pool/main/{letter}/src{source}/pkg{i}_{v}_amd64.deb");
            (path, format!("bench package {i} version {v}\n").into_bytes(), EntryKind::Package)
        }
    }
}

fn entry(path: String, bytes: &[u8], kind: EntryKind) -> NewEntry {
    NewEntry { path, sha256: Sha256::of(bytes), size: bytes.len() as u64, mtime: MTIME, kind, other_hashes: Vec::new() }
}

fn big_snapshot(pool: &Pool, n: usize, round: usize, created_at: i64) -> Result<NewSnapshot> {
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let (path, bytes, kind) = big_entry(i, round);
        let e = entry(path, &bytes, kind);
        if i < REAL_OBJECTS {
            pool.put_bytes(&bytes, &e.sha256)?;
        }
        entries.push(e);
    }
    Ok(NewSnapshot {
        mirror_id: "big".into(),
        created_at,
        release_sha256: Some(entries[0].sha256),
        release_last_modified: Some(created_at),
        entries,
    })
}

fn flip_snapshot(pool: &Pool, label: &str, created_at: i64) -> Result<NewSnapshot> {
    let bytes = format!("flip {label}\n").into_bytes();
    let e = entry("dists/bookworm/Release".into(), &bytes, EntryKind::Release);
    pool.put_bytes(&bytes, &e.sha256)?;
    Ok(NewSnapshot {
        mirror_id: "flip".into(),
        created_at,
        release_sha256: Some(e.sha256),
        release_last_modified: Some(created_at),
        entries: vec![e],
    })
}

/// VmRSS of this process in KiB (0 if /proc is unreadable).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Load and build the view as `pmirror-fs mount` does (no aliases), logging time and memory.
fn measure(store: &Path) -> Result<()> {
    let base = rss_kib();
    let t = Instant::now();
    let catalog = Catalog::open_readonly(store)?;
    let source = catalog.load_view(pmirror_fs::engine::unix_now(), RETENTION.grace_secs)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let files: usize = source.snapshots.iter().map(|s| s.entries.len()).sum();
    let rss_source = rss_kib();
    let t = Instant::now();
    let view = View::build(&source)?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_both = rss_kib();
    drop(source);
    let rss_view = rss_kib();
    // What the daemon would hold if it gave freed heap back to the kernel after a build.
    // SAFETY: malloc_trim only releases free glibc heap pages; no pointer is invalidated.
    unsafe { libc::malloc_trim(0) };
    let rss_trimmed = rss_kib();
    let stats = view.stats();
    tracing::info!(
        files,
        objects = stats.objects,
        nodes = stats.entries,
        dirs = stats.dirs,
        load_ms,
        build_ms,
        view_heap_bytes_per_file = stats.bytes as f64 / files.max(1) as f64,
        rss_base_kib = base,
        rss_with_source_kib = rss_source,
        rss_source_and_view_kib = rss_both,
        rss_view_only_kib = rss_view,
        rss_view_after_malloc_trim_kib = rss_trimmed,
        "view measured"
    );
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).with_ansi(false).init();
    let args = parse_args()?;
    let Some(entries) = args.entries else { return measure(&args.store) };
    let started = Instant::now();
    let pool = Pool::open(&args.store, false)?;
    let mut catalog = Catalog::open(&args.store)?;
    catalog.upsert_mirror("big", "mirror", "bench/big", "http://bench.invalid/bench/big")?;
    catalog.upsert_mirror("flip", "mirror", "bench/flip", "http://bench.invalid/bench/flip")?;
    let (flip_a, name_a) = catalog.record_snapshot(&flip_snapshot(&pool, "A", MTIME)?)?;
    let (_, name_b) = catalog.record_snapshot(&flip_snapshot(&pool, "B", MTIME + 1)?)?;
    let (rounds, per_round) = match args.shape {
        Shape::Single => (1, entries),
        Shape::History => (HISTORY_ROUNDS, entries.div_ceil(HISTORY_ROUNDS)),
    };
    // Rounds end now, an hour apart: the older snapshots are superseded inside the grace window.
    let now = pmirror_fs::engine::unix_now();
    let mut generation = 0;
    for round in 0..rounds {
        let at = now - ROUND_SECS * (rounds - 1 - round) as i64;
        let (id, _) = catalog.record_snapshot(&big_snapshot(&pool, per_round, round, at)?)?;
        let picks = if round == 0 { vec![id, flip_a] } else { vec![id] };
        // Published as `pmirror-fs sync` publishes: with the view image the mount daemon maps.
        let mut images = ViewPublisher::for_store(&args.store, false, Vec::new());
        let result = catalog.publish(&picks, at, RETENTION, |src| images.prepare(src));
        images.finish(result.is_ok());
        generation = result?.generation;
    }
    tracing::info!(
        store = %args.store.display(),
        entries = rounds * per_round,
        snapshots = rounds,
        generation,
        flip_published = %name_a,
        flip_other = %name_b,
        seconds = started.elapsed().as_secs_f64(),
        "bench catalog written"
    );
    Ok(())
}
