//! Tests of the tree plan: which files are reused, rechecked or downloaded, filters, and the
//! engine plan it becomes.

use super::*;
use crate::filetree::checksums::Sha512;
use crate::filetree::listing::ListedTime;
use crate::filetree::verify::{Covered, Small};

const T0: i64 = 1_700_000_000;

fn remote(path: &str, size: ListedSize, minute: Option<i64>) -> RemoteFile {
    let url = Url::parse("http://h/t/").unwrap().join(path).unwrap();
    RemoteFile { path: path.into(), url, size, mtime: minute.map(|unix| ListedTime { unix, precision: 60 }) }
}

fn prev(path: &str, content: &[u8], mtime: i64) -> PublishedFile {
    PublishedFile {
        path: path.into(),
        sha256: Sha256::of(content),
        size: content.len() as u64,
        mtime,
        kind: EntryKind::TreeFile,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Want {
    Reuse(Sha256),
    Recheck,
    Download,
}

fn kind(how: &How) -> Want {
    match how {
        How::Reuse { sha256, .. } => Want::Reuse(*sha256),
        How::Recheck { .. } => Want::Recheck,
        How::Download { .. } => Want::Download,
        How::Write { .. } => panic!("no lists in these cases"),
    }
}

#[test]
fn reuse_recheck_or_download() {
    let old = b"old content";
    let new = b"new content";
    let sha512 = Expected::Sha512(Sha512([7; 64]));
    let exact = ListedSize::Exact(old.len() as u64);
    let other_size = ListedSize::Exact(99);
    let same_minute = Some(T0 - 30);
    let later = Some(T0 + 3600);
    // (case, listed size, listed minute, list digest, previous at the path, pool has, want)
    type Case<'a> = (&'a str, ListedSize, Option<i64>, Option<Expected>, Option<PublishedFile>, Vec<&'a [u8]>, Want);
    let p = || Some(prev("x", old, T0));
    let cases: Vec<Case> = vec![
        ("unchanged", exact, same_minute, None, p(), vec![old], Want::Reuse(Sha256::of(old))),
        ("new date", exact, later, None, p(), vec![old], Want::Download),
        ("new size", other_size, same_minute, None, p(), vec![old], Want::Download),
        ("no date shown", exact, None, None, p(), vec![old], Want::Download),
        ("no size shown", ListedSize::Unknown, same_minute, None, p(), vec![old], Want::Download),
        ("object gone", exact, same_minute, None, p(), vec![], Want::Download),
        ("new file", exact, same_minute, None, None, vec![], Want::Download),
        (
            "sha256 in pool, other path",
            ListedSize::Exact(new.len() as u64),
            later,
            Some(Expected::Sha256(Sha256::of(new))),
            None,
            vec![new],
            Want::Reuse(Sha256::of(new)),
        ),
        (
            "sha256 known, touched",
            exact,
            later,
            Some(Expected::Sha256(Sha256::of(old))),
            p(),
            vec![old],
            Want::Reuse(Sha256::of(old)),
        ),
        (
            "sha256 in pool, wrong size",
            other_size,
            later,
            Some(Expected::Sha256(Sha256::of(old))),
            p(),
            vec![old],
            Want::Download,
        ),
        (
            "sha256 not in pool",
            exact,
            same_minute,
            Some(Expected::Sha256(Sha256::of(new))),
            p(),
            vec![old],
            Want::Download,
        ),
        ("sha512 unchanged", exact, same_minute, Some(sha512), p(), vec![old], Want::Reuse(Sha256::of(old))),
        ("sha512 new date", exact, later, Some(sha512), p(), vec![old], Want::Recheck),
        ("sha512 new size", other_size, later, Some(sha512), p(), vec![old], Want::Download),
        ("sha512 new file", exact, later, Some(sha512), None, vec![old], Want::Download),
    ];
    for (what, size, minute, expected, previous, pool, want) in cases {
        let f = remote("x", size, minute);
        let pool_size = |sha: &Sha256| pool.iter().find(|c| Sha256::of(c) == *sha).map(|c| c.len() as u64);
        let how = plan_file(&f, expected, previous.as_ref(), &pool_size);
        assert_eq!(kind(&how), want, "{what}");
    }
}

fn tree(include: &[&str], exclude: &[&str]) -> TreeConfig {
    TreeConfig {
        id: "t".into(),
        url: Url::parse("http://h/t/").unwrap(),
        view: "t".into(),
        include: include.iter().map(|s| s.to_string()).collect(),
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        key: None,
        key_bytes: None,
        subscription: None,
        sources: Vec::new(),
    }
}

#[test]
fn filters() {
    let cases: &[(&[&str], &[&str], &str, bool)] = &[
        (&[], &[], "anything/at/all", true),
        (&["*.iso"], &[], "x.iso", true),
        (&["*.iso"], &[], "sub/x.iso", true),
        (&["*.iso"], &[], "SHA256SUMS", false),
        (&["*.iso", "SHA256SUMS*"], &[], "SHA256SUMS.asc", true),
        (&[], &["old/**"], "old/x.iso", false),
        (&["*.iso"], &["*beta*"], "pve-beta.iso", false),
    ];
    for (include, exclude, path, want) in cases {
        let f = Filter::new(&tree(include, exclude)).unwrap();
        assert_eq!(f.wants(path), *want, "{include:?} {exclude:?} {path}");
    }
}

#[test]
fn plan_uses_lists_in_memory_and_marks_coverage() {
    let files = vec![
        remote("SHA256SUMS", ListedSize::Exact(3), Some(T0)),
        remote("a.iso", ListedSize::Exact(1), Some(T0)),
        remote("b.iso", ListedSize::Exact(1), Some(T0)),
        remote("notes.txt", ListedSize::Exact(1), Some(T0)),
    ];
    let mut checks = Checks::default();
    let sums = Small { bytes: b"abc".to_vec(), sha256: Sha256::of(b"abc"), mtime: Some(T0), reused: false };
    checks.small.insert("SHA256SUMS".into(), sums);
    let covered = |b: &[u8]| Covered { expected: Expected::Sha256(Sha256::of(b)), list: "SHA256SUMS".into() };
    checks.expected.insert("a.iso".into(), covered(b"a"));
    checks.expected.insert("b.iso".into(), covered(b"b"));
    let filter = Filter::new(&tree(&[], &["notes.txt"])).unwrap();
    let planned = plan(&files, &filter, checks, &HashMap::new(), |_| None);
    let got: Vec<(&str, bool, Option<&str>)> =
        planned.iter().map(|p| (p.path.as_str(), p.covered, p.checked_by.as_deref())).collect();
    assert_eq!(
        got,
        vec![("SHA256SUMS", false, None), ("a.iso", true, Some("SHA256SUMS")), ("b.iso", true, Some("SHA256SUMS"))]
    );
    assert!(matches!(planned[0].how, How::Write { .. }));
    let mp = to_plan("t", planned, vec![]);
    let totals = mp.totals();
    assert_eq!((totals.fetch_files, totals.fetch_bytes, totals.reuse_files), (3, 5, 0));
    assert!(mp.files.iter().all(|f| f.kind == EntryKind::TreeFile));
    // The list is verified bytes in memory; each ISO a download held to its SHA256SUMS line.
    assert!(matches!(mp.files[0].source, Source::Memory { .. }));
    for (f, content) in mp.files[1..].iter().zip([b"a", b"b"]) {
        assert!(matches!(f.source, Source::Download { by_hash: None }));
        assert_eq!(f.check, Check::Digest(Expected::Sha256(Sha256::of(content))));
        assert_eq!((f.size, f.checked_by.as_deref()), (Size::Exact(1), Some("SHA256SUMS")));
    }
}

#[test]
fn unverified_files_of_unknown_content_stay_apart() {
    let files =
        vec![remote("a", ListedSize::Exact(4), None), remote("b", ListedSize::Approx { bytes: 4, tolerance: 1 }, None)];
    let filter = Filter::new(&tree(&[], &[])).unwrap();
    let planned = plan(&files, &filter, Checks::default(), &HashMap::new(), |_| None);
    let mp = to_plan("t", planned, vec![]);
    assert_eq!(mp.totals().fetch_files, 2, "two unknown files must not collapse into one");
    assert!(mp.files.iter().all(|f| f.check == Check::Unverified && f.known_sha256().is_none()));
    assert_eq!(mp.files[1].size, Size::About(4), "a rounded listing size is not a cap");
}
