//! A sync as a value: every file of the new snapshot, the check its bytes must pass and where
//! they come from. Both planners build it; `sync --dry-run` prints it; [`super::perform`]
//! carries it out. Building a plan writes nothing.

use crate::digest::{Expected, Sha256};
use crate::tree::source::EntryKind;
use std::collections::HashSet;
use url::Url;

/// What a file's size is known to be before it is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// A verified index or list states it: more bytes, or fewer, fail.
    Exact(u64),
    /// A directory listing shows it rounded (Apache's `1.2G`): for progress and totals only.
    About(u64),
    Unknown,
}

impl Size {
    pub fn exact(self) -> Option<u64> {
        match self {
            Size::Exact(n) => Some(n),
            _ => None,
        }
    }

    /// Bytes it accounts for in progress and totals.
    pub fn bytes(self) -> u64 {
        match self {
            Size::Exact(n) | Size::About(n) => n,
            Size::Unknown => 0,
        }
    }
}

/// What a file's bytes must match before a snapshot may reference them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The digest a verified index or list gives (with [`Size::Exact`], checked while
    /// streaming: a mismatch never reaches the pool).
    Digest(Expected),
    /// Nothing vouches for it: stored under the sha256 computed, reported as unverified.
    Unverified,
}

impl Check {
    pub fn sha256(&self) -> Option<Sha256> {
        match self {
            Check::Digest(Expected::Sha256(s)) => Some(*s),
            _ => None,
        }
    }
}

/// Where a planned file's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An object the pool has: nothing to fetch (re-hashed first, and repaired from `url`, when
    /// verifying).
    Pool { sha256: Sha256, size: u64 },
    /// Verified bytes fetched while planning (Release files, indices, checksum lists).
    Memory { bytes: bytes::Bytes, sha256: Sha256 },
    /// To download: `by_hash` first when given (apt's by-hash path), else — or when that is
    /// missing upstream — the file's `url`.
    Download { by_hash: Option<Url> },
    /// The previous snapshot's object if it still matches the file's check (a listing shows a
    /// new date; the template index decides), else a download of `url`.
    Recheck { sha256: Sha256, size: u64, mtime: i64 },
}

#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Relative to the entry's root (= its view root).
    pub path: String,
    /// Where upstream serves it.
    pub url: Url,
    pub kind: EntryKind,
    pub size: Size,
    pub check: Check,
    pub source: Source,
    /// Digests the view shows beside sha256 (apt's by-hash directories of other algorithms).
    pub other_hashes: Vec<(&'static str, String)>,
    /// Missing upstream → a warning and left out (optional indices, ignore-errors packages).
    pub optional: bool,
    /// The file's time when known before fetching (upstream Last-Modified of bytes fetched while
    /// planning, the listing's date, the previous snapshot's).
    pub mtime: Option<i64>,
    /// The list that vouches for it, for messages ("does not match SHA256SUMS").
    pub checked_by: Option<String>,
}

impl PlannedFile {
    /// The object's sha256 when known before fetching (for a recheck: the previous object's).
    pub fn known_sha256(&self) -> Option<Sha256> {
        match &self.source {
            Source::Pool { sha256, .. } | Source::Memory { sha256, .. } | Source::Recheck { sha256, .. } => {
                Some(*sha256)
            }
            Source::Download { .. } => self.check.sha256(),
        }
    }

    /// Whether the bytes are already in the pool (reused or rechecked): not a fetch.
    pub fn is_reuse(&self) -> bool {
        matches!(self.source, Source::Pool { .. } | Source::Recheck { .. })
    }

    /// Bytes it accounts for in progress and totals.
    pub fn bytes(&self) -> u64 {
        match &self.source {
            Source::Pool { size, .. } | Source::Recheck { size, .. } => *size,
            Source::Memory { bytes, .. } => bytes.len() as u64,
            Source::Download { .. } => self.size.bytes(),
        }
    }
}

/// What a snapshot records of upstream's Release (apt mirrors): no-op detection next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseMark {
    /// Digest of the file that carried the signature (InRelease, else Release).
    pub sha256: Sha256,
    pub last_modified: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// `mirror` or `tree`.
    pub kind: &'static str,
    pub entry_id: String,
    pub files: Vec<PlannedFile>,
    /// Packages the indices list that the mirror leaves out (other architectures, unusable).
    pub skipped_packages: usize,
    pub warnings: Vec<String>,
    /// The mtime of last resort for files with none (apt: the Release `Date`).
    pub default_mtime: Option<i64>,
    pub release: Option<ReleaseMark>,
}

/// Files and bytes per source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanTotals {
    pub reuse_files: u64,
    pub reuse_bytes: u64,
    pub fetch_files: u64,
    pub fetch_bytes: u64,
}

impl Plan {
    /// Unique objects per source (an object known to be at two paths counts once).
    pub fn totals(&self) -> PlanTotals {
        let mut seen = HashSet::new();
        let mut t = PlanTotals::default();
        for f in self.files.iter().filter(|f| f.known_sha256().is_none_or(|s| seen.insert(s))) {
            if f.is_reuse() {
                t.reuse_files += 1;
                t.reuse_bytes += f.bytes();
            } else {
                t.fetch_files += 1;
                t.fetch_bytes += f.bytes();
            }
        }
        t
    }
}
