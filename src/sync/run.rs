//! A sync run: the store opened for writing, every job started in the catalog, the network part
//! of up to [`PARALLEL_JOBS`] jobs at once (a far upstream costs round trips per phase, and each
//! job's phases are sequential), a snapshot recorded per changed entry in config order, and one
//! publish for all of them at the end. A pinned mirror (`snapshot publish`
//! of an older snapshot) is synced and its snapshot recorded like any other; the publish leaves
//! its published snapshot alone, and its report says what it is pinned to.

use super::jobs::{select, Baseline, Env, Job};
use super::shrink;
use super::RunReport;
use super::{SyncError, SyncRequest};
use crate::catalog::{CatalogError, NewSnapshot};
use crate::config::Config;
use crate::engine::{unix_now, EntryError, EntryReport, Outcome, Progress};
use crate::store::{Settings, Store, StoreError};
use std::time::Instant;

/// Runs a sync. Errors here are about the run as a whole (lock, store, catalog); a failing entry
/// is reported in the [`RunReport`] and keeps its previously published snapshot.
pub fn run(config: &Config, request: &SyncRequest, progress: &dyn Progress) -> Result<RunReport, SyncError> {
    let jobs = select(config, &request.ids)?;
    let mut store = Store::open(Settings::of(config))?;
    let env = Env::new(config, store.pool().clone(), progress, request)?;
    let mut report = RunReport::default();
    let mut recorded = Vec::new();
    let mut bases = Vec::new();
    for job in &jobs {
        bases.push(start_job(&env, &mut store, *job)?);
    }
    store.publish_status();
    let synced = network(&env, &jobs, &bases);
    for ((job, base), done) in jobs.iter().zip(&bases).zip(synced) {
        let r = conclude_job(&env, &mut store, *job, base, done, &mut recorded)?;
        report.mirrors.push(r);
    }
    for (host, slots, h2) in env.fetcher.widened_hosts(config.sync.concurrency) {
        let how = if h2 { "HTTP/2 streams" } else { "connections (latency-bound http)" };
        tracing::info!(%host, slots, "requests in flight grew past [sync] concurrency: up to {slots} {how}");
    }
    let published = publish(&mut store, &recorded, &mut report);
    finish_recorded(&store, &recorded, &published, report.publish_error.as_deref())?;
    published?;
    for m in &mut report.mirrors {
        m.pinned_to = store.catalog().pin(&m.id)?.map(|p| p.snapshot);
    }
    Ok(report)
}

/// A snapshot this run recorded; its run counts as finished once the publish is decided.
struct Recorded {
    id: String,
    snapshot: i64,
    /// Bytes and files fetched.
    fetched: (u64, u64),
    /// Why it is not to be published (the shrink guard).
    held: Option<String>,
}

/// Jobs whose network part runs at once: enough to overlap the round trips of far upstreams
/// (their requests to one host still share its slots), few enough to bound the memory of the
/// plans held together (a Debian suite's parsed indices).
pub const PARALLEL_JOBS: usize = 4;

/// One job's network part as it ended: its result, how long it took, and when (unix).
struct Done {
    synced: Result<Synced, EntryError>,
    elapsed: std::time::Duration,
    ended: i64,
}

/// Marks the entry started in the catalog and reads its baseline; catalog errors abort the run.
fn start_job(env: &Env<'_>, store: &mut Store, job: Job<'_>) -> Result<Baseline, SyncError> {
    let (kind, view, upstream) = job.catalog_row();
    store.catalog().upsert_mirror(job.id(), kind, view, upstream)?;
    store.catalog().mark_started(job.id(), unix_now())?;
    Baseline::read(Some(store.catalog()), job, env.request)
}

/// The network part of every job, [`PARALLEL_JOBS`] at a time, results in job order.
fn network(env: &Env<'_>, jobs: &[Job<'_>], bases: &[Baseline]) -> Vec<Done> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Done>>> = jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_JOBS.min(jobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let started = Instant::now();
                let synced = sync_job(env, *job, &bases[i]);
                let done = Done { synced, elapsed: started.elapsed(), ended: unix_now() };
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(done);
            });
        }
    });
    results.into_iter().map(|r| r.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every job ran")).collect()
}

