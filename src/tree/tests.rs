//! Layout tests of the view model: table-driven cases per rule, conflicts, aliases, invalid
//! input, and a property test that building never panics and shows every entry it was given.
//! The fixtures here are shared with the node tests (`node_tests.rs`) and the image tests
//! (`image_tests.rs`).

use proptest::prelude::*;

use super::inode::Inode;
use super::source::{Alias, ByHash, EntryKind, FileEntry, ObjectMeta, Role, SnapshotFiles, ViewSource};
use super::*;
use crate::digest::Sha256;

pub(super) fn object(id: u64, content: &str) -> ObjectMeta {
    let mtime = 1_700_000_000 + id as i64;
    ObjectMeta { id, sha256: Sha256::of(content.as_bytes()), size: content.len() as u64, mtime }
}

pub(super) fn entry(path: &str, object: u32, kind: EntryKind) -> FileEntry {
    FileEntry { path: path.to_owned(), object, kind, by_hash: Vec::new(), mtime_override: None }
}

pub(super) fn index(path: &str, object: u32, digest: &str) -> FileEntry {
    let by_hash = vec![ByHash { algo: "SHA256", digest: digest.to_owned() }];
    FileEntry { by_hash, ..entry(path, object, EntryKind::Index) }
}

pub(super) fn snap(mirror: &str, name: &str, root: &str, role: Role, entries: Vec<FileEntry>) -> SnapshotFiles {
    SnapshotFiles { mirror_id: mirror.into(), name: name.into(), view_root: root.into(), role, entries }
}

pub(super) fn source(snapshots: Vec<SnapshotFiles>) -> ViewSource {
    let objects = (0..6).map(|i| object(i + 10, &format!("content {i}"))).collect();
    ViewSource { generation: 3, objects, snapshots, ..ViewSource::default() }
}

pub(super) const PKG: &str = "pool/main/h/hello/hello_1.0_amd64.deb";
pub(super) const PACKAGES: &str = "dists/bookworm/main/binary-amd64/Packages.xz";

/// Expected content at a path: object index in `source()`'s object list, a directory, or nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Obj(usize),
    Dir,
    Missing,
}

fn seen(view: &View, src: &ViewSource, path: &str) -> Want {
    match view.lookup_path(path) {
        None => Want::Missing,
        Some(n) if n.kind() == NodeKind::Dir => Want::Dir,
        Some(n) => match n.content() {
            Some(FileContent::Object(o)) => {
                Want::Obj(src.objects.iter().position(|s| s.id == o.id).unwrap_or(usize::MAX))
            }
            _ => Want::Missing,
        },
    }
}

/// Case name, snapshots, and what each path must show.
type LayoutCase = (&'static str, Vec<SnapshotFiles>, Vec<(&'static str, Want)>);

