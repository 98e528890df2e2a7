//! Issue 12: ARCHITECTURE.md's invariants checked by a tool, not only stated. Runs
//! `examples/module-graph.rs` on this crate's src/: no cycle among top-level modules, `dry_run`
//! only in cli, file and function lengths, SAFETY comments, and which module may use rusqlite,
//! reqwest, fuser, tokio and std::fs.

use crate::harness::{text, BIN};
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `module-graph` as `cargo build --examples` leaves it (scripts/test.sh builds it first:
/// `cargo test` only builds examples as test harnesses, under hashed names).
fn module_graph() -> std::path::PathBuf {
    let path = Path::new(BIN).parent().expect("target dir").join("examples/module-graph");
    assert!(path.exists(), "{} missing: run `cargo build --examples` first (scripts/test.sh does)", path.display());
    path
}

#[test]
fn the_architecture_invariants_hold_on_src() {
    let out =
        Command::new(module_graph()).args(["--graph", "src"]).current_dir(ROOT).output().expect("run module-graph");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "module-graph found violations ({}):\n{stdout}{stderr}", out.status);
    assert!(stdout.contains("architecture: ok"), "unexpected output:\n{stdout}{stderr}");
}
