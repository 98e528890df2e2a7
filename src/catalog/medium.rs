//! Catalogs that travel: a medium's catalog holds chosen snapshots of a store's (`medium sync`,
//! [`Catalog::export_snapshots`]), and a store takes in the snapshots of a medium's catalog
//! (`medium import`, [`Catalog::import_snapshots`]), names, history and by-hash digests kept.
//! Both attach the other database to this connection and copy rows in one transaction.

use super::{Catalog, CatalogError};
use crate::digest::Sha256;
use crate::tree::source::ViewSource;
use crate::tree::BuildError;
use rusqlite::{params, OptionalExtension, Transaction};
use std::path::Path;

/// What [`Catalog::import_snapshots`] did.
#[derive(Debug, Default)]
pub struct Imported {
    /// New snapshots, as (local id, `mirror/name`).
    pub added: Vec<(i64, String)>,
    /// Snapshots the store already had (same name, same Release).
    pub present: Vec<String>,
    /// Per mirror, the local id of the snapshot the medium publishes.
    pub published: Vec<(String, i64)>,
}

impl Catalog {
    /// The distinct objects (sha256, size) the given snapshots use.
    pub fn objects_of(&self, snapshots: &[i64]) -> Result<Vec<(Sha256, u64)>, CatalogError> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        pick_table(&tx, snapshots).map_err(self.err())?;
        let mut stmt = tx
            .prepare(
                "SELECT o.sha256, o.size FROM objects o
                 WHERE o.id IN (SELECT object_id FROM entries WHERE snapshot_id IN (SELECT id FROM temp.pick))
                 ORDER BY o.sha256",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((super::lifecycle::sha_column(r, 0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        drop(stmt);
        tx.execute("DROP TABLE temp.pick", []).map_err(self.err())?;
        tx.finish().map_err(self.err())?;
        Ok(rows)
    }

    /// A catalog-wide value recorded in `meta` (a medium's `exported_at`), if set.
    pub fn meta(&self, key: &str) -> Result<Option<i64>, CatalogError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Fills this new, empty catalog with the `snapshots` of the catalog file `source` (ids,
    /// names, entries, by-hash digests and their mirrors' run history), publishes `published`
    /// (a snapshot id per mirror), records `exported_at = now` and a generation above both
    /// `floor` and the source's, builds the view through `prepare` — as every publish does —
    /// and leaves the file self-contained (rollback journal, no `-wal`).
    pub fn export_snapshots(
        &mut self,
        source: &Path,
        snapshots: &[i64],
        published: &[i64],
        floor: u64,
        now: i64,
        prepare: impl FnOnce(&mut ViewSource) -> Result<Option<u64>, BuildError>,
    ) -> Result<u64, CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        self.conn.execute("ATTACH DATABASE ?1 AS src", params![uri(source, "mode=ro")]).map_err(err)?;
        let generation = (|| {
            let tx = self.conn.transaction().map_err(err)?;
            copy_rows(&tx, snapshots, published, floor, now).map_err(|e| e.at(&path))?;
            let generation = super::snapshots::next_generation(&tx, now, 0, prepare).map_err(|e| e.at(&path))?;
            tx.commit().map_err(err)?;
            Ok(generation)
        })();
        self.conn.execute("DETACH DATABASE src", []).map_err(err)?;
        let generation = generation?;
        self.conn.execute_batch("PRAGMA journal_mode = DELETE;").map_err(err)?;
        Ok(generation)
    }

    /// Adds the snapshots of the medium catalog file `medium` this catalog does not have, in one
    /// transaction; a snapshot of the same mirror and name with another Release is refused
    /// (nothing is added). Publishes nothing: the caller publishes [`Imported::published`].
    pub fn import_snapshots(&mut self, medium: &Path) -> Result<Imported, CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        self.conn.execute("ATTACH DATABASE ?1 AS src", params![uri(medium, "immutable=1")]).map_err(err)?;
        let imported = (|| {
            let tx = self.conn.transaction().map_err(err)?;
            let imported = take_in(&tx, medium).map_err(|e| e.at(&path))?;
            tx.commit().map_err(err)?;
            Ok(imported)
        })();
        self.conn.execute("DETACH DATABASE src", []).map_err(err)?;
        imported
    }
}

/// A `file:` URI for ATTACH with the given query (`mode=ro`, `immutable=1`).
fn uri(path: &Path, query: &str) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match url::Url::from_file_path(&abs) {
        Ok(mut u) => {
            u.set_query(Some(query));
            u.to_string()
        }
        Err(()) => abs.display().to_string(),
    }
}

