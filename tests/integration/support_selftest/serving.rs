//! Self-tests of the serving side: the loopback `TestServer` (HTTP semantics, hit counts,
//! faults, swaps), the nginx harness, and the apt harness against both — the proof that the
//! fixtures are real apt repositories and that the harnesses notice broken ones.

use super::{build, GENERATIONS};
use crate::support::apt::AptClient;
use crate::support::client::{self, Conn};
use crate::support::fixture::{Fault, Flavor, Upstream};
use crate::support::http::TestServer;
use crate::support::nginx::Nginx;
use crate::support::{signing_key, write_public_key, wrong_key};
use pmirror_fs::digest::Sha256;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// A request: method, extra headers, expected status and body length.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, usize);
/// Strings of which apt's output must contain one, and how to break the fixture.
type Breakage = (&'static [&'static str], fn(&mut Upstream));

const PVE_RELEASE: &str = "debian/pve/dists/bookworm/Release";
/// Stall injected by the delay test: long enough to measure, short enough for CI.
const STALL: Duration = Duration::from_millis(300);

fn last_modified(up: &Upstream, path: &str) -> String {
    httpdate::fmt_http_date(up.get(path).expect("fixture file").mtime)
}

#[test]
fn test_server_serves_bytes_conditionally_and_by_range() {
    let up = build(Flavor::Proxmox, 0);
    let server = TestServer::start(up.clone());
    let want = up.bytes(PVE_RELEASE).expect("Release");
    let r = client::get(&server.url(PVE_RELEASE)).expect("GET");
    assert_eq!((r.status, &r.body[..]), (200, want));
    assert_eq!(r.header("last-modified"), Some(last_modified(&up, PVE_RELEASE).as_str()));
    assert_eq!(r.header("content-length"), Some(want.len().to_string().as_str()));
    let lm = last_modified(&up, PVE_RELEASE);
    let cases: [Case; 6] = [
        ("GET", vec![("If-Modified-Since", lm.as_str())], 304, 0),
        ("GET", vec![("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")], 200, want.len()),
        ("HEAD", vec![], 200, 0),
        ("GET", vec![("Range", "bytes=0-9")], 206, 10),
        ("GET", vec![("Range", "bytes=5-"), ("If-Range", lm.as_str())], 206, want.len() - 5),
        ("GET", vec![("Range", "bytes=0-9"), ("If-Range", "Mon, 01 Jan 2001 00:00:00 GMT")], 200, want.len()),
    ];
    for (method, headers, status, len) in cases {
        let r = client::request(&server.url(PVE_RELEASE), method, &headers).expect("request");
        assert_eq!((r.status, r.body.len()), (status, len), "{method} {headers:?}");
    }
    assert_eq!(client::get(&server.url("debian/pve/nope")).expect("GET").status, 404);
    assert_eq!(client::get(&server.url("debian/pve/dists/bookworm/Rele%61se")).expect("GET").body, want);
    let index = client::get(&server.url("debian/pve/dists/")).expect("autoindex");
    assert!(index.status == 200 && String::from_utf8_lossy(&index.body).contains("<a href=\"bookworm/\">"));
    let redirect = client::get(&server.url("debian/pve/dists")).expect("dir without slash");
    assert_eq!((redirect.status, redirect.header("location")), (301, Some("/debian/pve/dists/")));
}

#[test]
fn test_server_keeps_alive_and_counts_hits() {
    let server = TestServer::start(build(Flavor::Proxmox, 0));
    let mut conn = Conn::open(&server.addr().to_string()).expect("connect");
    for _ in 0..3 {
        let r = conn.request("GET", &format!("/{PVE_RELEASE}"), &[]).expect("same connection");
        assert_eq!(r.status, 200);
    }
    conn.request("HEAD", "/missing", &[]).expect("404 on the same connection");
    assert_eq!((server.hits(PVE_RELEASE), server.hits(&format!("/{PVE_RELEASE}")), server.hits("missing")), (3, 3, 1));
    assert_eq!(server.total_hits(), 4);
    assert_eq!(server.requests().iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 200, 404]);
    server.reset_hits();
    assert_eq!((server.total_hits(), server.requests().len()), (0, 0));
}

