//! Catalog tests: record → publish → view, retention, monotonic Release mtime, refusal.

use super::*;
use crate::digest::Sha256;
use crate::tree::source::{EntryKind, Role};

fn entry(path: &str, content: &str, kind: EntryKind, mtime: i64) -> NewEntry {
    NewEntry {
        path: path.into(),
        sha256: Sha256::of(content.as_bytes()),
        size: content.len() as u64,
        mtime,
        kind,
        other_hashes: if kind == EntryKind::Index { vec![("MD5Sum", format!("md5-{content}"))] } else { vec![] },
    }
}

fn snapshot(mirror: &str, t: i64, release: &str, packages: &[&str]) -> NewSnapshot {
    let mut entries = vec![
        entry("dists/bookworm/InRelease", release, EntryKind::Release, t),
        entry("dists/bookworm/main/binary-amd64/Packages", &format!("idx-{release}"), EntryKind::Index, t),
    ];
    for p in packages {
        entries.push(entry(&format!("pool/{p}.deb"), p, EntryKind::Package, t));
    }
    NewSnapshot {
        mirror_id: mirror.into(),
        created_at: t,
        release_sha256: Some(Sha256::of(release.as_bytes())),
        release_last_modified: Some(t),
        entries,
    }
}

const KEEP2: Retention = Retention { keep: 2, grace_secs: 100 };

fn setup() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path()).unwrap();
    cat.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
    (dir, cat)
}

fn roles(cat: &Catalog, now: i64) -> Vec<(String, Role)> {
    let v = cat.load_view(now, KEEP2.grace_secs).unwrap();
    v.snapshots.iter().map(|s| (s.name.clone(), s.role)).collect()
}

#[test]
fn record_publish_and_load() {
    let (_d, mut cat) = setup();
    let (id, name) = cat.record_snapshot(&snapshot("m", 1_000, "r1", &["a", "b"])).unwrap();
    assert_eq!(name, "1970-01-01T00:16:40Z");
    assert_eq!(cat.generation().unwrap(), 0);
    let out = cat.publish(&[id], 1_000, KEEP2, |_| Ok(None)).unwrap();
    assert_eq!(out.generation, 1);
    let v = cat.load_view(1_000, 100).unwrap();
    assert_eq!(v.snapshots.len(), 1);
    assert_eq!(v.snapshots[0].role, Role::Published);
    assert_eq!(v.snapshots[0].entries.len(), 4);
    let idx = v.snapshots[0].entries.iter().find(|e| e.kind == EntryKind::Index).unwrap();
    let algos: Vec<_> = idx.by_hash.iter().map(|b| b.algo).collect();
    assert_eq!(algos, ["SHA256", "MD5Sum"]);
    assert_eq!(cat.published("m").unwrap().unwrap().files, 4);
}

#[test]
fn refused_publish_changes_nothing() {
    let (_d, mut cat) = setup();
    let (id, _) = cat.record_snapshot(&snapshot("m", 1_000, "r1", &["a"])).unwrap();
    let err = cat.publish(&[id], 1_000, KEEP2, |_| Err("conflict at x".into())).unwrap_err();
    assert!(err.to_string().contains("conflict at x"));
    assert_eq!(cat.generation().unwrap(), 0);
    assert!(cat.published("m").unwrap().is_none());
}

#[test]
fn retention_keeps_newest_published_and_grace() {
    let (_d, mut cat) = setup();
    let mut ids = Vec::new();
    for (i, t) in [1_000, 2_000, 3_000, 4_000].into_iter().enumerate() {
        let (id, _) = cat.record_snapshot(&snapshot("m", t, &format!("r{i}"), &["a"])).unwrap();
        cat.publish(&[id], t, KEEP2, |_| Ok(None)).unwrap();
        ids.push(id);
    }
    // keep=2 plus grace (100 s): at t=4000 only the two newest remain; the 3000 one is in grace.
    let r = roles(&cat, 4_000);
    assert_eq!(r.iter().map(|(_, role)| *role).collect::<Vec<_>>(), [Role::Grace, Role::Published]);
    // Rollback to the older one keeps it although it is not among the newest.
    cat.publish(&[ids[2]], 5_000, KEEP2, |_| Ok(None)).unwrap();
    let (id5, _) = cat.record_snapshot(&snapshot("m", 6_000, "r5", &["a"])).unwrap();
    let (id6, _) = cat.record_snapshot(&snapshot("m", 7_000, "r6", &["a"])).unwrap();
    cat.publish(&[], 7_000, KEEP2, |_| Ok(None)).unwrap();
    let names = roles(&cat, 7_000);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|(_, r)| *r == Role::Published));
    assert!(cat.snapshot_by_id(id5).unwrap().is_some() && cat.snapshot_by_id(id6).unwrap().is_some());
}

