//! Snapshot rows: recording a finished snapshot, publishing a set of them in one transaction
//! (respecting or setting pins, `pin.rs`), retention, and the queries the CLI lists.

use super::pin::{self, PinChange, PinRule};
use super::rows::{
    snapshot_name, snapshot_row, EntryKindCode, NewEntry, NewSnapshot, PublishedFile, Retention, SnapshotRow,
    SNAPSHOT_COLUMNS,
};
use super::{Catalog, CatalogError};
use crate::digest::Sha256;
use crate::tree::source::ViewSource;
use crate::tree::BuildError;
use rusqlite::{params, OptionalExtension, Transaction};

#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    pub generation: u64,
    /// Snapshots removed by retention, as `mirror/name`.
    pub pruned: Vec<String>,
    /// Mirrors whose pick stayed recorded but unpublished: they are pinned (sync publishes).
    pub held: Vec<String>,
    /// What [`Catalog::publish_chosen`] did to its mirror's pin.
    pub pin: PinChange,
}

impl Catalog {
    /// Snapshots of one mirror (or all), oldest first.
    pub fn snapshots(&self, mirror: Option<&str>) -> Result<Vec<SnapshotRow>, CatalogError> {
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id
             WHERE ?1 IS NULL OR s.mirror_id = ?1 ORDER BY s.mirror_id, s.name"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.err())?;
        let rows = stmt.query_map(params![mirror], snapshot_row).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    pub fn snapshot_by_id(&self, id: i64) -> Result<Option<SnapshotRow>, CatalogError> {
        let sql =
            format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id WHERE s.id = ?1");
        self.conn.query_row(&sql, params![id], snapshot_row).optional().map_err(self.err())
    }

    pub fn published(&self, mirror: &str) -> Result<Option<SnapshotRow>, CatalogError> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT published FROM mirrors WHERE id = ?1", params![mirror], |r| r.get(0))
            .optional()
            .map_err(self.err())?
            .flatten();
        match id {
            Some(id) => self.snapshot_by_id(id),
            None => Ok(None),
        }
    }

