//! `pmirror-fs mount`: the daemon. Mounts the view, then polls the catalog's publish generation
//! and swaps in a freshly built view whenever it changes (or when a superseded snapshot leaves the
//! grace window). Detaches once mounted unless `--foreground`; SIGTERM/SIGINT unmount cleanly,
//! and an unmount from outside (`fusermount3 -u`, `umount`) ends the daemon. Run as root it
//! mounts for every user (nginx's workers) unless `--private`, and says so in one line.
//!
//! The loop itself (polling, loading, switching, status.json) is [`crate::daemon::Daemon`]; this
//! module is its process around it: arguments, fork-after-ready, signals, sd_notify, printing.

use crate::config::Config;
use crate::daemon::{Daemon, DaemonError, Ended};
use crate::engine::unix_now;
use crate::fuse::{self, MountOptions};
use crate::pool::cache::{Objects, ReadCache};
use anyhow::Context as _;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
    let euid = rustix::process::geteuid().as_raw();
    let access = Access::choose(switches, euid);
    let pins = fuse::PinBounds { idle: config.mount.pin_idle, lifetime: config.mount.pin_lifetime };
    let opts = MountOptions { allow_other: access == Access::AllUsers, nonempty: switches.nonempty, pins };
    fuse::check_mountpoint(mountpoint, &opts)?;
    // Fork before any thread exists (FUSE session, tracing): the parent waits until the child
    // reports "mounted" or an error, so `mount` exits non-zero when mounting fails.
    let mut ready = if switches.foreground { None } else { Some(daemonize()?) };
    let cache = config.mount.cache.clone();
    let mount = |view, pool_dir: PathBuf| {
        let objects = match cache {
            // The cache is opened in the daemon (after the fork), so its lock is the daemon's.
            Some(c) => Objects::Cached(
                ReadCache::open(&c.dir, c.size, pool_dir)
                    .map_err(|source| DaemonError::Cache { dir: c.dir.clone(), source })?,
            ),
            None => Objects::Pool(pool_dir),
        };
        Ok(fuse::mount(mountpoint, view, objects, opts)?)
    };
    let daemon = match Daemon::start(config.clone(), Box::new(super::ops::next_schedule), unix_now(), mount) {
        Ok(daemon) => daemon,
        // The waiting parent prints the error (on the terminal or in the cron mail that ran
        // `mount`); printing it here as well showed it twice.
        Err(e) => match ready.take() {
            Some(fd) => {
                report_ready(fd, &format!("error: {}", super::one_line(&anyhow::Error::from(e))));
                return Ok(1);
            }
            None => return Err(e.into()),
        },
    };
    install_signal_handlers();
    tracing::info!(mountpoint = %mountpoint.display(), generation = daemon.generation(), "mounted");
    let mounted_at = daemon.target().mountpoint();
    let line = access.mounted_line(mounted_at, euid);
    match ready.take() {
        Some(fd) => {
            eprintln!("pmirror-fs: {line}; `fusermount3 -u {}` stops it", mounted_at.display());
            report_ready(fd, "ok");
        }
        None => eprintln!("pmirror-fs: {line}"),
    }
    super::sdnotify::ready();
    serve(daemon)?;
    Ok(0)
}

/// Polls the catalog and switches views until a signal (then unmounts) or an unmount from
/// outside (an error: systemd's Restart=on-failure mounts it again).
fn serve(mut daemon: Daemon<fuse::Mounted>) -> anyhow::Result<()> {
    match daemon.run(&STOP) {
        Ended::Stopped => {
            tracing::info!("signal received, unmounting");
            super::sdnotify::stopping();
            daemon.into_target().unmount();
            Ok(())
        }
        Ended::TargetGone => {
            super::sdnotify::stopping();
            let mounted = daemon.into_target();
            let mountpoint = mounted.mountpoint().to_owned();
            mounted.forget_unmounted();
            anyhow::bail!("{} was unmounted from outside (fusermount3 -u or umount); exiting", mountpoint.display())
        }
    }
}

fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: installing a handler has no memory-safety preconditions beyond the handler
        // itself being safe to run at any point of any thread: `on_signal` is an `extern "C"
        // fn(c_int)` (the type signal(2) calls) that only stores to a static atomic, which is
        // async-signal-safe. No safe wrapper exists in std or rustix.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Forks; the parent waits for the child's first line on a pipe and exits with it. Returns the
/// write end in the child.
fn daemonize() -> anyhow::Result<OwnedFd> {
    let (r, w) = rustix::pipe::pipe().map_err(std::io::Error::from).context("pipe")?;
    // SAFETY: fork(2) in a multi-threaded process leaves the child with only async-signal-safe
    // calls until exec; `run` calls this before anything starts a thread (the FUSE session's
    // request and revalidation threads start after it), so parent and child are ordinary
    // single-threaded processes and may do anything. Neither touches the other's memory. rustix
    // has fork only as an unsafe runtime call, std none.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            drop(r);
            // Detach from the terminal's session; a process group leader cannot, which a forked
            // child never is, so the error is only logged.
            if let Err(e) = rustix::process::setsid() {
                tracing::debug!(error = %e, "setsid failed");
            }
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
            use rustix::stdio::{dup2_stderr, dup2_stdin, dup2_stdout};
            for redirected in [dup2_stdin(&null), dup2_stdout(&null), dup2_stderr(&null)] {
                if let Err(e) = redirected {
                    tracing::debug!(error = %e, "redirecting a standard fd to /dev/null failed");
                }
            }
        }
    }
}
