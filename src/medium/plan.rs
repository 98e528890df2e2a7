//! What a medium sync would do, decided before anything is written (`medium diff` prints it,
//! `medium sync` performs it): which snapshots of the store the medium's config picks, which
//! objects they use, which of those the medium already has intact, and what it holds that the
//! new state no longer uses.

use super::{MediumError, MARKER};
use crate::catalog::{Catalog, SnapshotRow};
use crate::config::{MediumConfig, MediumSnapshots};
use crate::digest::Sha256;
use crate::pool::Pool;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

/// One snapshot the medium will hold.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub row: SnapshotRow,
    /// The medium publishes it (its mirror's published snapshot there).
    pub publish: bool,
}

/// A medium sync, planned.
#[derive(Debug, Default)]
pub struct MediumPlan {
    pub chosen: Vec<Chosen>,
    /// Every object the chosen snapshots use.
    pub objects: Vec<(Sha256, u64)>,
    /// Objects to copy (absent from the medium, or of the wrong size there).
    pub add: Vec<(Sha256, u64)>,
    /// Objects on the medium the new state does not use (removed after the commit).
    pub remove: Vec<(Sha256, u64)>,
    /// Objects the new state uses that are on the medium but no committed state of it uses (left
    /// by a sync that did not commit, so maybe never made durable): re-hashed before they count.
    pub recheck: Vec<(Sha256, u64)>,
    /// `mirror/name` of snapshots the medium gains and loses.
    pub snapshots_added: Vec<String>,
    pub snapshots_removed: Vec<String>,
    /// The medium's generation now (0 for a new medium).
    pub medium_generation: u64,
}

impl MediumPlan {
    pub fn add_bytes(&self) -> u64 {
        self.add.iter().map(|(_, s)| s).sum()
    }

    pub fn remove_bytes(&self) -> u64 {
        self.remove.iter().map(|(_, s)| s).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.objects.iter().map(|(_, s)| s).sum()
    }

    /// Nothing to copy, remove, or change in the snapshot set.
    pub fn is_noop(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.snapshots_added.is_empty()
            && self.snapshots_removed.is_empty()
    }
}

/// The snapshots of `store` that `medium` carries, each marked with whether the medium
/// publishes it: per entry, the store's published snapshot if it is among them, else the newest.
pub fn choose(medium: &MediumConfig, store: &Catalog) -> Result<Vec<Chosen>, MediumError> {
    let mut out = Vec::new();
    for entry in &medium.mirrors {
        let mut rows = store.snapshots(Some(entry))?;
        rows.sort_by(|a, b| b.name.cmp(&a.name));
        let picked: Vec<SnapshotRow> = match &medium.snapshots {
            MediumSnapshots::Published => rows.into_iter().filter(|r| r.published).collect(),
            MediumSnapshots::Newest(n) => rows.into_iter().take(*n).collect(),
            MediumSnapshots::Named(names) => {
                let wanted: Vec<&str> = names.iter().filter(|(m, _)| m == entry).map(|(_, n)| n.as_str()).collect();
                for name in &wanted {
                    if !rows.iter().any(|r| r.name == *name) {
                        let message = format!("medium {}: {entry} has no snapshot named {name}", medium.id);
                        return Err(MediumError::Selection(message));
                    }
                }
                rows.into_iter().filter(|r| wanted.contains(&r.name.as_str())).collect()
            }
        };
        if picked.is_empty() {
            let message = format!("medium {}: {entry} has no published snapshot yet: sync it first", medium.id);
            return Err(MediumError::Selection(message));
        }
        let publish = picked.iter().position(|r| r.published).unwrap_or(0);
        out.extend(picked.into_iter().enumerate().map(|(i, row)| Chosen { row, publish: i == publish }));
    }
    Ok(out)
}

/// The objects under `<dir>/pool/sha256/`, with their sizes (a medium not synced yet has none).
pub fn objects_on(dir: &Path) -> Result<HashMap<Sha256, u64>, MediumError> {
    let scan = crate::lifecycle::gc::scan_pool(&Pool::existing(dir))?;
    Ok(scan.files.into_iter().map(|f| (f.sha256, f.size)).collect())
}

/// The plan: `chosen` (of the store catalog `store`) against what the medium at `dir` holds.
pub fn plan(store: &Catalog, chosen: Vec<Chosen>, dir: &Path) -> Result<MediumPlan, MediumError> {
    let ids: Vec<i64> = chosen.iter().map(|c| c.row.id).collect();
    let objects = store.objects_of(&ids)?;
    let present = objects_on(dir)?;
    let wanted: HashSet<Sha256> = objects.iter().map(|(d, _)| *d).collect();
    let add = objects.iter().filter(|(d, s)| present.get(d) != Some(s)).copied().collect();
    let mut remove: Vec<(Sha256, u64)> =
        present.iter().filter(|(d, _)| !wanted.contains(d)).map(|(d, s)| (*d, *s)).collect();
    remove.sort();
    let (held, medium_generation, committed) = held_snapshots(dir)?;
    let recheck =
        objects.iter().filter(|(d, s)| present.get(d) == Some(s) && !committed.contains(d)).copied().collect();
    let new: BTreeSet<String> = chosen.iter().map(|c| format!("{}/{}", c.row.mirror_id, c.row.name)).collect();
    Ok(MediumPlan {
        snapshots_added: new.difference(&held).cloned().collect(),
        snapshots_removed: held.difference(&new).cloned().collect(),
        chosen,
        objects,
        add,
        remove,
        recheck,
        medium_generation,
    })
}

