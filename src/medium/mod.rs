//! Offline media: a self-contained, read-only pmirror-fs store on a USB stick or disk, carried to
//! an air-gapped cluster.
//!
//! ```text
//! <medium>/
//! ├── pmirror-medium.json   marker: which medium this is (its id), written when it is first synced
//! ├── catalog.db            the snapshots it holds (a catalog in rollback-journal mode: one file)
//! ├── views/                the view image of that catalog's generation
//! ├── pool/sha256/ab/…      exactly the objects those snapshots use
//! ├── keys/<entry>.asc|gpg  the keys the snapshots were verified with
//! ├── pmirror-fs_….deb      the package, when one was at hand
//! ├── README.txt            what to do on the offline side
//! ├── lock, tmp/            the writer's lock and staging (a medium sync)
//! └── catalog.db.new        only between the two renames of a sync's commit
//! ```
//!
//! Every name is one exFAT takes (no `:`, nothing over 255 bytes), nothing is a link or special
//! file, and nothing relies on POSIX modes. A sync ([`write::sync`]) adds objects, then replaces
//! `catalog.db` by rename (the commit), then removes what the new catalog no longer uses: a
//! medium pulled out or a process killed at any moment holds the previous state or the new one.
//! Readers ([`Medium::open`]) write nothing to it.

pub mod extras;
pub mod import;
pub mod plan;
pub mod readme;
pub mod sources;
pub mod write;

use crate::catalog::{Catalog, CatalogError};
use crate::pool::{LockError, Pool, PoolError};
use crate::store::StoreError;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The marker file's name.
pub const MARKER: &str = "pmirror-medium.json";
/// The format the marker declares; a medium of a newer one is refused.
pub const FORMAT: u32 = 1;
const CATALOG: &str = "catalog.db";
const CATALOG_NEW: &str = "catalog.db.new";
/// Where a medium (or a store that imported one) keeps the keys.
pub const KEYS_DIR: &str = "keys";
/// The README for the offline side.
pub const README: &str = "README.txt";

#[derive(Debug, thiserror::Error)]
pub enum MediumError {
    #[error("medium {id}: {path} is not there ({reason}); is the medium plugged in and mounted?", path = path.display())]
    NotMounted { id: String, path: PathBuf, reason: String },
    #[error(
        "medium {id}: {path} is not a mount point and holds no medium yet; is the medium mounted? \
         (`--init` writes a new medium into this directory anyway)",
        path = path.display()
    )]
    NotAMountPoint { id: String, path: PathBuf },
    #[error("{path}: this is medium {found:?}, not {expected:?} (its {MARKER} says so); plug in the right one", path = path.display())]
    WrongMedium { path: PathBuf, found: String, expected: String },
    #[error("{path}: not a pmirror-fs medium (no {MARKER}, or no {CATALOG})", path = path.display())]
    NotAMedium { path: PathBuf },
    #[error(
        "{path}: written by an older pmirror-fs (catalog schema {found}, this one reads {known}); write it again \
         with `medium sync` on the connected side, or use the pmirror-fs .deb it carries",
        path = path.display()
    )]
    OldFormat { path: PathBuf, found: usize, known: usize },
    #[error("{path}: {MARKER}: {detail}", path = path.display())]
    BadMarker { path: PathBuf, detail: String },
    #[error(
        "medium {id}: {path} is full: this sync needs {} more, {} is free; the medium still holds its previous \
         state",
        crate::status::size(*needed),
        crate::status::size(*free),
        path = path.display()
    )]
    Full { id: String, path: PathBuf, needed: u64, free: u64 },
    #[error(
        "medium {id}: {path} ran out of space while writing ({} free now); nothing half-written is left and the \
         medium still holds its previous state",
        crate::status::size(*free),
        path = path.display()
    )]
    FilledUp { id: String, path: PathBuf, free: u64 },
    #[error("{path}: the medium went away during the write (its lock file is gone); it holds its previous state", path = path.display())]
    Gone { path: PathBuf },
    #[error("{0}")]
    Selection(String),
    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the store {}: pool object {sha256}: {source}; `pmirror-fs verify` checks the store (an object gc took meanwhile: \
         run the medium sync again)",
        store.display()
    )]
    LocalObject { sha256: String, store: PathBuf, source: PoolError },
    #[error(
        "medium {id}: {path} is not a medium but holds a pmirror-fs store (catalog.db or pool/); a medium needs a \
         directory of its own",
        path = path.display()
    )]
    AStore { id: String, path: PathBuf },
    #[error(
        "medium {id}: {path}: a file is too large for this filesystem (FAT32 takes at most 4 GiB: use exFAT); the \
         medium still holds its previous state",
        path = path.display()
    )]
    TooLarge { id: String, path: PathBuf },
    #[error(
        "medium {id}: {path} reads back damaged right after it was written ({state}); the medium may be failing",
        path = path.display()
    )]
    ReadBack { id: String, path: PathBuf, state: String },
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
    #[error(
        "{path}: {count} damaged or missing objects on the medium, first {first}; nothing was imported \
         (`pmirror-fs verify --store {path}` lists them)",
        path = path.display()
    )]
    Damaged { path: PathBuf, count: usize, first: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MediumError + '_ {
    move |source| MediumError::Io { path: path.to_owned(), source }
}

/// What the marker file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub format: u32,
    pub id: String,
    /// When the medium was first synced (Unix seconds).
    pub created_at: i64,
}

