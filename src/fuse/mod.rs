//! The FUSE adapter — the only module that uses `fuser`. Serves a [`View`] read-only: lookups
//! and attributes from the view, file content by passthrough to the pool object (or `pread`
//! when the kernel refuses passthrough), inline files from memory. FUSE threads read the view
//! through a lock-free [`ViewHandle`] (pinned views through the pin table's mutex, held for a few
//! map operations) and never block on the network, the async runtime or SQLite.
//!
//! A switch ([`Mounted::switch`]) stores the new view in one atomic pointer store, then asks the
//! kernel to forget the root's entries: new path walks see the new tree at once (directory
//! inodes carry the generation), files opened before keep reading what they opened (file
//! inodes are pool objects). Below `.pin/<token>/` each token keeps the view it first saw, within
//! bounds ([`pin`]): nginx opens index paths there, one token per connection.
//!
//! ```text
//! <pool>/sha256/ab/abcdef…    the object a file shows (see crate::pool::object_path)
//! ```

mod attr;
mod fs;
mod handle;
mod mountpoint;
mod open;
mod pin;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, INodeNo, MountOption, Notifier, Session, SessionACL};

pub use self::handle::ViewHandle;
pub use self::mountpoint::check_mountpoint;
use self::pin::Pins;
pub use self::pin::{PinBounds, PinStats, MAX_TOKEN_LEN, PIN_DIR};
use crate::pool::cache::Objects;
use crate::tree::View;

/// Source name of the mount in /proc/mounts (`pmirror-fs on /srv/pmirror-fs type fuse`).
pub(crate) const FS_NAME: &str = "pmirror-fs";

#[derive(Clone, Copy, Debug, Default)]
pub struct MountOptions {
    /// Let other users (nginx workers) in; a non-root mounter needs `user_allow_other` in
    /// /etc/fuse.conf.
    pub allow_other: bool,
    /// Mount over a directory that holds files, hiding them until the unmount (refused otherwise:
    /// the kernel allows it silently, and the hidden files look lost).
    pub nonempty: bool,
    /// How long a token under `.pin/` keeps its view.
    pub pins: PinBounds,
}

/// The FUSE device; opening it is the first thing a mount needs (root, on most systems).
const DEV_FUSE: &str = "/dev/fuse";

#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    #[error("mountpoint {}: {source}", path.display())]
    Mountpoint { path: PathBuf, source: std::io::Error },
    #[error("mountpoint {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} is already served by pmirror-fs; stop that daemon or run `fusermount3 -u {}`", path.display(), path.display())]
    AlreadyMounted { path: PathBuf },
    #[error(
        "stale FUSE mount at {} (transport endpoint is not connected) could not be detached ({tried}); \
         run `fusermount3 -u -z {}` or `umount -l {}` as root", path.display(), path.display(), path.display()
    )]
    StaleMount { path: PathBuf, tried: String },
    #[error(
        "mountpoint {} is not empty (it holds {shown}); mounting there would hide its files until the \
         unmount: empty it, choose an empty directory, or pass --nonempty", path.display()
    )]
    NotEmpty { path: PathBuf, shown: String },
    #[error("mounting FUSE at {}: {source}", path.display())]
    Mount { path: PathBuf, source: std::io::Error },
    #[error(
        "mounting FUSE at {}: {cause}: the mount daemon needs root (it mounts with mount(2) on {DEV_FUSE}, \
         which this user may not open); run it as root", path.display()
    )]
    NeedsRoot { path: PathBuf, cause: String },
    #[error(
        "mounting FUSE at {}: {cause} (as a user other than root the mount goes through fusermount3: \
         the mountpoint must be yours, and other users' access needs user_allow_other in /etc/fuse.conf); \
         the supported setup runs it as root", path.display()
    )]
    UserMount { path: PathBuf, cause: String },
    #[error("unmounting {}: {source}", path.display())]
    Unmount { path: PathBuf, source: std::io::Error },
}

