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
use std::collections::{BTreeMap, HashMap, HashSet};
use url::Url;

/// Suffixes of the compressed variants apt fetches instead of an uncompressed index (apt's
/// `Acquire::CompressionTypes`: xz, bzip2, lzma, gzip, zstd, lz4).
const COMPRESSED_VARIANTS: [&str; 6] = [".xz", ".gz", ".bz2", ".lzma", ".zst", ".lz4"];

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
    /// Uncompressed indices the Release lists that upstream does not serve beside a compressed
    /// variant (normal for Debian: not a warning).
    pub never_served: u64,
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
    // Every path of each unique object, in plan order: one job per object.
    let mut group_of: HashMap<Sha256, usize> = HashMap::new();
    let mut groups: Vec<Vec<&PlannedFile>> = Vec::new();
    for f in &plan.files {
        let g = *group_of.entry(f.sha256).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(f);
    }
    let results: HashMap<Sha256, Attempt> = stream::iter(&groups)
        .map(|paths| async move { (paths[0].sha256, obtain_any(ctx, paths).await) })
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    let mut out = Executed::default();
    for paths in &groups {
        let f = paths[0];
        match &results[&f.sha256].got {
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
            Err(e) if paths.iter().all(|p| p.optional) && (e.is_not_found() || f.kind == EntryKind::Package) => {}
            Err(e) => return Err(MirrorError::new(&plan.mirror_id, Some(&f.path), e)),
        }
    }
    out.warnings = plan.warnings.clone();
    let obtained: HashSet<&str> =
        plan.files.iter().filter(|f| results[&f.sha256].got.is_ok()).map(|f| f.path.as_str()).collect();
    let mut missing_patches: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in &plan.files {
        let attempt = &results[&f.sha256];
        if let Err(e) = &attempt.got {
            // The error of this path's own URL (another path of the object may have failed first).
            let own =
                attempt.errors.iter().find(|(p, _)| *p == f.path).map_or_else(|| e.to_string(), |(_, e)| e.clone());
            if never_served(&f.path, &obtained) {
                out.never_served += 1;
                tracing::debug!(path = %f.path, error = %own, "uncompressed variant not served upstream; a compressed one is");
            } else if let Some(dir) = pdiff_dir(&f.path) {
                missing_patches.entry(dir).or_default().push(own);
            } else {
                out.warnings.push(format!("{}: left out: {own}", f.path));
            }
            continue;
        }
        let last_modified = match &attempt.got {
            Ok(Got::Fetched { last_modified, .. }) => *last_modified,
            _ => None,
        };
        let mtime = last_modified.or(f.mtime).or(plan.release_date).unwrap_or(ctx.now);
        out.entries.push(NewEntry {
            path: f.path.clone(),
            sha256: f.sha256,
            size: f.size,
            mtime,
            kind: f.kind,
            other_hashes: f.other_hashes.clone(),
        });
    }
    for (dir, errors) in missing_patches {
        let listed = plan.files.iter().filter(|f| pdiff_dir(&f.path) == Some(dir)).count();
        out.warnings.push(format!(
            "{dir}/: {} of the {listed} patches its Index lists are not served upstream, left out (apt then \
             fetches the whole index); first: {}",
            errors.len(),
            errors[0]
        ));
    }
    Ok(out)
}

/// `dists/x/main/binary-amd64/Packages.diff` for a patch in it (not for its `Index`).
fn pdiff_dir(path: &str) -> Option<&str> {
    let (dir, name) = path.rsplit_once('/')?;
    (dir.ends_with(".diff") && name != "Index").then_some(dir)
}

/// An uncompressed index a Release lists but its archive never carries: a compressed variant of
/// the same index is there (Debian lists `Packages`, `Contents-amd64`, `Translation-en` beside
/// the `.xz`/`.gz` it serves; apt only ever fetches a compressed one). Not a warning.
fn never_served(path: &str, obtained: &HashSet<&str>) -> bool {
    COMPRESSED_VARIANTS.iter().any(|ext| obtained.contains(format!("{path}{ext}").as_str()))
}

/// One object: what came of it, and the not-found errors of each path whose URL was tried.
struct Attempt {
    got: Result<Got, FetchError>,
    errors: Vec<(String, String)>,
}

/// Gets one object from the first of its paths whose source has it: an object several paths
/// carry (empty indices of several components) is downloaded once, and a path missing upstream
/// does not leave out another path that upstream does serve.
async fn obtain_any(ctx: &ExecCtx<'_>, paths: &[&PlannedFile]) -> Attempt {
    let mut errors = Vec::new();
    let mut got = None;
    for f in paths {
        match obtain(ctx, f).await {
            Err(e) if e.is_not_found() => {
                errors.push((f.path.clone(), e.to_string()));
                got = Some(Err(e));
            }
            other => {
                got = Some(other);
                break;
            }
        }
    }
    ctx.progress.advance(paths[0].size);
    Attempt { got: got.expect("an object has at least one path"), errors }
}

/// Gets one object into the pool according to its source.
async fn obtain(ctx: &ExecCtx<'_>, f: &PlannedFile) -> Result<Got, FetchError> {
    match &f.source {
        Source::Reuse if ctx.verify => verify_or_repair(ctx, f).await,
        Source::Reuse => Ok(Got::Reused),
        Source::Write(bytes) => write_bytes(ctx, f, bytes).await,
        Source::Download { url, fallback } => download(ctx, f, url, fallback.as_ref()).await,
    }
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
