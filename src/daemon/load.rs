//! What the daemon reads: the store (opened, created at first start), the current generation's
//! view (mapped from its image, else built from the catalog) and the status.json it fills in.

use std::path::{Path, PathBuf};

use super::{DaemonError, Schedule};
use crate::catalog::{Catalog, CatalogError};
use crate::config::Config;
use crate::engine::one_line;
use crate::store::aliases;
use crate::tree::{image, View};

/// The config, the catalog (read-only) and where the next scheduled run comes from.
pub(super) struct Store {
    pub(super) config: Config,
    pub(super) catalog: Catalog,
    pub(super) next_schedule: Schedule,
}

/// The pool's object directory and the catalog, read-only. Creates the store and catalog if no
/// sync ran yet (so the mount can come up first at boot) and migrates an older catalog.
pub(super) fn open_store(config: &Config) -> Result<(PathBuf, Catalog), DaemonError> {
    let store = &config.store.dir;
    if crate::medium::is_medium(store) {
        // A medium is served as it is: nothing is created, migrated, locked or written on it.
        let file = crate::medium::catalog_file(store)
            .ok_or_else(|| CatalogError::Refused(format!("{}: a medium without its catalog.db", store.display())))?;
        return Ok((crate::pool::Pool::existing(store).objects_dir(), Catalog::open_immutable(&file)?));
    }
    let opened = (|| -> Result<_, DaemonError> {
        let pool_dir = crate::pool::Pool::open(store, config.store.fsync)?.objects_dir();
        drop(Catalog::open(store)?);
        Ok((pool_dir, Catalog::open_readonly(store)?))
    })();
    opened.map_err(|e| explain_denied(e, store))
}

/// A store this user may not write fails deep inside SQLite (`attempt to write a readonly
/// database … SQLITE_READONLY_DIRECTORY`); say that instead, and whom the store belongs to.
fn explain_denied(e: DaemonError, store: &Path) -> DaemonError {
    let Err(denied) = crate::pool::may_write(store) else { return e };
    tracing::debug!(error = %one_line(&e), "opening the store failed");
    DaemonError::StoreDenied { store: store.to_owned(), denied, who: crate::pool::who_may_write(store) }
}

/// The view of the catalog's current generation, with where it came from.
pub(super) struct Loaded {
    pub(super) view: View,
    /// The generation and image nonce it shows.
    pub(super) pointer: (u64, Option<u64>),
    /// When it must be reloaded without a publish (grace expiry).
    pub(super) valid_until: Option<i64>,
    /// "image" (mapped) or "catalog" (built here), for the log.
    pub(super) from: &'static str,
}

impl Store {
    /// The current generation's view as of `now`: its image when the publisher wrote one that is
    /// still valid (a map, whatever the catalog's size), else built from the catalog here.
    pub(super) fn load(&self, now: i64) -> Result<Loaded, DaemonError> {
        let images = crate::store::images_dir(&self.config.store.dir);
        // A publish between reading the pointer and opening its image deletes the image: read the
        // pointer again once.
        for _ in 0..2 {
            let pointer = self.catalog.view_pointer()?;
            let (generation, Some(nonce)) = pointer else { break };
            let path = images.join(image::file_name(generation, nonce));
            match image::map(&path) {
                Ok((view, info)) if info.generation == generation && info.valid_until > now => {
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
        self.build(now)
    }

    /// Loads the catalog's view as of `now` and builds the tree (aliases from the config).
    fn build(&self, now: i64) -> Result<Loaded, DaemonError> {
        let pointer = self.catalog.view_pointer()?;
        let mut src = self.catalog.load_view(now, self.config.sync.grace.as_secs() as i64)?;
        let view = crate::store::build_view(&mut src, aliases(&self.config))?;
        let valid_until = src.valid_until;
        // The pointer read before the view may be older than the view: then the next poll reloads.
        let pointer = if src.generation == pointer.0 { pointer } else { (src.generation, None) };
        drop(src);
        trim_heap();
        Ok(Loaded { view, pointer, valid_until, from: "catalog" })
    }

    /// `view` with the current status.json, dated `mtime`, and at least generation
    /// `min_generation` (the daemon's generations only increase). The tree is shared, not
    /// copied. `None` for a view without status.json (every view `build_view` makes has one).
    ///
    /// Status rows depend on the config (configured, unusable, removed): it is read again here,
    /// so an entry added and synced while the mount runs shows as it is, not as removed. A config
    /// that no longer loads leaves the one the mount started with (and a warning).
    pub(super) fn with_status(&self, view: &View, mtime: i64, min_generation: u64) -> Option<View> {
        // `mount --store` on an offline host may run without a config file.
        let current = (self.config.path.exists() || !crate::medium::is_medium(&self.config.store.dir))
            .then(|| Config::load(&self.config.path))
            .transpose()
            .inspect_err(
                |e| tracing::warn!(error = %e, "status.json: cannot read the config again; using the one mounted with"),
            )
            .ok()
            .flatten();
        let config = current.as_ref().unwrap_or(&self.config);
        let (path, content) = crate::status::inline_file(config, &self.catalog, || (self.next_schedule)());
        let mut view = view.with_inline_file(&path, content, mtime)?;
        if view.generation() < min_generation {
            view.restamp(min_generation);
        }
        Some(view)
    }
}

/// The catalog rows were far bigger than the compact view built from them; give the freed heap
/// back to the system (glibc keeps it otherwise: ~80 bytes per entry at 1M entries).
fn trim_heap() {
    // SAFETY: malloc_trim(3) has no preconditions: it only returns free pages at the top of
    // glibc's heaps to the kernel, under glibc's own arena locks, and touches no live allocation.
    // No safe wrapper exists (it is a glibc function, not a system call rustix could wrap).
    unsafe { libc::malloc_trim(0) };
}
