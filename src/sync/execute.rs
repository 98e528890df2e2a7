//! Performs a [`MirrorPlan`]: writes verified in-memory bytes, downloads the rest in parallel
//! (bounded by `sync.concurrency`, one job per unique object however many paths carry it),
//! optionally re-hashes reused objects, and turns the plan into catalog entries.

use super::driver::Progress;
use super::plan::{MirrorPlan, PlannedFile, Source};
use super::MirrorError;
use crate::catalog::NewEntry;
use crate::digest::Sha256;
use crate::fetch::{Expect, FetchError, Fetcher};
use crate::pool::Pool;
use crate::tree::source::EntryKind;
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use url::Url;

pub struct ExecCtx<'a> {
    pub fetcher: &'a Fetcher,
    pub pool: &'a Pool,
    pub base: &'a Url,
    pub concurrency: usize,
    /// Re-hash reused objects and re-download damaged or missing ones.
    pub verify: bool,
    pub progress: &'a dyn Progress,
    pub now: i64,
}

#[derive(Debug, Default)]
pub struct Executed {
    pub entries: Vec<NewEntry>,
    pub fetched_files: u64,
    pub fetched_bytes: u64,
    pub reused_files: u64,
    pub reused_bytes: u64,
    /// Reused objects that `verify` found damaged and replaced.
    pub repaired: u64,
    /// Objects the pool did not hold intact before this run (downloads, new writes, repairs).
    pub written: u64,
    pub warnings: Vec<String>,
}

/// How one unique object was obtained.
enum Got {
    Reused,
    /// `wrote`: the pool did not hold it intact before; `repaired`: it held a damaged copy.
    Fetched {
        last_modified: Option<i64>,
        wrote: bool,
        repaired: bool,
    },
}

pub async fn execute(ctx: &ExecCtx<'_>, plan: MirrorPlan) -> Result<Executed, MirrorError> {
    let mut first: HashMap<Sha256, usize> = HashMap::new();
    for (i, f) in plan.files.iter().enumerate() {
        first.entry(f.sha256).or_insert(i);
    }
    let jobs: Vec<&PlannedFile> = {
        let mut idx: Vec<usize> = first.values().copied().collect();
        idx.sort_unstable();
        idx.into_iter().map(|i| &plan.files[i]).collect()
    };
    let results: HashMap<Sha256, Result<Got, FetchError>> = stream::iter(jobs)
        .map(|f| async move { (f.sha256, obtain(ctx, f).await) })
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    let mut out = Executed::default();
    let mut failed: HashMap<Sha256, String> = HashMap::new();
    for (sha, res) in &results {
        let f = &plan.files[first[sha]];
        match res {
            Ok(Got::Reused) => {
                out.reused_files += 1;
                out.reused_bytes += f.size;
            }
            Ok(Got::Fetched { wrote, repaired, .. }) => {
                out.fetched_files += 1;
                out.fetched_bytes += f.size;
                out.written += u64::from(*wrote);
                out.repaired += u64::from(*repaired);
            }
            Err(e) if f.optional && (e.is_not_found() || f.kind == EntryKind::Package) => {
                failed.insert(*sha, e.to_string());
            }
            Err(e) => return Err(MirrorError::new(&plan.mirror_id, Some(&f.path), e)),
        }
    }
    out.warnings = plan.warnings.clone();
    for f in plan.files {
        if let Some(e) = failed.get(&f.sha256) {
            out.warnings.push(format!("{}: left out: {e}", f.path));
            continue;
        }
        let last_modified = match &results[&f.sha256] {
            Ok(Got::Fetched { last_modified, .. }) => *last_modified,
            _ => None,
        };
        let mtime = last_modified.or(f.mtime).or(plan.release_date).unwrap_or(ctx.now);
        out.entries.push(NewEntry {
            path: f.path,
            sha256: f.sha256,
            size: f.size,
            mtime,
            kind: f.kind,
            other_hashes: f.other_hashes,
        });
    }
    Ok(out)
}

