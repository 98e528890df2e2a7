//! The entries a run handles, what each is synced against, and the network part of one job:
//! its plan and its performance, with the credentials its upstream wants.

use super::{SyncError, SyncRequest};
use crate::catalog::{Catalog, NewEntry, PublishedFile, SnapshotRow};
use crate::config::{subscription, Config, MirrorConfig, Subscription, TreeConfig, Unusable};
use crate::digest::Sha256;
use crate::engine::{perform, Cause, EntryError, PerformCtx, Performed, Plan, Progress};
use crate::fetch::{Access, Credentials, Fetcher};
use crate::filetree::TreeCtx;
use crate::mirror::{MirrorCtx, Previous};
use crate::pool::Pool;
use std::collections::BTreeMap;

/// One entry of the config that a sync run handles.
#[derive(Clone, Copy)]
pub enum Job<'a> {
    Mirror(&'a MirrorConfig),
    Tree(&'a TreeConfig),
    /// Configured but unable to run (a key file missing, …): fails by name, the others sync.
    Unusable(&'a Unusable),
}

impl Job<'_> {
    pub fn id(&self) -> &str {
        match self {
            Job::Mirror(m) => &m.id,
            Job::Tree(t) => &t.id,
            Job::Unusable(u) => &u.id,
        }
    }

    /// Whether the job re-hashes what it reuses: `sync --verify`, or a mirror's `verify = true`.
    pub fn verifies(&self, request: &SyncRequest) -> bool {
        request.verify || matches!(self, Job::Mirror(m) if m.verify)
    }

    /// (kind, view root, upstream URL) as the catalog records them.
    pub fn catalog_row(&self) -> (&'static str, &str, &str) {
        match self {
            Job::Mirror(m) => ("mirror", &m.view, m.repository.url.as_str()),
            Job::Tree(t) => ("tree", &t.view, t.url.as_str()),
            Job::Unusable(u) => (u.kind, &u.view, &u.upstream),
        }
    }
}

/// The jobs of a run, mirrors first; an id the config does not know fails the run.
pub fn select<'a>(config: &'a Config, ids: &[String]) -> Result<Vec<Job<'a>>, SyncError> {
    for id in ids {
        if !config.entry_ids().any(|known| known == id) {
            return Err(SyncError::UnknownId { config: config.path.display().to_string(), id: id.clone() });
        }
    }
    let wanted = |id: &String| ids.is_empty() || ids.contains(id);
    let mirrors = config.mirrors.iter().filter(|m| wanted(&m.id)).map(Job::Mirror);
    let trees = config.trees.iter().filter(|t| wanted(&t.id)).map(Job::Tree);
    let unusable = config.unusable.iter().filter(|u| wanted(&u.id)).map(Job::Unusable);
    Ok(mirrors.chain(trees).chain(unusable).collect())
}

/// What a job is synced against: its sync baseline (the published snapshot, or a pinned
/// mirror's newest recorded one: what upstream served last; none without a catalog) and, when
/// the job compares against them (a tree, a verifying mirror), that snapshot's files.
pub struct Baseline {
    pub snapshot: Option<SnapshotRow>,
    /// `Some` when the job records no snapshot identical to these files.
    pub files: Option<Vec<PublishedFile>>,
}

impl Baseline {
    pub fn read(catalog: Option<&Catalog>, job: Job<'_>, request: &SyncRequest) -> Result<Baseline, SyncError> {
        let wants_files = match job {
            Job::Mirror(_) => job.verifies(request),
            Job::Tree(_) => true,
            Job::Unusable(_) => false,
        };
        let Some(catalog) = catalog else {
            return Ok(Baseline { snapshot: None, files: wants_files.then(Vec::new) });
        };
        let snapshot = catalog.sync_baseline(job.id())?;
        let files = match &snapshot {
            Some(s) if wants_files => Some(catalog.snapshot_files(s.id)?),
            _ => wants_files.then(Vec::new),
        };
        Ok(Baseline { snapshot, files })
    }

    /// Whether new entries are exactly the baseline's files (same paths, same content): then
    /// the job records no snapshot — a verify run's repairs went into the pool under the same
    /// digests, so the baseline is whole again and retention keeps its history.
    pub fn same_files(&self, entries: &[NewEntry]) -> bool {
        let Some(files) = &self.files else { return false };
        let new: BTreeMap<&str, Sha256> = entries.iter().map(|e| (e.path.as_str(), e.sha256)).collect();
        let old: BTreeMap<&str, Sha256> = files.iter().map(|p| (p.path.as_str(), p.sha256)).collect();
        new == old
    }
}

