//! The synchronous driver of a sync run: store lock, tmp cleanup, one mirror after the other
//! (network phases on the tokio runtime), a snapshot recorded per changed mirror, and one publish
//! transaction for all of them at the end. A pinned mirror (`snapshot publish` of an older
//! snapshot) is synced and its snapshot recorded like any other; the publish transaction leaves
//! its published snapshot alone, and its report says what it is pinned to.

use super::execute::{execute, ExecCtx};
use super::metadata::{self, Fetched, MetadataCtx, Previous};
use super::plan::plan;
use super::report::{MirrorOutcome, MirrorReport, RunReport};
use super::MirrorError;
use crate::catalog::{Catalog, NewEntry, NewSnapshot, PublishedFile, Retention, SnapshotRow};
use crate::config::{subscription, Config, MirrorConfig, Subscription, TreeConfig, Unusable};
use crate::digest::Sha256;
use crate::fetch::{Access, Credentials, Fetcher};
use crate::filetree::{sync_tree, TreeCtx};
use crate::pool::{Pool, StoreLock};
use crate::tree::source::Alias;
use std::collections::BTreeMap;
use std::time::Instant;

/// Progress of a run, for a TTY bar or log lines (implemented by the CLI).
pub trait Progress: Send + Sync {
    fn mirror_started(&self, id: &str, files: u64, bytes: u64);
    /// One planned object is done (`bytes` of it).
    fn advance(&self, bytes: u64);
    fn mirror_finished(&self, id: &str);
}

/// No progress output (tests, `--json`).
pub struct SilentProgress;

impl Progress for SilentProgress {
    fn mirror_started(&self, _: &str, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
    fn mirror_finished(&self, _: &str) {}
}

/// What to sync and how.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// Mirror ids; empty = all.
    pub ids: Vec<String>,
    /// Re-hash reused objects, re-download damaged ones (also fetches when upstream is unchanged).
    pub verify: bool,
    /// Plan only: fetch Release and the indices needed to plan, write nothing.
    pub dry_run: bool,
}

/// Everything a mirror sync needs, shared by all mirrors of the run.
struct Env<'a> {
    config: &'a Config,
    pool: Pool,
    fetcher: Fetcher,
    rt: tokio::runtime::Runtime,
    progress: &'a dyn Progress,
    request: &'a SyncRequest,
    now: i64,
}

impl<'a> Env<'a> {
    fn new(
        config: &'a Config,
        pool: Pool,
        progress: &'a dyn Progress,
        request: &'a SyncRequest,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let rt = tokio::runtime::Builder::new_multi_thread()
            // Downloads are I/O bound; two workers keep hashing and TLS off one core.
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let fetcher = Fetcher::new(config.sync.timeout, config.sync.retries)?;
        Ok(Env { config, pool, fetcher, rt, progress, request, now: unix_now() })
    }
}

/// Runs a sync. Errors here are about the run as a whole (lock, store, catalog); a failing mirror
/// is reported in the [`RunReport`] and keeps its previously published snapshot.
pub fn run(config: &Config, request: &SyncRequest, progress: &dyn Progress) -> anyhow::Result<RunReport> {
    let jobs = select(config, &request.ids)?;
    if request.dry_run {
        return dry_run(config, request, progress, &jobs);
    }
    let store = &config.store.dir;
    let lock = StoreLock::acquire(store)?;
    let pool = Pool::open(store, config.store.fsync)?;
    let n = pool.clean_tmp(&lock)?;
    if n > 0 {
        tracing::info!(removed = n, "removed leftovers of an interrupted run from tmp/");
    }
    let mut catalog = Catalog::open(store)?;
    let env = Env::new(config, pool, progress, request)?;
    let mut report = RunReport::default();
    let mut picks = Vec::new();
    let mut deferred = Vec::new();
    for job in jobs {
        let r = sync_one(&env, &mut catalog, job, &mut picks, &mut deferred)?;
        report.mirrors.push(r);
    }
    let published = publish(&env, &mut catalog, &picks, &mut report);
    finish_deferred(&mut catalog, &deferred, &published, report.publish_error.as_deref())?;
    published?;
    for m in &mut report.mirrors {
        m.pinned_to = catalog.pin(&m.id)?.map(|p| p.snapshot);
    }
    Ok(report)
}

