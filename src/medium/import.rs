//! `medium import`: the snapshots of a medium copied into the local store, verified — objects
//! hashed as they are copied into the pool, the catalog rows added in one transaction (names,
//! history and by-hash digests kept), then one publish as a sync's: the medium's published
//! snapshot of each mirror, unless the store already publishes a newer one of it.

use super::{catalog_file, write_atomic, Medium, MediumError, KEYS_DIR};
use crate::config::Config;
use crate::digest::Sha256;
use crate::pool::{CopyError, Pool};
use crate::store::{Settings, Store};
use std::path::Path;
use std::time::{Duration, Instant};

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub id: String,
    /// `mirror/name` of the snapshots added, and of those the store already had.
    pub added: Vec<String>,
    pub present: Vec<String>,
    /// Objects copied into the pool (count, bytes) and those it already had.
    pub copied: (u64, u64),
    pub already: u64,
    /// `mirror/name` published by this import; mirrors whose newer local snapshot stays published.
    pub published: Vec<String>,
    pub kept_newer: Vec<String>,
    /// Mirrors pinned locally (their imported snapshot is recorded, not published).
    pub held: Vec<String>,
    pub pruned: Vec<String>,
    pub generation: Option<u64>,
    pub elapsed: Duration,
}

pub fn import(config: &Config, dir: &Path) -> Result<ImportReport, MediumError> {
    let started = Instant::now();
    let medium = Medium::open(dir)?;
    let mut store = Store::open(Settings::of(config))?;
    let mut report = ImportReport { id: medium.marker.id.clone(), ..ImportReport::default() };
    let mut new_ids = Vec::new();
    for row in medium.catalog.snapshots(None)? {
        if store.catalog().snapshot_id(&row.mirror_id, &row.name)?.is_none() {
            new_ids.push(row.id);
        }
    }
    let objects = medium.catalog.objects_of(&new_ids)?;
    copy_objects(&medium, store.pool(), &objects, &mut report)?;
    let before: Vec<(String, Option<String>)> =
        store.catalog().mirrors()?.into_iter().map(|m| (m.id, m.published.map(|p| p.name))).collect();
    let file = catalog_file(dir).ok_or_else(|| MediumError::NotAMedium { path: dir.to_owned() })?;
    let imported = store.import(&file)?;
    report.added = imported.added.iter().map(|(_, n)| n.clone()).collect();
    report.present = imported.present;
    let mut picks = Vec::new();
    for (mirror, id) in imported.published {
        let name = store.catalog().snapshot_by_id(id)?.map(|r| r.name).unwrap_or_default();
        let local = before.iter().find(|(m, _)| *m == mirror).and_then(|(_, p)| p.clone());
        match local {
            Some(local) if local == name => {}
            Some(local) if local > name => report.kept_newer.push(format!("{mirror}/{local}")),
            _ => {
                picks.push(id);
                report.published.push(format!("{mirror}/{name}"));
            }
        }
    }
    // The keys of what this import publishes: an older medium's do not replace the store's.
    let published: Vec<&str> = report.published.iter().filter_map(|p| p.split_once('/').map(|(m, _)| m)).collect();
    copy_keys(&medium, &config.store.dir, &published)?;
    if !picks.is_empty() || !report.added.is_empty() {
        let outcome = store.publish(&picks)?;
        report.published.retain(|p| !outcome.held.iter().any(|m| p.starts_with(&format!("{m}/"))));
        report.held = outcome.held;
        report.pruned = outcome.pruned;
        report.generation = Some(outcome.generation);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Copies the objects the store lacks, each hashed while written (`Staging::commit`); any that
/// is damaged or missing on the medium refuses the import before the catalog changes.
fn copy_objects(
    medium: &Medium,
    pool: &Pool,
    objects: &[(Sha256, u64)],
    report: &mut ImportReport,
) -> Result<(), MediumError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut damaged: Vec<(Sha256, String)> = Vec::new();
    for (digest, size) in objects {
        if pool.size_of(digest) == Some(*size) {
            report.already += 1;
            continue;
        }
        match pool.copy_in(&medium.pool.object_path(digest), digest, *size, &mut buf) {
            Ok(()) => {
                report.copied.0 += 1;
                report.copied.1 += size;
            }
            Err(CopyError::Source(why)) => damaged.push((*digest, why.to_string())),
            Err(CopyError::Dest(e)) => return Err(e.into()),
        }
    }
    let Some((digest, why)) = damaged.first() else { return Ok(()) };
    let users = medium.catalog.object_users(&[*digest])?;
    let used = users.first().map(|u| format!(" ({}/{}: {})", u.mirror_id, u.snapshot, u.path)).unwrap_or_default();
    Err(MediumError::Damaged {
        path: medium.dir.clone(),
        count: damaged.len(),
        first: format!("{digest}{used}: {why}"),
    })
}

/// The medium's keys into `<store>/keys/` (what `medium sources <store>` points at).
fn copy_keys(medium: &Medium, store: &Path, mirrors: &[&str]) -> Result<(), MediumError> {
    for id in mirrors {
        let Some(from) = super::key_file(&medium.dir, id) else { continue };
        let name = from.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let bytes = std::fs::read(&from).map_err(super::io_err(&from))?;
        write_atomic(store, &store.join(KEYS_DIR), &name, &bytes)?;
        let other = if name.ends_with(".asc") { format!("{id}.gpg") } else { format!("{id}.asc") };
        match std::fs::remove_file(store.join(KEYS_DIR).join(&other)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(MediumError::Io { path: store.join(KEYS_DIR).join(other), source: e }),
        }
    }
    Ok(())
}
