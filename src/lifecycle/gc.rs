//! Garbage collection of the pool: plan (a value `gc --dry-run` prints), then perform.
//!
//! The rule: an object stays while some snapshot row references it. Retention (inside every
//! publish) deletes the snapshots it does not keep and keeps every snapshot superseded within
//! the grace window, so "referenced by a snapshot row" is exactly "referenced by a retained
//! snapshot or by one inside the grace window" — the view (by-hash, grace package files,
//! `snapshots/`) shows nothing else. Everything else in `pool/sha256/` goes: objects whose
//! snapshots were pruned or removed, and files a crashed sync left in the pool before it recorded
//! them. Their `objects` rows are deleted too (a later sync that needs the content again downloads
//! it and records it afresh).
//!
//! On a shared store (`[store] shared`) serving nodes may still show an object in a view they
//! keep after a publish dropped it (a connection pinned to it, up to `[mount] pin-lifetime`), so
//! gc deletes an unreferenced object only once it has been unreferenced for `[store] gc-delay`:
//! the first gc that finds it notes the time (`gc_pending`), a later one deletes it. A new
//! reference in between clears the note. Pool files the catalog never recorded were never in a
//! view and go at once.
//!
//! Safety: planning and performing need the [`StoreLock`] — no sync, publish or remove can add a
//! reference in between. The mount daemon needs no lock: a file it has open keeps its inode when
//! gc unlinks it (reads through an open fd keep working); the view it serves references only
//! objects of snapshot rows, which gc keeps.

use super::LifecycleError;
use crate::catalog::lifecycle::ObjectRow;
use crate::catalog::Catalog;
use crate::digest::Sha256;
use crate::pool::{Pool, StoreLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A file of `pool/sha256/` as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFile {
    pub sha256: Sha256,
    pub size: u64,
}

/// What is in the pool directory.
#[derive(Debug, Clone, Default)]
pub struct PoolScan {
    pub files: Vec<PoolFile>,
    /// Paths under `pool/` that are not `sha256/<2 hex>/<64 hex>` files: never touched, reported.
    pub foreign: Vec<PathBuf>,
}

/// One object gc deletes: its pool file (when present) and its catalog row (when there is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doomed {
    pub sha256: Sha256,
    /// Size of the pool file; `None` when only the catalog row is left.
    pub file_bytes: Option<u64>,
    pub row: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    pub doomed: Vec<Doomed>,
    /// Objects some snapshot references, and their bytes (catalog sizes).
    pub kept_objects: u64,
    pub kept_bytes: u64,
    /// Referenced objects whose pool file is missing (`verify` reports them; `sync --verify` repairs).
    pub missing: u64,
    pub foreign: Vec<PathBuf>,
    /// Unreferenced objects a shared store keeps until they have been so for `gc-delay`.
    pub waiting: Vec<Doomed>,
    /// When the first of `waiting` may go (Unix seconds).
    pub due: Option<i64>,
}

impl GcPlan {
    /// Pool files the plan deletes.
    pub fn files(&self) -> u64 {
        self.doomed.iter().filter(|d| d.file_bytes.is_some()).count() as u64
    }

    /// Bytes the plan reclaims.
    pub fn bytes(&self) -> u64 {
        self.doomed.iter().filter_map(|d| d.file_bytes).sum()
    }

    /// Catalog rows the plan deletes.
    pub fn rows(&self) -> u64 {
        self.doomed.iter().filter(|d| d.row.is_some()).count() as u64
    }
}

/// What [`perform`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcOutcome {
    pub files: u64,
    pub bytes: u64,
    pub rows: u64,
}

/// Plans a gc from the catalog and the pool as they are now; with `delay` (a shared store's
/// `gc-delay` in seconds, and now), objects unreferenced for less than that wait.
pub fn plan(
    catalog: &Catalog,
    pool: &Pool,
    _lock: &StoreLock,
    delay: Option<(i64, i64)>,
) -> Result<GcPlan, LifecycleError> {
    let rows = catalog.object_liveness()?;
    let scan = scan_pool(pool)?;
    let plan = plan_from(rows, scan);
    Ok(match delay {
        Some((delay, now)) => hold_back(plan, &catalog.gc_pending()?, delay, now),
        None => plan,
    })
}