/// Records what one job's network part brought; catalog errors abort the run, entry errors don't.
fn conclude_job(
    env: &Env<'_>,
    store: &mut Store,
    job: Job<'_>,
    base: &Baseline,
    done: Done,
    recorded: &mut Vec<Recorded>,
) -> Result<EntryReport, SyncError> {
    let id = job.id().to_owned();
    let kind = job.catalog_row().0;
    let Synced { mut report, snapshot, repairs } = match done.synced {
        Ok(synced) => synced,
        Err(e) => Synced::failed(&id, e, done.elapsed),
    };
    report.elapsed = done.elapsed;
    let all_warnings = report.warnings.clone();
    let known = base.snapshot.as_ref().map_or(&[][..], |s| s.warnings.as_slice());
    report.warnings.retain(|w| !known.contains(w));
    report.repeated_warnings = all_warnings.len() - report.warnings.len();
    // Said once, for this run: not upstream's, so not recorded with the snapshot.
    report.warnings.extend(repairs);
    if let Some(snap) = snapshot {
        let guarded = !env.request.allow_shrink && store.catalog().pin(&id)?.is_none();
        let shrunk =
            if guarded { shrink::check(store.catalog(), &snap, kind, env.config.sync.max_shrink)? } else { None };
        let again = match &shrunk {
            Some(_) => shrink::held_before(store.catalog(), &snap)?,
            None => None,
        };
        let (snap_id, name) = match again {
            Some(name) => (store.catalog().snapshot_id(&id, &name)?.expect("the newest snapshot exists"), name),
            None => {
                let (snap_id, name) = store.record(&snap, &all_warnings)?;
                if env.config.web.is_some() {
                    record_changes(store, &id, base, snap_id, &name);
                }
                (snap_id, name)
            }
        };
        let held = shrunk.map(|s| s.line(&name));
        report.held = held.clone();
        report.outcome = Outcome::Snapshot { name };
        // Its run succeeded only once the snapshot is published (status.json would otherwise show
        // "success" beside the previous snapshot until the publish, or even if it is refused).
        let fetched = (report.fetched_bytes, report.fetched_files);
        recorded.push(Recorded { id, snapshot: snap_id, fetched, held });
        return Ok(report);
    }
    let outcome = match &report.outcome {
        Outcome::Failed(e) => {
            // The CLI prints the failure once, after the run (`pmirror-fs: mirror …`); at the
            // default log level this would say it a second time.
            tracing::info!(entry = %id, error = %e, "failed; its published snapshot stays");
            Err(e.to_string())
        }
        _ => Ok((report.fetched_bytes, report.fetched_files)),
    };
    store.catalog().mark_finished(&id, done.ended, outcome.as_ref().map(|v| *v).map_err(String::as_str))?;
    Ok(report)
}

/// What a new snapshot changed against its baseline's, for the front page (`[web]`): the
/// `snapshot diff` as JSON in the catalog. A diff that fails only costs the page its changes.
fn record_changes(store: &Store, id: &str, base: &Baseline, snapshot: i64, name: &str) {
    let Some(from) = base.snapshot.as_ref() else { return };
    let diff = crate::lifecycle::diff::diff(store.catalog(), store.pool(), id, &from.name, name);
    let stored = match diff.map(|d| serde_json::to_string(&d)) {
        Ok(Ok(json)) => store.catalog().set_snapshot_changes(snapshot, &from.name, &json).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(crate::engine::one_line(&e)),
    };
    if let Err(e) = stored {
        tracing::warn!(entry = %id, error = %e, "what the snapshot changed is not recorded (the front page leaves it out)");
    }
}

