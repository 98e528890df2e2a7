//! Issue 15, the bandwidth cap: `[sync] rate-limit` holds a whole run — every connection
//! together — to its rate, measured over more than 5 s of ISO downloads (±10 %).

use crate::harness::{text, Env};
use crate::support::signing_key;
use crate::tree_fixture::trees;
use std::time::Instant;

#[test]
fn a_run_takes_no_more_than_its_rate_limit_across_all_connections() {
    let env = iso_env("rate-limit = \"1M\"\n");
    let rate: u64 = 1 << 20;
    let started = Instant::now();
    let out = env.run(&["sync", "--json"]);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fetched: u64 = report["mirrors"].as_array().unwrap().iter().map(|m| m["fetched_bytes"].as_u64().unwrap()).sum();
    let measured = fetched as f64 / elapsed;
    println!(
        "rate-limit 1M: {fetched} B in {elapsed:.2} s = {:.0} B/s ({:.3}x the limit, 4 connections)",
        measured,
        measured / rate as f64
    );
    assert!(elapsed >= 5.0, "the measurement must span 5 s: {elapsed:.2} s for {fetched} B");
    assert!((measured / rate as f64 - 1.0).abs() <= 0.10, "{measured:.0} B/s against a limit of {rate} B/s");
}

/// The ISO tree of generation 0 as a `[[tree]]`, with `[sync]` settings `extra` (shared by the
/// flow-control and resume tests).
pub fn iso_env(extra: &str) -> Env {
    let mut env = Env::new(trees(0, signing_key()), &[]);
    let base = env.server.base_url();
    let tree = format!(
        "[[tree]]\nid = \"iso\"\nurl = \"{}/iso/\"\nkey = \"{}\"\n",
        base.trim_end_matches('/'),
        env.key.display()
    );
    env.write_config(&[], &tree);
    let config = std::fs::read_to_string(&env.config).unwrap().replace("[sync]\n", &format!("[sync]\n{extra}"));
    std::fs::write(&env.config, config).unwrap();
    env
}

#[test]
fn a_crawling_transfer_is_abandoned_and_retried() {
    const ISO: &str = "iso/proxmox-ve_8.2-1.iso";
    let env = iso_env("slow-rate = \"100K\"\nslow-time = \"2s\"\n");
    // 4 KiB every 100 ms: 40 KiB/s, far below 100K, for 3 MiB — 80 s if nothing gave up.
    env.server.trickle_next(ISO, 4096, std::time::Duration::from_millis(100), 1);
    let started = Instant::now();
    let out = env.run(&["sync"]);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let gets = env.server.requests().iter().filter(|r| r.path == ISO && r.method == "GET").count();
    assert_eq!(gets, 2, "abandoned once, then fetched again");
    assert!(elapsed < 20.0, "the crawling transfer held the sync {elapsed:.1} s");
    let iso = crate::tree_fixture::trees(0, signing_key());
    let published = env.published_files("iso");
    assert_eq!(published.get("proxmox-ve_8.2-1.iso").map(Vec::as_slice), iso.bytes(ISO), "the retried ISO is whole");
}

#[test]
fn a_source_that_always_crawls_fails_its_entry_with_the_reason() {
    const ISO: &str = "iso/proxmox-ve_8.2-1.iso";
    let env = iso_env("slow-rate = \"100K\"\nslow-time = \"1s\"\n");
    env.server.trickle_next(ISO, 4096, std::time::Duration::from_millis(100), 10);
    let out = env.run(&["sync"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(ISO) && err.contains("below [sync] slow-rate (102400 bytes/s) for 1 s"), "{err}");
    assert!(env.published("iso").is_none());
}
