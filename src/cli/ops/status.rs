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
