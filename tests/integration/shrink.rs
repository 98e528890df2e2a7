//! Issue 15, the shrink guard: an upstream that suddenly lists far fewer packages than the
//! published snapshot is recorded but not published; the run fails with one line naming why,
//! a second run records nothing new, and `sync --allow-shrink` or `snapshot publish` publishes it.

use crate::harness::{text, Env, PVE};
use crate::support::fixture::Upstream;
use crate::support::signing_key;

/// `generation` with every Packages index emptied (re-signed: a valid, broken upstream; its
/// Release is dated as the generation's, so a later generation than the synced one is new).
fn emptied(generation: u32) -> Upstream {
    let mut up = Upstream::proxmox(generation, signing_key()).unwrap();
    for index in up.packages_indices() {
        up.replace_index(&index, b"").unwrap();
    }
    up.resign(signing_key()).unwrap();
    up
}

fn failed_line(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert!(!out.status.success(), "{args:?} succeeded:\n{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "not one line:\n{err}");
    err
}

#[test]
fn a_snapshot_that_drops_most_packages_is_recorded_not_published() {
    let env = Env::new(Upstream::proxmox(0, signing_key()).unwrap(), &[&PVE]);
    env.sync_ok(&[]);
    let before = env.published(PVE.id).unwrap();
    env.server.swap(emptied(1));
    let err = failed_line(&env, &["sync"]);
    assert!(err.contains(&format!("mirror {}", PVE.id)) && err.contains("max-shrink = 50%"), "{err}");
    assert!(err.contains("recorded, not published") && err.contains("--allow-shrink"), "{err}");
    assert_eq!(env.published(PVE.id).unwrap().name, before.name, "the shrunk snapshot was published");
    let snapshots = env.catalog().snapshots(Some(PVE.id)).unwrap();
    assert_eq!(snapshots.len(), 2, "the new snapshot is recorded");
    let row = env.catalog().mirrors().unwrap().into_iter().find(|m| m.id == PVE.id).unwrap();
    assert_eq!(row.state, "failed");
    assert!(row.last_error.as_deref().is_some_and(|e| e.contains("max-shrink")), "{:?}", row.last_error);
    // Upstream stays broken: the next run says so again and records no copy of it.
    failed_line(&env, &["sync"]);
    assert_eq!(env.catalog().snapshots(Some(PVE.id)).unwrap().len(), 2, "a copy of the held snapshot was recorded");
    // The operator decides: publish the held one by name ...
    let held = snapshots.iter().find(|s| !s.published).unwrap().name.clone();
    let out = env.run(&["snapshot", "publish", PVE.id, &held]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.published(PVE.id).unwrap().name, held);
    assert!(env.catalog().pin(PVE.id).unwrap().is_none(), "publishing the newest snapshot does not pin");
}

#[test]
fn allow_shrink_publishes_and_max_shrink_100_never_holds() {
    let mut env = Env::new(Upstream::proxmox(0, signing_key()).unwrap(), &[&PVE]);
    env.sync_ok(&[]);
    env.server.swap(emptied(1));
    failed_line(&env, &["sync"]);
    let out = env.run(&["sync", "--allow-shrink", PVE.id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.published(PVE.id).unwrap().files, env.catalog().newest_snapshot(PVE.id).unwrap().unwrap().files);
    // With the guard off, a shrink back and forth is published like any change.
    env.write_config(&[&PVE], "");
    let config = std::fs::read_to_string(&env.config).unwrap().replace("[sync]\n", "[sync]\nmax-shrink = \"100%\"\n");
    std::fs::write(&env.config, config).unwrap();
    env.server.swap(Upstream::proxmox(2, signing_key()).unwrap());
    env.sync_ok(&[]);
    env.server.swap(emptied(3));
    env.sync_ok(&[]);
    let published = env.published(PVE.id).unwrap();
    assert_eq!(published.name, env.catalog().newest_snapshot(PVE.id).unwrap().unwrap().name);
}
