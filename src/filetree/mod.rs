//! `[[tree]]` entries: plain file trees (Proxmox's `iso/` and `images/`) mirrored from their
//! autoindex pages, verified against the checksum lists upstream publishes, and recorded as
//! snapshots of `TreeFile` entries that the driver publishes with the mirrors of the run.
//!
//! ```text
//! walk::list_tree     autoindex pages, recursively → files (path, URL, listed size and date)
//! verify::load        SHA256SUMS / aplinfo-*.dat[.gz] (+ .asc) → signature (with `key`) → digests
//!                     (aplinfo read as `pveam update` reads it: aplinfo.rs)
//! plan::plan          include/exclude; each file → reuse | write (list in memory) | recheck | download
//! execute::execute    bounded parallel downloads into the pool, each checked against its list
//! sync_tree           report; a snapshot when any path or content changed
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
mod execute;
mod listing;
mod plan;
mod verify;
mod walk;

use crate::catalog::{NewSnapshot, PublishedFile};
use crate::config::TreeConfig;
use crate::digest::Sha256;
use crate::fetch::Fetcher;
use crate::pool::Pool;
use crate::sync::{unix_now, MirrorError, MirrorOutcome, MirrorReport, Progress};
use plan::{Filter, Planned};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Unverified files named in the report's warning line; the rest are counted.
const UNVERIFIED_NAMES_SHOWN: usize = 5;

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
    let started = Instant::now();
    let tree = ctx.tree;
    let filter = Filter::new(tree).map_err(|e| MirrorError::new(&tree.id, None, format!("include/exclude: {e}")))?;
    let files = walk::list_tree(ctx.fetcher, &tree.id, &tree.url).await?;
    let previous: HashMap<String, PublishedFile> = ctx.previous.iter().map(|p| (p.path.clone(), p.clone())).collect();
    let mut checks = verify::load(ctx, &files, &previous).await?;
    let list_warnings = std::mem::take(&mut checks.warnings);
    let planned = plan::plan(&files, &filter, checks, &previous, |sha| pool_size(ctx.pool, sha));
    if planned.is_empty() && !previous.is_empty() {
        let reason = format!(
            "nothing to mirror (upstream lists {} files, include/exclude keep none); the published snapshot ({} files) stays",
            files.len(),
            previous.len()
        );
        return Err(MirrorError::new(&tree.id, None, reason));
    }
    let warnings: Vec<String> = list_warnings.into_iter().chain(unverified_warning(&planned, &tree.url)).collect();
    if ctx.dry_run {
        let plan = plan::to_mirror_plan(&tree.id, &planned, warnings.clone());
        let totals = plan.totals();
        let mut r = MirrorReport::new(&tree.id, MirrorOutcome::Planned(Box::new(plan)), started.elapsed());
        (r.fetched_files, r.fetched_bytes, r.reused_files, r.reused_bytes) =
            (totals.fetch_files, totals.fetch_bytes, totals.reuse_files, totals.reuse_bytes);
        r.warnings = warnings;
        return Ok((r, None));
    }
    let total: u64 = planned.iter().map(|p| execute::planned_size(&p.how)).sum();
    ctx.progress.mirror_started(&tree.id, planned.len() as u64, total);
    let done = execute::execute(ctx, planned).await;
    ctx.progress.mirror_finished(&tree.id);
    let done = done?;
    let mut r = MirrorReport::new(&tree.id, MirrorOutcome::Unchanged, started.elapsed());
    (r.fetched_files, r.fetched_bytes, r.reused_files, r.reused_bytes) =
        (done.fetched_files, done.fetched_bytes, done.reused_files, done.reused_bytes);
    r.warnings = warnings;
    if done.repaired > 0 {
        r.warnings.push(format!("{} damaged pool objects downloaded again", done.repaired));
    }
    if same_files(&done.entries, &ctx.previous) {
        return Ok((r, None));
    }
    let snapshot = NewSnapshot {
        mirror_id: tree.id.clone(),
        created_at: unix_now(),
        release_sha256: None,
        release_last_modified: None,
        entries: done.entries,
    };
    Ok((r, Some(snapshot)))
}

/// Size of the pool object with this digest, if the pool has it.
fn pool_size(pool: &Pool, sha: &Sha256) -> Option<u64> {
    std::fs::metadata(pool.object_path(sha)).ok().filter(|m| m.is_file()).map(|m| m.len())
}

/// Whether the new entries are exactly the published snapshot's (same paths, same content).
fn same_files(entries: &[crate::catalog::NewEntry], previous: &[PublishedFile]) -> bool {
    let new: BTreeMap<&str, Sha256> = entries.iter().map(|e| (e.path.as_str(), e.sha256)).collect();
    let old: BTreeMap<&str, Sha256> = previous.iter().map(|p| (p.path.as_str(), p.sha256)).collect();
    new == old
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
