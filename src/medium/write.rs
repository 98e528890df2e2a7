//! `medium sync`: make the medium hold exactly the snapshots its config picks.
//!
//! ```text
//! check    the path is there, mounted (or --init), and its marker names this medium
//! lock     <medium>/lock (one writer per medium); tmp/ emptied
//! plan     plan::plan — objects to add, objects the new state no longer uses; free space checked
//! add      each missing object copied from the store's pool, hashed while written, fsync'd, renamed
//!          into pool/ (a damaged store object stops the sync); --verify re-hashes the ones kept
//! extras   keys, the .deb, README.txt, the marker: each written whole (tmp, fsync, rename)
//! commit   a catalog of exactly those snapshots built in a local temp dir, its view image written
//!          to views/, the file copied to catalog.db.new and renamed over catalog.db
//! clean    objects, view images, keys no longer used go
//! ```
//!
//! A failure before the commit removes the objects this run added; the medium holds its previous
//! state, whole.

use super::plan::{self, MediumPlan};
use super::{io_err, is_full, key_name, sync_dir, write_atomic, Marker, MediumError, FORMAT, KEYS_DIR, MARKER};
use crate::catalog::Catalog;
use crate::config::{Config, MediumConfig};
use crate::digest::Sha256;
use crate::engine::unix_now;
use crate::pool::{ObjectState, Pool, PoolError, StoreLock};
use crate::store::{aliases, ViewPublisher};
use std::io::Read as _;
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

/// Room kept free beyond the objects: the catalog and view image of the new state (~250 bytes
/// per file entry between them) while the old ones still exist, and filesystem metadata.
fn margin(plan: &MediumPlan) -> u64 {
    let files: u64 = plan.chosen.iter().map(|c| c.row.files).sum();
    (1 << 20) + files * 512
}

pub fn sync(config: &Config, medium: &MediumConfig, opts: &SyncOptions) -> Result<SyncReport, MediumError> {
    let started = Instant::now();
    let dir = medium.path.as_path();
    let marker = check(medium, opts.init)?;
    let lock = StoreLock::acquire(dir)?;
    let pool = Pool::open(dir, true)?;
    pool.clean_tmp(&lock)?;
    let store = Catalog::open_readonly(&config.store.dir)?;
    let chosen = plan::choose(medium, &store)?;
    let plan = plan::plan(&store, chosen, dir)?;
    let free = free_bytes(dir)?;
    let deb = opts.deb.clone().or_else(find_deb);
    let needed = plan.add_bytes() + margin(&plan) + deb.as_deref().map_or(0, |d| deb_bytes(dir, d));
    if needed > free {
        return Err(MediumError::Full { id: medium.id.clone(), path: dir.to_owned(), needed, free });
    }
    let mut report = SyncReport { id: medium.id.clone(), path: dir.to_owned(), ..SyncReport::default() };
    let mut added = Vec::new();
    let result = fill((config, medium, &plan, &pool), opts, deb.as_deref(), &mut added, &mut report)
        .and_then(|()| commit(config, medium, &store, &plan, marker, &mut report));
    if let Err(e) = result {
        for digest in &added {
            if let Err(e) = pool.remove(digest) {
                tracing::warn!(error = %e, "removing an object this failed medium sync added");
            }
        }
        return Err(full_as(e, medium, dir));
    }
    clean(dir, medium, &plan, &pool, &mut report);
    report.snapshots = plan.chosen.iter().map(|c| (format!("{}/{}", c.row.mirror_id, c.row.name), c.publish)).collect();
    report.kept = (plan.objects.len() as u64 - report.copied.0, plan.total_bytes() - report.copied.1);
    report.elapsed = started.elapsed();
    drop(lock);
    Ok(report)
}

/// What `medium sync` would do now (`medium diff`): nothing is written, not even the lock.
pub fn diff(config: &Config, medium: &MediumConfig) -> Result<MediumPlan, MediumError> {
    check(medium, true)?;
    let store = Catalog::open_readonly(&config.store.dir)?;
    let chosen = plan::choose(medium, &store)?;
    plan::plan(&store, chosen, &medium.path)
}

