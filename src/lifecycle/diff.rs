//! `snapshot diff ID A B`: what changed between two snapshots of one mirror or tree.
//!
//! Apt mirrors are compared package by package, per component and architecture, from the
//! Packages indices both snapshots carry (read from the pool, checked against their digest):
//! added, removed, upgraded or downgraded (dpkg's version order, the `debversion` crate), or
//! changed when the newest version stayed but others came or went (Proxmox's pvetest keeps two
//! versions of a package). Trees are compared file by file.

use super::LifecycleError;
use crate::apt::compression::{decompress, strip_compression};
use crate::apt::packages::{parse_packages, Package};
use crate::catalog::{Catalog, PublishedFile};
use crate::pool::Pool;
use crate::tree::source::EntryKind;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// Largest decompressed Packages index we read (Debian's biggest is ~100 MiB; far beyond that
/// is a decompression bomb, not an index).
const MAX_INDEX_DECOMPRESSED: u64 = 4 << 30;
/// Which variant of a Packages family to read: no decompression first, then the fastest decoders.
const VARIANT_PREFERENCE: &[&str] = &["", ".gz", ".xz", ".bz2", ".lzma"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotDiff {
    pub mirror: String,
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub body: DiffBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DiffBody {
    Packages { indices: Vec<IndexDiff> },
    Files { files: Vec<FileChange> },
}

/// Changes within one `<component>/binary-<architecture>/Packages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexDiff {
    pub component: String,
    pub architecture: String,
    pub changes: Vec<PackageChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Upgraded,
    Downgraded,
    /// Same newest version; older versions came or went.
    Changed,
}

/// One package (name and its own `Architecture`) whose versions differ; versions oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    pub name: String,
    pub architecture: String,
    pub change: Change,
    pub old: Vec<String>,
    pub new: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileVersion {
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub change: FileChangeKind,
    pub old: Option<FileVersion>,
    pub new: Option<FileVersion>,
}

/// Compares snapshots `from` and `to` of `mirror`.
pub fn diff(
    catalog: &Catalog,
    pool: &Pool,
    mirror: &str,
    from: &str,
    to: &str,
) -> Result<SnapshotDiff, LifecycleError> {
    let kind = catalog
        .mirrors()?
        .into_iter()
        .find(|m| m.id == mirror)
        .map(|m| m.kind)
        .ok_or_else(|| LifecycleError::UnknownMirror(mirror.to_owned()))?;
    let files = |name: &str| -> Result<Vec<PublishedFile>, LifecycleError> {
        let no_snapshot = || LifecycleError::NoSnapshot { mirror: mirror.to_owned(), name: name.to_owned() };
        let id = catalog.snapshot_id(mirror, name)?.ok_or_else(no_snapshot)?;
        Ok(catalog.snapshot_files(id)?)
    };
    let (a, b) = (files(from)?, files(to)?);
    let body = if kind == "tree" {
        DiffBody::Files { files: diff_files(&a, &b) }
    } else {
        let read = |name: &str, files: &[PublishedFile]| {
            read_indices(pool, files).map_err(|(path, reason)| LifecycleError::Index {
                mirror: mirror.to_owned(),
                snapshot: name.to_owned(),
                path,
                reason,
            })
        };
        DiffBody::Packages { indices: diff_indices(read(from, &a)?, read(to, &b)?) }
    };
    Ok(SnapshotDiff { mirror: mirror.to_owned(), from: from.to_owned(), to: to.to_owned(), body })
}

/// (component, architecture) of a Packages index path.
type IndexKey = (String, String);

/// `dists/<suite>/<component…>/binary-<arch>/Packages[.ext]` → ((component, arch), ext).
fn index_key(path: &str) -> Option<(IndexKey, &str)> {
    let base = strip_compression(path);
    let ext = &path[base.len()..];
    let dir = base.strip_suffix("/Packages")?;
    if dir.contains("/by-hash/") || dir.contains(".diff") {
        return None;
    }
    let rest = dir.strip_prefix("dists/")?.split_once('/')?.1;
    let (component, arch) = rest.rsplit_once("/binary-")?;
    (!component.is_empty() && !arch.contains('/')).then(|| ((component.to_owned(), arch.to_owned()), ext))
}

/// Parses one variant of every Packages family of a snapshot; Err((path, reason)).
fn read_indices(pool: &Pool, files: &[PublishedFile]) -> Result<BTreeMap<IndexKey, Vec<Package>>, (String, String)> {
    let mut families: BTreeMap<IndexKey, Vec<(usize, &PublishedFile)>> = BTreeMap::new();
    for f in files.iter().filter(|f| f.kind == EntryKind::Index) {
        if let Some((key, ext)) = index_key(&f.path) {
            let rank = VARIANT_PREFERENCE.iter().position(|e| *e == ext).unwrap_or(usize::MAX);
            families.entry(key).or_default().push((rank, f));
        }
    }
    let mut out = BTreeMap::new();
    for (key, mut variants) in families {
        variants.sort_by_key(|(rank, _)| *rank);
        let mut last = None;
        for (_, f) in variants {
            match read_index(pool, f) {
                Ok(packages) => {
                    out.insert(key.clone(), packages);
                    last = None;
                    break;
                }
                Err(reason) => last = Some((f.path.clone(), reason)),
            }
        }
        if let Some(err) = last {
            return Err(err);
        }
    }
    Ok(out)
}

fn read_index(pool: &Pool, f: &PublishedFile) -> Result<Vec<Package>, String> {
    let bytes = crate::lifecycle::read_object(pool, f)?;
    let text = decompress(&f.path, &bytes, MAX_INDEX_DECOMPRESSED).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text);
    parse_packages(&text).map(|index| index.packages).map_err(|e| e.to_string())
}

