//! The shrink guard: a new snapshot that drops more than `[sync] max-shrink` of its mirror's
//! packages (a tree: its files) or bytes against the published snapshot is recorded but not
//! published — an upstream that suddenly lists half of what it did is broken (a truncated index,
//! a half-synced mirror), and publishing it would remove packages from every client. The run of
//! that entry fails with a one-line reason; `sync --allow-shrink` or `snapshot publish`
//! publishes it.

use crate::catalog::{Catalog, CatalogError, NewSnapshot, SnapshotRow};
use crate::tree::source::EntryKind;

/// Why `snap` is held back, if it shrank past `max` percent; `kind` is `mirror` or `tree`.
pub(super) fn check(
    catalog: &Catalog,
    snap: &NewSnapshot,
    kind: &str,
    max: u8,
) -> Result<Option<Shrunk>, CatalogError> {
    if max >= 100 {
        return Ok(None);
    }
    let Some(published) = catalog.published(&snap.mirror_id)? else { return Ok(None) };
    let (what, old, new) = match kind {
        "mirror" => {
            let stats = catalog.snapshot_stats(Some(&snap.mirror_id))?;
            let old = stats.get(&published.id).map_or(0, |s| s.packages);
            ("packages", old, snap.entries.iter().filter(|e| e.kind == EntryKind::Package).count() as u64)
        }
        _ => ("files", published.files, snap.entries.len() as u64),
    };
    let bytes: u64 = snap.entries.iter().map(|e| e.size).sum();
    for (what, old, new) in [(what, old, new), ("bytes", published.bytes, bytes)] {
        if old > 0 && new.saturating_mul(100) < old.saturating_mul(100 - u64::from(max)) {
            let shrunk = Shrunk { kind: kind.to_owned(), published, what, old, new, max };
            return Ok(Some(shrunk));
        }
    }
    Ok(None)
}

/// The newest snapshot of the mirror, when it is an unpublished one with the same Release and
/// files as `snap`: an upstream that stays shrunk is recorded once, not at every run (copies of
/// it would push the rollback targets out of retention).
pub(super) fn held_before(catalog: &Catalog, snap: &NewSnapshot) -> Result<Option<String>, CatalogError> {
    let Some(newest) = catalog.newest_snapshot(&snap.mirror_id)? else { return Ok(None) };
    let bytes: u64 = snap.entries.iter().map(|e| e.size).sum();
    let same = !newest.published
        && newest.release_sha256 == snap.release_sha256
        && newest.files == snap.entries.len() as u64
        && newest.bytes == bytes;
    Ok(same.then_some(newest.name))
}

/// A snapshot that shrank past the limit, against the published one.
#[derive(Debug, Clone)]
pub(super) struct Shrunk {
    kind: String,
    published: SnapshotRow,
    /// `packages`, `files` or `bytes`.
    what: &'static str,
    old: u64,
    new: u64,
    max: u8,
}

impl Shrunk {
    /// The one-line reason, naming the held snapshot `name`.
    pub(super) fn line(&self, name: &str) -> String {
        let id = &self.published.mirror_id;
        let dropped = (self.old - self.new) * 100 / self.old;
        format!(
            "{kind} {id}: new snapshot {name} has {new} {what} against {old} in the published {published}, {dropped}% \
             fewer ([sync] max-shrink = {max}%): recorded, not published; `pmirror-fs sync --allow-shrink {id}` or \
             `pmirror-fs snapshot publish {id} {name}` publishes it",
            kind = self.kind,
            new = self.new,
            what = self.what,
            old = self.old,
            published = self.published.name,
            max = self.max,
        )
    }
}
