//! Issue 5: the snapshot lifecycle through the real CLI — rollback served through the mount and
//! nginx to the real apt client, a rollback pinning the mirror across syncs, retention (after a
//! rollback, with and without grace), gc beside a running mount, verify naming every path of a
//! damaged object and `sync --verify` repairing it, package- and file-level diffs, and the
//! Valid-Until warning of a rollback.

use crate::harness::{text, Env, Mount, DEBIAN, PVE};
use crate::support::apt::AptClient;
use crate::support::fixture::Upstream;
use crate::support::nginx::Nginx;
use crate::support::signing_key;
use crate::sync::wait_for;
use crate::tree_fixture;
use pmirror_fs::digest::Sha256;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

/// Retention prunes what was superseded *before* the second of the publish (a snapshot
/// superseded in this very second is still inside even a zero grace window): tests that count
/// what retention keeps let the clock move on between syncs.
const NEXT_SECOND: Duration = Duration::from_millis(1_100);

fn proxmox(generation: u32) -> Upstream {
    Upstream::proxmox(generation, signing_key()).expect("proxmox fixture")
}

/// Rewrites the env's `[sync]` keep and grace.
fn set_retention(env: &Env, keep: usize, grace: &str) {
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let lines: Vec<String> = cfg
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("keep", _)) => format!("keep = {keep}"),
            Some(("grace", _)) => format!("grace = \"{grace}\""),
            _ => l.to_owned(),
        })
        .collect();
    std::fs::write(&env.config, lines.join("\n") + "\n").unwrap();
}

/// Runs the CLI, asserting success; returns stdout.
fn run_ok(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert!(out.status.success(), "{args:?} failed:\nstdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn names(env: &Env, mirror: &str) -> Vec<String> {
    env.catalog().snapshots(Some(mirror)).unwrap().into_iter().map(|s| s.name).collect()
}

/// Syncs `upstream` and returns the name of the snapshot it published.
fn sync_to(env: &Env, upstream: Upstream) -> String {
    env.server.swap(upstream);
    env.sync_ok(&[]);
    env.published(PVE.id).expect("published").name
}

/// Digests of every object the catalog's snapshots reference.
fn referenced(env: &Env) -> BTreeSet<String> {
    let view = env.catalog().load_view(i64::MAX / 2, 0).unwrap();
    view.objects.iter().map(|o| o.sha256.to_hex()).collect()
}

fn pool_names(env: &Env) -> BTreeSet<String> {
    env.pool_objects().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn rollback_through_the_mount_to_apt_clients() {
    let g0 = proxmox(0);
    let env = Env::new(g0.clone(), &[&PVE]);
    let first = sync_to(&env, g0.clone());
    let mnt = Mount::start(&env);
    let nginx = Nginx::start(&mnt.dir);
    let dir = env.dir.path().join("apt");
    std::fs::create_dir_all(&dir).unwrap();
    let source = format!("{}/{} bookworm {}", nginx.base_url().trim_end_matches('/'), PVE.root, PVE.components);
    let apt = AptClient::new(&dir, &source, &env.key);
    apt.update().unwrap();
    let old_lists = apt.listed_packages().unwrap();
    let inrelease = mnt.path("debian/pve/dists/bookworm/InRelease");
    let g1 = proxmox(1);
    sync_to(&env, g1.clone());
    let g1_inrelease = g1.bytes("debian/pve/dists/bookworm/InRelease").unwrap().to_vec();
    wait_for(|| std::fs::read(&inrelease).unwrap() == g1_inrelease);
    let mtime_g1 = std::fs::metadata(&inrelease).unwrap().mtime();
    apt.update().unwrap();
    let new_lists = apt.listed_packages().unwrap();
    assert!(new_lists.iter().any(|p| p.name == "pve-manager" && p.version == "8.1.2"), "{new_lists:?}");

    let out = env.run(&["snapshot", "publish", PVE.id, &first]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("older than the one published now"), "no downgrade warning: {stderr}");
    let g0_inrelease = g0.bytes("debian/pve/dists/bookworm/InRelease").unwrap().to_vec();
    wait_for(|| std::fs::read(&inrelease).unwrap() == g0_inrelease);
    // The older InRelease is served with a newer mtime: If-Modified-Since cannot hide it, and
    // apt fetches it again ...
    assert!(std::fs::metadata(&inrelease).unwrap().mtime() > mtime_g1);
    let seen = nginx.access_log().lines().count();
    apt.update().unwrap();
    let refetched =
        nginx.access_log().lines().skip(seen).any(|l| l.contains("/InRelease HTTP") && l.contains("\" 200 "));
    assert!(refetched, "apt did not fetch InRelease again:\n{}", nginx.access_log());
    // ... but keeps the newer lists it has: apt ignores a Release dated before the one it holds
    // (its downgrade protection), which is what the publish warned about. What those lists name
    // stays downloadable: the superseded snapshot is inside the grace window.
    assert_eq!(apt.listed_packages().unwrap(), new_lists);
    assert!(!apt.download_all().unwrap().is_empty());
    // A client without the newer Release (new, or with its lists cleared) gets the rollback.
    let fresh_dir = env.dir.path().join("apt-fresh");
    std::fs::create_dir_all(&fresh_dir).unwrap();
    let fresh = AptClient::new(&fresh_dir, &source, &env.key);
    fresh.update().unwrap();
    assert_eq!(fresh.listed_packages().unwrap(), old_lists, "a fresh client sees the rolled-back versions");
    assert!(!fresh.download_all().unwrap().is_empty());
    for list in std::fs::read_dir(apt.lists_dir()).unwrap().flatten().filter(|e| e.path().is_file()) {
        std::fs::remove_file(list.path()).unwrap();
    }
    apt.update().unwrap();
    assert_eq!(apt.listed_packages().unwrap(), old_lists, "after clearing its lists");
}

const INRELEASE: &str = "debian/pve/dists/bookworm/InRelease";

/// The one line of `status` about PVE.
fn status_line(env: &Env) -> String {
    let out = run_ok(env, &["status"]);
    out.lines().find(|l| l.starts_with(&format!("{}:", PVE.id))).unwrap_or_else(|| panic!("{out}")).to_owned()
}

/// PVE's entry of `status --json`, every key of it declared by docs/status.schema.json.
fn status_entry(env: &Env) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&run_ok(env, &["status", "--json"])).unwrap();
    let entry = doc.as_array().unwrap().iter().find(|e| e["name"] == PVE.id).expect("PVE in status").clone();
    let schema = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/status.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
    for key in entry.as_object().unwrap().keys() {
        assert!(schema["items"]["properties"].get(key).is_some(), "{key} not in the schema");
    }
    entry
}