#[test]
fn release_mtime_never_goes_back() {
    let (_d, mut cat) = setup();
    let (a, _) = cat.record_snapshot(&snapshot("m", 1_000, "r1", &[])).unwrap();
    let (b, _) = cat.record_snapshot(&snapshot("m", 2_000, "r2", &[])).unwrap();
    cat.publish(&[a], 1_000, KEEP2, |_| Ok(None)).unwrap();
    cat.publish(&[b], 2_000, KEEP2, |_| Ok(None)).unwrap();
    cat.publish(&[a], 2_050, KEEP2, |_| Ok(None)).unwrap();
    let v = cat.load_view(2_050, 100).unwrap();
    let published = v.snapshots.iter().find(|s| s.role == Role::Published).unwrap();
    let rel = published.entries.iter().find(|e| e.kind == EntryKind::Release).unwrap();
    assert_eq!(rel.mtime_override, Some(2_001));
}

#[test]
fn next_release_mtime_table() {
    let cases = [
        (None, Some(5), Some(5)),
        (Some(5), Some(9), Some(9)),
        (Some(9), Some(5), Some(10)),
        (Some(9), None, Some(10)),
        (None, None, None),
    ];
    for (served, snap, want) in cases {
        assert_eq!(next_release_mtime(served, snap), want, "{served:?} {snap:?}");
    }
}

#[test]
fn remove_refuses_published() {
    let (_d, mut cat) = setup();
    let (a, name_a) = cat.record_snapshot(&snapshot("m", 1_000, "r1", &[])).unwrap();
    let (_b, name_b) = cat.record_snapshot(&snapshot("m", 2_000, "r2", &[])).unwrap();
    cat.publish(&[a], 2_000, KEEP2, |_| Ok(None)).unwrap();
    assert!(cat.remove_snapshot("m", &name_a, 2_000, 0, |_| Ok(None)).unwrap_err().to_string().contains("published"));
    cat.remove_snapshot("m", &name_b, 2_000, 0, |_| Ok(None)).unwrap();
    assert!(cat.snapshot_id("m", &name_b).unwrap().is_none());
}

#[test]
fn migration_2_fills_snapshot_totals_of_an_existing_catalog() {
    let dir = tempfile::tempdir().unwrap();
    // A version-1 catalog with one recorded snapshot, as the previous release left it.
    let (id, want_files, want_bytes) = {
        let mut cat = Catalog::open(dir.path()).unwrap();
        cat.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
        let snap = snapshot("m", 1_000, "r1", &["a", "bb", "ccc"]);
        let bytes: u64 = snap.entries.iter().map(|e| e.size).sum();
        let (id, _) = cat.record_snapshot(&snap).unwrap();
        cat.conn
            .execute_batch(
                "ALTER TABLE snapshots DROP COLUMN files; ALTER TABLE snapshots DROP COLUMN bytes;
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        (id, snap.entries.len() as u64, bytes)
    };
    let cat = Catalog::open(dir.path()).unwrap();
    let row = cat.snapshot_by_id(id).unwrap().unwrap();
    assert_eq!((row.files, row.bytes), (want_files, want_bytes));
    let version: usize = cat.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, MIGRATIONS.len());
}

#[test]
fn status_stamp_changes_with_every_run_even_within_one_second() {
    let (_dir, cat) = setup();
    cat.upsert_mirror("n", "mirror", "debian/y", "http://example/debian/y").unwrap();
    let mut seen = vec![cat.status_stamp().unwrap()];
    let mut step = |f: &dyn Fn(&Catalog)| {
        f(&cat);
        let stamp = cat.status_stamp().unwrap();
        assert!(!seen.contains(&stamp), "{stamp:?} seen before: {seen:?}");
        seen.push(stamp);
    };
    // Two runs of "m" that start and end in the same second, the second one failing.
    step(&|c| c.mark_started("m", 50).unwrap());
    step(&|c| c.mark_finished("m", 50, Ok((1, 1))).unwrap());
    step(&|c| c.mark_started("m", 50).unwrap());
    step(&|c| c.mark_finished("m", 50, Err("boom")).unwrap());
    step(&|c| c.mark_started("n", 50).unwrap());
    assert_eq!(cat.status_stamp().unwrap().newest, 50);
}
