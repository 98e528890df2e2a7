//! Issue 10: inputs as real upstreams serve them — deb.debian.org behind its caches, Proxmox's
//! download server — reproduced with generated, signed fixtures, through the real CLI.

use crate::harness::{text, Env, DEBIAN};
use crate::support::fixture::Upstream;
use crate::support::signing_key;
use std::time::SystemTime;

fn debian(generation: u32) -> Upstream {
    Upstream::debian(generation, signing_key()).expect("debian fixture")
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
    let out = env.run(&["sync"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("dists/bookworm/Release.gpg") && err.contains("bad signature"), "{err}");
    assert!(env.published(DEBIAN.id).is_none());
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
