//! `medium sync`: make the medium hold exactly the snapshots its config picks.
//!
//! ```text
//! check    the path is there, mounted (or --init), its marker names this medium, it is no store
//! lock     <medium>/lock (one writer per medium); tmp/ emptied; an interrupted commit finished
//! plan     plan::plan — objects to add, objects the new state no longer uses; free space checked
//! marker   written first on a new medium
//! add      each missing object copied from the store's pool, hashed while written, fsync'd, renamed
//!          into pool/ (a damaged store object stops the sync); --verify re-reads what it wrote and
//!          re-hashes the ones kept; then the keys (each file written whole: tmp, fsync, rename)
//! commit   a catalog of exactly those snapshots built in a local temp dir, its view image written
//!          to views/, the file copied to catalog.db.new and renamed over catalog.db
//! clean    objects, view images, keys no longer used go
//! after    README.txt and the .deb, which describe and install the new state
//! ```
//!
//! A failure before the commit removes the objects this run added; the medium holds its previous
//! state, whole. Once the rename happened the new state is the medium's: later failures remove
//! nothing.

use super::plan::{self, MediumPlan};
use super::{io_err, is_full, sync_dir, write_atomic, Marker, MediumError, FORMAT, KEYS_DIR, MARKER};
use crate::catalog::Catalog;
use crate::config::{Config, MediumConfig};
use crate::digest::Sha256;
use crate::engine::unix_now;
use crate::pool::{CopyError, ObjectState, Pool, PoolError, StoreLock};
use crate::store::{aliases, ViewPublisher};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `medium sync`'s switches.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Re-hash the objects already on the medium (damaged ones are written again).
    pub verify: bool,
    /// Write a new medium into a directory that is not a mount point.
    pub init: bool,
    /// The pmirror-fs .deb to carry (else one found in apt's cache for this version, if any).
    pub deb: Option<PathBuf>,
}

/// What a medium sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub id: String,
    pub path: PathBuf,
    pub generation: u64,
    /// `mirror/name` of every snapshot it holds, with whether the medium publishes it.
    pub snapshots: Vec<(String, bool)>,
    pub copied: (u64, u64),
    pub kept: (u64, u64),
    pub repaired: u64,
    pub removed: (u64, u64),
    /// Every byte written to the medium: objects, catalog, view image, keys, README, .deb.
    pub written: u64,
    /// The .deb it carries, if any.
    pub deb: Option<String>,
    pub elapsed: Duration,
}

/// A medium is written durably: every object, directory and catalog fsync'd before it counts.
const FSYNC: bool = true;

/// Room kept free beyond the objects: the catalog and view image of the new state (~250 bytes
/// per file entry between them) while the old ones still exist, and filesystem metadata.
fn margin(plan: &MediumPlan) -> u64 {
    let files: u64 = plan.chosen.iter().map(|c| c.row.files).sum();
    (1 << 20) + files * 512
}

pub fn sync(config: &Config, medium: &MediumConfig, opts: &SyncOptions) -> Result<SyncReport, MediumError> {
    let started = Instant::now();
    let dir = medium.path.as_path();
    let marker = check(medium, if opts.init { Init::Allowed } else { Init::OnAMountPoint })?;
    let lock = StoreLock::acquire(dir)?;
    // Objects are written without an fsync each and made durable together before the commit
    // (`make_durable`): one journal commit for all of them instead of two per object.
    let pool = Pool::open(dir, false)?;
    pool.clean_tmp(&lock)?;
    finish_interrupted_commit(dir)?;
    let store = Catalog::open_readonly(&config.store.dir)?;
    let chosen = plan::choose(medium, &store)?;
    let plan = plan::plan(&store, chosen, dir)?;
    let free = free_bytes(dir)?;
    let deb = opts.deb.clone().or_else(super::extras::find_deb);
    let deb_bytes = deb.as_deref().map(|d| super::extras::deb_bytes(dir, d)).transpose()?.unwrap_or(0);
    let needed = plan.add_bytes() + margin(&plan) + deb_bytes;
    if needed > free {
        return Err(MediumError::Full { id: medium.id.clone(), path: dir.to_owned(), needed, free });
    }
    let mut report = SyncReport { id: medium.id.clone(), path: dir.to_owned(), ..SyncReport::default() };
    if marker.is_none() {
        let marker = Marker { format: FORMAT, id: medium.id.clone(), created_at: unix_now() };
        let text = serde_json::to_vec_pretty(&marker).expect("marker serializes");
        report.written += write_atomic(dir, dir, MARKER, &text)?;
    }
    let mut added = Vec::new();
    let result = fill((config, medium, &plan, &pool), opts, &mut added, &mut report)
        .and_then(|()| commit(config, medium, &store, &plan, &mut report));
    if let Err(e) = result {
        for digest in &added {
            if let Err(e) = pool.remove(digest) {
                tracing::warn!(error = %e, "removing an object this failed medium sync added");
            }
        }
        return Err(full_as(e, medium, dir));
    }
    clean(dir, medium, &plan, &pool, &mut report);
    let after = super::extras::after_commit(medium, deb.as_deref(), &plan, &mut report.deb);
    report.written += after.map_err(|e| full_as(e, medium, dir))?;
    report.snapshots = plan.chosen.iter().map(|c| (format!("{}/{}", c.row.mirror_id, c.row.name), c.publish)).collect();
    let added_bytes = plan.add_bytes();
    report.kept = (plan.objects.len() as u64 - plan.add.len() as u64, plan.total_bytes() - added_bytes);
    report.elapsed = started.elapsed();
    drop(lock);
    Ok(report)
}

