//! Phase 1 and 2 of an apt mirror: fetch and verify the Release, fetch the indices the plan needs
//! to read (one variant of every Packages family, pdiff Index files), check their size and sha256
//! against the verified Release, and parse the packages they name.

use super::ctx::{MirrorCtx, ReleaseFiles};
use super::release::{check_dates, fetch_release};
use crate::apt::compression::{decompress, strip_compression};
use crate::apt::packages::{parse_packages, Package};
use crate::apt::pdiff::parse_pdiff_index;
use crate::apt::release::ReleaseFile;
use crate::config::MirrorConfig;
use crate::digest::Sha256;
use crate::engine::{Cause, EntryError};
use crate::fetch::FetchError;
use std::collections::BTreeMap;
use url::Url;

/// Largest decompressed index we parse (Debian's biggest Packages is ~100 MiB uncompressed;
/// anything near this is a decompression bomb).
const MAX_INDEX_DECOMPRESSED: u64 = 4 << 30;
/// Preference when several compressions of a Packages index exist: smallest download first.
const COMPRESSION_PREFERENCE: &[&str] = &[".xz", ".gz", ".bz2", ".lzma", ""];

/// Everything the plan needs: the verified Release, the index bytes already fetched, packages.
#[derive(Debug)]
pub struct Metadata {
    pub release: ReleaseFiles,
    /// Index path (relative to repository root) → verified bytes fetched in this phase.
    pub fetched: BTreeMap<String, Vec<u8>>,
    pub indices: Vec<IndexFile>,
    pub packages: Vec<Package>,
    pub skipped_packages: usize,
    pub warnings: Vec<String>,
}

