//! What the daemon reads: the store (opened, created at first start), the current generation's
//! view (mapped from its image, else built from the catalog) and the status.json it fills in.
//!
//! A shared store (`[store] shared`, several hosts mounting it) is read without the catalog:
//! the pointer file names the image to map, the writer's status document is status.json, and
//! nothing in the store is created or written (`crate::store::shared`).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::{DaemonError, Schedule};
use crate::catalog::{Catalog, CatalogError, StatusStamp};
use crate::config::Config;
use crate::engine::one_line;
use crate::store::{aliases, shared};
use crate::tree::source::ViewSource;
use crate::tree::{image, View, STATUS_FILE};

/// The config, the catalog (read-only; none on a shared store) and where the next scheduled
/// run comes from.
pub(super) struct Store {
    pub(super) config: Config,
    pub(super) catalog: Option<Catalog>,
    pub(super) next_schedule: Schedule,
}

/// The pool's object directory and the catalog, read-only. Creates the store and catalog if no
/// sync ran yet (so the mount can come up first at boot) and migrates an older catalog. A shared
/// store is only read (no catalog): it must exist, since an absent one means the shared
/// filesystem is not mounted.
pub(super) fn open_store(config: &Config) -> Result<(PathBuf, Option<Catalog>), DaemonError> {
    let store = &config.store.dir;
    if config.store.shared {
        if !store.is_dir() {
            return Err(DaemonError::SharedMissing { store: store.clone() });
        }
        return Ok((crate::pool::Pool::existing(store).objects_dir(), None));
    }
    let (pool, catalog) = open_local(config)?;
    Ok((pool, Some(catalog)))
}