/// The checks `medium sync` makes before it writes (mounted, this medium, not a store), for
/// `medium status ID`.
pub fn check_configured(medium: &MediumConfig) -> Result<(), MediumError> {
    check(medium, Init::Allowed).map(drop)
}

/// What `medium sync` would do now (`medium diff`): nothing is written, not even the lock.
pub fn diff(config: &Config, medium: &MediumConfig) -> Result<MediumPlan, MediumError> {
    check(medium, Init::Allowed)?;
    let store = Catalog::open_readonly(&config.store.dir)?;
    let chosen = plan::choose(medium, &store)?;
    plan::plan(&store, chosen, &medium.path)
}

/// Whether [`check`] takes a directory that holds no medium yet and is not a mount point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    /// `--init` (or a dry run, which writes nothing).
    Allowed,
    /// Only a mount point: an empty directory of the root filesystem is a medium not mounted.
    OnAMountPoint,
}

/// The medium's path is there and is this medium — or none yet, on a mount point (or with
/// `--init`), and not a store.
fn check(medium: &MediumConfig, init: Init) -> Result<Option<Marker>, MediumError> {
    let dir = medium.path.as_path();
    let not_mounted = |reason: &str| MediumError::NotMounted {
        id: medium.id.clone(),
        path: dir.to_owned(),
        reason: reason.to_owned(),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_mounted("not a directory")),
        Err(e) => return Err(not_mounted(&e.to_string())),
    }
    match super::read_marker(dir)? {
        Some(m) if m.id != medium.id => {
            Err(MediumError::WrongMedium { path: dir.to_owned(), found: m.id, expected: medium.id.clone() })
        }
        Some(m) => Ok(Some(m)),
        None if dir.join(super::CATALOG).exists() || dir.join("pool").exists() => {
            Err(MediumError::AStore { id: medium.id.clone(), path: dir.to_owned() })
        }
        None if init == Init::OnAMountPoint && !is_mount_point(dir) => {
            Err(MediumError::NotAMountPoint { id: medium.id.clone(), path: dir.to_owned() })
        }
        None => Ok(None),
    }
}

/// A commit cut off between its two renames on a filesystem that removes the target first left
/// only `catalog.db.new`, the new state: it becomes `catalog.db` before anything else is written.
fn finish_interrupted_commit(dir: &Path) -> Result<(), MediumError> {
    let (current, new) = (dir.join(super::CATALOG), dir.join(super::CATALOG_NEW));
    if current.exists() || !new.exists() {
        return Ok(());
    }
    tracing::warn!(medium = %dir.display(), "finishing a commit that was cut off: catalog.db.new becomes catalog.db");
    std::fs::rename(&new, &current).map_err(io_err(&current))?;
    sync_dir(dir)
}

/// `dir` is the root of a mounted filesystem: its device differs from its parent's (or it is /).
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(here), Ok(up)) = (std::fs::metadata(dir), std::fs::metadata(dir.join(".."))) else { return false };
    here.dev() != up.dev() || here.ino() == up.ino()
}

