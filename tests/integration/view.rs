//! Issue 3: the FUSE view served by the real nginx to the real apt client, atomic switches,
//! open files across a switch, read-only semantics, HTTP caching headers, mount lifecycle.

use crate::harness::{is_mounted, text, Env, Mount, DEBIAN, PBS_CLIENT, PVE};
use crate::support::apt::AptClient;
use crate::support::client;
use crate::support::fixture::Upstream;
use crate::support::nginx::Nginx;
use crate::support::signing_key;
use crate::sync::wait_for;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

/// Proxmox and Debian fixtures on one server (the Debian mirror's view root `debian` contains the
/// Proxmox ones, `debian/pve` and `debian/pbs-client`, as on download.proxmox.com).
pub(crate) fn both(generation: u32) -> Upstream {
    let mut up = Upstream::proxmox(generation, signing_key()).expect("proxmox fixture");
    let deb = Upstream::debian(generation, signing_key()).expect("debian fixture");
    up.files.extend(deb.files);
    up.suites.extend(deb.suites);
    up
}

fn apt_for(env: &Env, nginx: &Nginx, root: &str, comps: &str, name: &str) -> AptClient {
    let dir = env.dir.path().join(format!("apt-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    AptClient::new(&dir, &format!("{}/{root} bookworm {comps}", nginx.base_url().trim_end_matches('/')), &env.key)
}

#[test]
fn apt_through_nginx_and_the_mount_is_byte_identical() {
    let up = both(0);
    let env = Env::new(up.clone(), &[&PVE, &PBS_CLIENT, &DEBIAN]);
    env.sync_ok(&[]);
    let mnt = Mount::start(&env);
    let nginx = Nginx::start(&mnt.dir);
    for spec in [&PVE, &PBS_CLIENT, &DEBIAN] {
        let apt = apt_for(&env, &nginx, spec.root, spec.components, spec.id);
        apt.update().unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        let debs = apt.download_all().unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        assert!(!debs.is_empty());
    }
    // Every upstream file (by-hash copies included) is served byte-identical through nginx.
    let mut checked = 0;
    for (path, file) in &up.files {
        let resp = client::get(&nginx.url(path)).unwrap();
        assert_eq!(resp.status, 200, "{path}");
        assert!(resp.body == file.bytes.as_ref(), "{path} differs through nginx");
        let want_mtime = file.mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let meta = std::fs::metadata(mnt.path(path)).unwrap();
        assert_eq!(meta.mtime(), want_mtime, "{path}: mtime is not upstream's Last-Modified");
        checked += 1;
    }
    assert!(checked > 40, "only {checked} files checked");
    // Snapshots are browsable at a stable URL.
    let snap = env.published(PVE.id).unwrap().name;
    let frozen = client::get(&nginx.url(&format!("snapshots/{}/{snap}/dists/bookworm/InRelease", PVE.id))).unwrap();
    assert_eq!(frozen.status, 200);
    assert!(frozen.body == up.bytes("debian/pve/dists/bookworm/InRelease").unwrap());
}

#[test]
fn read_only_modes_and_http_caching() {
    let env = Env::new(Upstream::proxmox(0, signing_key()).unwrap(), &[&PVE]);
    env.sync_ok(&[]);
    let mnt = Mount::start(&env);
    let inrelease = mnt.path("debian/pve/dists/bookworm/InRelease");
    let meta = std::fs::metadata(&inrelease).unwrap();
    assert_eq!((meta.permissions().mode() & 0o7777, meta.uid(), meta.gid()), (0o444, 0, 0));
    let dmeta = std::fs::metadata(mnt.path("debian/pve/dists")).unwrap();
    assert_eq!(dmeta.permissions().mode() & 0o7777, 0o555);
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(std::fs::OpenOptions::new().write(true).open(&inrelease).map(drop), "open for write");
    erofs(std::fs::write(mnt.path("debian/pve/new"), b"x"), "create");
    erofs(std::fs::create_dir(mnt.path("debian/pve/newdir")), "mkdir");
    erofs(std::fs::rename(&inrelease, mnt.path("debian/pve/dists/bookworm/x")), "rename");
    erofs(std::fs::set_permissions(&inrelease, std::fs::Permissions::from_mode(0o644)), "chmod");
    erofs(std::fs::remove_file(&inrelease), "unlink");
    assert!(std::fs::metadata(mnt.path("debian/pve/../../etc/passwd")).is_err() || !mnt.path("etc").exists());

    let nginx = Nginx::start(&mnt.dir);
    let url = nginx.url("debian/pve/dists/bookworm/InRelease");
    let first = client::get(&url).unwrap();
    let lm = first.header("last-modified").expect("Last-Modified").to_owned();
    let again = client::request(&url, "GET", &[("If-Modified-Since", &lm)]).unwrap();
    assert_eq!(again.status, 304);
    // Upstream moves on → after the switch the same conditional request gets the new InRelease.
    env.server.swap(Upstream::proxmox(1, signing_key()).unwrap());
    env.sync_ok(&[]);
    wait_for(|| client::request(&url, "GET", &[("If-Modified-Since", &lm)]).unwrap().status == 200);
}

#[test]
fn open_file_keeps_old_bytes_across_a_switch() {
    // Signatures differ between two builds of one generation: build each fixture once.
    let g0 = Upstream::proxmox(0, signing_key()).unwrap();
    let old = g0.bytes("debian/pve/dists/bookworm/InRelease").unwrap().to_vec();
    let env = Env::new(g0, &[&PVE]);
    env.sync_ok(&[]);
    let mnt = Mount::start(&env);
    let path = mnt.path("debian/pve/dists/bookworm/InRelease");
    let mut f = std::fs::File::open(&path).unwrap();
    let next = Upstream::proxmox(1, signing_key()).unwrap();
    let new = next.bytes("debian/pve/dists/bookworm/InRelease").unwrap().to_vec();
    env.server.swap(next);
    env.sync_ok(&[]);
    // The publish is visible to a new open as soon as the daemon polled (≤ 50 ms + build).
    wait_for(|| std::fs::read(&path).unwrap() == new);
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert!(got == old, "fd opened before the switch changed content");
}

#[test]
fn by_hash_and_grace_keep_a_client_of_the_old_release_working() {
    let g0 = Upstream::debian(0, signing_key()).unwrap();
    let env = Env::new(g0.clone(), &[&DEBIAN]);
    env.sync_ok(&[]);
    let mnt = Mount::start(&env);
    let nginx = Nginx::start(&mnt.dir);
    // The client read generation 0's InRelease …
    let before = client::get(&nginx.url("debian/dists/bookworm/InRelease")).unwrap();
    assert!(before.body == g0.bytes("debian/dists/bookworm/InRelease").unwrap());
    // … upstream moves on twice and the mirror publishes both …
    let mut latest = g0.clone();
    for g in 1..=2 {
        latest = Upstream::debian(g, signing_key()).unwrap();
        env.server.swap(latest.clone());
        env.sync_ok(&[]);
    }
    wait_for(|| {
        client::get(&nginx.url("debian/dists/bookworm/InRelease")).unwrap().body
            == latest.bytes("debian/dists/bookworm/InRelease").unwrap()
    });
    // … and then fetches the indices and packages generation 0 named: all still there.
    for (path, file) in &g0.files {
        if path.contains("/by-hash/") || path.ends_with(".deb") {
            let r = client::get(&nginx.url(path)).unwrap();
            assert_eq!(r.status, 200, "{path} gone after the switch");
            assert!(r.body == file.bytes.as_ref(), "{path} differs");
        }
    }
}

#[test]
fn sigterm_unmounts_and_a_stale_mount_is_cleared() {
    let env = Env::new(Upstream::proxmox(0, signing_key()).unwrap(), &[&PVE]);
    env.sync_ok(&[]);
    let mut mnt = Mount::start(&env);
    assert!(mnt.stop().success());
    assert!(!is_mounted(&mnt.dir), "still mounted after SIGTERM");
    // A daemon killed with -9 leaves "Transport endpoint is not connected" behind.
    let mut mnt = Mount::start(&env);
    mnt.kill9();
    let err = std::fs::metadata(mnt.path("debian")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    let again = Mount::start(&env);
    assert!(again.path("debian/pve/dists/bookworm/InRelease").is_file());
    drop(again);
    // Detached mode: `mount` returns once mounted; an unusable mountpoint fails with a reason.
    let out = env.run(&["mount", mnt.dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(is_mounted(&mnt.dir));
    let daemons = || crate::harness::mount_daemons(&mnt.dir);
    assert_eq!(daemons().len(), 1, "one detached daemon serves the mount");
    // Unmounted from outside, the daemon does not linger as if it still served something.
    std::process::Command::new("fusermount3").arg("-u").arg(&mnt.dir).status().unwrap();
    crate::sync::wait_for(|| daemons().is_empty());
    let out = env.run(&["mount", "/nonexistent/mnt"]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr).trim().lines().count(), 1, "{}", text(&out.stderr));
}

/// How many times the env's mount daemons logged loading a view from `from` ("image" or
/// "catalog").
fn loads_from(env: &Env, from: &str) -> usize {
    let log = std::fs::read_to_string(env.dir.path().join("mount.log")).unwrap_or_default();
    log.lines().filter(|l| l.contains("view loaded") && l.contains(&format!("from=\"{from}\""))).count()
}

/// A publish writes the view as an image (named by the nonce its transaction records) and removes
/// the previous one; the daemon maps it at start and on a switch. A damaged or missing image
/// costs only time: the daemon builds the same view from the catalog.
#[test]
fn the_daemon_maps_the_published_view_image_and_builds_without_one() {
    let g0 = Upstream::proxmox(0, signing_key()).unwrap();
    let g1 = Upstream::proxmox(1, signing_key()).unwrap();
    let release = "debian/pve/dists/bookworm/InRelease";
    let (old, new) = (g0.bytes(release).unwrap().to_vec(), g1.bytes(release).unwrap().to_vec());
    let env = Env::new(g0, &[&PVE]);
    env.sync_ok(&[]);
    let pointer = || env.catalog().view_pointer().unwrap();
    let (generation, nonce) = pointer();
    let first = pmirror_fs::tree::image::file_name(generation, nonce.expect("the publish recorded an image"));
    assert_eq!(env.view_images(), [first.as_str()]);

    let mut mnt = Mount::start(&env);
    assert_eq!(std::fs::read(mnt.path(release)).unwrap(), old);
    assert_eq!(loads_from(&env, "image"), 1, "{}", mnt.log());
    env.server.swap(g1);
    env.sync_ok(&[]);
    wait_for(|| std::fs::read(mnt.path(release)).unwrap() == new);
    let (generation, nonce) = pointer();
    let second = pmirror_fs::tree::image::file_name(generation, nonce.expect("image"));
    assert_ne!(second, first);
    assert_eq!(env.view_images(), [second.as_str()], "the old image is removed after the commit");
    wait_for(|| loads_from(&env, "image") == 2);
    assert_eq!(loads_from(&env, "catalog"), 0, "{}", mnt.log());
    assert!(mnt.stop().success());

    let image = pmirror_fs::store::images_dir(&env.store).join(&second);
    let damaged: [(&str, Option<&[u8]>); 2] = [("damaged", Some(b"PMFSVIEW not really")), ("missing", None)];
    for (case, bytes) in damaged {
        match bytes {
            Some(b) => std::fs::write(&image, b).unwrap(),
            None => std::fs::remove_file(&image).unwrap(),
        }
        let before = loads_from(&env, "catalog");
        let mut mnt = Mount::start(&env);
        assert_eq!(std::fs::read(mnt.path(release)).unwrap(), new, "{case}");
        let pkg = mnt.path("debian/pve/dists/bookworm/pve-no-subscription/binary-amd64");
        assert!(std::fs::read_dir(pkg).unwrap().count() > 0, "{case}");
        assert_eq!(loads_from(&env, "catalog"), before + 1, "{case}: {}", mnt.log());
        assert!(mnt.stop().success(), "{case}");
    }
}

/// A superseded snapshot leaving the grace window changes the view without a publish: the
/// daemon notices when the view (image) it serves expires and loads the view again, so a package
/// only the superseded snapshot had disappears from the canonical path (it stays under
/// snapshots/).
#[test]
fn grace_expiry_without_a_publish_reloads_the_view() {
    let g0 = Upstream::proxmox(0, signing_key()).unwrap();
    let g1 = Upstream::proxmox(1, signing_key()).unwrap();
    let dropped = g0
        .deb_paths()
        .into_iter()
        .find(|p| p.starts_with("debian/pve/") && g1.get(p).is_none())
        .expect("generation 1 drops a package")
        .to_owned();
    let env = Env::new(g0, &[&PVE]);
    let cfg = std::fs::read_to_string(&env.config).unwrap().replace("grace = \"48h\"", "grace = \"4s\"");
    std::fs::write(&env.config, cfg).unwrap();
    env.sync_ok(&[]);
    let old = env.published(PVE.id).unwrap().name;
    env.server.swap(g1);
    env.sync_ok(&[]);
    let mnt = Mount::start(&env);
    let within = dropped.strip_prefix("debian/pve/").unwrap();
    let frozen = mnt.path(&format!("snapshots/{}/{old}/{within}", PVE.id));
    assert!(mnt.path(&dropped).exists(), "inside the grace window the dropped package is served");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while mnt.path(&dropped).exists() {
        assert!(std::time::Instant::now() < deadline, "still served after the grace window:\n{}", mnt.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(frozen.exists(), "the superseded snapshot stays under snapshots/");
    assert!(mnt.log().contains("expired"), "{}", mnt.log());
}
