//! Tests of view images: a mapped image shows exactly the view that was written, damaged images
//! are refused with their path, and no garbage in the tables makes a walk panic.

use proptest::prelude::*;

use crate::tree::image;
use crate::tree::inode::Inode;
use crate::tree::source::{Alias, EntryKind, FileEntry};
use crate::tree::tests::{entry, large_source};
use crate::tree::{Attr, FileContent, View};

/// Every node of `a` and `b` in walk order: path, attributes and content.
fn walk(view: &View) -> Vec<(String, Attr, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![view.root()];
    while let Some(node) = stack.pop() {
        let content = node.content().map(|c| match c {
            FileContent::Object(o) => o.sha256.0.to_vec(),
            FileContent::Inline(bytes) => bytes.to_vec(),
        });
        out.push((node.path(), node.attr(), content));
        stack.extend(node.children_from(0));
    }
    out
}

fn write_image(view: &View, valid_until: i64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = image::write_file(view, valid_until, dir.path(), &image::file_name(view.generation(), 7), true)
        .expect("write image");
    (dir, path)
}

#[test]
fn image_maps_the_same_view() {
    let mut src = large_source(2_000);
    src.inline_files = vec![("status.json".to_owned(), b"{\"a\":1}".to_vec())];
    src.aliases = vec![Alias { path: "debian/dists".into(), target: "debian/pve/dists".into() }];
    src.snapshots[0].entries.push(FileEntry {
        mtime_override: Some(1_900_000_000),
        ..entry("dists/bookworm/InRelease", 3, EntryKind::Release)
    });
    let built = View::build(&src).expect("build");
    let (_dir, path) = write_image(&built, 1_234);
    let (mapped, info) = image::map(&path).expect("map");
    assert_eq!(info, image::ImageInfo { generation: 1, valid_until: 1_234 });
    assert_eq!(walk(&mapped), walk(&built));
    assert_eq!(mapped.stats().entries, built.stats().entries);
    assert!(mapped.stats().mapped > 0 && mapped.stats().bytes < 1_000, "{:?}", mapped.stats());
    for node in walk(&built) {
        let ino = Inode::decode(node.1.ino).expect("decodes");
        assert_eq!(mapped.resolve(ino).map(|r| r.attr()), Some(node.1), "{}", node.0);
    }
    // Replacing inline content shares the tables and changes only that file.
    let updated = mapped.with_inline_file("status.json", b"{}".to_vec(), 42).expect("inline file");
    let status = updated.lookup_path("status.json").expect("status.json").attr();
    assert_eq!((status.size, status.mtime), (2, 42));
    assert!(mapped.with_inline_file("debian", Vec::new(), 0).is_none(), "not an inline file");
    // Deleting the file leaves the mapping readable.
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(walk(&mapped), walk(&built));
}

#[test]
fn damaged_images_are_refused() {
    let built = View::build(&large_source(50)).expect("build");
    let (dir, path) = write_image(&built, i64::MAX);
    let good = std::fs::read(&path).expect("read");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated header", good[..40].to_vec()),
        ("truncated body", good[..good.len() - 1].to_vec()),
        ("trailing bytes", [good.clone(), vec![0]].concat()),
        ("wrong magic", [b"XXXXXXXX".to_vec(), good[8..].to_vec()].concat()),
        ("other version", [good[..12].to_vec(), 99u32.to_ne_bytes().to_vec(), good[16..].to_vec()].concat()),
        ("huge node count", [good[..32].to_vec(), u64::MAX.to_ne_bytes().to_vec(), good[40..].to_vec()].concat()),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(format!("{}.view", name.replace(' ', "-")));
        std::fs::write(&p, bytes).expect("write");
        let err = image::map(&p).err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(err.to_string().contains(p.to_str().expect("utf-8")), "{name}: {err}");
    }
    assert_eq!(image::prune(dir.path(), Some(path.file_name().and_then(|n| n.to_str()).expect("name"))).ok(), Some(7));
    assert!(path.exists(), "prune keeps the named image");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the table bytes of an image hold, walking the mapped view never panics.
    #[test]
    fn garbage_tables_never_panic(noise in prop::collection::vec(any::<u8>(), 64..4096), seed in any::<u64>()) {
        let built = View::build(&large_source(20)).expect("build");
        let mut bytes = Vec::new();
        image::write(&built, 0, &mut bytes).expect("write");
        let start = 64 + (seed as usize % (bytes.len() - 64));
        for (i, b) in noise.iter().enumerate() {
            if let Some(slot) = bytes.get_mut(start + i) {
                *slot = *b;
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.view");
        std::fs::write(&path, &bytes).expect("write");
        if let Ok((view, _)) = image::map(&path) {
            let mut stack = vec![view.root()];
            let mut seen = 0;
            while let Some(node) = stack.pop() {
                seen += 1;
                prop_assert!(seen < 100_000, "walk does not terminate");
                let _ = (node.attr(), node.content(), node.path(), node.lookup(b"pool"));
                if let Some(ino) = Inode::decode(node.inode()) {
                    let _ = view.resolve(ino).map(|r| r.attr());
                }
                // A damaged tree may have cycles: follow only children with larger indices.
                stack.extend(node.children_from(0).filter(|c| c.id().0 > node.id().0));
            }
        }
    }
}