#[test]
fn test_server_injects_faults() {
    let up = build(Flavor::Proxmox, 0);
    let server = TestServer::start(up.clone());
    let url = server.url(PVE_RELEASE);
    let want = up.bytes(PVE_RELEASE).expect("Release").to_vec();
    server.fail_next(PVE_RELEASE, 500, 2);
    let statuses: Vec<u16> = (0..3).map(|_| client::get(&url).expect("GET").status).collect();
    assert_eq!(statuses, [500, 500, 200]);

    server.truncate(PVE_RELEASE, 100);
    let err = client::get(&url).expect_err("body cut short");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    server.clear_faults(PVE_RELEASE);
    server.truncate_next(PVE_RELEASE, 10, 1);
    assert!(client::get(&url).is_err() && client::get(&url).expect("second GET whole").body == want);

    server.oversize(PVE_RELEASE);
    let big = client::get(&url).expect("oversized GET").body;
    assert!(big.len() > want.len() && big.starts_with(&want), "{} vs {}", big.len(), want.len());
    server.clear_all_faults();

    server.delay(PVE_RELEASE, STALL);
    let started = Instant::now();
    assert_eq!(client::get(&url).expect("delayed GET").body, want);
    assert!(started.elapsed() >= STALL, "{:?}", started.elapsed());
    server.clear_faults(PVE_RELEASE);
    assert_eq!(server.hits(PVE_RELEASE), 8, "3 + 1 + 2 + 1 + 1 requests above");
}

#[test]
fn test_server_swaps_content_and_serves_directories() {
    let server = TestServer::start(build(Flavor::Debian, 0));
    let release = "debian/dists/bookworm/Release";
    let before = client::get(&server.url(release)).expect("GET");
    let next = build(Flavor::Debian, 1);
    server.swap(next.clone());
    let after = client::get(&server.url(release)).expect("GET");
    assert_eq!(after.body, next.bytes(release).expect("Release"));
    let date =
        |r: &client::Response| httpdate::parse_http_date(r.header("last-modified").unwrap_or_default()).expect("date");
    assert!(date(&after) > date(&before));
    let shared = server.upstream().expect("in-memory source");
    shared.write().expect("lock").put("extra/file", b"hello".to_vec(), next.get(release).expect("r").mtime);
    assert_eq!(client::get(&server.url("extra/file")).expect("GET").body, b"hello");

    let dir = tempfile::tempdir().expect("tempdir");
    next.write_to(dir.path()).expect("write_to");
    let from_dir = TestServer::start_dir(dir.path());
    let r = client::get(&from_dir.url(release)).expect("GET from dir");
    assert_eq!((&r.body, r.header("last-modified")), (&after.body, after.header("last-modified")));
    let listing = client::get(&from_dir.url("debian/dists/bookworm/")).expect("dir listing");
    assert!(String::from_utf8_lossy(&listing.body).contains("<a href=\"main/\">"));
}

#[test]
fn nginx_serves_a_written_fixture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = build(Flavor::Debian, 0);
    up.write_to(dir.path()).expect("write_to");
    let nginx = Nginx::start_plain(dir.path());
    for path in ["debian/dists/bookworm/InRelease", up.deb_paths()[0]] {
        let r = client::get(&nginx.url(path)).expect("GET via nginx");
        assert_eq!((r.status, &r.body[..]), (200, up.bytes(path).expect("bytes")), "{}", nginx.error_log());
        let lm = last_modified(&up, path);
        assert_eq!(r.header("last-modified"), Some(lm.as_str()));
        let again = client::request(&nginx.url(path), "GET", &[("If-Modified-Since", &lm)]).expect("conditional GET");
        assert_eq!(again.status, 304);
    }
    assert_eq!(client::get(&nginx.url("debian/nope")).expect("GET").status, 404);
    let listing = client::get(&nginx.url("debian/dists/bookworm/")).expect("autoindex");
    assert!(String::from_utf8_lossy(&listing.body).contains("InRelease"), "autoindex on");
}

/// Every distinct .deb of the fixture, by digest.
fn fixture_debs(up: &Upstream) -> BTreeSet<Sha256> {
    up.deb_paths().into_iter().map(|p| Sha256::of(up.bytes(p).expect("deb"))).collect()
}

fn downloaded(files: &[std::path::PathBuf]) -> BTreeSet<Sha256> {
    files.iter().map(|f| Sha256::of(&std::fs::read(f).expect("read download"))).collect()
}

