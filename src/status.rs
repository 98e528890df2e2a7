//! What `status` reports and the mount serves as `/status.json`: the catalog's rows plus the
//! configured entries that never ran, and the JSON document in tunasync's shape
//! (`docs/status.schema.json`). `status [--json]`, the metrics textfile and the mount daemon all
//! read their rows through [`rows`].
//!
//! When the sync timer fires next is the caller's to find out (the CLI asks systemd): it is
//! passed in, so nothing here runs a command.

use crate::catalog::{Catalog, CatalogError, MirrorRow};
use crate::config::Config;
use std::sync::OnceLock;

/// Where the writer of a shared store learns when the sync timer fires next (the CLI asks
/// systemd); unset, status documents it writes show no next run.
static SCHEDULE: OnceLock<fn() -> Option<i64>> = OnceLock::new();

/// Sets where [`next_schedule`] asks (once per process; later calls are ignored).
pub fn set_schedule(ask: fn() -> Option<i64>) {
    let _ = SCHEDULE.set(ask);
}

/// When the sync timer fires next (Unix seconds), if a source was set and knows.
pub fn next_schedule() -> Option<i64> {
    SCHEDULE.get().and_then(|ask| ask())
}

/// Where the mount serves the JSON (root of the view).
pub use crate::tree::STATUS_FILE;

/// One row of `status` and `/status.json`: the catalog's record of an entry, and where the entry
/// stands in the config.
#[derive(Clone, Debug)]
pub struct StatusRow {
    pub row: MirrorRow,
    pub config: InConfig,
}

/// Where a status row's entry stands in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InConfig {
    Configured,
    /// Configured but unable to run: the config problem, one line with its fix.
    Unusable(String),
    /// Only in the catalog: removed from the config, its retained snapshots still served until
    /// `snapshot forget` deletes them.
    Removed,
}

/// Every configured entry (those that never ran as `new`, from the config), then the catalog's
/// entries the config no longer has, marked [`InConfig::Removed`]; by id. No catalog before the
/// first sync: configured entries only.
pub fn rows(config: &Config, catalog: Option<&Catalog>) -> Result<Vec<StatusRow>, CatalogError> {
    let recorded = match catalog {
        Some(catalog) => catalog.mirrors()?,
        None => Vec::new(),
    };
    let configured = config
        .mirrors
        .iter()
        .map(|m| ("mirror", m.id.as_str(), m.view.as_str(), m.repository.url.as_str(), InConfig::Configured))
        .chain(
            config.trees.iter().map(|t| ("tree", t.id.as_str(), t.view.as_str(), t.url.as_str(), InConfig::Configured)),
        )
        .chain(config.unusable.iter().map(|u| {
            (u.kind, u.id.as_str(), u.view.as_str(), u.upstream.as_str(), InConfig::Unusable(u.error.to_string()))
        }));
    let mut rows = Vec::new();
    for (kind, id, view, upstream, in_config) in configured {
        let row = recorded.iter().find(|r| r.id == id).cloned().unwrap_or_else(|| MirrorRow {
            id: id.to_owned(),
            kind: kind.to_owned(),
            view: view.to_owned(),
            upstream: upstream.to_owned(),
            published: None,
            state: "new".to_owned(),
            last_started: None,
            last_ended: None,
            last_success: None,
            last_error: None,
        });
        rows.push(StatusRow { row, config: in_config });
    }
    for row in recorded {
        if rows.iter().all(|r| r.row.id != row.id) {
            rows.push(StatusRow { row, config: InConfig::Removed });
        }
    }
    rows.sort_by(|a, b| a.row.id.cmp(&b.row.id));
    Ok(rows)
}

/// The `/status.json` the mount serves: its path in the view and its content. On a catalog error
/// an empty list (logged), so the view still builds. `next_schedule` (when the sync timer fires
/// next, Unix seconds) is asked only when there are rows to show it in.
pub fn inline_file(
    config: &Config,
    catalog: &Catalog,
    next_schedule: impl FnOnce() -> Option<i64>,
) -> (String, Vec<u8>) {
    let mut text = match rows(config, Some(catalog)) {
        Ok(rows) => json(&rows, next_schedule()),
        Err(e) => {
            tracing::warn!(error = %e, "reading mirror states for status.json failed; serving an empty list");
            "[]".to_owned()
        }
    };
    text.push('\n');
    (STATUS_FILE.to_owned(), text.into_bytes())
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

impl<'a> StatusEntry<'a> {
    fn new(StatusRow { row: r, config }: &'a StatusRow, next_schedule: Option<i64>) -> StatusEntry<'a> {
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
    }
}

/// The status document, pretty-printed: one [`StatusEntry`] per mirror/tree row (a typed struct
/// keeps tunasync's field order, which a `serde_json::Value` would sort).
pub fn json(rows: &[StatusRow], next_schedule: Option<i64>) -> String {
    let entries: Vec<StatusEntry<'_>> = rows.iter().map(|row| StatusEntry::new(row, next_schedule)).collect();
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

/// 1536 → "1.5 KiB" (status.json's `size`, and every size the CLI prints).
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