/// Per index present in either snapshot, the package changes (indices without any are left out).
pub fn diff_indices(
    old: BTreeMap<IndexKey, Vec<Package>>,
    mut new: BTreeMap<IndexKey, Vec<Package>>,
) -> Vec<IndexDiff> {
    let mut keys: BTreeSet<IndexKey> = old.keys().cloned().collect();
    keys.extend(new.keys().cloned());
    let mut old = old;
    keys.into_iter()
        .filter_map(|key| {
            let a = old.remove(&key).unwrap_or_default();
            let b = new.remove(&key).unwrap_or_default();
            let changes = diff_packages(&a, &b);
            (!changes.is_empty()).then_some(IndexDiff { component: key.0, architecture: key.1, changes })
        })
        .collect()
}

/// Versions of each (name, architecture), compared by their newest version.
pub fn diff_packages(old: &[Package], new: &[Package]) -> Vec<PackageChange> {
    type Versions = BTreeMap<(String, String), BTreeSet<String>>;
    let group = |packages: &[Package]| {
        let mut m: Versions = BTreeMap::new();
        for p in packages {
            m.entry((p.name.clone(), p.architecture.clone())).or_default().insert(p.version.clone());
        }
        m
    };
    let (mut a, mut b) = (group(old), group(new));
    let mut keys: BTreeSet<(String, String)> = a.keys().cloned().collect();
    keys.extend(b.keys().cloned());
    let mut out = Vec::new();
    for key in keys {
        let old = sorted_versions(a.remove(&key).unwrap_or_default());
        let new = sorted_versions(b.remove(&key).unwrap_or_default());
        let change = match (old.last(), new.last()) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            (Some(o), Some(n)) => match compare_versions(o, n) {
                Ordering::Less => Change::Upgraded,
                Ordering::Greater => Change::Downgraded,
                Ordering::Equal if old == new => continue,
                Ordering::Equal => Change::Changed,
            },
        };
        out.push(PackageChange { name: key.0, architecture: key.1, change, old, new });
    }
    out
}

/// dpkg order; a version `debversion` cannot parse sorts by its text (never a panic, never lost).
fn compare_versions(a: &str, b: &str) -> Ordering {
    match (a.parse::<debversion::Version>(), b.parse::<debversion::Version>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

fn sorted_versions(set: BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by(|a, b| compare_versions(a, b));
    v
}

/// Files added, removed or changed (other content), by path.
pub fn diff_files(old: &[PublishedFile], new: &[PublishedFile]) -> Vec<FileChange> {
    let version = |f: &PublishedFile| FileVersion { sha256: f.sha256.to_hex(), size: f.size };
    let a: BTreeMap<&str, &PublishedFile> = old.iter().map(|f| (f.path.as_str(), f)).collect();
    let b: BTreeMap<&str, &PublishedFile> = new.iter().map(|f| (f.path.as_str(), f)).collect();
    let paths: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let (o, n) = (a.get(path), b.get(path));
            let change = match (o, n) {
                (None, _) => FileChangeKind::Added,
                (_, None) => FileChangeKind::Removed,
                (Some(o), Some(n)) if o.sha256 != n.sha256 => FileChangeKind::Changed,
                _ => return None,
            };
            Some(FileChange { path: path.to_owned(), change, old: o.map(|f| version(f)), new: n.map(|f| version(f)) })
        })
        .collect()
}

#[cfg(test)]
mod tests;
