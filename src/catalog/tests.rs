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

/// A snapshot of `mirror` at `t`: its Release, one Packages index and one package per name (the
/// catalog's, the medium's and the daemon's tests build theirs with it).
pub(crate) fn snapshot(mirror: &str, t: i64, release: &str, packages: &[&str]) -> NewSnapshot {
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
    let err = cat.publish(&[id], 1_000, KEEP2, |_| Err(conflict("x"))).unwrap_err();
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
                "ALTER TABLE mirrors DROP COLUMN pinned_at; ALTER TABLE snapshots DROP COLUMN warnings;
                 ALTER TABLE snapshots DROP COLUMN files; ALTER TABLE snapshots DROP COLUMN bytes;
                 DROP TRIGGER gc_pending_referenced; DROP TABLE gc_pending; DROP TRIGGER runs_record; DROP TRIGGER runs_forget; DROP TABLE runs; DROP TABLE snapshot_changes; DROP TABLE published_web; PRAGMA user_version = 1;",
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

/// Records a snapshot of "m" at `t` with its own Release; returns its id.
fn record(cat: &mut Catalog, t: i64) -> i64 {
    cat.record_snapshot(&snapshot("m", t, &format!("r{t}"), &["a"])).unwrap().0
}

fn names(cat: &Catalog) -> Vec<String> {
    cat.snapshots(Some("m")).unwrap().into_iter().map(|s| s.name).collect()
}

#[test]
fn publishing_an_older_snapshot_pins_and_the_newest_unpins() {
    let (_d, mut cat) = setup();
    let a = record(&mut cat, 1_000);
    let b = record(&mut cat, 2_000);
    assert_eq!(cat.publish(&[b], 2_000, KEEP2, |_| Ok(None)).unwrap().pin, PinChange::Unchanged);
    // Rollback: a is not the newest.
    let out = cat.publish_chosen(a, 2_100, KEEP2, |_| Ok(None)).unwrap();
    assert_eq!(out.pin, PinChange::Pinned);
    let name_a = snapshot_name(1_000);
    assert_eq!(cat.pin("m").unwrap(), Some(Pin { snapshot: name_a.clone(), since: 2_100 }));
    let published = cat.published("m").unwrap().unwrap();
    assert!(published.pinned && published.id == a);
    assert!(!cat.snapshot_by_id(b).unwrap().unwrap().pinned);
    // A sync's pick of a pinned mirror is recorded, not published; its baseline is the newest.
    let c = record(&mut cat, 3_000);
    let gen = cat.generation().unwrap();
    let out = cat.publish(&[c], 3_000, KEEP2, |_| Ok(None)).unwrap();
    assert_eq!((out.held, out.generation), (vec!["m".to_owned()], gen + 1), "the view shows c under snapshots/");
    assert_eq!(cat.published("m").unwrap().unwrap().id, a);
    assert_eq!(cat.sync_baseline("m").unwrap().unwrap().id, c);
    assert_eq!(cat.newest_snapshot("m").unwrap().unwrap().id, c);
    let roles = roles(&cat, 3_000);
    assert!(roles.contains(&(name_a.clone(), Role::Published)), "{roles:?}");
    assert!(roles.contains(&(snapshot_name(3_000), Role::Retained)), "{roles:?}");
    // Publishing the published one again while it is not the newest keeps the pin.
    assert_eq!(cat.publish_chosen(a, 3_100, KEEP2, |_| Ok(None)).unwrap().pin, PinChange::Pinned);
    // Publishing the newest unpins; publishing it again changes nothing.
    assert_eq!(cat.publish_chosen(c, 3_200, KEEP2, |_| Ok(None)).unwrap().pin, PinChange::Unpinned);
    assert_eq!(cat.pin("m").unwrap(), None);
    assert_eq!(cat.sync_baseline("m").unwrap().unwrap().id, c);
    assert_eq!(cat.publish_chosen(c, 3_300, KEEP2, |_| Ok(None)).unwrap().pin, PinChange::Unchanged);
    let d = record(&mut cat, 4_000);
    let out = cat.publish(&[d], 4_000, KEEP2, |_| Ok(None)).unwrap();
    assert!(out.held.is_empty());
    assert_eq!(cat.published("m").unwrap().unwrap().id, d);
}

#[test]
fn a_refused_chosen_publish_leaves_the_pin_alone() {
    let (_d, mut cat) = setup();
    let a = record(&mut cat, 1_000);
    let b = record(&mut cat, 2_000);
    cat.publish(&[b], 2_000, KEEP2, |_| Ok(None)).unwrap();
    assert!(cat.publish_chosen(a, 2_100, KEEP2, |_| Err(conflict("y"))).is_err());
    assert_eq!(cat.pin("m").unwrap(), None);
    assert_eq!(cat.published("m").unwrap().unwrap().id, b);
}

#[test]
fn unpin_clears_the_pin_without_a_publish() {
    let (_d, mut cat) = setup();
    let a = record(&mut cat, 1_000);
    let b = record(&mut cat, 2_000);
    cat.publish(&[b], 2_000, KEEP2, |_| Ok(None)).unwrap();
    assert_eq!(cat.unpin("m").unwrap(), None, "not pinned");
    cat.publish_chosen(a, 2_100, KEEP2, |_| Ok(None)).unwrap();
    let (gen, stamp) = (cat.generation().unwrap(), cat.status_stamp().unwrap());
    let pin = cat.unpin("m").unwrap().expect("was pinned");
    assert_eq!(pin.snapshot, snapshot_name(1_000));
    assert_eq!(cat.generation().unwrap(), gen, "unpin changes no view");
    assert_ne!(cat.status_stamp().unwrap(), stamp, "status.json follows the pin");
    assert_eq!(cat.published("m").unwrap().unwrap().id, a, "published until the next sync");
    assert_eq!(cat.sync_baseline("m").unwrap().unwrap().id, a, "the next sync compares with what is published");
    let c = record(&mut cat, 3_000);
    assert!(cat.publish(&[c], 3_000, KEEP2, |_| Ok(None)).unwrap().held.is_empty());
    assert_eq!(cat.published("m").unwrap().unwrap().id, c);
    let err = cat.unpin("nope").unwrap_err();
    assert!(matches!(err, CatalogError::Refused(_)) && err.to_string().contains("nope"), "{err}");
}

#[test]
fn retention_of_a_pinned_mirror_keeps_the_pinned_and_the_newest() {
    // keep 1 and no grace: only the pinned (published) one and the newest survive each sync;
    // a keep of 0 (which the config refuses) still keeps the newest.
    for keep in [1, 0] {
        let (_d, mut cat) = setup();
        let policy = Retention { keep, grace_secs: 0 };
        let a = record(&mut cat, 1_000);
        cat.publish(&[a], 1_000, policy, |_| Ok(None)).unwrap();
        let b = record(&mut cat, 2_000);
        cat.publish(&[b], 2_000, policy, |_| Ok(None)).unwrap();
        cat.publish_chosen(a, 2_100, policy, |_| Ok(None)).unwrap();
        assert_eq!(cat.pin("m").unwrap().unwrap().snapshot, snapshot_name(1_000), "keep {keep}");
        for t in [3_000, 4_000, 5_000] {
            let id = record(&mut cat, t);
            let out = cat.publish(&[id], t, policy, |_| Ok(None)).unwrap();
            assert_eq!(out.held, ["m"], "keep {keep}");
            assert_eq!(names(&cat), [snapshot_name(1_000), snapshot_name(t)], "keep {keep} at {t}");
        }
        assert_eq!(cat.published("m").unwrap().unwrap().id, a);
    }
}

#[test]
fn retention_counts_unpublished_snapshots_of_a_pinned_mirror_against_keep() {
    let (_d, mut cat) = setup();
    let a = record(&mut cat, 1_000);
    cat.publish(&[a], 1_000, KEEP2, |_| Ok(None)).unwrap();
    let b = record(&mut cat, 1_500);
    cat.publish(&[b], 1_500, KEEP2, |_| Ok(None)).unwrap();
    cat.publish_chosen(a, 1_600, KEEP2, |_| Ok(None)).unwrap();
    // b left the grace window (100 s) long ago; c and d are the newest two, a is published.
    for t in [3_000, 4_000] {
        let id = record(&mut cat, t);
        cat.publish(&[id], t, KEEP2, |_| Ok(None)).unwrap();
    }
    assert_eq!(names(&cat), [snapshot_name(1_000), snapshot_name(3_000), snapshot_name(4_000)]);
}

#[test]
fn migration_3_adds_the_pin_to_a_version_2_catalog() {
    let dir = tempfile::tempdir().unwrap();
    // A version-2 catalog with a rolled-back mirror, as the previous release left it.
    let (a, b) = {
        let mut cat = Catalog::open(dir.path()).unwrap();
        cat.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
        let a = record(&mut cat, 1_000);
        let b = record(&mut cat, 2_000);
        cat.publish(&[b], 2_000, KEEP2, |_| Ok(None)).unwrap();
        cat.publish(&[a], 2_100, KEEP2, |_| Ok(None)).unwrap();
        cat.conn
            .execute_batch(
                "ALTER TABLE mirrors DROP COLUMN pinned_at; ALTER TABLE snapshots DROP COLUMN warnings;
                 DROP TRIGGER gc_pending_referenced; DROP TABLE gc_pending; DROP TRIGGER runs_record; DROP TRIGGER runs_forget; DROP TABLE runs; DROP TABLE snapshot_changes; DROP TABLE published_web; PRAGMA user_version = 2;",
            )
            .unwrap();
        (a, b)
    };
    let mut cat = Catalog::open(dir.path()).unwrap();
    let version: usize = cat.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, MIGRATIONS.len());
    // Rolled back before pins existed: not pinned, so the next sync rolls forward as it did.
    assert_eq!(cat.pin("m").unwrap(), None);
    let published = cat.published("m").unwrap().unwrap();
    assert!(published.id == a && !published.pinned);
    assert_eq!(cat.mirrors().unwrap().len(), 1);
    cat.status_stamp().unwrap();
    assert_eq!(cat.publish_chosen(a, 2_200, KEEP2, |_| Ok(None)).unwrap().pin, PinChange::Pinned);
    assert_eq!(cat.publish_chosen(b, 2_300, KEEP2, |_| Ok(None)).unwrap().pin, PinChange::Unpinned);
}

