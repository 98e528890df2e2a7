//! Progress of a run, for a TTY bar or log lines (implemented by the CLI).

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
