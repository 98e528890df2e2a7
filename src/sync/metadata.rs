//! Phase 1 and 2 of an apt mirror: fetch and verify the Release, fetch the indices the plan needs
//! to read (one variant of every Packages family, pdiff Index files), check their size and sha256
//! against the verified Release, and parse the packages they name.

use super::MirrorError;
use crate::apt::compression::{decompress, strip_compression};
use crate::apt::packages::{parse_packages, Package};
use crate::apt::pdiff::parse_pdiff_index;
use crate::apt::release::ReleaseFile;
use crate::apt::signature::{verify_detached, verify_inrelease, Keyring, VerifiedRelease};
use crate::config::MirrorConfig;
use crate::digest::Sha256;
use crate::fetch::{Body, Conditional, FetchError, Fetcher};
use crate::pool::Pool;
use std::collections::BTreeMap;
use url::Url;

/// Largest decompressed index we parse (Debian's biggest Packages is ~100 MiB uncompressed;
/// anything near this is a decompression bomb).
const MAX_INDEX_DECOMPRESSED: u64 = 4 << 30;
/// Release/InRelease larger than this is not a Release file (Debian's is ~200 KiB).
const MAX_RELEASE_SIZE: u64 = 64 << 20;
/// Preference when several compressions of a Packages index exist: smallest download first.
const COMPRESSION_PREFERENCE: &[&str] = &[".xz", ".gz", ".bz2", ".lzma", ""];

/// What the mirror's previously published snapshot says about upstream's Release.
#[derive(Debug, Clone, Copy, Default)]
pub struct Previous {
    pub release_sha256: Option<Sha256>,
    pub release_last_modified: Option<i64>,
}

/// The signed files of the suite as fetched (paths relative to the repository root).
#[derive(Debug)]
pub struct ReleaseFiles {
    pub files: Vec<(String, Body)>,
    pub verified: VerifiedRelease,
    /// Digest of the file that carried the signature (InRelease, else Release): no-op detection.
    pub release_sha256: Sha256,
    pub release_last_modified: Option<i64>,
    /// Release / Release.gpg left out beside a verifying InRelease (stale or bad upstream).
    pub warnings: Vec<String>,
}

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

pub struct MetadataCtx<'a> {
    pub mirror: &'a MirrorConfig,
    pub fetcher: &'a Fetcher,
    pub pool: &'a Pool,
    pub previous: Previous,
    /// Fetch and verify even when upstream's Release did not change (`sync --verify`).
    pub force: bool,
}

impl MetadataCtx<'_> {
    fn err(&self, file: &str, reason: impl std::fmt::Display) -> MirrorError {
        MirrorError::new(&self.mirror.id, Some(file), reason)
    }

    fn dists(&self) -> String {
        format!("dists/{}", self.mirror.repository.suite)
    }

    fn url(&self, path: &str) -> Result<Url, MirrorError> {
        self.mirror.repository.url.join(path).map_err(|e| self.err(path, e))
    }
}