/// `sync --dry-run`: each mirror's plan against the store as it is, creating and changing
/// nothing — no lock, no pool directories, no catalog (a store that does not exist yet plans
/// every file as a fetch), no migration (a catalog of an older schema fails the dry run, naming
/// it: a sync migrates it).
fn dry_run(
    config: &Config,
    request: &SyncRequest,
    progress: &dyn Progress,
    jobs: &[Job<'_>],
) -> anyhow::Result<RunReport> {
    let store = &config.store.dir;
    let env = Env::new(config, Pool::existing(store), progress, request)?;
    // Every baseline is read first and the catalog closed before the network phase: the dry run
    // holds no lock, and an immutable read must not span a writer's checkpoint.
    let catalog = match store.join("catalog.db").exists() {
        true => Some(Catalog::open_untouched(store)?),
        false => None,
    };
    let baselines =
        jobs.iter().map(|&job| Baseline::read(&env, catalog.as_ref(), job)).collect::<anyhow::Result<Vec<_>>>()?;
    drop(catalog);
    let mut report = RunReport::default();
    for (&job, base) in jobs.iter().zip(&baselines) {
        let started = Instant::now();
        let mut r = match fetch_job(&env, job, base) {
            Ok((r, _)) => r,
            Err(e) => MirrorReport::new(job.id(), MirrorOutcome::Failed(e), started.elapsed()),
        };
        r.elapsed = started.elapsed();
        report.mirrors.push(r);
    }
    Ok(report)
}

/// One entry of the config that a sync run handles.
#[derive(Clone, Copy)]
enum Job<'a> {
    Mirror(&'a MirrorConfig),
    Tree(&'a TreeConfig),
    /// Configured but unable to run (a key file missing, …): fails by name, the others sync.
    Unusable(&'a Unusable),
}

impl Job<'_> {
    fn id(&self) -> &str {
        match self {
            Job::Mirror(m) => &m.id,
            Job::Tree(t) => &t.id,
            Job::Unusable(u) => &u.id,
        }
    }

    /// (kind, view root, upstream URL) as the catalog records them.
    fn catalog_row(&self) -> (&'static str, &str, &str) {
        match self {
            Job::Mirror(m) => ("mirror", &m.view, m.repository.url.as_str()),
            Job::Tree(t) => ("tree", &t.view, t.url.as_str()),
            Job::Unusable(u) => (u.kind, &u.view, &u.upstream),
        }
    }
}

fn select<'a>(config: &'a Config, ids: &[String]) -> anyhow::Result<Vec<Job<'a>>> {
    for id in ids {
        if !config.entry_ids().any(|known| known == id) {
            anyhow::bail!("{}: no mirror or tree with id {id:?}", config.path.display());
        }
    }
    let wanted = |id: &String| ids.is_empty() || ids.contains(id);
    let mirrors = config.mirrors.iter().filter(|m| wanted(&m.id)).map(Job::Mirror);
    let trees = config.trees.iter().filter(|t| wanted(&t.id)).map(Job::Tree);
    let unusable = config.unusable.iter().filter(|u| wanted(&u.id)).map(Job::Unusable);
    Ok(mirrors.chain(trees).chain(unusable).collect())
}

/// Syncs one mirror or tree and records its snapshot; catalog errors abort the run, mirror
/// errors don't.
fn sync_one(
    env: &Env<'_>,
    catalog: &mut Catalog,
    job: Job<'_>,
    picks: &mut Vec<(String, i64)>,
    deferred: &mut Vec<Deferred>,
) -> anyhow::Result<MirrorReport> {
    let started = Instant::now();
    let id = job.id().to_owned();
    let (kind, view, upstream) = job.catalog_row();
    catalog.upsert_mirror(&id, kind, view, upstream)?;
    catalog.mark_started(&id, unix_now())?;
    let base = Baseline::read(env, Some(catalog), job)?;
    let (mut report, snapshot) = match fetch_job(env, job, &base) {
        Ok(done) => done,
        Err(e) => (MirrorReport::new(&id, MirrorOutcome::Failed(e), started.elapsed()), None),
    };
    let baseline = base.snapshot;
    report.elapsed = started.elapsed();
    let all_warnings = report.warnings.clone();
    let known = baseline.as_ref().map_or(&[][..], |s| s.warnings.as_slice());
    report.warnings.retain(|w| !known.contains(w));
    report.repeated_warnings = all_warnings.len() - report.warnings.len();
    if let Some(snap) = snapshot {
        let (snap_id, name) = catalog.record_snapshot(&snap)?;
        catalog.set_snapshot_warnings(snap_id, &all_warnings)?;
        picks.push((id.clone(), snap_id));
        report.outcome = MirrorOutcome::Snapshot { name };
        // Its run succeeded only once the snapshot is published (status.json would otherwise show
        // "success" beside the previous snapshot until the publish, or even if it is refused).
        deferred.push(Deferred { id, fetched: (report.fetched_bytes, report.fetched_files) });
        return Ok(report);
    }
    let outcome = match &report.outcome {
        MirrorOutcome::Failed(e) => {
            // The CLI prints the failure once, after the run (`pmirror-fs: mirror …`); at the
            // default log level this would say it a second time.
            tracing::info!(mirror = %id, error = %e, "failed; its published snapshot stays");
            Err(e.to_string())
        }
        _ => Ok((report.fetched_bytes, report.fetched_files)),
    };
    catalog.mark_finished(&id, unix_now(), outcome.as_ref().map(|v| *v).map_err(String::as_str))?;
    Ok(report)
}

