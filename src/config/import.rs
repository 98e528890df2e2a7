//! `pmirror-fs config import`: a proxmox-offline-mirror config (Proxmox section-config format)
//! converted into pmirror-fs TOML. Pure: text in, text and notes out; the CLI reads and writes.
//!
//! ```text
//! mirror: pve_bookworm                      [[mirror]]
//!     repository deb http://… bookworm c    id = "pve_bookworm"
//!     architectures amd64             ──▶   repository = "deb http://… bookworm c"
//!     architectures all                     architectures = ["amd64", "all"]
//!     key-path /etc/apt/…gpg                key = "/etc/apt/…gpg"
//!     verify true / ignore-errors false     verify = true / ignore-errors = false
//!     skip-packages / skip-sections         skip-packages = […] / skip-sections = […]
//!     use-subscription pve                  use-subscription = "pve"
//!     sync true                             [store] fsync = true (one store-wide setting)
//!     base-dir /var/lib/…                   (not imported: one pool for every mirror)
//! subscription: pve4b-1234567890            [[subscription]]
//!     server-id 0123…                 ──▶   key = "pve4b-1234567890"
//!     description / info                    server-id = "0123…"  (description as a comment)
//! medium: …                                 (reported as not imported)
//! ```
//!
//! Several keys of one product (proxmox-offline-mirror keeps the keys of the offline hosts it
//! activates) keep their order; pmirror-fs sends the first, proxmox-offline-mirror sent the first
//! one its cached status called active, so a note says which key that is. Notes never quote a key.
//!
//! List-valued keys may repeat (one value per line, as proxmox-section-config writes arrays) or
//! hold several values separated by commas or spaces.

mod section_config;

use self::section_config::{boolean, list, sections, Section};
use super::subscription::{self, Product, SubscriptionKey};
use super::{validate, Repository};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The result of an import: the TOML text, the imported mirror ids, and what was not imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    /// Ids of the imported mirrors, in file order.
    pub mirrors: Vec<String>,
    /// How many `[[subscription]]` keys `toml` holds (then it is a secret: mode 0600).
    pub subscriptions: usize,
    /// One line per thing left out or changed (also written as comments at the top of `toml`).
    pub notes: Vec<String>,
}

/// Why a file could not be imported. Every variant displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("line {line}: mirror {id:?}: {message}")]
    Mirror { id: String, line: usize, message: String },
    /// A `subscription:` section pmirror-fs cannot use; the message never quotes the key.
    #[error("line {line}: subscription: {message}")]
    Subscription { line: usize, message: String },
    #[error("no `mirror:` section found: is this a proxmox-offline-mirror config?")]
    NoMirrors,
}

/// A mirror as pmirror-fs will write it.
#[derive(Debug, Default)]
struct Mirror {
    id: String,
    repository: String,
    architectures: Vec<String>,
    key: String,
    verify: Option<bool>,
    ignore_errors: Option<bool>,
    sync: Option<bool>,
    skip_packages: Vec<String>,
    skip_sections: Vec<String>,
    use_subscription: Option<Product>,
    /// Comments written above the entry (what was not carried over).
    comments: Vec<String>,
}

/// A `subscription:` section as pmirror-fs will write it.
#[derive(Debug)]
struct Key {
    key: SubscriptionKey,
    server_id: String,
    product: Product,
    /// Comments written above the entry (the description).
    comments: Vec<String>,
}

/// Drops a `[option=…]` block after `deb` (pmirror-fs takes architectures and key from their own
/// keys); returns the line and whether anything was dropped.
fn strip_options(line: &str) -> (String, bool) {
    let Some(start) = line.find('[') else { return (line.to_owned(), false) };
    let Some(len) = line[start..].find(']') else { return (line.to_owned(), false) };
    let stripped = format!("{} {}", line[..start].trim_end(), line[start + len + 1..].trim_start());
    (stripped, true)
}

