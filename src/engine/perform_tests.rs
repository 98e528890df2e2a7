//! Tests of `perform`.

use super::*;
use crate::engine::Size;

fn file(path: &str, kind: EntryKind, source: Source, check: Check) -> PlannedFile {
    PlannedFile {
        path: path.to_owned(),
        url: Url::parse("http://h/").unwrap().join(path).unwrap(),
        kind,
        size: Size::Exact(1),
        check,
        source,
        other_hashes: Vec::new(),
        optional: false,
        mtime: None,
        checked_by: None,
    }
}

/// apt paths of one digest are one object (fetched once); tree files never share a job: a
/// rechecked template's previous digest says nothing about its content now, and a second
/// path must not pass for one upstream does not serve.
#[test]
fn only_apt_files_of_one_digest_share_a_job() {
    let s = Sha256::of(b"x");
    let digest = Check::Digest(Expected::Sha256(s));
    let other = Check::Digest(Expected::Sha512(crate::digest::Sha512([1; 64])));
    let files = vec![
        file("a/Packages", EntryKind::Index, Source::Download { by_hash: None }, digest),
        file("b/Packages", EntryKind::Index, Source::Pool { sha256: s, size: 1 }, digest),
        file("t/a.tar.zst", EntryKind::TreeFile, Source::Pool { sha256: s, size: 1 }, other),
        file("t/b.tar.zst", EntryKind::TreeFile, Source::Recheck { sha256: s, size: 1, mtime: 0 }, other),
        file("iso/x.iso", EntryKind::TreeFile, Source::Download { by_hash: None }, digest),
    ];
    let groups: Vec<Vec<&str>> = objects(&files).iter().map(|g| g.iter().map(|f| f.path.as_str()).collect()).collect();
    assert_eq!(groups, [vec!["a/Packages", "b/Packages"], vec!["t/a.tar.zst"], vec!["t/b.tar.zst"], vec!["iso/x.iso"]]);
}

/// A job that found an object in the pool because another job of this run had just stored it
/// takes that job's Last-Modified; an object of an earlier run has none here (its catalog row
/// keeps the mtime it was first recorded with), and asking adds nothing to the table.
#[test]
fn a_pool_hit_takes_the_last_modified_another_job_of_the_run_stored() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let in_flight = InFlight::default();
        let (fetched, earlier) = (Sha256::of(b"fetched by this run"), Sha256::of(b"from an earlier run"));
        *in_flight.turn(fetched).lock().await = Some(Some(1_701_475_200));
        assert_eq!(in_flight.stored(&fetched).await, Some(1_701_475_200));
        assert_eq!(in_flight.stored(&earlier).await, None);
        assert!(in_flight.0.lock().unwrap().get(&earlier).is_none());
    });
}