/// `temp.pick`: the snapshot ids a statement works on.
fn pick_table(tx: &Transaction<'_>, ids: &[i64]) -> rusqlite::Result<()> {
    tx.execute_batch("DROP TABLE IF EXISTS temp.pick; CREATE TEMP TABLE pick (id INTEGER PRIMARY KEY);")?;
    let mut ins = tx.prepare("INSERT OR IGNORE INTO temp.pick (id) VALUES (?1)")?;
    for id in ids {
        ins.execute(params![id])?;
    }
    Ok(())
}

const MIRROR_COLUMNS: &str = "id, kind, view, upstream, release_mtime, state, last_started, last_ended, last_success,
    last_error, last_bytes_fetched, last_objects_fetched";

/// [`MIRROR_COLUMNS`] as a medium records them: a run in progress in the store (`syncing`) is
/// carried as the outcome of the last one that ended, or the medium would show it forever.
const MIRROR_EXPORT: &str = "id, kind, view, upstream, release_mtime,
    CASE WHEN state <> 'syncing' THEN state WHEN last_error IS NOT NULL THEN 'failed'
         WHEN last_success IS NOT NULL THEN 'success' ELSE 'new' END,
    last_started, last_ended, last_success, last_error, last_bytes_fetched, last_objects_fetched";

fn copy_rows(
    tx: &Transaction<'_>,
    snapshots: &[i64],
    published: &[i64],
    floor: u64,
    now: i64,
) -> Result<(), ImportError> {
    pick_table(tx, snapshots)?;
    tx.execute_batch(&format!(
        "INSERT INTO main.objects (id, sha256, size, mtime, created_at)
           SELECT id, sha256, size, mtime, created_at FROM src.objects WHERE id IN
             (SELECT object_id FROM src.entries WHERE snapshot_id IN (SELECT id FROM temp.pick));
         INSERT INTO main.mirrors ({MIRROR_COLUMNS})
           SELECT {MIRROR_EXPORT} FROM src.mirrors WHERE id IN
             (SELECT mirror_id FROM src.snapshots WHERE id IN (SELECT id FROM temp.pick));
         INSERT INTO main.snapshots (id, mirror_id, name, created_at, superseded_at, release_sha256,
                                     release_last_modified, files, bytes, warnings)
           SELECT id, mirror_id, name, created_at, superseded_at, release_sha256, release_last_modified, files,
                  bytes, warnings FROM src.snapshots WHERE id IN (SELECT id FROM temp.pick);
         INSERT INTO main.entries (snapshot_id, path, object_id, kind)
           SELECT snapshot_id, path, object_id, kind FROM src.entries WHERE snapshot_id IN (SELECT id FROM temp.pick);
         INSERT INTO main.index_hashes (snapshot_id, path, algo, digest)
           SELECT snapshot_id, path, algo, digest FROM src.index_hashes
           WHERE snapshot_id IN (SELECT id FROM temp.pick);
         DROP TABLE temp.pick;"
    ))?;
    // The store is read without its lock: a snapshot retention pruned since the plan is missing.
    let copied: i64 = tx.query_row("SELECT COUNT(*) FROM main.snapshots", [], |r| r.get(0))?;
    let wanted = snapshots.iter().collect::<std::collections::BTreeSet<_>>().len() as i64;
    if copied != wanted {
        let message =
            format!("the store changed during the medium sync ({copied} of {wanted} snapshots left); run it again");
        return Err(ImportError::Refused(message));
    }
    for &snap in published {
        // The source's pin carries over with the snapshot it pins.
        tx.execute(
            "UPDATE main.mirrors SET published = ?1,
               pinned_at = (SELECT m.pinned_at FROM src.mirrors m WHERE m.id = main.mirrors.id AND m.published = ?1)
             WHERE id = (SELECT mirror_id FROM main.snapshots WHERE id = ?1)",
            params![snap],
        )?;
        tx.execute("UPDATE main.snapshots SET superseded_at = NULL WHERE id = ?1", params![snap])?;
    }
    let source_generation: i64 =
        tx.query_row("SELECT value FROM src.meta WHERE key = 'generation'", [], |r| r.get(0))?;
    tx.execute(
        "UPDATE main.meta SET value = MAX(?1, ?2) WHERE key = 'generation'",
        params![floor as i64, source_generation],
    )?;
    tx.execute(
        "INSERT INTO main.meta (key, value) VALUES ('exported_at', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
        params![now],
    )?;
    Ok(())
}

