//! A store, a config file and the real `pmirror-fs` binary, for tests that drive the CLI the way
//! an operator (or cron) does: exit status, one-line errors on stderr, the catalog afterwards.

use crate::support::{self, fixture::Upstream, http::TestServer};
use pmirror_fs::catalog::{Catalog, SnapshotRow};
use pmirror_fs::digest::Sha256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_pmirror-fs");

/// One mirror of the config: id, view root under the server, suite, components.
pub struct MirrorSpec {
    pub id: &'static str,
    pub root: &'static str,
    pub suite: &'static str,
    pub components: &'static str,
}

pub const PVE: MirrorSpec =
    MirrorSpec { id: "pve_bookworm", root: "debian/pve", suite: "bookworm", components: "pve-no-subscription pvetest" };
pub const PBS_CLIENT: MirrorSpec =
    MirrorSpec { id: "pbs_client_bookworm", root: "debian/pbs-client", suite: "bookworm", components: "main" };
pub const DEBIAN: MirrorSpec =
    MirrorSpec { id: "debian_bookworm", root: "debian", suite: "bookworm", components: "main contrib" };

pub struct Env {
    pub dir: tempfile::TempDir,
    pub server: TestServer,
    pub config: PathBuf,
    pub store: PathBuf,
    pub key: PathBuf,
}

impl Env {
    /// A store and config mirroring `mirrors` from a test server serving `upstream`.
    pub fn new(upstream: Upstream, mirrors: &[&MirrorSpec]) -> Env {
        Self::with_extra(upstream, mirrors, "")
    }

    pub fn with_extra(upstream: Upstream, mirrors: &[&MirrorSpec], extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = support::write_public_key(dir.path());
        let server = TestServer::start(upstream);
        let store = dir.path().join("store");
        let config = dir.path().join("config.toml");
        let mut env = Env { dir, server, config, store, key };
        env.write_config(mirrors, extra);
        env
    }

    pub fn write_config(&mut self, mirrors: &[&MirrorSpec], extra: &str) {
        let mut text = format!(
            "[store]\ndir = \"{}\"\nfsync = true\n\n[sync]\nconcurrency = 4\nretries = 3\nkeep = 3\ngrace = \"48h\"\ntimeout = \"10s\"\n\n",
            self.store.display()
        );
        for m in mirrors {
            text += &format!(
                "[[mirror]]\nid = \"{}\"\nrepository = \"deb {}/{} {} {}\"\narchitectures = [\"amd64\", \"all\"]\nkey = \"{}\"\n\n",
                m.id,
                self.server.base_url().trim_end_matches('/'),
                m.root,
                m.suite,
                m.components,
                self.key.display()
            );
        }
        text += extra;
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run pmirror-fs")
    }

