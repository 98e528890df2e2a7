//! What the apt planner's phases share: the mirror being planned, the fetcher and pool it
//! reads through, and the verified Release files phase 1 hands to phase 2.

use crate::apt::signature::VerifiedRelease;
use crate::config::MirrorConfig;
use crate::digest::Sha256;
use crate::engine::{Cause, EntryError};
use crate::fetch::{Body, Fetcher};
use crate::pool::Pool;
use url::Url;

/// Release/InRelease larger than this is not a Release file (Debian's is ~200 KiB).
pub const MAX_RELEASE_SIZE: u64 = 64 << 20;

/// What the mirror's previously published snapshot says about upstream's Release.
#[derive(Debug, Clone, Copy, Default)]
pub struct Previous {
    pub release_sha256: Option<Sha256>,
    pub release_last_modified: Option<i64>,
}

/// The signed files of the suite as fetched (paths relative to the repository root).
#[derive(Debug)]
pub struct ReleaseFiles {
    pub files: Vec<(String, Body)>,
    pub verified: VerifiedRelease,
    /// Digest of the file that carried the signature (InRelease, else Release): no-op detection.
    pub release_sha256: Sha256,
    pub release_last_modified: Option<i64>,
    /// Release / Release.gpg left out beside a verifying InRelease (stale or bad upstream).
    pub warnings: Vec<String>,
}

pub struct MirrorCtx<'a> {
    pub mirror: &'a MirrorConfig,
    pub fetcher: &'a Fetcher,
    pub pool: &'a Pool,
    pub previous: Previous,
    /// Fetch and verify even when upstream's Release did not change (`sync --verify`).
    pub force: bool,
}

impl MirrorCtx<'_> {
    pub fn err(&self, file: &str, cause: impl Into<Cause>) -> EntryError {
        EntryError::mirror(&self.mirror.id, Some(file), cause)
    }

    pub fn dists(&self) -> String {
        format!("dists/{}", self.mirror.repository.suite)
    }

    pub fn url(&self, path: &str) -> Result<Url, EntryError> {
        self.mirror.repository.url.join(path).map_err(|e| self.err(path, e))
    }
}
