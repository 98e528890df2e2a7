//! A sync run: the store opened for writing, one job after the other, a snapshot recorded per
//! changed entry, and one publish for all of them at the end. A pinned mirror (`snapshot publish`
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
    for job in jobs {
        let r = run_job(&env, &mut store, job, &mut recorded)?;
        report.mirrors.push(r);
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

/// Syncs one entry and records its snapshot; catalog errors abort the run, entry errors don't.
fn run_job(
    env: &Env<'_>,
    store: &mut Store,
    job: Job<'_>,
    recorded: &mut Vec<Recorded>,
) -> Result<EntryReport, SyncError> {
    let started = Instant::now();
    let id = job.id().to_owned();
    let (kind, view, upstream) = job.catalog_row();
    store.catalog().upsert_mirror(&id, kind, view, upstream)?;
    store.catalog().mark_started(&id, unix_now())?;
    let base = Baseline::read(Some(store.catalog()), job, env.request)?;
    let Synced { mut report, snapshot, repairs } = match sync_job(env, job, &base) {
        Ok(done) => done,
        Err(e) => Synced::failed(&id, e, started),
    };
    report.elapsed = started.elapsed();
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
            None => store.record(&snap, &all_warnings)?,
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
    store.catalog().mark_finished(&id, unix_now(), outcome.as_ref().map(|v| *v).map_err(String::as_str))?;
    Ok(report)
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
    fn failed(id: &str, e: EntryError, started: Instant) -> Synced {
        Synced { report: EntryReport::new(id, Outcome::Failed(e), started.elapsed()), snapshot: None, repairs: None }
    }
}

/// Publishes every snapshot this run recorded in one transaction, refusing path conflicts. The
/// catalog holds back the snapshots of pinned mirrors (recorded, shown under `snapshots/`, not
/// published); the transaction still runs for them, so the view shows them.
fn publish(store: &mut Store, recorded: &[Recorded], report: &mut RunReport) -> Result<(), SyncError> {
    if recorded.is_empty() {
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
