//! Issue 2: the sync engine end to end through the real CLI against signed fixture upstreams.

use crate::harness::{text, Env, DEBIAN, PBS_CLIENT, PVE};
use crate::support::fixture::{Fault, Upstream};
use crate::support::{signing_key, write_wrong_public_key, wrong_key};
use pmirror_fs::digest::Sha256;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

fn proxmox(generation: u32) -> Upstream {
    Upstream::proxmox(generation, signing_key()).expect("proxmox fixture")
}

fn debian(generation: u32) -> Upstream {
    Upstream::debian(generation, signing_key()).expect("debian fixture")
}

/// Every file an apt client fetches from `root` (no by-hash copies: the view synthesizes them).
fn client_files(up: &Upstream, root: &str) -> Vec<String> {
    up.files
        .keys()
        .filter(|p| p.starts_with(&format!("{root}/")) && !p.contains("/by-hash/"))
        .filter(|p| !(root == "debian" && (p.starts_with("debian/pve/") || p.starts_with("debian/pbs-client/"))))
        .map(|p| p[root.len() + 1..].to_owned())
        .collect()
}

#[test]
fn full_sync_is_byte_identical_and_deduplicated() {
    let up = proxmox(0);
    let env = Env::new(up.clone(), &[&PVE, &PBS_CLIENT]);
    let out = env.sync_ok(&[]);
    assert!(out.contains("pve_bookworm: new snapshot"), "{out}");
    let mut unique = HashMap::new();
    for spec in [&PVE, &PBS_CLIENT] {
        let files = env.published_files(spec.id);
        for path in client_files(&up, spec.root) {
            let want = up.bytes(&format!("{}/{path}", spec.root)).unwrap();
            let got = files.get(&path).unwrap_or_else(|| panic!("{} lacks {path}", spec.id));
            assert!(got.as_slice() == want, "{}: {path} differs from upstream", spec.id);
            unique.insert(Sha256::of(want), want.len());
        }
    }
    // Dedup: pool bytes equal the unique bytes, and each shared .deb was downloaded once.
    let pool: u64 = env.pool_objects().iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(pool, unique.values().map(|n| *n as u64).sum::<u64>());
    assert_eq!(env.pool_objects().len(), unique.len());
    let mut per_content: HashMap<Sha256, Vec<String>> = HashMap::new();
    for p in up.deb_paths() {
        per_content.entry(Sha256::of(up.bytes(p).unwrap())).or_default().push(p.to_owned());
    }
    assert!(per_content.values().any(|paths| paths.len() > 1), "fixture has no shared .deb");
    for paths in per_content.values() {
        let fetched: usize = paths.iter().map(|p| env.server.hits(p)).sum();
        assert_eq!(fetched, 1, "{paths:?} fetched {fetched} times");
    }
    env.assert_pool_sound();
}

#[test]
fn debian_layout_with_by_hash_xz_translation_contents() {
    let up = debian(0);
    let env = Env::new(up.clone(), &[&DEBIAN]);
    env.sync_ok(&[]);
    let files = env.published_files(DEBIAN.id);
    for path in client_files(&up, "debian") {
        let got = files.get(&path).unwrap_or_else(|| panic!("missing {path}"));
        assert!(got.as_slice() == up.bytes(&format!("debian/{path}")).unwrap(), "{path} differs");
    }
    for must in ["dists/bookworm/main/i18n/Translation-en.xz", "dists/bookworm/main/Contents-amd64.gz"] {
        assert!(files.contains_key(must), "{must} not mirrored");
    }
    assert!(files.keys().any(|p| p.starts_with("pool/main/")));
    // Acquire-By-Hash: indices were fetched through their by-hash URLs.
    let by_hash = env.server.requests().iter().filter(|r| r.path.contains("/by-hash/SHA256/")).count();
    assert!(by_hash > 0, "no by-hash request");
    env.assert_pool_sound();
}

