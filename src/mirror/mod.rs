//! The apt planner: an apt mirror's next snapshot as an [`engine::Plan`](crate::engine::Plan).
//!
//! ```text
//! release::fetch_release  InRelease (If-Modified-Since) → verify with the key → companions, dates
//!   sources::choose       (several sources) every source's InRelease; the newest that verifies
//! metadata::fetch         wanted indices → one variant of each Packages family → packages
//! plan::plan              every file → reuse (in pool) | verified bytes in memory | download
//! ```
//!
//! Planning writes nothing: indices it reads come from the pool when it has them intact, else
//! into memory (the plan carries them as verified bytes).

mod ctx;
mod metadata;
mod plan;
mod release;
mod sources;

pub use ctx::{MirrorCtx, Previous};
pub use metadata::by_hash_path;

use crate::engine::{EntryError, Plan};
use metadata::Fetched;

/// The plan of a mirror's next snapshot; `None` when upstream's Release did not change since the
/// baseline (and the run does not force a fetch).
pub async fn plan(ctx: &MirrorCtx<'_>) -> Result<Option<Plan>, EntryError> {
    match metadata::fetch(ctx).await? {
        Fetched::Unchanged => Ok(None),
        Fetched::Changed(meta) => plan::plan(ctx.mirror, *meta, |sha| ctx.pool.size_of(sha)).map(Some),
    }
}