/// What a job is synced against: its sync baseline (the published snapshot, or a pinned
/// mirror's newest recorded one: what upstream served last; none without a catalog) and, when
/// the job needs them (a tree, a verifying mirror), that snapshot's files.
struct Baseline {
    snapshot: Option<SnapshotRow>,
    files: Vec<PublishedFile>,
}

impl Baseline {
    fn read(env: &Env<'_>, catalog: Option<&Catalog>, job: Job<'_>) -> anyhow::Result<Baseline> {
        let Some(catalog) = catalog else { return Ok(Baseline { snapshot: None, files: Vec::new() }) };
        let snapshot = catalog.sync_baseline(job.id())?;
        let wants_files = match job {
            Job::Mirror(m) => env.request.verify || m.verify,
            Job::Tree(_) => true,
            Job::Unusable(_) => false,
        };
        let files = match &snapshot {
            Some(s) if wants_files => catalog.snapshot_files(s.id)?,
            _ => Vec::new(),
        };
        Ok(Baseline { snapshot, files })
    }
}

/// The network part of one job against its baseline.
fn fetch_job(
    env: &Env<'_>,
    job: Job<'_>,
    baseline: &Baseline,
) -> Result<(MirrorReport, Option<NewSnapshot>), MirrorError> {
    match job {
        Job::Mirror(m) => {
            let previous = baseline.snapshot.as_ref().map_or_else(Previous::default, |s| Previous {
                release_sha256: s.release_sha256,
                release_last_modified: s.release_last_modified,
            });
            env.rt.block_on(mirror_snapshot(env, m, previous, &baseline.files))
        }
        Job::Tree(t) => {
            let fetcher = env.fetcher.for_upstream(access(&t.url, t.subscription.as_ref()));
            let ctx = TreeCtx {
                tree: t,
                fetcher: &fetcher,
                pool: &env.pool,
                concurrency: env.config.sync.concurrency,
                progress: env.progress,
                previous: baseline.files.clone(),
                dry_run: env.request.dry_run,
                verify: env.request.verify,
                now: env.now,
            };
            env.rt.block_on(sync_tree(&ctx))
        }
        Job::Unusable(u) => Err(MirrorError::new(&u.id, None, &u.error)),
    }
}

/// The network part of one mirror: metadata, plan, and (unless dry-run) the downloads.
/// `reference` (files of the sync baseline — the published snapshot, or a pinned mirror's newest;
/// loaded when verifying): a verify run whose snapshot would be identical records none — the
/// repairs went into the pool under the same digests, so that snapshot is whole again and
/// retention keeps its history.
async fn mirror_snapshot(
    env: &Env<'_>,
    m: &MirrorConfig,
    previous: Previous,
    reference: &[PublishedFile],
) -> Result<(MirrorReport, Option<NewSnapshot>), MirrorError> {
    let started = Instant::now();
    let verify = env.request.verify || m.verify;
    let fetcher = env.fetcher.for_upstream(access(&m.repository.url, m.subscription.as_ref()));
    let ctx = MetadataCtx { mirror: m, fetcher: &fetcher, pool: &env.pool, previous, force: verify };
    let meta = match metadata::fetch(&ctx).await? {
        Fetched::Unchanged => return Ok((MirrorReport::new(&m.id, MirrorOutcome::Unchanged, started.elapsed()), None)),
        Fetched::Changed(meta) => *meta,
    };
    let plan = plan(m, meta, |sha| env.pool.contains(sha))?;
    if env.request.dry_run {
        let totals = plan.totals();
        let mut r = MirrorReport::new(&m.id, MirrorOutcome::Planned(Box::new(plan)), started.elapsed());
        (r.fetched_files, r.fetched_bytes, r.reused_files, r.reused_bytes) =
            (totals.fetch_files, totals.fetch_bytes, totals.reuse_files, totals.reuse_bytes);
        return Ok((r, None));
    }
    let totals = plan.totals();
    env.progress.mirror_started(
        &m.id,
        totals.fetch_files + totals.reuse_files,
        totals.fetch_bytes + totals.reuse_bytes,
    );
    let (release_sha256, release_last_modified) = (plan.release_sha256, plan.release_last_modified);
    let skipped = plan.skipped_packages;
    let ex = ExecCtx {
        fetcher: &fetcher,
        pool: &env.pool,
        base: &m.repository.url,
        concurrency: env.config.sync.concurrency,
        verify,
        progress: env.progress,
        now: env.now,
    };
    let done = execute(&ex, plan).await;
    env.progress.mirror_finished(&m.id);
    let done = done?;
    let mut r = MirrorReport::new(&m.id, MirrorOutcome::Unchanged, started.elapsed());
    (r.fetched_files, r.fetched_bytes, r.reused_files, r.reused_bytes) =
        (done.fetched_files, done.fetched_bytes, done.reused_files, done.reused_bytes);
    r.skipped_packages = skipped;
    r.warnings = done.warnings;
    r.never_served = done.never_served;
    if verify && !reference.is_empty() && same_files(&done.entries, reference) {
        if done.written > 0 {
            r.warnings.push(format!(
                "{} damaged or missing pool objects of the published snapshot were downloaded again ({} damaged)",
                done.written, done.repaired
            ));
        }
        return Ok((r, None));
    }
    let snapshot = NewSnapshot {
        mirror_id: m.id.clone(),
        created_at: unix_now(),
        release_sha256: Some(release_sha256),
        release_last_modified,
        entries: done.entries,
    };
    Ok((r, Some(snapshot)))
}

