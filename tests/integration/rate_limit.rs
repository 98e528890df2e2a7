//! Issue 15, the bandwidth cap: `[sync] rate-limit` holds a whole run — every connection
//! together — to its rate, measured over more than 5 s of ISO downloads (±10 %).

use crate::harness::{text, Env};
use crate::support::signing_key;
use crate::tree_fixture::trees;
use std::time::Instant;

#[test]
fn a_run_takes_no_more_than_its_rate_limit_across_all_connections() {
    let mut env = Env::new(trees(0, signing_key()), &[]);
    let base = env.server.base_url();
    let tree = format!(
        "[[tree]]\nid = \"iso\"\nurl = \"{}/iso/\"\nkey = \"{}\"\n",
        base.trim_end_matches('/'),
        env.key.display()
    );
    env.write_config(&[], &tree);
    let rate: u64 = 1 << 20;
    let config = std::fs::read_to_string(&env.config).unwrap().replace("[sync]\n", "[sync]\nrate-limit = \"1M\"\n");
    std::fs::write(&env.config, config).unwrap();
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
