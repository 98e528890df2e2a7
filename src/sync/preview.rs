//! Plans only: each entry's plan against the store as it is, creating and changing nothing — no
//! lock, no pool directories, no catalog (a store that does not exist yet plans every file as a
//! fetch), no migration (a catalog of an older schema fails, naming it: a sync migrates it).
//! This is what `sync --dry-run` prints.

use super::jobs::{select, Baseline, Env};
use super::RunReport;
use super::{SyncError, SyncRequest};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::engine::{EntryReport, Outcome, Progress};
use crate::pool::Pool;
use std::time::Instant;

/// The plan of every selected entry, as a report whose outcomes are [`Outcome::Planned`]
/// (unchanged, or failed, like a sync's).
pub fn preview(config: &Config, request: &SyncRequest, progress: &dyn Progress) -> Result<RunReport, SyncError> {
    let jobs = select(config, &request.ids)?;
    let store = &config.store.dir;
    let env = Env::new(config, Pool::existing(store), progress, request)?;
    // Every baseline is read first and the catalog closed before the network phase: this holds
    // no lock, and an immutable read must not span a writer's checkpoint.
    let catalog = match store.join("catalog.db").exists() {
        true => Some(Catalog::open_untouched(store)?),
        false => None,
    };
    let baselines = jobs
        .iter()
        .map(|&job| Baseline::read(catalog.as_ref(), job, request))
        .collect::<Result<Vec<_>, SyncError>>()?;
    drop(catalog);
    let mut report = RunReport::default();
    for (&job, base) in jobs.iter().zip(&baselines) {
        let started = Instant::now();
        let fetcher = env.fetcher(job);
        let outcome = match env.plan(job, &fetcher, base) {
            Ok(Some(plan)) => Outcome::Planned(Box::new(plan)),
            Ok(None) => Outcome::Unchanged,
            Err(e) => Outcome::Failed(e),
        };
        let mut r = EntryReport::new(job.id(), outcome, started.elapsed());
        if let Outcome::Planned(plan) = &r.outcome {
            let t = plan.totals();
            (r.fetched_files, r.fetched_bytes, r.reused_files, r.reused_bytes) =
                (t.fetch_files, t.fetch_bytes, t.reuse_files, t.reuse_bytes);
            r.skipped_packages = plan.skipped_packages;
            // Counted as a sync counts them: what the baseline recorded already is "known".
            let known = base.snapshot.as_ref().map_or(&[][..], |s| s.warnings.as_slice());
            r.warnings = plan.warnings.iter().filter(|w| !known.contains(w)).cloned().collect();
            r.repeated_warnings = plan.warnings.len() - r.warnings.len();
        }
        report.mirrors.push(r);
    }
    Ok(report)
}