#[test]
fn layout_rules() {
    use EntryKind::*;
    use Role::*;
    use Want::*;
    let cases: Vec<LayoutCase> = vec![
        (
            "published: canonical and frozen",
            vec![snap(
                "pve",
                "S1",
                "debian/pve",
                Published,
                vec![entry(PKG, 0, Package), entry("dists/bookworm/InRelease", 1, Release)],
            )],
            vec![
                ("debian/pve/pool/main/h/hello/hello_1.0_amd64.deb", Obj(0)),
                ("debian/pve/dists/bookworm/InRelease", Obj(1)),
                ("snapshots/pve/S1/pool/main/h/hello/hello_1.0_amd64.deb", Obj(0)),
                ("snapshots/pve/S1/dists", Dir),
            ],
        ),
        (
            "retained: frozen only",
            vec![snap("pve", "S0", "debian/pve", Retained, vec![entry(PKG, 0, Package), index(PACKAGES, 1, "abc123")])],
            vec![("debian", Missing), ("snapshots/pve/S0/pool/main/h/hello/hello_1.0_amd64.deb", Obj(0))],
        ),
        (
            "grace: by-hash and packages, never release or canonical index",
            vec![snap(
                "pve",
                "S0",
                "debian/pve",
                Grace,
                vec![
                    entry(PKG, 0, Package),
                    index(PACKAGES, 1, "abc123"),
                    entry("dists/bookworm/InRelease", 2, Release),
                    entry("iso/x.iso", 3, TreeFile),
                ],
            )],
            vec![
                ("debian/pve/pool/main/h/hello/hello_1.0_amd64.deb", Obj(0)),
                ("debian/pve/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc123", Obj(1)),
                ("debian/pve/dists/bookworm/main/binary-amd64/Packages.xz", Missing),
                ("debian/pve/dists/bookworm/InRelease", Missing),
                ("debian/pve/iso", Missing),
                ("snapshots/pve/S0/dists/bookworm/InRelease", Obj(2)),
            ],
        ),
        (
            "published index: canonical and by-hash",
            vec![snap("pve", "S1", "debian/pve", Published, vec![index(PACKAGES, 1, "abc123")])],
            vec![
                ("debian/pve/dists/bookworm/main/binary-amd64/Packages.xz", Obj(1)),
                ("debian/pve/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc123", Obj(1)),
            ],
        ),
        (
            "grace package hidden by published one; old by-hash kept",
            vec![
                snap("pve", "S1", "debian/pve", Published, vec![entry(PKG, 4, Package), index(PACKAGES, 5, "def456")]),
                snap(
                    "pve",
                    "S0",
                    "debian/pve",
                    Grace,
                    vec![entry(PKG, 0, Package), entry("pool/old.deb", 2, Package), index(PACKAGES, 1, "abc123")],
                ),
            ],
            vec![
                ("debian/pve/pool/main/h/hello/hello_1.0_amd64.deb", Obj(4)),
                ("debian/pve/pool/old.deb", Obj(2)),
                ("debian/pve/dists/bookworm/main/binary-amd64/Packages.xz", Obj(5)),
                ("debian/pve/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc123", Obj(1)),
                ("debian/pve/dists/bookworm/main/binary-amd64/by-hash/SHA256/def456", Obj(5)),
                ("snapshots/pve/S0/pool/main/h/hello/hello_1.0_amd64.deb", Obj(0)),
            ],
        ),
        (
            "newest grace snapshot wins a package path",
            vec![
                snap("pve", "2024-01-01T00:00:00Z", "debian/pve", Grace, vec![entry("pool/x.deb", 0, Package)]),
                snap("pve", "2024-02-01T00:00:00Z", "debian/pve", Grace, vec![entry("pool/x.deb", 1, Package)]),
            ],
            vec![("debian/pve/pool/x.deb", Obj(1))],
        ),
        (
            "shared view root shares directories; same object deduplicates",
            vec![
                snap(
                    "pve_bookworm",
                    "S1",
                    "debian/pve",
                    Published,
                    vec![entry("dists/bookworm/Release", 0, Release), entry(PKG, 2, Package)],
                ),
                snap(
                    "pve_bullseye",
                    "S1",
                    "debian/pve",
                    Published,
                    vec![entry("dists/bullseye/Release", 1, Release), entry(PKG, 2, Package)],
                ),
            ],
            vec![
                ("debian/pve/dists/bookworm/Release", Obj(0)),
                ("debian/pve/dists/bullseye/Release", Obj(1)),
                ("debian/pve/pool/main/h/hello/hello_1.0_amd64.deb", Obj(2)),
            ],
        ),
        (
            "published file hides a gap-filling directory",
            vec![
                snap("a", "S1", "r", Published, vec![entry("x", 0, TreeFile)]),
                snap("a", "S0", "r", Grace, vec![entry("x/y.deb", 1, Package)]),
            ],
            vec![("r/x", Obj(0))],
        ),
        (
            "empty view root puts entries at the mount root",
            vec![snap("iso", "S1", "", Published, vec![entry("a.iso", 0, TreeFile)])],
            vec![("a.iso", Obj(0))],
        ),
    ];
    for (name, snapshots, wants) in cases {
        let src = source(snapshots);
        let view = View::build(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (path, want) in wants {
            assert_eq!(seen(&view, &src, path), want, "{name}: {path}");
        }
    }
}

/// Case name, snapshots, aliases, conflicting path, first and second claimant.
type ConflictCase = (&'static str, Vec<SnapshotFiles>, Vec<Alias>, &'static str, &'static str, &'static str);

#[test]
fn conflicts_name_both_mirrors_and_the_path() {
    use EntryKind::*;
    use Role::*;
    let cases: Vec<ConflictCase> = vec![
        (
            "two published objects at one path",
            vec![
                snap("pve_a", "S1", "debian/pve", Published, vec![entry("dists/x/Release", 0, Release)]),
                snap("pve_b", "S1", "debian/pve", Published, vec![entry("dists/x/Release", 1, Release)]),
            ],
            vec![],
            "debian/pve/dists/x/Release",
            "pve_a",
            "pve_b",
        ),
        (
            "published file against published directory",
            vec![
                snap("one", "S1", "r", Published, vec![entry("x", 0, TreeFile)]),
                snap("two", "S1", "r", Published, vec![entry("x/y", 1, TreeFile)]),
            ],
            vec![],
            "r/x",
            "one",
            "two",
        ),
        (
            "alias over a real path",
            vec![snap("pve", "S1", "debian/pve", Published, vec![entry("dists/a", 0, Release)])],
            vec![Alias { path: "debian/pve/dists".into(), target: "snapshots".into() }],
            "debian/pve/dists",
            "pve",
            "alias",
        ),
    ];
    for (name, snapshots, aliases, path, first, second) in cases {
        let src = ViewSource { aliases, ..source(snapshots) };
        let err = View::build(&src).map(|_| ()).expect_err(name);
        let BuildError::Conflict { path: got, first_mirror, second_mirror } = &err else { panic!("{name}: {err}") };
        assert_eq!(got, path, "{name}");
        assert!(first_mirror.contains(first) && second_mirror.contains(second), "{name}: {err}");
        let shown = err.to_string();
        assert!(shown.contains(path) && shown.contains(first) && shown.contains(second), "{name}: {shown}");
    }
}

#[test]
fn alias_copies_directories_and_shares_file_inodes() {
    let pve = snap(
        "pve",
        "S1",
        "debian/pve",
        Role::Published,
        vec![
            entry("dists/bookworm/InRelease", 0, EntryKind::Release),
            FileEntry { mtime_override: Some(1), ..entry("dists/bookworm/Release", 1, EntryKind::Release) },
        ],
    );
    let aliases = vec![
        Alias { path: "debian/dists".into(), target: "debian/pve/dists".into() },
        Alias { path: "gone".into(), target: "debian/nothing".into() },
        Alias { path: "second".into(), target: "debian/dists/bookworm".into() },
    ];
    let src = ViewSource { aliases, ..source(vec![pve]) };
    let view = View::build(&src).expect("build");
    for file in ["dists/bookworm/InRelease", "dists/bookworm/Release"] {
        let original = view.lookup_path(&format!("debian/pve/{file}")).expect("original");
        let alias = view.lookup_path(&format!("debian/{file}")).expect("alias");
        assert_eq!(original.attr(), alias.attr(), "{file}");
    }
    assert!(view.lookup_path("second/InRelease").is_some(), "alias of an alias");
    let (dir, alias_dir) = (view.lookup_path("debian/pve/dists").unwrap(), view.lookup_path("debian/dists").unwrap());
    assert_ne!(dir.inode(), alias_dir.inode());
    assert_eq!(alias_dir.parent().path(), "debian");
    assert_eq!(alias_dir.children_from(0).next().map(|c| c.parent().inode()), Some(alias_dir.inode()));
    assert!(view.lookup_path("gone").is_none(), "missing target: no alias directory");
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    let bad_paths = ["/abs", "a//b", "a/../b", "trailing/", "", &"n".repeat(256)];
    for path in bad_paths {
        let src = source(vec![snap("m", "S1", "r", Role::Published, vec![entry(path, 0, EntryKind::TreeFile)])]);
        assert!(matches!(View::build(&src), Err(BuildError::InvalidPath { .. })), "{path:?}");
    }
    let src = source(vec![snap("m", "S1", "r", Role::Published, vec![entry("x", 99, EntryKind::TreeFile)])]);
    assert!(matches!(View::build(&src), Err(BuildError::UnknownObject { index: 99, .. })));
    let mut src = source(vec![]);
    src.objects.push(object(10, "other content, same id"));
    assert_eq!(View::build(&src).map(|_| ()), Err(BuildError::DuplicateObjectId { id: 10 }));
}

/// Directories are resolved against the previous entry's path: an invalid path right after a
/// valid one sharing its leading directories is still refused.
#[test]
fn invalid_path_after_a_shared_prefix_is_an_error() {
    let bad_paths = ["a/b/", "a/b//c", "a//c", "a/b/../c", "a/b/./c", "a/b/c/"];
    for path in bad_paths {
        let entries = vec![entry("a/b/c/x", 0, EntryKind::TreeFile), entry(path, 1, EntryKind::TreeFile)];
        let src = source(vec![snap("m", "S1", "r", Role::Published, entries)]);
        assert!(matches!(View::build(&src), Err(BuildError::InvalidPath { .. })), "{path:?}");
    }
}

/// Entry order never changes the tree: shuffled entries give the same nodes as sorted ones.
#[test]
fn entry_order_does_not_change_the_tree() {
    let paths = ["a/b/c/x", "a/b/y", "a/z", "a/b/c/d/w", "q/r", "a/b/c/v", "a/b2/u", "a/b/c2/t"];
    let build = |order: &[usize]| {
        let entries = order.iter().map(|&i| entry(paths[i], (i % 6) as u32, EntryKind::TreeFile)).collect();
        let view = View::build(&source(vec![snap("m", "S1", "r", Role::Published, entries)])).expect("build");
        let mut all = Vec::new();
        let mut stack = vec![view.root()];
        while let Some(node) = stack.pop() {
            all.push((node.path(), node.kind(), node.attr().size, node.child_count()));
            stack.extend(node.children_from(0));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    let sorted = build(&[0, 1, 2, 3, 4, 5, 6, 7]);
    for order in [[7, 6, 5, 4, 3, 2, 1, 0], [3, 0, 6, 1, 7, 2, 5, 4], [4, 2, 0, 5, 1, 7, 3, 6]] {
        assert_eq!(build(&order), sorted, "{order:?}");
    }
}

/// A mirror-shaped view: the published snapshot plus grace and retained ones; every tenth
/// package changes version (name and object) from one snapshot to the next.
pub(super) fn large_source(packages: usize) -> ViewSource {
    const SNAPSHOTS: usize = 4;
    let updated = |i: usize| i % 10 == 0;
    let objects: Vec<ObjectMeta> = (0..(packages + SNAPSHOTS * packages / 10 + 1) as u64)
        .map(|i| ObjectMeta {
            id: i + 1,
            sha256: Sha256::of(&i.to_le_bytes()),
            size: 1000 + i,
            mtime: 1_700_000_000 + i as i64,
        })
        .collect();
    let snapshot = |n: usize, role: Role| {
        let entries = (0..packages)
            .map(|i| {
                let (version, object) = if updated(i) { (n, packages + n * packages / 10 + i / 10) } else { (0, i) };
                let name = format!("pool/main/p/pkg{:03}/pkg{i}_1.{version}_amd64.deb", i % 1000);
                entry(&name, object as u32, EntryKind::Package)
            })
            .collect();
        snap("pve", &format!("2024-0{}-01T00:00:00Z", n + 1), "debian/pve", role, entries)
    };
    let roles = [Role::Published, Role::Grace, Role::Retained, Role::Retained];
    let snapshots = (0..SNAPSHOTS).map(|n| snapshot(SNAPSHOTS - 1 - n, roles[n])).collect();
    ViewSource { generation: 1, objects, snapshots, ..ViewSource::default() }
}

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "dists", "by-hash"]), 1..4).prop_map(|p| p.join("/"))
}