/// Everything the jobs of one run share.
pub struct Env<'a> {
    pub config: &'a Config,
    pub pool: Pool,
    pub fetcher: Fetcher,
    pub rt: tokio::runtime::Runtime,
    pub progress: &'a dyn Progress,
    pub request: &'a SyncRequest,
    pub now: i64,
    /// Downloads in progress, shared by the jobs that run at once.
    pub in_flight: crate::engine::InFlight,
}

impl<'a> Env<'a> {
    pub fn new(
        config: &'a Config,
        pool: Pool,
        progress: &'a dyn Progress,
        request: &'a SyncRequest,
    ) -> Result<Self, SyncError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            // Downloads are I/O bound; two workers keep hashing and TLS off one core.
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(SyncError::Runtime)?;
        let proxy = config.sync.proxy.as_ref();
        if let Some(url) = proxy {
            tracing::info!(proxy = %crate::config::validate::masked(url), "every request goes through the configured proxy");
        }
        let limits = crate::fetch::Limits {
            slots: (config.sync.concurrency, config.sync.max_concurrency),
            ca_file: config.sync.ca_file.clone(),
            rate: config.sync.rate_limit,
            slow: config.sync.slow,
        };
        let fetcher = Fetcher::new(config.sync.timeout, config.sync.retries, proxy, limits)?;
        let (now, in_flight) = (crate::engine::unix_now(), Default::default());
        Ok(Env { config, pool, fetcher, rt, progress, request, now, in_flight })
    }

    /// Whether the job re-hashes what it reuses (`sync --verify`, or the mirror's `verify`).
    pub fn verify(&self, job: Job<'_>) -> bool {
        job.verifies(self.request)
    }

    /// The fetcher for the job's upstream and its other sources, with its subscription's
    /// credentials (sent to the upstream's own origin only).
    pub fn fetcher(&self, job: Job<'_>) -> Fetcher {
        let bases = |own: &url::Url, more: &[url::Url]| std::iter::once(own).chain(more).cloned().collect();
        match job {
            Job::Mirror(m) => self
                .fetcher
                .for_upstream(access(&m.repository.url, m.subscription.as_ref()))
                .with_sources(bases(&m.repository.url, &m.sources), Some("dists/")),
            Job::Tree(t) => self
                .fetcher
                .for_upstream(access(&t.url, t.subscription.as_ref()))
                .with_sources(bases(&t.url, &t.sources), None),
            Job::Unusable(_) => self.fetcher.clone(),
        }
    }

    /// The job's plan against its baseline; `None` when an apt mirror's Release is unchanged.
    pub fn plan(&self, job: Job<'_>, fetcher: &Fetcher, baseline: &Baseline) -> Result<Option<Plan>, EntryError> {
        match job {
            Job::Mirror(m) => {
                let previous = baseline.snapshot.as_ref().map_or_else(Previous::default, |s| Previous {
                    release_sha256: s.release_sha256,
                    release_last_modified: s.release_last_modified,
                });
                let force = self.verify(job);
                let ctx = MirrorCtx { mirror: m, fetcher, pool: &self.pool, previous, force };
                self.rt.block_on(crate::mirror::plan(&ctx))
            }
            Job::Tree(t) => {
                let previous = baseline.files.as_deref().unwrap_or_default();
                let ctx = TreeCtx { tree: t, fetcher, pool: &self.pool, previous, verify: self.verify(job) };
                self.rt.block_on(crate::filetree::plan(&ctx)).map(Some)
            }
            Job::Unusable(u) => Err(EntryError::new(u.kind, &u.id, None, Cause::Refused(u.error.to_string()))),
        }
    }

    /// Performs a job's plan, with the progress display told of its start and end.
    pub fn perform(&self, job: Job<'_>, fetcher: &Fetcher, plan: Plan) -> Result<Performed, EntryError> {
        let totals = plan.totals();
        let id = plan.entry_id.clone();
        let files = totals.fetch_files + totals.reuse_files;
        self.progress.mirror_started(&id, files, totals.fetch_bytes + totals.reuse_bytes);
        let ctx = PerformCtx {
            fetcher,
            in_flight: &self.in_flight,
            pool: &self.pool,
            local: tokio::sync::Semaphore::new(self.config.sync.concurrency),
            verify: self.verify(job),
            progress: self.progress,
            now: self.now,
        };
        let done = self.rt.block_on(perform(&ctx, plan));
        self.progress.mirror_finished(&id);
        done
    }
}

/// What a mirror or tree of `upstream` sends: its subscription as basic auth (user = key,
/// password = server id, as proxmox-offline-mirror sends it), to that origin only.
fn access(upstream: &url::Url, subscription: Option<&Subscription>) -> Access {
    let credentials =
        subscription.map(|s| Credentials::basic(upstream, s.key.expose(), &s.server_id.0, s.rejected_hint()));
    Access { credentials, missing_hint: subscription::missing_hint(upstream) }
}