#[test]
fn migration_4_gives_existing_snapshots_no_warnings_and_new_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let a = {
        let mut cat = Catalog::open(dir.path()).unwrap();
        cat.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
        let a = record(&mut cat, 1_000);
        cat.conn
            .execute_batch(
                "ALTER TABLE snapshots DROP COLUMN warnings; DROP TRIGGER gc_pending_referenced; DROP TABLE gc_pending; DROP TRIGGER runs_record; DROP TRIGGER runs_forget; DROP TABLE runs; DROP TABLE snapshot_changes; DROP TABLE published_web;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        a
    };
    let mut cat = Catalog::open(dir.path()).unwrap();
    assert!(cat.snapshot_by_id(a).unwrap().unwrap().warnings.is_empty());
    let b = record(&mut cat, 2_000);
    let lines = ["x/Release.gpg: left out: bad signature".to_owned(), "two\nlines".to_owned()];
    cat.set_snapshot_warnings(b, &lines).unwrap();
    cat.publish(&[b], 2_000, KEEP2, |_| Ok(None)).unwrap();
    let published = cat.published("m").unwrap().unwrap();
    assert_eq!(published.warnings, ["x/Release.gpg: left out: bad signature", "two lines"]);
}

/// A dry run's catalog: read from a store whose path needs escaping in a `file:` URI, nothing
/// created beside it, and a catalog of an older schema refused by name (not migrated).
#[test]
fn open_untouched_creates_nothing_and_refuses_an_older_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("a b#c?d%e");
    std::fs::create_dir(&store).unwrap();
    drop(Catalog::open(&store).unwrap());
    let listing = || {
        let mut names: Vec<String> =
            std::fs::read_dir(&store).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    assert_eq!(listing(), ["catalog.db"], "the last writer removed its WAL");
    let catalog = Catalog::open_untouched(&store).expect("open untouched");
    assert_eq!(catalog.generation().unwrap(), 0);
    drop(catalog);
    assert_eq!(listing(), ["catalog.db"], "open_untouched created files");

    let conn = rusqlite::Connection::open(store.join("catalog.db")).unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    drop(conn);
    let err = Catalog::open_untouched(&store).err().expect("an older schema is refused");
    assert!(matches!(err, CatalogError::TooOld { found: 3, .. }), "{err}");
    assert!(err.to_string().contains("a sync migrates it") && err.to_string().contains("a b#c?d%e"), "{err}");
}

fn conflict(path: &str) -> crate::tree::BuildError {
    crate::tree::BuildError::Conflict { path: path.into(), first_mirror: "a".into(), second_mirror: "b".into() }
}
