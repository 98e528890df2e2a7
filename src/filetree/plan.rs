//! The tree sync as a value: for every wanted file, where its bytes come from — the pool
//! (unchanged upstream, or content the pool already has under the digest a list demands), the
//! lists read during verification, or a download with the check it must pass. `--dry-run`
//! prints it and the engine performs it (as a [`Plan`]).

use super::listing::ListedSize;
use super::verify::{Checks, Expected};
use super::walk::{unchanged, RemoteFile};
use crate::catalog::PublishedFile;
use crate::config::TreeConfig;
use crate::digest::Sha256;
use crate::engine::{Check, Plan, PlannedFile, Size, Source};
use crate::tree::source::EntryKind;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::HashMap;
use url::Url;

/// include/exclude globs on tree paths (`*` also matches `/`: `*.iso` matches `sub/x.iso`).
pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Filter {
    pub fn new(tree: &TreeConfig) -> Result<Filter, globset::Error> {
        let set = |patterns: &[String]| -> Result<GlobSet, globset::Error> {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                b.add(Glob::new(p)?);
            }
            b.build()
        };
        let include = if tree.include.is_empty() { None } else { Some(set(&tree.include)?) };
        Ok(Filter { include, exclude: set(&tree.exclude)? })
    }

    /// Empty include = everything; exclude wins over include.
    pub fn wants(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|i| i.is_match(path)) && !self.exclude.is_match(path)
    }
}

/// Where one file's bytes come from.
#[derive(Debug, Clone)]
pub enum How {
    /// An object the pool has: the previous snapshot's, or the digest a list demands.
    Reuse { sha256: Sha256, size: u64, mtime: Option<i64> },
    /// The previous snapshot's object if it still matches the template index's sha512 or md5
    /// (the listing shows a new date; the index decides whether the content changed), else
    /// download.
    Recheck { sha256: Sha256, size: u64, mtime: i64, expected: Expected },
    /// A list or signature read during verification.
    Write { bytes: Vec<u8>, sha256: Sha256, mtime: Option<i64> },
    /// To download, checked against `expected` when a list names the file.
    Download { expected: Option<Expected> },
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub path: String,
    pub url: Url,
    pub how: How,
    /// Upstream vouches for it: a list names it, or the key verified it (list, signature).
    pub covered: bool,
    /// The list that names it, for error messages.
    pub checked_by: Option<String>,
    /// What that list demands of it.
    pub expected: Option<Expected>,
    /// The listing's size for it.
    pub size: ListedSize,
    /// The listing's time for the file, the mtime of last resort.
    pub listed_mtime: Option<i64>,
}

/// Plans every file `filter` wants. `pool_size` answers whether (and how big) an object is in
/// the pool.
///
/// A file a list names is reused whenever the pool holds content matching the list (the list
/// vouches for it; the listing's date does not matter): by its sha256 for `SHA256SUMS`, by
/// re-hashing the previous object for aplinfo's sha512 or md5. Other files are reused when the
/// listing shows the previous snapshot's size and date. Files the lists say not to mirror
/// ([`Checks::unmirrored`]) are left out.
pub fn plan(
    files: &[RemoteFile],
    filter: &Filter,
    mut checks: Checks,
    previous: &HashMap<String, PublishedFile>,
    pool_size: impl Fn(&Sha256) -> Option<u64>,
) -> Vec<Planned> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| filter.wants(&f.path) && !checks.unmirrored.contains(&f.path)) {
        let covering = checks.expected.get(&f.path);
        let expected = covering.map(|c| c.expected);
        let checked_by = covering.map(|c| c.list.clone());
        let how = match checks.small.remove(&f.path) {
            Some(s) if s.reused => How::Reuse { sha256: s.sha256, size: s.bytes.len() as u64, mtime: s.mtime },
            Some(s) => How::Write { sha256: s.sha256, mtime: s.mtime, bytes: s.bytes },
            None => plan_file(f, expected, previous.get(&f.path), &pool_size),
        };
        let covered = expected.is_some() || checks.trusted.contains(&f.path);
        let listed_mtime = f.mtime.map(|t| t.unix);
        out.push(Planned {
            path: f.path.clone(),
            url: f.url.clone(),
            how,
            covered,
            checked_by,
            expected,
            size: f.size,
            listed_mtime,
        });
    }
    out
}

