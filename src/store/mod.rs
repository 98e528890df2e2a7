//! The store a writer works on: one type that owns the store lock, the pool, the catalog and the
//! view images, so every command that changes what clients see does it the same way — under the
//! lock, through one catalog transaction, with the view image written inside it.
//!
//! ```text
//! <store>/
//! ├── lock        flock held by the writer (Store::open)
//! ├── pool/       objects (crate::pool)
//! ├── tmp/        staging, emptied when the writer opens the store
//! ├── catalog.db  snapshots, generations (crate::catalog)
//! └── views/      view images, one per published generation (views.rs); on a shared store
//!                 also the serving nodes' pointer and status document (shared.rs)
//! ```
//!
//! `sync`, `snapshot publish|remove|forget` and `gc` open a [`Store`]; readers (status, list,
//! the mount daemon, a dry run) read the catalog without it. `snapshot unpin` is the one writer
//! that takes no lock: it changes only a pin, which a running sync reads inside its publish
//! transaction (so it either still holds its new snapshot back or already publishes it).

pub mod shared;
mod views;

pub use views::{build_view, images_dir, ViewPublisher};

use crate::catalog::{Catalog, CatalogError, NewSnapshot, PublishOutcome, Retention};
use crate::config::Config;
use crate::engine::unix_now;
use crate::lifecycle::gc::{self, GcOutcome, GcPlan};
use crate::lifecycle::LifecycleError;
use crate::pool::{LockError, Pool, PoolError, StoreLock};
use crate::tree::source::{Alias, ViewSource};
use crate::tree::BuildError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How a store is laid out and published, from the config (or given by parts).
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub fsync: bool,
    /// The configured aliases every published view carries.
    pub aliases: Vec<Alias>,
    pub retention: Retention,
    /// A shared store (`[store] shared`): what its serving nodes read instead of the catalog.
    pub shared: Option<Shared>,
    /// The front page's files every view carries (`[web]`; `crate::web::placeholders`).
    pub web: Vec<(String, Vec<u8>)>,
}

/// A shared store's `[store] gc-delay` and the status document its writer publishes.
#[derive(Clone)]
pub struct Shared {
    pub gc_delay: Duration,
    /// The status document (`/status.json`) as of the catalog given.
    pub status: StatusDoc,
}

/// The files serving nodes show as of a catalog, by their path in `views/`: the front page's
/// (`web/…`), then the status document last (serving nodes poll it).
pub type StatusDoc = Arc<dyn Fn(&Catalog) -> Vec<(String, Vec<u8>)> + Send + Sync>;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("gc_delay", &self.gc_delay).finish_non_exhaustive()
    }
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        let shared = config.store.shared.then(|| {
            let gc_delay = config.store.gc_delay;
            let config = config.clone();
            let status = move |catalog: &Catalog| {
                let next = crate::status::next_schedule();
                // The catalog knows the pages and keys of the published image, not which snapshot
                // trees it holds: those are linked as the catalog lists them.
                let pages: std::collections::HashSet<String> =
                    published_web(catalog).unwrap_or_default().into_iter().map(|(path, _)| path).collect();
                let dir = format!("{}/", crate::web::PAGES_DIR);
                let has = |path: &str| !path.starts_with(&dir) || pages.contains(path);
                let mut files = crate::web::render(&config, Some(catalog), next, &has)
                    .inspect_err(|e| tracing::warn!(error = %e, "rendering the front page failed"))
                    .unwrap_or_default();
                files.iter_mut().for_each(|(path, _)| *path = format!("{}/{path}", shared::WEB_DIR));
                files.push((shared::STATUS_DOC.to_owned(), crate::status::inline_file(&config, catalog, || next).1));
                files
            };
            Shared { gc_delay, status: Arc::new(status) }
        });
        Settings {
            dir: config.store.dir.clone(),
            fsync: config.store.fsync,
            aliases: aliases(config),
            retention: Retention { keep: config.sync.keep, grace_secs: config.sync.grace.as_secs() as i64 },
            shared,
            web: crate::web::placeholders(config),
        }
    }
}