fn free_bytes(dir: &Path) -> Result<u64, MediumError> {
    let st = rustix::fs::statvfs(dir).map_err(|e| MediumError::Io { path: dir.to_owned(), source: e.into() })?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A write that failed because the medium is full, as the one-line "full" error.
fn full_as(e: MediumError, medium: &MediumConfig, dir: &Path) -> MediumError {
    let source = match &e {
        MediumError::Io { source, .. } | MediumError::Pool(PoolError::Io { source, .. }) => source,
        _ => return e,
    };
    if source.raw_os_error() == Some(libc::EFBIG) {
        return MediumError::TooLarge { id: medium.id.clone(), path: dir.to_owned() };
    }
    if !is_full(source) {
        return e;
    }
    let free = free_bytes(dir).unwrap_or(0);
    MediumError::FilledUp { id: medium.id.clone(), path: dir.to_owned(), free }
}

/// Copies the objects to add (with `--verify`, reads each back and rewrites damaged ones it
/// kept), then the keys.
fn fill(
    (config, medium, plan, pool): (&Config, &MediumConfig, &MediumPlan, &Pool),
    opts: &SyncOptions,
    added: &mut Vec<Sha256>,
    report: &mut SyncReport,
) -> Result<(), MediumError> {
    let local = Pool::existing(&config.store.dir);
    let mut buf = vec![0u8; 1 << 20];
    for (digest, size) in &plan.add {
        let existed = pool.size_of(digest).is_some();
        copy_object(&local, pool, digest, *size, &mut buf)?;
        if !existed {
            added.push(*digest);
        }
        if opts.verify {
            read_back(pool, medium, digest, *size, &mut buf)?;
        }
        report.copied.0 += 1;
        report.copied.1 += size;
    }
    let adding: std::collections::HashSet<&Sha256> = plan.add.iter().map(|(d, _)| d).collect();
    let kept: Vec<&(Sha256, u64)> = match opts.verify {
        true => plan.objects.iter().filter(|(d, _)| !adding.contains(d)).collect(),
        false => plan.recheck.iter().collect(),
    };
    let mut rewritten = Vec::new();
    for (digest, size) in kept {
        if pool.check(digest, *size, &mut buf)? != ObjectState::Intact {
            tracing::warn!(sha256 = %digest, medium = %medium.id, "damaged object on the medium, writing it again");
            copy_object(&local, pool, digest, *size, &mut buf)?;
            if opts.verify {
                read_back(pool, medium, digest, *size, &mut buf)?;
            }
            rewritten.push(*digest);
            report.repaired += 1;
            report.copied.1 += size;
        }
    }
    let written: Vec<&Sha256> = plan.add.iter().map(|(d, _)| d).chain(&rewritten).collect();
    make_durable(pool, &written)?;
    report.written += report.copied.1;
    report.written += super::extras::write_keys(config, medium)?;
    Ok(())
}

/// Makes the objects this sync wrote durable before the commit refers to them: one syncfs of the
/// medium, then an fsync of each object (cheap once the filesystem is synced; what FUSE
/// filesystems such as exfat-fuse flush on) and of each directory they were renamed into.
fn make_durable(pool: &Pool, written: &[&Sha256]) -> Result<(), MediumError> {
    if written.is_empty() {
        return Ok(());
    }
    let root = pool.objects_dir();
    let syncfs = std::fs::File::open(&root).and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from));
    syncfs.map_err(io_err(&root))?;
    let mut dirs = std::collections::BTreeSet::new();
    for digest in written {
        let path = pool.object_path(digest);
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io_err(&path))?;
        dirs.insert(path.parent().expect("object path has a parent").to_owned());
    }
    dirs.insert(root.join("sha256"));
    for dir in dirs {
        sync_dir(&dir)?;
    }
    Ok(())
}

/// `--verify`: an object just written, read back from the medium itself (its cached pages
/// dropped first), must hash to its name — a failing or fake-capacity stick shows here.
fn read_back(
    pool: &Pool,
    medium: &MediumConfig,
    digest: &Sha256,
    size: u64,
    buf: &mut [u8],
) -> Result<(), MediumError> {
    let path = pool.object_path(digest);
    if let Ok(f) = std::fs::File::open(&path) {
        if let Err(e) = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed) {
            tracing::debug!(error = %e, "fadvise(DONTNEED) before reading back");
        }
    }
    match pool.check(digest, size, buf)? {
        ObjectState::Intact => Ok(()),
        state => Err(MediumError::ReadBack { id: medium.id.clone(), path, state: format!("{state:?}") }),
    }
}

/// One object from the store's pool into the medium's: a store object that does not match its
/// name stops the sync (it is never carried).
fn copy_object(local: &Pool, to: &Pool, digest: &Sha256, size: u64, buf: &mut [u8]) -> Result<(), MediumError> {
    match to.copy_in(&local.object_path(digest), digest, size, buf) {
        Ok(()) => Ok(()),
        Err(CopyError::Source(source)) => {
            Err(MediumError::LocalObject { sha256: digest.to_hex(), store: local.store_dir().to_owned(), source })
        }
        Err(CopyError::Dest(e)) => Err(e.into()),
    }
}

