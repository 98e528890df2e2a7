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
    pub repaired: u64,
    pub warnings: Vec<String>,
}

/// How one unique object was obtained.
enum Got {
    Reused,
    Fetched { last_modified: Option<i64>, repaired: bool },
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
            Ok(Got::Fetched { repaired, .. }) => {
                out.fetched_files += 1;
                out.fetched_bytes += f.size;
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
        Source::Write(bytes) => {
            let url = ctx.base.join(&f.path).unwrap_or_else(|_| ctx.base.clone());
            ctx.pool
                .put_bytes(bytes, &f.sha256)
                .map(|()| Got::Fetched { last_modified: f.mtime, repaired: false })
                .map_err(|source| FetchError::Pool { url: url.to_string(), source: Box::new(source) })
        }
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
    Ok(Got::Fetched { last_modified: stored.last_modified, repaired: false })
}

/// `verify`: re-hash a reused object; remove and re-download it when damaged or missing.
async fn verify_or_repair(ctx: &ExecCtx<'_>, f: &PlannedFile) -> Result<Got, FetchError> {
    let url = ctx.base.join(&f.path).unwrap_or_else(|_| ctx.base.clone());
    let pool = ctx.pool.clone();
    let sha = f.sha256;
    let check = tokio::task::spawn_blocking(move || pool.rehash(&sha)).await;
    let check = check.map_err(|e| FetchError::Transport { url: url.to_string(), message: e.to_string() })?;
    match check.map_err(|source| FetchError::Pool { url: url.to_string(), source: Box::new(source) })? {
        Some((actual, size)) if actual == f.sha256 && size == f.size => return Ok(Got::Reused),
        Some((actual, _)) => {
            tracing::warn!(path = %f.path, expected = %f.sha256, %actual, "damaged pool object, re-downloading");
            ctx.pool
                .remove(&f.sha256)
                .map_err(|source| FetchError::Pool { url: url.to_string(), source: Box::new(source) })?;
        }
        None => tracing::warn!(path = %f.path, sha256 = %f.sha256, "pool object missing, re-downloading"),
    }
    let got = download(ctx, f, &url, None).await?;
    match got {
        Got::Fetched { last_modified, .. } => Ok(Got::Fetched { last_modified, repaired: true }),
        Got::Reused => Ok(Got::Reused),
    }
}
