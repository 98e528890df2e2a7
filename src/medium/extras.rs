//! What a medium carries beside its store: the keys (written before the commit, as the new
//! snapshots need them), and the pmirror-fs .deb and README.txt (written after it: they describe
//! and install the state the medium holds). Each file is written whole or not at all
//! ([`write_atomic`]) and only when it changed, so an unchanged medium rewrites nothing.

use super::plan::MediumPlan;
use super::{io_err, key_name, write_atomic, MediumError, KEYS_DIR};
use crate::config::{Config, MediumConfig};
use std::path::{Path, PathBuf};

/// Characters exFAT refuses in a name (besides control characters and `/`).
const EXFAT_FORBIDDEN: &[char] = &['"', '*', ':', '<', '>', '?', '\\', '|'];

/// The key bytes of every entry the medium carries that has one.
fn keys(config: &Config, medium: &MediumConfig) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for id in &medium.mirrors {
        if let Some(m) = config.mirrors.iter().find(|m| &m.id == id) {
            out.push((id.clone(), m.key_bytes.clone()));
        } else if let Some(bytes) = config.trees.iter().find(|t| &t.id == id).and_then(|t| t.key_bytes.clone()) {
            out.push((id.clone(), bytes));
        }
    }
    out
}

/// Writes each carried entry's key to `keys/<id>.asc|gpg`, removing the same id's key of the
/// other form (a key that changed from armored to binary must not be shadowed by the old one).
/// Returns the bytes written.
pub(super) fn write_keys(config: &Config, medium: &MediumConfig) -> Result<u64, MediumError> {
    let dir = medium.path.as_path();
    let keys_dir = dir.join(KEYS_DIR);
    let mut written = 0;
    for (id, bytes) in keys(config, medium) {
        let name = key_name(&id, &bytes);
        written += write_if_changed(dir, &keys_dir, &name, &bytes)?;
        for other in ["asc", "gpg"].map(|ext| format!("{id}.{ext}")).into_iter().filter(|n| *n != name) {
            match std::fs::remove_file(keys_dir.join(&other)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(MediumError::Io { path: keys_dir.join(other), source: e }),
            }
        }
    }
    Ok(written)
}

/// After the commit: the .deb (when one is at hand) and README.txt. Returns the bytes written.
pub(super) fn after_commit(
    medium: &MediumConfig,
    deb: Option<&Path>,
    plan: &MediumPlan,
    carried: &mut Option<String>,
) -> Result<u64, MediumError> {
    let dir = medium.path.as_path();
    let mut written = 0;
    *carried = match deb {
        Some(deb) => {
            let (name, n) = carry_deb(dir, deb)?;
            written += n;
            Some(name)
        }
        None => existing_deb(dir)?,
    };
    let text = super::readme::text(medium, plan, carried.as_deref());
    written += write_if_changed(dir, dir, super::README, text.as_bytes())?;
    Ok(written)
}

fn write_if_changed(root: &Path, dir: &Path, name: &str, bytes: &[u8]) -> Result<u64, MediumError> {
    match std::fs::read(dir.join(name)) {
        Ok(old) if old == bytes => return Ok(0),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(MediumError::Io { path: dir.join(name), source: e }),
    }
    write_atomic(root, dir, name, bytes)
}

/// This version's .deb in apt's cache, if it is there.
pub(super) fn find_deb() -> Option<PathBuf> {
    let prefix = format!("pmirror-fs_{}", env!("CARGO_PKG_VERSION"));
    let dir = std::fs::read_dir("/var/cache/apt/archives").ok()?;
    dir.filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb")))
}

/// The name a .deb is carried under: exFAT-safe (an epoch's `:` as `%3a`, as apt names its
/// downloads; any other character exFAT refuses as `_`), at most 255 bytes.
fn deb_name(deb: &Path) -> String {
    let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or("pmirror-fs.deb").replace(':', "%3a");
    let mut name: String =
        name.chars().map(|c| if c.is_control() || EXFAT_FORBIDDEN.contains(&c) { '_' } else { c }).collect();
    while name.len() > 255 {
        name.remove(name.len() - 5);
    }
    name
}

/// The bytes carrying `deb` will write: none when the medium has a file of its name and size.
pub(super) fn deb_bytes(dir: &Path, deb: &Path) -> Result<u64, MediumError> {
    let size = std::fs::metadata(deb).map_err(io_err(deb))?.len();
    match std::fs::metadata(dir.join(deb_name(deb))) {
        Ok(m) if m.len() == size => Ok(0),
        _ => Ok(size),
    }
}

fn is_deb_name(name: &str) -> bool {
    name.starts_with("pmirror-fs_") && name.ends_with(".deb")
}

/// The .deb the medium's root holds, if any.
fn existing_deb(dir: &Path) -> Result<Option<String>, MediumError> {
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let name = e.map_err(io_err(dir))?.file_name();
        if let Some(name) = name.to_str().filter(|n| is_deb_name(n)) {
            return Ok(Some(name.to_owned()));
        }
    }
    Ok(None)
}

/// Copies the .deb to the medium's root unless the same file is there, then removes older ones;
/// returns its name and the bytes written.
fn carry_deb(dir: &Path, deb: &Path) -> Result<(String, u64), MediumError> {
    let bytes = std::fs::read(deb).map_err(io_err(deb))?;
    if !bytes.starts_with(b"!<arch>\ndebian-binary") {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "not a Debian package (.deb)");
        return Err(MediumError::Io { path: deb.to_owned(), source });
    }
    let name = deb_name(deb);
    let written = write_if_changed(dir, dir, &name, &bytes)?;
    for old in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let old = old.map_err(io_err(dir))?;
        let old_name = old.file_name().into_string().unwrap_or_default();
        if old_name != name && is_deb_name(&old_name) {
            std::fs::remove_file(old.path()).map_err(io_err(&old.path()))?;
        }
    }
    Ok((name, written))
}

#[cfg(test)]
mod tests {
    #[test]
    fn deb_names_are_ones_exfat_takes() {
        let cases = [
            ("pmirror-fs_0.1.0-1_amd64.deb", "pmirror-fs_0.1.0-1_amd64.deb"),
            ("pmirror-fs_1:0.2-1_amd64.deb", "pmirror-fs_1%3a0.2-1_amd64.deb"),
            ("pmirror-fs_0.2?*|_amd64.deb", "pmirror-fs_0.2____amd64.deb"),
        ];
        for (given, carried) in cases {
            assert_eq!(super::deb_name(std::path::Path::new(given)), carried);
        }
        let long = format!("pmirror-fs_{}.deb", "9".repeat(300));
        let name = super::deb_name(std::path::Path::new(&long));
        assert!(name.len() == 255 && name.ends_with(".deb"), "{name}");
    }
}
