//! Carries out a [`Plan`] of any entry kind: one job per unique object (however many paths carry
//! it), requests held to their host's slots by the fetcher; verified bytes from memory written, downloads streamed into
//! the pool and held to the file's [`Check`], reused objects re-hashed when verifying. The first
//! failure that is not allowed to leave a file out cancels the downloads in flight (their
//! staging files are removed) and fails the entry; a pool write already on a blocking thread
//! finishes (it only stores verified bytes), before the run's runtime, and then its store lock,
//! go.
//!
//! One repair semantics for every kind: a damaged or missing object is fetched again and the good
//! copy renamed over the damaged one (`Staging::commit`) — a reader never finds a referenced
//! object missing, and a failed repair leaves the pool no worse than before.

use super::error::{Cause, EntryError, Mismatch};
use super::plan::{Check, Plan, PlannedFile, Source};
use super::progress::Progress;
use crate::catalog::NewEntry;
use crate::digest::{Expected, Sha256};
use crate::fetch::{Expect, FetchError, Fetcher, Stored};
use crate::pool::{ObjectState, Pool, PoolError, Put};
use crate::tree::source::EntryKind;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use url::Url;

/// Suffixes of the compressed variants apt fetches instead of an uncompressed index (apt's
/// `Acquire::CompressionTypes`: xz, bzip2, lzma, gzip, zstd, lz4).
const COMPRESSED_VARIANTS: [&str; 6] = [".xz", ".gz", ".bz2", ".lzma", ".zst", ".lz4"];

/// Objects in flight at once. Network requests are held to their host's slots by the fetcher
/// (`concurrency`, growing for HTTP/2 and latency-bound http), local work (hashing, writing
/// from memory) to `local`; this only bounds the bookkeeping.
const IN_FLIGHT: usize = 512;

/// The objects a run is downloading, by sha256: jobs run at once, so two may plan the same new
/// object (a package in two suites); the second waits for the first and then reuses it, with
/// the upstream Last-Modified the first one got (the object's mtime, whichever records first).
#[derive(Default)]
pub struct InFlight(std::sync::Mutex<HashMap<Sha256, Turn>>);

/// One object's downloads: `Some(last_modified)` once one of them stored it.
type Turn = std::sync::Arc<tokio::sync::Mutex<Option<Option<i64>>>>;

impl InFlight {
    fn turn(&self, sha256: Sha256) -> Turn {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(sha256).or_default().clone()
    }

    /// The Last-Modified a job of this run stored `sha256` with (waiting for one still at it);
    /// `None` when no job of this run downloaded it. A job that planned the object as already in
    /// the pool may have found it there because another job of this run had just stored it: it
    /// takes that job's Last-Modified, not its fallback (the object's mtime is whichever records
    /// first, and jobs record in config order).
    async fn stored(&self, sha256: &Sha256) -> Option<i64> {
        let turn = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(sha256).cloned()?;
        let stored = *turn.lock().await;
        stored.flatten()
    }
}

pub struct PerformCtx<'a> {
    pub fetcher: &'a Fetcher,
    /// Shared by the run's jobs.
    pub in_flight: &'a InFlight,
    pub pool: &'a Pool,
    /// Pool work on blocking threads at once (`sync.concurrency`).
    pub local: tokio::sync::Semaphore,
    /// Re-hash reused objects and fetch damaged or missing ones again.
    pub verify: bool,
    pub progress: &'a dyn Progress,
    /// The mtime of a file nothing dates.
    pub now: i64,
}

#[derive(Debug, Default)]
pub struct Performed {
    pub entries: Vec<NewEntry>,
    pub fetched_files: u64,
    pub fetched_bytes: u64,
    pub reused_files: u64,
    pub reused_bytes: u64,
    /// Objects `verify` found damaged or missing and replaced.
    pub repaired: u64,
    /// Objects found present with wrong content or size and replaced.
    pub damaged: u64,
    /// Objects the pool did not hold intact before this run (downloads, new writes, repairs).
    pub written: u64,
    pub warnings: Vec<String>,
    /// Uncompressed indices the Release lists that upstream does not serve beside a compressed
    /// variant (normal for Debian: not a warning).
    pub never_served: u64,
}

/// How one object was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Reused,
    /// Fetched or written from memory; `true` when the pool did not have it intact before (a
    /// download always: the planner reuses what the pool has intact).
    Fetched(bool),
    /// `verify` found it damaged (`true`) or missing and replaced it.
    Repaired(bool),
}

#[derive(Debug, Clone, Copy)]
struct Got {
    sha256: Sha256,
    size: u64,
    last_modified: Option<i64>,
    how: How,
}

/// One object: what came of it, and the not-found errors of each path whose URL was tried.
struct Attempt {
    got: Result<Got, Cause>,
    errors: Vec<(String, String)>,
}