/// The new catalog and its view image, then the rename that makes them the medium's state.
fn commit(
    config: &Config,
    medium: &MediumConfig,
    store: &Catalog,
    plan: &MediumPlan,
    report: &mut SyncReport,
) -> Result<(), MediumError> {
    let dir = medium.path.as_path();
    let now = unix_now();
    super::still_there(dir)?;
    let work = tempfile::tempdir().map_err(io_err(&std::env::temp_dir()))?;
    let ids: Vec<i64> = plan.chosen.iter().map(|c| c.row.id).collect();
    let published: Vec<i64> = plan.chosen.iter().filter(|c| c.publish).map(|c| c.row.id).collect();
    let mut images = ViewPublisher::for_store(dir, FSYNC, aliases(config));
    let built = (|| {
        let mut catalog = Catalog::open(work.path())?;
        let floor = plan.medium_generation;
        let generation =
            catalog.export_snapshots(store.path(), &ids, &published, floor, now, |src| images.prepare(src))?;
        Ok::<_, MediumError>((generation, catalog.path().to_owned()))
    })();
    let installed = built.and_then(|(generation, file)| {
        report.written += install_catalog(dir, &file)?;
        Ok(generation)
    });
    match installed {
        Ok(generation) => {
            report.written += image_bytes(dir, generation);
            images.finish(true);
            report.generation = generation;
            Ok(())
        }
        Err(e) => {
            images.finish(false);
            Err(e)
        }
    }
}

fn image_bytes(dir: &Path, generation: u64) -> u64 {
    let prefix = format!("{generation:012}-");
    let Ok(entries) = std::fs::read_dir(crate::store::images_dir(dir)) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum()
}

/// Copies the catalog file built in `file` to the medium: `tmp/`, fsync, rename to
/// `catalog.db.new`, rename over `catalog.db` (the commit), the directory fsync'd after each.
/// An error means the commit did not happen (`catalog.db.new` removed again); once the rename
/// happened — or a rename cut off after removing the old `catalog.db`, which leaves the new state
/// in `catalog.db.new` for readers — what fails later is only logged.
fn install_catalog(dir: &Path, file: &Path) -> Result<u64, MediumError> {
    super::still_there(dir)?;
    let part = dir.join("tmp").join("catalog.db.part");
    let copied = std::fs::copy(file, &part).and_then(|bytes| std::fs::File::open(&part)?.sync_all().map(|()| bytes));
    let bytes = copied.map_err(|e| {
        remove_quietly(&part);
        MediumError::Io { path: part.clone(), source: e }
    })?;
    let (new, current) = (dir.join(super::CATALOG_NEW), dir.join(super::CATALOG));
    if let Err(e) = std::fs::rename(&part, &new).map_err(io_err(&new)).and_then(|()| sync_dir(dir)) {
        remove_quietly(&part);
        remove_quietly(&new);
        return Err(e);
    }
    match std::fs::rename(&new, &current) {
        Ok(()) => {}
        Err(e) if !current.exists() && new.exists() => {
            tracing::warn!(error = %e, "the commit's rename was cut off; readers take catalog.db.new, the next sync renames it");
            return Ok(bytes);
        }
        Err(e) => {
            remove_quietly(&new);
            return Err(MediumError::Io { path: current, source: e });
        }
    }
    if let Err(e) = sync_dir(dir) {
        tracing::warn!(error = %e, "syncing the medium after its commit");
    }
    Ok(bytes)
}

/// Removes a file this sync wrote and no state uses; failing that is logged (the next sync's
/// cleanup of `tmp/` or its own commit replaces it).
fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "removing a file a failed medium sync wrote"),
    }
}

/// After the commit: what the new state does not use goes. A failure here only leaves files the
/// next sync removes (logged).
fn clean(dir: &Path, medium: &MediumConfig, plan: &MediumPlan, pool: &Pool, report: &mut SyncReport) {
    for (digest, size) in &plan.remove {
        match pool.remove(digest) {
            Ok(true) => {
                report.removed.0 += 1;
                report.removed.1 += size;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "removing an object the medium no longer uses"),
        }
    }
    let keys = dir.join(KEYS_DIR);
    if let Ok(entries) = std::fs::read_dir(&keys) {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().into_string().unwrap_or_default();
            let id = name.rsplit_once('.').map_or(name.as_str(), |(id, _)| id);
            if !medium.mirrors.iter().any(|m| m == id) {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(error = %err, "removing a key the medium no longer carries");
                }
            }
        }
    }
    if let Err(e) = sync_dir(&Pool::existing(dir).objects_dir()).and_then(|()| sync_dir(dir)) {
        tracing::warn!(error = %e, "syncing the medium's directories");
    }
}
