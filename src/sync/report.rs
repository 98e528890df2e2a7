//! What a sync run reports as a whole: each entry's report, and the run's one publish.

use crate::engine::EntryReport;

#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub mirrors: Vec<EntryReport>,
    /// Generation published by this run (None: nothing to publish, dry run, or publish refused).
    pub generation: Option<u64>,
    /// Why the publish transaction was refused (e.g. a path conflict between two mirrors).
    pub publish_error: Option<String>,
    /// Snapshots removed by retention, as `mirror/name`.
    pub pruned: Vec<String>,
}

impl RunReport {
    pub fn success(&self) -> bool {
        self.publish_error.is_none() && !self.mirrors.iter().any(|m| m.failed() || m.held.is_some())
    }
}
