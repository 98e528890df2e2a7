//! Tests of what a node shows: attributes, inodes and mtimes, inode resolution, readdir order and
//! offsets, the empty view, and the memory a large view takes per entry.

use crate::tree::inode::{self, Inode};
use crate::tree::source::{EntryKind, FileEntry, Role, ViewSource};
use crate::tree::tests::{entry, index, large_source, snap, source, PACKAGES, PKG};
use crate::tree::{NodeKind, View};

#[test]
fn attributes_inodes_and_mtimes() {
    let entries = vec![
        entry("a/one", 0, EntryKind::TreeFile),
        FileEntry { mtime_override: Some(1_800_000_000), ..entry("a/two", 1, EntryKind::Release) },
        FileEntry { mtime_override: Some(1_700_000_011), ..entry("a/three", 1, EntryKind::Release) },
    ];
    let inline_files = vec![("status.json".to_owned(), b"{}".to_vec())];
    let src = ViewSource { inline_files, ..source(vec![snap("m", "S1", "r", Role::Published, entries)]) };
    let view = View::build(&src).expect("build");
    let attr = |p: &str| view.lookup_path(p).map(|n| n.attr()).expect(p);
    let one = attr("r/a/one");
    assert_eq!((one.ino, one.size, one.mtime), (Inode::Object { id: 10 }.encode(), 9, 1_700_000_010));
    let two = attr("r/a/two");
    assert!(
        matches!(Inode::decode(two.ino), Some(Inode::GenFile { generation: 3, .. })),
        "override gets its own inode"
    );
    assert_eq!(two.mtime, 1_800_000_000);
    assert_eq!(attr("r/a/three").ino, Inode::Object { id: 11 }.encode(), "override equal to the object mtime");
    let status = attr("status.json");
    assert_eq!((status.size, status.mtime), (2, 1_800_000_000), "inline: newest mtime of the view");
    let dir = attr("r/a");
    assert_eq!((dir.kind, dir.mtime, dir.nlink), (NodeKind::Dir, 1_800_000_000, 2));
    assert_eq!(attr("").ino, inode::ROOT_INO);
    assert_eq!(attr("").nlink, 4, "root: r and snapshots");
    let at = View::build_at(&src, 5).expect("build_at");
    assert_eq!(at.lookup_path("status.json").map(|n| n.attr().mtime), Some(5));
}

#[test]
fn every_inode_resolves_to_its_node() {
    let entries =
        vec![entry(PKG, 0, EntryKind::Package), FileEntry { mtime_override: Some(7), ..index(PACKAGES, 1, "abc") }];
    let src = source(vec![snap("pve", "S1", "debian/pve", Role::Published, entries)]);
    let view = View::build(&src).expect("build");
    let mut stack = vec![view.root()];
    while let Some(node) = stack.pop() {
        let ino = Inode::decode(node.inode()).expect("decodes");
        let resolved = view.resolve(ino).expect("resolves");
        assert_eq!(resolved.attr(), node.attr(), "{}", node.path());
        stack.extend(node.children_from(0));
    }
}

#[test]
fn readdir_is_sorted_and_offsets_resume() {
    let names = ["b", "a", "C", "a.b", "a-c", "z/inner"];
    let entries = names.iter().enumerate().map(|(i, n)| entry(n, (i % 6) as u32, EntryKind::TreeFile)).collect();
    let view = View::build(&source(vec![snap("m", "S1", "", Role::Published, entries)])).expect("build");
    let all: Vec<&str> = view.root().children_from(0).map(|c| c.name()).collect();
    assert_eq!(all, ["C", "a", "a-c", "a.b", "b", "snapshots", "z"]);
    let rest: Vec<&str> = view.root().children_from(5).map(|c| c.name()).collect();
    assert_eq!(rest, ["snapshots", "z"]);
    assert_eq!(view.root().children_from(99).count(), 0);
    assert_eq!(view.root().child_count(), 7);
}

#[test]
fn empty_view_has_a_root() {
    let view = View::empty(9);
    assert_eq!(view.generation(), 9);
    assert_eq!(view.root().attr().ino, inode::ROOT_INO);
    assert_eq!(view.root().children_from(0).count(), 0);
    assert_eq!(view.stats().entries, 1);
}

#[test]
fn large_view_stays_compact() {
    let view = View::build(&large_source(25_000)).expect("build");
    let stats = view.stats();
    assert!(stats.entries > 100_000, "{stats:?}");
    // At most ~120 bytes per entry: the compact layout measured ≈114, a heap tree ≈400
    // (docs/fuse-notes.md, "Memory for a large view").
    assert!(stats.bytes / stats.entries <= 120, "{stats:?}");
}
