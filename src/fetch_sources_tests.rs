//! Slots and source choice (src/fetch_sources.rs).
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn plain_http_slots_grow_only_while_latency_bound_and_up_to_the_cap() {
    let gate = Gate::new(2, 6);
    // Bandwidth-bound (the body took longer than the answer) or near: no growth.
    for _ in 0..20 {
        gate.finished(ms(100), ms(300), 1 << 20);
        gate.finished(ms(5), ms(0), 1000);
    }
    assert_eq!(gate.size.load(Ordering::Relaxed), 2);
    // As many latency-bound transfers in a row as there are slots: by half again, to 6.
    let sizes: Vec<usize> = (0..12)
        .map(|_| {
            gate.finished(ms(100), ms(1), 1000);
            gate.size.load(Ordering::Relaxed)
        })
        .collect();
    assert_eq!(sizes, [2, 3, 3, 3, 5, 5, 5, 5, 5, 6, 6, 6]);
    assert_eq!(gate.sem.available_permits(), 6);
}

#[test]
fn an_http2_host_gets_its_streams_at_once() {
    let gate = Gate::new(8, 32);
    gate.answered(reqwest::Version::HTTP_11);
    assert_eq!(gate.size.load(Ordering::Relaxed), 8);
    gate.answered(reqwest::Version::HTTP_2);
    assert_eq!((gate.size.load(Ordering::Relaxed), gate.sem.available_permits()), (H2_STREAMS, H2_STREAMS));
    // Latency does not widen it further.
    for _ in 0..300 {
        gate.finished(ms(300), ms(1), 1000);
    }
    assert_eq!(gate.size.load(Ordering::Relaxed), H2_STREAMS);
}

#[test]
fn a_source_four_times_slower_takes_no_work_while_a_faster_one_can() {
    let url = |p: u16| Url::parse(&format!("http://127.0.0.1:{p}/x")).unwrap();
    let hosts = Hosts::new(8, 8);
    let (slow, fast, unknown) = (hosts.gate(&url(1)), hosts.gate(&url(2)), hosts.gate(&url(3)));
    slow.finished(ms(1), ms(199), 1 << 20); // 5 MB/s
    fast.finished(ms(1), ms(19), 1 << 20); // 50 MB/s
    let targets = vec![(0, url(1)), (1, url(2)), (2, url(3))];
    let mut gates = vec![slow.clone(), fast.clone(), unknown];
    let kept: Vec<usize> = without_slow(targets.clone(), &mut gates).into_iter().map(|(i, _)| i).collect();
    assert_eq!(kept, [1, 2], "the slow one is left out, the unmeasured one kept");
    assert_eq!(gates.len(), 2);
    // Alone (the fast one failed for this file), the slow one is still asked.
    let mut alone = vec![slow];
    assert_eq!(without_slow(vec![(0, url(1))], &mut alone).len(), 1);
}

fn fetch_error(status: u16) -> super::super::FetchError {
    super::super::FetchError::Status { url: "u".into(), status }
}

#[test]
fn candidates_skip_bad_sources_stale_ones_for_metadata_and_try_failed_ones_last() {
    let base = |h: &str| Url::parse(&format!("http://{h}/debian/pve/")).unwrap();
    let sources = Sources::new(vec![base("a"), base("b"), base("c")], Some("dists/"));
    let pkg = base("a").join("pool/x.deb").unwrap();
    let meta = base("a").join("dists/bookworm/InRelease").unwrap();
    fn hosts(c: Vec<(usize, Url)>) -> Vec<(usize, String)> {
        c.into_iter().map(|(i, u)| (i, u.host_str().unwrap().to_owned())).collect()
    }
    let order = |s: &Sources, u: &Url, t: &[usize]| hosts(s.candidates(u, t, None));
    assert_eq!(order(&sources, &pkg, &[]), [(0, "a".into()), (1, "b".into()), (2, "c".into())]);
    sources.not_for_metadata(1, "stale".into());
    assert_eq!(order(&sources, &meta, &[]), [(0, "a".into()), (2, "c".into())]);
    assert_eq!(order(&sources, &pkg, &[0]), [(1, "b".into()), (2, "c".into())]);
    // A's transient failure puts it last; C's bad bytes take it out for the run.
    sources.failed(0, &pkg, &fetch_error(503));
    let bad = super::super::FetchError::Pool {
        url: "u".into(),
        source: Box::new(crate::pool::PoolError::SizeMismatch { expected: 1, actual: 2 }),
    };
    sources.failed(2, &pkg, &bad);
    assert_eq!(order(&sources, &pkg, &[]), [(1, "b".into())]);
    assert_eq!(order(&sources, &pkg, &[1]), [(0, "a".into())], "the failed one when nothing else is left");
    assert_eq!(order(&sources, &meta, &[]), [(0, "a".into())]);
    // A 404 is not a failure of the source; a pin asks only that one.
    sources.failed(1, &pkg, &fetch_error(404));
    assert_eq!(order(&sources, &pkg, &[]), [(1, "b".into())]);
    assert_eq!(hosts(sources.candidates(&meta, &[], Some(2))), [(2, "c".to_owned())]);
    let notes = sources.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[1].starts_with("source http://c/debian/pve/: not used again this run: served a bad file"));
}
