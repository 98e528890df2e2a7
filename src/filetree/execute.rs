//! Performs a tree plan: lists and signatures already in memory are written, the rest is
//! downloaded in parallel (bounded by `sync.concurrency`) straight into the pool, each download
//! checked against what its list demands, and the result turned into catalog entries.
//!
//! How each check is made:
//! - sha256 from `SHA256SUMS` and an exact listed size: [`Expect::Exactly`], so a mismatch never
//!   reaches the pool (capped at the size, hashed while streaming).
//! - sha256 but no exact size (Apache rounds sizes): stored under its computed digest, then
//!   compared; a mismatching object is never referenced (gc removes it).
//! - sha512 (or, for a template without one, md5) from an aplinfo index: stored under its
//!   computed sha256, then re-read from the pool and hashed with SHA-512 (MD5) off the async
//!   threads; a mismatch fails the tree, the object stays unreferenced. (Streaming through a
//!   second hasher would need a second download path.)
//! - nothing: stored as is and reported as unverified by upstream.
//!
//! The first failure cancels the downloads in flight (their staging files are removed) and
//! fails the tree, whose previous snapshot stays published.

use super::checksums::{Md5, Sha512};
use super::listing::ListedSize;
use super::plan::{How, Planned};
use super::verify::Expected;
use super::TreeCtx;
use crate::catalog::NewEntry;
use crate::digest::Sha256;
use crate::fetch::{Expect, FetchError, Stored};
use crate::pool::{Pool, PoolError};
use crate::sync::{Executed, MirrorError};
use crate::tree::source::EntryKind;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use sha2::Digest;
use std::io::Read;

/// Read size when re-hashing a pool object: large sequential reads, bounded memory.
const HASH_BUFFER: usize = 1 << 20;

/// How one file was obtained.
struct Got {
    sha256: Sha256,
    size: u64,
    mtime: Option<i64>,
    fetched: bool,
    repaired: bool,
}

impl Got {
    fn reused(sha256: Sha256, size: u64, mtime: Option<i64>) -> Got {
        Got { sha256, size, mtime, fetched: false, repaired: false }
    }

    fn stored(s: Stored, listed_mtime: Option<i64>) -> Got {
        Got { sha256: s.sha256, size: s.size, mtime: s.last_modified.or(listed_mtime), fetched: true, repaired: false }
    }
}

pub async fn execute(ctx: &TreeCtx<'_>, planned: Vec<Planned>) -> Result<Executed, MirrorError> {
    let results: Vec<(usize, Got)> = stream::iter(planned.iter().enumerate())
        .map(|(i, p)| async move {
            let got = obtain(ctx, p).await;
            ctx.progress.advance(planned_size(&p.how));
            got.map(|g| (i, g))
        })
        .buffer_unordered(ctx.concurrency.max(1))
        .try_collect()
        .await?;
    let mut got: Vec<Option<Got>> = (0..planned.len()).map(|_| None).collect();
    for (i, g) in results {
        got[i] = Some(g);
    }
    let mut out = Executed::default();
    for (p, g) in planned.into_iter().zip(got) {
        let g = g.expect("every planned file has a result");
        if g.fetched {
            out.fetched_files += 1;
            out.fetched_bytes += g.size;
        } else {
            out.reused_files += 1;
            out.reused_bytes += g.size;
        }
        out.repaired += u64::from(g.repaired);
        out.entries.push(NewEntry {
            path: p.path,
            sha256: g.sha256,
            size: g.size,
            mtime: g.mtime.or(p.listed_mtime).unwrap_or(ctx.now),
            kind: EntryKind::TreeFile,
            other_hashes: Vec::new(),
        });
    }
    Ok(out)
}

/// Bytes a planned file accounts for in the progress display.
pub fn planned_size(how: &How) -> u64 {
    match how {
        How::Reuse { size, .. } | How::Recheck { size, .. } => *size,
        How::Write { bytes, .. } => bytes.len() as u64,
        How::Download { size: ListedSize::Exact(n) | ListedSize::Approx { bytes: n, .. }, .. } => *n,
        How::Download { .. } => 0,
    }
}

async fn obtain(ctx: &TreeCtx<'_>, p: &Planned) -> Result<Got, MirrorError> {
    let fail = |e: String| MirrorError::new(&ctx.tree.id, Some(&p.path), e);
    match &p.how {
        How::Reuse { sha256, size, mtime } if ctx.verify => verify_or_repair(ctx, p, *sha256, *size, *mtime).await,
        How::Reuse { sha256, size, mtime } => Ok(Got::reused(*sha256, *size, *mtime)),
        How::Recheck { sha256, size, mtime, expected } => {
            if digest_like(ctx.pool, *sha256, *expected).await.map_err(fail)? == Some(*expected) {
                return Ok(Got::reused(*sha256, *size, Some(*mtime)));
            }
            tracing::info!(path = %p.path, "listing shows a change the previous object does not match; downloading");
            download(ctx, p, Some(*expected), ListedSize::Unknown).await
        }
        How::Write { bytes, sha256, mtime } => {
            ctx.pool.put_bytes(bytes, sha256).map_err(|e| fail(e.to_string()))?;
            Ok(Got { sha256: *sha256, size: bytes.len() as u64, mtime: *mtime, fetched: true, repaired: false })
        }
        How::Download { expected, size } => download(ctx, p, *expected, *size).await,
    }
}