/// An index the snapshot will carry (listed in the Release, or a pdiff patch).
#[derive(Debug, Clone)]
pub struct IndexFile {
    pub path: String,
    pub size: u64,
    pub sha256: Sha256,
    pub other_hashes: Vec<(&'static str, String)>,
    /// Missing upstream is a warning, not a failure (every index but the chosen Packages variant).
    pub optional: bool,
}

pub enum Fetched {
    Unchanged,
    Changed(Box<Metadata>),
}

pub async fn fetch(ctx: &MirrorCtx<'_>) -> Result<Fetched, EntryError> {
    let Some(release) = fetch_release(ctx).await? else {
        return Ok(Fetched::Unchanged);
    };
    check_dates(ctx, &release, crate::engine::unix_now())?;
    let mut warnings = release.warnings.clone();
    if let Some(raw) = &release.verified.release().invalid_date {
        let file = release.files.first().map_or("Release", |(path, _)| path.as_str());
        warnings.push(format!("{file}: Date {raw:?} is not a date apt reads; ignored, as apt ignores it (it warns)"));
    }
    let mut meta = Metadata {
        release,
        fetched: BTreeMap::new(),
        indices: Vec::new(),
        packages: Vec::new(),
        skipped_packages: 0,
        warnings,
    };
    select_indices(ctx, &mut meta).await?;
    Ok(Fetched::Changed(Box::new(meta)))
}

/// Chooses the indices, fetches one variant of every Packages family and the pdiff Index files,
/// and parses the packages.
async fn select_indices(ctx: &MirrorCtx<'_>, meta: &mut Metadata) -> Result<(), EntryError> {
    let wanted: Vec<ReleaseFile> = {
        let r = meta.release.verified.release();
        r.wanted_indices(&ctx.mirror.repository.components, &ctx.mirror.architectures).into_iter().cloned().collect()
    };
    if !wanted.iter().any(|f| is_packages(&f.path)) {
        let what = format!("{}/Release", ctx.dists());
        return Err(ctx.err(&what, "lists no Packages index for the configured components and architectures"));
    }
    let mut families: BTreeMap<&str, Vec<&ReleaseFile>> = BTreeMap::new();
    for f in wanted.iter().filter(|f| is_packages(&f.path)) {
        families.entry(strip_compression(&f.path)).or_default().push(f);
    }
    // Every family at once: on a far upstream each fetch is a round trip (or more).
    let by_hash = meta.release.verified.release().acquire_by_hash;
    let got = futures_util::future::join_all(families.iter().map(|(f, v)| fetch_family(ctx, by_hash, f, v))).await;
    let mut parsed = BTreeMap::new();
    for family in got {
        let (path, text, bytes) = family?;
        meta.fetched.insert(path.clone(), bytes);
        parsed.insert(path, text);
    }
    for f in &wanted {
        let optional = !parsed.contains_key(&index_path(ctx, &f.path));
        meta.indices.push(index_file(ctx, f, optional));
        if f.path.ends_with(".diff/Index") {
            pdiff_patches(ctx, meta, f).await;
        }
    }
    for (path, text) in parsed {
        collect_packages(ctx, meta, &path, &text)?;
    }
    Ok(())
}

fn is_packages(path: &str) -> bool {
    let base = strip_compression(path);
    base.ends_with("/Packages") && !base.contains(".diff/")
}

fn index_path(ctx: &MirrorCtx<'_>, release_path: &str) -> String {
    format!("{}/{release_path}", ctx.dists())
}

fn index_file(ctx: &MirrorCtx<'_>, f: &ReleaseFile, optional: bool) -> IndexFile {
    let mut other = Vec::new();
    for (algo, v) in [("MD5Sum", &f.md5), ("SHA1", &f.sha1), ("SHA512", &f.sha512)] {
        if let Some(d) = v {
            other.push((algo, d.clone()));
        }
    }
    IndexFile { path: index_path(ctx, &f.path), size: f.size, sha256: f.sha256, other_hashes: other, optional }
}

/// Fetches the preferred available variant of one Packages family; returns its path, text and
/// bytes as fetched.
async fn fetch_family(
    ctx: &MirrorCtx<'_>,
    by_hash: bool,
    family: &str,
    variants: &[&ReleaseFile],
) -> Result<(String, String, Vec<u8>), EntryError> {
    let mut ordered: Vec<&ReleaseFile> = variants.to_vec();
    let rank = |p: &str| {
        let ext = &p[strip_compression(p).len()..];
        COMPRESSION_PREFERENCE.iter().position(|e| *e == ext).unwrap_or(usize::MAX)
    };
    ordered.sort_by_key(|f| rank(&f.path));
    let mut last_err = None;
    for f in ordered {
        let path = index_path(ctx, &f.path);
        match fetch_index(ctx, f, by_hash).await {
            Ok(bytes) => {
                let text = decompress(&f.path, &bytes, MAX_INDEX_DECOMPRESSED).map_err(|e| ctx.err(&path, e))?;
                // apt reads bytes: a Latin-1 Maintainer does not break an index. A Filename that
                // is not UTF-8 shows as U+FFFD and is refused per package (parse_packages).
                let text = String::from_utf8_lossy(&text).into_owned();
                return Ok((path, text, bytes));
            }
            Err(e) if e.fetch().is_some_and(FetchError::is_not_found) => {
                tracing::debug!(mirror = %ctx.mirror.id, %path, "Packages variant not served upstream");
                last_err = Some((path, e));
            }
            Err(e) => return Err(ctx.err(&path, e)),
        }
    }
    let (path, e) = last_err.unwrap_or_else(|| {
        let e = FetchError::Status { url: ctx.mirror.repository.url.to_string(), status: 404 };
        (index_path(ctx, family), Cause::from(e))
    });
    Err(ctx.err(&path, Cause::RequiredMissing(Box::new(e))))
}

/// Fetches one Release-listed index into memory (from the pool when it is already there), by hash
/// when the Release offers it, and checks size and sha256.
async fn fetch_index(ctx: &MirrorCtx<'_>, f: &ReleaseFile, by_hash: bool) -> Result<Vec<u8>, Cause> {
    let path = index_path(ctx, &f.path);
    match ctx.pool.read_verified(&f.sha256, Some(f.size)) {
        Ok(Some(bytes)) => return Ok(bytes),
        Ok(None) => {}
        Err(e) => tracing::warn!(%path, sha256 = %f.sha256, error = %e, "pool copy of an index unusable, fetching it"),
    }
    let url = |p: &str| ctx.mirror.repository.url.join(p);
    let exact = |u: Url| async move { ctx.fetcher.get_exact(&u, f.size, &f.sha256).await };
    let body = if by_hash {
        match exact(url(&by_hash_path(&path, &f.sha256))?).await {
            Err(e) if e.is_not_found() => exact(url(&path)?).await?,
            other => other?,
        }
    } else {
        exact(url(&path)?).await?
    };
    Ok(body.bytes)
}

/// `dists/x/main/binary-amd64/by-hash/SHA256/<hex>` for `dists/x/main/binary-amd64/Packages.xz`.
pub fn by_hash_path(path: &str, sha: &Sha256) -> String {
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/by-hash/SHA256/{sha}")
}

/// Adds the patches a pdiff Index names (they are not in the Release). A pdiff Index that cannot
/// be fetched or parsed only costs clients the pdiff shortcut: a warning.
async fn pdiff_patches(ctx: &MirrorCtx<'_>, meta: &mut Metadata, f: &ReleaseFile) {
    let path = index_path(ctx, &f.path);
    let by_hash = meta.release.verified.release().acquire_by_hash;
    let text = match fetch_index(ctx, f, by_hash).await {
        Ok(bytes) => bytes,
        Err(e) => {
            // Left out here, with one warning; the plan must not try it again.
            meta.warnings.push(format!("{path}: left out with its patches: {e}"));
            meta.indices.retain(|i| i.path != path);
            return;
        }
    };
    let index = match std::str::from_utf8(&text)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_pdiff_index(t).map_err(|e| e.to_string()))
    {
        Ok(i) => i,
        Err(e) => {
            let url = ctx.url(&path).map_or_else(|_| path.clone(), |u| u.to_string());
            meta.warnings.push(format!("{path}: its patches are not mirrored: {e} ({url})"));
            return;
        }
    };
    meta.fetched.insert(path.clone(), text);
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
    for p in index.patches {
        meta.indices.push(IndexFile {
            path: format!("{dir}/{}", p.name),
            size: p.size,
            sha256: p.sha256,
            other_hashes: Vec::new(),
            optional: true,
        });
    }
}

