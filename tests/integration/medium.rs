//! Issue 14: offline media for air-gapped clusters, end to end through the real CLI on a real
//! exFAT filesystem (exfatprogs + exfat-fuse on a loop device): two apt mirrors (Debian and
//! Proxmox layouts) and the ISO tree exported with `medium sync`, the upstream stopped, then on
//! a second store `medium import` → mount → nginx → the real apt client, and the medium mounted
//! directly (`mount --store`) → apt through `file:` sources; incremental sync measured against
//! the delta; errors (wrong medium, not mounted, damaged objects, a full medium).

use crate::harness::{text, Env, Mount, DEBIAN, PVE};
use crate::support::apt::AptClient;
use crate::support::exfat::Exfat;
use crate::support::fixture::Upstream;
use crate::support::http::TestServer;
use crate::support::nginx::Nginx;
use crate::support::signing_key;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

pub const ISO: &str = "iso/proxmox-ve_8.2-1.iso";
const MIB: u64 = 1 << 20;

/// Both apt layouts and the ISO/template trees at `generation`.
pub fn upstream(generation: u32) -> Upstream {
    let mut up = crate::view::both(generation);
    up.files.extend(crate::tree_fixture::trees(generation, signing_key()).files);
    up
}

/// The connected side's config: PVE + Debian mirrors, the `iso` tree, and medium `id` at
/// `path` carrying all three (`extra` adds keys to the `[[medium]]`).
pub fn configure(env: &mut Env, id: &str, path: &Path, extra: &str) {
    let base = env.server.base_url();
    let text = format!(
        "[[tree]]\nid = \"iso\"\nurl = \"{}/iso/\"\nkey = \"{}\"\n\n[[medium]]\nid = \"{id}\"\npath = \"{}\"\n\
         mirrors = [\"{}\", \"{}\", \"iso\"]\n{extra}\n",
        base.trim_end_matches('/'),
        env.key.display(),
        path.display(),
        PVE.id,
        DEBIAN.id,
    );
    env.write_config(&[&PVE, &DEBIAN], &text);
}

/// A synced connected side with medium `usb1` configured on a fresh exFAT image of `size`.
pub fn connected(size: u64) -> (Env, Exfat) {
    let medium = Exfat::new(size, "USB1");
    let mut env = Env::new(upstream(0), &[&PVE, &DEBIAN]);
    configure(&mut env, "usb1", &medium.path(), "");
    env.sync_ok(&[]);
    (env, medium)
}

/// An offline side: a store and a config with no mirror at all.
pub fn offline() -> Env {
    let mut env = Env::new(Upstream::proxmox(0, signing_key()).expect("fixture"), &[]);
    env.write_config(&[], "");
    // No upstream at all on this side: the server serves an empty directory.
    drop(std::mem::replace(&mut env.server, TestServer::start_dir(env.dir.path().join("nothing"))));
    env
}

pub fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

