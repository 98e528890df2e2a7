//! `[[tree]]` entries: plain file trees (Proxmox's `iso/` and `images/`) mirrored from their
//! autoindex pages, verified against the checksum lists upstream publishes, and recorded as
//! snapshots of `TreeFile` entries that the sync run records and publishes with the mirrors.
//!
//! ```text
//! walk::list_tree     autoindex pages, recursively → files (path, URL, listed size and date)
//! verify::load        SHA256SUMS / aplinfo-*.dat[.gz] (+ .asc) → signature (with `key`) → digests
//!                     (aplinfo read as `pveam update` reads it: aplinfo.rs)
//! plan::plan          include/exclude; each file → reuse | write (list in memory) | recheck | download
//! plan::to_plan       the engine's Plan: crate::engine::perform downloads and checks each file
//! ```
//!
//! Guarantees, as for apt mirrors: a file a list names never enters a snapshot unless it matches;
//! with `key` set every list's detached signature must verify; any failure (HTTP error,
//! truncation, mismatch, bad or missing signature) fails the tree and its previous snapshot
//! stays published. Files no list covers are stored under their sha256 and reported as
//! unverified by upstream. Downloads stream into the pool with bounded memory.
//!
//! The template index is held to pveam's rules, neither looser nor stricter: an index
//! `pveam update` refuses fails the tree; a template pveam would fetch from outside the tree
//! (another host, a path the listing lacks) or refuse to download (no checksum) is not
//! mirrored and named in a warning line.

mod aplinfo;
mod checksums;
mod listing;
mod plan;
mod verify;
mod walk;

use crate::catalog::PublishedFile;
use crate::config::TreeConfig;
use crate::engine::{EntryError, Plan};
use crate::fetch::Fetcher;
use crate::pool::Pool;
use plan::{Filter, Planned};
use std::collections::HashMap;

/// Unverified files named in the report's warning line; the rest are counted.
const UNVERIFIED_NAMES_SHOWN: usize = 5;

/// Everything planning one tree needs.
pub struct TreeCtx<'a> {
    pub tree: &'a TreeConfig,
    pub fetcher: &'a Fetcher,
    /// Read only: lists unchanged upstream come back from it, reused objects are looked up.
    pub pool: &'a Pool,
    /// Files of the tree's sync baseline (reused when size and Last-Modified are unchanged).
    pub previous: &'a [PublishedFile],
    /// Fetch every list again instead of reading unchanged ones back from the pool.
    pub verify: bool,
}

/// The plan of a tree's next snapshot. Writes nothing.
pub async fn plan(ctx: &TreeCtx<'_>) -> Result<Plan, EntryError> {
    let tree = ctx.tree;
    let filter = Filter::new(tree).map_err(|e| EntryError::tree(&tree.id, None, format!("include/exclude: {e}")))?;
    let files = walk::list_tree(ctx.fetcher, &tree.id, &tree.url).await?;
    let previous: HashMap<String, PublishedFile> = ctx.previous.iter().map(|p| (p.path.clone(), p.clone())).collect();
    let mut checks = verify::load(ctx, &files, &previous).await?;
    let list_warnings = std::mem::take(&mut checks.warnings);
    let planned = plan::plan(&files, &filter, checks, &previous, |sha| ctx.pool.size_of(sha));
    if planned.is_empty() && !previous.is_empty() {
        let reason = format!(
            "nothing to mirror (upstream lists {} files, include/exclude keep none); the published snapshot ({} files) stays",
            files.len(),
            previous.len()
        );
        return Err(EntryError::tree(&tree.id, None, reason));
    }
    let warnings: Vec<String> = list_warnings.into_iter().chain(unverified_warning(&planned, &tree.url)).collect();
    Ok(plan::to_plan(&tree.id, planned, warnings))
}

/// One warning line for the files upstream does not vouch for, if any.
fn unverified_warning(planned: &[Planned], base: &url::Url) -> Option<String> {
    let names: Vec<&str> = planned.iter().filter(|p| !p.covered).map(|p| p.path.as_str()).collect();
    if names.is_empty() {
        return None;
    }
    let shown = names[..names.len().min(UNVERIFIED_NAMES_SHOWN)].join(", ");
    let more = names.len().saturating_sub(UNVERIFIED_NAMES_SHOWN);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    let files = if names.len() == 1 { "file" } else { "files" };
    Some(format!(
        "{} {files} unverified by upstream (no checksum list covers them): {shown}{more} (under {base})",
        names.len()
    ))
}
