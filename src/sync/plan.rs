//! Phase 3 as a value: every file of the new snapshot and where its bytes come from. `--dry-run`
//! prints it; tests assert on it; [`super::execute`] performs it.

use super::metadata::{by_hash_path, Metadata};
use super::MirrorError;
use crate::config::MirrorConfig;
use crate::digest::Sha256;
use crate::tree::source::EntryKind;
use std::collections::{BTreeMap, HashSet};
use url::Url;

/// Where a planned file's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Already in the pool: nothing to fetch (re-hashed first when verifying).
    Reuse,
    /// Verified bytes fetched during the metadata phase.
    Write(Vec<u8>),
    /// To download (`fallback` when the by-hash URL is missing upstream).
    Download { url: Url, fallback: Option<Url> },
}

#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Relative to the repository root (= the mirror's view root).
    pub path: String,
    pub size: u64,
    pub sha256: Sha256,
    pub kind: EntryKind,
    pub other_hashes: Vec<(&'static str, String)>,
    pub source: Source,
    /// Missing upstream → warning and left out (optional indices, ignore-errors packages).
    pub optional: bool,
    /// Upstream Last-Modified known from the metadata phase.
    pub mtime: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MirrorPlan {
    pub mirror_id: String,
    pub files: Vec<PlannedFile>,
    pub skipped_packages: usize,
    pub warnings: Vec<String>,
    /// Release `Date`, the mtime of last resort.
    pub release_date: Option<i64>,
    pub release_sha256: Sha256,
    pub release_last_modified: Option<i64>,
}

/// Files and bytes per source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanTotals {
    pub reuse_files: u64,
    pub reuse_bytes: u64,
    pub fetch_files: u64,
    pub fetch_bytes: u64,
}

impl MirrorPlan {
    /// Unique objects per source (a file present at two paths counts once).
    pub fn totals(&self) -> PlanTotals {
        let mut seen = HashSet::new();
        let mut t = PlanTotals::default();
        for f in self.files.iter().filter(|f| seen.insert(f.sha256)) {
            if matches!(f.source, Source::Reuse) {
                t.reuse_files += 1;
                t.reuse_bytes += f.size;
            } else {
                t.fetch_files += 1;
                t.fetch_bytes += f.size;
            }
        }
        t
    }
}

/// Builds the plan: Release files and fetched indices are written from memory, everything the
/// pool has is reused, the rest is downloaded. Two different files claiming one path fail.
pub fn plan(m: &MirrorConfig, meta: Metadata, in_pool: impl Fn(&Sha256) -> bool) -> Result<MirrorPlan, MirrorError> {
    let by_hash = meta.release.verified.release().acquire_by_hash;
    let release_date = meta.release.verified.release().date;
    let mut files: BTreeMap<String, PlannedFile> = BTreeMap::new();
    let mut fetched = meta.fetched;
    for (path, body) in meta.release.files {
        let file = PlannedFile {
            size: body.bytes.len() as u64,
            sha256: Sha256::of(&body.bytes),
            kind: EntryKind::Release,
            other_hashes: Vec::new(),
            mtime: body.last_modified,
            source: Source::Write(body.bytes),
            optional: false,
            path,
        };
        insert(m, &mut files, file)?;
    }
    for idx in meta.indices {
        let source = match fetched.remove(&idx.path) {
            _ if in_pool(&idx.sha256) => Source::Reuse,
            Some(bytes) => Source::Write(bytes),
            None => index_download(m, &idx.path, &idx.sha256, by_hash)?,
        };
        let file = PlannedFile {
            path: idx.path,
            size: idx.size,
            sha256: idx.sha256,
            kind: EntryKind::Index,
            other_hashes: idx.other_hashes,
            source,
            optional: idx.optional,
            mtime: None,
        };
        insert(m, &mut files, file)?;
    }
    for p in meta.packages {
        let source = if in_pool(&p.sha256) { Source::Reuse } else { download(m, &p.filename, None)? };
        let file = PlannedFile {
            path: p.filename,
            size: p.size,
            sha256: p.sha256,
            kind: EntryKind::Package,
            other_hashes: Vec::new(),
            source,
            optional: m.ignore_errors,
            mtime: None,
        };
        insert(m, &mut files, file)?;
    }
    Ok(MirrorPlan {
        mirror_id: m.id.clone(),
        files: files.into_values().collect(),
        skipped_packages: meta.skipped_packages,
        warnings: meta.warnings,
        release_date,
        release_sha256: meta.release.release_sha256,
        release_last_modified: meta.release.release_last_modified,
    })
}

fn insert(m: &MirrorConfig, files: &mut BTreeMap<String, PlannedFile>, file: PlannedFile) -> Result<(), MirrorError> {
    match files.get(&file.path) {
        Some(existing) if existing.sha256 != file.sha256 => Err(MirrorError::new(
            &m.id,
            Some(&file.path),
            format!("two different files claim this path (sha256 {} and {})", existing.sha256, file.sha256),
        )),
        Some(_) => Ok(()),
        None => {
            files.insert(file.path.clone(), file);
            Ok(())
        }
    }
}

fn download(m: &MirrorConfig, path: &str, fallback: Option<&str>) -> Result<Source, MirrorError> {
    let base = &m.repository.url;
    let join = |p: &str| {
        let url = base.join(p).map_err(|e| MirrorError::new(&m.id, Some(p), e))?;
        // Defence in depth after safe_relative_path: a Filename must stay under the repository root.
        if !url.as_str().starts_with(base.as_str()) {
            return Err(MirrorError::new(&m.id, Some(p), "path leaves the repository root"));
        }
        Ok(url)
    };
    Ok(Source::Download { url: join(path)?, fallback: fallback.map(join).transpose()? })
}

fn index_download(m: &MirrorConfig, path: &str, sha: &Sha256, by_hash: bool) -> Result<Source, MirrorError> {
    if by_hash {
        download(m, &by_hash_path(path, sha), Some(path))
    } else {
        download(m, path, None)
    }
}