#[test]
fn a_rollback_stays_published_until_the_newest_is_published_or_the_mirror_unpinned() {
    // One fixture per generation: signing again would make other InRelease bytes.
    let up: Vec<Upstream> = (0..=3).map(proxmox).collect();
    let env = Env::new(up[0].clone(), &[&PVE]);
    let inrelease = |g: usize| up[g].bytes(INRELEASE).unwrap().to_vec();
    let g0 = sync_to(&env, up[0].clone());
    let g1 = sync_to(&env, up[1].clone());
    assert_ne!(g0, g1);
    let out = run_ok(&env, &["snapshot", "publish", PVE.id, &g0]);
    let pinned = format!("{}: pinned to {g0}", PVE.id);
    assert!(out.contains(&pinned) && out.contains(&format!("snapshot unpin {}", PVE.id)), "{out}");
    let mnt = Mount::start(&env);
    let served = || std::fs::read(mnt.path(INRELEASE)).unwrap();
    assert!(served() == inrelease(0));

    // Upstream moves on: the sync fetches, verifies and records g2, publishes none of it, and
    // succeeds; the mount goes on serving g0 and shows g2 under snapshots/.
    env.server.swap(up[2].clone());
    let out = env.sync_ok(&[]);
    let g2 = names(&env, PVE.id).pop().unwrap();
    assert!(![&g0, &g1].contains(&&g2), "no new snapshot: {out}");
    assert!(out.contains(&format!("{}: new snapshot {g2}, not published: pinned to {g0}", PVE.id)), "{out}");
    assert_eq!(env.published(PVE.id).unwrap().name, g0);
    let catalog = env.catalog();
    let recorded = catalog.snapshot_files(catalog.snapshot_id(PVE.id, &g2).unwrap().unwrap()).unwrap();
    let release = recorded.iter().find(|f| f.path == "dists/bookworm/InRelease").expect("g2 InRelease recorded");
    assert_eq!(release.sha256, Sha256::of(&inrelease(2)));
    let frozen = mnt.path(&format!("snapshots/{}/{g2}/dists/bookworm/InRelease", PVE.id));
    wait_for(|| frozen.exists());
    assert!(std::fs::read(&frozen).unwrap() == inrelease(2), "g2 under snapshots/");
    assert!(served() == inrelease(0), "the pinned snapshot stays served");
    // Upstream unchanged: the next run compares with g2, records nothing and still says why.
    let out = env.sync_ok(&[]);
    assert!(out.contains(&format!("{}: unchanged, pinned to {g0}", PVE.id)), "{out}");
    assert_eq!(names(&env, PVE.id).last(), Some(&g2));
    assert!(status_line(&env).contains(&format!("pinned to {g0}")), "{}", status_line(&env));
    let entry = status_entry(&env);
    assert_eq!(
        (&entry["pinned"], &entry["snapshot"], &entry["status"]),
        (&true.into(), &g0.clone().into(), &"success".into())
    );

    // Publishing the newest snapshot unpins: the next sync publishes upstream's g3.
    let out = run_ok(&env, &["snapshot", "publish", PVE.id, &g2]);
    assert!(out.contains("unpinned"), "{out}");
    wait_for(|| served() == inrelease(2));
    assert!(!status_line(&env).contains("pinned"), "{}", status_line(&env));
    assert_eq!(status_entry(&env)["pinned"], false);
    let g3 = sync_to(&env, up[3].clone());
    assert_eq!(names(&env, PVE.id).last(), Some(&g3));
    wait_for(|| served() == inrelease(3));

    // `snapshot unpin` after a rollback: the view stays until the next sync publishes.
    assert!(run_ok(&env, &["snapshot", "publish", PVE.id, &g1]).contains(&format!("pinned to {g1}")));
    wait_for(|| served() == inrelease(1));
    let out = run_ok(&env, &["snapshot", "unpin", PVE.id]);
    assert!(out.contains("unpinned"), "{out}");
    assert!(run_ok(&env, &["snapshot", "unpin", PVE.id]).contains("not pinned"));
    assert_eq!(env.published(PVE.id).unwrap().name, g1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(served() == inrelease(1), "unpin alone changes no view");
    let latest = sync_to(&env, up[3].clone());
    assert!(latest > g3, "{latest} after {g3}");
    wait_for(|| served() == inrelease(3));
    assert!(!env.run(&["snapshot", "unpin", "no-such-mirror"]).status.success());
}

#[test]
fn retention_keeps_exactly_the_newest_the_published_and_the_grace_window() {
    let env = Env::new(proxmox(0), &[&PVE]);
    set_retention(&env, 3, "0s");
    let mut made = Vec::new();
    for g in 0..=3 {
        std::thread::sleep(NEXT_SECOND);
        made.push(sync_to(&env, proxmox(g)));
    }
    assert_eq!(names(&env, PVE.id), made[1..=3], "keep = 3");
    // keep = 1, then roll back to an older snapshot: it stays although it is not the newest.
    set_retention(&env, 1, "0s");
    std::thread::sleep(NEXT_SECOND);
    run_ok(&env, &["snapshot", "publish", PVE.id, &made[1]]);
    assert_eq!(names(&env, PVE.id), [made[1].clone(), made[3].clone()], "newest + published");
    let list = run_ok(&env, &["snapshot", "list", PVE.id]);
    let line =
        |name: &str| list.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} in\n{list}")).to_owned();
    assert!(line(&made[1]).starts_with("* ") && line(&made[1]).contains("published"), "{list}");
    assert!(line(&made[3]).starts_with("  ") && line(&made[3]).contains("retained"), "{list}");
    assert!(list.lines().next().unwrap().contains("UNIQUE"), "{list}");
    assert!(list.contains(&format!("{}: pinned to {}", PVE.id, made[1])), "{list}");
    // Unpinned, the next sync publishes a new snapshot: the rolled-back one was superseded this
    // second and is still in the (zero) grace window; the previous newest goes.
    run_ok(&env, &["snapshot", "unpin", PVE.id]);
    std::thread::sleep(NEXT_SECOND);
    let g4 = sync_to(&env, proxmox(4));
    assert_eq!(names(&env, PVE.id), [made[1].clone(), g4.clone()]);
    run_ok(&env, &["gc"]);
    assert_eq!(pool_names(&env), referenced(&env), "gc keeps exactly what the retained snapshots reference");
    env.assert_pool_sound();

    // With a grace window, superseded snapshots stay (and gc keeps their objects).
    let env = Env::new(proxmox(0), &[&PVE]);
    set_retention(&env, 1, "48h");
    let made: Vec<String> = (0..=2).map(|g| sync_to(&env, proxmox(g))).collect();
    assert_eq!(names(&env, PVE.id), made);
    let list = run_ok(&env, &["snapshot", "list", PVE.id]);
    let states: Vec<&str> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().find(|w| ["grace", "published"].contains(w)).unwrap_or("?"))
        .collect();
    assert_eq!(states, ["grace", "grace", "published"], "{list}");
    let before = pool_names(&env);
    let gc = run_ok(&env, &["gc"]);
    assert!(gc.contains("deleted 0 objects"), "{gc}");
    assert_eq!(pool_names(&env), before);
}

