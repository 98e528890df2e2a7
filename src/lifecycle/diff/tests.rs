//! Diff tests: index paths, package changes in dpkg order, file changes, reading from the pool.

use super::*;
use crate::digest::Sha256;
use proptest::prelude::*;

fn pkg(name: &str, version: &str, arch: &str) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        architecture: arch.into(),
        section: None,
        filename: format!("pool/{name}_{version}_{arch}.deb"),
        size: 1,
        sha256: Sha256::of(format!("{name}{version}").as_bytes()),
    }
}

#[test]
fn index_keys() {
    let cases = [
        ("dists/bookworm/main/binary-amd64/Packages.xz", Some(("main", "amd64", ".xz"))),
        ("dists/bookworm/pvetest/binary-amd64/Packages", Some(("pvetest", "amd64", ""))),
        ("dists/bookworm/main/debian-installer/binary-all/Packages.gz", Some(("main/debian-installer", "all", ".gz"))),
        ("dists/bookworm/main/binary-amd64/Packages.diff/Index", None),
        ("dists/bookworm/main/binary-amd64/by-hash/SHA256/abc", None),
        ("dists/bookworm/main/source/Sources.xz", None),
        ("dists/bookworm/main/i18n/Translation-en.xz", None),
        ("dists/bookworm/binary-amd64/Packages", None),
        ("pool/main/binary-amd64/Packages", None),
    ];
    for (path, want) in cases {
        let got = index_key(path);
        let got = got.as_ref().map(|((c, a), e)| (c.as_str(), a.as_str(), *e));
        assert_eq!(got, want, "{path}");
    }
}

