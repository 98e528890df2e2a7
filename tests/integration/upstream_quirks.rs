//! Issue 10: inputs as real upstreams serve them — deb.debian.org behind its caches, Proxmox's
//! download server — reproduced with generated, signed fixtures, through the real CLI.

use crate::harness::{text, Env, DEBIAN, PVE};
use crate::support::fixture::Upstream;
use crate::support::signing_key;
use std::time::SystemTime;

fn debian(generation: u32) -> Upstream {
    Upstream::debian(generation, signing_key()).expect("debian fixture")
}

/// `sync` fails with a line naming `file` and saying `why`, and nothing is published.
fn assert_sync_fails(env: &Env, file: &str, why: &str) {
    let out = env.run(&["sync"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains(file) && err.contains(why), "{err}");
    assert!(env.published(DEBIAN.id).is_none());
}

fn warnings(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.trim_start().starts_with("warning:")).collect()
}

/// The published snapshot's warnings as `status --json` lists them.
fn status_warnings(env: &Env, id: &str) -> Vec<String> {
    let out = env.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let entry = doc.as_array().unwrap().iter().find(|e| e["name"] == id).expect("status entry").clone();
    entry["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

/// deb.debian.org on 2026-12-01: InRelease verifies and Release is its signed text, but the
/// Release.gpg beside them is a month older (caches hold the three files independently).
#[test]
fn a_stale_release_gpg_beside_a_good_inrelease_is_left_out_and_the_suite_syncs() {
    let mut up = debian(1);
    let suite = up.suite("debian").expect("debian suite").clone();
    let stale = debian(0).bytes(&suite.release_gpg_path()).expect("Release.gpg").to_vec();
    up.put(&suite.release_gpg_path(), stale, SystemTime::now());
    let env = Env::new(up.clone(), &[&DEBIAN]);

    let out = env.sync_ok(&[]);
    let lines = warnings(&out);
    assert_eq!(lines.len(), 1, "one warning, about Release.gpg only:\n{out}");
    let gpg = "dists/bookworm/Release.gpg";
    assert!(lines[0].contains(&format!("{gpg}: left out")), "{out}");
    assert!(lines[0].contains(&env.server.url(&suite.release_gpg_path())), "names the URL: {out}");
    let files = env.published_files(DEBIAN.id);
    assert_eq!(files["dists/bookworm/InRelease"].as_slice(), up.bytes(&suite.inrelease_path()).unwrap());
    assert_eq!(files["dists/bookworm/Release"].as_slice(), up.bytes(&suite.release_path()).unwrap());
    assert!(!files.contains_key(gpg), "a signature that does not verify is never served");

    assert_eq!(status_warnings(&env, DEBIAN.id).len(), 1);
    let again = env.sync_ok(&[]);
    assert!(warnings(&again).is_empty() && again.contains("unchanged"), "{again}");
    // A verify run finds the same warning: counted as known, not printed again.
    let verify = env.sync_ok(&["--verify"]);
    assert!(warnings(&verify).is_empty() && verify.contains("1 known warning"), "{verify}");
}

/// A stale pair: Release and Release.gpg both older than InRelease. Neither is served; InRelease
/// alone carries the suite, as apt reads it.
#[test]
fn a_stale_release_pair_is_left_out_with_one_warning() {
    let mut up = debian(1);
    let suite = up.suite("debian").expect("debian suite").clone();
    let old = debian(0);
    for path in [suite.release_path(), suite.release_gpg_path()] {
        up.put(&path, old.bytes(&path).unwrap().to_vec(), SystemTime::now());
    }
    let env = Env::new(up.clone(), &[&DEBIAN]);
    let out = env.sync_ok(&[]);
    let lines = warnings(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("dists/bookworm/Release, dists/bookworm/Release.gpg: left out"), "{out}");
    let files = env.published_files(DEBIAN.id);
    assert!(files.contains_key("dists/bookworm/InRelease"));
    assert!(!files.contains_key("dists/bookworm/Release") && !files.contains_key("dists/bookworm/Release.gpg"));
}

/// Without a verifying InRelease, Release + Release.gpg are the authority and a bad pair fails.
#[test]
fn without_inrelease_a_bad_release_gpg_still_fails_the_mirror() {
    let mut up = debian(1);
    let suite = up.suite("debian").expect("debian suite").clone();
    up.remove(&suite.inrelease_path());
    let stale = debian(0).bytes(&suite.release_gpg_path()).unwrap().to_vec();
    up.put(&suite.release_gpg_path(), stale, SystemTime::now());
    let env = Env::new(up, &[&DEBIAN]);
    assert_sync_fails(&env, "dists/bookworm/Release.gpg", "bad signature");
}

/// Debian's Release lists uncompressed Packages it never serves beside the .xz/.gz: not a
/// warning (apt never asks for them), but counted in the JSON report.
#[test]
fn uncompressed_indices_upstream_never_serves_are_not_warnings() {
    let up = debian(0);
    assert!(!up.suites[0].listed_only.is_empty(), "fixture lists no index it does not serve");
    let env = Env::new(up.clone(), &[&DEBIAN]);
    let out = env.run(&["sync", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sync JSON");
    let m = &doc["mirrors"][0];
    assert_eq!(m["warnings"].as_array().unwrap().len(), 0, "{m}");
    assert_eq!(m["never_served"].as_u64().unwrap(), up.suites[0].listed_only.len() as u64, "{m}");
}

/// Two paths carry one object (the same .deb in two components): when upstream lacks it at one
/// path, it is downloaded from the other and both paths are served — the bytes are what the
/// index demands for each.
#[test]
fn content_missing_at_one_path_is_taken_from_another_path_that_has_it() {
    use pmirror_fs::digest::Sha256;
    let up = Upstream::proxmox(0, signing_key()).expect("proxmox fixture");
    let debs = up.deb_paths();
    let sha = |p: &str| Sha256::of(up.bytes(p).unwrap());
    let shared: Vec<&str> = debs
        .iter()
        .copied()
        .filter(|p| p.starts_with("debian/pve/") && debs.iter().filter(|q| sha(q) == sha(p)).count() > 1)
        .collect();
    let victim = *shared.first().expect("the fixture shares a .deb between two paths");
    let env = Env::new(up.clone(), &[&PVE]);
    env.server.fail_always(victim, 404);
    let out = env.sync_ok(&[]);
    assert!(warnings(&out).is_empty(), "{out}");
    let files = env.published_files(PVE.id);
    let rel = victim.strip_prefix("debian/pve/").unwrap();
    assert_eq!(files[rel].as_slice(), up.bytes(victim).unwrap());
    env.assert_pool_sound();
}

/// Re-signs the Debian suite's Release with its `Date:` line replaced by `date`.
fn with_date(up: &mut Upstream, date: &str) {
    let release = text(up.bytes(&up.suites[0].release_path()).unwrap());
    let (head, tail) = release.split_once("\nDate: ").expect("Date field");
    let (_, rest) = tail.split_once('\n').expect("Date line");
    let patched = format!("{head}\nDate: {date}\n{rest}");
    up.sign_release(0, patched.as_bytes(), signing_key()).unwrap();
}

/// apt refuses a Release dated more than Acquire::Max-FutureTime (10 s) ahead ("not valid yet")
/// and only warns about a Date it cannot read: the mirror does the same.
#[test]
fn release_dates_are_judged_as_apt_judges_them() {
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    let mut up = debian(0);
    with_date(&mut up, &in_an_hour.format(&fmt).unwrap());
    let env = Env::new(up, &[&DEBIAN]);
    assert_sync_fails(&env, "dists/bookworm/InRelease", "not valid yet");

    let mut up = debian(0);
    with_date(&mut up, "2024-11-09");
    let env = Env::new(up, &[&DEBIAN]);
    let out = env.sync_ok(&[]);
    let lines = warnings(&out);
    assert!(lines.len() == 1 && lines[0].contains("Date \"2024-11-09\" is not a date apt reads"), "{out}");
}

/// apt falls back from InRelease to Release + Release.gpg on a 404 only; a 410 (or 403, 500)
/// for InRelease fails the update, and the mirror's sync.
#[test]
fn inrelease_gone_is_not_a_fallback() {
    let up = debian(0);
    let inrelease = up.suites[0].inrelease_path();
    let env = Env::new(up, &[&DEBIAN]);
    env.server.fail_always(&inrelease, 410);
    assert_sync_fails(&env, "dists/bookworm/InRelease", "410");
    env.server.clear_all_faults();
    env.server.fail_always(&inrelease, 404);
    env.sync_ok(&[]);
    let files = env.published_files(DEBIAN.id);
    assert!(!files.contains_key("dists/bookworm/InRelease") && files.contains_key("dists/bookworm/Release.gpg"));
}

/// apt follows redirects and refuses only a loop (`IsRedirectionLoop`): a chain of hops within
/// the origin is followed, a redirect back to a URL already seen fails the mirror.
#[test]
fn redirect_chains_are_followed_and_loops_refused() {
    let up = debian(0);
    let inrelease = up.suites[0].inrelease_path();
    let env = Env::new(up.clone(), &[&DEBIAN]);
    let url = env.server.url(&inrelease);
    // 12 hops (more than reqwest's default limit of 10), each to a new URL, then back to the
    // start with a query (another URL; the test server ignores queries).
    let hops: Vec<String> = (1..=11).map(|i| format!("hop/{i}")).collect();
    env.server.redirect_next(&inrelease, &env.server.url(&hops[0]), 1);
    for pair in hops.windows(2) {
        env.server.redirect_next(&pair[0], &env.server.url(&pair[1]), 1);
    }
    env.server.redirect_next(&hops[10], &format!("{url}?done"), 1);
    env.sync_ok(&[]);
    assert_eq!(env.server.requests().iter().filter(|r| r.status == 302).count(), 12);

    let env = Env::new(up, &[&DEBIAN]);
    let url = env.server.url(&inrelease);
    env.server.redirect_next(&inrelease, &url, 100);
    assert_sync_fails(&env, "dists/bookworm/InRelease", "loop");
}