pub fn failed(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded:\n{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{what}: not one line:\n{err}");
    err
}

pub fn json(out: Output, what: &str) -> serde_json::Value {
    serde_json::from_str(&ok(out, what)).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

/// Every file under `dir` with its size and mtime (what "nothing was written" compares).
pub fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap()) {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            assert!(!meta.file_type().is_symlink(), "a symlink on the medium: {}", e.path().display());
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                assert!(meta.is_file(), "a special file on the medium: {}", e.path().display());
                out.insert(e.path().strip_prefix(dir).unwrap().to_owned(), (meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out
}

/// A real (tiny) Debian package named like pmirror-fs's, built with dpkg-deb.
pub fn make_deb(dir: &Path) -> PathBuf {
    let root = dir.join("debroot");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/doc/pmirror-fs")).unwrap();
    std::fs::write(root.join("usr/share/doc/pmirror-fs/README"), "pmirror-fs\n").unwrap();
    let control = "Package: pmirror-fs\nVersion: 0.1.0-1\nArchitecture: amd64\nMaintainer: test <t@example.org>\n\
                   Description: test package\n";
    std::fs::write(root.join("DEBIAN/control"), control).unwrap();
    let deb = dir.join("pmirror-fs_0.1.0-1_amd64.deb");
    let out =
        std::process::Command::new("dpkg-deb").args(["--build", "--root-owner-group"]).arg(&root).arg(&deb).output();
    ok(out.expect("dpkg-deb"), "dpkg-deb --build");
    deb
}

/// `(mirror/name)` of every snapshot `medium status --json` lists.
pub fn held(status: &serde_json::Value) -> BTreeSet<String> {
    let snaps = status["snapshots"].as_array().expect("snapshots");
    snaps.iter().map(|s| format!("{}/{}", s["mirror"].as_str().unwrap(), s["name"].as_str().unwrap())).collect()
}

fn apt_through(dir: &Path, sources: &Path) -> AptClient {
    let client = AptClient::with_sources(dir, sources);
    client.update().unwrap_or_else(|e| panic!("apt-get update: {e}"));
    let debs = client.download_all().unwrap_or_else(|e| panic!("apt-get download: {e}"));
    assert!(debs.len() >= 4, "apt downloaded only {} packages", debs.len());
    client
}

#[test]
fn a_medium_on_exfat_carries_two_mirrors_and_the_iso_tree_to_an_offline_cluster() {
    let (mut env, medium) = connected(96 * MIB);
    let m = medium.path();
    let m_arg = m.to_str().unwrap();
    let deb = make_deb(env.dir.path());
    let diff = json(env.run(&["medium", "diff", "usb1", "--json"]), "medium diff");
    assert_eq!(diff["snapshots_added"].as_array().unwrap().len(), 3, "{diff}");
    assert!(diff["add"]["bytes"].as_u64().unwrap() > 6 * MIB, "{diff}");
    assert!(listing(&m).is_empty(), "medium diff wrote to the medium");
    let report = json(env.run(&["medium", "sync", "usb1", "--deb", deb.to_str().unwrap(), "--json"]), "medium sync");
    assert_eq!(report["copied"], diff["add"], "the sync copied what diff said");
    let again = json(env.run(&["medium", "diff", "usb1", "--json"]), "medium diff after sync");
    assert_eq!(again["add"]["files"], 0, "{again}");
    let status = json(env.run(&["medium", "status", "usb1", "--json"]), "medium status");
    let published: BTreeSet<String> =
        [PVE.id, DEBIAN.id, "iso"].iter().map(|id| format!("{id}/{}", env.published(id).unwrap().name)).collect();
    assert_eq!(held(&status), published);
    assert_eq!(status["deb"], "pmirror-fs_0.1.0-1_amd64.deb");
    assert_eq!(status["keys"].as_array().unwrap().len(), 3, "{status}");
    let files = listing(&m);
    for name in files.keys().flat_map(|p| p.iter()) {
        let name = name.to_str().unwrap();
        assert!(name.len() <= 255 && !name.contains([':', '"', '*', '<', '>', '?', '\\', '|']), "{name}");
    }
    assert!(files.contains_key(Path::new("README.txt")) && files.contains_key(Path::new("pmirror-medium.json")));
    let iso_bytes = upstream(0).bytes(ISO).unwrap().to_vec();

    // The upstream goes away: the offline side has only the medium.
    drop(std::mem::replace(&mut env.server, TestServer::start_dir(env.dir.path().join("nothing"))));
    // From here on the offline side only reads the medium: import, verify, status, mount, sources.
    let before = listing(&m);
    let off = offline();
    let imported = json(off.run(&["medium", "import", m_arg, "--json"]), "medium import");
    assert_eq!(imported["added"].as_array().unwrap().len(), 3, "{imported}");
    ok(off.run(&["verify"]), "verify of the offline store");
    for id in [PVE.id, DEBIAN.id, "iso"] {
        let (here, there) = (off.published(id).expect("published offline"), env.published(id).unwrap());
        assert_eq!((&here.name, here.files, here.release_sha256), (&there.name, there.files, there.release_sha256));
    }
    let rows = off.catalog().mirrors().unwrap();
    let pve = rows.iter().find(|r| r.id == PVE.id).unwrap();
    let connected = env.catalog().mirrors().unwrap().into_iter().find(|r| r.id == PVE.id).unwrap();
    assert_eq!(
        (pve.state.as_str(), pve.last_success),
        ("success", connected.last_success),
        "the run history came along"
    );
    let twice = json(off.run(&["medium", "import", m_arg, "--json"]), "medium import again");
    assert_eq!((twice["added"].as_array().unwrap().len(), twice["copied"]["files"].as_u64()), (0, Some(0)));
    {
        let mount = Mount::start(&off);
        let nginx = Nginx::start(&mount.dir);
        let srcs = off.dir.path().join("apt-http");
        let args = ["medium", "sources", off.store.to_str().unwrap(), "--base-url", &nginx.base_url(), "-o"];
        ok(off.run(&[&args[..], &[srcs.to_str().unwrap(), "--key-dir", srcs.to_str().unwrap()]].concat()), "sources");
        let stanzas = std::fs::read_to_string(srcs.join(format!("pmirror-fs-{}.sources", PVE.id))).unwrap();
        assert!(stanzas.contains("Suites: bookworm\n") && stanzas.contains("Signed-By: "), "{stanzas}");
        assert!(!stanzas.to_lowercase().contains("trusted"), "{stanzas}");
        let client = apt_through(&off.dir.path().join("apt-offline"), &srcs);
        drop(client);
        // By-hash names came along: every index of the published PVE snapshot under its digest.
        for (path, bytes) in env.published_files(PVE.id).iter().filter(|(p, _)| p.ends_with("/Packages.gz")) {
            let dir = Path::new(path).parent().unwrap();
            let by_hash = dir.join("by-hash/SHA256").join(pmirror_fs::digest::Sha256::of(bytes).to_hex());
            let got = crate::support::client::get(&format!("{}/{}/{}", nginx.base_url(), PVE.root, by_hash.display()));
            assert_eq!(got.map(|r| (r.status, r.body == *bytes)).ok(), Some((200, true)), "{}", by_hash.display());
        }
        let iso = crate::support::client::get(&format!("{}/{ISO}", nginx.base_url())).expect("GET iso");
        assert_eq!((iso.status, iso.body == iso_bytes), (200, true), "the ISO through the offline mirror");
    }

    ok(off.run(&["verify", "--store", m_arg]), "verify --store of the medium");
    ok(off.run(&["medium", "status", m_arg]), "medium status of the medium by path");
    // The medium served directly: read-only, nothing written to it.
    let direct = offline();
    let mount = Mount::start_with(&direct, "direct", &["--store", m_arg]);
    assert_eq!(std::fs::read(mount.path(ISO)).unwrap(), iso_bytes, "the ISO from the medium's mount");
    let srcs = direct.dir.path().join("apt-file");
    let base = format!("file://{}", mount.dir.display());
    ok(
        direct.run(&[
            "medium",
            "sources",
            m_arg,
            "--base-url",
            &base,
            "-o",
            srcs.to_str().unwrap(),
            "--key-dir",
            srcs.to_str().unwrap(),
        ]),
        "sources",
    );
    apt_through(&direct.dir.path().join("apt-direct"), &srcs);
    drop(mount);
    assert_eq!(listing(&m), before, "importing, verifying or serving the medium wrote to it");
    assert!(!direct.store.exists(), "mount --store created the configured store");
}

#[test]
fn sources_disable_the_valid_until_check_only_for_a_release_that_carries_one() {
    let mut up = upstream(0);
    let i = up.suites.iter().position(|s| s.root == PVE.root).unwrap();
    let release = text(up.bytes(&up.suites[i].release_path()).unwrap());
    // Valid for a few seconds: synced while valid, expired by the time apt reads the copy.
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(4);
    let field = format!("\nValid-Until: {}\nArchitectures:", httpdate::fmt_http_date(until));
    up.sign_release(i, release.replacen("\nArchitectures:", &field, 1).as_bytes(), signing_key()).unwrap();
    let mut env = Env::new(up, &[&PVE, &DEBIAN]);
    let dir = env.dir.path().join("plain-medium");
    std::fs::create_dir(&dir).unwrap();
    configure(&mut env, "disk", &dir, "");
    env.sync_ok(&[]);
    ok(env.run(&["medium", "sync", "disk", "--init"]), "medium sync --init into a directory");
    let d = dir.to_str().unwrap();
    let direct = offline();
    let mount = Mount::start_with(&direct, "direct", &["--store", d]);
    let srcs = direct.dir.path().join("apt-src");
    let base = format!("file://{}", mount.dir.display());
    ok(
        direct.run(&[
            "medium",
            "sources",
            d,
            "--base-url",
            &base,
            "-o",
            srcs.to_str().unwrap(),
            "--key-dir",
            srcs.to_str().unwrap(),
        ]),
        "sources",
    );
    let pve = std::fs::read_to_string(srcs.join(format!("pmirror-fs-{}.sources", PVE.id))).unwrap();
    let debian = std::fs::read_to_string(srcs.join(format!("pmirror-fs-{}.sources", DEBIAN.id))).unwrap();
    assert!(pve.contains("Check-Valid-Until: no\n") && pve.contains("carries Valid-Until"), "{pve}");
    assert!(!debian.contains("Valid-Until"), "{debian}");
    // Well past it: apt took a Release expired under ~1.5 s ago as valid in 2 of 6 runs here.
    while std::time::SystemTime::now() <= until + std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The real client: the stanza as written reads the expired copy; without the line it refuses.
    apt_through(&direct.dir.path().join("apt-ok"), &srcs);
    std::fs::write(srcs.join(format!("pmirror-fs-{}.sources", PVE.id)), pve.replace("Check-Valid-Until: no\n", ""))
        .unwrap();
    let strict = AptClient::with_sources(&direct.dir.path().join("apt-strict"), &srcs);
    let out = strict.update_raw().expect("apt-get update");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("expired"), "apt took an expired Release without Check-Valid-Until: no:\n{said}");
}
