//! `[[tree]]` entries: ISO images and container templates mirrored as verified file trees
//! (being written; see issue 4).

use crate::catalog::{NewSnapshot, PublishedFile};
use crate::config::TreeConfig;
use crate::fetch::Fetcher;
use crate::pool::Pool;
use crate::sync::{MirrorError, MirrorReport, Progress};

/// Everything one tree sync needs.
pub struct TreeCtx<'a> {
    pub tree: &'a TreeConfig,
    pub fetcher: &'a Fetcher,
    pub pool: &'a Pool,
    pub concurrency: usize,
    pub progress: &'a dyn Progress,
    /// Files of the tree's published snapshot (reused when size and Last-Modified are unchanged).
    pub previous: Vec<PublishedFile>,
    /// Stop after planning: report what would be fetched, write nothing.
    pub dry_run: bool,
    /// Re-hash reused objects, re-download damaged ones.
    pub verify: bool,
    pub now: i64,
}

/// Syncs one tree: the report, and the snapshot to record when anything changed.
pub async fn sync_tree(ctx: &TreeCtx<'_>) -> Result<(MirrorReport, Option<NewSnapshot>), MirrorError> {
    Err(MirrorError::new(&ctx.tree.id, None, "file trees are not implemented yet"))
}
