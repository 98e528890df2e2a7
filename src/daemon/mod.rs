//! The mount daemon's loop, as a library type that needs no mount: [`Daemon`] polls the catalog's
//! publish generation and switches the view it serves whenever it changes (or when a superseded
//! snapshot leaves the grace window), and fills in status.json after every run start and end.
//!
//! What it switches is a [`ViewTarget`]: the FUSE mount ([`crate::fuse::Mounted`]) in `pmirror-fs
//! mount`, a bare [`ViewHandle`] in tests. Daemonizing, signals, sd_notify and printing are the
//! CLI's; when the sync timer fires next is passed in ([`Schedule`]), so nothing here spawns a
//! process.
//!
//! ```text
//! start   open the store, load the view (map its image or build it), fill status.json, mount
//! tick    poll: generation + status stamp    (Catalog::view_pointer, status_stamp)
//!         switch: new generation or grace expiry → load, fill status.json, target.switch
//!         refresh_status: a run started or ended → same tables, new status.json
//! run     tick every POLL_INTERVAL until told to stop or the target is gone
//! ```
//!
//! The tree is built on the caller's thread (the daemon's main thread), never on a FUSE thread;
//! FUSE threads only read the current view through an atomic pointer.

mod load;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{CatalogError, StatusStamp};
use crate::config::Config;
use crate::engine::{one_line, unix_now};
use crate::fuse::{FuseError, Mounted, ViewHandle};
use crate::pool::PoolError;
use crate::tree::{BuildError, View, STATUS_FILE};
use load::Store;

/// How often [`Daemon::run`] checks the catalog's generation. A publish becomes visible to new
/// opens within this time (+ the tree build); the query is a single-row read, so 20 ms costs
/// nothing and keeps publish → visible well under 100 ms on a mirror-sized view.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// A poll that takes longer is logged.
const SLOW_TICK: Duration = Duration::from_secs(1);

/// When the sync timer fires next (Unix seconds), asked whenever status.json is filled in.
pub type Schedule = Box<dyn Fn() -> Option<i64> + Send>;

/// What the daemon switches: the view new lookups see.
pub trait ViewTarget {
    /// The view served now.
    fn current(&self) -> Arc<View>;
    /// Serve `view` from now on.
    fn switch(&self, view: View);
    /// False once nothing serves the view any more (unmounted from outside): [`Daemon::run`] ends.
    fn is_alive(&self) -> bool {
        true
    }
}

impl ViewTarget for Mounted {
    fn current(&self) -> Arc<View> {
        self.view().current()
    }

    fn switch(&self, view: View) {
        Mounted::switch(self, view);
    }

    fn is_alive(&self) -> bool {
        Mounted::is_alive(self)
    }
}

impl ViewTarget for ViewHandle {
    fn current(&self) -> Arc<View> {
        ViewHandle::current(self)
    }

    fn switch(&self, view: View) {
        self.store(view);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The store cannot be written by this user (the daemon creates and migrates the catalog).
    #[error(
        "cannot open the store {}: {denied}: the mount daemon writes the store (it creates and migrates the \
         catalog), {who}",
        store.display()
    )]
    StoreDenied { store: PathBuf, denied: std::io::Error, who: String },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Mount(#[from] FuseError),
    #[error(transparent)]
    Image(#[from] crate::tree::image::ImageError),
    /// A shared store that is not there: the shared filesystem is not mounted (yet).
    #[error(
        "the shared store {} does not exist: is the shared filesystem mounted? ([store] shared: the mount daemon \
         creates nothing in it)",
        store.display()
    )]
    SharedMissing { store: PathBuf },
    #[error("{}: {source}", path.display())]
    Shared { path: PathBuf, source: std::io::Error },
    #[error("[mount] cache-dir {}: {source}", dir.display())]
    Cache { dir: PathBuf, source: std::io::Error },
}

/// What one poll of the catalog read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poll {
    /// The generation and the nonce of its view image.
    pub pointer: (u64, Option<u64>),
    /// What status.json depends on.
    pub status: StatusStamp,
}

/// What one [`Daemon::tick`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing changed.
    Unchanged,
    /// A new generation's view (or the same one after a grace expiry) is served.
    Switched { generation: u64 },
    /// Only status.json changed (a run started or ended).
    StatusRefreshed,
    /// Something failed (logged); the current view stays.
    Kept,
}

/// Why [`Daemon::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The stop flag was set (a signal).
    Stopped,
    /// The target is gone ([`ViewTarget::is_alive`]: unmounted from outside).
    TargetGone,
}

/// The daemon's state between polls, and the target it switches.
pub struct Daemon<T> {
    store: Store,
    target: T,
    /// The catalog generation and image nonce the served view shows.
    pointer: (u64, Option<u64>),
    /// When the view must be reloaded without a publish (grace expiry).
    valid_until: Option<i64>,
    /// The runs status.json shows, and its mtime.
    status: StatusStamp,
    status_mtime: i64,
    /// After a failed poll or load, the next attempt waits until this second.
    retry_at: i64,
}

