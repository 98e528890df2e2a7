//! What the front page reads beyond the status rows: each entry's recent runs (recorded by the
//! `runs_record` trigger when a run ends) and what each snapshot changed (`snapshot_changes`,
//! written by the sync that recorded it).

use super::{Catalog, CatalogError};
use rusqlite::params;

/// One finished run of a mirror or tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub started: Option<i64>,
    pub ended: i64,
    pub ok: bool,
    /// Bytes and files fetched (successful runs only).
    pub bytes: Option<u64>,
    pub files: Option<u64>,
}

impl Catalog {
    /// The last `limit` runs of `mirror`, oldest first.
    pub fn runs(&self, mirror: &str, limit: usize) -> Result<Vec<RunRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT started, ended, ok, bytes, files FROM
                   (SELECT * FROM runs WHERE mirror_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![mirror, limit as i64], |r| {
                Ok(RunRow {
                    started: r.get(0)?,
                    ended: r.get(1)?,
                    ok: r.get(2)?,
                    bytes: r.get::<_, Option<i64>>(3)?.map(|b| b as u64),
                    files: r.get::<_, Option<i64>>(4)?.map(|f| f as u64),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Stores what snapshot `id` changed against snapshot `from` (a `snapshot diff` as JSON).
    pub fn set_snapshot_changes(&self, id: i64, from: &str, diff: &str) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshot_changes (snapshot_id, from_name, diff) VALUES (?1, ?2, ?3)",
                params![id, from, diff],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// Records the config-made files of the view just published (`(path, bytes)`, as
    /// `web::placeholders` gives them): their paths and sha256, replacing the last publish's.
    pub fn set_published_web(&mut self, files: &[(String, Vec<u8>)]) -> Result<(), CatalogError> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        tx.execute("DELETE FROM published_web", []).map_err(self.err())?;
        for (path, bytes) in files {
            tx.execute(
                "INSERT OR REPLACE INTO published_web (path, sha256) VALUES (?1, ?2)",
                params![path, crate::digest::Sha256::of(bytes).to_hex()],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// The config-made files of the published view: `(path, sha256 hex)`, by path.
    pub fn published_web(&self) -> Result<Vec<(String, String)>, CatalogError> {
        let mut stmt = self.conn.prepare("SELECT path, sha256 FROM published_web ORDER BY path").map_err(self.err())?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// What snapshot `id` changed: the snapshot it was compared with and the diff's JSON.
    pub fn snapshot_changes(&self, id: i64) -> Result<Option<(String, String)>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT from_name, diff FROM snapshot_changes WHERE snapshot_id = ?1")
            .map_err(self.err())?;
        let mut rows = stmt.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.err())?;
        rows.next().transpose().map_err(self.err())
    }
}