/// What a mirror or tree of `upstream` sends: its subscription as basic auth (user = key,
/// password = server id, as proxmox-offline-mirror sends it), to that origin only.
fn access(upstream: &url::Url, subscription: Option<&Subscription>) -> Access {
    let credentials =
        subscription.map(|s| Credentials::basic(upstream, s.key.expose(), &s.server_id.0, s.rejected_hint()));
    Access { credentials, missing_hint: subscription::missing_hint(upstream) }
}

/// Whether new entries are exactly the reference snapshot's (same paths, same content).
fn same_files(entries: &[NewEntry], reference: &[PublishedFile]) -> bool {
    let new: BTreeMap<&str, Sha256> = entries.iter().map(|e| (e.path.as_str(), e.sha256)).collect();
    let old: BTreeMap<&str, Sha256> = reference.iter().map(|p| (p.path.as_str(), p.sha256)).collect();
    new == old
}

/// A mirror whose new snapshot waits for the run's publish before its run counts as finished.
struct Deferred {
    id: String,
    /// Bytes and files fetched.
    fetched: (u64, u64),
}

/// Ends the runs of the mirrors that recorded a snapshot, once the publish is decided: success,
/// or the reason the publish failed (a refused publish already marked the unpinned ones).
fn finish_deferred(
    catalog: &mut Catalog,
    deferred: &[Deferred],
    published: &anyhow::Result<()>,
    refused: Option<&str>,
) -> anyhow::Result<()> {
    for d in deferred {
        let pinned = catalog.pin(&d.id)?.is_some();
        match (published, refused) {
            (Err(e), _) => {
                let line = format!("publish failed, previous snapshot stays published: {e:#}");
                catalog.mark_finished(&d.id, unix_now(), Err(&line))?;
            }
            // Marked failed by the refusal, unless pinned (its snapshot was not to be published).
            (Ok(()), Some(_)) if !pinned => {}
            (Ok(()), _) => catalog.mark_finished(&d.id, unix_now(), Ok(d.fetched))?,
        }
    }
    Ok(())
}

/// Publishes every snapshot this run recorded in one transaction, refusing path conflicts. The
/// catalog holds back the snapshots of pinned mirrors (recorded, shown under `snapshots/`, not
/// published); the transaction still runs for them, so the view shows them.
fn publish(
    env: &Env<'_>,
    catalog: &mut Catalog,
    picks: &[(String, i64)],
    report: &mut RunReport,
) -> anyhow::Result<()> {
    if picks.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = picks.iter().map(|(_, id)| *id).collect();
    let retention = Retention { keep: env.config.sync.keep, grace_secs: env.config.sync.grace.as_secs() as i64 };
    let mut images = super::ViewPublisher::new(env.config);
    let result = catalog.publish(&ids, unix_now(), retention, |src| images.prepare(src));
    images.finish(result.is_ok());
    match result {
        Ok(out) => {
            report.generation = Some(out.generation);
            report.pruned = out.pruned;
            Ok(())
        }
        Err(crate::catalog::CatalogError::Refused(why)) => {
            let line = format!("publish refused, previous snapshots stay published: {why}");
            for (mirror, _) in picks {
                // A pinned mirror's snapshot was not going to be published: its run did not fail.
                if catalog.pin(mirror)?.is_none() {
                    catalog.mark_finished(mirror, unix_now(), Err(&line))?;
                }
            }
            report.publish_error = Some(line);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The configured aliases as the view model takes them.
pub fn aliases(config: &Config) -> Vec<Alias> {
    config.aliases.iter().map(|a| Alias { path: a.path.clone(), target: a.target.clone() }).collect()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