fn arb_entry() -> impl Strategy<Value = FileEntry> {
    let kind =
        prop::sample::select(vec![EntryKind::Release, EntryKind::Index, EntryKind::Package, EntryKind::TreeFile]);
    (arb_path(), 0u32..4, kind, prop::option::of("[0-9a-f]{1,4}"), prop::option::of(0i64..3)).prop_map(
        |(path, object, kind, digest, mtime)| {
            let by_hash = digest.into_iter().map(|digest| ByHash { algo: "SHA256", digest }).collect();
            FileEntry { path, object, kind, by_hash, mtime_override: mtime }
        },
    )
}

fn arb_source() -> impl Strategy<Value = ViewSource> {
    let role = prop::sample::select(vec![Role::Published, Role::Grace, Role::Retained]);
    let snapshot =
        ("[mn]", "S[12]", prop::sample::select(vec!["", "r", "r/s"]), role, prop::collection::vec(arb_entry(), 0..8))
            .prop_map(|(m, n, root, role, entries)| snap(&m, &n, root, role, entries));
    let alias = (arb_path(), arb_path()).prop_map(|(path, target)| Alias { path, target });
    (prop::collection::vec(snapshot, 0..4), prop::collection::vec(alias, 0..2)).prop_map(|(snapshots, aliases)| {
        let objects = (0..4).map(|i| object(i, &format!("{}", i % 3))).collect();
        ViewSource { generation: 1, objects, snapshots, aliases, ..ViewSource::default() }
    })
}