/// The medium's path is there, is this medium (or none yet, on a mount point or with `--init`).
fn check(medium: &MediumConfig, init: bool) -> Result<Option<Marker>, MediumError> {
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
        None if !init && !is_mount_point(dir) => {
            Err(MediumError::NotAMountPoint { id: medium.id.clone(), path: dir.to_owned() })
        }
        None => Ok(None),
    }
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
    let full = match &e {
        MediumError::Io { source, .. } => is_full(source),
        MediumError::Pool(PoolError::Io { source, .. }) => is_full(source),
        _ => false,
    };
    if !full {
        return e;
    }
    let free = free_bytes(dir).unwrap_or(0);
    MediumError::FilledUp { id: medium.id.clone(), path: dir.to_owned(), free }
}

/// Copies the objects to add (and, with `--verify`, rewrites damaged ones), then the extras.
fn fill(
    (config, medium, plan, pool): (&Config, &MediumConfig, &MediumPlan, &Pool),
    opts: &SyncOptions,
    deb: Option<&Path>,
    added: &mut Vec<Sha256>,
    report: &mut SyncReport,
) -> Result<(), MediumError> {
    let local = Pool::existing(&config.store.dir);
    let mut buf = vec![0u8; 1 << 20];
    for (digest, size) in &plan.add {
        let existed = pool.size_of(digest).is_some();
        copy_object(&local, pool, digest, *size, &mut buf, &config.store.dir)?;
        if !existed {
            added.push(*digest);
        }
        report.copied.0 += 1;
        report.copied.1 += size;
    }
    if opts.verify {
        let adding: std::collections::HashSet<&Sha256> = plan.add.iter().map(|(d, _)| d).collect();
        for (digest, size) in plan.objects.iter().filter(|(d, _)| !adding.contains(d)) {
            if pool.check(digest, *size, &mut buf)? != ObjectState::Intact {
                tracing::warn!(sha256 = %digest, medium = %medium.id, "damaged object on the medium, writing it again");
                copy_object(&local, pool, digest, *size, &mut buf, &config.store.dir)?;
                report.repaired += 1;
                report.copied.1 += size;
            }
        }
    }
    report.written += report.copied.1;
    report.written += extras(config, medium, deb, plan, report)?;
    Ok(())
}

/// One object from the store's pool into the medium's, hashed while written: a store object
/// that does not match its name stops the sync (it is never carried).
fn copy_object(
    local: &Pool,
    to: &Pool,
    digest: &Sha256,
    size: u64,
    buf: &mut [u8],
    store: &Path,
) -> Result<(), MediumError> {
    let local_err = |source| MediumError::LocalObject {
        sha256: digest.to_hex(),
        user: format!("the store {}", store.display()),
        source,
    };
    let path = local.object_path(digest);
    let mut src = std::fs::File::open(&path).map_err(|e| local_err(PoolError::Io { path: path.clone(), source: e }))?;
    let mut staging = to.stage(Some(size))?;
    loop {
        let n = match src.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(local_err(PoolError::Io { path, source: e })),
        };
        match staging.write_all(&buf[..n]) {
            Err(PoolError::TooLarge { expected }) => return Err(local_err(PoolError::TooLarge { expected })),
            other => other?,
        }
    }
    match staging.commit(size, digest) {
        Err(e @ (PoolError::HashMismatch { .. } | PoolError::SizeMismatch { .. })) => Err(local_err(e)),
        other => Ok(other?),
    }
}

/// Keys, the .deb, README.txt: each written only when it changed. Returns the bytes written.
fn extras(
    config: &Config,
    medium: &MediumConfig,
    deb: Option<&Path>,
    plan: &MediumPlan,
    report: &mut SyncReport,
) -> Result<u64, MediumError> {
    let dir = medium.path.as_path();
    let mut written = 0;
    for (id, bytes) in keys(config, medium) {
        written += write_if_changed(dir, &dir.join(KEYS_DIR), &key_name(&id, &bytes), &bytes)?;
    }
    if let Some(deb) = deb {
        let (name, n) = carry_deb(dir, deb)?;
        written += n;
        report.deb = Some(name);
    } else {
        report.deb = existing_deb(dir);
    }
    let text = super::readme::text(medium, plan, report.deb.as_deref());
    written += write_if_changed(dir, dir, super::README, text.as_bytes())?;
    Ok(written)
}

/// The key bytes of every entry the medium carries that has one.
fn keys(config: &Config, medium: &MediumConfig) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for id in &medium.mirrors {
        if let Some(m) = config.mirrors.iter().find(|m| &m.id == id) {
            out.push((id.clone(), m.key_bytes.clone()));
        } else if let Some(bytes) = config.trees.iter().find(|t| &t.id == id).and_then(|t| t.key_bytes.clone()) {
            out.push((id.clone(), bytes));
        }
    }
    out
}

