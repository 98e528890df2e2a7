//! `pmirror-fs mount`: the daemon. Mounts the view, then polls the catalog's publish generation
//! and swaps in a freshly built view whenever it changes (or when a superseded snapshot leaves the
//! grace window). Detaches once mounted unless `--foreground`; SIGTERM/SIGINT unmount cleanly,
//! and an unmount from outside (`fusermount3 -u`, `umount`) ends the daemon. Run as root it
//! mounts for every user (nginx's workers) unless `--private`, and says so in one line.
//!
//! The tree is built on this (the main) thread, never on a FUSE thread; FUSE threads only read the
//! current view through an atomic pointer.

use crate::catalog::{Catalog, StatusStamp};
use crate::config::Config;
use crate::fuse::{self, MountOptions};
use crate::sync::{aliases, unix_now};
use crate::tree::{image, View, STATUS_FILE};
use anyhow::Context as _;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the daemon checks the catalog's generation. A publish becomes visible to new opens
/// within this time (+ the tree build); the query is a single-row read, so 20 ms costs nothing
/// and keeps publish → visible well under 100 ms on a mirror-sized view.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// `mount`'s command-line switches.
#[derive(Clone, Copy, Debug)]
pub struct Switches {
    pub allow_other: bool,
    pub private: bool,
    pub nonempty: bool,
    pub foreground: bool,
}

/// Who may read the mount, and why: the daemon runs for nginx, whose workers are not root, so
/// root mounts for every user unless told `--private`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    AllUsers,
    /// `--private`.
    OwnerAsked,
    /// Not root and no `--allow-other`: a non-root allow_other needs `user_allow_other` in
    /// /etc/fuse.conf, which a default install lacks.
    OwnerNotRoot,
}

impl Access {
    fn choose(switches: Switches, euid: u32) -> Access {
        match switches {
            Switches { private: true, .. } => Access::OwnerAsked,
            Switches { allow_other: true, .. } => Access::AllUsers,
            _ if euid == 0 => Access::AllUsers,
            _ => Access::OwnerNotRoot,
        }
    }

    /// The line `mount` prints once the view is mounted at `path`.
    fn mounted_line(self, path: &Path, euid: u32) -> String {
        let user = if euid == 0 { "root".to_owned() } else { format!("uid {euid}") };
        let who = match self {
            Access::AllUsers => "readable by all users (allow_other)".to_owned(),
            Access::OwnerAsked => format!("readable only by {user} (--private: nginx's workers cannot read it)"),
            Access::OwnerNotRoot => {
                format!("readable only by {user} (not root; --allow-other needs user_allow_other in /etc/fuse.conf)")
            }
        };
        format!("mounted at {}, {who}", path.display())
    }
}

pub fn run(config: &Config, mountpoint: &Path, switches: Switches) -> anyhow::Result<i32> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let access = Access::choose(switches, euid);
    let opts = MountOptions { allow_other: access == Access::AllUsers, nonempty: switches.nonempty };
    fuse::check_mountpoint(mountpoint, &opts)?;
    // Fork before any thread exists (FUSE session, tracing): the parent waits until the child
    // reports "mounted" or an error, so `mount` exits non-zero when mounting fails.
    let mut ready = if switches.foreground { None } else { Some(daemonize()?) };
    let daemon = match Daemon::start(config, mountpoint, opts) {
        Ok(daemon) => daemon,
        // The waiting parent prints the error (on the terminal or in the cron mail that ran
        // `mount`); printing it here as well showed it twice.
        Err(e) => match ready.take() {
            Some(fd) => {
                report_ready(fd, &format!("error: {}", super::one_line(&e)));
                return Ok(1);
            }
            None => return Err(e),
        },
    };
    install_signal_handlers();
    tracing::info!(mountpoint = %mountpoint.display(), generation = daemon.pointer.0, "mounted");
    let line = access.mounted_line(daemon.mounted.mountpoint(), euid);
    match ready.take() {
        Some(fd) => {
            eprintln!("pmirror-fs: {line}; `fusermount3 -u {}` stops it", daemon.mounted.mountpoint().display());
            report_ready(fd, "ok");
        }
        None => eprintln!("pmirror-fs: {line}"),
    }
    super::sdnotify::ready();
    daemon.serve(config)?;
    Ok(0)
}

/// The mounted daemon's state between polls.
struct Daemon {
    catalog: Catalog,
    mounted: fuse::Mounted,
    /// The catalog generation and image nonce the mounted view shows.
    pointer: (u64, Option<u64>),
    /// When the view must be reloaded without a publish (grace expiry).
    valid_until: Option<i64>,
    /// The runs status.json shows, and its mtime.
    status: StatusStamp,
    status_mtime: i64,
}

