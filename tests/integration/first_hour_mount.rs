//! Issue 11, the mount side of the first hour of a new admin: a mount over a directory that holds
//! files, a mount nginx's workers cannot read, how to stop a detached mount (and start it again
//! at once), and what a non-root `sync` or `mount` says. Every test runs the real binary, mounts
//! for real and unmounts even when it fails.

use crate::harness::{is_mounted, mount_daemons, text, Env, PVE};
use crate::support::fixture::Upstream;
use crate::support::signing_key;
use crate::sync::wait_for;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const INRELEASE: &str = "debian/pve/dists/bookworm/InRelease";
/// nobody: a user with no rights to the store, /dev/fuse or a private mount.
const NOBODY: u32 = 65534;
/// www-data: the user nginx's workers run as.
const WWW_DATA: u32 = 33;

/// A synced store whose directory other users may traverse (tempdirs are 0700), the upstream's
/// InRelease, and an empty mountpoint `<env>/mnt`.
fn synced() -> (Env, Vec<u8>, PathBuf) {
    let upstream = Upstream::proxmox(0, signing_key()).expect("fixture");
    let inrelease = upstream.bytes(INRELEASE).expect("fixture InRelease").to_vec();
    let env = Env::new(upstream, &[&PVE]);
    env.sync_ok(&[]);
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = env.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    (env, inrelease, mnt)
}

/// The daemons `pmirror-fs mount` (detached) left serving `dir`: SIGTERM to each on drop, then
/// a lazy unmount if the mount is still there.
struct Detached(PathBuf);

impl Drop for Detached {
    fn drop(&mut self) {
        for pid in mount_daemons(&self.0) {
            // SAFETY: kill(2) on a pmirror-fs daemon serving this test's own mountpoint.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_mounted(&self.0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_mounted(&self.0) {
            let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(&self.0).status();
        }
    }
}

/// `pmirror-fs mount MNT ARGS…` (detached unless ARGS say otherwise) with the env's config.
fn mount(env: &Env, mnt: &Path, args: &[&str]) -> Output {
    env.run(&[&["mount", mnt.to_str().unwrap()], args].concat())
}

/// `program args…` as `uid` (its group too, no supplementary groups).
fn as_user(uid: u32, program: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".to_owned()])
        .arg(program)
        .args(args)
        .output()
        .expect("run setpriv")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    text(&out.stderr).lines().map(str::to_owned).collect()
}