fn plan_file(
    f: &RemoteFile,
    expected: Option<Expected>,
    prev: Option<&PublishedFile>,
    pool_size: &impl Fn(&Sha256) -> Option<u64>,
) -> How {
    let fits = |size: u64| f.size == ListedSize::Unknown || f.size.admits(size);
    let download = How::Download { expected };
    // The previous object, when the pool still has it and the listing's size allows it.
    let prev = prev.filter(|p| fits(p.size) && pool_size(&p.sha256).is_some());
    match expected {
        Some(Expected::Sha256(sha)) => match pool_size(&sha) {
            Some(size) if fits(size) => {
                let mtime = prev.filter(|p| p.sha256 == sha).map(|p| p.mtime).or(f.mtime.map(|t| t.unix));
                How::Reuse { sha256: sha, size, mtime }
            }
            _ => download,
        },
        Some(expected @ (Expected::Sha512(_) | Expected::Md5(_))) => match prev {
            Some(p) if unchanged(f, p) => How::Reuse { sha256: p.sha256, size: p.size, mtime: Some(p.mtime) },
            Some(p) => How::Recheck { sha256: p.sha256, size: p.size, mtime: p.mtime, expected },
            None => download,
        },
        None => match prev.filter(|p| unchanged(f, p)) {
            Some(p) => How::Reuse { sha256: p.sha256, size: p.size, mtime: Some(p.mtime) },
            None => download,
        },
    }
}

/// The tree's plan as the engine performs it. A tree has no Release; its files' times are the
/// listing's (or the previous snapshot's, for reused ones) unless a download brings a
/// Last-Modified.
pub fn to_plan(tree_id: &str, planned: Vec<Planned>, warnings: Vec<String>) -> Plan {
    let files = planned.into_iter().map(planned_file).collect();
    Plan {
        kind: "tree",
        entry_id: tree_id.to_owned(),
        files,
        skipped_packages: 0,
        warnings,
        default_mtime: None,
        release: None,
    }
}

fn planned_file(p: Planned) -> PlannedFile {
    let listed = match p.size {
        ListedSize::Exact(n) => Size::Exact(n),
        ListedSize::Approx { bytes, .. } => Size::About(bytes),
        ListedSize::Unknown => Size::Unknown,
    };
    let (source, check, size, mtime) = match p.how {
        How::Reuse { sha256, size, mtime } => {
            let check = p.expected.map_or(Check::Unverified, Check::Digest);
            (Source::Pool { sha256, size }, check, Size::Exact(size), mtime.or(p.listed_mtime))
        }
        How::Recheck { sha256, size, mtime, expected } => {
            (Source::Recheck { sha256, size, mtime }, Check::Digest(expected), listed, p.listed_mtime)
        }
        How::Write { bytes, sha256, mtime } => {
            let size = Size::Exact(bytes.len() as u64);
            (
                Source::Memory { bytes: bytes.into(), sha256 },
                Check::Digest(Expected::Sha256(sha256)),
                size,
                mtime.or(p.listed_mtime),
            )
        }
        How::Download { expected } => (
            Source::Download { by_hash: None },
            expected.map_or(Check::Unverified, Check::Digest),
            listed,
            p.listed_mtime,
        ),
    };
    PlannedFile {
        path: p.path,
        url: p.url,
        kind: EntryKind::TreeFile,
        size,
        check,
        source,
        other_hashes: Vec::new(),
        optional: false,
        mtime,
        checked_by: p.checked_by,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
