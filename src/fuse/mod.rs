//! The FUSE adapter — the only module that uses `fuser`. Serves a [`View`] read-only: lookups
//! and attributes from the view, file content by passthrough to the pool object (or `pread`
//! when the kernel refuses passthrough), inline files from memory. FUSE threads read the view
//! through a lock-free [`ViewHandle`] and never block on the network, the async runtime or SQLite.
//!
//! A switch ([`Mounted::switch`]) stores the new view in one atomic pointer store, then asks the
//! kernel to forget the root's entries: new path walks see the new tree at once (directory
//! inodes carry the generation), files opened before keep reading what they opened (file
//! inodes are pool objects).
//!
//! ```text
//! <pool>/sha256/ab/abcdef…    the object a file shows (see pool_object_path)
//! ```

mod fs;
mod handle;
mod mountpoint;
mod open;
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
use crate::digest::Sha256;
use crate::tree::View;

/// Source name of the mount in /proc/mounts (`pmirror-fs on /srv/pmirror-fs type fuse`).
pub(crate) const FS_NAME: &str = "pmirror-fs";

#[derive(Clone, Copy, Debug, Default)]
pub struct MountOptions {
    /// Let other users (nginx workers) in; a non-root mounter needs `user_allow_other` in
    /// /etc/fuse.conf.
    pub allow_other: bool,
}

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
    #[error("mounting FUSE at {}: {source}", path.display())]
    Mount { path: PathBuf, source: std::io::Error },
    #[error("unmounting {}: {source}", path.display())]
    Unmount { path: PathBuf, source: std::io::Error },
}

/// Where the pool keeps the object with this digest: `<pool>/sha256/<first 2 hex>/<hex>`.
pub fn pool_object_path(pool_dir: &Path, sha256: &Sha256) -> PathBuf {
    let hex = sha256.to_hex();
    pool_dir.join("sha256").join(&hex[..2]).join(&hex)
}

/// A mounted view; dropping it unmounts too (prefer [`Mounted::unmount`], which waits).
pub struct Mounted {
    session: BackgroundSession,
    notifier: Notifier,
    views: ViewHandle,
    mountpoint: PathBuf,
    passthrough: Arc<AtomicBool>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("mountpoint", &self.mountpoint).field("views", &self.views).finish()
    }
}

/// Mount `view` read-only at `mountpoint`, serving file content from `pool_dir` (the directory
/// holding `sha256/`). Checks the mountpoint first ([`check_mountpoint`]). Returns once the
/// kernel handshake is done; requests are served by background threads (one per CPU).
pub fn mount(
    mountpoint: &Path,
    view: impl Into<ViewHandle>,
    pool_dir: PathBuf,
    opts: MountOptions,
) -> Result<Mounted, FuseError> {
    mount_with(mountpoint, view.into(), pool_dir, opts, ReadPath::Passthrough)
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
    pool_dir: PathBuf,
    opts: MountOptions,
    read_path: ReadPath,
) -> Result<Mounted, FuseError> {
    check_mountpoint(mountpoint)?;
    let mountpoint = &std::fs::canonicalize(mountpoint)
        .map_err(|source| FuseError::Mountpoint { path: mountpoint.to_owned(), source })?;
    let (session, passthrough) = session(mountpoint, views.clone(), pool_dir, opts, read_path)?;
    let mount_error = |source| FuseError::Mount { path: mountpoint.to_owned(), source };
    let notifier = session.notifier();
    let session = session.spawn().map_err(mount_error)?;
    tracing::info!(mountpoint = %mountpoint.display(), passthrough = passthrough.load(Ordering::Relaxed), "view mounted");
    Ok(Mounted { session, notifier, views, mountpoint: mountpoint.to_owned(), passthrough })
}

/// Mount and handshake, without starting the request threads.
fn session(
    mountpoint: &Path,
    views: ViewHandle,
    pool: PathBuf,
    opts: MountOptions,
    read_path: ReadPath,
) -> Result<(Session<fs::MirrorFs>, Arc<AtomicBool>), FuseError> {
    let passthrough = Arc::new(AtomicBool::new(read_path == ReadPath::Passthrough));
    let fs = fs::MirrorFs { views, pool, open: Default::default(), passthrough: Arc::clone(&passthrough) };
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
    // readers (FUSE-NOTES). Handlers never block, so more threads would only idle.
    config.n_threads = Some(std::thread::available_parallelism().map_or(1, |n| n.get()));
    config.clone_fd = true;
    let session = Session::new(fs, mountpoint, &config)
        .map_err(|source| FuseError::Mount { path: mountpoint.to_owned(), source })?;
    Ok((session, passthrough))
}

impl Mounted {
    pub fn view(&self) -> &ViewHandle {
        &self.views
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether reads go through kernel passthrough (false: answered from the pool by pread).
    pub fn passthrough(&self) -> bool {
        self.passthrough.load(Ordering::Relaxed)
    }

    /// Make `new` the view new lookups see, then drop the kernel's cached root entries so the
    /// next path walk starts in the new tree. Open files keep their content.
    pub fn switch(&self, new: View) {
        let old = self.views.store(new);
        let current = self.views.current();
        let names: BTreeSet<&str> =
            old.root().children_from(0).chain(current.root().children_from(0)).map(|n| n.name()).collect();
        let mut failed = 0;
        for name in &names {
            if let Err(e) = self.notifier.inval_entry(INodeNo::ROOT, OsStr::new(name)) {
                failed += 1;
                tracing::debug!(name, error = %e, "invalidating a root entry failed");
            }
        }
        if let Err(e) = self.notifier.inval_inode(INodeNo::ROOT, 0, 0) {
            failed += 1;
            tracing::debug!(error = %e, "invalidating the root inode failed");
        }
        if failed > 0 {
            tracing::warn!(failed, "some kernel cache invalidations failed; old entries may show until their TTL");
        }
        tracing::info!(
            from = old.generation(),
            to = current.generation(),
            entries = current.entry_count(),
            "view switched"
        );
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