fn mirror(section: &Section) -> Result<Mirror, ImportError> {
    let fail = |line: usize, message: String| ImportError::Mirror { id: section.id.clone(), line, message };
    validate::id(&section.id).map_err(|e| fail(section.line, e))?;
    let mut m = Mirror { id: section.id.clone(), ..Mirror::default() };
    for p in &section.props {
        let flag =
            || boolean(&p.value).ok_or_else(|| fail(p.line, format!("{}: {:?} is not a boolean", p.key, p.value)));
        match p.key.as_str() {
            "repository" => {
                let (line, dropped) = strip_options(&p.value);
                if dropped {
                    m.comments.push(format!("options in brackets dropped from {:?}", p.value));
                }
                line.parse::<Repository>().map_err(|e| fail(p.line, format!("repository: {e}")))?;
                m.repository = line;
            }
            "architectures" => m.architectures.extend(list(&p.value)),
            "key-path" => m.key = p.value.clone(),
            "verify" => m.verify = Some(flag()?),
            "ignore-errors" => m.ignore_errors = Some(flag()?),
            "sync" => m.sync = Some(flag()?),
            "skip-packages" => m.skip_packages.extend(list(&p.value)),
            "skip-sections" => m.skip_sections.extend(list(&p.value)),
            "base-dir" | "dir" => m.comments.push(format!(
                "{} {:?} not imported: every mirror shares the store's pool ([store] dir)",
                p.key, p.value
            )),
            "use-subscription" => {
                let product = Product::parse(&p.value).map_err(|e| fail(p.line, format!("use-subscription: {e}")))?;
                m.use_subscription = Some(product);
            }
            other => m.comments.push(format!("unknown key {other:?} ignored")),
        }
    }
    check_mirror(section, &mut m)?;
    Ok(m)
}

/// A `subscription: <key>` section: the key is the section id, `server-id` a property.
fn subscription_key(section: &Section) -> Result<(Key, Vec<String>), ImportError> {
    let fail = |line: usize, message: String| ImportError::Subscription { line, message };
    let product = Product::of_key(&section.id).map_err(|e| fail(section.line, format!("key {e}")))?;
    let key = SubscriptionKey::new(section.id.clone());
    let mut out = Key { key, server_id: String::new(), product, comments: Vec::new() };
    let mut notes = Vec::new();
    for p in &section.props {
        match p.key.as_str() {
            "server-id" => {
                subscription::server_id(&p.value).map_err(|e| fail(p.line, format!("server-id {e}")))?;
                out.server_id = p.value.clone();
            }
            "description" => out.comments.push(p.value.clone()),
            // The cached subscription status: pmirror-fs does not check keys with the shop.
            "info" => {}
            other => notes.push(format!("subscription {} (line {}): unknown key {other:?} ignored", out.key, p.line)),
        }
    }
    if out.server_id.is_empty() {
        return Err(fail(section.line, format!("{} has no server-id", out.key)));
    }
    Ok((out, notes))
}

/// Which key each product's entries will send, and entries whose product has none.
fn subscription_notes(keys: &[Key], mirrors: &[Mirror]) -> Vec<String> {
    let mut notes = Vec::new();
    for product in Product::ALL {
        let of: Vec<&Key> = keys.iter().filter(|k| k.product == product).collect();
        if of.len() > 1 {
            notes.push(format!(
                "{} {product} keys: pmirror-fs sends the first ({}) for use-subscription = \"{product}\"; \
                 proxmox-offline-mirror sent the first active one, so put that one first",
                of.len(),
                of[0].key
            ));
        }
    }
    for m in mirrors {
        if let Some(product) = m.use_subscription.filter(|p| !keys.iter().any(|k| k.product == *p)) {
            notes.push(format!(
                "mirror {}: use-subscription = \"{product}\" but no {product} key was found: \
                 add a [[subscription]] before `pmirror-fs config check`",
                m.id
            ));
        }
    }
    notes
}

/// Required keys and valid values, so the TOML written is a config `pmirror-fs` accepts.
fn check_mirror(section: &Section, m: &mut Mirror) -> Result<(), ImportError> {
    let fail = |message: String| ImportError::Mirror { id: section.id.clone(), line: section.line, message };
    if m.repository.is_empty() {
        return Err(fail("no repository line".into()));
    }
    if m.key.is_empty() {
        return Err(fail("no key-path: pmirror-fs verifies every repository's signature".into()));
    }
    if m.architectures.is_empty() {
        m.architectures = vec!["amd64".into(), "all".into()];
        m.comments.push("no architectures given: using amd64 and all (proxmox-offline-mirror's default)".into());
    }
    let mut seen = Vec::new();
    for arch in std::mem::take(&mut m.architectures) {
        validate::architecture(&arch).map_err(|e| fail(format!("architectures: {e}")))?;
        if !seen.contains(&arch) {
            seen.push(arch);
        }
    }
    m.architectures = seen;
    for pattern in &m.skip_packages {
        globset::Glob::new(pattern).map_err(|e| fail(format!("skip-packages: {e}")))?;
    }
    Ok(())
}