/// Why an import failed inside its transaction.
enum ImportError {
    Sql(rusqlite::Error),
    Refused(String),
}

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> Self {
        ImportError::Sql(e)
    }
}

impl ImportError {
    fn at(self, path: &Path) -> CatalogError {
        match self {
            ImportError::Sql(source) => CatalogError::Sql { path: path.to_owned(), source },
            ImportError::Refused(m) => CatalogError::Refused(m),
        }
    }
}

type MediumSnapshot = (i64, String, String, Option<Vec<u8>>, bool);

fn take_in(tx: &Transaction<'_>, medium: &Path) -> Result<Imported, ImportError> {
    take_mirrors(tx)?;
    let snaps: Vec<MediumSnapshot> = {
        let mut stmt = tx.prepare(
            "SELECT s.id, s.mirror_id, s.name, s.release_sha256, COALESCE(m.published = s.id, 0)
             FROM src.snapshots s JOIN src.mirrors m ON m.id = s.mirror_id ORDER BY s.mirror_id, s.name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    tx.execute(
        "INSERT INTO main.objects (sha256, size, mtime, created_at)
         SELECT sha256, size, mtime, created_at FROM src.objects WHERE true ON CONFLICT (sha256) DO NOTHING",
        [],
    )?;
    let mut out = Imported::default();
    for (id, mirror, name, release, published) in snaps {
        let local: Option<(i64, Option<Vec<u8>>)> = tx
            .query_row(
                "SELECT id, release_sha256 FROM main.snapshots WHERE mirror_id = ?1 AND name = ?2",
                params![mirror, name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let label = format!("{mirror}/{name}");
        let local_id = match local {
            Some((_, other)) if other != release => {
                return Err(ImportError::Refused(format!(
                    "{}: snapshot {label} differs from the store's snapshot of that name (another Release); \
                     nothing was imported",
                    medium.display()
                )))
            }
            Some((local_id, _)) => {
                out.present.push(label);
                local_id
            }
            None => {
                let local_id = copy_snapshot(tx, id)?;
                out.added.push((local_id, label));
                local_id
            }
        };
        if published {
            out.published.push((mirror, local_id));
        }
    }
    Ok(out)
}

/// Mirrors the store does not know yet come with their history; known ones take the medium's
/// run history when it is newer.
fn take_mirrors(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO main.mirrors ({MIRROR_COLUMNS}) SELECT {MIRROR_COLUMNS} FROM src.mirrors WHERE true
             ON CONFLICT (id) DO NOTHING"
        ),
        [],
    )?;
    tx.execute(
        "UPDATE main.mirrors SET (state, last_started, last_ended, last_success, last_error, last_bytes_fetched,
                                  last_objects_fetched) =
           (SELECT state, last_started, last_ended, last_success, last_error, last_bytes_fetched, last_objects_fetched
            FROM src.mirrors m WHERE m.id = main.mirrors.id)
         WHERE COALESCE((SELECT m.last_ended FROM src.mirrors m WHERE m.id = main.mirrors.id), 0)
               > COALESCE(main.mirrors.last_ended, 0)",
        [],
    )?;
    Ok(())
}

/// Copies one medium snapshot (entries mapped to this catalog's objects by sha256); returns
/// its new id.
fn copy_snapshot(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO main.snapshots (mirror_id, name, created_at, release_sha256, release_last_modified, files,
                                     bytes, warnings)
         SELECT mirror_id, name, created_at, release_sha256, release_last_modified, files, bytes, warnings
         FROM src.snapshots WHERE id = ?1",
        params![id],
    )?;
    let local = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO main.entries (snapshot_id, path, object_id, kind)
         SELECT ?2, e.path, mo.id, e.kind FROM src.entries e
         JOIN src.objects so ON so.id = e.object_id JOIN main.objects mo ON mo.sha256 = so.sha256
         WHERE e.snapshot_id = ?1",
        params![id, local],
    )?;
    tx.execute(
        "INSERT INTO main.index_hashes (snapshot_id, path, algo, digest)
         SELECT ?2, path, algo, digest FROM src.index_hashes WHERE snapshot_id = ?1",
        params![id, local],
    )?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::super::{NewSnapshot, Retention};
    use super::*;
    use crate::tree::source::{EntryKind, Role};

    fn snapshot(t: i64, release: &str, packages: &[&str]) -> NewSnapshot {
        crate::catalog::tests::snapshot("m", t, release, packages)
    }

    const KEEP: Retention = Retention { keep: 5, grace_secs: 100 };

    fn store() -> (tempfile::TempDir, Catalog, i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(dir.path()).unwrap();
        cat.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
        let (old, _) = cat.record_snapshot(&snapshot(1_000, "r1", &["a", "b"])).unwrap();
        cat.publish(&[old], 1_000, KEEP, |_| Ok(None)).unwrap();
        let (new, _) = cat.record_snapshot(&snapshot(2_000, "r2", &["b", "c"])).unwrap();
        cat.publish(&[new], 2_000, KEEP, |_| Ok(None)).unwrap();
        (dir, cat, old, new)
    }

    #[test]
    fn an_export_holds_only_the_chosen_snapshots_and_an_import_takes_them_back_whole() {
        let (dir, cat, old, _) = store();
        let medium = tempfile::tempdir().unwrap();
        let mut out = Catalog::open(medium.path()).unwrap();
        let mut seen = None;
        let generation = out
            .export_snapshots(cat.path(), &[old], &[old], 7, 3_000, |src| {
                seen = Some(src.snapshots.iter().map(|s| (s.name.clone(), s.role)).collect::<Vec<_>>());
                Ok(Some(42))
            })
            .unwrap();
        assert_eq!(generation, 8, "above the floor and the source's generation");
        assert_eq!(seen.unwrap(), vec![("1970-01-01T00:16:40Z".to_owned(), Role::Published)]);
        assert_eq!(out.objects_of(&[old]).unwrap().len(), 4, "InRelease, Packages, a, b — not c");
        assert_eq!(out.view_pointer().unwrap(), (8, Some(42)));
        assert_eq!(out.meta("exported_at").unwrap(), Some(3_000));
        drop(out);
        assert!(!medium.path().join("catalog.db-wal").exists(), "the exported catalog is one file");
        let file = medium.path().join("catalog.db");
        let read = Catalog::open_immutable(&file).unwrap();
        assert_eq!(read.published("m").unwrap().unwrap().name, "1970-01-01T00:16:40Z");

        // Into an empty store: names, entries and by-hash digests come along.
        let fresh = tempfile::tempdir().unwrap();
        let mut local = Catalog::open(fresh.path()).unwrap();
        let imported = local.import_snapshots(&file).unwrap();
        assert_eq!(imported.added.len(), 1);
        let (id, label) = &imported.added[0];
        assert_eq!(label, "m/1970-01-01T00:16:40Z");
        assert_eq!(imported.published, vec![("m".to_owned(), *id)]);
        local.publish(&[*id], 3_000, KEEP, |_| Ok(None)).unwrap();
        let view = local.load_view(3_000, 100).unwrap();
        let index = view.snapshots[0].entries.iter().find(|e| e.kind == EntryKind::Index).unwrap();
        assert!(index.by_hash.iter().any(|h| h.algo == "MD5Sum" && h.digest == "md5-idx-r1"), "{:?}", index.by_hash);
        // Into the store it came from: already there, nothing added.
        let mut back = Catalog::open(dir.path()).unwrap();
        let again = back.import_snapshots(&file).unwrap();
        assert!(again.added.is_empty() && again.present == vec!["m/1970-01-01T00:16:40Z".to_owned()]);
    }

    #[test]
    fn an_import_refuses_a_snapshot_whose_name_the_store_has_with_another_release() {
        let (_dir, cat, old, _) = store();
        let medium = tempfile::tempdir().unwrap();
        let mut out = Catalog::open(medium.path()).unwrap();
        out.export_snapshots(cat.path(), &[old], &[old], 0, 3_000, |_| Ok(None)).unwrap();
        drop(out);
        let other = tempfile::tempdir().unwrap();
        let mut local = Catalog::open(other.path()).unwrap();
        local.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
        local.record_snapshot(&snapshot(1_000, "another release", &["z"])).unwrap();
        let err = local.import_snapshots(&medium.path().join("catalog.db")).unwrap_err().to_string();
        assert!(err.contains("m/1970-01-01T00:16:40Z differs") && err.contains("nothing was imported"), "{err}");
        assert_eq!(local.snapshots(None).unwrap().len(), 1, "the refused import added nothing");
    }
}
