//! The SQLite catalog (WAL): objects, mirrors/trees, snapshots and their entries, the published
//! pointers and the publish generation the mount daemon polls.
//!
//! Architecture invariant: this is the only module that uses `rusqlite`. Schema changes are SQL
//! files in `migrations/`, embedded here and applied in order at open (`PRAGMA user_version`
//! counts the applied ones).

pub mod lifecycle;
mod medium;
mod pin;
mod retention;
mod rows;
mod snapshots;
mod view;
mod web;

pub use medium::Imported;
pub use pin::{Pin, PinChange};
pub use rows::{snapshot_name, EntryKindCode, NewEntry, NewSnapshot, PublishedFile, Retention, SnapshotRow};
pub use snapshots::{next_release_mtime, PublishOutcome};
pub use web::RunRow;

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Migrations in order; index + 1 is the schema version after applying it.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_snapshot_totals.sql"),
    include_str!("../../migrations/0003_pinned.sql"),
    include_str!("../../migrations/0004_snapshot_warnings.sql"),
    include_str!("../../migrations/0005_gc_pending.sql"),
    include_str!("../../migrations/0006_web.sql"),
    include_str!("../../migrations/0007_published_web.sql"),
];

/// How long a writer waits for another connection's transaction (the mount daemon reads while
/// sync writes; WAL makes readers and the writer independent, so this only covers checkpoints).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("catalog {path}: schema version {found} is newer than this pmirror-fs understands ({known})")]
    TooNew { path: PathBuf, found: usize, known: usize },
    #[error("catalog {path}: schema version {found} is older than this pmirror-fs's ({known}); a sync migrates it")]
    TooOld { path: PathBuf, found: usize, known: usize },
    #[error("{0}")]
    Refused(String),
    /// The view a publish would show does not build (a path conflict between entries): the
    /// publish is refused and nothing changes.
    #[error(transparent)]
    View(crate::tree::BuildError),
}

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

/// What the mount's status.json depends on, for change detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusStamp {
    /// The newest run start or end (Unix seconds; 0 before any run).
    pub newest: i64,
    /// Every mirror's id, state, last start and end, and when it was pinned.
    pub runs: String,
}

/// One mirror/tree row as the CLI reports it.
#[derive(Debug, Clone)]
pub struct MirrorRow {
    pub id: String,
    pub kind: String,
    pub view: String,
    pub upstream: String,
    pub published: Option<SnapshotRow>,
    pub state: String,
    pub last_started: Option<i64>,
    pub last_ended: Option<i64>,
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
}

impl Catalog {
    /// Opens (creating if needed) `<store>/catalog.db`, in WAL mode, migrated to the latest schema.
    pub fn open(store: &Path) -> Result<Catalog, CatalogError> {
        let path = store.join("catalog.db");
        let conn = Connection::open(&path).map_err(|source| CatalogError::Sql { path: path.clone(), source })?;
        let mut cat = Catalog { conn, path };
        cat.configure()?;
        cat.migrate()?;
        Ok(cat)
    }

    /// Opens (creating if needed) the catalog of a shared store (`[store] shared`): in
    /// rollback-journal mode, since WAL's shared memory works only among processes of one host
    /// (and a writer may move to another node). Migrated like [`Catalog::open`].
    pub fn open_shared(store: &Path) -> Result<Catalog, CatalogError> {
        let path = store.join("catalog.db");
        let conn = Connection::open(&path).map_err(|source| CatalogError::Sql { path: path.clone(), source })?;
        let mut cat = Catalog { conn, path };
        cat.conn.busy_timeout(BUSY_TIMEOUT).map_err(cat.err())?;
        cat.conn
            .execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(cat.err())?;
        cat.migrate()?;
        Ok(cat)
    }

