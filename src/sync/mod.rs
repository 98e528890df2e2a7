//! `pmirror-fs sync`: the three phases of an apt mirror — verified Release → verified indices →
//! package files — then one publish transaction for everything the run synced.
//!
//! The driver ([`run`]) is synchronous: it owns the catalog (SQLite stays off the async threads)
//! and enters the tokio runtime only for the network phases of one mirror at a time. Inside a
//! mirror, downloads run in parallel, bounded by `sync.concurrency`.
//!
//! ```text
//! metadata::fetch   InRelease (If-Modified-Since) → verify → wanted indices → Packages → packages
//! plan::plan        every file → reuse (in pool) | write (verified bytes in memory) | download
//! execute::execute  bounded parallel downloads into the pool (hash-checked, capped, renamed)
//! run               record snapshot per mirror; publish all in one transaction
//! ```

mod driver;
mod execute;
mod metadata;
mod plan;
mod publish;
mod report;

pub use driver::{aliases, run, unix_now, Progress, SilentProgress, SyncRequest};
pub use execute::Executed;
pub use plan::{MirrorPlan, PlannedFile, Source};
pub use publish::{build_view, images_dir, ViewPublisher};
pub use report::{MirrorOutcome, MirrorReport, RunReport};

/// A failure of one mirror: one line naming the mirror and, when known, the file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("mirror {mirror}: {}{reason}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct MirrorError {
    pub mirror: String,
    pub file: Option<String>,
    pub reason: String,
}

impl MirrorError {
    pub fn new(mirror: &str, file: Option<&str>, reason: impl std::fmt::Display) -> MirrorError {
        MirrorError { mirror: mirror.to_owned(), file: file.map(str::to_owned), reason: reason.to_string() }
    }
}
