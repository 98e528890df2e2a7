//! The catalog's row types: what a snapshot being recorded carries, what a published one and
//! its files read back as, retention and publish outcomes — shared by the recording, publishing,
//! pinning, retention and view-loading code, which therefore need not import each other.

use crate::digest::Sha256;
use crate::tree::source::EntryKind;

/// Storage code of an [`EntryKind`].
pub struct EntryKindCode;

impl EntryKindCode {
    pub fn encode(kind: EntryKind) -> i64 {
        match kind {
            EntryKind::Release => 0,
            EntryKind::Index => 1,
            EntryKind::Package => 2,
            EntryKind::TreeFile => 3,
        }
    }

    pub fn decode(code: i64) -> EntryKind {
        match code {
            0 => EntryKind::Release,
            1 => EntryKind::Index,
            2 => EntryKind::Package,
            _ => EntryKind::TreeFile,
        }
    }
}

/// One file of a snapshot being recorded.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub path: String,
    pub sha256: Sha256,
    pub size: u64,
    /// Upstream Last-Modified (used only when the object is new to the catalog).
    pub mtime: i64,
    pub kind: EntryKind,
    /// Non-SHA256 by-hash names of an index: (`MD5Sum`|`SHA1`|`SHA512`, hex).
    pub other_hashes: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub mirror_id: String,
    pub created_at: i64,
    pub release_sha256: Option<Sha256>,
    pub release_last_modified: Option<i64>,
    pub entries: Vec<NewEntry>,
}

/// One file of a published snapshot, with its object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    pub path: String,
    pub sha256: Sha256,
    pub size: u64,
    pub mtime: i64,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: i64,
    pub mirror_id: String,
    pub name: String,
    pub created_at: i64,
    pub superseded_at: Option<i64>,
    pub published: bool,
    /// Published, and its mirror is pinned to it (`snapshot publish` of an older snapshot).
    pub pinned: bool,
    pub files: u64,
    pub bytes: u64,
    pub release_sha256: Option<Sha256>,
    pub release_last_modified: Option<i64>,
    /// The warnings of the run that recorded it.
    pub warnings: Vec<String>,
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as proxmox-offline-mirror names snapshots.
pub fn snapshot_name(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&fmt).unwrap_or_else(|_| unix.to_string())
}

pub(super) const SNAPSHOT_COLUMNS: &str = "s.id, s.mirror_id, s.name, s.created_at, s.superseded_at,
    (m.published = s.id), s.files, s.bytes, s.release_sha256, s.release_last_modified,
    (m.published = s.id AND m.pinned_at IS NOT NULL), s.warnings";

pub(super) fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRow> {
    let sha: Option<Vec<u8>> = r.get(8)?;
    Ok(SnapshotRow {
        id: r.get(0)?,
        mirror_id: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        superseded_at: r.get(4)?,
        published: r.get::<_, Option<bool>>(5)?.unwrap_or(false),
        pinned: r.get::<_, Option<bool>>(10)?.unwrap_or(false),
        files: r.get::<_, i64>(6)? as u64,
        bytes: r.get::<_, i64>(7)? as u64,
        release_sha256: sha.and_then(|b| <[u8; 32]>::try_from(b).ok()).map(Sha256),
        release_last_modified: r.get(9)?,
        warnings: r.get::<_, String>(11)?.lines().map(str::to_owned).collect(),
    })
}

/// Retention policy applied inside every publish.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Newest snapshots kept per mirror (the published one is kept in any case).
    pub keep: usize,
    /// Superseded snapshots stay (for by-hash and package files) this long.
    pub grace_secs: i64,
}
