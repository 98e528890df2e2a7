//! What a sync run reports: per entry (mirror or tree) outcome, files and bytes fetched and reused, warnings,
//! elapsed time; and the publish result of the run.

use super::error::EntryError;
use super::plan::Plan;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Outcome {
    /// Upstream's Release did not change: nothing fetched, no snapshot.
    Unchanged,
    /// A new snapshot was recorded (and published, unless the publish failed or the mirror is
    /// pinned: [`EntryReport::pinned_to`]).
    Snapshot {
        name: String,
    },
    /// Planned only (`sync --dry-run`): what a sync would do.
    Planned(Box<Plan>),
    Failed(EntryError),
}

#[derive(Debug, Clone)]
pub struct EntryReport {
    pub id: String,
    pub outcome: Outcome,
    pub fetched_files: u64,
    pub fetched_bytes: u64,
    pub reused_files: u64,
    pub reused_bytes: u64,
    pub skipped_packages: usize,
    pub elapsed: Duration,
    /// Warnings of this run not already recorded with the sync baseline (printed in full).
    pub warnings: Vec<String>,
    /// Warnings this run found again, as the baseline snapshot recorded them: counted, not
    /// re-printed every run (`status` lists them).
    pub repeated_warnings: usize,
    /// Uncompressed indices the Release lists beside a compressed variant that upstream does
    /// not serve (normal for Debian's archive; not a warning).
    pub never_served: u64,
    /// The snapshot the mirror is pinned to after the run (`snapshot publish` of an older one):
    /// a new snapshot it recorded is not published.
    pub pinned_to: Option<String>,
    /// Why its new snapshot was recorded but not published (it shrank past `[sync] max-shrink`).
    pub held: Option<String>,
}

impl EntryReport {
    pub fn new(id: &str, outcome: Outcome, elapsed: Duration) -> EntryReport {
        EntryReport {
            id: id.to_owned(),
            outcome,
            fetched_files: 0,
            fetched_bytes: 0,
            reused_files: 0,
            reused_bytes: 0,
            skipped_packages: 0,
            elapsed,
            warnings: Vec::new(),
            repeated_warnings: 0,
            never_served: 0,
            pinned_to: None,
            held: None,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }

    /// Bytes per second of what was fetched.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.fetched_bytes as f64 / secs
        } else {
            0.0
        }
    }
}