/// apt update + download_all of every suite of `up` served at `base_url`.
fn apt_round_trip(up: &Upstream, base_url: &str, work: &Path) -> AptClient {
    let key = write_public_key(work);
    let state = work.join("apt");
    let mut apt = AptClient::new(&state, &up.suites[0].apt_source(base_url), &key);
    for suite in &up.suites[1..] {
        apt.add_source(&suite.apt_source(base_url), &key);
    }
    apt.update().expect("apt-get update accepts the fixture");
    let files = apt.download_all().expect("apt-get download of every package");
    assert_eq!(downloaded(&files), fixture_debs(up), "apt fetched exactly the fixture's packages");
    apt
}

#[test]
fn apt_accepts_both_flavors_through_nginx() {
    for flavor in [Flavor::Proxmox, Flavor::Debian] {
        let work = tempfile::tempdir().expect("tempdir");
        let up = build(flavor, 1);
        up.write_to(&work.path().join("www")).expect("write_to");
        let nginx = Nginx::start_plain(&work.path().join("www"));
        let apt = apt_round_trip(&up, &nginx.base_url(), work.path());
        if flavor == Flavor::Debian {
            let log = nginx.access_log();
            assert!(log.contains("/by-hash/SHA"), "apt used by-hash: {log}");
            let lists = std::fs::read_dir(apt.lists_dir()).expect("lists").flatten();
            assert!(lists.into_iter().any(|e| e.file_name().to_string_lossy().ends_with("Translation-en")));
        }
    }
}

#[test]
fn apt_follows_generations_through_the_test_server() {
    let work = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(build(Flavor::Debian, 0));
    let key = write_public_key(work.path());
    let apt = AptClient::new(
        &work.path().join("apt"),
        &build(Flavor::Debian, 0).suites[0].apt_source(&server.base_url()),
        &key,
    );
    for g in 0..GENERATIONS {
        let up = build(Flavor::Debian, g);
        server.swap(up.clone());
        apt.update().unwrap_or_else(|e| panic!("generation {g}: {e}"));
        let base_files: Vec<String> = apt
            .listed_packages()
            .expect("lists")
            .into_iter()
            .filter(|p| p.name == "base-files")
            .map(|p| p.version)
            .collect();
        assert_eq!(base_files, [format!("12.4+deb12u{g}")], "generation {g}");
    }
    assert!(server.requests().iter().any(|r| r.if_modified_since.is_some()), "apt sent If-Modified-Since");
    let files = apt.download_all().expect("download");
    assert_eq!(downloaded(&files), fixture_debs(&build(Flavor::Debian, GENERATIONS - 1)));
}

#[test]
fn apt_refuses_broken_fixtures() {
    let cases: [Breakage; 4] = [
        (&["NO_PUBKEY"], |up| up.resign(wrong_key()).expect("resign")),
        (&["not signed"], |up| drop(up.apply(Fault::Unsigned, signing_key()).expect("fault"))),
        (&["Hash Sum mismatch", "unexpected size"], |up| {
            drop(up.apply(Fault::PackagesHashMismatch, signing_key()).expect("fault"))
        }),
        (&["BADSIG"], |up| drop(up.apply(Fault::TamperedInRelease, signing_key()).expect("fault"))),
    ];
    for (want, breaker) in cases {
        let work = tempfile::tempdir().expect("tempdir");
        let mut up = build(Flavor::Proxmox, 0);
        breaker(&mut up);
        let server = TestServer::start(up.clone());
        let apt = AptClient::new(
            &work.path().join("apt"),
            &up.suites[0].apt_source(&server.base_url()),
            &write_public_key(work.path()),
        );
        let err = apt.update().expect_err(want[0]);
        assert!(want.iter().any(|w| err.output_text().contains(w)), "want {want:?} in:\n{err}");
    }
    // Indices fine, one package corrupt: update passes, the download fails.
    let work = tempfile::tempdir().expect("tempdir");
    let mut up = build(Flavor::Debian, 0);
    up.apply(Fault::DebHashMismatch, signing_key()).expect("fault");
    let server = TestServer::start(up.clone());
    let apt = AptClient::new(
        &work.path().join("apt"),
        &up.suites[0].apt_source(&server.base_url()),
        &write_public_key(work.path()),
    );
    apt.update().expect("indices are intact");
    let err = apt.download_all().expect_err("corrupt .deb");
    assert!(err.output_text().contains("Hash Sum mismatch") || err.output_text().contains("Size mismatch"), "{err}");
}