/// The thread that looks up the root entries a switch expired (their names, below
/// `mountpoint`), so that the kernel drops the old trees below them in this thread rather than
/// in a client's request. It must never be a FUSE request thread (a lookup there would wait for
/// itself). Ends when the sender is dropped.
///
/// Then it expires the entries once more and looks them up again. A revalidating lookup does
/// not hold the directory lock an expiry takes: one answered from the view before a switch
/// (this thread's own, after the previous switch, or a client's) whose reply lands after that
/// switch's expiry renews the old entry for a day — `status.json` and the front page then stay
/// as they were until the next switch (seen with a publish and a run's end 20 ms apart). Once
/// this thread's lookups have returned, every answer after that comes from the new view.
fn spawn_revalidator(
    dev: std::os::fd::OwnedFd,
    notifier: Notifier,
    mountpoint: PathBuf,
) -> std::io::Result<std::sync::mpsc::Sender<Vec<String>>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<String>>();
    std::thread::Builder::new().name("revalidate".into()).spawn(move || {
        let look_up = |names: &[String]| {
            for name in names {
                // The result does not matter: a name the new view lacks is simply not found.
                let _ = std::fs::symlink_metadata(mountpoint.join(name));
            }
        };
        for names in rx {
            let started = std::time::Instant::now();
            look_up(&names);
            tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "old tree dropped from the kernel cache");
            if expire_root_entries(&dev, &notifier, &names) > 0 {
                tracing::debug!("expiring the root entries again failed for some");
            }
            look_up(&names);
        }
    })?;
    Ok(tx)
}

/// Expires the root entries `names` in the kernel's cache (a plain invalidation on kernels
/// without FUSE_EXPIRE_ONLY); returns how many failed.
fn expire_root_entries(dev: &std::os::fd::OwnedFd, notifier: &Notifier, names: &[impl AsRef<str>]) -> usize {
    let mut failed = 0;
    for name in names {
        let name = name.as_ref();
        let result = match expire_entry(dev, INodeNo::ROOT, name) {
            // A kernel without FUSE_EXPIRE_ONLY (before 6.2) rejects the flag.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => notifier.inval_entry(INodeNo::ROOT, OsStr::new(name)),
            other => other,
        };
        if let Err(e) = result {
            failed += 1;
            tracing::debug!(name, error = %e, "invalidating a root entry failed");
        }
    }
    failed
}

/// How often expired pin tokens are forgotten (and dropped from the kernel's cache): at the
/// granularity a busy token is seen with (the kernel keeps its entry 1 s).
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the pin table's figures are logged (when they changed).
const PIN_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// The thread that forgets expired pin tokens every [`SWEEP_INTERVAL`] and drops their entries
/// from the kernel's cache (their subtrees are small: the few directories nginx walked). The
/// table lock is not held while notifying: a lookup in `.pin` may be waiting for it while the
/// kernel holds the directory the notification needs. Ends when the sender is dropped.
fn spawn_sweeper(pins: Arc<Pins>, notifier: Notifier) -> std::io::Result<std::sync::mpsc::Sender<()>> {
    use std::os::unix::ffi::OsStrExt as _;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new().name("pin-sweep".into()).spawn(move || {
        let mut reported = (std::time::Instant::now(), PinStats::default());
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(SWEEP_INTERVAL) {
            let expired = pins.sweep(std::time::Instant::now());
            for name in &expired {
                let dropped = notifier.inval_entry(INodeNo(crate::tree::inode::PIN_DIR_INO), OsStr::from_bytes(name));
                match dropped {
                    // The kernel held no entry for it: nothing to drop.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => tracing::debug!(error = %e, "dropping an expired pin token from the kernel cache failed"),
                    Ok(()) => {}
                }
            }
            let stats = pins.stats();
            if !expired.is_empty() {
                tracing::debug!(
                    forgotten = expired.len(),
                    tokens = stats.tokens,
                    views = stats.views,
                    "pin tokens expired"
                );
            }
            // What the table holds, in the journal every PIN_REPORT_INTERVAL while it changes.
            if reported.0.elapsed() >= PIN_REPORT_INTERVAL && stats != reported.1 {
                tracing::info!(
                    tokens = stats.tokens,
                    views = stats.views,
                    pinned = stats.pinned,
                    forgotten = stats.forgotten,
                    "connection pins"
                );
                reported = (std::time::Instant::now(), stats);
            }
        }
    })?;
    Ok(tx)
}