/// The marker of the medium at `dir`: `Ok(None)` when there is none.
pub fn read_marker(dir: &Path) -> Result<Option<Marker>, MediumError> {
    let path = dir.join(MARKER);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(MediumError::Io { path, source: e }),
    };
    let marker: Marker = serde_json::from_slice(&text)
        .map_err(|e| MediumError::BadMarker { path: dir.to_owned(), detail: e.to_string() })?;
    if marker.format > FORMAT {
        let detail = format!("format {} is newer than this pmirror-fs writes ({FORMAT})", marker.format);
        return Err(MediumError::BadMarker { path: dir.to_owned(), detail });
    }
    Ok(Some(marker))
}

/// Whether `dir` holds a medium (its marker).
pub fn is_medium(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// The catalog file readers open: `catalog.db`, or `catalog.db.new` when a commit was cut off
/// between its renames on a filesystem that removes the old file first.
pub fn catalog_file(dir: &Path) -> Option<PathBuf> {
    [CATALOG, CATALOG_NEW].iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// A medium opened for reading: nothing is written to it.
pub struct Medium {
    pub dir: PathBuf,
    pub marker: Marker,
    pub catalog: Catalog,
    pub pool: Pool,
}

impl Medium {
    /// Opens the medium at `dir` read-only (immutable catalog, no lock, no staging directory).
    pub fn open(dir: &Path) -> Result<Medium, MediumError> {
        let not_a_medium = || MediumError::NotAMedium { path: dir.to_owned() };
        let marker = read_marker(dir)?.ok_or_else(not_a_medium)?;
        let catalog = match Catalog::open_immutable(&catalog_file(dir).ok_or_else(not_a_medium)?) {
            Ok(c) => c,
            // A medium is never migrated in place (nothing writes to it): say what to do instead.
            Err(CatalogError::TooOld { found, known, .. }) => {
                return Err(MediumError::OldFormat { path: dir.to_owned(), found, known })
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Medium { dir: dir.to_owned(), marker, catalog, pool: Pool::existing(dir) })
    }
}

/// `<dir>/keys/<id>.asc` or `.gpg`, whichever exists.
pub fn key_file(dir: &Path, id: &str) -> Option<PathBuf> {
    ["asc", "gpg"].iter().map(|ext| dir.join(KEYS_DIR).join(format!("{id}.{ext}"))).find(|p| p.is_file())
}

/// The file name a key is kept under: `.asc` for an armored key, `.gpg` for a binary one (apt's
/// `Signed-By` reads both by their extension).
pub fn key_name(id: &str, bytes: &[u8]) -> String {
    let armored = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
    format!("{id}.{}", if armored { "asc" } else { "gpg" })
}

/// The medium (or store) at `root` is still the one its writer locked: a medium unmounted under
/// a sync leaves the bare mountpoint, which must not receive the rest of it.
pub(crate) fn still_there(root: &Path) -> Result<(), MediumError> {
    match root.join("lock").is_file() {
        true => Ok(()),
        false => Err(MediumError::Gone { path: root.to_owned() }),
    }
}

/// Writes `bytes` to `dir/name` (below `root`, the locked medium or store) whole or not at all:
/// a temporary file in `dir`, fsync'd, renamed over `name`, the directory fsync'd. Returns the
/// bytes written.
pub fn write_atomic(root: &Path, dir: &Path, name: &str, bytes: &[u8]) -> Result<u64, MediumError> {
    still_there(root)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    // Staged in the writer's tmp/ (emptied whenever a writer opens the store or medium), so a
    // kill leaves nothing half-written next to the real files.
    let staging = root.join("tmp");
    std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let tmp = staging.join(format!("{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        remove_logged(&tmp);
        return Err(MediumError::Io { path: dir.join(name), source: e });
    }
    let dest = dir.join(name);
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        remove_logged(&tmp);
        return Err(MediumError::Io { path: dest, source: e });
    }
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

fn remove_logged(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "removing a staged file");
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), MediumError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// True for an error that means the filesystem is full.
pub(crate) fn is_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

/// What `medium status` shows.
#[derive(Debug)]
pub struct MediumStatus {
    pub dir: PathBuf,
    pub marker: Marker,
    /// When its last sync committed, and the generation it shows.
    pub synced_at: Option<i64>,
    pub generation: u64,
    pub snapshots: Vec<crate::catalog::SnapshotRow>,
    /// Distinct objects its snapshots use, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// Free space on the medium's filesystem.
    pub free: Option<u64>,
    pub keys: Vec<String>,
    pub deb: Option<String>,
}

impl Medium {
    pub fn status(&self) -> Result<MediumStatus, MediumError> {
        let snapshots = self.catalog.snapshots(None)?;
        let ids: Vec<i64> = snapshots.iter().map(|s| s.id).collect();
        let objects = self.catalog.objects_of(&ids)?;
        let mut keys: Vec<String> = std::fs::read_dir(self.dir.join(KEYS_DIR))
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| !n.starts_with('.')).collect())
            .unwrap_or_default();
        keys.sort();
        let deb = std::fs::read_dir(&self.dir).ok().and_then(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .find(|n| n.starts_with("pmirror-fs_") && n.ends_with(".deb"))
        });
        let free = rustix::fs::statvfs(&self.dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize));
        Ok(MediumStatus {
            dir: self.dir.clone(),
            marker: self.marker.clone(),
            synced_at: self.catalog.meta("exported_at")?,
            generation: self.catalog.generation()?,
            snapshots,
            objects: objects.len() as u64,
            bytes: objects.iter().map(|(_, s)| s).sum(),
            free,
            keys,
            deb,
        })
    }
}
