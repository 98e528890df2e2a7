//! Loading the [`ViewSource`] the mount daemon builds its tree from: every retained snapshot with
//! its role (published, inside the grace window, or only retained), entries, by-hash names and
//! the monotonic Release mtime.

use super::rows::EntryKindCode;
use super::{Catalog, CatalogError};
use crate::digest::Sha256;
use crate::tree::source::{ByHash, EntryKind, FileEntry, ObjectMeta, Role, SnapshotFiles, ViewSource};
use rusqlite::{params, Connection};
use std::collections::HashMap;

impl Catalog {
    /// The view as of now: what `mount` shows.
    pub fn load_view(&self, now: i64, grace_secs: i64) -> Result<ViewSource, CatalogError> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        let src = load(&tx, now, grace_secs).map_err(self.err())?;
        tx.finish().map_err(self.err())?;
        Ok(src)
    }

    /// When the view next changes without a publish: the earliest moment a superseded snapshot
    /// leaves the grace window (the daemon rebuilds then).
    pub fn next_grace_expiry(&self, now: i64, grace_secs: i64) -> Result<Option<i64>, CatalogError> {
        next_grace_expiry(&self.conn, now, grace_secs).map_err(self.err())
    }

    /// The publish generation and the nonce of its view image, when the publisher wrote one
    /// (`tree::image::file_name`), read together.
    pub fn view_pointer(&self) -> Result<(u64, Option<u64>), CatalogError> {
        self.conn
            .query_row(
                "SELECT g.value, (SELECT value FROM meta WHERE key = 'view_image') FROM meta g WHERE g.key = 'generation'",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<i64>>(1)?.map(|n| n as u64))),
            )
            .map_err(self.err())
    }
}

fn next_grace_expiry(conn: &Connection, now: i64, grace_secs: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MIN(superseded_at) + ?2 FROM snapshots WHERE superseded_at IS NOT NULL AND superseded_at + ?2 > ?1",
        params![now, grace_secs],
        |r| r.get(0),
    )
}

struct SnapMeta {
    id: i64,
    files: SnapshotFiles,
    release_mtime: Option<i64>,
}

pub(super) fn load(conn: &Connection, now: i64, grace_secs: i64) -> rusqlite::Result<ViewSource> {
    let generation: i64 = conn.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| r.get(0))?;
    let mut snaps = load_snapshots(conn, now, grace_secs)?;
    let (objects, index_of) = load_objects(conn)?;
    let by_snap: HashMap<i64, usize> = snaps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let mut hashes = load_other_hashes(conn)?;
    let mut stmt = conn.prepare("SELECT snapshot_id, path, object_id, kind FROM entries")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let Some(&si) = by_snap.get(&r.get::<_, i64>(0)?) else { continue };
        let snap = &mut snaps[si];
        let path: String = r.get(1)?;
        let object_id: i64 = r.get(2)?;
        let object = index_of.get(object_id).ok_or(rusqlite::Error::IntegralValueOutOfRange(2, object_id))?;
        let kind = EntryKindCode::decode(r.get(3)?);
        let meta = &objects[object as usize];
        let mut by_hash = Vec::new();
        if kind == EntryKind::Index {
            by_hash.push(ByHash { algo: "SHA256", digest: meta.sha256.to_hex() });
            by_hash.extend(hashes.remove(&(snap.id, path.clone())).unwrap_or_default());
        }
        let mtime_override = match (kind, snap.release_mtime) {
            (EntryKind::Release, Some(m)) if m != meta.mtime => Some(m),
            _ => None,
        };
        snap.files.entries.push(FileEntry { path, object, kind, by_hash, mtime_override });
    }
    Ok(ViewSource {
        generation: generation as u64,
        objects,
        snapshots: snaps.into_iter().map(|s| s.files).collect(),
        aliases: Vec::new(),
        inline_files: Vec::new(),
        valid_until: next_grace_expiry(conn, now, grace_secs)?,
    })
}

fn load_snapshots(conn: &Connection, now: i64, grace_secs: i64) -> rusqlite::Result<Vec<SnapMeta>> {
    let mut stmt = conn.prepare(
        "SELECT s.id, s.mirror_id, s.name, m.view, COALESCE(m.published = s.id, 0), s.superseded_at, m.release_mtime
         FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id ORDER BY s.mirror_id, s.name",
    )?;
    let rows = stmt.query_map([], |r| {
        let published: bool = r.get(4)?;
        let superseded: Option<i64> = r.get(5)?;
        let role = if published {
            Role::Published
        } else if superseded.is_some_and(|t| t + grace_secs > now) {
            Role::Grace
        } else {
            Role::Retained
        };
        Ok(SnapMeta {
            id: r.get(0)?,
            files: SnapshotFiles {
                mirror_id: r.get(1)?,
                name: r.get(2)?,
                view_root: r.get(3)?,
                role,
                entries: Vec::new(),
            },
            release_mtime: if published { r.get(6)? } else { None },
        })
    })?;
    rows.collect()
}

/// Index of an object in [`ViewSource::objects`] by catalog id: ids are AUTOINCREMENT and dense
/// enough that a vector beats a hash map (one probe, no hashing, 4 bytes per id).
struct ObjectIndex(Vec<u32>);

impl ObjectIndex {
    const NONE: u32 = u32::MAX;

    fn get(&self, id: i64) -> Option<u32> {
        usize::try_from(id).ok().and_then(|i| self.0.get(i)).copied().filter(|&v| v != Self::NONE)
    }
}

/// Objects referenced by any snapshot (an indexed EXISTS per object: no sort of all entries).
fn load_objects(conn: &Connection) -> rusqlite::Result<(Vec<ObjectMeta>, ObjectIndex)> {
    let mut stmt = conn.prepare(
        "SELECT id, sha256, size, mtime FROM objects o
         WHERE EXISTS (SELECT 1 FROM entries e WHERE e.object_id = o.id) ORDER BY id",
    )?;
    let mut objects = Vec::new();
    let mut index = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let sha = r.get_ref(1)?.as_blob()?;
        let sha = <[u8; 32]>::try_from(sha)
            .map_err(|_| rusqlite::Error::InvalidColumnType(1, "sha256".into(), rusqlite::types::Type::Blob))?;
        let slot = usize::try_from(id).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, id))?;
        if index.len() <= slot {
            index.resize(slot + 1, ObjectIndex::NONE);
        }
        index[slot] = objects.len() as u32;
        objects.push(ObjectMeta {
            id: id as u64,
            sha256: Sha256(sha),
            size: r.get::<_, i64>(2)? as u64,
            mtime: r.get(3)?,
        });
    }
    Ok((objects, ObjectIndex(index)))
}

type HashKey = (i64, String);

fn load_other_hashes(conn: &Connection) -> rusqlite::Result<HashMap<HashKey, Vec<ByHash>>> {
    let mut stmt = conn.prepare("SELECT snapshot_id, path, algo, digest FROM index_hashes")?;
    let mut out: HashMap<HashKey, Vec<ByHash>> = HashMap::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let algo = match r.get::<_, String>(2)?.as_str() {
            "MD5Sum" => "MD5Sum",
            "SHA1" => "SHA1",
            "SHA512" => "SHA512",
            _ => continue,
        };
        out.entry((r.get(0)?, r.get(1)?)).or_default().push(ByHash { algo, digest: r.get(3)? });
    }
    Ok(out)
}