pub async fn fetch(ctx: &MetadataCtx<'_>) -> Result<Fetched, MirrorError> {
    let Some(release) = fetch_release(ctx).await? else {
        return Ok(Fetched::Unchanged);
    };
    check_dates(ctx, &release, crate::sync::unix_now())?;
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

/// Seconds a Release's `Date` may lie in the future: apt's `Acquire::Max-FutureTime` default
/// (debReleaseIndex::Load: NotBefore = Date - 10; acquire-item.cc refuses until then).
const MAX_FUTURE_SECS: i64 = 10;

/// A Release past its `Valid-Until` is refused: apt clients would reject it ("Release file …
/// is expired"), and a signed but expired Release is what a stale upstream or an attacker
/// replaying an old one serves. So is one dated more than [`MAX_FUTURE_SECS`] ahead: apt says
/// "Release file … is not valid yet" until then. The previous snapshot stays published.
fn check_dates(ctx: &MetadataCtx<'_>, release: &ReleaseFiles, now: i64) -> Result<(), MirrorError> {
    let file = release.files.first().map_or("Release", |(path, _)| path.as_str());
    if let Some(date) = release.verified.release().date.filter(|d| *d > now + MAX_FUTURE_SECS) {
        return Err(ctx.err(
            file,
            format!(
                "not valid yet: its Date {} is {} s in the future; apt clients refuse it until then \
                 (check this machine's clock), so the previous snapshot stays published",
                crate::catalog::snapshot_name(date),
                date - now
            ),
        ));
    }
    match release.verified.release().valid_until {
        Some(until) if until <= now => Err(ctx.err(
            file,
            format!(
                "expired: Valid-Until {} is {} s in the past (stale upstream or a replayed Release); \
                     apt clients would refuse it, so the previous snapshot stays published",
                crate::catalog::snapshot_name(until),
                now - until
            ),
        )),
        _ => Ok(()),
    }
}

/// InRelease (conditional), else Release + Release.gpg; `None` when unchanged since last time.
async fn fetch_release(ctx: &MetadataCtx<'_>) -> Result<Option<ReleaseFiles>, MirrorError> {
    let keyring =
        Keyring::from_bytes(&ctx.mirror.key_bytes).map_err(|e| ctx.err(&ctx.mirror.key.display().to_string(), e))?;
    let inrelease = format!("{}/InRelease", ctx.dists());
    let since = if ctx.force { None } else { ctx.previous.release_last_modified };
    match ctx.fetcher.get_conditional(&ctx.url(&inrelease)?, since).await {
        Ok(Conditional::NotModified) => Ok(None),
        Ok(Conditional::Modified(body)) => {
            let digest = Sha256::of(&body.bytes);
            if !ctx.force && ctx.previous.release_sha256 == Some(digest) {
                return Ok(None);
            }
            let verified = verify_inrelease(&body.bytes, &keyring).map_err(|e| ctx.err(&inrelease, e))?;
            let last_modified = body.last_modified;
            let mut files = vec![(inrelease, body)];
            let (companions, warnings) = detached_companions(ctx, &keyring, &verified).await;
            files.extend(companions);
            Ok(Some(ReleaseFiles {
                files,
                verified,
                release_sha256: digest,
                release_last_modified: last_modified,
                warnings,
            }))
        }
        // apt falls back to Release + Release.gpg on a 404 only (pkgAcqMetaClearSig::Failed).
        Err(FetchError::Status { status: 404, .. }) => fetch_detached(ctx, &keyring).await,
        Err(e) => Err(ctx.err(&inrelease, e)),
    }
}

/// Release + Release.gpg next to a verifying InRelease. InRelease is the authority (apt reads
/// only it when it verifies); the pair is served too, for older tools, but only what verifies and
/// matches: Release when it is InRelease's signed text (a different Release, even one its own
/// Release.gpg verifies, lists indices this snapshot does not carry), Release.gpg only when it
/// verifies over that Release. Caches and CDNs hold the
/// three files independently, so a stale pair next to a good InRelease is normal on real
/// upstreams: it is left out with one warning naming it, and the suite syncs. Absent upstream
/// (404) → not mirrored, silently; any other failure to fetch one → left out with a warning.
async fn detached_companions(
    ctx: &MetadataCtx<'_>,
    keyring: &Keyring,
    inrelease: &VerifiedRelease,
) -> (Vec<(String, Body)>, Vec<String>) {
    let release_path = format!("{}/Release", ctx.dists());
    let gpg_path = format!("{}/Release.gpg", ctx.dists());
    let release = fetch_companion(ctx, &release_path).await;
    let gpg = fetch_companion(ctx, &gpg_path).await;
    let mut warnings: Vec<String> = [(&release_path, &release), (&gpg_path, &gpg)]
        .into_iter()
        .filter_map(|(path, got)| got.as_ref().err().map(|e| format!("{path}: left out: {e}")))
        .collect();
    let (release, gpg) = (release.ok().flatten(), gpg.ok().flatten());
    let mut served = Vec::new();
    let outcome = companion_verdict(release.as_ref(), gpg.as_ref(), inrelease, keyring);
    let url = |path: &str| ctx.url(path).map_or_else(|_| path.to_owned(), |u| u.to_string());
    match outcome {
        Companions::Both => {
            served.push((release_path, release.expect("verdict Both has a Release")));
            served.push((gpg_path, gpg.expect("verdict Both has a Release.gpg")));
        }
        Companions::ReleaseOnly { gpg_error } => {
            if let Some(e) = gpg_error {
                warnings.push(format!(
                    "{gpg_path}: left out: it does not verify over the Release beside it ({e}); a stale copy \
                     upstream? apt reads InRelease, which verifies ({})",
                    url(&gpg_path)
                ));
            }
            served.push((release_path, release.expect("verdict ReleaseOnly has a Release")));
        }
        Companions::Neither { why } => {
            if let Some(why) = why {
                warnings.push(format!(
                    "{release_path}, {gpg_path}: left out: {why} (a stale pair upstream? apt reads InRelease, \
                     which verifies) ({})",
                    url(&release_path)
                ));
            }
        }
    }
    (served, warnings)
}

/// Whether a Release file is InRelease's signed text. The cleartext framework does not sign the
/// line break before the signature (RFC 9580 §7.1), so the text the verifier returns lacks the
/// final newline that `gpg --decrypt` and Debian's own Release file have.
fn same_text(release: &[u8], signed: &[u8]) -> bool {
    release == signed || release.strip_suffix(b"\n") == Some(signed)
}

/// One file beside InRelease: `None` when upstream does not have it.
async fn fetch_companion(ctx: &MetadataCtx<'_>, path: &str) -> Result<Option<Body>, String> {
    let url = ctx.url(path).map_err(|e| e.to_string())?;
    match ctx.fetcher.get(&url, MAX_RELEASE_SIZE).await {
        Ok(body) => Ok(Some(body)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Which of Release and Release.gpg may be served beside a verified InRelease.
#[derive(Debug, PartialEq, Eq)]
enum Companions {
    Both,
    /// Release is InRelease's signed text; Release.gpg is absent (`None`) or does not verify.
    ReleaseOnly {
        gpg_error: Option<String>,
    },
    /// Nothing to serve; `why` is `None` when upstream simply has neither file.
    Neither {
        why: Option<String>,
    },
}

fn companion_verdict(
    release: Option<&Body>,
    gpg: Option<&Body>,
    inrelease: &VerifiedRelease,
    keyring: &Keyring,
) -> Companions {
    let Some(release) = release else {
        let why = gpg.map(|_| "Release.gpg without a Release to verify it over".to_owned());
        return Companions::Neither { why };
    };
    if !same_text(&release.bytes, inrelease.signed_text().as_bytes()) {
        // Even a validly signed one: it lists indices this snapshot (InRelease's) does not carry.
        let signed = match gpg.map(|g| verify_detached(&release.bytes, &g.bytes, keyring)) {
            Some(Ok(v)) => match v.release().date {
                Some(date) => {
                    format!(", though Release.gpg verifies it (dated {})", crate::catalog::snapshot_name(date))
                }
                None => ", though Release.gpg verifies it".to_owned(),
            },
            Some(Err(e)) => format!(" and Release.gpg does not verify it ({e})"),
            None => " and there is no Release.gpg".to_owned(),
        };
        return Companions::Neither { why: Some(format!("Release is not InRelease's signed text{signed}")) };
    }
    match gpg.map(|g| verify_detached(&release.bytes, &g.bytes, keyring)) {
        Some(Ok(_)) => Companions::Both,
        None => Companions::ReleaseOnly { gpg_error: None },
        Some(Err(e)) => Companions::ReleaseOnly { gpg_error: Some(e.to_string()) },
    }
}

async fn fetch_detached(ctx: &MetadataCtx<'_>, keyring: &Keyring) -> Result<Option<ReleaseFiles>, MirrorError> {
    let release_path = format!("{}/Release", ctx.dists());
    let gpg_path = format!("{}/Release.gpg", ctx.dists());
    let release = ctx.fetcher.get(&ctx.url(&release_path)?, MAX_RELEASE_SIZE).await;
    let release = release.map_err(|e| ctx.err(&release_path, e))?;
    let digest = Sha256::of(&release.bytes);
    if !ctx.force && ctx.previous.release_sha256 == Some(digest) {
        return Ok(None);
    }
    let sig = match ctx.fetcher.get(&ctx.url(&gpg_path)?, MAX_RELEASE_SIZE).await {
        Ok(sig) => sig,
        Err(e) if e.is_not_found() => {
            return Err(ctx.err(&release_path, "unsigned: neither InRelease nor Release.gpg exists upstream"))
        }
        Err(e) => return Err(ctx.err(&gpg_path, e)),
    };
    let verified = verify_detached(&release.bytes, &sig.bytes, keyring).map_err(|e| ctx.err(&gpg_path, e))?;
    let last_modified = release.last_modified;
    Ok(Some(ReleaseFiles {
        files: vec![(release_path, release), (gpg_path, sig)],
        verified,
        release_sha256: digest,
        release_last_modified: last_modified,
        warnings: Vec::new(),
    }))
}

/// Chooses the indices, fetches one variant of every Packages family and the pdiff Index files,
/// and parses the packages.
async fn select_indices(ctx: &MetadataCtx<'_>, meta: &mut Metadata) -> Result<(), MirrorError> {
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
    let mut parsed = BTreeMap::new();
    for (family, variants) in &families {
        let (path, text) = fetch_family(ctx, meta, family, variants).await?;
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

fn index_path(ctx: &MetadataCtx<'_>, release_path: &str) -> String {
    format!("{}/{release_path}", ctx.dists())
}

fn index_file(ctx: &MetadataCtx<'_>, f: &ReleaseFile, optional: bool) -> IndexFile {
    let mut other = Vec::new();
    for (algo, v) in [("MD5Sum", &f.md5), ("SHA1", &f.sha1), ("SHA512", &f.sha512)] {
        if let Some(d) = v {
            other.push((algo, d.clone()));
        }
    }
    IndexFile { path: index_path(ctx, &f.path), size: f.size, sha256: f.sha256, other_hashes: other, optional }
}

/// Fetches the preferred available variant of one Packages family; returns its path and text.
async fn fetch_family(
    ctx: &MetadataCtx<'_>,
    meta: &mut Metadata,
    family: &str,
    variants: &[&ReleaseFile],
) -> Result<(String, String), MirrorError> {
    let mut ordered: Vec<&ReleaseFile> = variants.to_vec();
    let rank = |p: &str| {
        let ext = &p[strip_compression(p).len()..];
        COMPRESSION_PREFERENCE.iter().position(|e| *e == ext).unwrap_or(usize::MAX)
    };
    ordered.sort_by_key(|f| rank(&f.path));
    let by_hash = meta.release.verified.release().acquire_by_hash;
    let mut last_err = None;
    for f in ordered {
        let path = index_path(ctx, &f.path);
        match fetch_index(ctx, f, by_hash).await {
            Ok(bytes) => {
                let text = decompress(&f.path, &bytes, MAX_INDEX_DECOMPRESSED).map_err(|e| ctx.err(&path, e))?;
                // apt reads bytes: a Latin-1 Maintainer does not break an index. A Filename that
                // is not UTF-8 shows as U+FFFD and is refused per package (parse_packages).
                let text = String::from_utf8_lossy(&text).into_owned();
                meta.fetched.insert(path.clone(), bytes);
                return Ok((path, text));
            }
            Err(e) if e.is_not_found() => {
                tracing::debug!(mirror = %ctx.mirror.id, %path, "Packages variant not served upstream");
                last_err = Some((path, e));
            }
            Err(e) => return Err(ctx.err(&path, e)),
        }
    }
    let (path, e) = last_err.unwrap_or_else(|| {
        (index_path(ctx, family), FetchError::Status { url: ctx.mirror.repository.url.to_string(), status: 404 })
    });
    Err(ctx.err(&path, format!("required index missing upstream: {e}")))
}

/// Fetches one Release-listed index into memory (from the pool when it is already there), by hash
/// when the Release offers it, and checks size and sha256.
async fn fetch_index(ctx: &MetadataCtx<'_>, f: &ReleaseFile, by_hash: bool) -> Result<Vec<u8>, FetchError> {
    let path = index_path(ctx, &f.path);
    if let Some(bytes) = read_pool(ctx.pool, &f.sha256, f.size) {
        return Ok(bytes);
    }
    let url = |p: &str| {
        ctx.url(p)
            .map_err(|e| FetchError::Transport { url: ctx.mirror.repository.url.to_string(), message: e.to_string() })
    };
    let body = if by_hash {
        match ctx.fetcher.get(&url(&by_hash_path(&path, &f.sha256))?, f.size).await {
            Err(e) if e.is_not_found() => ctx.fetcher.get(&url(&path)?, f.size).await?,
            other => other?,
        }
    } else {
        ctx.fetcher.get(&url(&path)?, f.size).await?
    };
    check_bytes(&url(&path)?, &body.bytes, f.size, &f.sha256)?;
    Ok(body.bytes)
}

/// `dists/x/main/binary-amd64/by-hash/SHA256/<hex>` for `dists/x/main/binary-amd64/Packages.xz`.
pub fn by_hash_path(path: &str, sha: &Sha256) -> String {
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/by-hash/SHA256/{sha}")
}

fn check_bytes(url: &Url, bytes: &[u8], size: u64, sha: &Sha256) -> Result<(), FetchError> {
    use crate::pool::PoolError;
    let pool = |source| FetchError::Pool { url: url.to_string(), source: Box::new(source) };
    if bytes.len() as u64 != size {
        return Err(pool(PoolError::SizeMismatch { expected: size, actual: bytes.len() as u64 }));
    }
    let actual = Sha256::of(bytes);
    if actual != *sha {
        return Err(pool(PoolError::HashMismatch { expected: *sha, actual }));
    }
    Ok(())
}

/// Bytes of a pool object, if present and intact (a damaged one is re-fetched).
fn read_pool(pool: &Pool, sha: &Sha256, size: u64) -> Option<Vec<u8>> {
    let bytes = std::fs::read(pool.object_path(sha)).ok()?;
    (bytes.len() as u64 == size && Sha256::of(&bytes) == *sha).then_some(bytes)
}

/// Adds the patches a pdiff Index names (they are not in the Release). A pdiff Index that cannot
/// be fetched or parsed only costs clients the pdiff shortcut: a warning.
async fn pdiff_patches(ctx: &MetadataCtx<'_>, meta: &mut Metadata, f: &ReleaseFile) {
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
fn collect_packages(ctx: &MetadataCtx<'_>, meta: &mut Metadata, path: &str, text: &str) -> Result<(), MirrorError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::signature::testkey;
    use crate::apt::signature::verify_inrelease;

    fn release(date: &str) -> String {
        let sha = Sha256::of(b"");
        format!("Suite: stable\nDate: {date}\nSHA256:\n {sha} 0 main/binary-amd64/Packages\n")
    }

    /// As on deb.debian.org: Release ends with the newline the clearsigned text does not sign.
    #[test]
    fn release_with_the_final_newline_is_inreleases_text() {
        let key = testkey::generate("Repo <repo@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_binary().unwrap()).unwrap();
        let text = release("Mon, 30 Nov 2026 02:21:41 UTC");
        // Debian's InRelease as sequoia reads it: the signed text ends without a newline.
        let inrelease = verify_inrelease(&key.clearsign(text.trim_end().as_bytes()).unwrap(), &keyring).unwrap();
        let signed = inrelease.signed_text().as_bytes();
        assert_eq!(signed, text.trim_end().as_bytes());
        for candidate in [text.as_bytes(), text.trim_end().as_bytes()] {
            assert!(same_text(candidate, signed), "{candidate:?} vs {signed:?}");
        }
        assert!(!same_text(format!("{text}\n").as_bytes(), signed));
        assert!(!same_text(text.replace("stable", "stablf").as_bytes(), signed));
        let stale = body(&key.detach_sign(b"an older Release").unwrap());
        let verdict = companion_verdict(Some(&body(text.as_bytes())), Some(&stale), &inrelease, &keyring);
        assert!(matches!(verdict, Companions::ReleaseOnly { gpg_error: Some(_) }), "{verdict:?}");
    }

    fn body(bytes: &[u8]) -> Body {
        Body { bytes: bytes.to_vec(), last_modified: None }
    }

    /// Debian's real upstream: Release is InRelease's text, Release.gpg a month older (or bad).
    #[test]
    fn companions_are_served_only_when_they_verify() {
        let key = testkey::generate("Repo <repo@example.org>").unwrap();
        let other = testkey::generate("Other <other@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_binary().unwrap()).unwrap();
        let now = release("Mon, 30 Nov 2026 02:21:41 UTC");
        let old = release("Fri, 30 Oct 2026 08:08:02 UTC");
        let inrelease = verify_inrelease(&key.clearsign(now.as_bytes()).unwrap(), &keyring).unwrap();
        let good_gpg = body(&key.detach_sign(now.as_bytes()).unwrap());
        let stale_gpg = body(&key.detach_sign(old.as_bytes()).unwrap());
        let foreign_gpg = body(&other.detach_sign(now.as_bytes()).unwrap());
        let (same, older) = (body(now.as_bytes()), body(old.as_bytes()));
        let verdict = |r: Option<&Body>, g: Option<&Body>| companion_verdict(r, g, &inrelease, &keyring);

        assert_eq!(verdict(Some(&same), Some(&good_gpg)), Companions::Both);
        // Release identical to the signed text; Release.gpg stale, by an unknown key, or absent.
        for gpg in [&stale_gpg, &foreign_gpg] {
            match verdict(Some(&same), Some(gpg)) {
                Companions::ReleaseOnly { gpg_error: Some(e) } => assert!(!e.is_empty()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(verdict(Some(&same), None), Companions::ReleaseOnly { gpg_error: None });
        // An older Release is not served, even with its own good signature: it lists indices
        // this snapshot (InRelease's) does not carry.
        assert!(matches!(verdict(Some(&older), Some(&stale_gpg)), Companions::Neither { why: Some(_) }));
        assert!(matches!(verdict(Some(&older), Some(&good_gpg)), Companions::Neither { why: Some(_) }));
        assert!(matches!(verdict(Some(&older), None), Companions::Neither { why: Some(_) }));
        assert!(matches!(verdict(None, Some(&good_gpg)), Companions::Neither { why: Some(_) }));
        assert_eq!(verdict(None, None), Companions::Neither { why: None });
    }
}
