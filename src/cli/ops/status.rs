//! What `status` reports: the catalog's rows plus configured entries that never ran, and when
//! systemd's sync timer fires next. Shared by `status [--json]` and the mount's `/status.json`.

use super::super::human;
use crate::catalog::{Catalog, CatalogError, MirrorRow};
use crate::config::Config;
use std::path::Path;
use std::process::Command;

/// The timer the packaged units install (scripts/systemd/); its next elapse is `next_schedule`.
pub const SYNC_TIMER: &str = "pmirror-fs-sync.timer";

/// Where the mount serves the JSON (root of the view).
pub use crate::tree::STATUS_FILE;

/// Catalog rows (none before the first sync created the catalog), plus a `new` row for every
/// configured mirror/tree that never ran, by id. Entries removed from the config but still in
/// the catalog stay: their snapshots are served.
pub fn rows(config: &Config, catalog: Option<&Catalog>) -> Result<Vec<MirrorRow>, CatalogError> {
    let mut rows = match catalog {
        Some(catalog) => catalog.mirrors()?,
        None => Vec::new(),
    };
    let configured = config
        .mirrors
        .iter()
        .map(|m| ("mirror", m.id.as_str(), m.view.as_str(), m.repository.url.as_str()))
        .chain(config.trees.iter().map(|t| ("tree", t.id.as_str(), t.view.as_str(), t.url.as_str())));
    for (kind, id, view, upstream) in configured {
        if rows.iter().all(|r| r.id != id) {
            rows.push(MirrorRow {
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
        }
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

/// When [`SYNC_TIMER`] elapses next (Unix seconds); `None` without systemd (cron setups), when
/// the timer is not installed or not active.
pub fn next_schedule() -> Option<i64> {
    if !Path::new("/run/systemd/system").exists() {
        return None;
    }
    let out = Command::new("systemctl")
        .args(["show", "--timestamp=unix", "--property=NextElapseUSecRealtime", "--value", SYNC_TIMER])
        .output();
    match out {
        Ok(out) if out.status.success() => parse_unix_timestamp(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "systemctl show failed");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot run systemctl; next_schedule unknown");
            None
        }
    }
}

/// systemd's `--timestamp=unix` form: `@1704164645`; empty or `n/a` when not scheduled.
fn parse_unix_timestamp(text: &str) -> Option<i64> {
    text.trim().strip_prefix('@')?.parse().ok().filter(|t| *t > 0)
}

/// The `/status.json` the mount serves; on a catalog error an empty list (logged), so the view
/// still builds.
pub fn inline_file(config: &Config, catalog: &Catalog) -> (String, Vec<u8>) {
    let mut text = match rows(config, Some(catalog)) {
        Ok(rows) => human::status_json(&rows, next_schedule()),
        Err(e) => {
            tracing::warn!(error = %e, "reading mirror states for status.json failed; serving an empty list");
            "[]".to_owned()
        }
    };
    text.push('\n');
    (STATUS_FILE.to_owned(), text.into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn systemd_timestamps() {
        let cases = [("@1704164645\n", Some(1_704_164_645)), ("", None), ("n/a", None), ("@0", None), ("@x", None)];
        for (text, want) in cases {
            assert_eq!(super::parse_unix_timestamp(text), want, "{text:?}");
        }
    }
}