#[test]
fn gc_beside_a_running_mount_keeps_open_files_readable() {
    let g0 = proxmox(0);
    let env = Env::new(g0.clone(), &[&PVE]);
    set_retention(&env, 1, "0s");
    sync_to(&env, g0.clone());
    let mnt = Mount::start(&env);
    // pve-manager 8.1.0 is in generations 0 and 1 only.
    let rel = "debian/pve/dists/bookworm/pvetest/binary-amd64/pve-manager_8.1.0_amd64.deb";
    let want = g0.bytes(rel).unwrap().to_vec();
    let sha = Sha256::of(&want);
    let mut open = std::fs::File::open(mnt.path(rel)).unwrap();
    let mut first = [0u8; 16];
    open.read_exact(&mut first).unwrap();
    for g in 1..=3 {
        std::thread::sleep(NEXT_SECOND);
        sync_to(&env, proxmox(g));
    }
    assert!(!referenced(&env).contains(&sha.to_hex()), "8.1.0 still referenced");
    assert!(env.object_path(&sha).exists(), "pruned objects stay until gc");
    let dry = run_ok(&env, &["gc", "--dry-run"]);
    assert!(dry.contains(&format!("delete {sha}")) && dry.contains("would delete"), "{dry}");
    assert!(env.object_path(&sha).exists(), "--dry-run deleted");
    let out = run_ok(&env, &["gc"]);
    assert!(out.starts_with("gc: deleted ") && !out.starts_with("gc: deleted 0 "), "{out}");
    assert!(!env.object_path(&sha).exists());
    assert_eq!(pool_names(&env), referenced(&env));
    // The file opened before gc reads on; the view no longer names it; the rest is served.
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).unwrap();
    assert!([&first[..], &rest].concat() == want, "open file changed after gc");
    wait_for(|| !mnt.path(rel).exists());
    let g3 = proxmox(3);
    for (path, file) in g3.files.iter().filter(|(p, _)| p.starts_with("debian/pve/") && p.ends_with(".deb")) {
        assert!(std::fs::read(mnt.path(path)).unwrap() == *file.bytes, "{path} through the mount");
    }
}

