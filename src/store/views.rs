//! The step every publish shares (`Store::with_view`: sync, `snapshot publish|remove|forget`):
//! build the view the new generation shows — which refuses path conflicts — and write it as a
//! view image that the mount daemon maps instead of building the tree itself (`tree::image`).
//! The image is written before the catalog transaction commits and named by a nonce the
//! transaction records, so the daemon never maps an image of an attempt that did not commit.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::shared;

use crate::tree::source::{Alias, ViewSource};
use crate::tree::{image, BuildError, View, STATUS_FILE};

/// Where publishers write view images: `<store>/views/`.
pub fn images_dir(store: &Path) -> PathBuf {
    store.join("views")
}

/// The view `src` shows, as publishers and the mount daemon build it: with the configured
/// aliases, an empty status.json that the daemon fills in, and `web` (the front page's files,
/// `crate::web::placeholders`).
pub fn build_view(src: &mut ViewSource, aliases: Vec<Alias>, web: &[(String, Vec<u8>)]) -> Result<View, BuildError> {
    src.aliases = aliases;
    src.inline_files.push((STATUS_FILE.to_owned(), b"[]\n".to_vec()));
    src.inline_files.extend(web.iter().cloned());
    View::build(src)
}

/// The `prepare` step of a catalog publish, and the cleanup once the transaction is decided.
pub struct ViewPublisher {
    dir: PathBuf,
    fsync: bool,
    aliases: Vec<Alias>,
    /// The image written: its file name, generation and nonce.
    written: Option<(String, u64, u64)>,
    /// On a shared store, how long a superseded image stays (`[store] gc-delay`).
    shared: Option<Duration>,
    /// The front page's files (`crate::web::placeholders`).
    web: Vec<(String, Vec<u8>)>,
}

impl ViewPublisher {
    /// For the store in `store`, writing images with `fsync` and the configured `aliases` (the
    /// `Store` builds one per publish; tools and tests that build catalogs use it directly).
    pub fn for_store(store: &Path, fsync: bool, aliases: Vec<Alias>) -> Self {
        ViewPublisher { dir: images_dir(store), fsync, aliases, written: None, shared: None, web: Vec::new() }
    }

    /// With the front page's files (`[web]`).
    pub fn with_web(mut self, web: Vec<(String, Vec<u8>)>) -> Self {
        self.web = web;
        self
    }

    /// For a shared store (`super::shared`): an image that cannot be written refuses the publish,
    /// the commit is followed by the pointer file, and superseded images stay for `gc_delay`.
    pub fn shared(mut self, gc_delay: Duration) -> Self {
        self.shared = Some(gc_delay);
        self
    }

    /// Build the view `src` describes (with the configured aliases and the status placeholder
    /// the daemon fills) and write its image. A view that does not build refuses the publish;
    /// an image that cannot be written only costs the daemon a build of its own (logged) — on a
    /// shared store it refuses the publish, since serving nodes cannot build one.
    pub fn prepare(&mut self, src: &mut ViewSource) -> Result<Option<u64>, BuildError> {
        let view = build_view(src, self.aliases.clone(), &self.web)?;
        let nonce = random_nonce();
        let name = image::file_name(view.generation(), nonce);
        let valid_until = src.valid_until.unwrap_or(i64::MAX);
        match image::write_file(&view, valid_until, &self.dir, &name, self.fsync) {
            Ok(_) => {
                self.written = Some((name, view.generation(), nonce));
                Ok(Some(nonce))
            }
            Err(e) if self.shared.is_some() => Err(BuildError::ImageNotWritten { reason: e.to_string() }),
            Err(e) => {
                tracing::warn!(error = %e, "writing the view image failed; the mount daemon will build the view itself");
                Ok(None)
            }
        }
    }

    /// After the transaction: committed, every other image goes (a daemon that maps one keeps
    /// it until it switches) — on a shared store, the pointer names the new image and only
    /// images superseded `gc-delay` ago go; not committed, the image written for it goes.
    pub fn finish(self, committed: bool) {
        let dir = &self.dir;
        let written = self.written.as_ref().map(|(name, _, _)| name.as_str());
        if let (true, Some(_), Some((_, generation, nonce))) = (committed, self.shared, &self.written) {
            if let Err(e) = shared::write_pointer(dir, *generation, *nonce, self.fsync) {
                tracing::error!(
                    dir = %dir.display(), error = %e,
                    "published, but the serving nodes' pointer could not be written: they keep the previous view until \
                     the next writer opens the store"
                );
            }
        }
        let result = match (written, committed, self.shared) {
            (written, true, Some(delay)) => shared::prune_images(dir, written, delay, SystemTime::now()).map(drop),
            (written, true, None) => image::prune(dir, written).map(drop),
            (Some(name), false, _) => std::fs::remove_file(dir.join(name)),
            (None, false, _) => Ok(()),
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