impl Daemon {
    /// Opens the store (creating it if no sync ran yet, so the mount can come up first at boot),
    /// loads the current view and mounts it.
    fn start(config: &Config, mountpoint: &Path, opts: MountOptions) -> anyhow::Result<Daemon> {
        let (pool_dir, catalog) = open_store(config).map_err(|e| explain_denied(e, &config.store.dir))?;
        let loaded = load(config, &catalog)?;
        let status = catalog.status_stamp()?;
        let status_mtime = status.newest.max(1);
        let view = with_status(config, &catalog, &loaded.view, status_mtime, 0).unwrap_or(loaded.view);
        // FuseError names the mountpoint itself.
        let mounted = fuse::mount(mountpoint, view, pool_dir, opts)?;
        tracing::info!(generation = loaded.pointer.0, from = loaded.from, "view loaded");
        Ok(Daemon { catalog, mounted, pointer: loaded.pointer, valid_until: loaded.valid_until, status, status_mtime })
    }

    /// Polls the catalog and switches views until a signal (then unmounts) or an unmount from
    /// outside (an error: systemd's Restart=on-failure mounts it again).
    fn serve(mut self, config: &Config) -> anyhow::Result<()> {
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(POLL_INTERVAL);
            if !self.mounted.is_alive() {
                super::sdnotify::stopping();
                let mountpoint = self.mounted.mountpoint().to_owned();
                self.mounted.forget_unmounted();
                anyhow::bail!(
                    "{} was unmounted from outside (fusermount3 -u or umount); exiting",
                    mountpoint.display()
                );
            }
            self.tick(config);
        }
        tracing::info!("signal received, unmounting");
        super::sdnotify::stopping();
        self.mounted.unmount();
        Ok(())
    }

    /// One poll: switch to a new generation's view, or refresh status.json after a run.
    fn tick(&mut self, config: &Config) {
        let catalog = &self.catalog;
        let (p, s) = match catalog.view_pointer().and_then(|p| Ok((p, catalog.status_stamp()?))) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "reading the catalog generation failed; keeping the current view");
                return;
            }
        };
        let expired = self.valid_until.is_some_and(|t| unix_now() >= t);
        let current = self.mounted.view().current();
        let next_generation = current.generation() + 1;
        if s != self.status {
            // Dated now (never before the change it shows, and always later than the document it
            // replaces), so If-Modified-Since sees every change.
            self.status_mtime = unix_now().max(s.newest).max(self.status_mtime + 1);
        }
        if p != self.pointer || expired {
            match load(config, catalog) {
                Ok(loaded) => {
                    tracing::info!(generation = loaded.pointer.0, from = loaded.from, "view loaded");
                    self.pointer = loaded.pointer;
                    self.valid_until = loaded.valid_until;
                    self.status = s;
                    let view = with_status(config, catalog, &loaded.view, self.status_mtime, next_generation);
                    self.mounted.switch(view.unwrap_or(loaded.view));
                    tracing::info!(generation = self.pointer.0, "switched to a new view");
                }
                Err(e) => {
                    tracing::error!(error = %super::one_line(&e), "loading the new view failed; keeping the current one")
                }
            }
        } else if s != self.status {
            // A run started or ended: only status.json changes; the tree is shared, not rebuilt.
            self.status = s;
            match with_status(config, catalog, &current, self.status_mtime, next_generation) {
                Some(view) => self.mounted.switch(view),
                None => tracing::warn!("the view has no {STATUS_FILE}; not refreshed"),
            }
        }
    }
}

/// The pool's object directory and the catalog, read-only. Creates the store and catalog if no
/// sync ran yet (so the mount can come up first at boot) and migrates an older catalog.
fn open_store(config: &Config) -> anyhow::Result<(std::path::PathBuf, Catalog)> {
    let store = &config.store.dir;
    let pool_dir = crate::pool::Pool::open(store, config.store.fsync)?.objects_dir();
    drop(Catalog::open(store)?);
    Ok((pool_dir, Catalog::open_readonly(store)?))
}

/// A store this user may not write fails deep inside SQLite (`attempt to write a readonly
/// database … SQLITE_READONLY_DIRECTORY`); say that instead, and whom the store belongs to.
fn explain_denied(e: anyhow::Error, store: &Path) -> anyhow::Error {
    let Err(denied) = crate::pool::may_write(store) else { return e };
    tracing::debug!(error = %super::one_line(&e), "opening the store failed");
    anyhow::anyhow!(
        "cannot open the store {}: {denied}: the mount daemon writes the store (it creates and migrates the \
         catalog), {}",
        store.display(),
        crate::pool::who_may_write(store)
    )
}