/// Converts proxmox-offline-mirror section-config text into pmirror-fs TOML. `source` names the
/// file in the header comment.
pub fn import_pom(text: &str, source: &str) -> Result<Imported, ImportError> {
    let mut notes = Vec::new();
    let mut mirrors: Vec<Mirror> = Vec::new();
    let mut keys: Vec<Key> = Vec::new();
    let mut lines: BTreeMap<String, usize> = BTreeMap::new();
    for section in sections(text)? {
        match section.kind.as_str() {
            "mirror" => {
                if let Some(first) = lines.insert(section.id.clone(), section.line) {
                    let message = format!("duplicate id (first defined on line {first})");
                    return Err(ImportError::Mirror { id: section.id, line: section.line, message });
                }
                let m = mirror(&section)?;
                notes.extend(m.comments.iter().map(|c| format!("mirror {}: {c}", m.id)));
                mirrors.push(m);
            }
            "medium" => notes.push(format!(
                "medium {:?} (line {}) not imported: pmirror-fs serves snapshots through its mount \
                 (snapshots/<mirror>/<name>/) instead of exporting media",
                section.id, section.line
            )),
            "subscription" => {
                let (key, key_notes) = subscription_key(&section)?;
                notes.extend(key_notes);
                keys.push(key);
            }
            other => notes.push(format!("section type {other:?} (line {}) not imported: unknown", section.line)),
        }
    }
    if mirrors.is_empty() {
        return Err(ImportError::NoMirrors);
    }
    notes.extend(shared_suites(&mirrors));
    notes.extend(subscription_notes(&keys, &mirrors));
    let fsync = store_fsync(&mirrors, &mut notes);
    let ids = mirrors.iter().map(|m| m.id.clone()).collect();
    let toml = render(&mirrors, &keys, fsync, &notes, source);
    Ok(Imported { toml, mirrors: ids, subscriptions: keys.len(), notes })
}

/// proxmox-offline-mirror's per-mirror `sync` (fsync) becomes the one store-wide setting: on
/// when any mirror had it (the safe choice), unset when none said.
fn store_fsync(mirrors: &[Mirror], notes: &mut Vec<String>) -> Option<bool> {
    let said: Vec<bool> = mirrors.iter().filter_map(|m| m.sync).collect();
    let any = said.iter().any(|s| *s);
    if any && said.iter().any(|s| !*s) {
        notes.push("`sync` differs between mirrors: [store] fsync = true for all of them".into());
    }
    (!said.is_empty()).then_some(any)
}

/// Mirrors of the same URL and suite each publish `dists/<suite>/InRelease` at the same path;
/// one fetched a moment later than the other can disagree, and the publish is then refused.
fn shared_suites(mirrors: &[Mirror]) -> Vec<String> {
    let mut by_suite: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for m in mirrors {
        if let Ok(repo) = m.repository.parse::<Repository>() {
            by_suite.entry((repo.url.to_string(), repo.suite)).or_default().push(&m.id);
        }
    }
    by_suite
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((url, suite), ids)| {
            format!(
                "mirrors {} share {url} {suite}: consider one mirror with all their components \
                 (their InRelease files must match at every publish)",
                ids.join(", ")
            )
        })
        .collect()
}

/// A TOML basic string (quotes and escapes as TOML needs them).
fn quote(text: &str) -> String {
    toml_edit::Value::from(text).to_string().trim().to_owned()
}

fn quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", "))
}

fn render(mirrors: &[Mirror], keys: &[Key], fsync: Option<bool>, notes: &[String], source: &str) -> String {
    let mut out = format!("# pmirror-fs configuration imported from {source} by `pmirror-fs config import`.\n");
    if !keys.is_empty() {
        out += "# It holds subscription keys: keep it readable by root only (chmod 600).\n";
    }
    for note in notes {
        out += &format!("# NOTE: {}\n", note.replace('\n', " "));
    }
    out += "\n[store]\n# dir = \"/var/lib/pmirror-fs\"\n";
    if let Some(fsync) = fsync {
        out += &format!("fsync = {fsync}\n");
    }
    for k in keys {
        out += "\n";
        for comment in &k.comments {
            out += &format!("# {}\n", comment.replace('\n', " "));
        }
        out += &format!("[[subscription]]\nkey = {}\nserver-id = {}\n", quote(k.key.expose()), quote(&k.server_id));
    }
    for m in mirrors {
        out += "\n";
        for comment in &m.comments {
            out += &format!("# {}\n", comment.replace('\n', " "));
        }
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "[[mirror]]\nid = {}\nrepository = {}\narchitectures = {}\nkey = {}\n",
            quote(&m.id),
            quote(&m.repository),
            quote_list(&m.architectures),
            quote(&m.key)
        );
        for (key, value) in [("verify", m.verify), ("ignore-errors", m.ignore_errors)] {
            if let Some(v) = value {
                out += &format!("{key} = {v}\n");
            }
        }
        for (key, values) in [("skip-packages", &m.skip_packages), ("skip-sections", &m.skip_sections)] {
            if !values.is_empty() {
                out += &format!("{key} = {}\n", quote_list(values));
            }
        }
        if let Some(product) = m.use_subscription {
            out += &format!("use-subscription = {}\n", quote(product.name()));
        }
    }
    out
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