/// `mirror/name` of every snapshot the medium's catalog holds, its generation and the objects
/// those snapshots use (none, 0 and none for a medium not synced yet).
fn held_snapshots(dir: &Path) -> Result<(BTreeSet<String>, u64, HashSet<Sha256>), MediumError> {
    let Some(file) = super::catalog_file(dir).filter(|_| dir.join(MARKER).is_file()) else {
        return Ok((BTreeSet::new(), 0, HashSet::new()));
    };
    let catalog = Catalog::open_immutable(&file)?;
    let rows = catalog.snapshots(None)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let objects = catalog.objects_of(&ids)?.into_iter().map(|(d, _)| d).collect();
    let names = rows.into_iter().map(|r| format!("{}/{}", r.mirror_id, r.name)).collect();
    Ok((names, catalog.generation()?, objects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{NewEntry, NewSnapshot, Retention};
    use crate::tree::source::EntryKind;

    const KEEP: Retention = Retention { keep: 5, grace_secs: 0 };

    fn record(cat: &mut Catalog, mirror: &str, t: i64, files: &[&str]) -> i64 {
        let entries = files
            .iter()
            .map(|f| NewEntry {
                path: format!("pool/{f}"),
                sha256: Sha256::of(f.as_bytes()),
                size: f.len() as u64,
                mtime: t,
                kind: EntryKind::Package,
                other_hashes: Vec::new(),
            })
            .collect();
        let snap = NewSnapshot {
            mirror_id: mirror.into(),
            created_at: t,
            release_sha256: None,
            release_last_modified: None,
            entries,
        };
        cat.record_snapshot(&snap).unwrap().0
    }

    /// Mirror `a` with snapshots at t = 1, 2, 3 (2 published, a rollback), `b` with one at 1.
    fn store() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(dir.path()).unwrap();
        cat.upsert_mirror("a", "mirror", "a", "http://x/a").unwrap();
        cat.upsert_mirror("b", "tree", "b", "http://x/b").unwrap();
        let a1 = record(&mut cat, "a", 1, &["one", "shared"]);
        let b1 = record(&mut cat, "b", 1, &["iso", "shared"]);
        cat.publish(&[a1, b1], 1, KEEP, |_| Ok(None)).unwrap();
        let a2 = record(&mut cat, "a", 2, &["two", "shared"]);
        cat.publish(&[a2], 2, KEEP, |_| Ok(None)).unwrap();
        record(&mut cat, "a", 3, &["three", "shared"]);
        (dir, cat)
    }

    fn medium(snapshots: MediumSnapshots) -> MediumConfig {
        MediumConfig { id: "usb".into(), path: "/nonexistent".into(), mirrors: vec!["a".into(), "b".into()], snapshots }
    }

    /// (entry, snapshot name, published on the medium)
    type Picked = (&'static str, String, bool);

    fn t(n: i64) -> String {
        crate::catalog::snapshot_name(n)
    }

    #[test]
    fn a_medium_picks_the_snapshots_its_config_names_and_publishes_one_per_entry() {
        let (_d, cat) = store();
        let named = MediumSnapshots::Named(vec![("a".into(), t(1)), ("a".into(), t(3)), ("b".into(), t(1))]);
        let cases: [(MediumSnapshots, Vec<Picked>); 3] = [
            (MediumSnapshots::Published, vec![("a", t(2), true), ("b", t(1), true)]),
            (MediumSnapshots::Newest(2), vec![("a", t(3), false), ("a", t(2), true), ("b", t(1), true)]),
            // The store's published one is not among them: the newest picked is the medium's.
            (named, vec![("a", t(3), true), ("a", t(1), false), ("b", t(1), true)]),
        ];
        for (snapshots, want) in cases {
            let got: Vec<(String, String, bool)> = choose(&medium(snapshots.clone()), &cat)
                .unwrap()
                .into_iter()
                .map(|c| (c.row.mirror_id, c.row.name, c.publish))
                .collect();
            let want: Vec<(String, String, bool)> = want.into_iter().map(|(m, n, p)| (m.to_owned(), n, p)).collect();
            assert_eq!(got, want, "{snapshots:?}");
        }
        let missing = MediumSnapshots::Named(vec![("a".into(), t(9)), ("b".into(), t(1))]);
        let err = choose(&medium(missing), &cat).unwrap_err().to_string();
        assert!(err.contains("a has no snapshot named"), "{err}");
    }

    #[test]
    fn the_plan_adds_what_is_missing_or_of_the_wrong_size_and_removes_what_is_unused() {
        let (_d, cat) = store();
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path(), false).unwrap();
        // On the medium: "one" intact, "two" of the wrong size, "stale" used by nothing.
        pool.put_bytes(b"one", &Sha256::of(b"one")).unwrap();
        let wrong = pool.object_path(&Sha256::of(b"two"));
        std::fs::create_dir_all(wrong.parent().unwrap()).unwrap();
        std::fs::write(&wrong, b"tw").unwrap();
        pool.put_bytes(b"stale", &Sha256::of(b"stale")).unwrap();
        let chosen = choose(&medium(MediumSnapshots::Newest(3)), &cat).unwrap();
        let plan = plan(&cat, chosen, dir.path()).unwrap();
        let names = |v: &[(Sha256, u64)]| {
            let mut n: Vec<String> = v
                .iter()
                .map(|(d, _)| {
                    ["one", "two", "three", "shared", "iso", "stale"]
                        .into_iter()
                        .find(|f| Sha256::of(f.as_bytes()) == *d)
                        .unwrap()
                        .to_owned()
                })
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&plan.add), ["iso", "shared", "three", "two"]);
        assert_eq!(names(&plan.remove), ["stale"]);
        assert_eq!(names(&plan.objects).len(), 5, "one, two, three, shared, iso");
        // No committed catalog on this medium: the intact leftover is re-hashed before it counts.
        assert_eq!(names(&plan.recheck), ["one"]);
        assert_eq!(plan.snapshots_added.len(), 4);
    }
}