proptest! {
    #[test]
    fn building_never_panics_and_shows_every_entry(src in arb_source()) {
        let Ok(view) = View::build(&src) else { return Ok(()) };
        for s in &src.snapshots {
            for e in &s.entries {
                let frozen = format!("snapshots/{}/{}/{}", s.mirror_id, s.name, e.path);
                let node = view.lookup_path(&frozen);
                let sha = node.and_then(|n| n.content()).map(|c| match c { FileContent::Object(o) => o.sha256, FileContent::Inline(_) => Sha256([0; 32]) });
                prop_assert_eq!(sha, Some(src.objects[e.object as usize].sha256), "{}", frozen);
                if s.role == Role::Published {
                    let live = if s.view_root.is_empty() { e.path.clone() } else { format!("{}/{}", s.view_root, e.path) };
                    let node = view.lookup_path(&live);
                    prop_assert!(node.is_some_and(|n| n.kind() == NodeKind::File), "{}", live);
                }
            }
        }
        let mut stack = vec![view.root()];
        while let Some(node) = stack.pop() {
            let resolved = Inode::decode(node.inode()).and_then(|ino| view.resolve(ino));
            prop_assert_eq!(resolved.map(|r| r.attr()), Some(node.attr()));
            stack.extend(node.children_from(0));
        }
    }
}