fn open_local(config: &Config) -> Result<(PathBuf, Catalog), DaemonError> {
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
    fn images(&self) -> PathBuf {
        crate::store::images_dir(&self.config.store.dir)
    }

    /// The generation to serve and its image's nonce: the catalog's, or a shared store's pointer
    /// (`(0, None)` before its first publish).
    pub(super) fn pointer(&self) -> Result<(u64, Option<u64>), DaemonError> {
        match &self.catalog {
            Some(catalog) => Ok(catalog.view_pointer()?),
            None => {
                let pointer = shared::read_pointer(&self.images())
                    .map_err(|source| DaemonError::Shared { path: shared::pointer_path(&self.images()), source })?;
                Ok(pointer.map_or((0, None), |(generation, nonce)| (generation, Some(nonce))))
            }
        }
    }

    /// What status.json depends on: the catalog's runs, or the writer's status document (its
    /// mtime, and its inode and size, which every rename changes).
    pub(super) fn status_stamp(&self) -> Result<StatusStamp, DaemonError> {
        if let Some(catalog) = &self.catalog {
            return Ok(catalog.status_stamp()?);
        }
        let path = self.images().join(shared::STATUS_DOC);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(StatusStamp { newest: m.mtime(), runs: format!("{} {} {}", m.ino(), m.mtime_nsec(), m.len()) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StatusStamp { newest: 0, runs: String::new() }),
            Err(source) => Err(DaemonError::Shared { path, source }),
        }
    }

    /// The current generation's view as of `now`: its image when the publisher wrote one that is
    /// still valid (a map, whatever the catalog's size), else built from the catalog here. On a
    /// shared store only the image will do — an expired one is served until the writer's next
    /// publish (the writer publishes once it expires), and before the first publish the view
    /// is empty.
    pub(super) fn load(&self, now: i64) -> Result<Loaded, DaemonError> {
        if self.catalog.is_none() {
            return self.load_shared();
        }
        let images = self.images();
        // A publish between reading the pointer and opening its image deletes the image: read the
        // pointer again once.
        for _ in 0..2 {
            let pointer = self.pointer()?;
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

    /// A shared store's view: the image its pointer names (read again once if the image went
    /// between the two reads), or an empty view before the first publish.
    fn load_shared(&self) -> Result<Loaded, DaemonError> {
        let mut last = None;
        for _ in 0..2 {
            let pointer = self.pointer()?;
            let (generation, Some(nonce)) = pointer else {
                let web = crate::web::placeholders(&self.config);
                let view = crate::store::build_view(&mut ViewSource::default(), Vec::new(), &web)?;
                return Ok(Loaded { view, pointer, valid_until: None, from: "nothing published yet" });
            };
            let name = image::file_name(generation, nonce);
            let path = self.local_image(&name);
            match image::map(&path) {
                Ok((view, info)) if info.generation == generation => {
                    return Ok(Loaded { view, pointer, valid_until: None, from: "image" })
                }
                Ok(_) => return Err(image::ImageError::Invalid { path, reason: "another generation".into() }.into()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| DaemonError::SharedMissing { store: self.config.store.dir.clone() }, Into::into))
    }

    /// The image `name` to map: with a read cache (`[mount] cache-dir`), a copy of the shared
    /// one in `<cache-dir>/views/`, so lookups never page the image in over the shared
    /// filesystem (a page fault there waits for the filesystem, and for the writer's client to
    /// give up the file it just wrote); other copies there are deleted (a view still mapped keeps
    /// its own). Without a cache, or if the copy fails (logged), the shared image itself.
    fn local_image(&self, name: &str) -> PathBuf {
        let shared_path = self.images().join(name);
        let Some(cache) = &self.config.mount.cache else { return shared_path };
        let dir = cache.dir.join("views");
        let local = dir.join(name);
        let copied = (|| -> std::io::Result<()> {
            if !local.exists() {
                std::fs::create_dir_all(&dir)?;
                let tmp = dir.join(format!(".{name}.tmp"));
                std::fs::copy(&shared_path, &tmp)?;
                std::fs::rename(&tmp, &local)?;
            }
            for entry in std::fs::read_dir(&dir)? {
                let other = entry?.path();
                if other != local {
                    std::fs::remove_file(other)?;
                }
            }
            Ok(())
        })();
        match copied {
            Ok(()) => local,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot copy the view image to the cache; mapping the shared one");
                shared_path
            }
        }
    }

    /// Loads the catalog's view as of `now` and builds the tree (aliases from the config).
    fn build(&self, now: i64) -> Result<Loaded, DaemonError> {
        let Some(catalog) = &self.catalog else { return self.load_shared() };
        let pointer = catalog.view_pointer()?;
        let mut src = catalog.load_view(now, self.config.sync.grace.as_secs() as i64)?;
        let view = crate::store::build_view(&mut src, aliases(&self.config), &crate::web::placeholders(&self.config))?;
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
        let next = (self.next_schedule)();
        let (path, content) = match &self.catalog {
            Some(catalog) => crate::status::inline_file(config, catalog, || next),
            None => (STATUS_FILE.to_owned(), self.shared_file(shared::STATUS_DOC).unwrap_or_else(|| b"[]\n".to_vec())),
        };
        let served = view;
        let has = |path: &str| served.lookup_path(path.trim_end_matches('/')).is_some();
        let mut view = view.with_inline_file(&path, content, mtime)?;
        for (path, content) in self.web_pages(config, next, &has) {
            // A page the view has no place for (an entry added since its publish) waits for the next.
            if let Some(with_page) = view.with_inline_file(&path, content, mtime) {
                view = with_page;
            }
        }
        if view.generation() < min_generation {
            view.restamp(min_generation);
        }
        Some(view)
    }
}

impl Store {
    /// A file the writer of a shared store published in `views/` (`None` while there is none,
    /// logged when it cannot be read).
    fn shared_file(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.images().join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a file the writer published");
                }
                None
            }
        }
    }

    /// The front page's files now (`[web]`): rendered from the catalog, or as the writer of a
    /// shared store rendered them into `views/web/`.
    fn web_pages(&self, config: &Config, next: Option<i64>, has: crate::web::Has) -> Vec<(String, Vec<u8>)> {
        match &self.catalog {
            Some(catalog) => crate::web::render(config, Some(catalog), next, has).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "rendering the front page failed; the pages stay as they were");
                Vec::new()
            }),
            None => crate::web::placeholders(config)
                .into_iter()
                .filter(|(path, _)| path.ends_with(".html"))
                .filter_map(|(path, _)| Some((path.clone(), self.shared_file(&format!("{}/{path}", shared::WEB_DIR))?)))
                .collect(),
        }
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
