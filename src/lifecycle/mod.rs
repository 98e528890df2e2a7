//! The snapshot lifecycle beyond sync and publish: garbage collection of the pool, re-hashing of
//! pool objects (`verify`), package-level diffs between two snapshots, and the checks
//! `snapshot publish` warns about (a rolled-back Release whose `Valid-Until` has passed).
//!
//! ```text
//! gc::plan      catalog (which objects some snapshot row references) + pool scan → GcPlan (a value)
//! gc::perform   GcPlan → unlink pool files, delete object rows          (store lock held)
//! verify        referenced objects → re-hash on N threads → damage + every mirror/snapshot/path using it
//! diff          two snapshots → Packages indices from the pool → added/removed/upgraded/downgraded
//! release       a snapshot's InRelease (verified again) or Release → warnings before a rollback
//! ```
//!
//! Planning is pure where it can be (`gc::plan_from`, `diff::diff_packages`, `diff::diff_files`,
//! `release::expiry_warning`); the functions around them only read the catalog and the pool.

pub mod diff;
pub mod gc;
pub mod release;
pub mod verify;

use crate::catalog::CatalogError;
use crate::pool::PoolError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no mirror or tree {0:?} in the catalog")]
    UnknownMirror(String),
    #[error("{mirror}: no snapshot named {name}")]
    NoSnapshot { mirror: String, name: String },
    /// An index of a snapshot cannot be read from the pool (missing, damaged or unparsable).
    #[error("{mirror} snapshot {snapshot}: {path}: {reason}")]
    Index { mirror: String, snapshot: String, path: String, reason: String },
}

#[cfg(test)]
mod gc_tests;

/// Bytes of a snapshot file from the pool, checked against its size and digest; a missing or
/// damaged object is an error naming it.
fn read_object(pool: &crate::pool::Pool, f: &crate::catalog::PublishedFile) -> Result<Vec<u8>, String> {
    match pool.read_verified(&f.sha256, Some(f.size)) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(format!("pool object {} is missing (run `pmirror-fs verify`)", f.sha256)),
        Err(e) => Err(format!("pool object {}: {e} (run `pmirror-fs verify`)", f.sha256)),
    }
}