#[test]
fn unchanged_upstream_fetches_nothing_and_moved_upstream_only_new_objects() {
    let env = Env::new(proxmox(0), &[&PVE, &PBS_CLIENT]);
    env.sync_ok(&[]);
    let first = env.published(PVE.id).unwrap();
    env.server.reset_hits();
    let out = env.sync_ok(&[]);
    assert!(out.contains("pve_bookworm: unchanged"), "{out}");
    let paths: BTreeSet<String> = env.server.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().all(|p| p.ends_with("/InRelease")), "unchanged sync fetched {paths:?}");
    assert_eq!(env.published(PVE.id).unwrap(), first);
    assert_eq!(env.catalog().snapshots(Some(PVE.id)).unwrap().len(), 1);

    // Upstream moves on: a new snapshot; only objects the pool lacks are downloaded.
    let next = proxmox(1);
    let before: BTreeSet<String> = env.pool_objects().into_iter().map(|(n, _)| n).collect();
    env.server.swap(next.clone());
    env.server.reset_hits();
    let out = env.sync_ok(&[]);
    assert!(out.contains("pve_bookworm: new snapshot"), "{out}");
    assert_ne!(env.published(PVE.id).unwrap().name, first.name);
    for r in env.server.requests() {
        if r.path.ends_with(".deb") {
            let sha = Sha256::of(next.bytes(&r.path).unwrap()).to_hex();
            assert!(!before.contains(&sha), "{} was already in the pool but fetched again", r.path);
        }
    }
    assert!(env.server.requests().iter().any(|r| r.path.ends_with(".deb")), "generation 1 brought no new .deb");
    env.assert_pool_sound();
}

/// A mirror synced at generation 0, then upstream broken at generation 1.
fn broken_env(break_it: impl FnOnce(&mut Upstream, &Env)) -> (Env, String) {
    let env = Env::new(proxmox(0), &[&PVE]);
    env.sync_ok(&[]);
    let before = env.published(PVE.id).unwrap().name;
    let mut next = proxmox(1);
    break_it(&mut next, &env);
    env.server.swap(next);
    (env, before)
}

