//! Real mounts (the tests run as root with /dev/fuse): content, metadata, read-only errors,
//! directory listing, an atomic switch, unmount, and stale/duplicate mountpoint handling.
//! A mount that fails fails the test.

use crate::digest::Sha256;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::tree::source::{EntryKind, FileEntry, ObjectMeta, Role, SnapshotFiles, ViewSource};

const EROFS: i32 = 30;

/// A pool holding `contents` as objects with ids 1.., and their metadata.
fn pool(dir: &Path, contents: &[&[u8]]) -> Vec<ObjectMeta> {
    let mut objects = Vec::new();
    for (i, bytes) in contents.iter().enumerate() {
        let sha256 = Sha256::of(bytes);
        let path = crate::pool::object_path(dir, &sha256);
        fs::create_dir_all(path.parent().expect("parent")).expect("pool dir");
        fs::write(&path, bytes).expect("pool object");
        objects.push(ObjectMeta {
            id: i as u64 + 1,
            sha256,
            size: bytes.len() as u64,
            mtime: 1_600_000_000 + i as i64,
        });
    }
    objects
}

fn view(generation: u64, objects: &[ObjectMeta], files: &[(&str, u32)]) -> View {
    let entries = files
        .iter()
        .map(|&(path, object)| FileEntry {
            path: path.into(),
            object,
            kind: EntryKind::TreeFile,
            by_hash: vec![],
            mtime_override: None,
        })
        .collect();
    let snapshot = SnapshotFiles {
        mirror_id: "m".into(),
        name: "S".into(),
        view_root: "debian/pve".into(),
        role: Role::Published,
        entries,
    };
    let inline_files = vec![("status.json".to_owned(), format!("{{\"generation\":{generation}}}").into_bytes())];
    let source = ViewSource {
        generation,
        objects: objects.to_vec(),
        snapshots: vec![snapshot],
        inline_files,
        ..ViewSource::default()
    };
    View::build(&source).expect("view builds")
}

struct Fixture {
    _dir: tempfile::TempDir,
    pool: PathBuf,
    mnt: PathBuf,
    objects: Vec<ObjectMeta>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pool_dir, mnt) = (dir.path().join("pool"), dir.path().join("mnt"));
    fs::create_dir(&mnt).expect("mountpoint");
    let objects = pool(&pool_dir, &[b"old InRelease", b"new InRelease", b"package bytes \x00\xff"]);
    Fixture { _dir: dir, pool: pool_dir, mnt, objects }
}

fn errno<T: std::fmt::Debug>(result: std::io::Result<T>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

/// The whole client-visible contract on one mount; `passthrough` picks the read path.
fn serve_read_only_and_switch(read_path: ReadPath) {
    let fx = fixture();
    let first = view(1, &fx.objects, &[("dists/bookworm/InRelease", 0), ("pool/p.deb", 2)]);
    let mounted = mount_with(&fx.mnt, first.into(), fx.pool.clone().into(), MountOptions::default(), read_path)
        .expect("mounting must work here (root, /dev/fuse)");
    let root = fx.mnt.join("debian/pve");
    let (release, package) = (root.join("dists/bookworm/InRelease"), root.join("pool/p.deb"));

    assert_eq!(fs::read(&package).expect("read package"), b"package bytes \x00\xff");
    assert_eq!(fs::read(fx.mnt.join("status.json")).expect("read status"), b"{\"generation\":1}");
    let meta = fs::metadata(&package).expect("stat file");
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.len()), (0o444, 0, 0, 16));
    assert_eq!(meta.mtime(), 1_600_000_002);
    let dir_meta = fs::metadata(&root).expect("stat dir");
    assert_eq!((dir_meta.mode() & 0o7777, dir_meta.uid(), dir_meta.is_dir()), (0o555, 0, true));
    let mut listed: Vec<String> = fs::read_dir(&root)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["dists", "pool"]);
    assert_eq!(mounted.passthrough(), read_path == ReadPath::Passthrough, "read path in use");

    let writes: Vec<(&str, std::io::Result<()>)> = vec![
        ("open for writing", OpenOptions::new().write(true).open(&package).map(drop)),
        ("create", File::create(root.join("new")).map(drop)),
        ("mkdir", fs::create_dir(root.join("newdir"))),
        ("rename", fs::rename(&package, root.join("moved"))),
        ("chmod", fs::set_permissions(&package, fs::Permissions::from_mode(0o644))),
        ("unlink", fs::remove_file(&package)),
    ];
    for (what, result) in writes {
        assert_eq!(errno(result), Some(EROFS), "{what}");
    }

    let mut before = File::open(&release).expect("open before switch");
    mounted.switch(view(2, &fx.objects, &[("dists/bookworm/InRelease", 1), ("pool/p.deb", 2)]));
    assert_eq!(fs::read(&release).expect("read after switch"), b"new InRelease", "a new open sees the new view");
    let mut old = String::new();
    before.seek(SeekFrom::Start(0)).expect("seek");
    before.read_to_string(&mut old).expect("read old fd");
    assert_eq!(old, "old InRelease", "an fd opened before the switch keeps its bytes");
    assert_eq!(fs::read(fx.mnt.join("status.json")).expect("status after switch"), b"{\"generation\":2}");
    drop(before);

    mounted.try_unmount().expect("unmount");
    assert_eq!(fs::read_dir(&fx.mnt).expect("plain dir again").count(), 0, "unmounted");
}

