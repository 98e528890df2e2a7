//! The step every publish shares (`Store::with_view`: sync, `snapshot publish|remove|forget`):
//! build the view the new generation shows — which refuses path conflicts — and write it as a
//! view image that the mount daemon maps instead of building the tree itself (`tree::image`).
//! The image is written before the catalog transaction commits and named by a nonce the
//! transaction records, so the daemon never maps an image of an attempt that did not commit.

use std::path::{Path, PathBuf};

use crate::tree::source::{Alias, ViewSource};
use crate::tree::{image, BuildError, View, STATUS_FILE};

/// Where publishers write view images: `<store>/views/`.
pub fn images_dir(store: &Path) -> PathBuf {
    store.join("views")
}

/// The view `src` shows, as publishers and the mount daemon build it: with the configured
/// aliases and an empty status.json that the daemon fills in.
pub fn build_view(src: &mut ViewSource, aliases: Vec<Alias>) -> Result<View, BuildError> {
    src.aliases = aliases;
    src.inline_files.push((STATUS_FILE.to_owned(), b"[]\n".to_vec()));
    View::build(src)
}

/// The `prepare` step of a catalog publish, and the cleanup once the transaction is decided.
pub struct ViewPublisher {
    dir: PathBuf,
    fsync: bool,
    aliases: Vec<Alias>,
    written: Option<String>,
}

impl ViewPublisher {
    /// For the store in `store`, writing images with `fsync` and the configured `aliases` (the
    /// `Store` builds one per publish; tools and tests that build catalogs use it directly).
    pub fn for_store(store: &Path, fsync: bool, aliases: Vec<Alias>) -> Self {
        ViewPublisher { dir: images_dir(store), fsync, aliases, written: None }
    }

    /// Build the view `src` describes (with the configured aliases and the status placeholder
    /// the daemon fills) and write its image. A view that does not build refuses the publish;
    /// an image that cannot be written only costs the daemon a build of its own (logged).
    pub fn prepare(&mut self, src: &mut ViewSource) -> Result<Option<u64>, BuildError> {
        let view = build_view(src, self.aliases.clone())?;
        let nonce = random_nonce();
        let name = image::file_name(view.generation(), nonce);
        let valid_until = src.valid_until.unwrap_or(i64::MAX);
        match image::write_file(&view, valid_until, &self.dir, &name, self.fsync) {
            Ok(_) => {
                self.written = Some(name);
                Ok(Some(nonce))
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing the view image failed; the mount daemon will build the view itself");
                Ok(None)
            }
        }
    }

    /// After the transaction: committed, every other image goes (a daemon that maps one keeps
    /// it until it switches); not committed, the image written for it goes.
    pub fn finish(self, committed: bool) {
        let dir = &self.dir;
        let result = match (&self.written, committed) {
            (written, true) => image::prune(dir, written.as_deref()).map(drop),
            (Some(name), false) => std::fs::remove_file(dir.join(name)),
            (None, false) => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(dir = %dir.display(), error = %e, "removing old view images failed");
        }
    }
}

fn random_nonce() -> u64 {
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_err() {
        // No entropy source: the time and pid still tell attempts apart.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        return t ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_ne_bytes(buf)
}
