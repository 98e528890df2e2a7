//! The queries of the snapshot lifecycle (`gc`, `verify`, `snapshot list`, `snapshot diff`):
//! which objects some snapshot row references, who uses an object, per-snapshot package counts
//! and unique sizes, the files of any snapshot, and deleting object rows nothing references.
//!
//! "Referenced" means: some row of `entries` names the object. Retention (inside every publish)
//! deletes the snapshots it does not keep and keeps those superseded within the grace window, so
//! the snapshot rows that exist are exactly the retained ones plus the ones inside the grace
//! window; an object no entry names is reachable neither through the view nor through a rollback.

use super::rows::{EntryKindCode, PublishedFile};
use super::{Catalog, CatalogError};
use crate::digest::Sha256;
use crate::tree::source::EntryKind;
use rusqlite::{params, Row};
use std::collections::{BTreeMap, HashMap};

/// One row of `objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub id: i64,
    pub sha256: Sha256,
    pub size: u64,
}

/// One place an object is used: a path of a snapshot of a mirror/tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUse {
    pub sha256: Sha256,
    pub mirror_id: String,
    pub snapshot: String,
    pub path: String,
    pub published: bool,
}

/// Per-snapshot figures `snapshot list` shows beside the file count and size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Entries of kind package (`.deb` files).
    pub packages: u64,
    /// Bytes of the objects no other snapshot references (what removing it alone would free).
    pub unique_bytes: u64,
}

pub(super) fn sha_column(r: &Row<'_>, i: usize) -> rusqlite::Result<Sha256> {
    let bytes: Vec<u8> = r.get(i)?;
    <[u8; 32]>::try_from(bytes)
        .map(Sha256)
        .map_err(|_| rusqlite::Error::InvalidColumnType(i, "sha256".into(), rusqlite::types::Type::Blob))
}

fn object_row(r: &Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow { id: r.get(0)?, sha256: sha_column(r, 1)?, size: r.get::<_, i64>(2)? as u64 })
}