/// `FUSE_NOTIFY_INVAL_ENTRY` with `FUSE_EXPIRE_ONLY` (linux/fuse.h, protocol 7.38): mark the
/// kernel's dentry `name` in `parent` expired without pruning what is cached below it. ENOENT
/// (nothing cached) is success.
fn expire_entry(dev: &std::os::fd::OwnedFd, parent: INodeNo, name: &str) -> std::io::Result<()> {
    const FUSE_NOTIFY_INVAL_ENTRY: i32 = 3;
    const FUSE_EXPIRE_ONLY: u32 = 1;
    let name = name.as_bytes();
    let namelen = u32::try_from(name.len()).map_err(|_| std::io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
    // fuse_out_header { len, error = notify code, unique = 0 } + fuse_notify_inval_entry_out
    // { parent, namelen, flags } + name + NUL, in native byte order.
    let mut msg = Vec::with_capacity(16 + 16 + name.len() + 1);
    let len = (16 + 16 + name.len() + 1) as u32;
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&FUSE_NOTIFY_INVAL_ENTRY.to_ne_bytes());
    msg.extend_from_slice(&0u64.to_ne_bytes());
    msg.extend_from_slice(&parent.0.to_ne_bytes());
    msg.extend_from_slice(&namelen.to_ne_bytes());
    msg.extend_from_slice(&FUSE_EXPIRE_ONLY.to_ne_bytes());
    msg.extend_from_slice(name);
    msg.push(0);
    match rustix::io::write(dev, &msg) {
        Ok(n) if n == msg.len() => Ok(()),
        Ok(_) => Err(std::io::Error::other("short write of a FUSE notification")),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A mounted view; dropping it unmounts too (prefer [`Mounted::unmount`], which waits).
pub struct Mounted {
    session: BackgroundSession,
    notifier: Notifier,
    /// A duplicate of the session's /dev/fuse descriptor, for notifications fuser cannot send
    /// (an entry invalidation with FUSE_EXPIRE_ONLY).
    dev: std::os::fd::OwnedFd,
    /// Root entry names the revalidation thread looks up after a switch (see [`Mounted::switch`]).
    revalidate: std::sync::mpsc::Sender<Vec<String>>,
    views: ViewHandle,
    mountpoint: PathBuf,
    passthrough: Arc<AtomicBool>,
    pins: Arc<Pins>,
    /// Dropped with the mount: the sweeper thread ends.
    _sweeper: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("mountpoint", &self.mountpoint).field("views", &self.views).finish()
    }
}

/// Mount `view` read-only at `mountpoint`, serving file content from `objects` (the pool
/// directory holding `sha256/`, or a read cache in front of it). Checks the mountpoint first ([`check_mountpoint`]). Returns once the
/// kernel handshake is done; requests are served by background threads (one per CPU).
pub fn mount(
    mountpoint: &Path,
    view: impl Into<ViewHandle>,
    objects: impl Into<Objects>,
    opts: MountOptions,
) -> Result<Mounted, FuseError> {
    mount_with(mountpoint, view.into(), objects.into(), opts, ReadPath::Passthrough)
}

/// How file content reaches readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadPath {
    /// Kernel passthrough to the pool file when the kernel grants it, else pread.
    Passthrough,
    /// Always answer reads with pread (tests of the fallback).
    #[cfg_attr(not(test), allow(dead_code))]
    Pread,
}

