//! Retention: which snapshots a publish keeps. Per mirror: the newest `keep`, the published one
//! (even when older, after a rollback — a pinned mirror's is always its published one), and
//! every snapshot superseded within the grace window (its by-hash indices and package files are
//! still visible to clients that read its InRelease).
//!
//! A pinned mirror's snapshots that a sync recorded but did not publish count against `keep`
//! like any other; the newest of them — what the operator would publish next — is the newest
//! snapshot of its mirror, which is always kept (`keep` is at least 1; the config refuses 0 and
//! [`apply`] treats 0 as 1).

use super::rows::Retention;
use rusqlite::{params, Transaction};

/// Deletes the snapshots the policy does not keep; returns them as `mirror/name`.
pub(super) fn apply(tx: &Transaction<'_>, now: i64, policy: Retention) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare(
        "SELECT s.id, s.mirror_id, s.name,
                COALESCE(m.published = s.id, 0),
                s.superseded_at IS NOT NULL AND s.superseded_at >= ?1
         FROM snapshots s JOIN mirrors m ON m.id = s.mirror_id
         ORDER BY s.mirror_id, s.name DESC",
    )?;
    let rows = stmt
        .query_map(params![now - policy.grace_secs], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut doomed = Vec::new();
    let mut rank = 0;
    let mut current: Option<String> = None;
    for (id, mirror, name, published, in_grace) in rows {
        if current.as_deref() != Some(mirror.as_str()) {
            current = Some(mirror.clone());
            rank = 0;
        }
        rank += 1;
        if !(published || in_grace || rank <= policy.keep.max(1)) {
            doomed.push((id, format!("{mirror}/{name}")));
        }
    }
    for (id, _) in &doomed {
        delete_snapshot(tx, *id)?;
    }
    Ok(doomed.into_iter().map(|(_, n)| n).collect())
}

pub(super) fn delete_snapshot(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM index_hashes WHERE snapshot_id = ?1", params![id])?;
    tx.execute("DELETE FROM entries WHERE snapshot_id = ?1", params![id])?;
    tx.execute("DELETE FROM snapshots WHERE id = ?1", params![id])?;
    Ok(())
}
