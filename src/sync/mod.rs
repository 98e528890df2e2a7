//! `pmirror-fs sync`: every selected entry planned by its planner ([`crate::mirror`] for apt
//! mirrors, [`crate::filetree`] for trees), performed by the one engine ([`crate::engine`]),
//! its snapshot recorded, and one publish for everything the run recorded
//! ([`crate::store::Store::publish`]).
//!
//! The run is synchronous: it owns the store (SQLite stays off the async threads) and enters the
//! tokio runtime only for the network part of one entry at a time (plan, then perform).
//!
//! ```text
//! jobs::select   config entries → jobs (an unusable entry fails by name, the others run)
//! jobs::Baseline the snapshot a job syncs against (published, or a pinned mirror's newest)
//! run::run       Store::open → per job: plan → perform → record → Store::publish (once)
//! preview        plan only, against the store as it is: what `sync --dry-run` prints
//! ```

mod jobs;
mod preview;
mod report;
mod run;
mod shrink;

pub use preview::preview;
pub use report::RunReport;
pub use run::run;

/// What to sync and how.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// Mirror and tree ids; empty = all.
    pub ids: Vec<String>,
    /// Re-hash reused objects, re-download damaged ones (also fetches when upstream is unchanged).
    pub verify: bool,
    /// Publish new snapshots even when they shrink past `[sync] max-shrink`.
    pub allow_shrink: bool,
}

/// A failure of the run as a whole (a failing entry is reported in the run's report instead).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{config}: no mirror or tree with id {id:?}")]
    UnknownId { config: String, id: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}