pub async fn perform(ctx: &PerformCtx<'_>, plan: Plan) -> Result<Performed, EntryError> {
    let groups = objects(&plan.files);
    let (kind, entry) = (plan.kind, plan.entry_id.as_str());
    let results: Vec<(usize, Attempt)> = stream::iter(groups.iter().enumerate())
        .map(|(i, paths)| async move {
            let attempt = obtain_any(ctx, paths).await;
            match &attempt.got {
                Err(cause) if !may_leave_out(paths, cause) => {
                    Err(EntryError::new(kind, entry, Some(&paths[0].path), cause.clone()))
                }
                _ => Ok((i, attempt)),
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    let mut attempts: Vec<Option<Attempt>> = (0..groups.len()).map(|_| None).collect();
    for (i, a) in results {
        attempts[i] = Some(a);
    }
    let attempts: Vec<Attempt> = attempts.into_iter().map(|a| a.expect("every object has a result")).collect();
    Ok(assemble(ctx, &plan, &groups, &attempts))
}

/// Every path of each unique object, in plan order. Only apt files are grouped: their digests
/// come from the verified Release and indices, and apt serves any path of an object it has (an
/// empty index of several components is one object). A tree file is an object of its own, as
/// `sha256sum -c` checks each file: a path upstream does not serve fails the tree, and a
/// rechecked file's previous digest says nothing about its content now.
fn objects(files: &[PlannedFile]) -> Vec<Vec<&PlannedFile>> {
    let mut group_of: HashMap<Sha256, usize> = HashMap::new();
    let mut groups: Vec<Vec<&PlannedFile>> = Vec::new();
    for f in files {
        let key = f.known_sha256().filter(|_| f.kind != EntryKind::TreeFile);
        let g = match key {
            Some(sha) => *group_of.entry(sha).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            }),
            None => {
                groups.push(Vec::new());
                groups.len() - 1
            }
        };
        groups[g].push(f);
    }
    groups
}

/// A failure that only leaves the object out (with a warning): every path of it is optional, and
/// upstream does not have it — or it is a package of an `ignore-errors` mirror.
fn may_leave_out(paths: &[&PlannedFile], cause: &Cause) -> bool {
    let not_found = cause.fetch().is_some_and(FetchError::is_not_found);
    paths.iter().all(|p| p.optional) && (not_found || paths[0].kind == EntryKind::Package)
}

/// Counters, catalog entries and warnings from the objects' results.
fn assemble(ctx: &PerformCtx<'_>, plan: &Plan, groups: &[Vec<&PlannedFile>], attempts: &[Attempt]) -> Performed {
    let mut out = Performed { warnings: plan.warnings.clone(), ..Performed::default() };
    for a in attempts {
        let Ok(g) = &a.got else { continue };
        match g.how {
            How::Reused => (out.reused_files, out.reused_bytes) = (out.reused_files + 1, out.reused_bytes + g.size),
            How::Fetched(_) | How::Repaired(_) => {
                (out.fetched_files, out.fetched_bytes) = (out.fetched_files + 1, out.fetched_bytes + g.size)
            }
        }
        out.written += u64::from(matches!(g.how, How::Fetched(true) | How::Repaired(_)));
        if let How::Repaired(damaged) = g.how {
            out.repaired += 1;
            out.damaged += u64::from(damaged);
        }
    }
    let obtained: HashSet<&str> = groups
        .iter()
        .zip(attempts)
        .filter(|(_, a)| a.got.is_ok())
        .flat_map(|(paths, _)| paths.iter().map(|p| p.path.as_str()))
        .collect();
    let mut missing_patches: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut entries = Vec::new();
    for (paths, attempt) in groups.iter().zip(attempts) {
        for f in paths {
            let g = match &attempt.got {
                Ok(g) => g,
                Err(e) => {
                    // The error of this path's own URL (another path of the object may have failed first).
                    let own = attempt
                        .errors
                        .iter()
                        .find(|(p, _)| *p == f.path)
                        .map_or_else(|| e.to_string(), |(_, e)| e.clone());
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
            };
            let mtime = g.last_modified.or(f.mtime).or(plan.default_mtime).unwrap_or(ctx.now);
            let entry = NewEntry {
                path: f.path.clone(),
                sha256: g.sha256,
                size: g.size,
                mtime,
                kind: f.kind,
                other_hashes: f.other_hashes.clone(),
            };
            entries.push((f.path.as_str(), entry));
        }
    }
    // Plan order (paths of one object are listed together above).
    let order: HashMap<&str, usize> = plan.files.iter().enumerate().map(|(i, f)| (f.path.as_str(), i)).collect();
    entries.sort_by_key(|(p, _)| order[p]);
    out.entries = entries.into_iter().map(|(_, e)| e).collect();
    for (dir, errors) in missing_patches {
        let listed = plan.files.iter().filter(|f| pdiff_dir(&f.path) == Some(dir)).count();
        out.warnings.push(format!(
            "{dir}/: {} of the {listed} patches its Index lists are not served upstream, left out (apt then \
             fetches the whole index); first: {}",
            errors.len(),
            errors[0]
        ));
    }
    out
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

/// Gets one object from the first of its paths whose source has it: an object several paths
/// carry (empty indices of several components) is fetched once, and a path missing upstream
/// does not leave out another path that upstream does serve.
async fn obtain_any(ctx: &PerformCtx<'_>, paths: &[&PlannedFile]) -> Attempt {
    let mut errors = Vec::new();
    let mut got = None;
    for f in paths {
        match obtain(ctx, f).await {
            Err(e) if e.fetch().is_some_and(FetchError::is_not_found) => {
                errors.push((f.path.clone(), e.to_string()));
                got = Some(Err(e));
            }
            other => {
                got = Some(other);
                break;
            }
        }
    }
    ctx.progress.advance(paths[0].bytes());
    Attempt { got: got.expect("an object has at least one path"), errors }
}

/// Gets one object into the pool according to its source.
async fn obtain(ctx: &PerformCtx<'_>, f: &PlannedFile) -> Result<Got, Cause> {
    match &f.source {
        Source::Pool { sha256, size } => {
            let mut got = match ctx.verify {
                true => verify_or_repair(ctx, f, *sha256, *size).await?,
                false => Got { sha256: *sha256, size: *size, last_modified: None, how: How::Reused },
            };
            if got.last_modified.is_none() {
                got.last_modified = ctx.in_flight.stored(sha256).await;
            }
            Ok(got)
        }
        Source::Memory { bytes, sha256 } => write_memory(ctx, f, bytes, *sha256).await,
        Source::Download { by_hash } => {
            let Some(sha256) = f.known_sha256() else { return download(ctx, f, by_hash.as_ref()).await };
            let turn = ctx.in_flight.turn(sha256);
            let mut stored = turn.lock().await;
            // Another job of this run brought it in meanwhile: this is a reuse.
            match (*stored, ctx.pool.size_of(&sha256)) {
                (Some(last_modified), Some(size)) if f.size.exact().is_none_or(|s| s == size) => {
                    Ok(Got { sha256, size, last_modified, how: How::Reused })
                }
                _ => {
                    let got = download(ctx, f, by_hash.as_ref()).await?;
                    *stored = Some(got.last_modified).filter(|_| got.sha256 == sha256);
                    Ok(got)
                }
            }
        }
        Source::Recheck { sha256, size, mtime } => {
            let Check::Digest(expected) = f.check else {
                return Ok(Got { sha256: *sha256, size: *size, last_modified: Some(*mtime), how: How::Reused });
            };
            if digest_like(ctx, *sha256, expected).await? == Some(expected) {
                return Ok(Got { sha256: *sha256, size: *size, last_modified: Some(*mtime), how: How::Reused });
            }
            tracing::info!(path = %f.path, "listing shows a change the previous object does not match; downloading");
            download(ctx, f, None).await
        }
    }
}

/// Writes verified bytes held in memory; with `verify`, a damaged copy in the pool is replaced.
async fn write_memory(
    ctx: &PerformCtx<'_>,
    f: &PlannedFile,
    bytes: &bytes::Bytes,
    sha256: Sha256,
) -> Result<Got, Cause> {
    let (pool, body, verify) = (ctx.pool.clone(), bytes.clone(), ctx.verify);
    let put = blocking(ctx, move || pool.store_bytes(&body, &sha256, verify)).await?;
    let how = match put {
        Put::Repaired => How::Repaired(true),
        Put::Wrote => How::Fetched(true),
        Put::Kept => How::Fetched(false),
    };
    Ok(Got { sha256, size: bytes.len() as u64, last_modified: f.mtime, how })
}

/// `verify`: re-hash a reused object; fetch it again when damaged or missing.
async fn verify_or_repair(ctx: &PerformCtx<'_>, f: &PlannedFile, sha256: Sha256, size: u64) -> Result<Got, Cause> {
    let pool = ctx.pool.clone();
    let state = blocking(ctx, move || pool.check(&sha256, size, &mut crate::digest::hash_buffer(size))).await?;
    if state == ObjectState::Intact {
        return Ok(Got { sha256, size, last_modified: None, how: How::Reused });
    }
    tracing::warn!(path = %f.path, %sha256, ?state, "pool object damaged or missing, downloading it again");
    let expect = Expect::Exactly { size, sha256 };
    let stored = ctx.fetcher.download(&f.url, ctx.pool, expect).await.map_err(|e| fetch_cause(f, e))?;
    let how = How::Repaired(state != ObjectState::Missing);
    Ok(Got { sha256: stored.sha256, size: stored.size, last_modified: stored.last_modified, how })
}

/// Downloads a file (its by-hash URL first, when it has one) and holds it to its check.
async fn download(ctx: &PerformCtx<'_>, f: &PlannedFile, by_hash: Option<&Url>) -> Result<Got, Cause> {
    let stored = match by_hash {
        Some(url) => match fetch_checked(ctx, f, url).await {
            Err(e) if e.fetch().is_some_and(FetchError::is_not_found) => {
                tracing::debug!(%url, fallback = %f.url, "by-hash missing upstream, using the canonical path");
                fetch_checked(ctx, f, &f.url).await?
            }
            other => other?,
        },
        None => fetch_checked(ctx, f, &f.url).await?,
    };
    Ok(Got { sha256: stored.sha256, size: stored.size, last_modified: stored.last_modified, how: How::Fetched(true) })
}

/// Streams `url` into the pool and holds the result to the file's check:
/// - sha256 and an exact size: [`Expect::Exactly`], so a mismatch never reaches the pool (capped
///   at the size, hashed while streaming);
/// - sha256 without an exact size (a listing rounds sizes): stored under its computed digest,
///   then compared; a mismatching object is never referenced (gc removes it);
/// - sha512 or md5 (an aplinfo index): stored, then re-read from the pool and hashed in that
///   algorithm off the async threads; a mismatch fails the entry, the object stays unreferenced;
/// - nothing: stored as is (the planner reports it as unverified by upstream).
async fn fetch_checked(ctx: &PerformCtx<'_>, f: &PlannedFile, url: &Url) -> Result<Stored, Cause> {
    let list = f.checked_by.clone();
    let fetch_err = |e: FetchError| fetch_cause(f, e);
    let mismatch = |expected: String, actual: String| {
        let list = list.clone().unwrap_or_else(|| "its checksum list".to_owned());
        Cause::Mismatch(Box::new(Mismatch { list, expected, actual }))
    };
    let unverified = || ctx.fetcher.download(url, ctx.pool, Expect::Unverified);
    match (f.check, f.size.exact()) {
        (Check::Digest(Expected::Sha256(sha256)), Some(size)) => {
            ctx.fetcher.download(url, ctx.pool, Expect::Exactly { size, sha256 }).await.map_err(fetch_err)
        }
        (Check::Digest(Expected::Sha256(sha256)), None) => {
            let stored = unverified().await.map_err(fetch_err)?;
            match stored.sha256 == sha256 {
                true => Ok(stored),
                false => Err(mismatch(format!("sha256 {sha256}"), stored.sha256.to_string())),
            }
        }
        (Check::Digest(expected), _) => {
            let stored = unverified().await.map_err(fetch_err)?;
            match digest_like(ctx, stored.sha256, expected).await? {
                Some(actual) if actual == expected => Ok(stored),
                actual => {
                    Err(mismatch(expected.to_string(), actual.map_or_else(|| "nothing".to_owned(), |a| a.to_string())))
                }
            }
        }
        (Check::Unverified, _) => unverified().await.map_err(fetch_err),
    }
}

/// A fetch error, said as a mismatch with the file's list when it is one and a list vouches.
fn fetch_cause(f: &PlannedFile, e: FetchError) -> Cause {
    match (&e, &f.checked_by) {
        (FetchError::Pool { source, .. }, Some(list)) if is_mismatch(source) => {
            Cause::NotAsListed { list: list.clone(), source: std::sync::Arc::new(e) }
        }
        _ => Cause::from(e),
    }
}

fn is_mismatch(e: &PoolError) -> bool {
    matches!(e, PoolError::HashMismatch { .. } | PoolError::SizeMismatch { .. } | PoolError::TooLarge { .. })
}

/// The digest of a pool object in the algorithm of `like`, off the async threads.
async fn digest_like(ctx: &PerformCtx<'_>, sha256: Sha256, like: Expected) -> Result<Option<Expected>, Cause> {
    let pool = ctx.pool.clone();
    blocking(ctx, move || pool.digest_like(&sha256, like)).await
}

/// Runs pool I/O (hashing, writing) on a blocking thread.
async fn blocking<T: Send + 'static>(
    ctx: &PerformCtx<'_>,
    work: impl FnOnce() -> Result<T, PoolError> + Send + 'static,
) -> Result<T, Cause> {
    let _turn = ctx.local.acquire().await.map_err(|e| Cause::from(PoolError::Task(e.to_string())))?;
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Cause::from),
        Err(e) => Err(Cause::from(PoolError::Task(e.to_string()))),
    }
}

#[cfg(test)]
#[path = "perform_tests.rs"]
mod tests;