/// The config-made files of the published view (`Catalog::published_web`); `None`, logged, when
/// the catalog cannot say.
fn published_web(catalog: &Catalog) -> Option<Vec<(String, String)>> {
    catalog
        .published_web()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot read which pages the published view has"))
        .ok()
}

/// The configured aliases as the view model takes them.
pub fn aliases(config: &Config) -> Vec<Alias> {
    config.aliases.iter().map(|a| Alias { path: a.path.clone(), target: a.target.clone() }).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// A store opened for writing: the lock is held until it is dropped.
pub struct Store {
    settings: Settings,
    lock: StoreLock,
    pool: Pool,
    catalog: Catalog,
}

impl Store {
    /// Takes the store lock (one writer at a time), creates the pool's directories, removes what
    /// an interrupted run left in `tmp/`, and opens the catalog (migrating it).
    ///
    /// On a shared store the catalog keeps a rollback journal (WAL needs one host), and a pointer
    /// an interrupted publish left behind is written again.
    pub fn open(settings: Settings) -> Result<Store, StoreError> {
        let lock = StoreLock::acquire(&settings.dir)?;
        let pool = Pool::open(&settings.dir, settings.fsync)?;
        let n = pool.clean_tmp(&lock)?;
        if n > 0 {
            tracing::info!(removed = n, "removed leftovers of an interrupted run from tmp/");
        }
        let catalog = match settings.shared {
            Some(_) => Catalog::open_shared(&settings.dir)?,
            None => Catalog::open(&settings.dir)?,
        };
        if settings.shared.is_some() {
            let dir = images_dir(&settings.dir);
            match shared::repair_pointer(&dir, catalog.view_pointer()?, settings.fsync) {
                Ok(true) => {
                    tracing::warn!(dir = %dir.display(), "the serving nodes' pointer was behind the catalog; written again")
                }
                Ok(false) => {}
                Err(source) => return Err(PoolError::Io { path: shared::pointer_path(&dir), source }.into()),
            }
        }
        Ok(Store { settings, lock, pool, catalog })
    }

    /// On a shared store, whether the published view image has expired (a superseded snapshot
    /// left the grace window since): serving nodes keep serving it until the next publish.
    pub fn view_expired(&self) -> bool {
        let Some(_) = &self.settings.shared else { return false };
        let Ok((generation, Some(nonce))) = self.catalog.view_pointer() else { return false };
        let path = images_dir(&self.settings.dir).join(crate::tree::image::file_name(generation, nonce));
        matches!(crate::tree::image::map(&path), Ok((_, info)) if info.valid_until <= unix_now())
    }

    /// Whether the config asks the view for other files than the published view carries (an
    /// entry or `[web]` added or removed, a key changed): the pages it has are fixed when it is
    /// built, so a sync then publishes again, changed or not. A catalog that cannot say is
    /// logged and taken as unchanged.
    pub fn web_changed(&self) -> bool {
        let mut want: Vec<(String, String)> = self
            .settings
            .web
            .iter()
            .map(|(path, bytes)| (path.clone(), crate::digest::Sha256::of(bytes).to_hex()))
            .collect();
        want.sort();
        published_web(&self.catalog).is_some_and(|have| have != want)
    }

    /// Whether this is a shared store (`[store] shared`).
    pub fn is_shared(&self) -> bool {
        self.settings.shared.is_some()
    }

    /// On a shared store, writes the status document serving nodes show as `/status.json`
    /// (also done when the `Store` is dropped); a failure is logged, never fatal.
    pub fn publish_status(&self) {
        let Some(shared) = &self.settings.shared else { return };
        let dir = images_dir(&self.settings.dir);
        for (path, bytes) in (shared.status)(&self.catalog) {
            let (sub, name) = path.rsplit_once('/').map_or((dir.clone(), path.as_str()), |(d, n)| (dir.join(d), n));
            if let Err(e) = shared::replace_file(&sub, name, &bytes, self.settings.fsync) {
                tracing::warn!(dir = %dir.display(), file = %path, error = %e, "writing a file for the serving nodes failed");
            }
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Records a new snapshot (not yet published) with the warnings its run found.
    pub fn record(&mut self, snapshot: &NewSnapshot, warnings: &[String]) -> Result<(i64, String), StoreError> {
        let (id, name) = self.catalog.record_snapshot(snapshot)?;
        self.catalog.set_snapshot_warnings(id, warnings)?;
        Ok((id, name))
    }

    /// Publishes the snapshots a run recorded, in one transaction (pinned mirrors' are held
    /// back), applying retention. A view that does not build refuses it: nothing changes.
    pub fn publish(&mut self, snapshots: &[i64]) -> Result<PublishOutcome, StoreError> {
        let retention = self.settings.retention;
        self.with_view(|catalog, prepare| catalog.publish(snapshots, unix_now(), retention, prepare))
    }

    /// `snapshot publish`: one snapshot of one entry, a rollback (which pins) or roll-forward.
    pub fn publish_snapshot(&mut self, snapshot: i64) -> Result<PublishOutcome, StoreError> {
        let retention = self.settings.retention;
        self.with_view(|catalog, prepare| catalog.publish_chosen(snapshot, unix_now(), retention, prepare))
    }

    /// `snapshot remove`: a snapshot that is not published; returns the new generation.
    pub fn remove_snapshot(&mut self, entry: &str, name: &str) -> Result<u64, StoreError> {
        let grace = self.settings.retention.grace_secs;
        self.with_view(|catalog, prepare| catalog.remove_snapshot(entry, name, unix_now(), grace, prepare))
    }

    /// `snapshot forget`: every snapshot of an entry no longer configured; returns how many
    /// went and the new generation.
    pub fn forget(&mut self, entry: &str) -> Result<(usize, u64), StoreError> {
        let grace = self.settings.retention.grace_secs;
        self.with_view(|catalog, prepare| catalog.forget_mirror(entry, unix_now(), grace, prepare))
    }

    /// `medium import`: adds the snapshots of the medium catalog file `medium` this store lacks
    /// (their objects must be in the pool already); publishes nothing.
    pub fn import(&mut self, medium: &std::path::Path) -> Result<crate::catalog::Imported, StoreError> {
        Ok(self.catalog.import_snapshots(medium)?)
    }

    /// What gc would delete (nothing is deleted).
    pub fn gc_plan(&self) -> Result<GcPlan, StoreError> {
        let delay = self.settings.shared.as_ref().map(|s| (s.gc_delay.as_secs() as i64, unix_now()));
        Ok(gc::plan(&self.catalog, &self.pool, &self.lock, delay)?)
    }

    /// Deletes what `plan` found unreferenced.
    pub fn gc(&mut self, plan: &GcPlan) -> Result<GcOutcome, StoreError> {
        Ok(gc::perform(plan, &mut self.catalog, &self.pool, &self.lock)?)
    }

    /// The one publish sequence: the catalog transaction `publish` runs builds the view it will
    /// show and has its image written (or refuses); once it is decided, the images of other
    /// generations go (committed) or the one written for it (not committed).
    fn with_view<T>(
        &mut self,
        publish: impl FnOnce(
            &mut Catalog,
            &mut dyn FnMut(&mut ViewSource) -> Result<Option<u64>, BuildError>,
        ) -> Result<T, CatalogError>,
    ) -> Result<T, StoreError> {
        let s = &self.settings;
        let mut images = ViewPublisher::for_store(&s.dir, s.fsync, s.aliases.clone()).with_web(s.web.clone());
        if let Some(shared) = &s.shared {
            images = images.shared(shared.gc_delay);
        }
        let result = publish(&mut self.catalog, &mut |src| images.prepare(src));
        images.finish(result.is_ok());
        let published = result?;
        // What the view now carries of the config's: the next sync compares the config with it.
        self.catalog.set_published_web(&self.settings.web)?;
        Ok(published)
    }
}

impl Drop for Store {
    /// A writer's last word to the serving nodes of a shared store: the status as it leaves it.
    fn drop(&mut self) {
        self.publish_status();
    }
}
