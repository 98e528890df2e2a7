//! One engine for every entry kind. A planner — the apt planner ([`crate::mirror`]: Release →
//! indices → packages) or the tree planner ([`crate::filetree`]: autoindex → checksum lists) —
//! returns a [`Plan`]: every object of the new snapshot with its path, size, the check its bytes
//! must pass and where they come from. [`perform`] carries out any plan the same way: bounded
//! parallel downloads into the pool, verified bytes written from memory, reused objects re-hashed
//! and repaired when verifying (one repair semantics: a good copy is renamed over a damaged one,
//! so a referenced object is never missing). The run around it (baselines, record, publish) is
//! [`crate::sync`]; the store it writes to is [`crate::store`].
//!
//! ```text
//! planner ──▶ Plan { files: [PlannedFile { path, url, size, check, source }], warnings }
//!                        source: Pool (reuse) | Memory (verified bytes) | Download | Recheck
//! perform ──▶ Performed { entries (catalog rows), counters, warnings }
//! ```

mod error;
mod perform;
mod plan;
mod progress;
mod report;

pub use error::{one_line, Cause, EntryError, Mismatch};
pub use perform::{perform, InFlight, PerformCtx, Performed};
pub use plan::{Check, Plan, PlanTotals, PlannedFile, ReleaseMark, Size, Source};
pub use progress::{Progress, SilentProgress};
pub use report::{EntryReport, Outcome};

/// Seconds since the epoch (0 before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