    /// `sync` that must succeed; returns stdout.
    pub fn sync_ok(&self, args: &[&str]) -> String {
        let out = self.run(&[&["sync"], args].concat());
        assert!(out.status.success(), "sync failed:\nstdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// The view images in the store (files of `<store>/views/`), by name.
    pub fn view_images(&self) -> Vec<String> {
        let dir = pmirror_fs::store::images_dir(&self.store);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn catalog(&self) -> Catalog {
        Catalog::open(&self.store).expect("open catalog")
    }

    pub fn published(&self, mirror: &str) -> Option<SnapshotRow> {
        self.catalog().published(mirror).expect("published")
    }

    /// The published snapshot's files: path → pool bytes.
    pub fn published_files(&self, mirror: &str) -> BTreeMap<String, Vec<u8>> {
        let view = self.catalog().load_view(i64::MAX / 2, 0).expect("load view");
        let snap = view
            .snapshots
            .iter()
            .find(|s| s.mirror_id == mirror && s.role == pmirror_fs::tree::source::Role::Published)
            .unwrap_or_else(|| panic!("{mirror} has no published snapshot"));
        snap.entries
            .iter()
            .map(|e| {
                let sha = view.objects[e.object as usize].sha256;
                (e.path.clone(), std::fs::read(self.object_path(&sha)).expect("pool object readable"))
            })
            .collect()
    }

    pub fn object_path(&self, sha: &Sha256) -> PathBuf {
        pmirror_fs::pool::object_path(&self.store.join("pool"), sha)
    }

    /// Every pool object: (file name, bytes).
    pub fn pool_objects(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.store.join("pool"), &mut |p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read(p).unwrap()));
        });
        out
    }

    /// Nothing in the pool is anything but what its name says; nothing is left in tmp/.
    pub fn assert_pool_sound(&self) {
        for (name, bytes) in self.pool_objects() {
            assert_eq!(Sha256::of(&bytes).to_hex(), name, "pool object does not match its name");
        }
        let tmp: Vec<_> = std::fs::read_dir(self.store.join("tmp")).map(|d| d.flatten().collect()).unwrap_or_default();
        assert!(tmp.is_empty(), "tmp/ not empty: {tmp:?}");
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `pmirror-fs mount MNT --foreground` as a child process; SIGTERM and a clean unmount on drop.
pub struct Mount {
    pub dir: PathBuf,
    log: PathBuf,
    child: Option<std::process::Child>,
}

impl Mount {
    /// Mounts the env's store at `<env>/mnt` and waits until the view is there.
    pub fn start(env: &Env) -> Mount {
        Mount::start_with(env, "mnt", &[])
    }

    /// Mounts at `<env>/<name>` with `extra` arguments (`--store DIR`), waiting until it is up.
    pub fn start_with(env: &Env, name: &str, extra: &[&str]) -> Mount {
        let dir = env.dir.path().join(name);
        // A stale mount (dead daemon) fails stat with ENOTCONN: the directory exists regardless.
        if let Err(e) = std::fs::create_dir(&dir) {
            assert!(e.kind() == std::io::ErrorKind::AlreadyExists, "create mountpoint: {e}");
        }
        // Up = statfs answers with FUSE's magic: a stale mount fails with ENOTCONN, the plain
        // directory has its parent's type (device numbers and mount ids are both reused).
        let log = env.dir.path().join("mount.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open mount.log");
        let child = env
            .cmd(&[&["mount", dir.to_str().unwrap(), "--foreground", "--allow-other"], extra].concat())
            .env("PMIRROR_FS_LOG", "info")
            .stderr(log_file)
            .spawn()
            .expect("spawn pmirror-fs mount");
        let m = Mount { dir, log, child: Some(child) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let up = |d: &Path| is_fuse(d) && is_mounted(d);
        while !up(&m.dir) {
            assert!(std::time::Instant::now() < deadline, "mount did not come up at {}:\n{}", m.dir.display(), m.log());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        m
    }

    /// What the daemon logged (at level info) so far, this and earlier mounts of the env.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Sends SIGTERM and waits; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("wait for mount")
    }

    /// Leaves the daemon dead without unmounting (a stale mount).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().expect("wait for mount");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(&self.dir).status();
        }
    }
}

/// Pids of the `pmirror-fs … mount … DIR …` processes (a detached daemon is found this way).
pub fn mount_daemons(dir: &Path) -> Vec<i32> {
    let want = dir.to_string_lossy().into_owned();
    let procs = std::fs::read_dir("/proc").unwrap().flatten();
    let pids = procs.filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok());
    pids.filter(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(text).collect();
        args[0].ends_with("pmirror-fs") && args.contains(&"mount".to_owned()) && args.contains(&want)
    })
    .collect()
}

/// Whether `dir` is a mount point (listed in /proc/self/mounts).
pub fn is_mounted(dir: &Path) -> bool {
    let want = dir.to_string_lossy();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(&want))
}

/// Whether a live FUSE filesystem answers at `dir` (statfs reaches the daemon).
fn is_fuse(dir: &Path) -> bool {
    /// `FUSE_SUPER_MAGIC` from linux/magic.h.
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: statfs fills a zeroed struct we own; the path outlives the call.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut buf) }) == 0 && buf.f_type as i64 == FUSE_SUPER_MAGIC
}