fn write_if_changed(root: &Path, dir: &Path, name: &str, bytes: &[u8]) -> Result<u64, MediumError> {
    if std::fs::read(dir.join(name)).is_ok_and(|old| old == bytes) {
        return Ok(0);
    }
    write_atomic(root, dir, name, bytes)
}

/// This version's .deb in apt's cache, if it is there.
fn find_deb() -> Option<PathBuf> {
    let prefix = format!("pmirror-fs_{}", env!("CARGO_PKG_VERSION"));
    let dir = std::fs::read_dir("/var/cache/apt/archives").ok()?;
    dir.filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb")))
}

/// The bytes carrying `deb` will write: none when the medium has a file of its name and size.
fn deb_bytes(dir: &Path, deb: &Path) -> u64 {
    let size = std::fs::metadata(deb).map_or(0, |m| m.len());
    let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or_default().replace(':', "%3a");
    match std::fs::metadata(dir.join(name)) {
        Ok(m) if m.len() == size => 0,
        _ => size,
    }
}

fn existing_deb(dir: &Path) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("pmirror-fs_") && n.ends_with(".deb"))
}

/// Copies the .deb to the medium's root under an exFAT-safe name (an epoch's `:` as `%3a`, as
/// apt names downloads), unless the same file is there; returns its name and the bytes written.
fn carry_deb(dir: &Path, deb: &Path) -> Result<(String, u64), MediumError> {
    let bytes = std::fs::read(deb).map_err(io_err(deb))?;
    if !bytes.starts_with(b"!<arch>\ndebian-binary") {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "not a Debian package (.deb)");
        return Err(MediumError::Io { path: deb.to_owned(), source });
    }
    let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or("pmirror-fs.deb").replace(':', "%3a");
    let written = write_if_changed(dir, dir, &name, &bytes)?;
    if written > 0 {
        for old in std::fs::read_dir(dir).map_err(io_err(dir))?.filter_map(|e| e.ok()) {
            let old_name = old.file_name().into_string().unwrap_or_default();
            if old_name != name && old_name.starts_with("pmirror-fs_") && old_name.ends_with(".deb") {
                std::fs::remove_file(old.path()).map_err(io_err(&old.path()))?;
            }
        }
    }
    Ok((name, written))
}

/// The new catalog and its view image, then the rename that makes them the medium's state.
fn commit(
    config: &Config,
    medium: &MediumConfig,
    store: &Catalog,
    plan: &MediumPlan,
    marker: Option<Marker>,
    report: &mut SyncReport,
) -> Result<(), MediumError> {
    let dir = medium.path.as_path();
    let now = unix_now();
    if marker.is_none() {
        let marker = Marker { format: FORMAT, id: medium.id.clone(), created_at: now };
        let text = serde_json::to_vec_pretty(&marker).expect("marker serializes");
        report.written += write_atomic(dir, dir, MARKER, &text)?;
    }
    let work = tempfile::tempdir().map_err(io_err(&std::env::temp_dir()))?;
    let ids: Vec<i64> = plan.chosen.iter().map(|c| c.row.id).collect();
    let published: Vec<i64> = plan.chosen.iter().filter(|c| c.publish).map(|c| c.row.id).collect();
    let mut images = ViewPublisher::for_store(dir, true, aliases(config));
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
fn install_catalog(dir: &Path, file: &Path) -> Result<u64, MediumError> {
    super::still_there(dir)?;
    let part = dir.join("tmp").join("catalog.db.part");
    let bytes = std::fs::copy(file, &part).map_err(io_err(&part))?;
    let synced = std::fs::File::open(&part).and_then(|f| f.sync_all());
    if let Err(e) = synced {
        let _ = std::fs::remove_file(&part);
        return Err(MediumError::Io { path: part, source: e });
    }
    let new = dir.join(super::CATALOG_NEW);
    std::fs::rename(&part, &new).map_err(io_err(&new))?;
    sync_dir(dir)?;
    let current = dir.join(super::CATALOG);
    std::fs::rename(&new, &current).map_err(io_err(&current))?;
    sync_dir(dir)?;
    Ok(bytes)
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