async fn download(
    ctx: &TreeCtx<'_>,
    p: &Planned,
    expected: Option<Expected>,
    size: ListedSize,
) -> Result<Got, MirrorError> {
    let list = p.checked_by.as_deref().unwrap_or("its checksum list");
    let fail = |e: String| MirrorError::new(&ctx.tree.id, Some(&p.path), e);
    let fetch_err = |e: FetchError| match &e {
        FetchError::Pool { source, .. } if is_mismatch(source) => fail(format!("does not match {list}: {e}")),
        _ => fail(e.to_string()),
    };
    let fetcher = ctx.fetcher;
    let stored = match (expected, size.exact()) {
        (Some(Expected::Sha256(sha256)), Some(size)) => {
            fetcher.download(&p.url, ctx.pool, Expect::Exactly { size, sha256 }).await.map_err(fetch_err)?
        }
        (Some(Expected::Sha256(sha256)), None) => {
            let stored = fetcher.download(&p.url, ctx.pool, Expect::Unverified).await.map_err(fetch_err)?;
            if stored.sha256 != sha256 {
                return Err(fail(format!("does not match {list}: sha256 {} expected, got {}", sha256, stored.sha256)));
            }
            stored
        }
        (Some(expected @ (Expected::Sha512(_) | Expected::Md5(_))), _) => {
            let stored = fetcher.download(&p.url, ctx.pool, Expect::Unverified).await.map_err(fetch_err)?;
            let actual = digest_like(ctx.pool, stored.sha256, expected).await.map_err(fail)?;
            if actual != Some(expected) {
                let actual = actual.map_or_else(|| "nothing".to_owned(), |a| a.to_string());
                return Err(fail(format!("does not match {list}: {expected} expected, got {actual}")));
            }
            stored
        }
        (None, _) => fetcher.download(&p.url, ctx.pool, Expect::Unverified).await.map_err(fetch_err)?,
    };
    Ok(Got::stored(stored, p.listed_mtime))
}

fn is_mismatch(e: &PoolError) -> bool {
    matches!(e, PoolError::HashMismatch { .. } | PoolError::SizeMismatch { .. } | PoolError::TooLarge { .. })
}

/// `--verify`: re-hash a reused object; remove and download it again when damaged or missing.
async fn verify_or_repair(
    ctx: &TreeCtx<'_>,
    p: &Planned,
    sha256: Sha256,
    size: u64,
    mtime: Option<i64>,
) -> Result<Got, MirrorError> {
    let fail = |e: String| MirrorError::new(&ctx.tree.id, Some(&p.path), e);
    let pool = ctx.pool.clone();
    let check = tokio::task::spawn_blocking(move || pool.rehash(&sha256)).await.map_err(|e| fail(e.to_string()))?;
    match check.map_err(|e| fail(e.to_string()))? {
        Some((actual, n)) if actual == sha256 && n == size => return Ok(Got::reused(sha256, size, mtime)),
        Some((actual, _)) => {
            tracing::warn!(path = %p.path, expected = %sha256, %actual, "damaged pool object, downloading again");
            ctx.pool.remove(&sha256).map_err(|e| fail(e.to_string()))?;
        }
        None => tracing::warn!(path = %p.path, %sha256, "pool object missing, downloading again"),
    }
    let mut got = download(ctx, p, Some(Expected::Sha256(sha256)), ListedSize::Exact(size)).await?;
    got.repaired = true;
    Ok(got)
}

/// The digest of a pool object in the algorithm of `like` (SHA-512 or MD5; `None` when the
/// object is missing), computed off the async threads.
async fn digest_like(pool: &Pool, sha256: Sha256, like: Expected) -> Result<Option<Expected>, String> {
    let path = pool.object_path(&sha256);
    let task = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Expected>> {
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(match like {
            Expected::Md5(_) => Expected::Md5(Md5(hash_file::<md5::Md5>(&mut file)?.into())),
            Expected::Sha512(_) => Expected::Sha512(Sha512(hash_file::<sha2::Sha512>(&mut file)?.into())),
            Expected::Sha256(_) => Expected::Sha256(Sha256(hash_file::<sha2::Sha256>(&mut file)?.into())),
        }))
    });
    let path = pool.object_path(&sha256);
    match task.await {
        Ok(res) => res.map_err(|e| format!("{}: {e}", path.display())),
        Err(e) => Err(format!("hashing {}: {e}", path.display())),
    }
}

fn hash_file<D: Digest>(file: &mut std::fs::File) -> std::io::Result<sha2::digest::Output<D>> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hasher.finalize())
}