impl Catalog {
    /// Every object row with whether some snapshot references it (one scan, one index probe
    /// per object on `entries_object`).
    pub fn object_liveness(&self) -> Result<Vec<(ObjectRow, bool)>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.id, o.sha256, o.size, EXISTS (SELECT 1 FROM entries e WHERE e.object_id = o.id)
                 FROM objects o ORDER BY o.id",
            )
            .map_err(self.err())?;
        let rows = stmt.query_map([], |r| Ok((object_row(r)?, r.get::<_, bool>(3)?))).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Objects referenced by the snapshots of the given mirrors/trees (all when empty), each once.
    pub fn referenced_objects(&self, mirrors: &[String]) -> Result<Vec<ObjectRow>, CatalogError> {
        if mirrors.is_empty() {
            let mut stmt = self
                .conn
                .prepare("SELECT id, sha256, size FROM objects WHERE id IN (SELECT object_id FROM entries)")
                .map_err(self.err())?;
            let rows = stmt.query_map([], object_row).map_err(self.err())?;
            return rows.collect::<Result<_, _>>().map_err(self.err());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, sha256, size FROM objects WHERE id IN
                 (SELECT e.object_id FROM entries e JOIN snapshots s ON s.id = e.snapshot_id WHERE s.mirror_id = ?1)",
            )
            .map_err(self.err())?;
        let mut out = BTreeMap::new();
        for mirror in mirrors {
            for row in stmt.query_map(params![mirror], object_row).map_err(self.err())? {
                let row = row.map_err(self.err())?;
                out.insert(row.id, row);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Every mirror/snapshot/path that uses one of `digests`, ordered by digest, mirror, snapshot.
    pub fn object_users(&self, digests: &[Sha256]) -> Result<Vec<ObjectUse>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT s.mirror_id, s.name, e.path, COALESCE(m.published = s.id, 0)
                 FROM objects o JOIN entries e ON e.object_id = o.id
                 JOIN snapshots s ON s.id = e.snapshot_id JOIN mirrors m ON m.id = s.mirror_id
                 WHERE o.sha256 = ?1 ORDER BY s.mirror_id, s.name, e.path",
            )
            .map_err(self.err())?;
        let mut out = Vec::new();
        for sha in digests {
            let rows = stmt
                .query_map(params![&sha.0[..]], |r| {
                    Ok(ObjectUse {
                        sha256: *sha,
                        mirror_id: r.get(0)?,
                        snapshot: r.get(1)?,
                        path: r.get(2)?,
                        published: r.get(3)?,
                    })
                })
                .map_err(self.err())?;
            for row in rows {
                out.push(row.map_err(self.err())?);
            }
        }
        Ok(out)
    }

    /// Package count and unique bytes of every snapshot (of one mirror, or all), by snapshot id.
    pub fn snapshot_stats(&self, mirror: Option<&str>) -> Result<HashMap<i64, SnapshotStats>, CatalogError> {
        let mut out: HashMap<i64, SnapshotStats> = HashMap::new();
        let mut packages = self
            .conn
            .prepare(
                "SELECT e.snapshot_id, COUNT(*) FROM entries e JOIN snapshots s ON s.id = e.snapshot_id
                 WHERE e.kind = ?2 AND (?1 IS NULL OR s.mirror_id = ?1) GROUP BY e.snapshot_id",
            )
            .map_err(self.err())?;
        let package_code = EntryKindCode::encode(EntryKind::Package);
        let rows = packages.query_map(params![mirror, package_code], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)));
        for row in rows.map_err(self.err())? {
            let (id, n): (i64, i64) = row.map_err(self.err())?;
            out.entry(id).or_default().packages = n as u64;
        }
        // An object is unique to a snapshot when exactly one snapshot references it (at any
        // number of paths). The covering index entries_object(object_id, snapshot_id, path)
        // serves the grouping without sorting.
        let mut unique = self
            .conn
            .prepare(
                "WITH refs AS (SELECT DISTINCT object_id, snapshot_id FROM entries),
                      solo AS (SELECT object_id, MIN(snapshot_id) AS snapshot_id FROM refs
                               GROUP BY object_id HAVING COUNT(*) = 1)
                 SELECT solo.snapshot_id, SUM(o.size) FROM solo JOIN objects o ON o.id = solo.object_id
                 JOIN snapshots s ON s.id = solo.snapshot_id WHERE ?1 IS NULL OR s.mirror_id = ?1
                 GROUP BY solo.snapshot_id",
            )
            .map_err(self.err())?;
        let rows = unique.query_map(params![mirror], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)));
        for row in rows.map_err(self.err())? {
            let (id, bytes): (i64, i64) = row.map_err(self.err())?;
            out.entry(id).or_default().unique_bytes = bytes as u64;
        }
        Ok(out)
    }

    /// Every file of one snapshot (published or not), ordered by path.
    pub fn snapshot_files(&self, snapshot_id: i64) -> Result<Vec<PublishedFile>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.path, o.sha256, o.size, o.mtime, e.kind FROM entries e JOIN objects o ON o.id = e.object_id
                 WHERE e.snapshot_id = ?1 ORDER BY e.path",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![snapshot_id], |r| {
                Ok(PublishedFile {
                    path: r.get(0)?,
                    sha256: sha_column(r, 1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    mtime: r.get(3)?,
                    kind: EntryKindCode::decode(r.get(4)?),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// When gc first found each object it lists unreferenced (`gc_pending`), by object id.
    pub fn gc_pending(&self) -> Result<HashMap<i64, i64>, CatalogError> {
        let mut stmt = self.conn.prepare("SELECT object_id, since FROM gc_pending").map_err(self.err())?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Notes that gc found the objects `ids` unreferenced at `now` (those already noted keep
    /// their first time), in one transaction.
    pub fn mark_gc_pending(&mut self, ids: &[i64], now: i64) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR IGNORE INTO gc_pending (object_id, since) SELECT id, ?2 FROM objects WHERE id = ?1
                     AND NOT EXISTS (SELECT 1 FROM entries WHERE object_id = ?1)",
                )
                .map_err(err)?;
            for id in ids {
                stmt.execute(params![id, now]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Deletes the object rows among `ids` that no entry references (a row that became referenced
    /// since it was planned is kept), in one transaction; returns how many were deleted.
    pub fn delete_unreferenced_objects(&mut self, ids: &[i64]) -> Result<u64, CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let mut deleted = 0;
        {
            let mut stmt = tx
                .prepare(
                    "DELETE FROM objects WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM entries WHERE object_id = ?1)",
                )
                .map_err(err)?;
            for id in ids {
                deleted += stmt.execute(params![id]).map_err(err)? as u64;
            }
        }
        tx.commit().map_err(err)?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{NewEntry, NewSnapshot, Retention};

    fn entry(path: &str, content: &str, kind: EntryKind) -> NewEntry {
        let sha256 = Sha256::of(content.as_bytes());
        NewEntry { path: path.into(), sha256, size: content.len() as u64, mtime: 1, kind, other_hashes: vec![] }
    }

    fn record(cat: &mut Catalog, t: i64, files: &[(&str, &str, EntryKind)]) -> i64 {
        let entries = files.iter().map(|(p, c, k)| entry(p, c, *k)).collect();
        let snap = NewSnapshot {
            mirror_id: "m".into(),
            created_at: t,
            release_sha256: None,
            release_last_modified: None,
            entries,
        };
        cat.record_snapshot(&snap).unwrap().0
    }

    const KEEP1: Retention = Retention { keep: 1, grace_secs: 0 };

    fn setup() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        cat.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
        (dir, cat)
    }

    #[test]
    fn stats_count_packages_and_unique_bytes() {
        let (_d, mut cat) = setup();
        let pkg = EntryKind::Package;
        // "shared" is in both; "a1" twice in snapshot a (counts once); "bb" only in b.
        let a = record(&mut cat, 10, &[("x.deb", "shared", pkg), ("y.deb", "a1", pkg), ("z", "a1", EntryKind::Index)]);
        let b = record(&mut cat, 20, &[("x.deb", "shared", pkg), ("w.deb", "bb", pkg)]);
        let stats = cat.snapshot_stats(Some("m")).unwrap();
        assert_eq!(stats[&a], SnapshotStats { packages: 2, unique_bytes: 2 });
        assert_eq!(stats[&b], SnapshotStats { packages: 2, unique_bytes: 2 });
        assert!(cat.snapshot_stats(Some("other")).unwrap().is_empty());
    }

    #[test]
    fn liveness_users_and_row_deletion() {
        let (_d, mut cat) = setup();
        let pkg = EntryKind::Package;
        let a = record(&mut cat, 10, &[("x.deb", "old", pkg), ("y.deb", "both", pkg)]);
        let b = record(&mut cat, 20, &[("y.deb", "both", pkg), ("again/y.deb", "both", pkg)]);
        cat.publish(&[a], 30, KEEP1, |_| Ok(None)).unwrap();
        cat.publish(&[b], 40, KEEP1, |_| Ok(None)).unwrap();
        // Superseded at 40, a is still inside a zero grace window at 40; at the next publish
        // (keep=1, no grace) it is pruned and "old" is no longer referenced.
        cat.publish(&[b], 50, KEEP1, |_| Ok(None)).unwrap();
        let live: Vec<(Sha256, bool)> =
            cat.object_liveness().unwrap().into_iter().map(|(o, l)| (o.sha256, l)).collect();
        assert_eq!(live, [(Sha256::of(b"old"), false), (Sha256::of(b"both"), true)]);
        let users = cat.object_users(&[Sha256::of(b"both"), Sha256::of(b"old")]).unwrap();
        let paths: Vec<(&str, bool)> = users.iter().map(|u| (u.path.as_str(), u.published)).collect();
        assert_eq!(paths, [("again/y.deb", true), ("y.deb", true)]);
        assert_eq!(cat.referenced_objects(&[]).unwrap().len(), 1);
        assert_eq!(cat.referenced_objects(&["m".into()]).unwrap().len(), 1);
        assert!(cat.referenced_objects(&["nope".into()]).unwrap().is_empty());
        let ids: Vec<i64> = cat.object_liveness().unwrap().iter().map(|(o, _)| o.id).collect();
        // Only the unreferenced row goes, even when asked to delete both.
        assert_eq!(cat.delete_unreferenced_objects(&ids).unwrap(), 1);
        assert_eq!(cat.object_liveness().unwrap().len(), 1);
        assert_eq!(cat.snapshot_files(b).unwrap().len(), 2);
    }
}
