//! Pins: a mirror an operator rolled back stays on the snapshot they chose. `snapshot publish` of
//! a snapshot that is not the mirror's newest pins the mirror to it (`mirrors.pinned_at`; the
//! snapshot it is pinned to is always the published one). A sync's publish then leaves a pinned
//! mirror's pointer where it is: the sync still records its new snapshot, for `snapshot diff` and
//! a later `snapshot publish`, and retention counts it like any other. Publishing the mirror's
//! newest snapshot, or `snapshot unpin`, clears the pin.

use super::rows::SnapshotRow;
use super::{Catalog, CatalogError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// A mirror's pin, as `status` and `sync` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The snapshot the mirror is pinned to (its published one).
    pub snapshot: String,
    /// When it was pinned (Unix seconds).
    pub since: i64,
}

/// What a publish of the operator's choice did to its mirror's pin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PinChange {
    /// Not pinned before, not pinned now (the newest snapshot was published); also every sync.
    #[default]
    Unchanged,
    /// Pinned to the published snapshot: it is not the mirror's newest.
    Pinned,
    /// The pin was cleared: the mirror's newest snapshot was published.
    Unpinned,
}

/// How a publish treats pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PinRule {
    /// A sync: a pinned mirror keeps its published snapshot; its pick stays recorded only.
    Respect,
    /// The operator's choice (`snapshot publish`): published in any case; pins the mirror unless
    /// it is the mirror's newest snapshot, which unpins it.
    Choose,
}

/// The mirror of snapshot `snap` when that mirror is pinned (a sync's pick of it is held).
pub(super) fn holding(tx: &Transaction<'_>, snap: i64) -> rusqlite::Result<Option<String>> {
    tx.query_row(
        "SELECT m.id FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id
         WHERE s.id = ?1 AND m.pinned_at IS NOT NULL",
        params![snap],
        |r| r.get(0),
    )
    .optional()
}

/// After the operator published `snap`: pins its mirror (as of `now`) unless `snap` is the
/// mirror's newest snapshot, which clears the pin.
pub(super) fn choose(tx: &Transaction<'_>, snap: i64, now: i64) -> rusqlite::Result<PinChange> {
    let (mirror, newest, was_pinned): (String, i64, bool) = tx.query_row(
        "SELECT m.id, (SELECT n.id FROM snapshots n WHERE n.mirror_id = m.id ORDER BY n.name DESC LIMIT 1),
                m.pinned_at IS NOT NULL
         FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id WHERE s.id = ?1",
        params![snap],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (pinned_at, change) = match (newest == snap, was_pinned) {
        (false, _) => (Some(now), PinChange::Pinned),
        (true, true) => (None, PinChange::Unpinned),
        (true, false) => (None, PinChange::Unchanged),
    };
    tx.execute("UPDATE mirrors SET pinned_at = ?2 WHERE id = ?1", params![mirror, pinned_at])?;
    Ok(change)
}

fn read_pin(conn: &Connection, mirror: &str) -> rusqlite::Result<Option<Pin>> {
    conn.query_row(
        "SELECT s.name, m.pinned_at FROM mirrors m JOIN snapshots s ON s.id = m.published
         WHERE m.id = ?1 AND m.pinned_at IS NOT NULL",
        params![mirror],
        |r| Ok(Pin { snapshot: r.get(0)?, since: r.get(1)? }),
    )
    .optional()
}

impl Catalog {
    /// The mirror's pin, if it has one.
    pub fn pin(&self, mirror: &str) -> Result<Option<Pin>, CatalogError> {
        read_pin(&self.conn, mirror).map_err(self.err())
    }

    /// Clears the mirror's pin; returns the pin it had (`None`: it was not pinned). The view does
    /// not change — the published snapshot stays until the next sync publishes a new one — so
    /// this is no publish.
    pub fn unpin(&mut self, mirror: &str) -> Result<Option<Pin>, CatalogError> {
        let path = self.path.clone();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let known: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM mirrors WHERE id = ?1)", params![mirror], |r| r.get(0))
            .map_err(err)?;
        if !known {
            return Err(CatalogError::Refused(format!("{mirror}: no mirror or tree of that id has synced")));
        }
        let pin = read_pin(&tx, mirror).map_err(err)?;
        tx.execute("UPDATE mirrors SET pinned_at = NULL WHERE id = ?1", params![mirror]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(pin)
    }

    /// The mirror's newest recorded snapshot (published or not).
    pub fn newest_snapshot(&self, mirror: &str) -> Result<Option<SnapshotRow>, CatalogError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM snapshots WHERE mirror_id = ?1 ORDER BY name DESC LIMIT 1",
                params![mirror],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        match id {
            Some(id) => self.snapshot_by_id(id),
            None => Ok(None),
        }
    }

    /// The snapshot a sync compares upstream with (Release digest, files to reuse): the published
    /// one, or — while the mirror is pinned — its newest recorded one, which is what upstream
    /// served last; against the pinned one every run would record upstream's unchanged Release
    /// again. (Unpinned, the published one: after a refused publish the next run tries again.)
    pub fn sync_baseline(&self, mirror: &str) -> Result<Option<SnapshotRow>, CatalogError> {
        if self.pin(mirror)?.is_some() {
            return self.newest_snapshot(mirror);
        }
        self.published(mirror)
    }
}
