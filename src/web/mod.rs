//! The mirror's front page (`[web]`, issue 17): `/index.html` — every mirror and tree with its
//! state, runs, size, upstream and published snapshot, and for each apt mirror the client
//! snippet and its key — and a page per entry under `/status/<id>.html`: its retained snapshots
//! (linked to their frozen trees), what each changed against the one before, and its last runs as
//! an inline SVG chart. The entry's key is served beside it (`/status/<id>.asc|gpg`).
//!
//! Pages are inline files of the view, like status.json, and made from the same rows: a publish
//! builds the view with placeholders at these paths ([`placeholders`]) and the mount daemon fills
//! them ([`render`]) whenever it fills status.json (a run's start or end, a publish); on a shared
//! store the writer renders them into `views/web/`. Self-contained: inline CSS, no script, no
//! font, no external URL except the site's own `base-url` in the snippets.

mod chart;
mod page;

use crate::catalog::{Catalog, CatalogError};
use crate::config::Config;

/// The front page's path in the view.
pub const INDEX: &str = "index.html";
/// Where the per-entry pages and keys are.
pub const PAGES_DIR: &str = "status";
/// Whether the served view has a path (`status/<id>.html`, a key, `snapshots/<id>/<name>/`): the
/// pages link only to what it has. Its set of pages is fixed when a publish builds it, so an
/// entry added to the config since has no page yet (the next sync publishes again).
pub type Has<'a> = &'a dyn Fn(&str) -> bool;

/// Runs the chart shows.
const CHART_RUNS: usize = 20;

/// `status/<id>.html`
pub fn page_path(id: &str) -> String {
    format!("{PAGES_DIR}/{id}.html")
}

/// `status/<id>.asc` (an armored key) or `.gpg`: the key an apt mirror is verified with.
pub fn key_path(id: &str, key: &[u8]) -> String {
    let armored = key.trim_ascii_start().starts_with(b"-----BEGIN");
    format!("{PAGES_DIR}/{id}.{}", if armored { "asc" } else { "gpg" })
}

/// The web files a view carries for `config` (none without `[web]`): the pages as placeholders
/// (filled in by [`render`]) and the apt mirrors' keys as they are.
pub fn placeholders(config: &Config) -> Vec<(String, Vec<u8>)> {
    if config.web.is_none() {
        return Vec::new();
    }
    let pending = || b"<!doctype html><title>pmirror-fs</title><p>The status is being read.\n".to_vec();
    let mut files = vec![(INDEX.to_owned(), pending())];
    for id in config.mirrors.iter().map(|m| &m.id).chain(config.trees.iter().map(|t| &t.id)) {
        files.push((page_path(id), pending()));
    }
    for m in &config.mirrors {
        files.push((key_path(&m.id, &m.key_bytes), m.key_bytes.clone()));
    }
    files
}

/// Every page's content now: `(path, bytes)` for the index and each configured entry's page.
pub fn render(
    config: &Config,
    catalog: Option<&Catalog>,
    next_schedule: Option<i64>,
    has: Has,
) -> Result<Vec<(String, Vec<u8>)>, CatalogError> {
    let Some(web) = &config.web else { return Ok(Vec::new()) };
    let rows = crate::status::rows(config, catalog)?;
    let mut files = vec![(INDEX.to_owned(), page::index(web, config, &rows, next_schedule, has).into_bytes())];
    for row in rows.iter().filter(|r| r.config != crate::status::InConfig::Removed) {
        let id = &row.row.id;
        let (snapshots, runs) = match catalog {
            Some(c) => (with_changes(c, c.snapshots(Some(id))?)?, c.runs(id, CHART_RUNS)?),
            None => (Vec::new(), Vec::new()),
        };
        let html = page::entry(web, row, next_schedule, &snapshots, &chart::runs(&runs), has);
        files.push((page_path(id), html.into_bytes()));
    }
    Ok(files)
}

/// A retained snapshot and what it changed against the one before it.
pub struct Snapshot {
    pub row: crate::catalog::SnapshotRow,
    /// The snapshot it was compared with and the diff (`snapshot diff --json`'s shape).
    pub changes: Option<(String, serde_json::Value)>,
}

fn with_changes(catalog: &Catalog, rows: Vec<crate::catalog::SnapshotRow>) -> Result<Vec<Snapshot>, CatalogError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let changes = catalog
            .snapshot_changes(row.id)?
            .and_then(|(from, json)| serde_json::from_str(&json).ok().map(|v| (from, v)));
        out.push(Snapshot { row, changes });
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.row.created_at));
    Ok(out)
}

/// `text` safe inside HTML text and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_would_read() {
        assert_eq!(esc(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_config_reserves_these_paths() {
        use crate::config::validate::{PAGES_DIR as RESERVED_DIR, SERVED_FILES};
        assert_eq!((RESERVED_DIR, SERVED_FILES), (PAGES_DIR, [crate::tree::STATUS_FILE, INDEX]));
    }

    #[test]
    fn keys_keep_their_form() {
        assert_eq!(key_path("pve", b"-----BEGIN PGP PUBLIC KEY BLOCK-----"), "status/pve.asc");
        assert_eq!(key_path("pve", &[0x99, 0x01]), "status/pve.gpg");
    }
}