fn mount_with(
    mountpoint: &Path,
    views: ViewHandle,
    pool_dir: Objects,
    opts: MountOptions,
    read_path: ReadPath,
) -> Result<Mounted, FuseError> {
    check_mountpoint(mountpoint, &opts)?;
    let mountpoint = &std::fs::canonicalize(mountpoint)
        .map_err(|source| FuseError::Mountpoint { path: mountpoint.to_owned(), source })?;
    let pins = Arc::new(Pins::new(opts.pins));
    let (session, passthrough) = session(mountpoint, views.clone(), pool_dir, opts, read_path, Arc::clone(&pins))?;
    let mount_error = |source| FuseError::Mount { path: mountpoint.to_owned(), source };
    let notifier = session.notifier();
    let dev = {
        use std::os::fd::AsFd as _;
        session.as_fd().try_clone_to_owned().map_err(mount_error)?
    };
    let session = session.spawn().map_err(mount_error)?;
    tracing::info!(mountpoint = %mountpoint.display(), passthrough = passthrough.load(Ordering::Relaxed), "view mounted");
    let revalidate = spawn_revalidator(dev.try_clone().map_err(mount_error)?, notifier.clone(), mountpoint.to_owned())
        .map_err(mount_error)?;
    let _sweeper = spawn_sweeper(Arc::clone(&pins), notifier.clone()).map_err(mount_error)?;
    let mountpoint = mountpoint.to_owned();
    Ok(Mounted { session, notifier, dev, revalidate, views, mountpoint, passthrough, pins, _sweeper })
}

/// Mount and handshake, without starting the request threads.
fn session(
    mountpoint: &Path,
    views: ViewHandle,
    pool: Objects,
    opts: MountOptions,
    read_path: ReadPath,
    pins: Arc<Pins>,
) -> Result<(Session<fs::MirrorFs>, Arc<AtomicBool>), FuseError> {
    let passthrough = Arc::new(AtomicBool::new(read_path == ReadPath::Passthrough));
    // A read cache copies objects of up to 64 MiB while their open waits: two more threads keep
    // lookups answered meanwhile.
    let copy_threads = if matches!(pool, Objects::Cached(_)) { 2 } else { 0 };
    let fs = fs::MirrorFs { views, pool, open: Default::default(), passthrough: Arc::clone(&passthrough), pins };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(FS_NAME.to_owned()),
        MountOption::Subtype(FS_NAME.to_owned()),
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::DefaultPermissions,
    ];
    config.acl = if opts.allow_other { SessionACL::All } else { SessionACL::Owner };
    // One request thread per CPU, each with its own /dev/fuse fd: ≈60 % more warm opens with two
    // readers (measured: docs/fuse-notes.md). Handlers never wait for I/O beyond the pool file, so more would only idle.
    config.n_threads = Some(std::thread::available_parallelism().map_or(1, |n| n.get()) + copy_threads);
    config.clone_fd = true;
    let session = Session::new(fs, mountpoint, &config).map_err(|source| mount_failed(mountpoint, source))?;
    Ok((session, passthrough))
}

/// A failed mount, explained when the reason is not being root: fuser reports an unopenable
/// /dev/fuse as a bare errno; when this user may open it, fuser's fallback fusermount3 failed, in
/// its own words, for a reason of its own (the mountpoint, fuse.conf), which is said as it is.
fn mount_failed(path: &Path, source: std::io::Error) -> FuseError {
    if rustix::process::geteuid().is_root() {
        return FuseError::Mount { path: path.to_owned(), source };
    }
    match std::fs::OpenOptions::new().read(true).write(true).open(DEV_FUSE) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::PermissionDenied) => {
            FuseError::NeedsRoot { path: path.to_owned(), cause: format!("{DEV_FUSE}: {e}") }
        }
        Err(e) => FuseError::Mount { path: path.to_owned(), source: e },
        Ok(_) => FuseError::UserMount { path: path.to_owned(), cause: source.to_string().trim().replace('\n', "; ") },
    }
}