/// The run fails with a one-line reason naming the mirror and `file_hint`, the published
/// snapshot stays, nothing unverified reached the pool.
fn assert_refused(env: &Env, before: &str, file_hint: &str, reason_hint: &str) {
    let out = env.run(&["sync"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "sync succeeded; stdout {}", text(&out.stdout));
    let line = stderr
        .lines()
        .find(|l| l.starts_with("pmirror-fs: mirror pve_bookworm: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(line.contains(file_hint), "error line {line:?} does not name {file_hint}");
    assert!(line.to_lowercase().contains(reason_hint), "error line {line:?} does not say {reason_hint}");
    assert_eq!(env.published(PVE.id).unwrap().name, before, "published snapshot changed");
    env.assert_pool_sound();
}

#[test]
fn bad_signatures_are_refused() {
    let cases: &[(&str, Fault, &str, &str)] = &[
        ("unsigned", Fault::Unsigned, "Release", "unsigned"),
        ("tampered", Fault::TamperedInRelease, "InRelease", "signature"),
    ];
    for (name, fault, file, reason) in cases {
        let (env, before) = broken_env(|up, _| {
            up.apply(*fault, signing_key()).unwrap();
        });
        eprintln!("case {name}");
        assert_refused(&env, &before, file, reason);
    }
    let (env, before) = broken_env(|up, _| up.resign(wrong_key()).unwrap());
    assert_refused(&env, &before, "InRelease", "");
    // A config trusting the wrong key refuses the correctly signed upstream too.
    let mut env = Env::new(proxmox(0), &[&PVE]);
    env.key = write_wrong_public_key(env.dir.path());
    env.write_config(&[&PVE], "");
    let out = env.run(&["sync"]);
    assert!(!out.status.success());
    assert!(env.published(PVE.id).is_none());
}

/// A correctly signed Release whose Valid-Until has passed (a stale upstream, or an old Release
/// replayed) is refused; one still valid is taken.
#[test]
fn expired_release_is_refused() {
    let with_valid_until = |up: &mut Upstream, until: &str| {
        let index = up.suites.iter().position(|s| s.root == PVE.root).expect("pve suite");
        let release = text(up.bytes(&up.suites[index].release_path()).unwrap());
        let (head, tail) = release.split_once("\nDate: ").expect("Date field");
        let (date, rest) = tail.split_once('\n').expect("Date line");
        let patched = format!("{head}\nDate: {date}\nValid-Until: {until}\n{rest}");
        up.sign_release(index, patched.as_bytes(), signing_key()).unwrap();
    };
    let (env, before) = broken_env(|up, _| with_valid_until(up, "Sat, 01 Jan 2000 00:00:00 UTC"));
    assert_refused(&env, &before, "InRelease", "expired");
    let mut next = proxmox(1);
    with_valid_until(&mut next, "Fri, 01 Jan 2100 00:00:00 UTC");
    env.server.swap(next);
    env.sync_ok(&[]);
    assert_ne!(env.published(PVE.id).unwrap().name, before);
}

#[test]
fn bad_indices_and_packages_are_refused() {
    let cases: &[(Fault, &str, &str)] = &[
        (Fault::PackagesHashMismatch, "Packages", "larger than the declared"),
        (Fault::MalformedRelease, "Release", ""),
        (Fault::MalformedPackages, "Packages", ""),
    ];
    for (fault, file, reason) in cases {
        eprintln!("case {fault:?}");
        let (env, before) = broken_env(|up, _| {
            up.apply(*fault, signing_key()).unwrap();
        });
        assert_refused(&env, &before, file, reason);
    }
}

/// A hostile `Filename` (`../../../../etc/passwd`, `/etc/passwd`) in a signed Packages index:
/// `apt update` reads the index and only that package cannot be downloaded, so the mirror syncs
/// the rest, leaves the package out with a warning naming the index and stanza, and writes
/// nothing outside its store.
#[test]
fn hostile_filenames_leave_their_package_out() {
    for (fault, reason) in [(Fault::FilenameParentDir, "`..`"), (Fault::FilenameAbsolute, "absolute")] {
        let (env, before) = broken_env(|up, _| {
            up.apply(fault, signing_key()).unwrap();
        });
        let out = env.sync_ok(&[]);
        let warning = out.lines().find(|l| l.contains("warning:")).unwrap_or_else(|| panic!("{fault:?}: {out}"));
        assert!(warning.contains("Packages") && warning.contains(reason) && warning.contains("left out"), "{warning}");
        let published = env.published(PVE.id).unwrap();
        assert_ne!(published.name, before, "{fault:?}: the rest of the suite is published");
        let files = env.published_files(PVE.id);
        assert!(files.keys().all(|p| !p.contains("etc/passwd")), "{fault:?}");
        env.assert_pool_sound();
    }
}

/// A .deb of pve at generation 1 whose content generation 0 did not have (so a sync must download it).
fn new_deb() -> String {
    let g0 = proxmox(0);
    let old: BTreeSet<Sha256> = g0.deb_paths().iter().map(|p| Sha256::of(g0.bytes(p).unwrap())).collect();
    let g1 = proxmox(1);
    let path = g1
        .deb_paths()
        .into_iter()
        .find(|p| p.starts_with("debian/pve/") && !old.contains(&Sha256::of(g1.bytes(p).unwrap())));
    path.expect("generation 1 adds new content").to_owned()
}

#[test]
fn transfer_faults() {
    // Truncated body and oversized body fail; nothing partial reaches the pool.
    for kind in ["truncate", "oversize"] {
        let (env, before) = broken_env(|_, _| {});
        let deb = new_deb();
        match kind {
            "truncate" => env.server.truncate(&deb, 100),
            _ => env.server.oversize(&deb),
        }
        assert_refused(&env, &before, ".deb", if kind == "truncate" { "truncated" } else { "larger" });
    }
    // A .deb whose bytes differ from what Packages declares (same size): never enters the pool.
    let deb = new_deb();
    let mut corrupted = Vec::new();
    let (env, before) = broken_env(|up, _| {
        let file = up.get(&deb).unwrap().clone();
        let mut bytes = file.bytes.to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        corrupted = bytes.clone();
        up.put(&deb, bytes, file.mtime);
    });
    assert_refused(&env, &before, ".deb", "sha256 mismatch");
    assert!(!env.object_path(&Sha256::of(&corrupted)).exists());
    // 404 on a required index (every Packages variant).
    let (env, before) = broken_env(|_, _| {});
    for p in proxmox(1).packages_indices() {
        for suffix in ["", ".gz", ".xz"] {
            env.server.fail_always(&format!("{p}{suffix}"), 404);
        }
    }
    assert_refused(&env, &before, "Packages", "404");
    // 500 twice, then success: retried.
    let (env, before) = broken_env(|_, _| {});
    let deb = new_deb();
    env.server.fail_next(&deb, 500, 2);
    env.sync_ok(&[]);
    assert_ne!(env.published(PVE.id).unwrap().name, before);
    assert_eq!(env.server.hits(&deb), 3);
}

#[test]
fn malformed_config_names_the_line() {
    let env = Env::new(proxmox(0), &[&PVE]);
    let good = std::fs::read_to_string(&env.config).unwrap();
    let line = good.lines().position(|l| l.starts_with("retries")).unwrap() + 1;
    std::fs::write(&env.config, good.replace("retries = 3", "retries = 3\nretrys = 4")).unwrap();
    for args in [&["config", "check"][..], &["sync"][..]] {
        let out = env.run(args);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&format!("config.toml:{}", line + 1)) && err.contains("retrys"), "{err}");
    }
}

#[test]
fn second_sync_while_one_runs_exits_at_once() {
    let (env, before) = broken_env(|_, _| {});
    let deb = new_deb();
    env.server.delay(&deb, Duration::from_secs(4));
    let mut first = env.cmd(&["sync"]).spawn().unwrap();
    wait_for(|| env.server.hits(&deb) > 0);
    let t = std::time::Instant::now();
    let out = env.run(&["sync"]);
    assert!(t.elapsed() < Duration::from_secs(2), "second sync waited");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert_eq!(env.published(PVE.id).unwrap().name, before);
    assert!(first.wait().unwrap().success());
}

#[test]
fn kill_during_download_leaves_published_view_and_recovers() {
    let (env, before) = broken_env(|_, _| {});
    let deb = new_deb();
    env.server.delay(&deb, Duration::from_secs(30));
    let mut child = env.cmd(&["sync"]).spawn().unwrap();
    wait_for(|| env.server.hits(&deb) > 0);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert_eq!(env.published(PVE.id).unwrap().name, before);
    env.server.clear_all_faults();
    env.sync_ok(&[]);
    assert_ne!(env.published(PVE.id).unwrap().name, before);
    env.assert_pool_sound();
}

#[test]
fn dry_run_changes_nothing() {
    let env = Env::new(proxmox(0), &[&PVE]);
    let out = env.sync_ok(&["--dry-run"]);
    assert!(out.contains("pve_bookworm: plan: fetch"), "{out}");
    assert!(!env.store.exists(), "a dry run created the store");
    assert!(!env.server.requests().iter().any(|r| r.path.ends_with(".deb")));
}

pub fn wait_for(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_mirrors_claiming_one_path_are_refused_at_publish() {
    let env = Env::new(proxmox(0), &[&PVE]);
    env.sync_ok(&[]);
    let before = env.published(PVE.id).unwrap();
    let images = env.view_images();
    assert_eq!(images.len(), 1, "{images:?}");
    // pbs-client put under pve's view root: both have dists/bookworm/InRelease.
    let extra = format!(
        "[[mirror]]\nid = \"clash\"\nrepository = \"deb {}/debian/pbs-client bookworm main\"\narchitectures = [\"amd64\"]\nkey = \"{}\"\nview = \"debian/pve\"\n",
        env.server.base_url().trim_end_matches('/'),
        env.key.display()
    );
    let mut env = env;
    env.write_config(&[&PVE], &extra);
    let out = env.run(&["sync"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("clash") && err.contains("pve_bookworm") && err.contains("dists/bookworm/InRelease"), "{err}");
    assert_eq!(env.published(PVE.id).unwrap(), before);
    assert!(env.published("clash").is_none());
    assert_eq!(env.view_images(), images, "a refused publish leaves the image of the published view alone");
}

#[test]
fn skip_filters_and_ignore_errors() {
    let up = proxmox(0);
    let env = Env::new(up.clone(), &[&PVE]);
    // Skip one package by glob and everything in section "admin"; a missing .deb is only a warning.
    let text_cfg = std::fs::read_to_string(&env.config).unwrap().replace(
        "key = ",
        "skip-packages = [\"pve-firmware*\"]\nskip-sections = [\"admin\"]\nignore-errors = true\nkey = ",
    );
    std::fs::write(&env.config, text_cfg).unwrap();
    let victim = up
        .deb_paths()
        .into_iter()
        .find(|p| p.starts_with("debian/pve/") && !p.contains("pve-firmware"))
        .unwrap()
        .to_owned();
    // Missing at every path that carries its content: a path missing upstream whose bytes
    // another path serves is recorded from that path (same digest), so it would not fail.
    let sha = |p: &str| Sha256::of(up.bytes(p).unwrap());
    for p in up.deb_paths().into_iter().filter(|p| sha(p) == sha(&victim)) {
        env.server.fail_always(p, 404);
    }
    let out = env.sync_ok(&[]);
    assert!(out.contains("packages skipped by config") && out.contains("warning:"), "{out}");
    let files = env.published_files(PVE.id);
    assert!(!files.keys().any(|p| p.contains("pve-firmware")), "skip-packages ignored");
    assert!(!files.keys().any(|p| victim.ends_with(p.as_str())), "a failed package was recorded");
}

#[test]
fn pdiff_index_and_patches_are_mirrored() {
    use std::io::Write;
    let mut up = debian(0);
    let dir = "debian/dists/bookworm/main/binary-amd64/Packages.diff";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"1,2d\nw\n").unwrap();
    let patch = gz.finish().unwrap();
    let name = "T-2024-01-01-0000.00-F-2023-12-31-0000.00.gz";
    let index = format!("SHA256-Download:\n {} {} {name}\n", Sha256::of(&patch), patch.len());
    let mtime = up.get("debian/dists/bookworm/InRelease").unwrap().mtime;
    up.put(&format!("{dir}/Index"), index.into_bytes(), mtime);
    up.resign(signing_key()).unwrap();
    // After signing: the Release lists the Index only, so the patch is found through the Index.
    up.put(&format!("{dir}/{name}"), patch.clone(), mtime);
    let env = Env::new(up, &[&DEBIAN]);
    env.sync_ok(&[]);
    let files = env.published_files(DEBIAN.id);
    let rel = "dists/bookworm/main/binary-amd64/Packages.diff";
    assert!(files.contains_key(&format!("{rel}/Index")), "pdiff Index not mirrored");
    assert_eq!(files.get(&format!("{rel}/{name}")), Some(&patch), "pdiff patch not mirrored");
}

/// A tmpfs of `bytes` mounted at `dir` for the life of the guard (root only; tests run as root).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755"), "pmirror-fs-test"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        SmallDisk(dir.to_owned())
    }

    /// Fill the filesystem until `leave` bytes are free.
    fn fill(&self, leave: u64) -> std::path::PathBuf {
        let filler = self.0.join("filler");
        // SAFETY: statvfs fills a zeroed struct we own; the path outlives the call.
        let free = unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(libc::statvfs(c.as_ptr(), &mut st), 0);
            st.f_bavail * st.f_frsize
        };
        let len = free.saturating_sub(leave) as usize;
        std::fs::write(&filler, vec![0u8; len]).expect("write filler");
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk mid-sync: one-line error naming the mirror, non-zero exit, the published snapshot
/// and the mounted view unchanged, no partial object in the pool; once there is room again the
/// next sync succeeds.
#[test]
fn full_disk_keeps_the_published_view_and_recovers() {
    let g0 = proxmox(0);
    let g1 = proxmox(1);
    let release = "debian/pve/dists/bookworm/InRelease";
    let (old, new) = (g0.bytes(release).unwrap().to_vec(), g1.bytes(release).unwrap().to_vec());
    let env = Env::new(g0, &[&PVE]);
    let disk = SmallDisk::mount(&env.store, 64 << 20);
    env.sync_ok(&[]);
    let before = env.published(PVE.id).unwrap().name;
    let mnt = crate::harness::Mount::start(&env);
    env.server.swap(g1);
    for leave in [0, 4 << 10, 64 << 10] {
        let filler = disk.fill(leave);
        let out = env.run(&["sync"]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "sync succeeded with {leave} bytes free");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("pmirror-fs: ")).collect();
        // Where it runs out decides what the line names: the mirror and its file, or the catalog.
        let names_what = |l: &str| l.contains("pve_bookworm") || l.contains("catalog.db");
        let says_why = |l: &str| l.contains("No space left on device") || l.contains("disk is full");
        assert!(
            errors.len() == 1 && names_what(errors[0]) && says_why(errors[0]),
            "{leave} bytes free: not one line naming what failed and why:\n{stderr}"
        );
        eprintln!("{leave} bytes free: {}", errors[0]);
        assert_eq!(env.published(PVE.id).unwrap().name, before, "{leave} bytes free");
        assert_eq!(std::fs::read(mnt.path(release)).unwrap(), old, "{leave} bytes free: the mount changed");
        env.assert_pool_sound();
        std::fs::remove_file(filler).unwrap();
    }
    env.sync_ok(&[]);
    wait_for(|| std::fs::read(mnt.path(release)).unwrap() == new);
    env.assert_pool_sound();
}