    /// Files of a mirror's published snapshot (trees reuse unchanged files from it).
    pub fn published_files(&self, mirror: &str) -> Result<Vec<PublishedFile>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.path, o.sha256, o.size, o.mtime, e.kind FROM mirrors m
                 JOIN entries e ON e.snapshot_id = m.published JOIN objects o ON o.id = e.object_id
                 WHERE m.id = ?1 ORDER BY e.path",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![mirror], |r| {
                let sha: Vec<u8> = r.get(1)?;
                Ok(PublishedFile {
                    path: r.get(0)?,
                    sha256: Sha256(<[u8; 32]>::try_from(sha).unwrap_or([0; 32])),
                    size: r.get::<_, i64>(2)? as u64,
                    mtime: r.get(3)?,
                    kind: EntryKindCode::decode(r.get(4)?),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Size and mtime of an object the catalog knows, by digest.
    pub fn object(&self, sha: &Sha256) -> Result<Option<(u64, i64)>, CatalogError> {
        self.conn
            .prepare_cached("SELECT size, mtime FROM objects WHERE sha256 = ?1")
            .map_err(self.err())?
            .query_row(params![&sha.0[..]], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .optional()
            .map_err(self.err())
    }

    /// Records a complete snapshot (objects, entries, by-hash names) in one transaction; it is not
    /// published yet. Returns its id and name.
    pub fn record_snapshot(&mut self, snap: &NewSnapshot) -> Result<(i64, String), CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let name = unique_name(&tx, &snap.mirror_id, snap.created_at).map_err(err)?;
        tx.execute(
            "INSERT INTO snapshots (mirror_id, name, created_at, release_sha256, release_last_modified)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                snap.mirror_id,
                name,
                snap.created_at,
                snap.release_sha256.map(|s| s.0.to_vec()),
                snap.release_last_modified
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        insert_entries(&tx, id, &snap.entries, snap.created_at).map_err(err)?;
        let bytes: u64 = snap.entries.iter().map(|e| e.size).sum();
        tx.execute(
            "UPDATE snapshots SET files = ?2, bytes = ?3 WHERE id = ?1",
            params![id, snap.entries.len() as i64, bytes as i64],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok((id, name))
    }

    /// Stores the warnings of the run that recorded snapshot `id` (one line each).
    pub fn set_snapshot_warnings(&self, id: i64, warnings: &[String]) -> Result<(), CatalogError> {
        let text: Vec<String> = warnings.iter().map(|w| w.replace(['\n', '\r'], " ")).collect();
        self.conn
            .execute("UPDATE snapshots SET warnings = ?2 WHERE id = ?1", params![id, text.join("\n")])
            .map_err(self.err())?;
        Ok(())
    }

    /// Publishes the given snapshots (a sync's) in one transaction: moves the published
    /// pointers, keeps Release mtimes monotonic, applies retention, bumps the generation. A pick
    /// of a pinned mirror is not published (`held`); it stays recorded, and the new generation
    /// shows it under `snapshots/`. `prepare` sees the view the transaction would publish and
    /// can refuse it (path conflicts), and then nothing changes; otherwise it returns the nonce
    /// of the view image it wrote for the new generation (or `None`), which commits with it.
    pub fn publish(
        &mut self,
        picks: &[i64],
        now: i64,
        retention: Retention,
        prepare: impl FnOnce(&mut ViewSource) -> Result<Option<u64>, BuildError>,
    ) -> Result<PublishOutcome, CatalogError> {
        self.publish_with(picks, now, retention, PinRule::Respect, prepare)
    }

    /// Publishes the snapshot the operator chose (`snapshot publish`), pinned or not, as
    /// [`Catalog::publish`] does, and pins its mirror to it unless it is the mirror's newest
    /// snapshot — publishing the newest clears a pin (`pin`).
    pub fn publish_chosen(
        &mut self,
        snap: i64,
        now: i64,
        retention: Retention,
        prepare: impl FnOnce(&mut ViewSource) -> Result<Option<u64>, BuildError>,
    ) -> Result<PublishOutcome, CatalogError> {
        self.publish_with(&[snap], now, retention, PinRule::Choose, prepare)
    }

    fn publish_with(
        &mut self,
        picks: &[i64],
        now: i64,
        retention: Retention,
        rule: PinRule,
        prepare: impl FnOnce(&mut ViewSource) -> Result<Option<u64>, BuildError>,
    ) -> Result<PublishOutcome, CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let mut outcome = PublishOutcome::default();
        for &snap in picks {
            match rule {
                PinRule::Respect => match pin::holding(&tx, snap).map_err(err)? {
                    Some(mirror) => outcome.held.push(mirror),
                    None => move_pointer(&tx, snap, now).map_err(err)?,
                },
                PinRule::Choose => {
                    move_pointer(&tx, snap, now).map_err(err)?;
                    outcome.pin = pin::choose(&tx, snap, now).map_err(err)?;
                }
            }
        }
        outcome.pruned = super::retention::apply(&tx, now, retention).map_err(err)?;
        outcome.generation = next_generation(&tx, now, retention.grace_secs, prepare).map_err(|e| e.at(&path))?;
        tx.commit().map_err(err)?;
        Ok(outcome)
    }

    /// Deletes a snapshot that is not published; `prepare` as in [`Catalog::publish`] (the
    /// snapshot leaves the view's `snapshots/` tree).
    pub fn remove_snapshot(
        &mut self,
        mirror: &str,
        name: &str,
        now: i64,
        grace_secs: i64,
        prepare: impl FnOnce(&mut ViewSource) -> Result<Option<u64>, BuildError>,
    ) -> Result<u64, CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let row: Option<(i64, bool)> = tx
            .query_row(
                "SELECT s.id, COALESCE(m.published = s.id, 0) FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id
                 WHERE s.mirror_id = ?1 AND s.name = ?2",
                params![mirror, name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        match row {
            None => Err(CatalogError::Refused(format!("{mirror}: no snapshot named {name}"))),
            Some((_, true)) => {
                Err(CatalogError::Refused(format!("{mirror}: snapshot {name} is published; publish another one first")))
            }
            Some((id, false)) => {
                super::retention::delete_snapshot(&tx, id).map_err(err)?;
                let generation = next_generation(&tx, now, grace_secs, prepare).map_err(|e| e.at(&path))?;
                tx.commit().map_err(err)?;
                Ok(generation)
            }
        }
    }

    /// Deletes a mirror or tree and every snapshot of it (published or not) from the catalog, for
    /// an entry removed from the config; `prepare` as in [`Catalog::publish`] (its view and
    /// `snapshots/` leave the published view). Its objects stay until `gc`. Returns the number of
    /// snapshots deleted and the new generation.
    pub fn forget_mirror(
        &mut self,
        mirror: &str,
        now: i64,
        grace_secs: i64,
        prepare: impl FnOnce(&mut ViewSource) -> Result<Option<u64>, BuildError>,
    ) -> Result<(usize, u64), CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let known: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM mirrors WHERE id = ?1)", params![mirror], |r| r.get(0))
            .map_err(err)?;
        if !known {
            return Err(CatalogError::Refused(format!("{mirror}: not in the catalog")));
        }
        let ids: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT id FROM snapshots WHERE mirror_id = ?1").map_err(err)?;
            let rows = stmt.query_map(params![mirror], |r| r.get(0)).map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        // The published pointer references a snapshot (foreign keys are on): clear it first.
        tx.execute("UPDATE mirrors SET published = NULL WHERE id = ?1", params![mirror]).map_err(err)?;
        for &id in &ids {
            super::retention::delete_snapshot(&tx, id).map_err(err)?;
        }
        tx.execute("DELETE FROM mirrors WHERE id = ?1", params![mirror]).map_err(err)?;
        let generation = next_generation(&tx, now, grace_secs, prepare).map_err(|e| e.at(&path))?;
        tx.commit().map_err(err)?;
        Ok((ids.len(), generation))
    }

    pub fn snapshot_id(&self, mirror: &str, name: &str) -> Result<Option<i64>, CatalogError> {
        self.conn
            .query_row("SELECT id FROM snapshots WHERE mirror_id = ?1 AND name = ?2", params![mirror, name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())
    }
}

/// Why [`next_generation`] failed.
pub(super) enum NextError {
    Sql(rusqlite::Error),
    View(BuildError),
}

impl From<rusqlite::Error> for NextError {
    fn from(e: rusqlite::Error) -> Self {
        NextError::Sql(e)
    }
}

impl NextError {
    pub(super) fn at(self, path: &std::path::Path) -> CatalogError {
        match self {
            NextError::Sql(source) => CatalogError::Sql { path: path.to_owned(), source },
            NextError::View(e) => CatalogError::View(e),
        }
    }
}

/// Bumps the generation inside `tx`, lets `prepare` check the view it now shows (and write its
/// image), and records the image nonce (or its absence) with the generation.
pub(super) fn next_generation(
    tx: &Transaction<'_>,
    now: i64,
    grace_secs: i64,
    prepare: impl FnOnce(&mut ViewSource) -> Result<Option<u64>, BuildError>,
) -> Result<u64, NextError> {
    tx.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'", [])?;
    let mut source = super::view::load(tx, now, grace_secs)?;
    let image = prepare(&mut source).map_err(NextError::View)?;
    match image {
        // Stored as the same 64 bits in SQLite's signed integer.
        Some(nonce) => tx.execute(
            "INSERT INTO meta (key, value) VALUES ('view_image', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
            params![nonce as i64],
        )?,
        None => tx.execute("DELETE FROM meta WHERE key = 'view_image'", [])?,
    };
    Ok(source.generation)
}

fn unique_name(tx: &Transaction<'_>, mirror: &str, created_at: i64) -> rusqlite::Result<String> {
    // Two syncs within one second would collide on the timestamp name; take the next free second.
    let mut t = created_at;
    loop {
        let name = snapshot_name(t);
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM snapshots WHERE mirror_id = ?1 AND name = ?2)",
            params![mirror, name],
            |r| r.get(0),
        )?;
        if !taken {
            return Ok(name);
        }
        t += 1;
    }
}

fn insert_entries(tx: &Transaction<'_>, snap: i64, entries: &[NewEntry], now: i64) -> rusqlite::Result<()> {
    let mut obj = tx.prepare_cached(
        "INSERT INTO objects (sha256, size, mtime, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (sha256) DO NOTHING",
    )?;
    let mut obj_id = tx.prepare_cached("SELECT id FROM objects WHERE sha256 = ?1")?;
    let mut ent =
        tx.prepare_cached("INSERT INTO entries (snapshot_id, path, object_id, kind) VALUES (?1, ?2, ?3, ?4)")?;
    let mut hash =
        tx.prepare_cached("INSERT INTO index_hashes (snapshot_id, path, algo, digest) VALUES (?1, ?2, ?3, ?4)")?;
    for e in entries {
        obj.execute(params![&e.sha256.0[..], e.size as i64, e.mtime, now])?;
        let id: i64 = obj_id.query_row(params![&e.sha256.0[..]], |r| r.get(0))?;
        ent.execute(params![snap, e.path, id, EntryKindCode::encode(e.kind)])?;
        for (algo, digest) in &e.other_hashes {
            hash.execute(params![snap, e.path, algo, digest])?;
        }
    }
    Ok(())
}

/// Points the snapshot's mirror at it; the previous one becomes superseded now; the Release
/// mtime the view shows becomes max(previous, this snapshot's Release objects).
fn move_pointer(tx: &Transaction<'_>, snap: i64, now: i64) -> rusqlite::Result<()> {
    let (mirror, previous): (String, Option<i64>) = tx.query_row(
        "SELECT m.id, m.published FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id WHERE s.id = ?1",
        params![snap],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if previous == Some(snap) {
        return Ok(());
    }
    if let Some(prev) = previous {
        tx.execute("UPDATE snapshots SET superseded_at = ?2 WHERE id = ?1", params![prev, now])?;
    }
    tx.execute("UPDATE snapshots SET superseded_at = NULL WHERE id = ?1", params![snap])?;
    let release_mtime: Option<i64> = tx.query_row(
        "SELECT MAX(o.mtime) FROM entries e JOIN objects o ON o.id = e.object_id WHERE e.snapshot_id = ?1 AND e.kind = 0",
        params![snap],
        |r| r.get(0),
    )?;
    let served: Option<i64> =
        tx.query_row("SELECT release_mtime FROM mirrors WHERE id = ?1", params![mirror], |r| r.get(0))?;
    let shown = next_release_mtime(served, release_mtime);
    tx.execute("UPDATE mirrors SET published = ?2, release_mtime = ?3 WHERE id = ?1", params![mirror, snap, shown])?;
    Ok(())
}

/// The mtime the view gives Release files after a switch: upstream's own when it is newer than
/// anything served before, else one second past the newest served (a rollback must still look
/// modified to a client's If-Modified-Since, or apt would keep the newer index).
pub fn next_release_mtime(served: Option<i64>, snapshot: Option<i64>) -> Option<i64> {
    match (served, snapshot) {
        (Some(prev), Some(s)) if s > prev => Some(s),
        (Some(prev), _) => Some(prev + 1),
        (None, s) => s,
    }
}