#[test]
fn serves_with_passthrough() {
    serve_read_only_and_switch(ReadPath::Passthrough);
}

#[test]
fn serves_with_pread_fallback() {
    serve_read_only_and_switch(ReadPath::Pread);
}

#[test]
fn old_directory_inodes_resolve_until_evicted() {
    let fx = fixture();
    let mounted =
        mount(&fx.mnt, view(1, &fx.objects, &[("a/x", 0)]), fx.pool.clone(), MountOptions::default()).expect("mount");
    let dir = File::open(fx.mnt.join("debian/pve/a")).expect("open dir");
    let at_name = |d: &File, name: &str| fs::read(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    let at = |d: &File| at_name(d, "x");
    mounted.switch(view(2, &fx.objects, &[("a/x", 1)]));
    assert_eq!(at(&dir).expect("old dir still walks"), b"old InRelease", "a held directory stays in its generation");
    for generation in 3..=6 {
        mounted.switch(view(generation, &fx.objects, &[("a/x", 1)]));
    }
    assert_eq!(fs::read(fx.mnt.join("debian/pve/a/x")).expect("current"), b"new InRelease");
    assert_eq!(errno(at_name(&dir, "y")), Some(libc::ESTALE), "an evicted generation is stale");
    drop(dir);
    mounted.try_unmount().expect("unmount");
    assert_eq!(fs::read_dir(&fx.mnt).expect("plain dir again").count(), 0, "unmounted");
}

#[test]
fn duplicate_and_stale_mounts_are_handled() {
    let fx = fixture();
    let mounted = mount(&fx.mnt, View::empty(1), fx.pool.clone(), MountOptions::default()).expect("mount");
    let second = mount(&fx.mnt, View::empty(1), fx.pool.clone(), MountOptions::default());
    assert!(matches!(second, Err(FuseError::AlreadyMounted { .. })), "{second:?}");
    mounted.try_unmount().expect("unmount");

    // A daemon that died: the /dev/fuse fd closes while the mount stays.
    let (session, _) = session(
        &fx.mnt,
        View::empty(1).into(),
        fx.pool.clone().into(),
        MountOptions::default(),
        ReadPath::Pread,
        Default::default(),
    )
    .expect("mount");
    let fd = session.as_fd().as_raw_fd();
    std::mem::forget(session);
    // SAFETY: `fd` belongs to the session leaked above, which never touches it again: taking
    // ownership of it here (and closing it at once) is the only use it ever has from now on.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    assert_eq!(errno(fs::metadata(&fx.mnt)), Some(libc::ENOTCONN), "stale mount");
    check_mountpoint(&fx.mnt, &MountOptions::default()).expect("stale mount detached");
    assert!(fs::metadata(&fx.mnt).expect("usable again").is_dir());
}

#[test]
fn busy_mount_is_detached_lazily() {
    let fx = fixture();
    let mounted =
        mount(&fx.mnt, view(1, &fx.objects, &[("p.deb", 2)]), fx.pool.clone(), MountOptions::default()).expect("mount");
    let mut held = File::open(fx.mnt.join("debian/pve/p.deb")).expect("open");
    mounted.try_unmount().expect("busy unmount detaches");
    assert_eq!(fs::read_dir(&fx.mnt).expect("mountpoint usable").count(), 0, "detached at once");
    let mut bytes = Vec::new();
    held.read_to_end(&mut bytes).expect("held file still reads");
    assert_eq!(bytes, b"package bytes \x00\xff");
}

#[test]
fn pool_layout() {
    let sha = Sha256::of(b"abc");
    let path = crate::pool::object_path(Path::new("/store/pool"), &sha);
    assert_eq!(path, Path::new("/store/pool/sha256/ba").join(sha.to_hex()));
}

/// `.pin/<token>/` keeps the view current at the token's first lookup across switches (beyond
/// the generations the plain root keeps), with directory inodes of its own, until the idle bound
/// forgets it; `.pin` itself lists nothing and is not listed.
#[test]
fn pinned_tokens_keep_their_view_until_a_bound() {
    let fx = fixture();
    let pins = PinBounds { idle: std::time::Duration::from_secs(5), lifetime: std::time::Duration::from_secs(60) };
    let opts = MountOptions { pins, ..MountOptions::default() };
    let files = |object| [("dists/bookworm/InRelease", object)];
    let mounted = mount(&fx.mnt, view(1, &fx.objects, &files(0)), fx.pool.clone(), opts).expect("mount");
    let rel = "debian/pve/dists/bookworm/InRelease";
    let pinned = |token: &str, path: &str| fs::read(fx.mnt.join(PIN_DIR).join(token).join(path));
    assert_eq!(pinned("7-1", rel).expect("pinned read"), b"old InRelease");
    for generation in 2..=7 {
        mounted.switch(view(generation, &fx.objects, &files(1)));
        assert_eq!(pinned("7-1", rel).expect("pinned read"), b"old InRelease", "generation {generation}");
    }
    assert_eq!(fs::read(fx.mnt.join(rel)).expect("plain read"), b"new InRelease");
    assert_eq!(pinned("7-2", rel).expect("new token"), b"new InRelease", "a new token pins the current view");
    // status.json has a generation-scoped inode; generation 1 is no longer kept for the root.
    assert_eq!(pinned("7-1", "status.json").expect("pinned status"), b"{\"generation\":1}");
    let (plain_dir, pinned_dir) =
        (fs::metadata(fx.mnt.join("debian/pve")), fs::metadata(fx.mnt.join(".pin/7-2/debian/pve")));
    assert_ne!(
        plain_dir.expect("plain dir").ino(),
        pinned_dir.expect("pinned dir").ino(),
        "a directory inode per path"
    );
    assert_eq!(mounted.pin_stats().tokens, 2);
    assert_eq!(mounted.pin_stats().views, 2);
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(names(&fx.mnt.join(PIN_DIR)).is_empty(), ".pin lists nothing");
    assert!(!names(&fx.mnt).contains(&PIN_DIR.to_owned()), "the root does not list .pin");
    assert_eq!(names(&fx.mnt.join(".pin/7-2/debian/pve/dists")), ["bookworm"]);
    let long = "x".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(errno(pinned(&long, rel)), Some(libc::ENOENT), "an over-long token is not found");
    // Idle past the bound: the sweeper forgets the tokens, and the next lookup pins anew.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while mounted.pin_stats().tokens > 0 {
        assert!(std::time::Instant::now() < deadline, "tokens never expired: {:?}", mounted.pin_stats());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(pinned("7-1", rel).expect("re-pinned"), b"new InRelease", "an expired token sees the newest view");
    assert_eq!(mounted.pin_stats().views, 1);
    mounted.try_unmount().expect("unmount");
}

/// Two switches 0–2 ms apart (a publish, then the run's end refreshing status.json) while
/// clients keep looking `status.json` up: 30 ms later every read shows the second view. A
/// lookup answered from the first view that lands after the second switch's expiry would renew
/// the first view's entry for the TTL (a day) without the revalidation thread's second expiry.
#[test]
fn back_to_back_switches_leave_no_root_entry_behind() {
    let fx = fixture();
    let files = [("dists/bookworm/InRelease", 0), ("pool/p.deb", 2)];
    let mounted = mount_with(
        &fx.mnt,
        view(1, &fx.objects, &files).into(),
        fx.pool.clone().into(),
        MountOptions::default(),
        ReadPath::Passthrough,
    )
    .expect("mounting must work here (root, /dev/fuse)");
    let status = fx.mnt.join("status.json");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stale = std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = fs::metadata(&status);
                    let _ = fs::read(&status);
                }
            });
        }
        let mut stale = Vec::new();
        for g in (2..200).step_by(2) {
            mounted.switch(view(g, &fx.objects, &files));
            std::thread::sleep(std::time::Duration::from_micros(g % 3 * 700));
            mounted.switch(view(g + 1, &fx.objects, &files));
            std::thread::sleep(std::time::Duration::from_millis(30));
            let shown = String::from_utf8(fs::read(&status).expect("read status.json")).unwrap();
            if shown != format!("{{\"generation\":{}}}", g + 1) {
                stale.push(format!("after switching to {}: {shown}", g + 1));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        stale
    });
    assert!(
        stale.is_empty(),
        "{} of 99 double switches left an old entry: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    mounted.try_unmount().expect("unmount");
}