/// Moves the doomed objects with a catalog row that have not been unreferenced for `delay`
/// seconds by `now` (per `pending`: object id → when gc first found it so) to `waiting`.
pub fn hold_back(mut plan: GcPlan, pending: &HashMap<i64, i64>, delay: i64, now: i64) -> GcPlan {
    let (mut go, mut wait) = (Vec::new(), Vec::new());
    for d in plan.doomed {
        let since = d.row.map(|id| pending.get(&id).copied().unwrap_or(now));
        match since {
            Some(since) if since + delay > now => {
                plan.due = Some(plan.due.map_or(since + delay, |due: i64| due.min(since + delay)));
                wait.push(d);
            }
            _ => go.push(d),
        }
    }
    plan.doomed = go;
    plan.waiting = wait;
    plan
}

/// The pure part: which files and rows go, given every object row (with whether a snapshot
/// references it) and what the pool holds.
pub fn plan_from(rows: Vec<(ObjectRow, bool)>, scan: PoolScan) -> GcPlan {
    let mut plan = GcPlan { foreign: scan.foreign, ..GcPlan::default() };
    let mut by_sha: HashMap<Sha256, (ObjectRow, bool)> =
        rows.into_iter().map(|(r, live)| (r.sha256, (r, live))).collect();
    for f in &scan.files {
        match by_sha.remove(&f.sha256) {
            Some((row, true)) => {
                plan.kept_objects += 1;
                plan.kept_bytes += row.size;
            }
            Some((row, false)) => {
                plan.doomed.push(Doomed { sha256: f.sha256, file_bytes: Some(f.size), row: Some(row.id) })
            }
            None => plan.doomed.push(Doomed { sha256: f.sha256, file_bytes: Some(f.size), row: None }),
        }
    }
    // Rows whose pool file is absent.
    let mut rest: Vec<(ObjectRow, bool)> = by_sha.into_values().collect();
    rest.sort_by_key(|(r, _)| r.id);
    for (row, live) in rest {
        if live {
            plan.kept_objects += 1;
            plan.kept_bytes += row.size;
            plan.missing += 1;
        } else {
            plan.doomed.push(Doomed { sha256: row.sha256, file_bytes: None, row: Some(row.id) });
        }
    }
    plan
}

/// Unlinks the plan's pool files, then deletes its catalog rows (a row is only deleted when still
/// unreferenced). A crash in between leaves rows without files, which the next gc removes.
pub fn perform(
    plan: &GcPlan,
    catalog: &mut Catalog,
    pool: &Pool,
    _lock: &StoreLock,
) -> Result<GcOutcome, LifecycleError> {
    let mut out = GcOutcome::default();
    for d in &plan.doomed {
        if let Some(size) = d.file_bytes {
            if pool.remove(&d.sha256)? {
                out.files += 1;
                out.bytes += size;
            }
        }
    }
    let ids: Vec<i64> = plan.doomed.iter().filter_map(|d| d.row).collect();
    out.rows = catalog.delete_unreferenced_objects(&ids)?;
    let waiting: Vec<i64> = plan.waiting.iter().filter_map(|d| d.row).collect();
    catalog.mark_gc_pending(&waiting, crate::engine::unix_now())?;
    tracing::info!(files = out.files, bytes = out.bytes, rows = out.rows, "gc done");
    Ok(out)
}

/// Lists `pool/sha256/<2 hex>/<64 hex>`; anything else under `pool/` is foreign.
pub fn scan_pool(pool: &Pool) -> Result<PoolScan, LifecycleError> {
    let mut scan = PoolScan::default();
    let root = pool.objects_dir();
    for top in read_dir(&root)? {
        if top.file_name() != "sha256" || !top.path().is_dir() {
            scan.foreign.push(top.path());
            continue;
        }
        for fan in read_dir(&top.path())? {
            let name = fan.file_name();
            match name.to_str().filter(|n| is_fan_out(n) && fan.path().is_dir()) {
                Some(prefix) => scan_fan_out(&fan.path(), prefix, &mut scan)?,
                None => scan.foreign.push(fan.path()),
            }
        }
    }
    Ok(scan)
}