/// The network part of one job against its baseline: plan, perform, and the snapshot to record
/// (none when nothing changed).
fn sync_job(env: &Env<'_>, job: Job<'_>, base: &Baseline) -> Result<Synced, EntryError> {
    let started = Instant::now();
    let fetcher = env.fetcher(job);
    let Some(plan) = env.plan(job, &fetcher, base)? else {
        let report = EntryReport::new(job.id(), Outcome::Unchanged, started.elapsed());
        return Ok(Synced { report, snapshot: None, repairs: None });
    };
    let (skipped_packages, release) = (plan.skipped_packages, plan.release);
    let done = env.perform(job, &fetcher, plan)?;
    let mut r = EntryReport::new(job.id(), Outcome::Unchanged, started.elapsed());
    (r.fetched_files, r.fetched_bytes, r.reused_files, r.reused_bytes) =
        (done.fetched_files, done.fetched_bytes, done.reused_files, done.reused_bytes);
    r.skipped_packages = skipped_packages;
    r.warnings = done.warnings;
    r.warnings.extend(fetcher.source_notes());
    r.never_served = done.never_served;
    let unchanged = base.same_files(&done.entries);
    // A run that ends where its baseline was wrote only what that snapshot was missing; any
    // other verify run counts the reused objects it found damaged or missing.
    let repaired = if unchanged { done.written } else { done.repaired };
    let repairs = (env.verify(job) && repaired > 0).then(|| {
        format!("{repaired} damaged or missing pool objects were downloaded again ({} damaged)", done.damaged)
    });
    if unchanged {
        return Ok(Synced { report: r, snapshot: None, repairs });
    }
    let snapshot = NewSnapshot {
        mirror_id: job.id().to_owned(),
        created_at: unix_now(),
        release_sha256: release.map(|r| r.sha256),
        release_last_modified: release.and_then(|r| r.last_modified),
        entries: done.entries,
    };
    Ok(Synced { report: r, snapshot: Some(snapshot), repairs })
}

/// What one job's network part came to: its report, the snapshot to record (none when nothing
/// changed), and the line saying what `--verify` repaired (for this run's output only).
struct Synced {
    report: EntryReport,
    snapshot: Option<NewSnapshot>,
    repairs: Option<String>,
}

impl Synced {
    fn failed(id: &str, e: EntryError, elapsed: std::time::Duration) -> Synced {
        Synced { report: EntryReport::new(id, Outcome::Failed(e), elapsed), snapshot: None, repairs: None }
    }
}

/// Publishes every snapshot this run recorded in one transaction, refusing path conflicts. The
/// catalog holds back the snapshots of pinned mirrors (recorded, shown under `snapshots/`, not
/// published); the transaction still runs for them, so the view shows them.
fn publish(store: &mut Store, recorded: &[Recorded], report: &mut RunReport) -> Result<(), SyncError> {
    // A shared store's serving nodes do not rebuild a view whose grace window ended, and no view
    // gains a page the config added after it was built: the writer publishes again.
    if recorded.is_empty() && !store.view_expired() && !store.web_changed() {
        return Ok(());
    }
    // Held snapshots are not picked; the transaction still runs, so `snapshots/` shows them.
    let ids: Vec<i64> = recorded.iter().filter(|r| r.held.is_none()).map(|r| r.snapshot).collect();
    match store.publish(&ids) {
        Ok(out) => {
            report.generation = Some(out.generation);
            report.pruned = out.pruned;
            Ok(())
        }
        Err(StoreError::Catalog(CatalogError::View(why))) => {
            let line = format!("publish refused, previous snapshots stay published: {why}");
            for r in recorded.iter().filter(|r| r.held.is_none()) {
                // A pinned mirror's snapshot was not going to be published: its run did not fail.
                if store.catalog().pin(&r.id)?.is_none() {
                    store.catalog().mark_finished(&r.id, unix_now(), Err(&line))?;
                }
            }
            report.publish_error = Some(line);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Ends the runs of the entries that recorded a snapshot, once the publish is decided: success,
/// or the reason the publish failed (a refused publish already marked the unpinned ones).
fn finish_recorded(
    store: &Store,
    recorded: &[Recorded],
    published: &Result<(), SyncError>,
    refused: Option<&str>,
) -> Result<(), SyncError> {
    let catalog = store.catalog();
    for r in recorded {
        let pinned = catalog.pin(&r.id)?.is_some();
        if let Some(why) = &r.held {
            catalog.mark_finished(&r.id, unix_now(), Err(why))?;
            continue;
        }
        match (published, refused) {
            (Err(e), _) => {
                let line = format!("publish failed, previous snapshot stays published: {e}");
                catalog.mark_finished(&r.id, unix_now(), Err(&line))?;
            }
            // Marked failed by the refusal, unless pinned (its snapshot was not to be published).
            (Ok(()), Some(_)) if !pinned => {}
            (Ok(()), _) => catalog.mark_finished(&r.id, unix_now(), Ok(r.fetched))?,
        }
    }
    Ok(())
}