/// Gets one object into the pool according to its source.
async fn obtain(ctx: &ExecCtx<'_>, f: &PlannedFile) -> Result<Got, FetchError> {
    let res = match &f.source {
        Source::Reuse if ctx.verify => verify_or_repair(ctx, f).await,
        Source::Reuse => Ok(Got::Reused),
        Source::Write(bytes) => write_bytes(ctx, f, bytes).await,
        Source::Download { url, fallback } => download(ctx, f, url, fallback.as_ref()).await,
    };
    ctx.progress.advance(f.size);
    res
}

async fn download(ctx: &ExecCtx<'_>, f: &PlannedFile, url: &Url, fallback: Option<&Url>) -> Result<Got, FetchError> {
    let expect = Expect::Exactly { size: f.size, sha256: f.sha256 };
    let stored = match ctx.fetcher.download(url, ctx.pool, expect).await {
        Err(e) if e.is_not_found() && fallback.is_some() => {
            let fb = fallback.expect("checked above");
            tracing::debug!(%url, fallback = %fb, "by-hash missing upstream, using the canonical path");
            ctx.fetcher.download(fb, ctx.pool, expect).await?
        }
        other => other?,
    };
    Ok(Got::Fetched { last_modified: stored.last_modified, wrote: true, repaired: false })
}

/// Writes verified in-memory bytes (Release files, indices fetched for planning). The pool keeps
/// an object it already has — unless `verify` finds that copy damaged: then it is replaced
/// (rename over it, so readers never see the object missing).
async fn write_bytes(ctx: &ExecCtx<'_>, f: &PlannedFile, bytes: &[u8]) -> Result<Got, FetchError> {
    let url = ctx.base.join(&f.path).unwrap_or_else(|_| ctx.base.clone());
    let pool_err = |source| FetchError::Pool { url: url.to_string(), source: Box::new(source) };
    let present = ctx.pool.contains(&f.sha256);
    let damaged = present && ctx.verify && !intact(ctx, f).await?;
    if damaged {
        tracing::warn!(path = %f.path, sha256 = %f.sha256, "damaged pool object, writing it again");
        let mut staging = ctx.pool.stage(Some(f.size)).map_err(pool_err)?;
        staging.write_all(bytes).map_err(pool_err)?;
        staging.commit(f.size, &f.sha256).map_err(pool_err)?;
    } else {
        ctx.pool.put_bytes(bytes, &f.sha256).map_err(pool_err)?;
    }
    Ok(Got::Fetched { last_modified: f.mtime, wrote: damaged || !present, repaired: damaged })
}

/// Whether the pool's copy of a planned file hashes to its digest and size (off the async threads).
async fn intact(ctx: &ExecCtx<'_>, f: &PlannedFile) -> Result<bool, FetchError> {
    let url = ctx.base.join(&f.path).unwrap_or_else(|_| ctx.base.clone());
    let pool = ctx.pool.clone();
    let sha = f.sha256;
    let check = tokio::task::spawn_blocking(move || pool.rehash(&sha)).await;
    let check = check.map_err(|e| FetchError::Transport { url: url.to_string(), message: e.to_string() })?;
    let check = check.map_err(|source| FetchError::Pool { url: url.to_string(), source: Box::new(source) })?;
    Ok(check == Some((f.sha256, f.size)))
}

/// `verify`: re-hash a reused object; download it again when damaged or missing. A damaged copy
/// stays in place until the good one is renamed over it: readers (the mount) never find the
/// object missing, and if the download fails the pool is no worse than before.
async fn verify_or_repair(ctx: &ExecCtx<'_>, f: &PlannedFile) -> Result<Got, FetchError> {
    let url = ctx.base.join(&f.path).unwrap_or_else(|_| ctx.base.clone());
    if intact(ctx, f).await? {
        return Ok(Got::Reused);
    }
    tracing::warn!(path = %f.path, sha256 = %f.sha256, "pool object damaged or missing, downloading it again");
    match download(ctx, f, &url, None).await? {
        Got::Fetched { last_modified, .. } => Ok(Got::Fetched { last_modified, wrote: true, repaired: true }),
        Got::Reused => Ok(Got::Reused),
    }
}