/// Makes the pool object of `sha` writable, applies `f` to its path, makes it read-only again.
fn tamper(env: &Env, sha: &Sha256, f: impl FnOnce(&std::path::Path)) {
    let path = env.object_path(sha);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    f(&path);
    if path.exists() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
}

fn flip_bit(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn verify_names_damaged_paths_and_sync_verify_repairs_them() {
    let up = proxmox(0);
    let env = Env::new(up.clone(), &[&PVE]);
    let snap = sync_to(&env, up.clone());
    let root = |p: &str| format!("{}/{p}", PVE.root);
    // pve-firmware is in both components: one object, two paths.
    let firmware = ["pve-no-subscription", "pvetest"]
        .map(|c| format!("dists/bookworm/{c}/binary-amd64/pve-firmware_3.9-1_all.deb"));
    let cases = [
        (firmware[0].clone(), "flip"),
        ("dists/bookworm/pvetest/binary-amd64/pve-manager_8.1.1_amd64.deb".to_owned(), "delete"),
        ("dists/bookworm/InRelease".to_owned(), "flip"),
        ("dists/bookworm/pvetest/binary-amd64/Packages.gz".to_owned(), "delete"),
    ];
    let mut damaged = Vec::new();
    for (path, how) in &cases {
        let sha = Sha256::of(up.bytes(&root(path)).unwrap());
        tamper(&env, &sha, |p| if *how == "flip" { flip_bit(p) } else { std::fs::remove_file(p).unwrap() });
        damaged.push(sha);
    }
    let out = env.run(&["verify"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(text(&out.stderr).trim().lines().count(), 1, "{}", text(&out.stderr));
    for sha in &damaged {
        assert!(stdout.contains(&sha.to_hex()), "{sha} not reported:\n{stdout}");
    }
    for path in cases.iter().map(|(p, _)| p).chain(&firmware[1..]) {
        let line = format!("used by {} {snap} (published): {path}", PVE.id);
        assert!(stdout.contains(&line), "no {line:?} in\n{stdout}");
    }
    assert!(stdout.contains("missing from the pool") && stdout.contains("damaged: content hashes to"), "{stdout}");
    assert_eq!(env.run(&["verify", PVE.id]).status.code(), Some(1));
    assert!(!env.run(&["verify", "no-such-mirror"]).status.success());

    // Repair with the mount running: it serves the repaired objects, no new snapshot is needed.
    let mnt = Mount::start(&env);
    env.server.reset_hits();
    let out = env.sync_ok(&["--verify"]);
    assert!(out.contains("pve_bookworm: unchanged") && out.contains("4 damaged or missing pool objects"), "{out}");
    assert_eq!(
        env.server.hits(&root(&cases[0].0)) + env.server.hits(&root(&firmware[1])),
        1,
        "firmware re-fetched once"
    );
    assert_eq!(names(&env, PVE.id), std::slice::from_ref(&snap));
    for (path, bytes) in env.published_files(PVE.id) {
        assert!(bytes == up.bytes(&root(&path)).unwrap(), "{path} not repaired");
    }
    for (path, _) in &cases {
        assert!(std::fs::read(mnt.path(&root(path))).unwrap() == up.bytes(&root(path)).unwrap(), "{path} via mount");
    }
    env.assert_pool_sound();
    assert!(run_ok(&env, &["verify"]).contains("0 damaged or missing"));
    // Nothing damaged: the same snapshot stays, nothing is re-downloaded.
    env.server.reset_hits();
    let out = env.sync_ok(&["--verify"]);
    assert!(out.contains("pve_bookworm: unchanged") && !out.contains("downloaded again"), "{out}");
    assert!(!env.server.requests().iter().any(|r| r.path.ends_with(".deb")));
    assert_eq!(names(&env, PVE.id), [snap]);
}

/// `snapshot diff` text lines, trimmed.
fn diff_lines(env: &Env, id: &str, a: &str, b: &str) -> Vec<String> {
    run_ok(env, &["snapshot", "diff", id, a, b])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn diff_reports_package_and_file_changes() {
    let env = Env::new(proxmox(0), &[&PVE]);
    let a = sync_to(&env, proxmox(0));
    let b = sync_to(&env, proxmox(3));
    let lines = diff_lines(&env, PVE.id, &a, &b);
    for want in [
        "pvetest/amd64:",
        "upgraded pve-manager [amd64] 8.1.0, 8.1.1 -> 8.1.3, 8.1.4",
        "added proxmox-kernel-helper [all] 8.1.0",
        "removed pve-legacy-tool [amd64] 1.0-1",
        "pve-no-subscription/amd64:",
        "upgraded pve-manager [amd64] 8.1.0 -> 8.1.2, 8.1.3",
    ] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {lines:#?}");
    }
    let back = diff_lines(&env, PVE.id, &b, &a);
    assert!(back.iter().any(|l| l == "downgraded pve-manager [amd64] 8.1.3, 8.1.4 -> 8.1.0, 8.1.1"), "{back:#?}");
    assert!(back.iter().any(|l| l == "added pve-legacy-tool [amd64] 1.0-1"), "{back:#?}");
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&env, &["snapshot", "diff", PVE.id, &a, &b, "--json"])).unwrap();
    assert_eq!(json["kind"], "packages");
    let pvetest = json["indices"].as_array().unwrap().iter().find(|i| i["component"] == "pvetest").unwrap();
    let manager = pvetest["changes"].as_array().unwrap().iter().find(|c| c["name"] == "pve-manager").unwrap();
    assert_eq!(manager["change"], "upgraded");
    assert_eq!(manager["new"], serde_json::json!(["8.1.3", "8.1.4"]));

    // Debian layout: xz/gz indices, pool/, components main and contrib.
    let env = Env::new(Upstream::debian(0, signing_key()).unwrap(), &[&DEBIAN]);
    env.sync_ok(&[]);
    let a = env.published(DEBIAN.id).unwrap().name;
    env.server.swap(Upstream::debian(3, signing_key()).unwrap());
    env.sync_ok(&[]);
    let b = env.published(DEBIAN.id).unwrap().name;
    let lines = diff_lines(&env, DEBIAN.id, &a, &b);
    for want in [
        "main/amd64:",
        "upgraded base-files [amd64] 12.4+deb12u0 -> 12.4+deb12u3",
        "added newtool [amd64] 1.0-1",
        "removed oldtool [amd64] 0.9-2",
        "contrib/amd64:",
        "upgraded foo-installer [amd64] 1.0 -> 1.3",
    ] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {lines:#?}");
    }
    assert!(!lines.iter().any(|l| l == "main/all:"), "unchanged index listed: {lines:#?}");

    // Trees: files added, removed, changed.
    let mut env = Env::new(tree_fixture::trees(0, signing_key()), &[]);
    let block = format!("[[tree]]\nid = \"iso\"\nurl = \"{}/iso/\"\n", env.server.base_url());
    env.write_config(&[], &block);
    env.sync_ok(&[]);
    let a = env.published("iso").unwrap().name;
    env.server.swap(tree_fixture::trees(1, signing_key()));
    env.sync_ok(&[]);
    let b = env.published("iso").unwrap().name;
    let out = run_ok(&env, &["snapshot", "diff", "iso", &a, &b]);
    assert!(out.contains("added      proxmox-ve_8.3-1.iso") && out.contains("changed    SHA256SUMS"), "{out}");
}

#[test]
fn rollback_warns_when_the_release_has_expired() {
    let mut g0 = proxmox(0);
    let i = g0.suites.iter().position(|s| s.root == PVE.root).unwrap();
    let release_path = g0.suites[i].release_path();
    let release = text(g0.bytes(&release_path).unwrap());
    // Valid for a few seconds from now: a sync refuses an expired Release, so it must still be
    // valid when synced, and has expired by the time it is published again.
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let until_unix = until.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let field = format!("\nValid-Until: {}\nArchitectures:", httpdate::fmt_http_date(until));
    let expiring = release.replacen("\nArchitectures:", &field, 1);
    assert_ne!(expiring, release);
    g0.sign_release(i, expiring.as_bytes(), signing_key()).unwrap();
    let env = Env::new(g0.clone(), &[&PVE]);
    let old = sync_to(&env, g0);
    let new = sync_to(&env, proxmox(1));
    while std::time::SystemTime::now() <= until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = env.run(&["snapshot", "publish", PVE.id, &old]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let want = format!("valid until {}", pmirror_fs::catalog::snapshot_name(until_unix));
    assert!(stderr.contains("warning") && stderr.contains(&want), "{stderr}");
    assert_eq!(env.published(PVE.id).unwrap().name, old, "published despite the warning");
    let out = env.run(&["snapshot", "publish", PVE.id, &new]);
    assert!(out.status.success() && !text(&out.stderr).contains("warning"), "{}", text(&out.stderr));
}
