//! `medium sources`: deb822 `.sources` stanzas for the hosts an offline mirror serves, one per
//! apt mirror of a medium (or of a store that imported one), read from its published snapshot:
//! the suite and components it holds, `Signed-By` the key it was verified with. The snapshot's
//! Release is verified with that key again here; nothing that disables a check is written, except
//! `Check-Valid-Until: no` where that Release carries a Valid-Until (an offline copy outlives it),
//! with the reason beside it.

use super::{key_file, Medium, MediumError};
use crate::apt::signature::{verify_detached, verify_inrelease, Keyring};
use crate::catalog::{Catalog, PublishedFile};
use crate::pool::Pool;
use crate::tree::source::EntryKind;
use std::path::{Path, PathBuf};

/// One mirror's `.sources` file and the key it names.
#[derive(Debug, Clone)]
pub struct SourcesFile {
    pub mirror: String,
    /// `pmirror-fs-<mirror>.sources`
    pub file_name: String,
    pub text: String,
    /// `pmirror-fs-<mirror>.asc|gpg`, as `Signed-By` names it under the key directory.
    pub key_name: String,
    pub key: Vec<u8>,
}

/// The stanzas for the medium or store at `dir`, with `URIs: <base_url>/<view>` and `Signed-By:
/// <key_dir>/<key_name>`.
pub fn sources(dir: &Path, base_url: &str, key_dir: &Path) -> Result<Vec<SourcesFile>, MediumError> {
    let (catalog, pool, label) = if super::is_medium(dir) {
        let m = Medium::open(dir)?;
        let label = format!("medium {}", m.marker.id);
        (m.catalog, m.pool, label)
    } else {
        (Catalog::open_untouched(dir)?, Pool::existing(dir), format!("store {}", dir.display()))
    };
    let base = base_url.trim_end_matches('/');
    let mut out = Vec::new();
    for mirror in catalog.mirrors()?.into_iter().filter(|m| m.kind == "mirror") {
        let Some(snapshot) = mirror.published.as_ref() else { continue };
        let key_path = key_file(dir, &mirror.id).ok_or_else(|| {
            MediumError::Selection(format!("{}: no key for mirror {} in {}/keys", label, mirror.id, dir.display()))
        })?;
        let key = std::fs::read(&key_path).map_err(super::io_err(&key_path))?;
        let ext = key_path.extension().and_then(|e| e.to_str()).unwrap_or("asc");
        let key_name = format!("pmirror-fs-{}.{ext}", mirror.id);
        let files = catalog.snapshot_files(snapshot.id)?;
        let stanza = Stanza::of(&files, &pool, &key, &mirror.id)?;
        let mut text = format!("# {label}: mirror {}, snapshot {}\n", mirror.id, snapshot.name);
        if let Some(until) = stanza.valid_until {
            let (date, _) = crate::status::tunasync_time(Some(until));
            text += &format!(
                "# {}'s Release carries Valid-Until ({date}): an offline copy outlives it, so apt is told not to \
                 check it; the signature is still checked\n",
                stanza.suite
            );
        }
        text += &format!(
            "Types: deb\nURIs: {base}/{}\nSuites: {}\nComponents: {}\nSigned-By: {}\n",
            mirror.view,
            stanza.suite,
            stanza.components.join(" "),
            key_dir.join(&key_name).display()
        );
        if stanza.valid_until.is_some() {
            text += "Check-Valid-Until: no\n";
        }
        out.push(SourcesFile {
            file_name: format!("pmirror-fs-{}.sources", mirror.id),
            mirror: mirror.id,
            text,
            key_name,
            key,
        });
    }
    Ok(out)
}

/// What a stanza says, read off a snapshot's files.
struct Stanza {
    suite: String,
    components: Vec<String>,
    valid_until: Option<i64>,
}

impl Stanza {
    fn of(files: &[PublishedFile], pool: &Pool, key: &[u8], mirror: &str) -> Result<Stanza, MediumError> {
        let bad = |what: String| MediumError::Selection(format!("mirror {mirror}: {what}"));
        let release = |name: &str| {
            files
                .iter()
                .find(|f| f.kind == EntryKind::Release && f.path.starts_with("dists/") && f.path.ends_with(name))
        };
        let (first, name) = match (release("/InRelease"), release("/Release")) {
            (Some(f), _) => (f, "/InRelease"),
            (None, Some(f)) => (f, "/Release"),
            (None, None) => return Err(bad("its snapshot has no InRelease or Release".to_owned())),
        };
        let suite = first.path["dists/".len()..first.path.len() - name.len()].to_owned();
        let read = |f: &PublishedFile| {
            pool.read_verified(&f.sha256, Some(f.size))
                .map_err(|e| bad(format!("{}: {e}", f.path)))?
                .ok_or_else(|| bad(format!("{}: missing from the pool", f.path)))
        };
        let keyring = Keyring::from_bytes(key).map_err(|e| bad(format!("key: {e}")))?;
        let verified = if name == "/InRelease" {
            verify_inrelease(&read(first)?, &keyring)
        } else {
            let gpg = release("/Release.gpg").ok_or_else(|| bad(format!("dists/{suite}/Release.gpg is missing")))?;
            verify_detached(&read(first)?, &read(gpg)?, &keyring)
        }
        .map_err(|e| bad(format!("{}: {e}", first.path)))?;
        let mut components: Vec<String> = Vec::new();
        let prefix = format!("dists/{suite}/");
        for f in files.iter().filter(|f| f.kind == EntryKind::Index) {
            let Some(rest) = f.path.strip_prefix(&prefix) else { continue };
            let parts: Vec<&str> = rest.split('/').collect();
            let Some(at) = parts.iter().position(|p| p.starts_with("binary-") || *p == "source" || *p == "i18n") else {
                continue;
            };
            let component = parts[..at].join("/");
            if at > 0 && !components.contains(&component) {
                components.push(component);
            }
        }
        components.sort();
        Ok(Stanza { suite, components, valid_until: verified.release().valid_until })
    }
}

/// Writes each file and its key into `out` (created if needed); returns the paths written.
pub fn write(out: &Path, files: &[SourcesFile]) -> Result<Vec<PathBuf>, MediumError> {
    std::fs::create_dir_all(out).map_err(super::io_err(out))?;
    let mut written = Vec::new();
    for f in files {
        for (name, bytes) in [(&f.file_name, f.text.as_bytes()), (&f.key_name, f.key.as_slice())] {
            let path = out.join(name);
            std::fs::write(&path, bytes).map_err(super::io_err(&path))?;
            written.push(path);
        }
    }
    Ok(written)
}
