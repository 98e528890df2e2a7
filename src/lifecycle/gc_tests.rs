//! Property test of gc over a real catalog and a temp pool: random sequences of record, publish
//! (with retention), remove, orphaned downloads and gc. After every gc, every object a snapshot
//! row references — everything the view shows, retained and in-grace snapshots included — is in
//! the pool intact, and nothing else is.

use super::gc;
use crate::catalog::{Catalog, NewEntry, NewSnapshot, Retention};
use crate::digest::Sha256;
use crate::pool::{Pool, StoreLock};
use crate::tree::source::EntryKind;
use proptest::prelude::*;
use std::collections::BTreeSet;

const MIRRORS: [&str; 2] = ["a", "b"];
/// Distinct contents the snapshots draw from (small, so snapshots share objects).
const UNIVERSE: u8 = 10;

#[derive(Debug, Clone)]
enum Op {
    /// A sync recorded a snapshot of these objects (its publish may follow or not).
    Record {
        mirror: usize,
        objects: Vec<u8>,
    },
    /// Publish the n-th snapshot of the mirror (rollback or roll-forward) with this retention.
    Publish {
        mirror: usize,
        nth: usize,
        keep: usize,
        grace: i64,
    },
    Remove {
        mirror: usize,
        nth: usize,
    },
    /// A crashed sync left an object in the pool that it never recorded.
    Orphan {
        object: u8,
    },
    Wait {
        secs: i64,
    },
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..MIRRORS.len(), prop::collection::vec(0..UNIVERSE, 1..5))
            .prop_map(|(mirror, objects)| Op::Record { mirror, objects }),
        3 => (0..MIRRORS.len(), 0..6usize, 1..4usize, prop_oneof![Just(0i64), Just(50i64)])
            .prop_map(|(mirror, nth, keep, grace)| Op::Publish { mirror, nth, keep, grace }),
        1 => (0..MIRRORS.len(), 0..6usize).prop_map(|(mirror, nth)| Op::Remove { mirror, nth }),
        1 => (0..UNIVERSE).prop_map(|object| Op::Orphan { object }),
        1 => (1..40i64).prop_map(|secs| Op::Wait { secs }),
        2 => Just(Op::Gc),
    ]
}

fn content(i: u8) -> Vec<u8> {
    format!("object {i}").into_bytes()
}

struct World {
    _dir: tempfile::TempDir,
    store: std::path::PathBuf,
    catalog: Catalog,
    pool: Pool,
    now: i64,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().to_owned();
        let catalog = Catalog::open(&store).unwrap();
        for m in MIRRORS {
            catalog.upsert_mirror(m, "mirror", &format!("v/{m}"), "http://example/").unwrap();
        }
        let pool = Pool::open(&store, false).unwrap();
        World { _dir: dir, store, catalog, pool, now: 1_000 }
    }

    fn nth_snapshot(&self, mirror: usize, nth: usize) -> Option<(i64, String)> {
        let snaps = self.catalog.snapshots(Some(MIRRORS[mirror])).unwrap();
        (!snaps.is_empty()).then(|| {
            let s = &snaps[nth % snaps.len()];
            (s.id, s.name.clone())
        })
    }

    fn apply(&mut self, op: &Op) {
        self.now += 1;
        match op {
            Op::Record { mirror, objects } => self.record(*mirror, objects),
            Op::Publish { mirror, nth, keep, grace } => {
                if let Some((id, _)) = self.nth_snapshot(*mirror, *nth) {
                    let retention = Retention { keep: *keep, grace_secs: *grace };
                    self.catalog.publish(&[id], self.now, retention, |_| Ok(None)).unwrap();
                }
            }
            Op::Remove { mirror, nth } => {
                if let Some((_, name)) = self.nth_snapshot(*mirror, *nth) {
                    // Refused for the published one; that is part of what is tested.
                    let _refused_or_removed =
                        self.catalog.remove_snapshot(MIRRORS[*mirror], &name, self.now, 0, |_| Ok(None));
                }
            }
            Op::Orphan { object } => {
                let bytes = content(*object);
                self.pool.put_bytes(&bytes, &Sha256::of(&bytes)).unwrap();
            }
            Op::Wait { secs } => self.now += secs,
            Op::Gc => self.gc(),
        }
    }

    fn record(&mut self, mirror: usize, objects: &[u8]) {
        let mut entries = Vec::new();
        for (n, &i) in objects.iter().enumerate() {
            let bytes = content(i);
            let sha256 = Sha256::of(&bytes);
            self.pool.put_bytes(&bytes, &sha256).unwrap();
            let path = format!("pool/{n}.deb");
            let size = bytes.len() as u64;
            entries.push(NewEntry { path, sha256, size, mtime: 1, kind: EntryKind::Package, other_hashes: vec![] });
        }
        let snap = NewSnapshot {
            mirror_id: MIRRORS[mirror].into(),
            created_at: self.now,
            release_sha256: None,
            release_last_modified: None,
            entries,
        };
        self.catalog.record_snapshot(&snap).unwrap();
    }

    fn gc(&mut self) {
        let lock = StoreLock::acquire(&self.store).unwrap();
        let plan = gc::plan(&self.catalog, &self.pool, &lock, None).unwrap();
        gc::perform(&plan, &mut self.catalog, &self.pool, &lock).unwrap();
    }

    /// Digests of every object the view (any role, grace window of any length) shows.
    fn referenced(&self) -> BTreeSet<Sha256> {
        let view = self.catalog.load_view(self.now, i64::MAX / 4).unwrap();
        view.objects.iter().map(|o| o.sha256).collect()
    }

    fn pool_files(&self) -> BTreeSet<Sha256> {
        gc::scan_pool(&self.pool).unwrap().files.iter().map(|f| f.sha256).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn gc_keeps_exactly_what_snapshots_reference(ops in prop::collection::vec(op(), 1..30)) {
        let mut w = World::new();
        for op in &ops {
            let before = w.referenced();
            let before_names: Vec<Vec<String>> = MIRRORS
                .iter()
                .map(|m| w.catalog.snapshots(Some(m)).unwrap().into_iter().map(|s| s.name).collect())
                .collect();
            w.apply(op);
            if matches!(op, Op::Gc) {
                prop_assert_eq!(w.referenced(), before.clone(), "gc changed the catalog's references");
                for sha in &before {
                    let got = w.pool.read_verified(sha, None).unwrap();
                    prop_assert!(got.is_some(), "gc deleted referenced object {}", sha);
                }
                prop_assert_eq!(w.pool_files(), before, "gc left unreferenced objects");
                let rows = w.catalog.object_liveness().unwrap();
                prop_assert!(rows.iter().all(|(_, live)| *live), "gc left unreferenced rows");
            }
            if let Op::Publish { mirror, nth, keep, .. } = op {
                // Retention after a publish (or rollback): the picked snapshot is published and
                // kept, with at least `keep` of the mirror's snapshots.
                let m = MIRRORS[*mirror];
                let picked = before_names.get(*mirror).and_then(|names| {
                    (!names.is_empty()).then(|| names[nth % names.len()].clone())
                });
                if let Some(name) = picked {
                    prop_assert_eq!(w.catalog.published(m).unwrap().map(|s| s.name), Some(name));
                    let after = w.catalog.snapshots(Some(m)).unwrap().len();
                    prop_assert!(after >= (*keep).min(before_names[*mirror].len()), "{} kept {} < keep {}", m, after, keep);
                }
            }
        }
    }
}