/// `ab`: two lower-case hex digits, as [`crate::pool::object_path`] names fan-out directories.
fn is_fan_out(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn scan_fan_out(dir: &Path, prefix: &str, scan: &mut PoolScan) -> Result<(), LifecycleError> {
    for e in read_dir(dir)? {
        let path = e.path();
        let meta = e.metadata().map_err(|source| LifecycleError::Io { path: path.clone(), source })?;
        let name = e.file_name();
        let digest = name.to_str().and_then(|n| n.parse::<Sha256>().ok()).filter(|d| d.to_hex().starts_with(prefix));
        match digest {
            Some(sha256) if meta.is_file() && name.to_str() == Some(sha256.to_hex().as_str()) => {
                scan.files.push(PoolFile { sha256, size: meta.len() })
            }
            _ => scan.foreign.push(path),
        }
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, LifecycleError> {
    let io = |source| LifecycleError::Io { path: dir.to_owned(), source };
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect::<Result<Vec<_>, _>>().map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, content: &str) -> ObjectRow {
        ObjectRow { id, sha256: Sha256::of(content.as_bytes()), size: content.len() as u64 }
    }

    fn file(content: &str) -> PoolFile {
        PoolFile { sha256: Sha256::of(content.as_bytes()), size: content.len() as u64 }
    }

    #[test]
    fn a_shared_store_waits_out_the_delay() {
        let rows = vec![(row(1, "old"), false), (row(2, "new"), false), (row(3, "live"), true)];
        let files = vec![file("old"), file("new"), file("live"), file("orphan")];
        let plan = plan_from(rows, PoolScan { files, foreign: vec![] });
        let pending = HashMap::from([(1, 1_000)]);
        let held = hold_back(plan, &pending, 600, 1_700);
        let go: Vec<_> = held.doomed.iter().map(|d| d.row).collect();
        assert_eq!(go, vec![Some(1), None], "unreferenced 700 s of 600, and the orphan the catalog never knew");
        let wait: Vec<_> = held.waiting.iter().map(|d| d.row).collect();
        assert_eq!(wait, vec![Some(2)], "first found unreferenced now");
        assert_eq!(held.due, Some(2_300));
    }

    #[test]
    fn plan_table() {
        // (rows with liveness, pool files) → (doomed (content, has file, row id), kept, missing)
        type Case = (Vec<(ObjectRow, bool)>, Vec<PoolFile>, Vec<(&'static str, bool, Option<i64>)>, u64, u64);
        let cases: Vec<Case> = vec![
            (vec![], vec![], vec![], 0, 0),
            (vec![(row(1, "live"), true)], vec![file("live")], vec![], 1, 0),
            (vec![(row(1, "dead"), false)], vec![file("dead")], vec![("dead", true, Some(1))], 0, 0),
            (vec![], vec![file("orphan")], vec![("orphan", true, None)], 0, 0),
            (vec![(row(2, "gone"), false)], vec![], vec![("gone", false, Some(2))], 0, 0),
            (vec![(row(3, "lost"), true)], vec![], vec![], 1, 1),
        ];
        for (rows, files, want, kept, missing) in cases {
            let plan = plan_from(rows.clone(), PoolScan { files, foreign: vec![] });
            let got: Vec<_> = plan.doomed.iter().map(|d| (d.sha256, d.file_bytes.is_some(), d.row)).collect();
            let want: Vec<_> = want.iter().map(|(c, f, r)| (Sha256::of(c.as_bytes()), *f, *r)).collect();
            assert_eq!(got, want, "{rows:?}");
            assert_eq!((plan.kept_objects, plan.missing), (kept, missing));
        }
    }

    #[test]
    fn totals_count_files_bytes_rows() {
        let plan = plan_from(
            vec![(row(1, "dead"), false), (row(2, "gone"), false)],
            PoolScan { files: vec![file("dead"), file("orphan!")], foreign: vec![] },
        );
        assert_eq!((plan.files(), plan.bytes(), plan.rows()), (2, 11, 2));
    }

    #[test]
    fn scan_finds_objects_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path(), false).unwrap();
        pool.put_bytes(b"abc", &Sha256::of(b"abc")).unwrap();
        let stray = dir.path().join("pool/sha256/zz");
        std::fs::create_dir_all(&stray).unwrap();
        std::fs::write(dir.path().join("pool/README"), b"x").unwrap();
        let misplaced = pool.object_path(&Sha256::of(b"abc")).parent().unwrap().join("not-a-digest");
        std::fs::write(&misplaced, b"x").unwrap();
        let scan = scan_pool(&pool).unwrap();
        assert_eq!(scan.files, [PoolFile { sha256: Sha256::of(b"abc"), size: 3 }]);
        let mut foreign = scan.foreign.clone();
        foreign.sort();
        assert_eq!(foreign, [dir.path().join("pool/README"), misplaced, stray]);
    }
}
