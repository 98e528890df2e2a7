//! Formatting for people and scripts: sizes in KiB/MiB/GiB, one summary line per mirror, the
//! dry-run plan, and the JSON shapes of `sync --json` and `status --json`.

use crate::catalog::{snapshot_name, MirrorRow};
use crate::sync::{MirrorOutcome, MirrorPlan, MirrorReport, RunReport, Source};
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

pub fn mirror_line(m: &MirrorReport) -> String {
    let secs = m.elapsed.as_secs_f64();
    let what = match &m.outcome {
        MirrorOutcome::Unchanged => "unchanged".to_owned(),
        MirrorOutcome::Snapshot { name } => format!("new snapshot {name}"),
        MirrorOutcome::Planned(_) => "dry run".to_owned(),
        MirrorOutcome::Failed(_) => "FAILED".to_owned(),
    };
    let mut line = format!(
        "{}: {what}; fetched {} files ({}), reused {} files ({}); {secs:.1}s",
        m.id,
        m.fetched_files,
        size(m.fetched_bytes),
        m.reused_files,
        size(m.reused_bytes),
    );
    if m.fetched_bytes > 0 {
        line += &format!(", {}/s", size(m.throughput() as u64));
    }
    if m.skipped_packages > 0 {
        line += &format!("; {} packages skipped by config", m.skipped_packages);
    }
    if !m.warnings.is_empty() {
        line += &format!("; {} warnings", m.warnings.len());
    }
    line
}

/// One line per file to fetch, then the totals.
pub fn plan_lines(plan: &MirrorPlan) -> String {
    let mut out = String::new();
    for f in &plan.files {
        let what = match &f.source {
            Source::Reuse => continue,
            Source::Write(_) => "verified",
            Source::Download { .. } => "fetch",
        };
        out += &format!("{}: {what} {} ({})\n", plan.mirror_id, f.path, size(f.size));
    }
    let t = plan.totals();
    out += &format!(
        "{}: plan: fetch {} objects ({}), reuse {} objects ({}), skip {} packages\n",
        plan.mirror_id,
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
                MirrorOutcome::Unchanged => ("unchanged", None, None),
                MirrorOutcome::Snapshot { name } => ("snapshot", Some(name.clone()), None),
                MirrorOutcome::Planned(_) => ("planned", None, None),
                MirrorOutcome::Failed(e) => ("failed", None, Some(e.to_string())),
            };
            json!({
                "id": m.id, "outcome": outcome, "snapshot": snapshot, "error": error,
                "fetched_files": m.fetched_files, "fetched_bytes": m.fetched_bytes,
                "reused_files": m.reused_files, "reused_bytes": m.reused_bytes,
                "skipped_packages": m.skipped_packages, "elapsed_secs": m.elapsed.as_secs_f64(),
                "warnings": m.warnings,
            })
        })
        .collect();
    json!({ "mirrors": mirrors, "generation": r.generation, "publish_error": r.publish_error, "pruned": r.pruned })
}

pub fn status_json(rows: &[MirrorRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "name": r.id, "kind": r.kind, "status": r.state,
                    "last_update": r.last_success, "last_started": r.last_started, "last_ended": r.last_ended,
                    "upstream": r.upstream, "view": r.view,
                    "snapshot": r.published.as_ref().map(|s| s.name.clone()),
                    "size": r.published.as_ref().map_or(0, |s| s.bytes),
                    "last_error": r.last_error,
                })
            })
            .collect(),
    )
}

pub fn status_line(r: &MirrorRow) -> String {
    let when = |t: Option<i64>| t.map_or_else(|| "never".to_owned(), snapshot_name);
    let published = r.published.as_ref().map_or_else(
        || "nothing published".to_owned(),
        |s| format!("published {} ({} files, {})", s.name, s.files, size(s.bytes)),
    );
    let mut line = format!("{}: {}; {published}; last success {}", r.id, r.state, when(r.last_success));
    if let Some(e) = &r.last_error {
        line += &format!("; last error: {e}");
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
}