    /// Opens an existing catalog without writing to it (the mount daemon).
    pub fn open_readonly(store: &Path) -> Result<Catalog, CatalogError> {
        let path = store.join("catalog.db");
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|source| CatalogError::Sql { path: path.clone(), source })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|source| CatalogError::Sql { path: path.clone(), source })?;
        Ok(Catalog { conn, path })
    }

    /// Opens an existing catalog for a dry run, leaving every file of the store as it was. A
    /// read-only connection to a WAL database creates `-wal` and `-shm` when they are absent (the
    /// state after the last writer closed): then the database file alone is the whole catalog,
    /// and it is read as immutable, which creates nothing. Immutable means no locking: read what
    /// is needed at once and close it (a writer's checkpoint rewrites the file). A catalog of an
    /// older schema is refused (it is not migrated here), naming it.
    pub fn open_untouched(store: &Path) -> Result<Catalog, CatalogError> {
        let path = store.join("catalog.db");
        if store.join("catalog.db-wal").exists() {
            return Catalog::open_readonly(store)?.current_schema();
        }
        Catalog::open_immutable(&path)
    }

    /// Opens the catalog file `path` as immutable: read-only, no locking, nothing created next to
    /// it (a medium's catalog, which nothing writes while it is read). Its schema must be this
    /// build's.
    pub fn open_immutable(path: &Path) -> Result<Catalog, CatalogError> {
        let path = path.to_owned();
        let err = |source| CatalogError::Sql { path: path.clone(), source };
        let mut uri = std::path::absolute(&path)
            .ok()
            .and_then(|abs| url::Url::from_file_path(abs).ok())
            .ok_or_else(|| err(rusqlite::Error::InvalidPath(path.clone())))?;
        uri.set_query(Some("immutable=1"));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(uri.as_str(), flags).map_err(err)?;
        Catalog { conn, path }.current_schema()
    }

    /// This catalog, if its schema is the one this build writes (for readers that do not migrate).
    fn current_schema(self) -> Result<Catalog, CatalogError> {
        let found: usize = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(self.err())?;
        let (path, known) = (self.path.clone(), MIGRATIONS.len());
        match found.cmp(&known) {
            std::cmp::Ordering::Less => Err(CatalogError::TooOld { path, found, known }),
            std::cmp::Ordering::Greater => Err(CatalogError::TooNew { path, found, known }),
            std::cmp::Ordering::Equal => Ok(self),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
        |source| CatalogError::Sql { path: self.path.clone(), source }
    }

    fn configure(&self) -> Result<(), CatalogError> {
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(self.err())?;
        self.conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(self.err())
    }

    fn migrate(&mut self) -> Result<(), CatalogError> {
        let version: usize = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(self.err())?;
        if version > MIGRATIONS.len() {
            return Err(CatalogError::TooNew { path: self.path.clone(), found: version, known: MIGRATIONS.len() });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction().map_err(|source| CatalogError::Sql { path: self.path.clone(), source })?;
            tx.execute_batch(sql).map_err(|source| CatalogError::Sql { path: self.path.clone(), source })?;
            tx.pragma_update(None, "user_version", i + 1)
                .map_err(|source| CatalogError::Sql { path: self.path.clone(), source })?;
            tx.commit().map_err(|source| CatalogError::Sql { path: self.path.clone(), source })?;
            tracing::info!(catalog = %self.path.display(), version = i + 1, "applied migration");
        }
        Ok(())
    }

    /// The publish generation; changes whenever the view may have changed.
    pub fn generation(&self) -> Result<u64, CatalogError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| r.get::<_, i64>(0))
            .map(|v| v as u64)
            .map_err(self.err())
    }

    /// Changes whenever a mirror's run starts or ends, its state changes or it is pinned or
    /// unpinned (the mount's status.json follows it) — also when a run ends in the same second
    /// the previous one did.
    pub fn status_stamp(&self) -> Result<StatusStamp, CatalogError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(MAX(COALESCE(last_started, 0)), MAX(COALESCE(last_ended, 0))), 0),
                        COALESCE(group_concat(id || ' ' || state || ' ' || COALESCE(last_started, '') || ' '
                                              || COALESCE(last_ended, '') || ' ' || COALESCE(pinned_at, ''), ','), '')
                 FROM (SELECT * FROM mirrors ORDER BY id)",
                [],
                |r| Ok(StatusStamp { newest: r.get(0)?, runs: r.get(1)? }),
            )
            .map_err(self.err())
    }

    /// Registers a mirror/tree (or updates its view root and upstream after a config change).
    pub fn upsert_mirror(&self, id: &str, kind: &str, view: &str, upstream: &str) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT INTO mirrors (id, kind, view, upstream) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET kind = ?2, view = ?3, upstream = ?4",
                rusqlite::params![id, kind, view, upstream],
            )
            .map(drop)
            .map_err(self.err())
    }

    pub fn mark_started(&self, id: &str, now: i64) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE mirrors SET state = 'syncing', last_started = ?2 WHERE id = ?1",
                rusqlite::params![id, now],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// Records the outcome of a run for `status`: `Ok((bytes, objects))` fetched, or the error line.
    pub fn mark_finished(&self, id: &str, now: i64, outcome: Result<(u64, u64), &str>) -> Result<(), CatalogError> {
        let res = match outcome {
            Ok((bytes, objects)) => self.conn.execute(
                "UPDATE mirrors SET state = 'success', last_ended = ?2, last_success = ?2, last_error = NULL,
                 last_bytes_fetched = ?3, last_objects_fetched = ?4 WHERE id = ?1",
                rusqlite::params![id, now, bytes as i64, objects as i64],
            ),
            Err(msg) => self.conn.execute(
                "UPDATE mirrors SET state = 'failed', last_ended = ?2, last_error = ?3 WHERE id = ?1",
                rusqlite::params![id, now, msg],
            ),
        };
        res.map(drop).map_err(self.err())
    }

    pub fn mirrors(&self) -> Result<Vec<MirrorRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, kind, view, upstream, published, state, last_started, last_ended, last_success, last_error
                 FROM mirrors ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    MirrorRow {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        view: r.get(2)?,
                        upstream: r.get(3)?,
                        published: None,
                        state: r.get(5)?,
                        last_started: r.get(6)?,
                        last_ended: r.get(7)?,
                        last_success: r.get(8)?,
                        last_error: r.get(9)?,
                    },
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        let mut out = Vec::with_capacity(rows.len());
        for (mut row, published) in rows {
            if let Some(id) = published {
                row.published = self.snapshot_by_id(id)?;
            }
            out.push(row);
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests;
