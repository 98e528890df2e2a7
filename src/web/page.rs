//! The HTML of the front page and of an entry's page: plain HTML with inline CSS, readable
//! without JavaScript or images; links are relative, so the pages work under any host name.

use super::{esc, key_path, page_path, Has, Snapshot};
use crate::config::{Config, WebConfig};
use crate::status::{size, tunasync_time, InConfig, StatusRow};
use serde_json::Value;
use std::fmt::Write as _;

/// Changes listed per snapshot before "… and N more".
const MAX_CHANGES: usize = 300;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:86rem;padding:0 1rem;color:#1d232a}\
h1{margin:1.2rem 0 .3rem}h2{margin-top:2rem;border-bottom:1px solid #ccd}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e6ea;vertical-align:top}td small,.reason{overflow-wrap:anywhere}th{background:#f3f5f7}\
.state{font-weight:600}.success .state{color:#1e7d32}.failed .state{color:#b71c1c}.syncing .state{color:#8a5a00}\
.reason{color:#b71c1c;font-size:.9em;max-width:28rem}.notice{background:#fff6d6;border:1px solid #e8d48a;padding:.5rem .8rem}\
pre{background:#f3f5f7;padding:.6rem .8rem;overflow-x:auto}small,.muted{color:#5f6b76}.pinned{color:#8a5a00;font-weight:600}\
.added{color:#1e7d32}.removed{color:#b71c1c}.upgraded{color:#2f6fb0}footer{margin:2rem 0;color:#5f6b76;font-size:.9em}";

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

fn footer(home: &str) -> String {
    format!(
        "<footer>Made by pmirror-fs {} from the same records as <a href=\"{home}status.json\">status.json</a>; \
         retained snapshots are under <a href=\"{home}snapshots/\">snapshots/</a>.</footer>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// A time as tunasync writes it, or "never".
fn when(unix: Option<i64>) -> String {
    match tunasync_time(unix).0 {
        t if t.is_empty() => "never".to_owned(),
        t => t,
    }
}

/// `(state, reason)`: status.json's words.
fn state(row: &StatusRow) -> (&str, &str) {
    let r = &row.row;
    match &row.config {
        InConfig::Configured if r.state == "new" => ("none", ""),
        InConfig::Configured => (r.state.as_str(), r.last_error.as_deref().unwrap_or_default()),
        InConfig::Unusable(problem) => ("failed", problem.as_str()),
        InConfig::Removed => ("disabled", "removed from the config; its snapshots are still served"),
    }
}

/// The last attempt: when it started and how long it took (or that it is still running).
fn attempt(row: &StatusRow) -> String {
    let r = &row.row;
    match (r.last_started, r.last_ended) {
        (None, _) => "never".to_owned(),
        (Some(s), Some(e)) if e >= s => format!("{} <small>({} s)</small>", when(Some(s)), e - s),
        (Some(s), _) => format!("{} <small>(running)</small>", when(Some(s))),
    }
}

/// `<a href="{home}{path}">{text}</a>` when the served view has `path`, else the text alone.
fn link(has: Has, home: &str, path: &str, text: &str) -> String {
    match has(path) {
        true => format!("<a href=\"{}\">{}</a>", esc(&format!("{home}{path}")), esc(text)),
        false => esc(text),
    }
}

/// One entry's table row; links relative to `home` ("" on the index, "../" below `status/`).
fn row_html(row: &StatusRow, next: Option<i64>, home: &str, has: Has) -> String {
    let r = &row.row;
    let (state, reason) = state(row);
    let name = match row.config {
        InConfig::Removed => esc(&r.id),
        _ => link(has, home, &page_path(&r.id), &r.id),
    };
    let reason = if reason.is_empty() { String::new() } else { format!("<div class=\"reason\">{}</div>", esc(reason)) };
    let next = next.filter(|_| row.config == InConfig::Configured);
    let snapshot = match &r.published {
        Some(s) => {
            let pinned = if s.pinned { " <span class=\"pinned\">pinned (rolled back)</span>" } else { "" };
            format!("{}{pinned}", link(has, home, &format!("snapshots/{}/{}/", r.id, s.name), &s.name))
        }
        None => "<span class=\"muted\">none yet</span>".to_owned(),
    };
    let bytes = r.published.as_ref().map_or(0, |s| s.bytes);
    format!(
        "<tr id=\"entry-{id}\" class=\"{state}\"><td>{name} <small>{kind}</small></td><td><span class=\"state\">{state}</span>{reason}</td>\
         <td>{success}</td><td>{attempt}</td><td>{next}</td><td>{size}</td><td><small>{upstream}</small></td><td>{snapshot}</td></tr>\n",
        id = esc(&r.id),
        kind = esc(&r.kind),
        success = when(r.last_success),
        attempt = attempt(row),
        next = next.map_or("<span class=\"muted\">unknown</span>".to_owned(), |t| when(Some(t))),
        size = size(bytes),
        upstream = esc(&r.upstream),
    )
}

/// The client snippets of one apt mirror: the key, a deb822 `.sources` stanza and the one-line form;
/// a line saying it is not served yet while the view lacks its key (an entry added since).
fn usage(web: &WebConfig, m: &crate::config::MirrorConfig, has: Has) -> String {
    let base = &web.base_url;
    let key = key_path(&m.id, &m.key_bytes);
    if !has(&key) {
        return format!(
            "<section id=\"use-{id}\"><h3>{id}</h3><p class=\"muted\">Not served yet: its snippet appears once a sync has published it.</p></section>\n",
            id = esc(&m.id)
        );
    }
    let ext = key.rsplit('.').next().unwrap_or("asc");
    let keyring = format!("/etc/apt/keyrings/pmirror-fs-{}.{ext}", m.id);
    let uri = format!("{base}/{}", m.view);
    let (suite, components) = (&m.repository.suite, m.repository.components.join(" "));
    let sources = format!("Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: {components}\nSigned-By: {keyring}\n");
    format!(
        "<section id=\"use-{id}\"><h3>{id}</h3><p>The key (<a href=\"{key}\">{key}</a>):</p>\
         <pre>mkdir -p /etc/apt/keyrings\ncurl -fsSL {base}/{key} -o {keyring}</pre>\
         <p><code>/etc/apt/sources.list.d/pmirror-fs-{id}.sources</code>:</p><pre>{sources}</pre>\
         <p>or one line in <code>/etc/apt/sources.list</code>:</p><pre>deb [signed-by={keyring}] {uri} {suite} {components}</pre></section>\n",
        id = esc(&m.id),
        key = esc(&key),
        base = esc(base),
        keyring = esc(&keyring),
        sources = esc(&sources),
        uri = esc(&uri),
        suite = esc(suite),
        components = esc(&components),
    )
}

/// `/index.html`.
pub fn index(web: &WebConfig, config: &Config, rows: &[StatusRow], next: Option<i64>, has: Has) -> String {
    let mut html = head(&web.title);
    let _ = write!(html, "<header><h1>{}</h1>", esc(&web.title));
    if let Some(notice) = &web.notice {
        let _ = write!(html, "<p class=\"notice\">{}</p>", esc(notice));
    }
    html.push_str(
        "</header><main>\n<table><thead><tr><th>Name</th><th>State</th><th>Last success</th>\
                   <th>Last attempt</th><th>Next run</th><th>Size</th><th>Upstream</th><th>Published snapshot</th>\
                   </tr></thead><tbody>\n",
    );
    for row in rows {
        html.push_str(&row_html(row, next, "", has));
    }
    html.push_str("</tbody></table>\n");
    if !config.mirrors.is_empty() {
        html.push_str("<h2>How to use</h2>\n");
        for m in &config.mirrors {
            html.push_str(&usage(web, m, has));
        }
    }
    html.push_str("</main>");
    html + &footer("")
}

/// `/status/<id>.html`.
pub fn entry(
    web: &WebConfig,
    row: &StatusRow,
    next: Option<i64>,
    snapshots: &[Snapshot],
    chart: &str,
    has: Has,
) -> String {
    let id = &row.row.id;
    let mut html = head(&format!("{id} — {}", web.title));
    let _ = writeln!(
        html,
        "<header><p><a href=\"../index.html\">{}</a></p><h1>{}</h1></header><main>",
        esc(&web.title),
        esc(id)
    );
    html.push_str(
        "<table><thead><tr><th>Name</th><th>State</th><th>Last success</th><th>Last attempt</th>\
                   <th>Next run</th><th>Size</th><th>Upstream</th><th>Published snapshot</th></tr></thead><tbody>\n",
    );
    html.push_str(&row_html(row, next, "../", has));
    html.push_str("</tbody></table>\n<h2>Last runs</h2>\n");
    html.push_str(chart);
    html.push_str(
        "\n<h2>Retained snapshots</h2>\n<table><thead><tr><th>Snapshot</th><th>Recorded</th><th>Files</th>\
                   <th>Size</th><th></th></tr></thead><tbody>\n",
    );
    for s in snapshots {
        let r = &s.row;
        let role = match (r.published, r.pinned) {
            (true, true) => "<span class=\"pinned\">published, pinned (rolled back)</span>",
            (true, false) => "<strong>published</strong>",
            (false, _) => "<span class=\"muted\">retained</span>",
        };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{role}</td></tr>",
            link(has, "../", &format!("snapshots/{id}/{}/", r.name), &r.name),
            when(Some(r.created_at)),
            r.files,
            size(r.bytes)
        );
    }
    html.push_str("</tbody></table>\n<h2>What changed</h2>\n");
    for s in snapshots {
        html.push_str(&changes(s));
    }
    html.push_str("</main>");
    html + &footer("../")
}

/// What one snapshot changed, per component (index) or per file.
fn changes(s: &Snapshot) -> String {
    let Some((from, diff)) = &s.changes else { return String::new() };
    let mut items: Vec<String> = Vec::new();
    let empty = Vec::new();
    for index in diff["indices"].as_array().unwrap_or(&empty) {
        let component = format!(
            "{}/binary-{}",
            index["component"].as_str().unwrap_or("?"),
            index["architecture"].as_str().unwrap_or("?")
        );
        for c in index["changes"].as_array().unwrap_or(&empty) {
            items.push(change_item(&component, c));
        }
    }
    for f in diff["files"].as_array().unwrap_or(&empty) {
        let kind = f["change"].as_str().unwrap_or("changed");
        items.push(format!("<li class=\"{kind}\">{kind}: {}</li>", esc(f["path"].as_str().unwrap_or("?"))));
    }
    let n = items.len();
    let more = n.saturating_sub(MAX_CHANGES);
    let mut html = format!("<h3>{} <small>against {} — {n} changes</small></h3>\n<ul>", esc(&s.row.name), esc(from));
    for item in items.into_iter().take(MAX_CHANGES) {
        html.push_str(&item);
    }
    if more > 0 {
        let _ = write!(html, "<li class=\"muted\">… and {more} more (<code>pmirror-fs snapshot diff</code>)</li>");
    }
    html + "</ul>\n"
}

fn change_item(component: &str, c: &Value) -> String {
    let versions = |key: &str| -> String {
        let v: Vec<&str> = c[key].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        v.join(", ")
    };
    // Versions come oldest first: an upgrade is the newest old one → the newest new one.
    let newest = |key: &str| c[key].as_array().and_then(|v| v.last()).and_then(Value::as_str).unwrap_or("").to_owned();
    let kind = c["change"].as_str().unwrap_or("changed");
    let name = esc(c["name"].as_str().unwrap_or("?"));
    let what = match kind {
        "added" => format!("{name} {}", esc(&versions("new"))),
        "removed" => format!("{name} {}", esc(&versions("old"))),
        "changed" => format!("{name} {} → {}", esc(&versions("old")), esc(&versions("new"))),
        _ => format!("{name} {} → {}", esc(&newest("old")), esc(&newest("new"))),
    };
    format!("<li class=\"{kind}\">{kind}: {what} <small>{}</small></li>", esc(component))
}
