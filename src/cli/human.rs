//! Formatting for people and scripts: sizes in KiB/MiB/GiB, one summary line per mirror, the
//! dry-run plan, and the JSON shapes of `sync --json` and `status --json`.

use super::ops::{InConfig, StatusRow};
use crate::catalog::snapshot_name;
use crate::engine::{EntryReport, Outcome, Plan, RunReport, Source};
use serde_json::{json, Value};

/// 1536 → "1.5 KiB".
pub fn size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

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
                "never_served": m.never_served, "pinned_to": m.pinned_to,
            })
        })
        .collect();
    json!({ "mirrors": mirrors, "generation": r.generation, "publish_error": r.publish_error, "pruned": r.pruned })
}

/// One entry of `status --json` and the mount's `/status.json`: tunasync's `/jobs` fields (what
/// mirror front pages consume) in tunasync's order, then pmirror-fs's own. The schema is
/// `docs/status.schema.json`; times are tunasync's `2006-01-02 15:04:05 -0700` text (UTC here)
/// beside a `_ts` Unix second; an unknown time is `""` with `_ts` 0.
#[derive(serde::Serialize)]
struct StatusEntry<'a> {
    name: &'a str,
    is_master: bool,
    status: &'a str,
    last_update: String,
    last_update_ts: i64,
    last_started: String,
    last_started_ts: i64,
    last_ended: String,
    last_ended_ts: i64,
    next_schedule: String,
    next_schedule_ts: i64,
    upstream: &'a str,
    size: String,
    error_msg: &'a str,
    kind: &'a str,
    view: &'a str,
    snapshot: Option<&'a str>,
    size_bytes: u64,
    files: u64,
    pinned: bool,
    warnings: &'a [String],
    configured: bool,
}

/// The status document, pretty-printed: one [`StatusEntry`] per mirror/tree row (a typed struct
/// keeps tunasync's field order, which a `serde_json::Value` would sort).
pub fn status_json(rows: &[StatusRow], next_schedule: Option<i64>) -> String {
    let entries: Vec<StatusEntry<'_>> = rows
        .iter()
        .map(|StatusRow { row: r, config }| {
            // An unusable entry's config problem is what stops it now, whatever its last run said;
            // a removed one is `disabled` (tunasync's word), not failed forever.
            let (status, error_msg) = match config {
                InConfig::Configured => (tunasync_status(&r.state), r.last_error.as_deref().unwrap_or_default()),
                InConfig::Unusable(problem) => ("failed", problem.as_str()),
                InConfig::Removed => ("disabled", ""),
            };
            let (last_update, last_update_ts) = tunasync_time(r.last_success);
            let (last_started, last_started_ts) = tunasync_time(r.last_started);
            let (last_ended, last_ended_ts) = tunasync_time(r.last_ended);
            // The timer's next run concerns configured entries that can run.
            let next = next_schedule.filter(|_| *config == InConfig::Configured);
            let (next_schedule, next_schedule_ts) = tunasync_time(next);
            let size_bytes = r.published.as_ref().map_or(0, |s| s.bytes);
            StatusEntry {
                name: &r.id,
                is_master: true,
                status,
                last_update,
                last_update_ts,
                last_started,
                last_started_ts,
                last_ended,
                last_ended_ts,
                next_schedule,
                next_schedule_ts,
                upstream: &r.upstream,
                size: size(size_bytes),
                error_msg,
                kind: &r.kind,
                view: &r.view,
                snapshot: r.published.as_ref().map(|s| s.name.as_str()),
                size_bytes,
                files: r.published.as_ref().map_or(0, |s| s.files),
                pinned: r.published.as_ref().is_some_and(|s| s.pinned),
                warnings: r.published.as_ref().map_or(&[][..], |s| s.warnings.as_slice()),
                configured: *config != InConfig::Removed,
            }
        })
        .collect();
    serde_json::to_string_pretty(&entries).unwrap_or_else(|e| {
        // Strings, integers and booleans always serialize; this would be a bug in the shape.
        tracing::error!(error = %e, "cannot serialize the status");
        "[]".to_owned()
    })
}

/// The catalog's states in tunasync's words (`new` = never ran = tunasync's `none`).
fn tunasync_status(state: &str) -> &str {
    match state {
        "new" => "none",
        other => other,
    }
}

/// `("2024-01-02 03:04:05 +0000", 1704164645)`, or `("", 0)` when unknown.
pub fn tunasync_time(unix: Option<i64>) -> (String, i64) {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    let Some(t) = unix else { return (String::new(), 0) };
    match time::OffsetDateTime::from_unix_timestamp(t).map(|d| d.format(FORMAT)) {
        Ok(Ok(text)) => (text, t),
        _ => (String::new(), 0),
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        let cases = [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB"), (3 << 30, "3.0 GiB")];
        for (n, want) in cases {
            assert_eq!(super::size(n), want);
        }
    }

    #[test]
    fn tunasync_times() {
        let cases = [
            (Some(0), ("1970-01-01 00:00:00 +0000", 0)),
            (Some(1_704_164_645), ("2024-01-02 03:04:05 +0000", 1_704_164_645)),
            (None, ("", 0)),
            (Some(i64::MAX), ("", 0)),
        ];
        for (t, (text, ts)) in cases {
            assert_eq!(super::tunasync_time(t), (text.to_owned(), ts), "{t:?}");
        }
    }
}