/// Item 4: mounting over a directory that holds files succeeded and hid them. Now it is refused
/// in one line naming the directory (and the way to insist), and `--nonempty` insists; SIGTERM to
/// the detached daemon unmounts and the files are back.
#[test]
fn a_non_empty_mountpoint_is_refused_and_nonempty_insists() {
    let (env, _, mnt) = synced();
    std::fs::write(mnt.join("index.html"), "the old site\n").unwrap();
    let _guard = Detached(mnt.clone());

    let out = mount(&env, &mnt, &[]);
    let lines = stderr_lines(&out);
    assert!(!out.status.success(), "mounted over a non-empty directory");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let want = format!("pmirror-fs: mountpoint {} is not empty (it holds index.html)", mnt.display());
    assert!(lines[0].starts_with(&want) && lines[0].contains("--nonempty"), "{}", lines[0]);
    assert!(!is_mounted(&mnt));
    assert_eq!(std::fs::read(mnt.join("index.html")).unwrap(), b"the old site\n", "the file is still visible");

    let out = mount(&env, &mnt, &["--nonempty"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(is_mounted(&mnt) && mnt.join(INRELEASE).is_file());
    assert!(!mnt.join("index.html").exists(), "the mount shows the view, not the directory below");
    // The README's third way to stop a detached mount: SIGTERM to the daemon unmounts.
    let daemons = mount_daemons(&mnt);
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    // SAFETY: kill(2) on the daemon serving this test's own mountpoint.
    unsafe { libc::kill(daemons[0], libc::SIGTERM) };
    wait_for(|| mount_daemons(&mnt).is_empty());
    assert!(!is_mounted(&mnt), "SIGTERM left the mount behind");
    assert_eq!(std::fs::read(mnt.join("index.html")).unwrap(), b"the old site\n", "back after the unmount");
}

/// Item 4: a mount without `--allow-other` succeeded and nginx got Permission denied for every
/// file. Run as root, the default now lets every user read (www-data and nobody read a served
/// file) and says so in one line, with how to stop it — and that way (`fusermount3 -u`) stops
/// it: unmounted, the daemon gone. `--private` really keeps other users out; `umount` stops it
/// too.
#[test]
fn root_mounts_for_nginx_by_default_and_private_keeps_others_out() {
    let (env, inrelease, mnt) = synced();
    let _guard = Detached(mnt.clone());
    let file = mnt.join(INRELEASE);
    let file = file.to_str().unwrap();

    let out = mount(&env, &mnt, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = format!(
        "pmirror-fs: mounted at {0}, readable by all users (allow_other); `fusermount3 -u {0}` stops it",
        mnt.display()
    );
    assert_eq!(stderr_lines(&out), [want]);
    for uid in [WWW_DATA, NOBODY] {
        let cat = as_user(uid, "cat", &[file]);
        assert!(cat.status.success(), "uid {uid} cannot read the mount: {}", text(&cat.stderr));
        assert_eq!(cat.stdout, inrelease, "uid {uid} reads the served InRelease");
    }
    let stop = Command::new("fusermount3").arg("-u").arg(&mnt).output().unwrap();
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(!is_mounted(&mnt));
    wait_for(|| mount_daemons(&mnt).is_empty());

    let out = mount(&env, &mnt, &["--private"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = format!(
        "pmirror-fs: mounted at {0}, readable only by root (--private: nginx's workers cannot read it); \
         `fusermount3 -u {0}` stops it",
        mnt.display()
    );
    assert_eq!(stderr_lines(&out), [want]);
    assert_eq!(std::fs::read(file).unwrap(), inrelease, "root reads its private mount");
    for uid in [WWW_DATA, NOBODY] {
        let cat = as_user(uid, "cat", &[file]);
        assert!(!cat.status.success(), "uid {uid} read a --private mount");
        assert!(text(&cat.stderr).contains("Permission denied"), "{}", text(&cat.stderr));
    }
    let stop = Command::new("umount").arg(&mnt).output().unwrap();
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(!is_mounted(&mnt));
    wait_for(|| mount_daemons(&mnt).is_empty());
}

/// The README's stop-and-start: `fusermount3 -u` and a new `mount` right after it. The old
/// daemon, ending once it noticed the unmount, let fuser unmount the mountpoint *path* on its way
/// out — detaching the new mount (every time, here). The new mount must stay.
#[test]
fn a_mount_started_right_after_fusermount_u_stays_mounted() {
    let (env, inrelease, mnt) = synced();
    let _guard = Detached(mnt.clone());
    for round in 0..3 {
        let out = mount(&env, &mnt, &[]);
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        let old = mount_daemons(&mnt);
        assert_eq!(old.len(), 1, "round {round}: {old:?}");
        let stop = Command::new("fusermount3").arg("-u").arg(&mnt).output().unwrap();
        assert!(stop.status.success(), "round {round}: {}", text(&stop.stderr));
        let out = mount(&env, &mnt, &[]);
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        // The old daemon polls every 20 ms; once it is gone, whatever it did on exit is done.
        wait_for(|| mount_daemons(&mnt).iter().all(|pid| !old.contains(pid)));
        assert!(is_mounted(&mnt), "round {round}: the old daemon's exit unmounted the new mount");
        assert_eq!(std::fs::read(mnt.join(INRELEASE)).unwrap(), inrelease);
        let stop = Command::new("fusermount3").arg("-u").arg(&mnt).output().unwrap();
        assert!(stop.status.success(), "round {round}: {}", text(&stop.stderr));
        wait_for(|| mount_daemons(&mnt).is_empty());
    }
}

/// Item 6: as a user who is not root, `sync` said `…/lock: Permission denied (os error 13)`, and
/// the detached `mount` printed its error twice (`mounting …: Permission denied (os error 13)`
/// from the FUSE mount; SQLite's `attempt to write a readonly database` for a root-owned store).
/// Now each prints one line saying what needs root and why, and fails: the store's owner for
/// `sync` and for `mount` of a store this user may not write, root for the FUSE mount itself
/// (checked with a store that user owns, so that the mount gets that far).
#[test]
fn non_root_sync_and_mount_say_once_what_needs_root() {
    let (env, _, mnt) = synced();
    let _guard = Detached(mnt.clone());
    let bin = crate::harness::BIN;
    let config = env.config.to_str().unwrap().to_owned();

    let out = as_user(NOBODY, bin, &["--config", &config, "sync"]);
    assert!(!out.status.success(), "a non-root sync succeeded");
    let want = format!(
        "pmirror-fs: sync: cannot lock the store {}: Permission denied (os error 13): this command writes the \
         store, which belongs to root; run it as root",
        env.store.join("lock").display()
    );
    assert_eq!(stderr_lines(&out), [want]);

    let root_store = format!(
        "pmirror-fs: cannot open the store {}: Permission denied (os error 13): the mount daemon writes the store \
         (it creates and migrates the catalog), which belongs to root; run it as root",
        env.store.display()
    );
    let fuse = format!(
        "pmirror-fs: mounting FUSE at {}: /dev/fuse: Permission denied (os error 13): the mount daemon needs root \
         (it mounts with mount(2) on /dev/fuse, which this user may not open); run it as root",
        mnt.display()
    );
    let own_store = env.dir.path().join("nobody-store");
    std::fs::create_dir(&own_store).unwrap();
    std::os::unix::fs::chown(&own_store, Some(NOBODY), Some(NOBODY)).unwrap();
    let own_config = env.dir.path().join("nobody.toml");
    std::fs::write(&own_config, format!("[store]\ndir = \"{}\"\n", own_store.display())).unwrap();
    let own_config = own_config.to_str().unwrap();
    for (config, want) in [(config.as_str(), &root_store), (own_config, &fuse)] {
        for mode in [&[][..], &["--foreground"]] {
            let args = [&["--config", config, "mount", mnt.to_str().unwrap()][..], mode].concat();
            let out = as_user(NOBODY, bin, &args);
            assert!(!out.status.success(), "{args:?}: a non-root mount succeeded");
            let stderr = text(&out.stderr);
            let lines = stderr_lines(&out);
            // /dev/fuse open to all (Debian's default): fuser falls back to fusermount3, which
            // refuses a mountpoint this user may not write, in its own words — not a lack of root.
            let fusermount = want == &fuse && !lines[0].contains("/dev/fuse: Permission denied");
            if fusermount {
                assert_eq!(lines.len(), 1, "{args:?}: said once:\n{stderr}");
                assert!(lines[0].starts_with(&fuse[..fuse.find("/dev/fuse").unwrap()]), "{args:?}: {}", lines[0]);
                assert!(lines[0].contains("goes through fusermount3"), "{args:?}: {}", lines[0]);
                assert!(!lines[0].contains("needs root"), "{args:?}: {}", lines[0]);
            } else {
                assert_eq!(stderr.matches("run it as root").count(), 1, "{args:?}: said once:\n{stderr}");
                assert_eq!(lines, std::slice::from_ref(want), "{args:?}");
            }
            assert!(!is_mounted(&mnt));
        }
    }
}