/// The view of the catalog's current generation, with where it came from.
struct Loaded {
    view: View,
    /// The generation and image nonce it shows.
    pointer: (u64, Option<u64>),
    /// When it must be reloaded without a publish (grace expiry).
    valid_until: Option<i64>,
    /// "image" (mapped) or "catalog" (built here), for the log.
    from: &'static str,
}

/// The current generation's view: its image when the publisher wrote one that is still valid
/// (a map, whatever the catalog's size), else built from the catalog here.
fn load(config: &Config, catalog: &Catalog) -> anyhow::Result<Loaded> {
    let images = crate::sync::images_dir(&config.store.dir);
    // A publish between reading the pointer and opening its image deletes the image: read the
    // pointer again once.
    for _ in 0..2 {
        let pointer = catalog.view_pointer()?;
        let (generation, Some(nonce)) = pointer else { break };
        let path = images.join(image::file_name(generation, nonce));
        match image::map(&path) {
            Ok((view, info)) if info.generation == generation && info.valid_until > unix_now() => {
                let valid_until = (info.valid_until != i64::MAX).then_some(info.valid_until);
                tracing::debug!(path = %path.display(), generation, "mapped the view image");
                return Ok(Loaded { view, pointer, valid_until, from: "image" });
            }
            Ok(_) => {
                tracing::info!(path = %path.display(), "view image expired (grace window); building the view");
                break;
            }
            Err(image::ImageError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(error = %e, "view image unusable; building the view");
                break;
            }
        }
    }
    build(config, catalog)
}

/// Loads the catalog's view and builds the tree (aliases from the config).
fn build(config: &Config, catalog: &Catalog) -> anyhow::Result<Loaded> {
    let pointer = catalog.view_pointer()?;
    let mut src = catalog.load_view(unix_now(), config.sync.grace.as_secs() as i64)?;
    let view = crate::sync::build_view(&mut src, aliases(config))?;
    let valid_until = src.valid_until;
    // The pointer read before the view may be older than the view: then the next poll reloads.
    let pointer = if src.generation == pointer.0 { pointer } else { (src.generation, None) };
    drop(src);
    // The catalog rows were far bigger than the compact view built from them; give the freed
    // heap back to the system (glibc keeps it otherwise: ~80 bytes per entry at 1M entries).
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe { libc::malloc_trim(0) };
    Ok(Loaded { view, pointer, valid_until, from: "catalog" })
}

/// `view` with the current status.json, dated `mtime`, and at least generation
/// `min_generation` (the daemon's generations only increase). The tree is shared, not copied.
/// `None` for a view without status.json (every view `build_view` makes has one).
///
/// Status rows depend on the config (configured, unusable, removed): it is read again here, so an
/// entry added and synced while the mount runs shows as it is, not as removed. A config that no
/// longer loads leaves the one the mount started with (and a warning).
fn with_status(config: &Config, catalog: &Catalog, view: &View, mtime: i64, min_generation: u64) -> Option<View> {
    let current = Config::load(&config.path)
        .inspect_err(
            |e| tracing::warn!(error = %e, "status.json: cannot read the config again; using the one mounted with"),
        )
        .ok();
    let (path, content) =
        crate::status::inline_file(current.as_ref().unwrap_or(config), catalog, super::ops::next_schedule);
    let mut view = view.with_inline_file(&path, content, mtime)?;
    if view.generation() < min_generation {
        view.restamp(min_generation);
    }
    Some(view)
}

fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Forks; the parent waits for the child's first line on a pipe and exits with it. Returns the
/// write end in the child.
fn daemonize() -> anyhow::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds we then own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: fds come from pipe above and are owned exactly once each.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other threads exist yet (called before anything spawns one).
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            drop(r);
            // SAFETY: plain syscall in the child.
            unsafe { libc::setsid() };
            Ok(w)
        }
        _ => {
            drop(w);
            let mut msg = String::new();
            std::fs::File::from(r).read_to_string(&mut msg).context("waiting for the mount daemon")?;
            let msg = msg.trim();
            if msg == "ok" {
                std::process::exit(0);
            }
            let msg = if msg.is_empty() { "the mount daemon exited before mounting" } else { msg };
            eprintln!("pmirror-fs: {}", msg.trim_start_matches("error: "));
            std::process::exit(1);
        }
    }
}

/// Tells the waiting parent how mounting went; on success the child's stdio goes to /dev/null.
fn report_ready(fd: OwnedFd, msg: &str) {
    let mut f = std::fs::File::from(fd);
    if let Err(e) = writeln!(f, "{msg}") {
        tracing::warn!(error = %e, "could not report readiness to the parent");
    }
    if msg == "ok" {
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            for target in [0, 1, 2] {
                // SAFETY: dup2 onto the standard fds of this process.
                unsafe { libc::dup2(null.as_raw_fd(), target) };
            }
        }
    }
}