/// Parses one Packages index and adds its packages, applying skip-packages / skip-sections.
fn collect_packages(ctx: &MirrorCtx<'_>, meta: &mut Metadata, path: &str, text: &str) -> Result<(), EntryError> {
    let index = parse_packages(text).map_err(|e| ctx.err(path, e))?;
    if let Some(first) = index.unusable.first() {
        let url = ctx.url(path).map_or_else(|_| path.to_owned(), |u| u.to_string());
        let n = index.unusable.len();
        let more = if n > 1 { format!(" (and {} more)", n - 1) } else { String::new() };
        meta.warnings.push(format!(
            "{path}: {n} {} that no client can download left out (apt reads them but refuses to fetch them): \
             {first}{more} ({url})",
            if n == 1 { "package" } else { "packages" }
        ));
    }
    for p in index.packages {
        if skipped(ctx.mirror, &p) {
            meta.skipped_packages += 1;
        } else {
            meta.packages.push(p);
        }
    }
    Ok(())
}

fn skipped(m: &MirrorConfig, p: &Package) -> bool {
    if m.skip_packages.is_match(&p.name) {
        return true;
    }
    let Some(section) = p.section.as_deref() else { return false };
    let short = section.rsplit('/').next().unwrap_or(section);
    m.skip_sections.iter().any(|s| s == section || s == short)
}
