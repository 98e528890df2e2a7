//! Phase 1 with several sources: each source's InRelease (else Release + Release.gpg) is read
//! and verified at once; the newest by `Date` among those heard within [`GRACE`] of the first
//! verifying one is the run's (ties go to the configured order), if it is not older than the
//! published snapshot's. Sources serving that very file serve the run's metadata; one serving
//! an older or another file, or none in time, serves only packages (checked by their hash); one
//! serving a file that does not verify is not used again. Each is said in the run's warnings.

use super::ctx::MirrorCtx;
use super::release::{fetch_signed, Signed};
use crate::apt::signature::{verify_inrelease, Keyring};
use crate::catalog::snapshot_name;
use crate::engine::{Cause, EntryError};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::time::Duration;

/// How long the other sources may take to answer after the first verifying InRelease arrived.
const GRACE: Duration = Duration::from_secs(2);

type Answer = (usize, Result<Option<Signed>, EntryError>);

pub(super) async fn choose(ctx: &MirrorCtx<'_>, keyring: &Keyring) -> Result<Signed, EntryError> {
    let answers = ask_all(ctx, keyring).await;
    let mut good: Vec<(usize, Signed)> = Vec::new();
    let mut first_error = None;
    for (i, got) in answers {
        match got {
            Ok(Some(signed)) => good.push((i, signed)),
            Ok(None) => ctx.fetcher.source_not_for_metadata(i, "its InRelease was not served".to_owned()),
            Err(e) if matches!(e.cause, Cause::Invalid(_) | Cause::Signature { .. }) => {
                ctx.fetcher.source_bad(i, format!("served a signed file that does not verify: {e}"));
                first_error = first_error.or(Some((i, e)));
            }
            Err(e) => {
                ctx.fetcher.source_not_for_metadata(i, format!("its InRelease could not be fetched: {e}"));
                first_error = first_error.or(Some((i, e)));
            }
        }
    }
    good.sort_by_key(|(i, _)| *i);
    let date = |s: &Signed| s.verified.release().date.unwrap_or(i64::MIN);
    let Some(best) = good.iter().enumerate().max_by_key(|(k, (_, s))| (date(s), std::cmp::Reverse(*k))).map(|(k, _)| k)
    else {
        // Nothing verified anywhere: the first source's own error says why.
        let (_, e) = first_error.expect("every source answered or was cut off; at least one is an error");
        return Err(e);
    };
    let (chosen, signed) = good.swap_remove(best);
    let inrelease = format!("{}/InRelease", ctx.dists());
    if let Some(published) = published_date(ctx, keyring).filter(|p| date(&signed) < *p) {
        return Err(ctx.err(
            &inrelease,
            format!(
                "every source serves a Release older than the published snapshot's (Date {}); the newest, \
                 from {}, is dated {}: the previous snapshot stays published",
                snapshot_name(published),
                source(ctx, chosen),
                snapshot_name(date(&signed))
            ),
        ));
    }
    for (i, other) in &good {
        if other.digest == signed.digest {
            continue;
        }
        let why = match date(other) < date(&signed) {
            true => format!(
                "stale: its Release is dated {}, the newest (from {}) {}",
                snapshot_name(date(other)),
                source(ctx, chosen),
                snapshot_name(date(&signed))
            ),
            false => format!("its Release differs from the one chosen (from {})", source(ctx, chosen)),
        };
        ctx.fetcher.source_not_for_metadata(*i, why);
    }
    tracing::info!(mirror = %ctx.mirror.id, source = %source(ctx, chosen), "InRelease chosen");
    Ok(signed)
}

/// Every source's signed files, those heard within [`GRACE`] of the first that verifies; the
/// others are told not to serve metadata.
async fn ask_all(ctx: &MirrorCtx<'_>, keyring: &Keyring) -> Vec<Answer> {
    let n = ctx.fetcher.source_count();
    let mut pending: FuturesUnordered<_> = (0..n)
        .map(|i| {
            let fetcher = ctx.fetcher.pinned(i);
            async move { (i, fetch_signed(ctx, &fetcher, None, None, keyring).await) }
        })
        .collect();
    let mut answers: Vec<Answer> = Vec::new();
    let mut deadline = None;
    loop {
        let next = match deadline {
            None => pending.next().await,
            Some(at) => tokio::time::timeout_at(at, pending.next()).await.ok().flatten(),
        };
        let Some((i, got)) = next else { break };
        if deadline.is_none() && matches!(got, Ok(Some(_))) {
            deadline = Some(tokio::time::Instant::now() + GRACE);
        }
        answers.push((i, got));
    }
    for i in (0..n).filter(|i| !answers.iter().any(|(a, _)| a == i)) {
        let why = format!("its InRelease did not come within {} s of the first verifying one", GRACE.as_secs());
        ctx.fetcher.source_not_for_metadata(i, why);
    }
    answers
}

fn source(ctx: &MirrorCtx<'_>, i: usize) -> String {
    ctx.fetcher.source(i).map_or_else(|| ctx.mirror.repository.url.to_string(), ToString::to_string)
}

/// The `Date` of the published snapshot's signed Release (its InRelease or Release in the pool).
fn published_date(ctx: &MirrorCtx<'_>, keyring: &Keyring) -> Option<i64> {
    let sha = ctx.previous.release_sha256?;
    let bytes = ctx.pool.read_verified(&sha, None).ok().flatten()?;
    let release = match bytes.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----") {
        true => verify_inrelease(&bytes, keyring).ok()?.release().clone(),
        false => crate::apt::release::parse_release(std::str::from_utf8(&bytes).ok()?).ok()?,
    };
    release.date
}
