//! Formatting for people and scripts: one summary line per mirror, the dry-run plan, the JSON
//! shape of `sync --json`, and `status`'s line per entry (sizes and `status --json` are
//! `crate::status`'s, shared with the mount's status.json).

use crate::catalog::snapshot_name;
use crate::engine::{EntryReport, Outcome, Plan, Source};
pub use crate::status::size;
use crate::status::{InConfig, StatusRow};
use crate::sync::RunReport;
use serde_json::{json, Value};

pub fn mirror_line(m: &EntryReport) -> String {
    let secs = m.elapsed.as_secs_f64();
    let mut what = match &m.outcome {
        Outcome::Unchanged => "unchanged".to_owned(),
        Outcome::Snapshot { name } => format!("new snapshot {name}"),
        Outcome::Planned(_) => "dry run".to_owned(),
        Outcome::Failed(_) => "FAILED".to_owned(),
    };
    match (&m.outcome, &m.pinned_to) {
        (Outcome::Snapshot { .. }, Some(pin)) => what += &format!(", not published: pinned to {pin}"),
        (_, Some(pin)) => what += &format!(", pinned to {pin}"),
        (_, None) => {}
    }
    // A dry run fetched nothing: it says what a sync would fetch, and has no throughput.
    let planned = matches!(m.outcome, Outcome::Planned(_));
    let (fetch, reuse) = if planned { ("would fetch", "would reuse") } else { ("fetched", "reused") };
    let mut line = format!(
        "{}: {what}; {fetch} {} files ({}), {reuse} {} files ({}); {secs:.1}s",
        m.id,
        m.fetched_files,
        size(m.fetched_bytes),
        m.reused_files,
        size(m.reused_bytes),
    );
    if m.fetched_bytes > 0 && !planned {
        line += &format!(", {}/s", size(m.throughput() as u64));
    }
    if m.skipped_packages > 0 {
        line += &format!("; {} packages skipped by config", m.skipped_packages);
    }
    match (m.warnings.len(), m.repeated_warnings) {
        (0, 0) => {}
        (new, 0) => line += &format!("; {new} {}", plural(new, "warning")),
        (0, old) => line += &format!("; {old} known {} (pmirror-fs status lists them)", plural(old, "warning")),
        (new, old) => line += &format!("; {new} new {}, {old} known", plural(new + old, "warning")),
    }
    line
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// One line per file to fetch, then the totals.
pub fn plan_lines(plan: &Plan) -> String {
    let mut out = String::new();
    for f in &plan.files {
        let what = match &f.source {
            Source::Pool { .. } | Source::Recheck { .. } => continue,
            Source::Memory { .. } => "verified",
            Source::Download { .. } => "fetch",
        };
        out += &format!("{}: {what} {} ({})\n", plan.entry_id, f.path, size(f.bytes()));
    }
    let t = plan.totals();
    out += &format!(
        "{}: plan: fetch {} objects ({}), reuse {} objects ({}), skip {} packages\n",
        plan.entry_id,
        t.fetch_files,
        size(t.fetch_bytes),
        t.reuse_files,
        size(t.reuse_bytes),
        plan.skipped_packages
    );
    out
}

pub fn report_json(r: &RunReport) -> Value {
    let mirrors: Vec<Value> = r
        .mirrors
        .iter()
        .map(|m| {
            let (outcome, snapshot, error) = match &m.outcome {
                Outcome::Unchanged => ("unchanged", None, None),
                Outcome::Snapshot { name } => ("snapshot", Some(name.clone()), None),
                Outcome::Planned(_) => ("planned", None, None),
                Outcome::Failed(e) => ("failed", None, Some(e.to_string())),
            };
            json!({
                "id": m.id, "outcome": outcome, "snapshot": snapshot, "error": error,
                "fetched_files": m.fetched_files, "fetched_bytes": m.fetched_bytes,
                "reused_files": m.reused_files, "reused_bytes": m.reused_bytes,
                "skipped_packages": m.skipped_packages, "elapsed_secs": m.elapsed.as_secs_f64(),
                "warnings": m.warnings, "repeated_warnings": m.repeated_warnings,
                "never_served": m.never_served, "pinned_to": m.pinned_to, "held": m.held,
            })
        })
        .collect();
    json!({ "mirrors": mirrors, "generation": r.generation, "publish_error": r.publish_error, "pruned": r.pruned })
}

pub fn status_line(StatusRow { row: r, config }: &StatusRow, next_schedule: Option<i64>) -> String {
    let when = |t: Option<i64>| t.map_or_else(|| "never".to_owned(), snapshot_name);
    let published = r.published.as_ref().map_or_else(
        || "nothing published".to_owned(),
        |s| format!("published {} ({} files, {})", s.name, s.files, size(s.bytes)),
    );
    let warnings = r.published.as_ref().map_or(0, |s| s.warnings.len());
    let published =
        if warnings > 0 { format!("{published} with {warnings} {}", plural(warnings, "warning")) } else { published };
    let state = match config {
        InConfig::Configured => r.state.clone(),
        InConfig::Unusable(_) => "cannot sync".to_owned(),
        InConfig::Removed => "removed from the config".to_owned(),
    };
    let mut line = format!("{}: {state}; {published}", r.id);
    if let Some(s) = r.published.as_ref().filter(|s| s.pinned) {
        line += &format!("; pinned to {} (`snapshot unpin {}` undoes it)", s.name, r.id);
    }
    line += &format!("; last success {}", when(r.last_success));
    match config {
        InConfig::Configured => {
            if let Some(next) = next_schedule {
                line += &format!("; next run {}", snapshot_name(next));
            }
            if let Some(e) = &r.last_error {
                line += &format!("; last error: {e}");
            }
        }
        InConfig::Unusable(problem) => line += &format!("; {problem}"),
        InConfig::Removed => {
            line +=
                &format!("; `pmirror-fs snapshot forget {}` deletes its snapshots, then `gc` frees its objects", r.id)
        }
    }
    line
}