impl Mounted {
    pub fn view(&self) -> &ViewHandle {
        &self.views
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the kernel still serves the mount: false once it was unmounted from outside
    /// (`fusermount3 -u`, `umount`) and the request threads ended.
    pub fn is_alive(&self) -> bool {
        !self.session.guard.is_finished()
    }

    /// The pin table's figures now.
    pub fn pin_stats(&self) -> PinStats {
        self.pins.stats()
    }

    /// Whether reads go through kernel passthrough (false: answered from the pool by pread).
    pub fn passthrough(&self) -> bool {
        self.passthrough.load(Ordering::Relaxed)
    }

    /// Make `new` the view new lookups see, then expire the kernel's cached root entries so the
    /// next path walk starts in the new tree. Open files keep their content.
    ///
    /// The entries are only *expired* (FUSE_EXPIRE_ONLY), not invalidated: a plain invalidation
    /// prunes every cached dentry below the entry while holding the root directory's lock, so
    /// every lookup in the mount waited for it — about 3 s after a walk of a million-entry view.
    /// Expired, the next lookup of each entry revalidates it, sees the new directory inode and
    /// drops the old subtree without that lock. A thread of ours does those lookups at once, so
    /// it pays for the pruning (seconds after a walk of a million-entry view) rather than a
    /// client, and the daemon's loop is free for the next switch meanwhile.
    pub fn switch(&self, new: View) {
        let old = self.views.store(new);
        let current = self.views.current();
        let names: BTreeSet<&str> =
            old.root().children_from(0).chain(current.root().children_from(0)).map(|n| n.name()).collect();
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        let mut failed = expire_root_entries(&self.dev, &self.notifier, &names);
        if let Err(e) = self.notifier.inval_inode(INodeNo::ROOT, 0, 0) {
            failed += 1;
            tracing::debug!(error = %e, "invalidating the root inode failed");
        }
        if failed > 0 {
            tracing::warn!(failed, "some kernel cache invalidations failed; old entries may show until their TTL");
        }
        if self.revalidate.send(names).is_err() {
            tracing::warn!("the revalidation thread is gone; the first lookups after this switch prune the old tree");
        }
        tracing::info!(
            from = old.generation(),
            to = current.generation(),
            entries = current.entry_count(),
            "view switched"
        );
    }

    /// Let go of a mount the kernel already dropped (unmounted from outside, [`Mounted::is_alive`]
    /// false) without unmounting anything. Dropping it would not do: fuser 0.18 then unmounts the
    /// mountpoint *path* — its is-mounted check takes a disconnected /dev/fuse for a live mount —
    /// and detaches whatever was mounted there since (a daemon started right after
    /// `fusermount3 -u`). The session's descriptor and thread handle leak; call it on the way out.
    pub fn forget_unmounted(self) {
        let Mounted { session, .. } = self;
        std::mem::forget(session);
    }

    /// Unmount and wait for the request threads to finish; a failure is logged.
    pub fn unmount(self) {
        let mountpoint = self.mountpoint.clone();
        if let Err(e) = self.try_unmount() {
            tracing::warn!(mountpoint = %mountpoint.display(), error = %e, "unmounting failed");
        }
    }

    /// Unmount and wait for the request threads to finish. While something still uses the
    /// mount (nginx holding cached fds), retry briefly, then detach it lazily: it vanishes once
    /// the last user lets go, and the mountpoint is usable again at once (never left stale).
    pub fn try_unmount(self) -> Result<(), FuseError> {
        let path = self.mountpoint;
        match self.session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => mountpoint::detach_busy(&path),
            Err(source) => Err(FuseError::Unmount { path, source }),
        }
    }
}