#[test]
fn package_changes_in_dpkg_order() {
    // (old, new, want: (name, change, old versions, new versions))
    type Want = Vec<(&'static str, Change, Vec<&'static str>, Vec<&'static str>)>;
    let cases: Vec<(Vec<Package>, Vec<Package>, Want)> = vec![
        (vec![pkg("a", "1.0", "amd64")], vec![pkg("a", "1.0", "amd64")], vec![]),
        (vec![], vec![pkg("new", "1", "all")], vec![("new", Change::Added, vec![], vec!["1"])]),
        (vec![pkg("old", "1", "all")], vec![], vec![("old", Change::Removed, vec!["1"], vec![])]),
        // 1.10 > 1.9 (not text order); ~ sorts before anything; epochs win.
        (
            vec![pkg("v", "1.9", "amd64")],
            vec![pkg("v", "1.10", "amd64")],
            vec![("v", Change::Upgraded, vec!["1.9"], vec!["1.10"])],
        ),
        (
            vec![pkg("t", "2.0", "amd64")],
            vec![pkg("t", "2.0~rc1", "amd64")],
            vec![("t", Change::Downgraded, vec!["2.0"], vec!["2.0~rc1"])],
        ),
        (
            vec![pkg("e", "9.9", "all")],
            vec![pkg("e", "1:0.1", "all")],
            vec![("e", Change::Upgraded, vec!["9.9"], vec!["1:0.1"])],
        ),
        // pvetest keeps two versions: the window moves → upgraded, with every version listed.
        (
            vec![pkg("pve-manager", "8.1.0", "amd64"), pkg("pve-manager", "8.1.1", "amd64")],
            vec![pkg("pve-manager", "8.1.1", "amd64"), pkg("pve-manager", "8.1.2", "amd64")],
            vec![("pve-manager", Change::Upgraded, vec!["8.1.0", "8.1.1"], vec!["8.1.1", "8.1.2"])],
        ),
        (
            vec![pkg("w", "1", "amd64"), pkg("w", "2", "amd64")],
            vec![pkg("w", "2", "amd64")],
            vec![("w", Change::Changed, vec!["1", "2"], vec!["2"])],
        ),
        // Same name, other architecture: two packages.
        (
            vec![pkg("x", "1", "amd64")],
            vec![pkg("x", "1", "amd64"), pkg("x", "1", "i386")],
            vec![("x", Change::Added, vec![], vec!["1"])],
        ),
    ];
    for (old, new, want) in cases {
        let got = diff_packages(&old, &new);
        let got: Vec<_> = got.into_iter().map(|c| (c.name, c.change, c.old, c.new)).collect();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let want: Vec<_> = want.iter().map(|(n, c, o, w)| (n.to_string(), *c, strings(o), strings(w))).collect();
        assert_eq!(got, want, "{old:?} → {new:?}");
    }
}

#[test]
fn indices_present_on_one_side_only() {
    let key = |c: &str| (c.to_owned(), "amd64".to_owned());
    let old =
        BTreeMap::from([(key("main"), vec![pkg("a", "1", "amd64")]), (key("same"), vec![pkg("s", "1", "amd64")])]);
    let new =
        BTreeMap::from([(key("contrib"), vec![pkg("b", "1", "amd64")]), (key("same"), vec![pkg("s", "1", "amd64")])]);
    let got: Vec<(String, Change)> =
        diff_indices(old, new).into_iter().map(|d| (d.component, d.changes[0].change)).collect();
    assert_eq!(got, [("contrib".to_owned(), Change::Added), ("main".to_owned(), Change::Removed)]);
}

fn file(path: &str, content: &str) -> PublishedFile {
    PublishedFile {
        path: path.into(),
        sha256: Sha256::of(content.as_bytes()),
        size: content.len() as u64,
        mtime: 0,
        kind: EntryKind::TreeFile,
    }
}

#[test]
fn file_changes() {
    let old = [file("iso/a.iso", "a"), file("iso/b.iso", "b"), file("SHA256SUMS", "1")];
    let new = [file("iso/a.iso", "a"), file("iso/c.iso", "c"), file("SHA256SUMS", "22")];
    let got: Vec<_> = diff_files(&old, &new)
        .into_iter()
        .map(|c| (c.path, c.change, c.old.map(|v| v.size), c.new.map(|v| v.size)))
        .collect();
    let want = [
        ("SHA256SUMS", FileChangeKind::Changed, Some(1), Some(2)),
        ("iso/b.iso", FileChangeKind::Removed, Some(1), None),
        ("iso/c.iso", FileChangeKind::Added, None, Some(1)),
    ];
    let want: Vec<_> = want.into_iter().map(|(p, c, o, n)| (p.to_owned(), c, o, n)).collect();
    assert_eq!(got, want);
}

#[test]
fn reads_the_preferred_intact_variant_from_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path(), false).unwrap();
    let text = "Package: a\nVersion: 1\nArchitecture: amd64\nFilename: pool/a.deb\nSize: 1\nSHA256: ".to_owned()
        + &"0".repeat(64)
        + "\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let index = |path: &str, bytes: &[u8]| {
        pool.put_bytes(bytes, &Sha256::of(bytes)).unwrap();
        PublishedFile {
            path: path.into(),
            sha256: Sha256::of(bytes),
            size: bytes.len() as u64,
            mtime: 0,
            kind: EntryKind::Index,
        }
    };
    let plain = index("dists/x/main/binary-amd64/Packages", text.as_bytes());
    let packed = index("dists/x/main/binary-amd64/Packages.gz", &gz);
    let got = read_indices(&pool, &[packed.clone(), plain.clone()]).unwrap();
    assert_eq!(got[&("main".to_owned(), "amd64".to_owned())][0].name, "a");
    // The plain variant is gone: the .gz one is read instead.
    std::fs::remove_file(pool.object_path(&plain.sha256)).unwrap();
    assert_eq!(read_indices(&pool, &[plain.clone(), packed.clone()]).unwrap().len(), 1);
    // Both gone: an error naming the last path tried.
    std::fs::remove_file(pool.object_path(&packed.sha256)).unwrap();
    let (path, _) = read_indices(&pool, &[plain, packed]).unwrap_err();
    assert!(path.ends_with("Packages.gz"), "{path}");
}

proptest! {
    #[test]
    fn index_key_never_panics(path in "\\PC{0,60}") {
        let _ = index_key(&path);
    }

    #[test]
    fn version_order_is_total(a in "[0-9a-z.+~:-]{0,8}", b in "[0-9a-z.+~:-]{0,8}") {
        prop_assert_eq!(compare_versions(&a, &b), compare_versions(&b, &a).reverse());
    }
}
