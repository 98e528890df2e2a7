//! The apt mirror's metadata as a plan: Release files and the indices fetched for planning are
//! verified bytes in memory, everything the pool has is reused, the rest is downloaded (by hash
//! when the Release offers it).

use super::metadata::{by_hash_path, Metadata};
use crate::config::MirrorConfig;
use crate::digest::{Expected, Sha256};
use crate::engine::{Check, EntryError, Plan, PlannedFile, ReleaseMark, Size, Source};
use crate::tree::source::EntryKind;
use std::collections::BTreeMap;
use url::Url;

/// Builds the plan. `pool_size` says whether (and how big) the pool has an object. Two
/// different files claiming one path fail.
pub fn plan(m: &MirrorConfig, meta: Metadata, pool_size: impl Fn(&Sha256) -> Option<u64>) -> Result<Plan, EntryError> {
    let by_hash = meta.release.verified.release().acquire_by_hash;
    let release_date = meta.release.verified.release().date;
    let mut files: BTreeMap<String, PlannedFile> = BTreeMap::new();
    let mut fetched = meta.fetched;
    for (path, body) in meta.release.files {
        let sha256 = Sha256::of(&body.bytes);
        let size = body.bytes.len() as u64;
        let source = Source::Memory { bytes: body.bytes.into(), sha256 };
        let file = file(m, path, EntryKind::Release, size, sha256, source, false)?;
        insert(m, &mut files, PlannedFile { mtime: body.last_modified, ..file })?;
    }
    for idx in meta.indices {
        let source = match fetched.remove(&idx.path) {
            _ if pool_size(&idx.sha256) == Some(idx.size) => Source::Pool { sha256: idx.sha256, size: idx.size },
            Some(bytes) => Source::Memory { bytes: bytes.into(), sha256: idx.sha256 },
            None => Source::Download {
                by_hash: by_hash.then(|| join(m, &by_hash_path(&idx.path, &idx.sha256))).transpose()?,
            },
        };
        let file = file(m, idx.path, EntryKind::Index, idx.size, idx.sha256, source, idx.optional)?;
        insert(m, &mut files, PlannedFile { other_hashes: idx.other_hashes, ..file })?;
    }
    for p in meta.packages {
        let source = match pool_size(&p.sha256) {
            Some(size) if size == p.size => Source::Pool { sha256: p.sha256, size },
            _ => Source::Download { by_hash: None },
        };
        let file = file(m, p.filename, EntryKind::Package, p.size, p.sha256, source, m.ignore_errors)?;
        insert(m, &mut files, file)?;
    }
    Ok(Plan {
        kind: "mirror",
        entry_id: m.id.clone(),
        files: files.into_values().collect(),
        skipped_packages: meta.skipped_packages,
        warnings: meta.warnings,
        default_mtime: release_date,
        release: Some(ReleaseMark {
            sha256: meta.release.release_sha256,
            last_modified: meta.release.release_last_modified,
        }),
    })
}

/// A file the Release (or a Packages index it verifies) names with its size and sha256.
fn file(
    m: &MirrorConfig,
    path: String,
    kind: EntryKind,
    size: u64,
    sha256: Sha256,
    source: Source,
    optional: bool,
) -> Result<PlannedFile, EntryError> {
    Ok(PlannedFile {
        url: join(m, &path)?,
        path,
        kind,
        size: Size::Exact(size),
        check: Check::Digest(Expected::Sha256(sha256)),
        source,
        other_hashes: Vec::new(),
        optional,
        mtime: None,
        checked_by: None,
    })
}

fn insert(m: &MirrorConfig, files: &mut BTreeMap<String, PlannedFile>, file: PlannedFile) -> Result<(), EntryError> {
    match files.get(&file.path) {
        Some(existing) if existing.check != file.check => Err(EntryError::mirror(
            &m.id,
            Some(&file.path),
            format!(
                "two different files claim this path (sha256 {} and {})",
                existing.check.sha256().map_or_else(String::new, |s| s.to_string()),
                file.check.sha256().map_or_else(String::new, |s| s.to_string())
            ),
        )),
        Some(_) => Ok(()),
        None => {
            files.insert(file.path.clone(), file);
            Ok(())
        }
    }
}

/// The URL of a path under the repository root. Defence in depth after `safe_relative_path`: a
/// Filename must stay under the repository root.
fn join(m: &MirrorConfig, path: &str) -> Result<Url, EntryError> {
    let base = &m.repository.url;
    let url = base.join(path).map_err(|e| EntryError::mirror(&m.id, Some(path), e))?;
    if !url.as_str().starts_with(base.as_str()) {
        return Err(EntryError::mirror(&m.id, Some(path), "path leaves the repository root"));
    }
    Ok(url)
}
