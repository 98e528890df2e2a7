//! Phase 1 of an apt mirror: InRelease (conditional) or Release + Release.gpg, verified with the
//! mirror's key, the companions served beside a verifying InRelease, and the dates apt checks.

use super::ctx::{MirrorCtx, ReleaseFiles, MAX_RELEASE_SIZE};
use crate::apt::signature::{verify_detached, verify_inrelease, Keyring, VerifiedRelease};
use crate::digest::Sha256;
use crate::engine::{Cause, EntryError};
use crate::fetch::{Body, Conditional, FetchError};

/// Seconds a Release's `Date` may lie in the future: apt's `Acquire::Max-FutureTime` default
/// (debReleaseIndex::Load: NotBefore = Date - 10; acquire-item.cc refuses until then).
const MAX_FUTURE_SECS: i64 = 10;

/// A Release past its `Valid-Until` is refused: apt clients would reject it ("Release file …
/// is expired"), and a signed but expired Release is what a stale upstream or an attacker
/// replaying an old one serves. So is one dated more than [`MAX_FUTURE_SECS`] ahead: apt says
/// "Release file … is not valid yet" until then. The previous snapshot stays published.
pub(super) fn check_dates(ctx: &MirrorCtx<'_>, release: &ReleaseFiles, now: i64) -> Result<(), EntryError> {
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

/// The signed file(s) of the suite as one source serves them, verified.
pub(super) struct Signed {
    pub files: Vec<(String, Body)>,
    pub verified: VerifiedRelease,
    /// Of the file carrying the signature (InRelease, else Release).
    pub digest: Sha256,
    pub last_modified: Option<i64>,
    /// InRelease (not Release + Release.gpg).
    pub clearsigned: bool,
}

/// InRelease (conditional), else Release + Release.gpg — from the one source, or the best of
/// several ([`super::sources::choose`]); `None` when unchanged since last time.
pub(super) async fn fetch_release(ctx: &MirrorCtx<'_>) -> Result<Option<ReleaseFiles>, EntryError> {
    let keyring = Keyring::from_bytes(&ctx.mirror.key_bytes)
        .map_err(|e| ctx.err(&ctx.mirror.key.display().to_string(), Cause::Key(e.into())))?;
    let unchanged = ctx.previous.release_sha256.filter(|_| !ctx.force);
    let signed = if ctx.fetcher.source_count() > 1 {
        super::sources::choose(ctx, &keyring).await?
    } else {
        let since = if ctx.force { None } else { ctx.previous.release_last_modified };
        match fetch_signed(ctx, ctx.fetcher, since, unchanged, &keyring).await? {
            Some(signed) => signed,
            None => return Ok(None),
        }
    };
    if unchanged == Some(signed.digest) {
        return Ok(None);
    }
    let Signed { mut files, verified, digest, last_modified, clearsigned } = signed;
    let mut warnings = Vec::new();
    if clearsigned {
        let (companions, found) = detached_companions(ctx, &keyring, &verified).await;
        (warnings, files) = (found, files.into_iter().chain(companions).collect());
    }
    Ok(Some(ReleaseFiles { files, verified, release_sha256: digest, release_last_modified: last_modified, warnings }))
}

/// InRelease (with `If-Modified-Since` when `since`), else Release + Release.gpg, verified, as
/// `fetcher` gets them; `None` when not modified or when the signed file's digest is `unchanged`.
pub(super) async fn fetch_signed(
    ctx: &MirrorCtx<'_>,
    fetcher: &crate::fetch::Fetcher,
    since: Option<i64>,
    unchanged: Option<Sha256>,
    keyring: &Keyring,
) -> Result<Option<Signed>, EntryError> {
    let inrelease = format!("{}/InRelease", ctx.dists());
    match fetcher.get_conditional(&ctx.url(&inrelease)?, since).await {
        Ok(Conditional::NotModified) => Ok(None),
        Ok(Conditional::Modified(body)) => {
            let digest = Sha256::of(&body.bytes);
            if unchanged == Some(digest) {
                return Ok(None);
            }
            let verified = verify_inrelease(&body.bytes, keyring).map_err(|e| ctx.err(&inrelease, e))?;
            let last_modified = body.last_modified;
            Ok(Some(Signed { files: vec![(inrelease, body)], verified, digest, last_modified, clearsigned: true }))
        }
        // apt falls back to Release + Release.gpg on a 404 only (pkgAcqMetaClearSig::Failed).
        Err(FetchError::Status { status: 404, .. }) => fetch_detached(ctx, fetcher, unchanged, keyring).await,
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
    ctx: &MirrorCtx<'_>,
    keyring: &Keyring,
    inrelease: &VerifiedRelease,
) -> (Vec<(String, Body)>, Vec<String>) {
    let release_path = format!("{}/Release", ctx.dists());
    let gpg_path = format!("{}/Release.gpg", ctx.dists());
    // Both at once: on a far upstream each is a round trip.
    let (release, gpg) = futures_util::join!(fetch_companion(ctx, &release_path), fetch_companion(ctx, &gpg_path));
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
async fn fetch_companion(ctx: &MirrorCtx<'_>, path: &str) -> Result<Option<Body>, String> {
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

async fn fetch_detached(
    ctx: &MirrorCtx<'_>,
    fetcher: &crate::fetch::Fetcher,
    unchanged: Option<Sha256>,
    keyring: &Keyring,
) -> Result<Option<Signed>, EntryError> {
    let release_path = format!("{}/Release", ctx.dists());
    let gpg_path = format!("{}/Release.gpg", ctx.dists());
    let release = fetcher.get(&ctx.url(&release_path)?, MAX_RELEASE_SIZE).await;
    let release = release.map_err(|e| ctx.err(&release_path, e))?;
    let digest = Sha256::of(&release.bytes);
    if unchanged == Some(digest) {
        return Ok(None);
    }
    let sig = match fetcher.get(&ctx.url(&gpg_path)?, MAX_RELEASE_SIZE).await {
        Ok(sig) => sig,
        Err(e) if e.is_not_found() => {
            return Err(ctx.err(&release_path, "unsigned: neither InRelease nor Release.gpg exists upstream"))
        }
        Err(e) => return Err(ctx.err(&gpg_path, e)),
    };
    let verified = verify_detached(&release.bytes, &sig.bytes, keyring).map_err(|e| ctx.err(&gpg_path, e))?;
    let last_modified = release.last_modified;
    let files = vec![(release_path, release), (gpg_path, sig)];
    Ok(Some(Signed { files, verified, digest, last_modified, clearsigned: false }))
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