impl<T: ViewTarget> Daemon<T> {
    /// Opens the store (creating it if no sync ran yet, so the mount can come up first at boot),
    /// loads the view as of `now` with its status.json, and hands it to `mount` (with the pool's
    /// object directory), whose result is the target every later switch goes to.
    pub fn start(
        config: Config,
        next_schedule: Schedule,
        now: i64,
        mount: impl FnOnce(View, PathBuf) -> Result<T, DaemonError>,
    ) -> Result<Daemon<T>, DaemonError> {
        let (pool_dir, catalog) = load::open_store(&config)?;
        let store = Store { config, catalog, next_schedule };
        let loaded = store.load(now)?;
        let status = store.status_stamp()?;
        let status_mtime = status.newest.max(1);
        let view = store.with_status(&loaded.view, status_mtime, 0).unwrap_or(loaded.view);
        let target = mount(view, pool_dir)?;
        tracing::info!(generation = loaded.pointer.0, from = loaded.from, "view loaded");
        let (pointer, valid_until) = (loaded.pointer, loaded.valid_until);
        Ok(Daemon { store, target, pointer, valid_until, status, status_mtime, retry_at: 0 })
    }

    /// The catalog generation the served view shows.
    pub fn generation(&self) -> u64 {
        self.pointer.0
    }

    pub fn target(&self) -> &T {
        &self.target
    }

    pub fn into_target(self) -> T {
        self.target
    }

    /// The catalog's generation and status stamp (a shared store's pointer and status
    /// document), read now.
    pub fn poll(&self) -> Result<Poll, DaemonError> {
        Ok(Poll { pointer: self.store.pointer()?, status: self.store.status_stamp()? })
    }

    /// Whether the served view changed without a publish by `now`: a superseded snapshot left
    /// the grace window.
    pub fn expired(&self, now: i64) -> bool {
        self.valid_until.is_some_and(|t| now >= t)
    }

    /// Loads the current generation's view as of `now`, fills in status.json (`status`, the
    /// stamp polled with it) and switches the target to it. Returns the generation it shows; on
    /// an error the current view stays.
    pub fn switch(&mut self, status: StatusStamp, now: i64) -> Result<u64, DaemonError> {
        self.date_status(&status, now);
        let next_generation = self.target.current().generation() + 1;
        let loaded = self.store.load(now)?;
        tracing::info!(generation = loaded.pointer.0, from = loaded.from, "view loaded");
        self.pointer = loaded.pointer;
        self.valid_until = loaded.valid_until;
        self.status = status;
        let view = self.store.with_status(&loaded.view, self.status_mtime, next_generation);
        self.target.switch(view.unwrap_or(loaded.view));
        tracing::info!(generation = self.pointer.0, "switched to a new view");
        Ok(self.pointer.0)
    }

    /// A run started or ended (`status` differs from what status.json shows): switches to a view
    /// that shares the served one's tables and differs only in status.json. False when the view
    /// has no status.json (logged).
    pub fn refresh_status(&mut self, status: StatusStamp, now: i64) -> bool {
        self.date_status(&status, now);
        self.status = status;
        let current = self.target.current();
        match self.store.with_status(&current, self.status_mtime, current.generation() + 1) {
            Some(view) => {
                self.target.switch(view);
                tracing::info!(generation = current.generation() + 1, "status.json refreshed (a run started or ended)");
                true
            }
            None => {
                tracing::warn!("the view has no {STATUS_FILE}; not refreshed");
                false
            }
        }
    }

    /// A status.json showing `status` is dated `now` (never before the change it shows, and
    /// always later than the document it replaces), so If-Modified-Since sees every change.
    fn date_status(&mut self, status: &StatusStamp, now: i64) {
        if *status != self.status {
            self.status_mtime = now.max(status.newest).max(self.status_mtime + 1);
        }
    }

    /// One poll as of `now`: switch to a new generation's view (or rebuild after a grace
    /// expiry), or refresh status.json after a run; failures are logged and keep the view.
    pub fn tick(&mut self, now: i64) -> Tick {
        if now < self.retry_at {
            return Tick::Kept;
        }
        let poll = match self.poll() {
            Ok(poll) => poll,
            Err(e) => {
                tracing::warn!(error = %one_line(&e), "reading the catalog generation failed; keeping the current view");
                self.retry_at = now + 1;
                return Tick::Kept;
            }
        };
        if poll.pointer != self.pointer || self.expired(now) {
            match self.switch(poll.status, now) {
                Ok(generation) => Tick::Switched { generation },
                Err(e) => {
                    // Tried again in a second, not at every poll (an image a shared filesystem
                    // cannot read now may be readable then; the log is not flooded meanwhile).
                    tracing::error!(error = %one_line(&e), "loading the new view failed; keeping the current one");
                    self.retry_at = now + 1;
                    Tick::Kept
                }
            }
        } else if poll.status != self.status {
            if self.refresh_status(poll.status, now) {
                Tick::StatusRefreshed
            } else {
                Tick::Kept
            }
        } else {
            Tick::Unchanged
        }
    }

    /// Ticks every [`POLL_INTERVAL`] until `stop` is set or the target is gone.
    pub fn run(&mut self, stop: &AtomicBool) -> Ended {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(POLL_INTERVAL);
            if !self.target.is_alive() {
                return Ended::TargetGone;
            }
            let started = std::time::Instant::now();
            self.tick(unix_now());
            // A shared filesystem can hold a read for seconds (docs/cluster.md): say so.
            let took = started.elapsed();
            if took > SLOW_TICK {
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    "a poll of the store took over a second; publishes and status.json wait meanwhile"
                );
            }
        }
        Ended::Stopped
    }
}
